//! gRPC C-core (Python grpcio 1.85) as the xDS client: it resolves `xds:///greeter` through mesh-xds-server over
//! real sockets, and its calls reach the grpcio backends the served config says they should. This is the proof that
//! what the server translates is what a real proxyless client accepts and acts on (priorities, weighted clusters,
//! header and path routes), that it ACKs every type, and that it NACKs what it must while keeping the last good
//! config. See `../shared/PEERS.md` for the peers.

// A panic is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/interop.rs"]
mod interop;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as EnvoyCluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    LbConfig, LbPolicy as EnvoyLbPolicy, RingHashLbConfig,
};
use envoy_types::pb::google::protobuf::UInt64Value;
use envoy_types::util::pack_any;
use interop::{Backends, GRPCIO_NODE, Harness, Phase, PhasedClient, grpcio_bootstrap};
use mesh_test_support::python;
use mesh_xds_server::mesh::{
    Cluster, Endpoint, HeaderMatch, HealthStatus, Locality, MeshConfig, Route, Service,
    WeightedCluster,
};
use mesh_xds_server::{XdsServer, type_url};
use prost::Message;

const TARGET: &str = "xds:///greeter";
const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";
const SAY_HELLO_AGAIN: &str = "/helloworld.Greeter/SayHelloAgain";

/// A cluster of one locality at priority 0 holding `backends`.
fn single_locality_cluster(name: &str, backends: &Backends, ids: &[&str]) -> Cluster {
    let locality = ids
        .iter()
        .fold(Locality::new("local", "local-a", ""), |locality, id| {
            locality.with_endpoint(Endpoint::new(backends.address(id)))
        });
    Cluster::new(name).with_locality(locality)
}

/// `greeter` -> cluster `greeter`: priority 0 is `p0-a` and `p0-b` (with `p0_health`), priority 1 is `p1`.
fn two_priorities(backends: &Backends, p0_health: HealthStatus) -> MeshConfig {
    MeshConfig::new()
        .with_service(Service::new("greeter").with_route(Route::to_cluster("greeter")))
        .with_cluster(
            Cluster::new("greeter")
                .with_locality(
                    Locality::new("us-east", "us-east-1a", "")
                        .with_endpoint(
                            Endpoint::new(backends.address("p0-a")).with_health(p0_health),
                        )
                        .with_endpoint(
                            Endpoint::new(backends.address("p0-b")).with_health(p0_health),
                        ),
                )
                .with_locality(
                    Locality::new("us-west", "us-west-1b", "")
                        .with_priority(1)
                        .with_endpoint(Endpoint::new(backends.address("p1"))),
                ),
        )
}

#[test]
fn grpcio_uses_priority_0_fails_over_to_priority_1_when_it_is_unhealthy_and_returns() {
    let python = python().unwrap();
    let backends = Backends::start(&python, &["p0-a", "p0-b", "p1"]);
    let harness = Harness::start(
        XdsServer::builder().config(two_priorities(&backends, HealthStatus::Healthy)),
    );
    let mut client = PhasedClient::start(
        &python,
        TARGET,
        &grpcio_bootstrap(harness.server().local_addr()),
    );

    // gRFC A27 / A56: only the highest priority with reachable endpoints takes traffic, spread over its endpoints.
    let healthy = client.run(&Phase::calls(100));
    healthy.assert_served_by(&["p0-a", "p0-b"]);
    assert!(
        healthy
            .warmup
            .by_server
            .keys()
            .all(|id| id.starts_with("p0-")),
        "priority 1 was used before the failover: {healthy:?}"
    );
    harness.assert_acked_everything(GRPCIO_NODE, "1");

    // Priority 0 reported UNHEALTHY: C-core drops those endpoints and fails over to priority 1 on the same channel.
    let failover = harness
        .server()
        .set_config(None, &two_priorities(&backends, HealthStatus::Unhealthy))
        .unwrap();
    harness.wait_acked(GRPCIO_NODE, type_url::CLUSTER_LOAD_ASSIGNMENT, &failover);
    let unhealthy = client.run(&Phase::calls(100).after_reply_from(&["p1"]));
    assert_eq!(unhealthy.assert_served_by(&["p1"])["p1"], 100);

    // Healthy again: traffic goes back to priority 0.
    let recovery = harness
        .server()
        .set_config(None, &two_priorities(&backends, HealthStatus::Healthy))
        .unwrap();
    harness.wait_acked(GRPCIO_NODE, type_url::CLUSTER_LOAD_ASSIGNMENT, &recovery);
    let recovered = client.run(&Phase::calls(100).after_reply_from(&["p0-a", "p0-b"]));
    assert!(
        recovered.errors.is_empty()
            && recovered.count("p1") == 0
            && recovered.count("p0-a") + recovered.count("p0-b") == 100,
        "traffic did not return to priority 0: {recovered:?}"
    );

    let client_info = harness.wait_acked(GRPCIO_NODE, type_url::CLUSTER_LOAD_ASSIGNMENT, &recovery);
    interop::assert_no_nacks(&client_info);
    drop(client);
    harness.shutdown();
}

