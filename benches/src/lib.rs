//! # mesh-benches
//!
//! Criterion benchmarks of the request path's hot spots, run with `cargo bench -p mesh-benches`:
//!
//! - `endpoint_pick`: one pick (drop overloads, priority, locality by weight, endpoint by weight) over endpoint sets
//!   of 10, 1,000 and 10,000 endpoints. The pick is O(1): the 10,000 case should cost no more than twice the 10 case.
//! - `route_match`: virtual-host selection and first-match route lookup in a 100-route table.
//! - `xds_eds`: decoding, validating and publishing (gRFC A74) an EDS update of 10,000 endpoints, and the memory
//!   of the resulting `EndpointSet` per endpoint (fixtures in [`eds`]).
//! - `request_path`: the whole `mesh_tower::MeshService` against a direct hyper HTTP/2 client to the same loopback
//!   server, side by side: latency at concurrency 1 and throughput at concurrency 64, with their ratios, against a
//!   bare hyper client and against the same client configured as the mesh configures its connections (keep-alive
//!   pings). `--count` runs a fixed number of requests of one side, for instruction counts (callgrind) and CPU
//!   time per request (`perf stat`).
//!
//! The library part holds the fixtures the benchmarks share, so they are type-checked with the workspace and cannot
//! rot. Not for: asserting speed. Benchmarks report; tests never time anything.

pub mod eds;

use std::net::{Ipv4Addr, SocketAddr};

use mesh_core::endpoint::{Endpoint, EndpointSet, LocalityEndpoints};
use mesh_core::locality::Locality;
use mesh_core::route::{
    HeaderMatcher, Route, RouteAction, RouteConfig, RouteMatch, VirtualHost, WeightedCluster,
};

/// An endpoint set of `endpoints` endpoints in two priorities: priority 0 holds them all, spread over localities of
/// up to 100 endpoints with varied locality and endpoint weights; priority 1 holds one backup locality.
#[must_use]
pub fn endpoint_set(endpoints: usize) -> EndpointSet {
    let per_locality = endpoints.clamp(1, 100);
    let locality_count = endpoints.div_ceil(per_locality).max(1);
    let mut localities = Vec::with_capacity(locality_count + 1);
    let mut made = 0usize;
    for l in 0..locality_count {
        let here = per_locality.min(endpoints - made);
        let eps = (0..here)
            .map(|i| {
                let n = made + i;
                let octets = u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
                let addr =
                    SocketAddr::from((Ipv4Addr::new(10, octets[1], octets[2], octets[3]), 8080));
                Endpoint::new(addr).with_weight(u32::try_from(1 + n % 7).unwrap_or(1))
            })
            .collect();
        made += here;
        let zone = format!("zone-{l}");
        localities.push(LocalityEndpoints::new(
            Locality::new("region", &zone, ""),
            0,
            u32::try_from(1 + l % 5).unwrap_or(1),
            eps,
        ));
    }
    localities.push(LocalityEndpoints::new(
        Locality::new("backup", "backup-a", ""),
        1,
        1,
        vec![Endpoint::new(SocketAddr::from(([192, 168, 0, 1], 8080)))],
    ));
    EndpointSet::new("bench", localities)
}

/// A route configuration with one virtual host of 100 routes, shaped like a gRPC service table: 90 exact method
/// paths (some also matching a header), 9 service prefixes, and a catch-all with a weighted canary split. Also a few
/// decoy virtual hosts so that domain selection has work to do.
#[must_use]
pub fn route_config_100() -> RouteConfig {
    let mut routes = Vec::with_capacity(100);
    for service in 0..9 {
        for method in 0..10 {
            let path = format!("/pkg.Service{service}/Method{method}");
            let mut matcher = RouteMatch::exact(&path);
            if method % 3 == 0 {
                matcher = matcher.with_header(HeaderMatcher::exact("x-tenant", "gold"));
            }
            routes.push(Route::new(
                matcher,
                RouteAction::cluster(&format!("svc{service}")),
            ));
        }
    }
    for service in 0..9 {
        routes.push(Route::new(
            RouteMatch::prefix(&format!("/pkg.Service{service}/")),
            RouteAction::cluster(&format!("svc{service}-default")),
        ));
    }
    let split = RouteAction::weighted(vec![
        WeightedCluster::new("stable", 90),
        WeightedCluster::new("canary", 10),
    ]);
    if let Ok(action) = split {
        routes.push(Route::new(RouteMatch::any(), action));
    }
    let mut vhosts: Vec<VirtualHost> = (0..5)
        .map(|i| {
            let domain = format!("decoy{i}.example.com");
            VirtualHost::new(&domain, &[domain.as_str()], Vec::new())
        })
        .collect();
    vhosts.push(VirtualHost::new(
        "greeter",
        &["greeter.mesh.local", "greeter"],
        routes,
    ));
    vhosts.push(VirtualHost::new("wildcard", &["*"], Vec::new()));
    RouteConfig::new("bench-routes", vhosts)
}
