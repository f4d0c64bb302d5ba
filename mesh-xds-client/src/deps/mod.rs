//! The dependency manager (gRFC A74): from one listener name to one complete, consistent config snapshot.
//!
//! A target's configuration is a graph: Listener -> RouteConfiguration -> Clusters (aggregate clusters expand into
//! their children) -> endpoints (EDS, or DNS for LOGICAL_DNS clusters). gRFC A74 requires a client to publish a
//! configuration only when the whole graph is present, so a request never sees a route to a cluster that has not
//! arrived, and to republish the whole graph atomically on every change. [`DependencyManager`] does that without
//! I/O: it is told about resource events and DNS results, and answers with [`Action`]s: what to subscribe to or stop
//! watching, which names to resolve, and snapshots (or target-wide errors) to publish.
//!
//! Not here: the protocol (versions, nonces, timers; see [`crate::protocol`]) and I/O (the worker drives this).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use mesh_core::cluster::{Cluster, DiscoveryKind};
use mesh_core::endpoint::{Endpoint, EndpointSet, LocalityEndpoints};
use mesh_core::listener::{Listener, RouteSource};
use mesh_core::locality::Locality;
use mesh_core::route::{Action as RouteActionKind, RouteConfig};
use mesh_core::snapshot::{ClusterChildren, ClusterConfig, ClusterEntry, ConfigSnapshot};

use crate::resource::{Resource, ResourceKind};

#[cfg(test)]
mod tests;

/// How deep aggregate clusters may nest (gRFC A37 sets a limit of 16 levels).
pub const MAX_AGGREGATE_DEPTH: usize = 16;

/// What happened to a watched resource.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ResourceEvent {
    /// A new validated value.
    Changed(Resource),
    /// The resource is invalid. `ambient` (gRFC A88): a cached value exists and keeps serving, so the graph is
    /// unchanged; otherwise the resource has no usable value.
    Error {
        /// What is wrong, for operators.
        error: Arc<str>,
        /// Whether a previous value keeps serving.
        ambient: bool,
    },
    /// The control plane says the resource does not exist (or the does-not-exist timer fired).
    DoesNotExist,
}

/// Why a target has no configuration at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(pub Arc<str>);

/// What the dependency manager asks its driver to do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Action {
    /// Start watching a resource.
    Subscribe(ResourceKind, String),
    /// Stop watching a resource.
    Unsubscribe(ResourceKind, String),
    /// Start resolving `host:port` for a LOGICAL_DNS cluster (and keep re-resolving it).
    ResolveDns {
        /// The cluster.
        cluster: String,
        /// The host name.
        host: Arc<str>,
        /// The port.
        port: u16,
    },
    /// Stop resolving for a cluster.
    StopDns {
        /// The cluster.
        cluster: String,
    },
    /// A new complete configuration, or why the target has none.
    Publish(Result<Arc<ConfigSnapshot>, TargetError>),
}

/// The last known state of one watched resource.
#[derive(Debug, Clone, PartialEq)]
enum Watched<T> {
    Pending,
    Value(T),
    Failed(Arc<str>),
}

impl<T> Watched<T> {
    fn apply(
        &mut self,
        event: ResourceEvent,
        extract: impl FnOnce(Resource) -> Option<T>,
        kind: ResourceKind,
    ) {
        match event {
            ResourceEvent::Changed(resource) => match extract(resource) {
                Some(value) => *self = Watched::Value(value),
                None => {
                    *self = Watched::Failed(
                        format!("{kind}: received a resource of another kind").into(),
                    );
                }
            },
            // gRFC A88: an ambient error leaves the cached value serving.
            ResourceEvent::Error { ambient: true, .. } if matches!(self, Watched::Value(_)) => {}
            ResourceEvent::Error { error, .. } => *self = Watched::Failed(error),
            ResourceEvent::DoesNotExist => {
                *self = Watched::Failed(format!("{kind} resource does not exist").into());
            }
        }
    }
}

/// A DNS watch of a LOGICAL_DNS cluster.
#[derive(Debug, Clone, PartialEq)]
struct DnsWatch {
    host: Arc<str>,
    port: u16,
    result: Watched<Arc<EndpointSet>>,
}