#[test]
fn grpcio_splits_a_weighted_route_80_20_and_follows_header_and_path_routes() {
    let python = python().unwrap();
    let backends = Backends::start_with_methods(
        &python,
        &[
            ("main", &[]),
            ("canary", &[]),
            ("again", &[SAY_HELLO_AGAIN]),
        ],
    );
    let mesh = MeshConfig::new()
        .with_service(
            Service::new("greeter")
                // gRFC A28: first match wins; a path with a header, a path alone, then a prefix.
                .with_route(
                    Route::to_cluster("canary")
                        .with_path(SAY_HELLO)
                        .with_header(HeaderMatch::exact("x-canary", "true")),
                )
                .with_route(Route::to_cluster("again").with_path(SAY_HELLO_AGAIN))
                .with_route(
                    Route::to_weighted_clusters([
                        WeightedCluster::new("main", 80),
                        WeightedCluster::new("canary", 20),
                    ])
                    .with_prefix("/helloworld.Greeter/"),
                ),
        )
        .with_cluster(single_locality_cluster("main", &backends, &["main"]))
        .with_cluster(single_locality_cluster("canary", &backends, &["canary"]))
        .with_cluster(single_locality_cluster("again", &backends, &["again"]));
    let harness = Harness::start(XdsServer::builder().config(mesh));
    let mut client = PhasedClient::start(
        &python,
        TARGET,
        &grpcio_bootstrap(harness.server().local_addr()),
    );

    // gRFC A28 weighted clusters: each call picks a cluster by weight. 300 calls at 80 %: sd 6.9 calls (2.3 %), so
    // ±8 % is 3.5 sd.
    let weighted = client.run(&Phase::calls(300));
    let counts = weighted.assert_served_by(&["canary", "main"]);
    let main_share = counts["main"] as f64 / 300.0;
    assert!(
        (0.72..=0.88).contains(&main_share),
        "main got {:.1} % of the calls, expected 80 ± 8 %: {weighted:?}",
        main_share * 100.0
    );
    harness.assert_acked_everything(GRPCIO_NODE, "1");

    // Header route: `x-canary: true` on SayHello always goes to canary; another value falls through to the split.
    let canary = client.run(&Phase::calls(50).header("x-canary", "true"));
    assert_eq!(canary.assert_served_by(&["canary"])["canary"], 50);
    let not_canary = client.run(&Phase::calls(50).header("x-canary", "false"));
    assert!(
        not_canary.errors.is_empty() && not_canary.count("main") > 0,
        "an exact header match took a different value: {not_canary:?}"
    );

    // Path route: SayHelloAgain has its own cluster; the prefix route never saw it above.
    let again = client.run(&Phase::calls(50).method(SAY_HELLO_AGAIN));
    assert_eq!(again.assert_served_by(&["again"])["again"], 50);

    let client_info = harness.assert_acked_everything(GRPCIO_NODE, "1");
    interop::assert_no_nacks(&client_info);
    drop(client);
    harness.shutdown();
}

