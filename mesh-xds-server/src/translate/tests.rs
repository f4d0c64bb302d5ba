use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbConfig, LbPolicy as EnvoyLbPolicy,
    common_lb_config::LocalityConfigSpecifier,
};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as TransportSocketConfig;
use envoy_types::pb::envoy::config::core::v3::{ApiVersion, HealthStatus};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as FilterConfig;
use envoy_types::pb::envoy::config::rbac::v3::rbac::Action as RbacAction;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::PolicySpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacFilter;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager::RouteSpecifier,
    http_filter::ConfigType,
};
use envoy_types::pb::envoy::extensions::load_balancing_policies::pick_first::v3::PickFirst;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, UpstreamTlsContext, common_tls_context::ValidationContextType,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{UpstreamProtocolOptions, explicit_http_config::ProtocolConfig},
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use super::*;
use crate::snapshot::type_url;

const SAMPLE: &str = r#"
services:
  - name: greeter
    timeout: 5s
    retry: { retry_on: [unavailable, cancelled], num_retries: 2, backoff: { base_interval: 25ms, max_interval: 250ms } }
    routes:
      - match:
          path: /helloworld.Greeter/SayHello
          headers: [ { name: x-canary, exact: "true" } ]
        cluster: canary
      - match: { prefix: /helloworld.Greeter/, case_sensitive: false }
        weighted_clusters: [ { name: main, weight: 90 }, { name: canary, weight: 10 } ]
        timeout: 2s
        fault: { delay: { fixed: 100ms, percent: 5 }, abort: { grpc_status: 14, percent: 0.5 } }
        hash_policy: [ { header: x-user }, { channel_id: true } ]
      - match: { regex: "/grpc\\.health\\..*" }
        cluster: main
clusters:
  - name: main
    circuit_breakers: { max_requests: 200 }
    outlier_detection: { interval: 10s, failure_percentage: { threshold: 50 } }
    localities:
      - { region: us-east, zone: a, priority: 0, weight: 3, endpoints: [ { address: "127.0.0.1:50051" }, { address: "127.0.0.1:50052", weight: 2 } ] }
      - { region: us-west, zone: b, priority: 1, endpoints: [ { address: "[::1]:50053", health: draining } ] }
  - name: canary
    lb_policy: ring_hash
    ring_hash: { minimum_ring_size: 64, maximum_ring_size: 1024 }
    eds_service_name: canary-eds
    load_reporting: true
    tls:
      ca_certificate_provider: roots
      certificate_provider: default
      san_matchers: [ { exact: "spiffe://example.org/ns/default/sa/greeter" } ]
    localities:
      - { endpoints: [ { address: "127.0.0.1:50061" } ] }
  - name: first
    lb_policy: pick_first
    http2: false
servers:
  - listening_address: 0.0.0.0:50051
    tls: { certificate_provider: default, ca_certificate_provider: roots, require_client_certificate: true }
    rbac:
      action: deny
      policies:
        - name: no-admin
          permissions: [ { path: { prefix: /admin. } } ]
          principals: [ any ]
"#;

fn sample() -> EnvoyResources {
    MeshConfig::from_yaml(SAMPLE).unwrap().translate().unwrap()
}

fn unpack<T: Message + Name + Default>(any: &Any) -> T {
    assert_eq!(any.type_url, T::type_url());
    T::decode(any.value.as_slice()).unwrap()
}

fn hcm_of(listener: &Listener) -> HttpConnectionManager {
    unpack(
        listener
            .api_listener
            .as_ref()
            .unwrap()
            .api_listener
            .as_ref()
            .unwrap(),
    )
}

fn typed_filter_config(filter: &HttpFilter) -> &Any {
    match filter.config_type.as_ref().unwrap() {
        ConfigType::TypedConfig(any) => any,
        ConfigType::ConfigDiscovery(_) => panic!("not typed"),
    }
}

#[test]
fn client_listener_is_an_api_listener_with_rds_over_ads_and_router_last() {
    let resources = sample();
    let listener = resources
        .listeners
        .iter()
        .find(|l| l.name == "greeter")
        .unwrap();
    assert!(
        listener.address.is_none(),
        "a client listener has no address"
    );
    let hcm = hcm_of(listener);
    let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier else {
        panic!("not RDS")
    };
    assert_eq!(rds.route_config_name, "greeter");
    let source = rds.config_source.as_ref().unwrap();
    assert_eq!(
        source.config_source_specifier,
        Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {}))
    );
    assert_eq!(source.resource_api_version, ApiVersion::V3 as i32);
    let names: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, [FAULT_FILTER_NAME, ROUTER_FILTER_NAME]);
    let router = hcm.http_filters.last().unwrap();
    assert_eq!(
        typed_filter_config(router).type_url,
        "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
    );
    let _: Router = unpack(typed_filter_config(router));
    // The service has no fault of its own: the filter's config is empty, routes override it.
    assert_eq!(
        unpack::<HttpFault>(typed_filter_config(&hcm.http_filters[0])),
        HttpFault::default()
    );
    let max = hcm
        .common_http_protocol_options
        .unwrap()
        .max_stream_duration
        .unwrap();
    assert_eq!((max.seconds, max.nanos), (5, 0));
}

