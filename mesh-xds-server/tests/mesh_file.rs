//! The mesh file as a user writes it: the README example, and errors that name the YAML path.

// Test helpers outside #[test] functions may fail loudly too: a panic is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use mesh_xds_server::mesh::{
    Authenticated, Cluster, DownstreamTls, Endpoint, FaultInjection, HeaderMatch, LbPolicy,
    Locality, MeshConfig, MeshError, Permission, Principal, Rbac, RbacAction, RbacPolicy,
    RetryPolicy, Route, ServerListener, Service, StringMatch, UpstreamTls, WeightedCluster,
};
use mesh_xds_server::type_url;

/// The first ```yaml block of the README.
fn readme_example() -> &'static str {
    let readme = include_str!("../README.md");
    let start = readme.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let end = start + readme[start..].find("```").expect("closing fence");
    &readme[start..end]
}

fn error_text(yaml: &str) -> String {
    MeshConfig::from_yaml(yaml)
        .expect_err("should be rejected")
        .to_string()
}

#[test]
fn readme_example_parses_and_translates() {
    let mesh = MeshConfig::from_yaml(readme_example()).unwrap();
    assert_eq!(
        (mesh.services.len(), mesh.clusters.len(), mesh.servers.len()),
        (2, 3, 1)
    );
    let snapshot = mesh.to_snapshot("1").unwrap();
    let count = |t: &str| snapshot.resources(t).unwrap().len();
    assert_eq!(count(type_url::LISTENER), 3, "two services and one server");
    assert_eq!(count(type_url::ROUTE_CONFIGURATION), 2);
    assert_eq!(count(type_url::CLUSTER), 3);
    assert_eq!(count(type_url::CLUSTER_LOAD_ASSIGNMENT), 3);
    assert!(
        snapshot
            .resources(type_url::LISTENER)
            .unwrap()
            .get("grpc/server?xds.resource.listening_address=0.0.0.0:50051")
            .is_some()
    );
}

#[test]
fn invalid_endpoint_address_names_its_yaml_path() {
    let yaml = r#"
clusters:
  - name: a
    localities:
      - endpoints: [ { address: "127.0.0.1:1" } ]
  - name: b
    localities:
      - endpoints:
          - address: 127.0.0.1:1
          - address: 127.0.0.1:2
          - address: x
"#;
    let error = MeshConfig::from_yaml(yaml).unwrap_err();
    let MeshError::Invalid { errors } = &error else {
        panic!("{error}")
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "clusters[1].localities[0].endpoints[2]");
    assert!(
        error
            .to_string()
            .starts_with("clusters[1].localities[0].endpoints[2]: invalid address \"x\""),
        "{error}"
    );
}

#[test]
fn schema_errors_name_their_yaml_path_and_line() {
    let cases = [
        (
            "clusters:\n  - name: a\n    localitis: []\n",
            "clusters[0]: unknown field `localitis`",
        ),
        (
            "clusters:\n  - name: a\n    lb_policy: maglev\n",
            "clusters[0].lb_policy: unknown variant `maglev`",
        ),
        (
            "clusters:\n  - name: a\n    localities:\n      - weight: heavy\n",
            "clusters[0].localities[0].weight: invalid type: string \"heavy\", expected u32",
        ),
        (
            "services:\n  - name: s\n    timeout: 5\n    routes: []\n",
            "services[0].timeout: invalid duration \"5\": expected a number and a unit",
        ),
        (
            "services:\n  - name: s\n    timeout: 5 seconds\n",
            "services[0].timeout: invalid duration \"5 seconds\"",
        ),
        (
            "servers:\n  - listening_address: 0.0.0.0:1\n    rbac:\n      policies:\n        - name: p\n          permissions: [ { everything: true } ]\n          principals: [any]\n",
            "servers[0].rbac.policies[0].permissions[0]: unknown variant `everything`",
        ),
        (
            "clusters:\n  - localities: []\n",
            "clusters[0]: missing field `name`",
        ),
        ("# nothing but a comment\n", "the mesh file is empty"),
        ("services: [", "did not find expected"),
    ];
    for (yaml, expected) in cases {
        let text = error_text(yaml);
        assert!(
            text.contains(expected),
            "{yaml:?}: expected {expected:?} in {text:?}"
        );
    }
    assert!(
        error_text("clusters:\n  - name: a\n    localitis: []\n").contains("line 3"),
        "line numbers are kept"
    );
}