#[test]
fn grpcio_acks_every_type_and_nacks_an_invalid_cluster_while_the_last_good_one_keeps_serving() {
    let python = python().unwrap();
    let backends = Backends::start(&python, &["first", "second"]);
    let mesh = |backend: &str| {
        MeshConfig::new()
            .with_service(Service::new("greeter").with_route(Route::to_cluster("greeter")))
            .with_cluster(single_locality_cluster("greeter", &backends, &[backend]))
    };
    let harness = Harness::start(XdsServer::builder().config(mesh("first")));
    let mut client = PhasedClient::start(
        &python,
        TARGET,
        &grpcio_bootstrap(harness.server().local_addr()),
    );
    client.run(&Phase::calls(20)).assert_served_by(&["first"]);

    // The cascade LDS -> RDS -> CDS -> EDS, each ACKed at the served version, nothing NACKed.
    let acked = harness.assert_acked_everything(GRPCIO_NODE, "1");
    for type_url in type_url::ALL {
        let status = acked.type_status(type_url).unwrap();
        assert!(status.ack_count >= 1, "{type_url}: {status:?}");
        assert_eq!(
            status.subscribed.iter().collect::<Vec<_>>(),
            ["greeter"],
            "C-core subscribes by explicit name (gRFC A27): {type_url}"
        );
    }

    // A ring-hash cluster whose minimum ring size exceeds its maximum: the mesh model refuses to express it, so the
    // Cluster is edited by hand. gRFC A42 requires the client to reject it.
    let mut bad = mesh("first").to_snapshot("bad").unwrap();
    let any = bad
        .resources(type_url::CLUSTER)
        .unwrap()
        .get("greeter")
        .unwrap()
        .clone();
    let mut cluster = EnvoyCluster::decode(any.value.as_slice()).unwrap();
    cluster.lb_policy = EnvoyLbPolicy::RingHash.into();
    cluster.lb_config = Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
        minimum_ring_size: Some(UInt64Value { value: 4096 }),
        maximum_ring_size: Some(UInt64Value { value: 1024 }),
        ..Default::default()
    }));
    bad.insert(type_url::CLUSTER, "greeter", pack_any(cluster));
    harness.server().set_snapshot(None, bad);

    let clients = harness.wait_for_clients("a NACK of the bad cluster", |clients| {
        clients.iter().any(|client| {
            client.is_node(GRPCIO_NODE)
                && client
                    .last_nack(type_url::CLUSTER)
                    .is_some_and(|nack| nack.rejected_version == "bad")
        })
    });
    let client_info = clients.iter().find(|c| c.is_node(GRPCIO_NODE)).unwrap();
    let nack = client_info.last_nack(type_url::CLUSTER).unwrap();
    assert_eq!(nack.accepted_version, "1", "{nack:?}");
    assert_eq!(nack.code, 3, "INVALID_ARGUMENT: {nack:?}");
    // C-core: "... greeter: INVALID_ARGUMENT: errors validating Cluster resource:
    // [field:ring_hash_lb_config.minimum_ring_size error:cannot be greater than maximum_ring_size]".
    assert!(
        nack.message.contains("greeter")
            && nack
                .message
                .contains("ring_hash_lb_config.minimum_ring_size"),
        "the NACK should name the resource and the field: {nack:?}"
    );
    // Only the Cluster changed, so only CDS was sent and NACKed; the other types stay ACKed at 1.
    for type_url in [
        type_url::LISTENER,
        type_url::ROUTE_CONFIGURATION,
        type_url::CLUSTER_LOAD_ASSIGNMENT,
    ] {
        assert_eq!(client_info.acked_version(type_url), Some("1"), "{type_url}");
        assert_eq!(client_info.type_status(type_url).unwrap().nack_count, 0);
    }

    // gRFC A46: the rejected update changes nothing; the last good config keeps serving.
    client.run(&Phase::calls(50)).assert_served_by(&["first"]);

    // And the client still takes a good update after the NACK.
    let good = harness.server().set_config(None, &mesh("second")).unwrap();
    harness.wait_acked(GRPCIO_NODE, type_url::CLUSTER, &good);
    harness.wait_acked(GRPCIO_NODE, type_url::CLUSTER_LOAD_ASSIGNMENT, &good);
    client
        .run(&Phase::calls(50).after_reply_from(&["second"]))
        .assert_served_by(&["second"]);

    drop(client);
    harness.shutdown();
}

/// The mesh file's client-side features gRPC honours, written as a user would. `least_request` is translated as a
/// `load_balancing_policy` list ending in round_robin, which C-core (without least_request) accepts. Left out: `tls`
/// (needs certificate providers in the bootstrap).
fn feature_mesh(backends: &Backends) -> MeshConfig {
    let address = |id: &str| backends.address(id);
    MeshConfig::from_yaml(&format!(
        r#"
services:
  - name: greeter
    timeout: 5s
    retry:
      retry_on: [unavailable]
      num_retries: 2
      backoff: {{ base_interval: 10ms, max_interval: 100ms }}
    routes:
      - name: fail
        match: {{ path: /helloworld.Greeter/Fail }}
        cluster: rr
        fault:
          abort: {{ grpc_status: 14, percent: 100 }}
      - name: ring
        match:
          prefix: /helloworld.Greeter/
          headers: [ {{ name: x-cluster, exact: ring }} ]
        cluster: ring
        hash_policy: [ {{ header: x-session }} ]
      - name: pick-first
        match:
          prefix: /HELLOWORLD.greeter/
          case_sensitive: false
          headers: [ {{ name: x-cluster, exact: pf }} ]
        cluster: pf
      - name: least-request
        match:
          prefix: /helloworld.Greeter/
          headers: [ {{ name: x-cluster, exact: lr }} ]
        cluster: lr
      - name: default
        match: {{ regex: "/helloworld\\.Greeter/Say.*" }}
        cluster: rr
        timeout: 2s
clusters:
  - name: rr
    circuit_breakers: {{ max_requests: 100 }}
    outlier_detection:
      interval: 1s
      base_ejection_time: 30s
      max_ejection_percent: 50
      success_rate: {{ stdev_factor: 1900, enforcement_percentage: 100, minimum_hosts: 3, request_volume: 20 }}
      failure_percentage: {{ threshold: 85, enforcement_percentage: 100, minimum_hosts: 3, request_volume: 20 }}
    localities: [ {{ zone: z, endpoints: [ {{ address: "{rr}" }} ] }} ]
  - name: ring
    lb_policy: ring_hash
    ring_hash: {{ minimum_ring_size: 64, maximum_ring_size: 1024 }}
    localities: [ {{ zone: z, endpoints: [ {{ address: "{ring_a}" }}, {{ address: "{ring_b}" }} ] }} ]
  - name: lr
    lb_policy: least_request
    least_request: {{ choice_count: 3 }}
    localities: [ {{ zone: z, endpoints: [ {{ address: "{lr_a}" }}, {{ address: "{lr_b}" }} ] }} ]
  - name: pf
    lb_policy: pick_first
    localities: [ {{ zone: z, endpoints: [ {{ address: "{pf_a}" }}, {{ address: "{pf_b}" }} ] }} ]
"#,
        rr = address("rr"),
        ring_a = address("ring-a"),
        ring_b = address("ring-b"),
        pf_a = address("pf-a"),
        pf_b = address("pf-b"),
        lr_a = address("lr-a"),
        lr_b = address("lr-b"),
    ))
    .unwrap()
}

