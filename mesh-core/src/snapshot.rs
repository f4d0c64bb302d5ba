//! The config snapshot: the atomic unit the request path reads.
//!
//! gRFC A74: a client publishes configuration only when the whole dependency graph of a target is present (its
//! listener, route configuration, every cluster its virtual host can route to, and their endpoints), so a request
//! never sees a route pointing at a cluster that has not arrived yet. A [`ConfigSnapshot`] is that graph, checked for
//! completeness when it is built and immutable afterwards; the request path swaps whole snapshots (`ArcSwap`) and
//! reads one with a single atomic load.
//!
//! A cluster that failed (invalid resource, or does not exist) is still an entry, carrying its error, so requests
//! routed to it fail with a precise reason while the rest of the graph serves (gRFC A74 `StatusOr<ClusterConfig>`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::cluster::Cluster;
use crate::endpoint::EndpointSet;
use crate::listener::{Listener, RouteSource};
use crate::route::{Action, RouteConfig, VirtualHost};

/// What a cluster resolved to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClusterChildren {
    /// A leaf cluster (EDS, LOGICAL_DNS or STATIC) and its endpoints. `None` with a note when discovery has produced
    /// nothing usable yet (EDS resource missing, DNS failing).
    Endpoints {
        /// The endpoints, when known.
        endpoints: Option<Arc<EndpointSet>>,
        /// Why there are no endpoints, when there are none.
        resolution_note: Option<Arc<str>>,
    },
    /// An aggregate cluster flattened to its leaf clusters, in priority order (gRFC A75).
    Aggregate {
        /// Leaf cluster names, highest priority first; each is an entry of the same snapshot.
        leaf_clusters: Vec<Arc<str>>,
    },
}

/// A cluster with what it resolved to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// The cluster resource.
    pub cluster: Arc<Cluster>,
    /// Its endpoints or leaf clusters.
    pub children: ClusterChildren,
}

impl ClusterConfig {
    /// A leaf cluster with known endpoints.
    #[must_use]
    pub fn with_endpoints(cluster: Arc<Cluster>, endpoints: Arc<EndpointSet>) -> Self {
        Self {
            cluster,
            children: ClusterChildren::Endpoints {
                endpoints: Some(endpoints),
                resolution_note: None,
            },
        }
    }

    /// A leaf cluster without endpoints, and why.
    #[must_use]
    pub fn without_endpoints(cluster: Arc<Cluster>, note: &str) -> Self {
        Self {
            cluster,
            children: ClusterChildren::Endpoints {
                endpoints: None,
                resolution_note: Some(note.into()),
            },
        }
    }

    /// An aggregate cluster resolved to `leaf_clusters`.
    #[must_use]
    pub fn aggregate(cluster: Arc<Cluster>, leaf_clusters: Vec<Arc<str>>) -> Self {
        Self {
            cluster,
            children: ClusterChildren::Aggregate { leaf_clusters },
        }
    }
}

/// A cluster entry: its configuration, or why it has none (invalid or missing resource).
pub type ClusterEntry = Result<ClusterConfig, Arc<str>>;

/// A snapshot that would not be consistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The route configuration is not the one the listener names.
    #[error("listener {listener:?} uses route configuration {expected:?}, got {got:?}")]
    RouteConfigMismatch {
        /// The listener.
        listener: String,
        /// What it names.
        expected: String,
        /// What was given.
        got: String,
    },
    /// The listener is a server listener; client snapshots need an API listener.
    #[error("listener {listener:?} is not a client (API) listener")]
    NotAClientListener {
        /// The listener.
        listener: String,
    },
    /// No virtual host serves the target's authority.
    #[error(
        "route configuration {route_config:?}: no virtual host matches authority {authority:?}"
    )]
    NoVirtualHost {
        /// The route configuration.
        route_config: String,
        /// The authority looked up.
        authority: String,
    },
    /// A cluster the graph needs is not in the snapshot (gRFC A74: wait for it).
    #[error("cluster {cluster:?} is referenced but not present")]
    MissingCluster {
        /// The cluster.
        cluster: String,
    },
}

