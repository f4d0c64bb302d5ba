use crate::mesh::{MeshConfig, MeshError};

fn errors(yaml: &str) -> Vec<String> {
    match MeshConfig::from_yaml(yaml) {
        Ok(_) => Vec::new(),
        Err(MeshError::Invalid { errors }) => errors.iter().map(ToString::to_string).collect(),
        Err(other) => vec![other.to_string()],
    }
}

fn assert_error(yaml: &str, expected: &str) {
    let errors = errors(yaml);
    assert!(
        errors.iter().any(|e| e.contains(expected)),
        "expected {expected:?} in {errors:#?}"
    );
}

const CLUSTER: &str =
    "clusters: [ { name: c, localities: [ { endpoints: [ { address: \"127.0.0.1:1\" } ] } ] } ]\n";

#[test]
fn a_minimal_mesh_is_valid() {
    assert!(
        errors(&format!(
            "services: [ {{ name: s, routes: [ {{ cluster: c }} ] }} ]\n{CLUSTER}"
        ))
        .is_empty()
    );
}

#[test]
fn endpoint_address_errors_name_the_endpoint() {
    let yaml = "clusters:\n  - name: a\n  - name: b\n    localities:\n      - endpoints:\n          - address: 127.0.0.1:1\n          - address: 127.0.0.1:2\n          - address: x\n";
    assert_error(
        yaml,
        "clusters[1].localities[0].endpoints[2]: invalid address \"x\"",
    );
    assert_error(
        "clusters: [ { name: a, localities: [ { endpoints: [ { address: \"10.0.0.1:0\" } ] } ] } ]",
        "clusters[0].localities[0].endpoints[0]: invalid address \"10.0.0.1:0\": port must not be 0",
    );
    assert_error(
        "clusters: [ { name: a, localities: [ { endpoints: [ { address: \"10.0.0.1:5\" } ] }, { zone: z, endpoints: [ { address: \"10.0.0.1:5\" } ] } ] } ]",
        "clusters[0].localities[1].endpoints[0]: duplicate address \"10.0.0.1:5\" (also localities[0].endpoints[0])",
    );
}

#[test]
fn route_errors_name_the_route() {
    let base = |route: &str| {
        format!("services: [ {{ name: s, routes: [ {{ cluster: c }}, {route} ] }} ]\n{CLUSTER}")
    };
    assert_error(
        &base("{ cluster: nope }"),
        "services[0].routes[1].cluster: unknown cluster \"nope\"",
    );
    assert_error(
        &base("{ }"),
        "services[0].routes[1]: exactly one of cluster and weighted_clusters is required",
    );
    assert_error(
        &base("{ cluster: c, weighted_clusters: [ { name: c, weight: 1 } ] }"),
        "services[0].routes[1]: exactly one of cluster and weighted_clusters",
    );
    assert_error(
        &base("{ weighted_clusters: [ { name: c, weight: 0 } ] }"),
        "services[0].routes[1].weighted_clusters: total weight must be greater than 0",
    );
    assert_error(
        &base("{ weighted_clusters: [ { name: c, weight: 4294967295 }, { name: c, weight: 1 } ] }"),
        "total weight 4294967296 exceeds 4294967295",
    );
    assert_error(
        &base("{ cluster: c, match: { prefix: /a, path: /b } }"),
        "services[0].routes[1].match: at most one of prefix, path, regex",
    );
    assert_error(
        &base("{ cluster: c, match: { regex: \"(\" } }"),
        "services[0].routes[1].match.regex: invalid regex \"(\"",
    );
    assert_error(
        &base("{ cluster: c, match: { headers: [ { name: a, exact: x, prefix: y } ] } }"),
        "services[0].routes[1].match.headers[0]: exactly one of exact, prefix, suffix, contains, regex, present, range",
    );
    assert_error(
        &base("{ cluster: c, match: { headers: [ { name: a, range: { start: 5, end: 5 } } ] } }"),
        "services[0].routes[1].match.headers[0].range: start must be less than end",
    );
    assert_error(
        &base("{ cluster: c, retry: { retry_on: [oops] } }"),
        "services[0].routes[1].retry.retry_on[0]: unknown retry condition \"oops\"",
    );
    assert_error(
        &base("{ cluster: c, retry: { retry_on: [unavailable], backoff: { base_interval: 0s } } }"),
        "services[0].routes[1].retry.backoff.base_interval: must be greater than 0",
    );
    assert_error(
        &base(
            "{ cluster: c, retry: { retry_on: [unavailable], backoff: { base_interval: 2s, max_interval: 1s } } }",
        ),
        "services[0].routes[1].retry.backoff.max_interval: must be at least base_interval",
    );
    assert_error(
        &base("{ cluster: c, fault: { abort: { grpc_status: 17, percent: 1 } } }"),
        "services[0].routes[1].fault.abort.grpc_status: must be 0-16",
    );
    assert_error(
        &base("{ cluster: c, fault: { abort: { percent: 1 } } }"),
        "services[0].routes[1].fault.abort: exactly one of grpc_status and http_status",
    );
    assert_error(
        &base("{ cluster: c, fault: { delay: { fixed: 1s, percent: 101 } } }"),
        "services[0].routes[1].fault.delay.percent: must be between 0 and 100",
    );
    assert_error(
        &base("{ cluster: c, hash_policy: [ { } ] }"),
        "services[0].routes[1].hash_policy[0]: exactly one of header and channel_id",
    );
}

