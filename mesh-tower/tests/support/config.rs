//! Snapshot builders for tests.

use std::net::SocketAddr;
use std::sync::Arc;

use mesh_core::cluster::{Cluster, LbPolicy};
use mesh_core::endpoint::{Endpoint, EndpointSet, LocalityEndpoints};
use mesh_core::listener::{
    HttpConnectionManager, HttpFilter, HttpFilterConfig, Listener, RouteSource,
};
use mesh_core::locality::Locality;
use mesh_core::route::{FaultInjection, Route, RouteAction, RouteConfig, RouteMatch, VirtualHost};
use mesh_core::snapshot::{ClusterConfig, ConfigSnapshot};

pub const AUTHORITY: &str = "svc";

/// A locality: priority, weight and endpoint addresses.
pub struct Loc {
    pub zone: &'static str,
    pub priority: u32,
    pub weight: u32,
    pub endpoints: Vec<SocketAddr>,
}

pub fn loc(zone: &'static str, priority: u32, endpoints: Vec<SocketAddr>) -> Loc {
    Loc {
        zone,
        priority,
        weight: 1,
        endpoints,
    }
}

/// The endpoint set of `name`.
pub fn endpoint_set(name: &str, localities: Vec<Loc>) -> Arc<EndpointSet> {
    Arc::new(EndpointSet::new(
        name,
        localities
            .into_iter()
            .map(|l| {
                LocalityEndpoints::new(
                    Locality::new("r", l.zone, ""),
                    l.priority,
                    l.weight,
                    l.endpoints.into_iter().map(Endpoint::new).collect(),
                )
            })
            .collect(),
    ))
}

/// A leaf cluster config.
pub fn leaf(cluster: Cluster, localities: Vec<Loc>) -> ClusterConfig {
    let set = endpoint_set(&cluster.name, localities);
    ClusterConfig::with_endpoints(Arc::new(cluster), set)
}

/// A cluster with `policy` and defaults otherwise.
pub fn cluster(name: &str, policy: LbPolicy) -> Cluster {
    Cluster::eds(name).with_lb_policy(policy)
}

/// A snapshot with one virtual host (`*`) holding `routes`, the given clusters, and optional HCM settings.
pub fn snapshot(
    version: u64,
    vhost: VirtualHost,
    clusters: Vec<ClusterConfig>,
    fault: Option<FaultInjection>,
) -> Arc<ConfigSnapshot> {
    let routes = Arc::new(RouteConfig::new("routes", vec![vhost]));
    let mut filters = Vec::new();
    if let Some(fault) = fault {
        filters.push(HttpFilter::new(
            "envoy.filters.http.fault",
            HttpFilterConfig::Fault(fault),
        ));
    }
    filters.push(HttpFilter::router());
    let hcm =
        HttpConnectionManager::new(RouteSource::Rds("routes".into())).with_http_filters(filters);
    let listener = Arc::new(Listener::client(AUTHORITY, hcm));
    let mut builder = ConfigSnapshot::builder(AUTHORITY, listener, routes);
    for cluster in clusters {
        builder = builder.cluster(cluster);
    }
    Arc::new(builder.build(version).unwrap())
}

/// A virtual host with the given routes.
pub fn vhost(routes: Vec<Route>) -> VirtualHost {
    VirtualHost::new("vh", &["*"], routes)
}

/// A route sending everything to `cluster`.
pub fn to(cluster: &str) -> Route {
    Route::new(RouteMatch::any(), RouteAction::cluster(cluster))
}

/// A route sending everything through `action`.
pub fn with(action: RouteAction) -> Route {
    Route::new(RouteMatch::any(), action)
}