/// One target's whole configuration: listener, routes, clusters and endpoints, versioned.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigSnapshot {
    version: u64,
    authority: Arc<str>,
    listener: Arc<Listener>,
    route_config: Arc<RouteConfig>,
    #[serde(skip)]
    virtual_host_index: usize,
    clusters: BTreeMap<Arc<str>, ClusterEntry>,
}

impl ConfigSnapshot {
    /// Starts a snapshot for the target whose data-plane `authority` selects the virtual host.
    #[must_use]
    pub fn builder(
        authority: &str,
        listener: Arc<Listener>,
        route_config: Arc<RouteConfig>,
    ) -> SnapshotBuilder {
        SnapshotBuilder {
            authority: authority.into(),
            listener,
            route_config,
            clusters: BTreeMap::new(),
        }
    }

    /// The snapshot's version: it grows with every published snapshot of a target.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The authority the virtual host was selected for.
    #[must_use]
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The listener.
    #[must_use]
    pub fn listener(&self) -> &Arc<Listener> {
        &self.listener
    }

    /// The route configuration.
    #[must_use]
    pub fn route_config(&self) -> &Arc<RouteConfig> {
        &self.route_config
    }

    /// The virtual host serving the authority.
    #[must_use]
    pub fn virtual_host(&self) -> &VirtualHost {
        // The index was checked in `SnapshotBuilder::build` and the route configuration is immutable; a missing
        // entry cannot happen, and `first` keeps this total without panicking.
        match self.route_config.virtual_hosts.get(self.virtual_host_index) {
            Some(vhost) => vhost,
            None => self.fallback_virtual_host(),
        }
    }

    fn fallback_virtual_host(&self) -> &VirtualHost {
        #[allow(clippy::indexing_slicing)]
        // build() rejects a route configuration with no matching virtual host
        &self.route_config.virtual_hosts[0]
    }

    /// A cluster's entry: its configuration, or the reason it has none; `None` if the snapshot does not know it
    /// (a name from a `cluster_header`, say).
    #[must_use]
    pub fn cluster(&self, name: &str) -> Option<&ClusterEntry> {
        self.clusters.get(name)
    }

    /// Every cluster entry, by name.
    #[must_use]
    pub fn clusters(&self) -> &BTreeMap<Arc<str>, ClusterEntry> {
        &self.clusters
    }
}

/// Collects a snapshot's clusters and checks the graph is whole.
#[derive(Debug)]
pub struct SnapshotBuilder {
    authority: Arc<str>,
    listener: Arc<Listener>,
    route_config: Arc<RouteConfig>,
    clusters: BTreeMap<Arc<str>, ClusterEntry>,
}

impl SnapshotBuilder {
    /// Adds a cluster with its configuration.
    #[must_use]
    pub fn cluster(mut self, config: ClusterConfig) -> Self {
        self.clusters
            .insert(Arc::clone(&config.cluster.name), Ok(config));
        self
    }

    /// Adds a cluster that has no usable configuration, with the reason (gRFC A74: it fails only the requests
    /// routed to it).
    #[must_use]
    pub fn cluster_error(mut self, name: &str, reason: &str) -> Self {
        self.clusters.insert(name.into(), Err(reason.into()));
        self
    }