/// Follows one target's resource graph and publishes complete snapshots (gRFC A74).
#[derive(Debug)]
pub struct DependencyManager {
    authority: Arc<str>,
    listener_name: String,
    listener: Watched<Arc<Listener>>,
    route_name: Option<String>,
    route_config: Watched<Arc<RouteConfig>>,
    clusters: BTreeMap<String, Watched<Arc<Cluster>>>,
    endpoints: BTreeMap<String, Watched<Arc<EndpointSet>>>,
    dns: BTreeMap<String, DnsWatch>,
    version: u64,
    published: Option<Result<Arc<ConfigSnapshot>, TargetError>>,
    actions: Vec<Action>,
}

impl DependencyManager {
    /// Starts following the listener `listener_name`; the target's data-plane `authority` selects the virtual host.
    /// The first action asks to subscribe to the listener.
    #[must_use]
    pub fn new(listener_name: &str, authority: &str) -> Self {
        Self {
            authority: authority.into(),
            listener_name: listener_name.to_owned(),
            listener: Watched::Pending,
            route_name: None,
            route_config: Watched::Pending,
            clusters: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            dns: BTreeMap::new(),
            version: 0,
            published: None,
            actions: vec![Action::Subscribe(
                ResourceKind::Listener,
                listener_name.to_owned(),
            )],
        }
    }

    /// The listener this manager follows.
    #[must_use]
    pub fn listener_name(&self) -> &str {
        &self.listener_name
    }

    /// The actions produced since the last call, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// The last published configuration or error, if any.
    #[must_use]
    pub fn current(&self) -> Option<&Result<Arc<ConfigSnapshot>, TargetError>> {
        self.published.as_ref()
    }

    /// Every resource this manager currently watches.
    #[must_use]
    pub fn watched(&self) -> BTreeSet<(ResourceKind, String)> {
        let mut out = BTreeSet::new();
        out.insert((ResourceKind::Listener, self.listener_name.clone()));
        if let Some(route) = &self.route_name {
            out.insert((ResourceKind::RouteConfiguration, route.clone()));
        }
        out.extend(
            self.clusters
                .keys()
                .map(|c| (ResourceKind::Cluster, c.clone())),
        );
        out.extend(
            self.endpoints
                .keys()
                .map(|e| (ResourceKind::ClusterLoadAssignment, e.clone())),
        );
        out
    }

    /// A resource event for `(kind, name)`. Events for resources this manager does not watch are ignored.
    pub fn on_resource(&mut self, kind: ResourceKind, name: &str, event: ResourceEvent) {
        match kind {
            ResourceKind::Listener if name == self.listener_name => self.listener.apply(
                event,
                |r| match r {
                    Resource::Listener(l) => Some(l),
                    _ => None,
                },
                kind,
            ),
            ResourceKind::RouteConfiguration if self.route_name.as_deref() == Some(name) => {
                self.route_config.apply(
                    event,
                    |r| match r {
                        Resource::RouteConfiguration(rc) => Some(rc),
                        _ => None,
                    },
                    kind,
                );
            }
            ResourceKind::Cluster => match self.clusters.get_mut(name) {
                Some(watched) => watched.apply(
                    event,
                    |r| match r {
                        Resource::Cluster(c) => Some(c),
                        _ => None,
                    },
                    kind,
                ),
                None => return,
            },
            ResourceKind::ClusterLoadAssignment => match self.endpoints.get_mut(name) {
                Some(watched) => watched.apply(
                    event,
                    |r| match r {
                        Resource::ClusterLoadAssignment(e) => Some(e),
                        _ => None,
                    },
                    kind,
                ),
                None => return,
            },
            _ => return,
        }
        self.update();
    }

    /// The result of resolving a LOGICAL_DNS cluster's host. Each address becomes an endpoint of one locality
    /// (gRFC A27: a LOGICAL_DNS cluster has a single locality).
    pub fn on_dns(&mut self, cluster: &str, result: Result<Vec<SocketAddr>, String>) {
        let Some(watch) = self.dns.get_mut(cluster) else {
            return;
        };
        watch.result = match result {
            Ok(addresses) if addresses.is_empty() => Watched::Failed(
                format!(
                    "DNS resolution of {}:{} returned no addresses",
                    watch.host, watch.port
                )
                .into(),
            ),
            Ok(addresses) => {
                let endpoints = addresses
                    .into_iter()
                    .map(|a| Endpoint::new(SocketAddr::new(a.ip(), watch.port)))
                    .collect();
                let set = EndpointSet::new(
                    cluster,
                    vec![LocalityEndpoints::new(Locality::default(), 0, 1, endpoints)],
                );
                Watched::Value(Arc::new(set))
            }
            // A failed re-resolution keeps the last good addresses serving.
            Err(_) if matches!(watch.result, Watched::Value(_)) => return,
            Err(error) => Watched::Failed(
                format!(
                    "DNS resolution of {}:{} failed: {error}",
                    watch.host, watch.port
                )
                .into(),
            ),
        };
        self.update();
    }