#[test]
fn service_without_faults_has_only_the_router() {
    let mesh = MeshConfig::from_yaml(
        "services: [ { name: s, routes: [ { cluster: c } ] } ]\nclusters: [ { name: c } ]\n",
    )
    .unwrap();
    let resources = mesh.translate().unwrap();
    let hcm = hcm_of(&resources.listeners[0]);
    assert_eq!(hcm.http_filters.len(), 1);
    assert_eq!(hcm.http_filters[0].name, ROUTER_FILTER_NAME);
    assert!(hcm.common_http_protocol_options.is_none());
    let vhost = &resources.route_configurations[0].virtual_hosts[0];
    assert_eq!(vhost.domains, ["*"]);
    let Some(PathSpecifier::Prefix(prefix)) =
        &vhost.routes[0].r#match.as_ref().unwrap().path_specifier
    else {
        panic!("no prefix")
    };
    assert_eq!(prefix, "", "no matcher means every path");
}

#[test]
fn route_configuration_carries_matchers_actions_and_policies() {
    let resources = sample();
    let route_config = &resources.route_configurations[0];
    assert_eq!(route_config.name, "greeter");
    let vhost = &route_config.virtual_hosts[0];
    assert_eq!(vhost.domains, ["*"]);
    let retry = vhost.retry_policy.as_ref().unwrap();
    assert_eq!(retry.retry_on, "unavailable,cancelled");
    assert_eq!(retry.num_retries.unwrap().value, 2);
    let backoff = retry.retry_back_off.as_ref().unwrap();
    assert_eq!(backoff.base_interval.unwrap().nanos, 25_000_000);
    assert_eq!(backoff.max_interval.unwrap().nanos, 250_000_000);

    let [exact, weighted, regex] = vhost.routes.as_slice() else {
        panic!("three routes")
    };
    let exact_match = exact.r#match.as_ref().unwrap();
    assert_eq!(
        exact_match.path_specifier,
        Some(PathSpecifier::Path("/helloworld.Greeter/SayHello".into()))
    );
    assert!(exact_match.case_sensitive.is_none());
    let header = &exact_match.headers[0];
    assert_eq!(header.name, "x-canary");
    let Some(HeaderMatchSpecifier::StringMatch(string)) = &header.header_match_specifier else {
        panic!()
    };
    assert_eq!(
        string.match_pattern,
        Some(MatchPattern::Exact("true".into()))
    );
    let Some(Action::Route(action)) = &exact.action else {
        panic!()
    };
    assert_eq!(
        action.cluster_specifier,
        Some(ClusterSpecifier::Cluster("canary".into()))
    );

    let weighted_match = weighted.r#match.as_ref().unwrap();
    assert!(!weighted_match.case_sensitive.unwrap().value);
    let Some(Action::Route(action)) = &weighted.action else {
        panic!()
    };
    let Some(ClusterSpecifier::WeightedClusters(split)) = &action.cluster_specifier else {
        panic!()
    };
    let weights: Vec<(&str, u32)> = split
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.unwrap().value))
        .collect();
    assert_eq!(weights, [("main", 90), ("canary", 10)]);
    let timeout = action
        .max_stream_duration
        .as_ref()
        .unwrap()
        .max_stream_duration
        .unwrap();
    assert_eq!(timeout.seconds, 2);
    assert!(matches!(
        &action.hash_policy[0].policy_specifier,
        Some(PolicySpecifier::Header(h)) if h.header_name == "x-user"
    ));
    assert!(matches!(
        &action.hash_policy[1].policy_specifier,
        Some(PolicySpecifier::FilterState(f)) if f.key == "io.grpc.channel_id"
    ));
    let fault: HttpFault = unpack(&weighted.typed_per_filter_config[FAULT_FILTER_NAME]);
    let delay = fault.delay.unwrap();
    assert_eq!(delay.percentage.unwrap().numerator, 50_000);
    let abort = fault.abort.unwrap();
    assert_eq!(abort.percentage.unwrap().numerator, 5_000);
    assert_eq!(abort.error_type, Some(ErrorType::GrpcStatus(14)));

    let Some(PathSpecifier::SafeRegex(regex_match)) =
        &regex.r#match.as_ref().unwrap().path_specifier
    else {
        panic!()
    };
    assert_eq!(regex_match.regex, "/grpc\\.health\\..*");
    assert!(regex.typed_per_filter_config.is_empty());
}

