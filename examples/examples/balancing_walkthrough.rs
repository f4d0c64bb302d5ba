//! The mesh's balancing decisions on a two-cluster topology, step by step.
//!
//! Two "clusters" of a greeter service, `us-east` and `eu-west`, three replicas each. The client sits in `us-east`,
//! so `us-east` is priority 0 and `eu-west` priority 1 (the failover target). Each step changes the configuration
//! or the health of the replicas, sends 20,000 requests through route matching and endpoint picking, prints where
//! they went, and checks it. The program exits non-zero if any step misbehaves.
//!
//! This drives `mesh-core`'s algorithms directly: no sockets and no control plane yet.
#![allow(clippy::print_stdout, missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;

use http::HeaderMap;
use mesh_core::endpoint::{Endpoint, EndpointSet, HealthStatus, LocalityEndpoints};
use mesh_core::locality::Locality;
use mesh_core::picker::{EndpointPicker, Pick};
use mesh_core::rng::FastRng;
use mesh_core::route::{
    ClusterSpecifier, Route, RouteAction, RouteConfig, RouteMatch, VirtualHost, WeightedCluster,
};

const REQUESTS: u32 = 20_000;

/// A cluster's endpoints: `us-east` replicas at 127.0.1.x (priority 0), `eu-west` at 127.0.2.x (priority 1).
fn endpoints(cluster: &str, us_east_health: HealthStatus) -> EndpointSet {
    let replicas = |third: u8, health: HealthStatus| -> Vec<Endpoint> {
        (1..=3)
            .map(|i| {
                Endpoint::new(SocketAddr::from(([127, 0, third, i], 50051))).with_health(health)
            })
            .collect()
    };
    EndpointSet::new(
        cluster,
        vec![
            LocalityEndpoints::new(
                Locality::new("us-east", "us-east-1a", ""),
                0,
                1,
                replicas(1, us_east_health),
            ),
            LocalityEndpoints::new(
                Locality::new("eu-west", "eu-west-1a", ""),
                1,
                1,
                replicas(2, HealthStatus::Healthy),
            ),
        ],
    )
}

fn routes(canary_percent: u32) -> RouteConfig {
    let action = if canary_percent == 0 {
        RouteAction::cluster("greeter-v1")
    } else {
        match RouteAction::weighted(vec![
            WeightedCluster::new("greeter-v1", 100 - canary_percent),
            WeightedCluster::new("greeter-v2", canary_percent),
        ]) {
            Ok(action) => action,
            Err(_) => RouteAction::cluster("greeter-v1"),
        }
    };
    RouteConfig::new(
        "greeter-routes",
        vec![VirtualHost::new(
            "greeter",
            &["greeter"],
            vec![Route::new(
                RouteMatch::prefix("/helloworld.Greeter/"),
                action,
            )],
        )],
    )
}

/// Where requests went: by cluster version, and by locality region.
#[derive(Default)]
struct Tally {
    by_version: BTreeMap<String, u32>,
    by_region: BTreeMap<String, u32>,
    by_replica: BTreeMap<String, u32>,
    failed: u32,
}

impl Tally {
    fn share(map: &BTreeMap<String, u32>, key: &str) -> f64 {
        f64::from(map.get(key).copied().unwrap_or(0)) / f64::from(REQUESTS)
    }
}

fn run(config: &RouteConfig, us_east_health: HealthStatus, rng: &mut FastRng) -> Tally {
    let mut tally = Tally::default();
    let headers = HeaderMap::new();
    let pickers: BTreeMap<&str, (EndpointSet, EndpointPicker)> = ["greeter-v1", "greeter-v2"]
        .into_iter()
        .map(|name| {
            let set = endpoints(name, us_east_health);
            let picker = EndpointPicker::build_from_health(&set);
            (name, (set, picker))
        })
        .collect();
    let Some(vhost) = config.select_virtual_host("greeter") else {
        tally.failed = REQUESTS;
        return tally;
    };
    for _ in 0..REQUESTS {
        let Some(action) = vhost
            .find_route("/helloworld.Greeter/SayHello", &headers, rng)
            .and_then(Route::route_action)
        else {
            tally.failed += 1;
            continue;
        };
        let cluster = match &action.cluster {
            ClusterSpecifier::Cluster(name) => name.to_string(),
            ClusterSpecifier::Weighted(split) => split.pick(rng).name.to_string(),
            _ => {
                tally.failed += 1;
                continue;
            }
        };
        let Some((set, picker)) = pickers.get(cluster.as_str()) else {
            tally.failed += 1;
            continue;
        };
        match picker.pick(rng) {
            Pick::Endpoint(at) => {
                let Some(locality) = set.localities.get(at.locality) else {
                    continue;
                };
                let Some(endpoint) = locality.endpoints.get(at.endpoint) else {
                    continue;
                };
                *tally.by_version.entry(cluster).or_default() += 1;
                *tally
                    .by_region
                    .entry(locality.locality.region.to_string())
                    .or_default() += 1;
                *tally
                    .by_replica
                    .entry(endpoint.address.to_string())
                    .or_default() += 1;
            }
            _ => tally.failed += 1,
        }
    }
    tally
}