#[test]
fn service_errors() {
    assert_error(
        &format!("services: [ {{ name: s }} ]\n{CLUSTER}"),
        "services[0].routes: at least one route is required",
    );
    assert_error(
        &format!(
            "services: [ {{ name: s, routes: [ {{ cluster: c }} ] }}, {{ name: s, routes: [ {{ cluster: c }} ] }} ]\n{CLUSTER}"
        ),
        "services[1].name: duplicate listener name \"s\" (also services[0])",
    );
    assert_error(
        &format!(
            "services: [ {{ name: a, routes: [ {{ cluster: c }} ] }}, {{ name: b, route_config_name: a, routes: [ {{ cluster: c }} ] }} ]\n{CLUSTER}"
        ),
        "services[1].route_config_name: route configuration \"a\" is already used by services[0]",
    );
    assert_error(
        &format!(
            "services: [ {{ name: s, domains: [\"a*b\"], routes: [ {{ cluster: c }} ] }} ]\n{CLUSTER}"
        ),
        "services[0].domains[0]: invalid domain pattern \"a*b\"",
    );
}

#[test]
fn cluster_errors() {
    assert_error(
        "clusters: [ { name: a }, { name: a } ]",
        "clusters[1].name: duplicate cluster name \"a\" (also clusters[0])",
    );
    assert_error(
        "clusters: [ { name: a }, { name: b, eds_service_name: a } ]",
        "clusters[1]: EDS service name \"a\" is already used by clusters[0]",
    );
    assert_error(
        "clusters: [ { name: a, localities: [ { priority: 0 }, { zone: z, priority: 2 } ] } ]",
        "clusters[0].localities: priorities must be contiguous from 0: no locality has priority 1",
    );
    assert_error(
        "clusters: [ { name: a, localities: [ { weight: 0 } ] } ]",
        "clusters[0].localities[0].weight: must be at least 1",
    );
    assert_error(
        "clusters: [ { name: a, localities: [ { zone: z }, { zone: z } ] } ]",
        "clusters[0].localities[1]: duplicate locality region=\"\" zone=\"z\" sub_zone=\"\" at priority 0 (also localities[0])",
    );
    assert_error(
        "clusters: [ { name: a, localities: [ { zone: x, weight: 4294967295 }, { zone: y, weight: 1 } ] } ]",
        "clusters[0].localities: total locality weight 4294967296 of priority 0 exceeds",
    );
    assert_error(
        "clusters: [ { name: a, ring_hash: { minimum_ring_size: 8 } } ]",
        "clusters[0].ring_hash: only valid with lb_policy: ring_hash",
    );
    assert_error(
        "clusters: [ { name: a, lb_policy: ring_hash, ring_hash: { maximum_ring_size: 8388609 } } ]",
        "clusters[0].ring_hash.maximum_ring_size: must be at most 8388608",
    );
    assert_error(
        "clusters: [ { name: a, lb_policy: least_request, least_request: { choice_count: 1 } } ]",
        "clusters[0].least_request.choice_count: must be at least 2",
    );
    assert_error(
        "clusters: [ { name: a, outlier_detection: { max_ejection_percent: 101, failure_percentage: { threshold: 200 } } } ]",
        "clusters[0].outlier_detection.max_ejection_percent: must be between 0 and 100, got 101",
    );
    assert_error(
        "clusters: [ { name: a, outlier_detection: { failure_percentage: { threshold: 200 } } } ]",
        "clusters[0].outlier_detection.failure_percentage.threshold: must be between 0 and 100",
    );
    assert_error(
        "clusters: [ { name: a, tls: { ca_certificate_provider: \"\" } } ]",
        "clusters[0].tls.ca_certificate_provider: must not be empty",
    );
    assert_error(
        "clusters: [ { name: a, tls: { ca_certificate_provider: x, san_matchers: [ { exact: a, prefix: b } ] } } ]",
        "clusters[0].tls.san_matchers[0]: exactly one of exact, prefix, suffix, contains, regex is required",
    );
}