#[test]
fn clusters_are_eds_over_ads_with_explicit_http2() {
    let resources = sample();
    let main = &resources.clusters[0];
    assert_eq!(main.name, "main");
    assert_eq!(
        main.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
    );
    let eds = main.eds_cluster_config.as_ref().unwrap();
    assert_eq!(
        eds.eds_config.as_ref().unwrap().config_source_specifier,
        Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {}))
    );
    assert_eq!(eds.service_name, "");
    assert_eq!(main.lb_policy, EnvoyLbPolicy::RoundRobin as i32);
    assert!(
        matches!(
            main.common_lb_config
                .as_ref()
                .unwrap()
                .locality_config_specifier,
            Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_))
        ),
        "Envoy honours locality weights only with locality_weighted_lb_config"
    );
    let options: HttpProtocolOptions =
        unpack(&main.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS_KEY]);
    let Some(UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) =
        options.upstream_protocol_options
    else {
        panic!("no explicit http config")
    };
    assert!(matches!(
        explicit.protocol_config,
        Some(ProtocolConfig::Http2ProtocolOptions(_))
    ));
    let thresholds = &main.circuit_breakers.as_ref().unwrap().thresholds;
    assert_eq!(thresholds[0].max_requests.unwrap().value, 200);
    let outlier = main.outlier_detection.as_ref().unwrap();
    assert_eq!(
        outlier.enforcing_success_rate.unwrap().value,
        0,
        "gRFC A50: success rate off unless configured"
    );
    assert_eq!(outlier.enforcing_failure_percentage.unwrap().value, 100);
    assert_eq!(outlier.failure_percentage_threshold.unwrap().value, 50);
    assert_eq!(outlier.enforcing_consecutive_5xx.unwrap().value, 0);
    assert_eq!(outlier.interval.unwrap().seconds, 10);

    let canary = &resources.clusters[1];
    assert_eq!(
        canary.eds_cluster_config.as_ref().unwrap().service_name,
        "canary-eds"
    );
    assert_eq!(canary.lb_policy, EnvoyLbPolicy::RingHash as i32);
    let Some(LbConfig::RingHashLbConfig(ring)) = &canary.lb_config else {
        panic!()
    };
    assert_eq!(ring.minimum_ring_size.unwrap().value, 64);
    assert_eq!(ring.maximum_ring_size.unwrap().value, 1024);
    let socket = canary.transport_socket.as_ref().unwrap();
    assert_eq!(socket.name, TLS_TRANSPORT_SOCKET_NAME);
    let Some(TransportSocketConfig::TypedConfig(any)) = &socket.config_type else {
        panic!()
    };
    let tls: UpstreamTlsContext = unpack(any);
    let common = tls.common_tls_context.unwrap();
    assert_eq!(
        common
            .tls_certificate_provider_instance
            .unwrap()
            .instance_name,
        "default"
    );
    let Some(ValidationContextType::ValidationContext(validation)) = common.validation_context_type
    else {
        panic!()
    };
    assert_eq!(
        validation
            .ca_certificate_provider_instance
            .unwrap()
            .instance_name,
        "roots"
    );
    #[allow(deprecated)]
    let sans = validation.match_subject_alt_names;
    assert_eq!(
        sans[0].match_pattern,
        Some(MatchPattern::Exact(
            "spiffe://example.org/ns/default/sa/greeter".into()
        ))
    );

    let first = &resources.clusters[2];
    assert!(
        first.typed_extension_protocol_options.is_empty(),
        "http2: false"
    );
    let policies = &first.load_balancing_policy.as_ref().unwrap().policies;
    let pick_first = policies[0].typed_extension_config.as_ref().unwrap();
    let _: PickFirst = unpack(pick_first.typed_config.as_ref().unwrap());
    assert_eq!(
        policies.len(),
        2,
        "round_robin follows for clients without pick_first"
    );
}

#[test]
fn load_reporting_sets_lrs_server_to_self() {
    let resources = sample();
    let by_name = |name: &str| resources.clusters.iter().find(|c| c.name == name).unwrap();
    // gRFC A27: a client reports a cluster's load only when its lrs_server is `self`.
    assert_eq!(
        by_name("canary")
            .lrs_server
            .as_ref()
            .unwrap()
            .config_source_specifier,
        Some(ConfigSourceSpecifier::Self_(SelfConfigSource::default()))
    );
    assert_eq!(by_name("main").lrs_server, None);
}