    /// Checks the graph and freezes it as version `version`.
    ///
    /// # Errors
    /// [`SnapshotError`] when the listener and route configuration disagree, no virtual host serves the authority,
    /// or a cluster reachable from the virtual host (directly, through a weighted split or as an aggregate's leaf)
    /// is absent.
    pub fn build(self, version: u64) -> Result<ConfigSnapshot, SnapshotError> {
        let Some(http) = self.listener.client_http() else {
            return Err(SnapshotError::NotAClientListener {
                listener: self.listener.name.to_string(),
            });
        };
        match &http.route_source {
            RouteSource::Rds(name) if **name != *self.route_config.name => {
                return Err(SnapshotError::RouteConfigMismatch {
                    listener: self.listener.name.to_string(),
                    expected: name.to_string(),
                    got: self.route_config.name.to_string(),
                });
            }
            RouteSource::Inline(inline) if **inline != *self.route_config => {
                return Err(SnapshotError::RouteConfigMismatch {
                    listener: self.listener.name.to_string(),
                    expected: inline.name.to_string(),
                    got: self.route_config.name.to_string(),
                });
            }
            _ => {}
        }
        let virtual_host_index = self
            .route_config
            .select_virtual_host_index(&self.authority)
            .ok_or_else(|| SnapshotError::NoVirtualHost {
                route_config: self.route_config.name.to_string(),
                authority: self.authority.to_string(),
            })?;
        let vhost = self
            .route_config
            .virtual_hosts
            .get(virtual_host_index)
            .ok_or_else(|| SnapshotError::NoVirtualHost {
                route_config: self.route_config.name.to_string(),
                authority: self.authority.to_string(),
            })?;
        for route in &vhost.routes {
            let Action::Route(action) = &route.action else {
                continue;
            };
            for name in action.cluster_names() {
                self.require_cluster(name)?;
            }
        }
        Ok(ConfigSnapshot {
            version,
            authority: self.authority,
            listener: self.listener,
            route_config: self.route_config,
            virtual_host_index,
            clusters: self.clusters,
        })
    }