#[test]
fn server_errors() {
    assert_error(
        "servers: [ { listening_address: nope } ]",
        "servers[0].listening_address: invalid address \"nope\"",
    );
    assert_error(
        "servers: [ { listening_address: \"0.0.0.0:1\", tls: { certificate_provider: d, require_client_certificate: true } } ]",
        "servers[0].tls.ca_certificate_provider: required when require_client_certificate is true",
    );
    assert_error(
        "server_listener_resource_name_template: fixed\nservers: [ { listening_address: \"0.0.0.0:1\" } ]",
        "server_listener_resource_name_template: must contain %s",
    );
    assert_error(
        "servers: [ { listening_address: \"0.0.0.0:1\" }, { listening_address: \"0.0.0.0:1\" } ]",
        "servers[1]: duplicate listener name \"grpc/server?xds.resource.listening_address=0.0.0.0:1\" (also servers[0])",
    );
    let rbac = |policy: &str| {
        format!(
            "servers: [ {{ listening_address: \"0.0.0.0:1\", rbac: {{ policies: [ {policy} ] }} }} ]"
        )
    };
    assert_error(
        &rbac("{ name: p, permissions: [], principals: [any] }"),
        "servers[0].rbac.policies[0].permissions: at least one permission is required",
    );
    assert_error(
        &rbac("{ name: p, permissions: [ { destination_port: 70000 } ], principals: [any] }"),
        "servers[0].rbac.policies[0].permissions[0].destination_port: must be 1-65535",
    );
    assert_error(
        &rbac(
            "{ name: p, permissions: [any], principals: [ { not: { authenticated: { principal_name: { } } } } ] }",
        ),
        "servers[0].rbac.policies[0].principals[0].not.authenticated.principal_name: exactly one of",
    );
    assert_error(
        &rbac(
            "{ name: p, permissions: [any], principals: [any] }, { name: p, permissions: [any], principals: [any] }",
        ),
        "servers[0].rbac.policies[1].name: duplicate policy name \"p\"",
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let errors = errors(
        "clusters: [ { name: \"\", localities: [ { weight: 0, endpoints: [ { address: x, weight: 0 } ] } ] } ]",
    );
    assert_eq!(errors.len(), 4, "{errors:#?}");
}