#[test]
fn load_assignments_always_carry_locality_weights() {
    let resources = sample();
    let main = &resources.cluster_load_assignments[0];
    assert_eq!(main.cluster_name, "main");
    let [east, west] = main.endpoints.as_slice() else {
        panic!("two localities")
    };
    assert_eq!(east.load_balancing_weight.unwrap().value, 3);
    assert_eq!(east.priority, 0);
    assert_eq!(east.locality.as_ref().unwrap().region, "us-east");
    assert_eq!(
        west.load_balancing_weight.unwrap().value,
        1,
        "default weight is sent, not omitted"
    );
    assert_eq!(west.priority, 1);
    let weights: Vec<u32> = east
        .lb_endpoints
        .iter()
        .map(|e| e.load_balancing_weight.unwrap().value)
        .collect();
    assert_eq!(weights, [1, 2]);
    assert_eq!(
        east.lb_endpoints[0].health_status,
        HealthStatus::Healthy as i32
    );
    assert_eq!(
        west.lb_endpoints[0].health_status,
        HealthStatus::Draining as i32
    );
    let Some(envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(
        endpoint,
    )) = &west.lb_endpoints[0].host_identifier
    else {
        panic!()
    };
    let Some(AddressKind::SocketAddress(socket)) = &endpoint.address.as_ref().unwrap().address
    else {
        panic!()
    };
    assert_eq!(socket.address, "::1");
    assert_eq!(socket.port_specifier, Some(PortSpecifier::PortValue(50053)));
    assert_eq!(
        resources.cluster_load_assignments[1].cluster_name,
        "canary-eds"
    );
    assert!(resources.cluster_load_assignments[2].endpoints.is_empty());
}

#[test]
fn server_listener_follows_grfc_a36() {
    let resources = sample();
    let listener = resources
        .listeners
        .iter()
        .find(|l| l.name == "grpc/server?xds.resource.listening_address=0.0.0.0:50051")
        .unwrap();
    let Some(AddressKind::SocketAddress(socket)) = &listener.address.as_ref().unwrap().address
    else {
        panic!()
    };
    assert_eq!(socket.address, "0.0.0.0");
    assert_eq!(socket.port_specifier, Some(PortSpecifier::PortValue(50051)));
    let chain = &listener.filter_chains[0];
    let filter = &chain.filters[0];
    assert_eq!(filter.name, HTTP_CONNECTION_MANAGER_FILTER_NAME);
    let Some(FilterConfig::TypedConfig(any)) = &filter.config_type else {
        panic!()
    };
    let hcm: HttpConnectionManager = unpack(any);
    let names: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, [RBAC_FILTER_NAME, ROUTER_FILTER_NAME]);
    let rbac: RbacFilter = unpack(typed_filter_config(&hcm.http_filters[0]));
    let rules = rbac.rules.unwrap();
    assert_eq!(rules.action, RbacAction::Deny as i32);
    assert!(rules.policies.contains_key("no-admin"));
    let Some(RouteSpecifier::RouteConfig(routes)) = &hcm.route_specifier else {
        panic!("inline routes")
    };
    assert!(matches!(
        routes.virtual_hosts[0].routes[0].action,
        Some(Action::NonForwardingAction(_))
    ));
    let Some(TransportSocketConfig::TypedConfig(tls)) =
        &chain.transport_socket.as_ref().unwrap().config_type
    else {
        panic!()
    };
    let tls: DownstreamTlsContext = unpack(tls);
    assert!(tls.require_client_certificate.unwrap().value);
}

#[test]
fn snapshot_has_every_resource_by_name_at_one_version() {
    let snapshot = sample().into_snapshot("7");
    let names = |t: &str| {
        snapshot
            .resources(t)
            .unwrap()
            .names()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(type_url::LISTENER),
        [
            "greeter",
            "grpc/server?xds.resource.listening_address=0.0.0.0:50051"
        ]
    );
    assert_eq!(names(type_url::ROUTE_CONFIGURATION), ["greeter"]);
    assert_eq!(names(type_url::CLUSTER), ["canary", "first", "main"]);
    assert_eq!(
        names(type_url::CLUSTER_LOAD_ASSIGNMENT),
        ["canary-eds", "first", "main"]
    );
    for t in type_url::ALL {
        assert_eq!(snapshot.version(t), "7");
    }
}

#[test]
fn fractional_percent_is_per_million_and_clamped() {
    assert_eq!(fractional_percent(100.0).numerator, 1_000_000);
    assert_eq!(fractional_percent(0.0001).numerator, 1);
    assert_eq!(fractional_percent(f64::NAN).numerator, 0);
    assert_eq!(fractional_percent(250.0).numerator, 1_000_000);
}