fn print(step: &str, explanation: &str, tally: &Tally) {
    println!("\n== {step}\n   {explanation}");
    println!("   {:<22} {:>8}", "replica", "share");
    for (replica, n) in &tally.by_replica {
        println!(
            "   {:<22} {:>7.1}%",
            replica,
            100.0 * f64::from(*n) / f64::from(REQUESTS)
        );
    }
    let regions: Vec<String> = tally
        .by_region
        .keys()
        .map(|r| format!("{r} {:.1}%", 100.0 * Tally::share(&tally.by_region, r)))
        .collect();
    let versions: Vec<String> = tally
        .by_version
        .keys()
        .map(|v| format!("{v} {:.1}%", 100.0 * Tally::share(&tally.by_version, v)))
        .collect();
    println!(
        "   regions: {}   versions: {}   failed: {}",
        regions.join(", "),
        versions.join(", "),
        tally.failed
    );
}

fn check(ok: bool, what: &str, failures: &mut Vec<String>) {
    println!("   [{}] {what}", if ok { "ok" } else { "FAILED" });
    if !ok {
        failures.push(what.to_owned());
    }
}

fn main() -> ExitCode {
    let mut rng = FastRng::from_seed(2026);
    let mut failures = Vec::new();

    let tally = run(&routes(0), HealthStatus::Healthy, &mut rng);
    print(
        "1. locality-aware balancing",
        "the client is in us-east: priority 0 serves everything",
        &tally,
    );
    check(
        tally.by_region.get("us-east") == Some(&REQUESTS) && tally.failed == 0,
        "all traffic stays in us-east",
        &mut failures,
    );
    let spread = tally
        .by_replica
        .values()
        .all(|n| (6_000..7_400).contains(n));
    check(
        spread && tally.by_replica.len() == 3,
        "spread evenly over the three us-east replicas",
        &mut failures,
    );

    for canary in [10u32, 50] {
        let tally = run(&routes(canary), HealthStatus::Healthy, &mut rng);
        let step = format!("2. canary at {canary}%");
        print(
            &step,
            "a weighted route sends a share of traffic to greeter-v2",
            &tally,
        );
        let share = Tally::share(&tally.by_version, "greeter-v2");
        let want = f64::from(canary) / 100.0;
        check(
            (share - want).abs() < 0.01,
            &format!("greeter-v2 gets {canary}% (+/- 1%)"),
            &mut failures,
        );
    }

    let tally = run(&routes(0), HealthStatus::Unhealthy, &mut rng);
    print(
        "3. cluster failure",
        "every us-east replica is unhealthy: priority 1 (eu-west) takes over",
        &tally,
    );
    check(
        tally.by_region.get("eu-west") == Some(&REQUESTS) && tally.failed == 0,
        "all traffic fails over to eu-west, none fails",
        &mut failures,
    );

    let tally = run(&routes(0), HealthStatus::Healthy, &mut rng);
    print(
        "3b. recovery",
        "us-east is healthy again: traffic returns",
        &tally,
    );
    check(
        tally.by_region.get("us-east") == Some(&REQUESTS),
        "all traffic is back in us-east",
        &mut failures,
    );

    if failures.is_empty() {
        println!("\nevery step behaved as described");
        ExitCode::SUCCESS
    } else {
        println!(
            "\n{} step(s) misbehaved: {}",
            failures.len(),
            failures.join("; ")
        );
        ExitCode::FAILURE
    }
}
