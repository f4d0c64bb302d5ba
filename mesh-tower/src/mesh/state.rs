//! The routing state of one snapshot, built off the request path and swapped in whole.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::uri::Authority;
use mesh_core::listener::HttpFilterConfig;
use mesh_core::route::FaultInjection;
use mesh_core::snapshot::{ClusterChildren, ConfigSnapshot};

use crate::cluster::{LeafCluster, Target};
use crate::error::MeshError;
use crate::runtime::Runtime;

/// What requests read: nothing yet, a failure, or a routing state.
#[derive(Debug)]
pub(crate) enum ConfigState {
    /// No configuration has arrived.
    Waiting,
    /// The target's configuration failed.
    Failed(Arc<str>),
    /// Ready to route.
    Ready(RoutingState),
}

/// One snapshot prepared for routing: targets by cluster name and the listener-level settings.
#[derive(Debug)]
pub(crate) struct RoutingState {
    pub(crate) snapshot: Arc<ConfigSnapshot>,
    pub(crate) targets: HashMap<Arc<str>, Target, NameHasher>,
    /// The `:authority` sent upstream when the request has none: the target's.
    pub(crate) authority: Option<Authority>,
    /// The HTTP connection manager's `max_stream_duration`.
    pub(crate) listener_max: Option<Duration>,
    /// The listener's fault filter, if it has one.
    pub(crate) fault_filter: Option<FaultInjection>,
    /// gRFC A42 channel-id hash.
    pub(crate) channel_id: u64,
}

impl RoutingState {
    /// The target named `name`.
    pub(crate) fn target(&self, name: &Arc<str>) -> Result<&Target, MeshError> {
        self.targets
            .get(name)
            .ok_or_else(|| MeshError::ClusterFailed {
                cluster: Arc::clone(name),
                reason: "not in the configuration".into(),
            })
    }
}

/// Hashes cluster names for the per-request lookup with FNV-1a: a few instructions per byte where the default
/// SipHash costs a few hundred per lookup. The table is built from configuration and only read per request, so
/// SipHash's resistance to crafted keys buys nothing here (a request's header can name a cluster, but only to look
/// it up).
pub(crate) type NameHasher = std::hash::BuildHasherDefault<Fnv1a>;

/// The FNV-1a hash; see [`NameHasher`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The leaf clusters of the service, by name: kept across snapshots so their state carries over.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    leaves: Mutex<HashMap<Arc<str>, Arc<LeafCluster>>>,
}

impl Registry {
    /// Updates the leaf clusters to `snapshot` and builds its routing state. Clusters that left the snapshot are
    /// dropped here; requests in flight keep theirs until they finish.
    pub(crate) fn build(
        &self,
        snapshot: &Arc<ConfigSnapshot>,
        runtime: &Arc<Runtime>,
    ) -> RoutingState {
        let mut leaves = self.leaves.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next: HashMap<Arc<str>, Arc<LeafCluster>> = HashMap::new();
        for (name, entry) in snapshot.clusters() {
            let Ok(config) = entry else { continue };
            let ClusterChildren::Endpoints {
                endpoints,
                resolution_note,
            } = &config.children
            else {
                continue;
            };
            let leaf = leaves
                .remove(name)
                .unwrap_or_else(|| LeafCluster::new(&config.cluster, runtime));
            leaf.apply(
                &config.cluster,
                endpoints.as_ref(),
                resolution_note.as_ref(),
            );
            next.insert(Arc::clone(name), leaf);
        }
        let mut targets =
            HashMap::with_capacity_and_hasher(snapshot.clusters().len(), NameHasher::default());
        for (name, entry) in snapshot.clusters() {
            let target = match entry {
                Err(reason) => Target::Failed {
                    name: Arc::clone(name),
                    reason: Arc::clone(reason),
                },
                Ok(config) => match &config.children {
                    ClusterChildren::Aggregate { leaf_clusters } => Target::Aggregate {
                        name: Arc::clone(name),
                        leaves: leaf_clusters
                            .iter()
                            .map(|leaf| match next.get(leaf) {
                                Some(cluster) => Ok(Arc::clone(cluster)),
                                None => Err((Arc::clone(leaf), leaf_problem(snapshot, leaf))),
                            })
                            .collect(),
                    },
                    _ => match next.get(name) {
                        Some(leaf) => Target::Leaf(Arc::clone(leaf)),
                        None => Target::Failed {
                            name: Arc::clone(name),
                            reason: "unsupported cluster kind".into(),
                        },
                    },
                },
            };
            targets.insert(Arc::clone(name), target);
        }
        *leaves = next;
        let http = snapshot.listener().client_http();
        RoutingState {
            snapshot: Arc::clone(snapshot),
            targets,
            authority: Authority::try_from(snapshot.authority()).ok(),
            listener_max: http.and_then(|h| h.max_stream_duration),
            fault_filter: http.and_then(|h| {
                h.http_filters
                    .iter()
                    .find_map(|filter| match &filter.config {
                        HttpFilterConfig::Fault(fault) => Some(fault.clone()),
                        _ => None,
                    })
            }),
            channel_id: runtime.channel_id,
        }
    }

    /// Drops every leaf cluster (the configuration failed or was withdrawn).
    pub(crate) fn clear(&self) {
        self.leaves
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

fn leaf_problem(snapshot: &ConfigSnapshot, leaf: &str) -> Arc<str> {
    match snapshot.cluster(leaf) {
        Some(Err(reason)) => Arc::clone(reason),
        Some(Ok(_)) => "is itself an aggregate cluster".into(),
        None => "not in the configuration".into(),
    }
}