#[test]
fn reference_and_range_errors_are_all_listed() {
    let yaml = r#"
services:
  - name: greeter
    routes:
      - cluster: greeter-mian
      - weighted_clusters: [ { name: main, weight: 0 } ]
clusters:
  - name: main
    localities:
      - { priority: 1, endpoints: [ { address: "127.0.0.1:1" } ] }
"#;
    let error = MeshConfig::from_yaml(yaml).unwrap_err();
    let paths: Vec<&str> = error
        .field_errors()
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "services[0].routes[0].cluster",
            "services[0].routes[1].weighted_clusters",
            "clusters[0].localities"
        ]
    );
    let text = error.to_string();
    assert!(
        text.contains("services[0].routes[0].cluster: unknown cluster \"greeter-mian\""),
        "{text}"
    );
    assert!(text.contains("no locality has priority 0"), "{text}");
}

#[test]
fn missing_file_is_a_read_error_naming_the_file() {
    let error = MeshConfig::from_file("/nonexistent/mesh.yaml").unwrap_err();
    assert!(matches!(error, MeshError::Read { .. }));
    assert!(
        error.to_string().contains("/nonexistent/mesh.yaml"),
        "{error}"
    );
}

#[test]
fn the_builder_and_the_yaml_describe_the_same_mesh() {
    let yaml = r#"
services:
  - name: greeter
    timeout: 5s
    routes:
      - match:
          prefix: /helloworld.Greeter/
          headers: [ { name: x-user, exact: alice, invert: true } ]
        weighted_clusters: [ { name: main, weight: 90 }, { name: canary, weight: 10 } ]
        retry: { retry_on: [unavailable], num_retries: 3, backoff: { base_interval: 10ms, max_interval: 100ms } }
        fault: { delay: { fixed: 1s, percent: 50 }, abort: { grpc_status: 14, percent: 10 } }
      - cluster: main
clusters:
  - name: main
    lb_policy: ring_hash
    circuit_breakers: { max_requests: 10 }
    localities:
      - region: r
        zone: z
        priority: 0
        weight: 2
        endpoints: [ { address: "127.0.0.1:50051", weight: 3 } ]
  - name: canary
    tls:
      ca_certificate_provider: roots
      certificate_provider: default
      san_matchers: [ { exact: "spiffe://td/sa/canary" } ]
servers:
  - listening_address: "[::]:50051"
    tls: { certificate_provider: default, ca_certificate_provider: roots, require_client_certificate: true }
    rbac:
      action: allow
      policies:
        - name: frontend
          permissions: [ { path: { prefix: /helloworld. } } ]
          principals: [ { authenticated: { principal_name: { exact: "spiffe://td/sa/frontend" } } } ]
"#;
    let built =
        MeshConfig::new()
            .with_service(
                Service::new("greeter")
                    .with_timeout(Duration::from_secs(5))
                    .with_route(
                        Route::to_weighted_clusters([
                            WeightedCluster::new("main", 90),
                            WeightedCluster::new("canary", 10),
                        ])
                        .with_prefix("/helloworld.Greeter/")
                        .with_header(HeaderMatch::exact("x-user", "alice").inverted())
                        .with_retry(RetryPolicy::new(["unavailable"], 3).with_backoff(
                            Duration::from_millis(10),
                            Some(Duration::from_millis(100)),
                        ))
                        .with_fault(
                            FaultInjection::default()
                                .with_delay(Duration::from_secs(1), 50.0)
                                .with_grpc_abort(14, 10.0),
                        ),
                    )
                    .with_route(Route::to_cluster("main")),
            )
            .with_cluster(
                Cluster::new("main")
                    .with_lb_policy(LbPolicy::RingHash)
                    .with_max_requests(10)
                    .with_locality(
                        Locality::new("r", "z", "")
                            .with_weight(2)
                            .with_endpoint(Endpoint::new("127.0.0.1:50051").with_weight(3)),
                    ),
            )
            .with_cluster(
                Cluster::new("canary").with_tls(
                    UpstreamTls::new("roots")
                        .with_client_certificate("default")
                        .with_san(StringMatch::exact("spiffe://td/sa/canary")),
                ),
            )
            .with_server(
                ServerListener::new("[::]:50051")
                    .with_tls(DownstreamTls::new("default").requiring_client_certificate("roots"))
                    .with_rbac(Rbac::new(RbacAction::Allow).with_policy(RbacPolicy::new(
                        "frontend",
                        vec![Permission::Path(StringMatch::prefix("/helloworld."))],
                        vec![Principal::Authenticated(Authenticated::new(
                            StringMatch::exact("spiffe://td/sa/frontend"),
                        ))],
                    ))),
            );
    let parsed = MeshConfig::from_yaml(yaml).unwrap();
    assert_eq!(parsed, built);
    assert_eq!(parsed.translate().unwrap(), built.translate().unwrap());
    assert!(
        parsed
            .to_snapshot("1")
            .unwrap()
            .resources(type_url::LISTENER)
            .unwrap()
            .get("grpc/server?xds.resource.listening_address=[::]:50051")
            .is_some()
    );
}