/// The one backend that served every counted call, checked to be one of `candidates`.
fn single_server(outcome: &interop::Outcome, candidates: &[&str]) -> String {
    assert!(outcome.errors.is_empty(), "calls failed: {outcome:?}");
    let served: Vec<&String> = outcome.by_server.keys().collect();
    assert!(
        served.len() == 1 && candidates.contains(&served[0].as_str()),
        "expected one of {candidates:?} to serve every call: {outcome:?}"
    );
    served[0].clone()
}

#[test]
fn grpcio_accepts_and_applies_ring_hash_pick_first_outlier_detection_faults_and_matchers() {
    let python = python().unwrap();
    let backends = Backends::start(
        &python,
        &["rr", "ring-a", "ring-b", "pf-a", "pf-b", "lr-a", "lr-b"],
    );
    let harness = Harness::start(XdsServer::builder().config(feature_mesh(&backends)));
    let mut client = PhasedClient::start(
        &python,
        TARGET,
        &grpcio_bootstrap(harness.server().local_addr()),
    );

    // Regex route to a round-robin cluster with circuit breakers and outlier detection (gRFC A32, A50).
    client.run(&Phase::calls(30)).assert_served_by(&["rr"]);
    // The whole config, every cluster the route table names included, is accepted as served.
    harness.assert_acked_everything(GRPCIO_NODE, "1");

    // gRFC A42: a header hash policy pins each session to one ring-hash backend.
    for session in ["s1", "s2"] {
        let pinned = client.run(
            &Phase::calls(30)
                .header("x-cluster", "ring")
                .header("x-session", session),
        );
        single_server(&pinned, &["ring-a", "ring-b"]);
    }

    // gRFC A62: pick_first sends every call to one endpoint; the route's prefix matched without regard to case.
    let first = client.run(&Phase::calls(30).header("x-cluster", "pf"));
    single_server(&first, &["pf-a", "pf-b"]);

    // A least_request cluster is accepted (through its round_robin fallback) and serves from its endpoints.
    let spread = client.run(&Phase::calls(40).header("x-cluster", "lr"));
    assert!(spread.errors.is_empty(), "{spread:?}");
    assert!(
        spread
            .by_server
            .keys()
            .all(|id| id == "lr-a" || id == "lr-b")
            && spread.by_server.len() == 2,
        "{spread:?}"
    );

    // gRFC A33: a 100 % abort fails every call with the configured status, before any backend sees it.
    let aborted = client.run(
        &Phase::calls(10)
            .method("/helloworld.Greeter/Fail")
            .without_warmup(),
    );
    assert!(
        aborted.by_server.is_empty()
            && aborted.errors.get("UNAVAILABLE") == Some(&10)
            && aborted
                .first_error
                .as_deref()
                .is_some_and(|error| error.contains("Fault injected")),
        "expected 10 injected UNAVAILABLE aborts (not, say, \"no matching route\"): {aborted:?}"
    );

    let client_info = harness.assert_acked_everything(GRPCIO_NODE, "1");
    assert_eq!(
        client_info
            .type_status(type_url::CLUSTER)
            .unwrap()
            .subscribed
            .iter()
            .collect::<Vec<_>>(),
        ["lr", "pf", "ring", "rr"],
        "C-core subscribes to every cluster of the route table"
    );
    drop(client);
    harness.shutdown();
}