    /// Recomputes subscriptions from the graph, then publishes if the graph is complete and changed.
    fn update(&mut self) {
        self.update_subscriptions();
        self.try_publish();
    }

    fn route_source(&self) -> Option<&RouteSource> {
        match &self.listener {
            Watched::Value(listener) => listener.client_http().map(|http| &http.route_source),
            _ => None,
        }
    }

    fn current_route_config(&self) -> Option<Arc<RouteConfig>> {
        match self.route_source()? {
            RouteSource::Inline(rc) => Some(Arc::clone(rc)),
            RouteSource::Rds(_) => match &self.route_config {
                Watched::Value(rc) => Some(Arc::clone(rc)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The clusters the selected virtual host can route to, in first-seen order.
    fn root_clusters(&self) -> Vec<String> {
        let Some(rc) = self.current_route_config() else {
            return Vec::new();
        };
        let Some(vhost) = rc.select_virtual_host(&self.authority) else {
            return Vec::new();
        };
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for route in &vhost.routes {
            if let RouteActionKind::Route(action) = &route.action {
                for name in action.cluster_names() {
                    if seen.insert(name.to_string()) {
                        out.push(name.to_string());
                    }
                }
            }
        }
        out
    }

    fn update_subscriptions(&mut self) {
        // RDS name.
        let wanted_route = match self.route_source() {
            Some(RouteSource::Rds(name)) => Some(name.to_string()),
            _ => None,
        };
        if wanted_route != self.route_name {
            if let Some(old) = self.route_name.take() {
                self.actions
                    .push(Action::Unsubscribe(ResourceKind::RouteConfiguration, old));
            }
            if let Some(new) = &wanted_route {
                self.actions.push(Action::Subscribe(
                    ResourceKind::RouteConfiguration,
                    new.clone(),
                ));
            }
            self.route_name = wanted_route;
            self.route_config = Watched::Pending;
        }

        // Clusters: the roots, and every cluster reachable through aggregates (bounded by depth; cycles stop).
        let mut wanted_clusters = BTreeSet::new();
        let mut stack: Vec<(String, usize)> =
            self.root_clusters().into_iter().map(|c| (c, 0)).collect();
        while let Some((name, depth)) = stack.pop() {
            if depth > MAX_AGGREGATE_DEPTH || !wanted_clusters.insert(name.clone()) {
                continue;
            }
            if let Some(Watched::Value(cluster)) = self.clusters.get(&name)
                && let DiscoveryKind::Aggregate { clusters } = &cluster.discovery
            {
                stack.extend(clusters.iter().map(|c| (c.to_string(), depth + 1)));
            }
        }
        let current: BTreeSet<String> = self.clusters.keys().cloned().collect();
        for gone in current.difference(&wanted_clusters) {
            self.clusters.remove(gone);
            self.actions
                .push(Action::Unsubscribe(ResourceKind::Cluster, gone.clone()));
        }
        for new in wanted_clusters.difference(&current) {
            self.clusters.insert(new.clone(), Watched::Pending);
            self.actions
                .push(Action::Subscribe(ResourceKind::Cluster, new.clone()));
        }

        // Endpoints (EDS) and DNS for the leaf clusters that have arrived.
        let mut wanted_eds = BTreeSet::new();
        let mut wanted_dns = BTreeMap::new();
        for (name, watched) in &self.clusters {
            let Watched::Value(cluster) = watched else {
                continue;
            };
            match &cluster.discovery {
                DiscoveryKind::Eds { .. } => {
                    if let Some(service) = cluster.eds_service_name() {
                        wanted_eds.insert(service.to_owned());
                    }
                }
                DiscoveryKind::LogicalDns { host, port } => {
                    wanted_dns.insert(name.clone(), (Arc::clone(host), *port));
                }
                _ => {}
            }
        }
        let current_eds: BTreeSet<String> = self.endpoints.keys().cloned().collect();
        for gone in current_eds.difference(&wanted_eds) {
            self.endpoints.remove(gone);
            self.actions.push(Action::Unsubscribe(
                ResourceKind::ClusterLoadAssignment,
                gone.clone(),
            ));
        }
        for new in wanted_eds.difference(&current_eds) {
            self.endpoints.insert(new.clone(), Watched::Pending);
            self.actions.push(Action::Subscribe(
                ResourceKind::ClusterLoadAssignment,
                new.clone(),
            ));
        }
        let stale: Vec<String> = self
            .dns
            .iter()
            .filter(|(cluster, watch)| {
                wanted_dns
                    .get(*cluster)
                    .is_none_or(|(host, port)| *host != watch.host || *port != watch.port)
            })
            .map(|(cluster, _)| cluster.clone())
            .collect();
        for cluster in stale {
            self.dns.remove(&cluster);
            self.actions.push(Action::StopDns { cluster });
        }
        for (cluster, (host, port)) in wanted_dns {
            if self.dns.contains_key(&cluster) {
                continue;
            }
            self.actions.push(Action::ResolveDns {
                cluster: cluster.clone(),
                host: Arc::clone(&host),
                port,
            });
            self.dns.insert(
                cluster,
                DnsWatch {
                    host,
                    port,
                    result: Watched::Pending,
                },
            );
        }
    }

    fn try_publish(&mut self) {
        // Incomplete: gRFC A74 waits.
        let Some(outcome) = self.build() else { return };
        let unchanged = match (&self.published, &outcome) {
            (Some(Ok(old)), Ok(new)) => {
                old.listener() == &new.listener
                    && old.route_config() == &new.route_config
                    && old.clusters().len() == new.clusters.len()
                    && old.clusters().iter().zip(&new.clusters).all(
                        |((old_name, old_entry), (new_name, new_entry))| {
                            **old_name == **new_name && old_entry == new_entry
                        },
                    )
            }
            (Some(Err(old)), Err(new)) => old == new,
            _ => false,
        };
        if unchanged {
            return;
        }
        let published = match outcome {
            Ok(parts) => {
                let mut builder =
                    ConfigSnapshot::builder(&self.authority, parts.listener, parts.route_config);
                for (name, entry) in parts.clusters {
                    builder = match entry {
                        Ok(config) => builder.cluster(config),
                        Err(reason) => builder.cluster_error(&name, &reason),
                    };
                }
                self.version += 1;
                builder
                    .build(self.version)
                    .map(Arc::new)
                    .map_err(|e| TargetError(e.to_string().into()))
            }
            Err(error) => Err(error),
        };
        self.actions.push(Action::Publish(published.clone()));
        self.published = Some(published);
    }

    /// The graph's parts when complete; `None` while something is pending; `Err` when the target cannot work.
    fn build(&self) -> Option<Result<Parts, TargetError>> {
        let listener = match &self.listener {
            Watched::Pending => return None,
            Watched::Failed(error) => {
                return Some(Err(TargetError(
                    format!("listener {:?}: {error}", self.listener_name).into(),
                )));
            }
            Watched::Value(listener) => Arc::clone(listener),
        };
        let Some(source) = listener.client_http().map(|http| &http.route_source) else {
            return Some(Err(TargetError(
                format!("listener {:?} is not an API listener", self.listener_name).into(),
            )));
        };
        let route_config = match source {
            RouteSource::Inline(rc) => Arc::clone(rc),
            RouteSource::Rds(name) => match &self.route_config {
                Watched::Pending => return None,
                Watched::Failed(error) => {
                    return Some(Err(TargetError(
                        format!("route configuration {name:?}: {error}").into(),
                    )));
                }
                Watched::Value(rc) => Arc::clone(rc),
            },
            _ => {
                return Some(Err(TargetError(
                    format!(
                        "listener {:?}: unsupported route source",
                        self.listener_name
                    )
                    .into(),
                )));
            }
        };
        if route_config.select_virtual_host(&self.authority).is_none() {
            return Some(Err(TargetError(
                format!(
                    "route configuration {:?}: no virtual host matches authority {:?}",
                    route_config.name, self.authority
                )
                .into(),
            )));
        }
        let mut clusters = BTreeMap::new();
        for root in self.root_clusters() {
            if !self.resolve_cluster(&root, &mut Vec::new(), &mut clusters) {
                return None;
            }
        }
        Some(Ok(Parts {
            listener,
            route_config,
            clusters,
        }))
    }

    /// Adds `name`'s entry (and its descendants') to `out`; false while something it needs is pending.
    fn resolve_cluster(
        &self,
        name: &str,
        path: &mut Vec<String>,
        out: &mut BTreeMap<String, ClusterEntry>,
    ) -> bool {
        if out.contains_key(name) {
            return true;
        }
        if path.len() > MAX_AGGREGATE_DEPTH {
            out.insert(
                name.to_owned(),
                Err(format!(
                    "aggregate cluster graph deeper than {MAX_AGGREGATE_DEPTH} at cluster {name:?}"
                )
                .into()),
            );
            return true;
        }
        let cluster = match self.clusters.get(name) {
            None | Some(Watched::Pending) => return false,
            Some(Watched::Failed(error)) => {
                out.insert(
                    name.to_owned(),
                    Err(format!("cluster {name:?}: {error}").into()),
                );
                return true;
            }
            Some(Watched::Value(cluster)) => Arc::clone(cluster),
        };
        // Cloned so the cluster can move into its entry; this runs per config change, not per request.
        let discovery = cluster.discovery.clone();
        let entry = match &discovery {
            DiscoveryKind::Eds { .. } => {
                let service = cluster.eds_service_name().unwrap_or(name).to_owned();
                match self.endpoints.get(&service) {
                    None | Some(Watched::Pending) => return false,
                    Some(Watched::Value(set)) => {
                        Ok(ClusterConfig::with_endpoints(cluster, Arc::clone(set)))
                    }
                    Some(Watched::Failed(error)) => Ok(ClusterConfig::without_endpoints(
                        cluster,
                        &format!("endpoints {service:?}: {error}"),
                    )),
                }
            }
            DiscoveryKind::LogicalDns { .. } => match self.dns.get(name).map(|d| &d.result) {
                None | Some(Watched::Pending) => return false,
                Some(Watched::Value(set)) => {
                    Ok(ClusterConfig::with_endpoints(cluster, Arc::clone(set)))
                }
                Some(Watched::Failed(error)) => {
                    Ok(ClusterConfig::without_endpoints(cluster, error))
                }
            },
            DiscoveryKind::Static { endpoints } => {
                let endpoints = Arc::clone(endpoints);
                Ok(ClusterConfig::with_endpoints(cluster, endpoints))
            }
            DiscoveryKind::Aggregate { clusters: children } => {
                if path.iter().any(|p| p == name) {
                    out.insert(
                        name.to_owned(),
                        Err(format!("aggregate cluster {name:?} is part of a cycle").into()),
                    );
                    return true;
                }
                path.push(name.to_owned());
                let mut complete = true;
                for child in children {
                    complete &= self.resolve_cluster(child, path, out);
                }
                path.pop();
                if !complete {
                    return false;
                }
                let mut leaves = Vec::new();
                for child in children {
                    collect_leaves(child, out, &mut leaves, 0);
                }
                if leaves.is_empty() {
                    Err(format!("aggregate cluster {name:?} has no usable leaf cluster").into())
                } else {
                    Ok(ClusterConfig::aggregate(cluster, leaves))
                }
            }
            _ => Err(format!("cluster {name:?}: unsupported discovery type").into()),
        };
        out.insert(name.to_owned(), entry);
        true
    }
}

/// gRFC A75: an aggregate cluster's priority list is its children's leaves, depth first, in order, without
/// duplicates; children that failed are skipped.
fn collect_leaves(
    name: &str,
    entries: &BTreeMap<String, ClusterEntry>,
    leaves: &mut Vec<Arc<str>>,
    depth: usize,
) {
    if depth > MAX_AGGREGATE_DEPTH {
        return;
    }
    match entries.get(name) {
        Some(Ok(ClusterConfig {
            children: ClusterChildren::Aggregate { leaf_clusters },
            ..
        })) => {
            for leaf in leaf_clusters {
                if !leaves.contains(leaf) {
                    leaves.push(Arc::clone(leaf));
                }
            }
        }
        Some(Ok(ClusterConfig {
            children: ClusterChildren::Endpoints { .. },
            ..
        })) if !leaves.iter().any(|l| &**l == name) => leaves.push(name.into()),
        _ => {}
    }
}

/// A complete graph, before it becomes a snapshot.
struct Parts {
    listener: Arc<Listener>,
    route_config: Arc<RouteConfig>,
    clusters: BTreeMap<String, ClusterEntry>,
}