    fn require_cluster(&self, name: &str) -> Result<(), SnapshotError> {
        let missing = || SnapshotError::MissingCluster {
            cluster: name.to_owned(),
        };
        match self.clusters.get(name).ok_or_else(missing)? {
            Ok(ClusterConfig {
                children: ClusterChildren::Aggregate { leaf_clusters },
                ..
            }) => leaf_clusters.iter().try_for_each(|leaf| {
                self.clusters
                    .get(leaf)
                    .map(|_| ())
                    .ok_or_else(|| SnapshotError::MissingCluster {
                        cluster: leaf.to_string(),
                    })
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::SocketAddr;

    use super::*;
    use crate::cluster::DiscoveryKind;
    use crate::endpoint::{Endpoint, LocalityEndpoints};
    use crate::listener::{HttpConnectionManager, ServerListener};
    use crate::locality::Locality;
    use crate::route::{Route, RouteAction, RouteMatch, WeightedCluster};

    fn listener(rds: &str) -> Arc<Listener> {
        Arc::new(Listener::client(
            "greeter",
            HttpConnectionManager::new(RouteSource::Rds(rds.into())),
        ))
    }

    fn routes() -> Arc<RouteConfig> {
        let split = RouteAction::weighted(vec![
            WeightedCluster::new("v1", 90),
            WeightedCluster::new("v2", 10),
        ])
        .unwrap();
        Arc::new(RouteConfig::new(
            "greeter-routes",
            vec![
                VirtualHost::new(
                    "other",
                    &["other"],
                    vec![Route::new(RouteMatch::any(), RouteAction::cluster("x"))],
                ),
                VirtualHost::new(
                    "greeter",
                    &["greeter"],
                    vec![
                        Route::new(RouteMatch::prefix("/admin"), RouteAction::cluster("admin")),
                        Route::new(RouteMatch::any(), split),
                    ],
                ),
            ],
        ))
    }

    fn leaf(name: &str) -> ClusterConfig {
        let addr: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        let endpoints = EndpointSet::new(
            name,
            vec![LocalityEndpoints::new(
                Locality::default(),
                0,
                1,
                vec![Endpoint::new(addr)],
            )],
        );
        ClusterConfig::with_endpoints(Arc::new(Cluster::eds(name)), Arc::new(endpoints))
    }

    #[test]
    fn a_complete_graph_builds_and_selects_the_virtual_host() {
        let snapshot = ConfigSnapshot::builder("greeter", listener("greeter-routes"), routes())
            .cluster(leaf("admin"))
            .cluster(leaf("v1"))
            .cluster(leaf("v2"))
            .build(7)
            .unwrap();
        assert_eq!(snapshot.version(), 7);
        assert_eq!(&*snapshot.virtual_host().name, "greeter");
        assert!(matches!(snapshot.cluster("v2"), Some(Ok(_))));
        assert!(
            snapshot.cluster("x").is_none(),
            "clusters of other virtual hosts are not required"
        );
    }

    #[test]
    fn a_missing_cluster_holds_the_snapshot_back() {
        let err = ConfigSnapshot::builder("greeter", listener("greeter-routes"), routes())
            .cluster(leaf("admin"))
            .cluster(leaf("v1"))
            .build(1)
            .unwrap_err();
        assert_eq!(
            err,
            SnapshotError::MissingCluster {
                cluster: "v2".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "cluster \"v2\" is referenced but not present"
        );
    }

    #[test]
    fn a_failed_cluster_is_an_entry_and_does_not_hold_the_snapshot_back() {
        let snapshot = ConfigSnapshot::builder("greeter", listener("greeter-routes"), routes())
            .cluster(leaf("admin"))
            .cluster(leaf("v1"))
            .cluster_error("v2", "cluster \"v2\" does not exist")
            .build(1)
            .unwrap();
        assert_eq!(
            snapshot.cluster("v2"),
            Some(&Err("cluster \"v2\" does not exist".into()))
        );
    }

    #[test]
    fn aggregate_leaves_must_be_present() {
        let aggregate = Arc::new(Cluster::new(
            "v1",
            DiscoveryKind::Aggregate {
                clusters: vec!["v1-east".into(), "v1-west".into()],
            },
        ));
        let builder = ConfigSnapshot::builder("greeter", listener("greeter-routes"), routes())
            .cluster(leaf("admin"))
            .cluster(leaf("v2"))
            .cluster(ClusterConfig::aggregate(
                aggregate,
                vec!["v1-east".into(), "v1-west".into()],
            ))
            .cluster(leaf("v1-east"));
        let err = builder.build(1).unwrap_err();
        assert_eq!(
            err,
            SnapshotError::MissingCluster {
                cluster: "v1-west".into()
            }
        );
    }

    #[test]
    fn listener_and_routes_must_agree() {
        let err = ConfigSnapshot::builder("greeter", listener("other-routes"), routes())
            .build(1)
            .unwrap_err();
        assert!(
            matches!(err, SnapshotError::RouteConfigMismatch { .. }),
            "{err}"
        );

        let server = Arc::new(Listener::server(
            "srv",
            ServerListener::new("127.0.0.1:1".parse().unwrap(), Vec::new()),
        ));
        let err = ConfigSnapshot::builder("greeter", server, routes())
            .build(1)
            .unwrap_err();
        assert_eq!(
            err,
            SnapshotError::NotAClientListener {
                listener: "srv".into()
            }
        );
    }

    #[test]
    fn an_authority_without_a_virtual_host_is_an_error() {
        let err = ConfigSnapshot::builder("unknown", listener("greeter-routes"), routes())
            .build(1)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "route configuration \"greeter-routes\": no virtual host matches authority \"unknown\""
        );
    }

    #[test]
    fn inline_routes_must_be_the_given_ones() {
        let inline = Arc::new(Listener::client(
            "greeter",
            HttpConnectionManager::new(RouteSource::Inline(routes())),
        ));
        let snapshot = ConfigSnapshot::builder("greeter", Arc::clone(&inline), routes())
            .cluster(leaf("admin"))
            .cluster(leaf("v1"))
            .cluster(leaf("v2"))
            .build(2);
        assert!(snapshot.is_ok());
        let other = Arc::new(RouteConfig::new("greeter-routes", Vec::new()));
        assert!(
            ConfigSnapshot::builder("greeter", inline, other)
                .build(2)
                .is_err()
        );
    }

    #[test]
    fn a_snapshot_serializes_for_config_dumps() {
        let snapshot = ConfigSnapshot::builder("greeter", listener("greeter-routes"), routes())
            .cluster(leaf("admin"))
            .cluster(leaf("v1"))
            .cluster(leaf("v2"))
            .build(3)
            .unwrap();
        let json = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(json["version"], 3);
        assert_eq!(json["route_config"]["virtual_hosts"][1]["name"], "greeter");
        assert_eq!(json["clusters"]["v1"]["Ok"]["cluster"]["name"], "v1");
    }
}
