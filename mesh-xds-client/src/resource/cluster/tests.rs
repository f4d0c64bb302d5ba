use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::LoadBalancingPolicy;
use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, CustomClusterType, DiscoveryType, EdsClusterConfig, LbConfig,
    LbPolicy as PbLbPolicy, LeastRequestLbConfig,
};
use envoy_types::pb::envoy::config::cluster::v3::load_balancing_policy::Policy;
use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers as PbCircuitBreakers, Cluster as PbCluster, OutlierDetection as PbOutlier,
};
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ConfigSource, RoutingPriority, SelfConfigSource, TransportSocket,
    TypedExtensionConfig,
};
use envoy_types::pb::envoy::extensions::clusters::aggregate::v3::ClusterConfig;
use envoy_types::pb::envoy::extensions::load_balancing_policies::client_side_weighted_round_robin::v3::ClientSideWeightedRoundRobin;
use envoy_types::pb::envoy::extensions::load_balancing_policies::pick_first::v3::PickFirst;
use envoy_types::pb::envoy::extensions::load_balancing_policies::ring_hash::v3::RingHash;
use envoy_types::pb::envoy::extensions::load_balancing_policies::wrr_locality::v3::WrrLocality;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::{
    CombinedCertificateValidationContext, ValidationContextType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateProviderPluginInstance, CertificateValidationContext, CommonTlsContext,
    UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher as PbStringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::{Any, BoolValue, FloatValue};
use mesh_core::cluster::{
    CircuitBreakers, Cluster, ConsecutiveErrorEjection, DiscoveryKind, LbPolicy, LoadReportServer,
    OutlierDetection, SuccessRateEjection, WrrConfig,
};
use mesh_core::endpoint::{Endpoint, EndpointSet, LocalityEndpoints, Metadata, MetadataValue};
use mesh_core::matcher::StringMatcher;
use mesh_core::tls::{CertificateProviderInstance, CertificateValidation, UpstreamTls};
use prost::Message as _;

use super::validate_cluster;
use crate::resource::ResourceError;
use crate::resource::endpoint::test_support::*;

/// The certificate provider instance the test bootstrap defines.
pub(super) const PROVIDER: &str = "default";

pub(super) fn validate(cluster: &PbCluster) -> Result<Cluster, ResourceError> {
    validate_cluster(&cluster.encode_to_vec(), &ctx_with_providers(&[PROVIDER])).map(
        |(name, converted)| {
            assert_eq!(name, cluster.name);
            converted
        },
    )
}

pub(super) fn config_source(specifier: ConfigSourceSpecifier) -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(specifier),
        ..Default::default()
    }
}

/// A minimal valid EDS cluster (gRFC A27): `type: EDS`, EDS config from ADS.
pub(super) fn eds_cluster(name: &str) -> PbCluster {
    PbCluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(config_source(ConfigSourceSpecifier::Ads(
                AggregatedConfigSource {},
            ))),
            service_name: String::new(),
        }),
        ..Default::default()
    }
}

/// An aggregate cluster over `children`.
pub(super) fn aggregate_cluster(name: &str, children: &[&str]) -> PbCluster {
    PbCluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::ClusterType(CustomClusterType {
            name: "envoy.clusters.aggregate".to_owned(),
            typed_config: Some(any(&ClusterConfig {
                clusters: children.iter().map(|c| (*c).to_owned()).collect(),
            })),
        })),
        ..Default::default()
    }
}

/// A LOGICAL_DNS cluster for `host:port` (gRFC A37).
pub(super) fn logical_dns_cluster(name: &str, host: &str, port: u32) -> PbCluster {
    PbCluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::LogicalDns as i32)),
        load_assignment: Some(cla(
            name,
            vec![locality("", "", 0, None, vec![lb_endpoint(host, port)])],
        )),
        ..Default::default()
    }
}

/// A `load_balancing_policy` list of the given configs.
pub(super) fn policy_list(configs: Vec<Any>) -> LoadBalancingPolicy {
    LoadBalancingPolicy {
        policies: configs
            .into_iter()
            .map(|config| Policy {
                typed_extension_config: Some(TypedExtensionConfig {
                    name: String::new(),
                    typed_config: Some(config),
                }),
            })
            .collect(),
    }
}

pub(super) fn tls_socket(context: &UpstreamTlsContext) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_owned(),
        config_type: Some(ConfigType::TypedConfig(any(context))),
    }
}

pub(super) fn instance(name: &str, certificate: &str) -> CertificateProviderPluginInstance {
    CertificateProviderPluginInstance {
        instance_name: name.to_owned(),
        certificate_name: certificate.to_owned(),
    }
}

pub(super) fn exact(value: &str) -> PbStringMatcher {
    PbStringMatcher {
        match_pattern: Some(MatchPattern::Exact(value.to_owned())),
        ignore_case: false,
    }
}

/// An UpstreamTlsContext validating the server with the provider's roots and `validation` (whose CA is set here).
#[allow(deprecated)] // match_subject_alt_names, as gRFC A29 specifies it
pub(super) fn upstream_tls(san: Option<&str>) -> UpstreamTlsContext {
    UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            validation_context_type: Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    ca_certificate_provider_instance: Some(instance(PROVIDER, "ROOTCA")),
                    match_subject_alt_names: san.map(exact).into_iter().collect(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn provider(certificate: &str) -> CertificateProviderInstance {
    let mut provider = CertificateProviderInstance::new(PROVIDER);
    provider.certificate_name = certificate.into();
    provider
}

#[test]
#[allow(deprecated)] // match_subject_alt_names, as Istio sends it
fn istio_like_eds_cluster_with_mtls_outlier_detection_and_circuit_breakers() {
    let name = "outbound|8080||greeter.default.svc.cluster.local";
    let mut pb = eds_cluster(name);
    if let Some(eds) = &mut pb.eds_cluster_config {
        eds.service_name = name.to_owned();
    }
    pb.connect_timeout = Some(secs(10));
    pb.lb_policy = PbLbPolicy::LeastRequest as i32;
    pb.circuit_breakers = Some(PbCircuitBreakers {
        thresholds: vec![Thresholds {
            priority: RoutingPriority::Default as i32,
            max_connections: Some(u32v(4096)),
            max_pending_requests: Some(u32v(2048)),
            max_requests: Some(u32v(512)),
            max_retries: Some(u32v(7)),
            ..Default::default()
        }],
        ..Default::default()
    });
    // Istio's translation of `outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 15s,
    // maxEjectionPercent: 50}`: success-rate ejection off, gateway errors off.
    pb.outlier_detection = Some(PbOutlier {
        consecutive_5xx: Some(u32v(3)),
        interval: Some(secs(5)),
        base_ejection_time: Some(secs(15)),
        max_ejection_percent: Some(u32v(50)),
        enforcing_consecutive_5xx: Some(u32v(100)),
        enforcing_success_rate: Some(u32v(0)),
        consecutive_gateway_failure: Some(u32v(0)),
        enforcing_consecutive_gateway_failure: Some(u32v(0)),
        ..Default::default()
    });
    let spiffe = "spiffe://cluster.local/ns/default/sa/greeter";
    pb.transport_socket = Some(tls_socket(&UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_provider_instance: Some(instance(PROVIDER, "default")),
            alpn_protocols: vec!["h2".to_owned()],
            validation_context_type: Some(ValidationContextType::CombinedValidationContext(
                CombinedCertificateValidationContext {
                    default_validation_context: Some(CertificateValidationContext {
                        match_subject_alt_names: vec![exact(spiffe)],
                        ca_certificate_provider_instance: Some(instance(PROVIDER, "ROOTCA")),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        sni: "outbound_.8080_._.greeter.default.svc.cluster.local".to_owned(),
        ..Default::default()
    }));
    pb.metadata = Some(string_metadata("istio", "default_original_port", "8080"));

    let mut circuit_breakers = CircuitBreakers::default()
        .with_max_requests(512_u32)
        .with_max_pending_requests(2048_u32)
        .with_max_retries(7_u32);
    circuit_breakers.max_connections = 4096;
    let mut consecutive_5xx = ConsecutiveErrorEjection::default();
    consecutive_5xx.consecutive = 3;
    let expected = Cluster::new(
        name,
        DiscoveryKind::Eds {
            service_name: Some(name.into()),
        },
    )
    .with_lb_policy(LbPolicy::LeastRequest { choice_count: 2 })
    .with_circuit_breakers(circuit_breakers)
    .with_outlier_detection(
        OutlierDetection::default()
            .with_interval(Duration::from_secs(5))
            .with_base_ejection_time(Duration::from_secs(15))
            .with_max_ejection_time(Duration::from_secs(300))
            .with_max_ejection_percent(50_u32)
            .with_consecutive_5xx(consecutive_5xx),
    )
    .with_tls(
        UpstreamTls::new(
            CertificateValidation::default()
                .with_ca(provider("ROOTCA"))
                .with_san_matchers(vec![StringMatcher::exact(spiffe)]),
        )
        .with_identity(provider("default"))
        .with_sni(Arc::<str>::from(
            "outbound_.8080_._.greeter.default.svc.cluster.local",
        )),
    )
    .with_connect_timeout(Duration::from_secs(10))
    .with_metadata(Metadata::new(BTreeMap::from([(
        Arc::<str>::from("istio"),
        MetadataValue::Struct(
            BTreeMap::from([(
                Arc::<str>::from("default_original_port"),
                MetadataValue::String("8080".into()),
            )])
            .into(),
        ),
    )])));

    assert_eq!(validate(&pb).unwrap(), expected);
}

#[test]
fn minimal_eds_cluster_gets_round_robin_and_default_limits() {
    let cluster = validate(&eds_cluster("greeter")).unwrap();
    assert_eq!(
        cluster,
        Cluster::eds("greeter").with_lb_policy(LbPolicy::RoundRobin)
    );
    assert_eq!(cluster.circuit_breakers.max_requests, 1024);
    assert_eq!(cluster.eds_service_name(), Some("greeter"));
}

#[test]
fn eds_config_self_and_lrs_self_are_accepted() {
    let mut pb = eds_cluster("greeter");
    pb.eds_cluster_config = Some(EdsClusterConfig {
        eds_config: Some(config_source(ConfigSourceSpecifier::Self_(
            SelfConfigSource::default(),
        ))),
        service_name: "greeter-eds".to_owned(),
    });
    pb.lrs_server = Some(config_source(ConfigSourceSpecifier::Self_(
        SelfConfigSource::default(),
    )));
    let cluster = validate(&pb).unwrap();
    assert_eq!(cluster.eds_service_name(), Some("greeter-eds"));
    assert_eq!(cluster.lrs_server, Some(LoadReportServer::SameAsXds));
}

#[test]
fn aggregate_cluster_keeps_children_in_order_and_ignores_its_lb_policy() {
    let mut pb = aggregate_cluster("agg", &["primary", "secondary", "primary", "dns"]);
    // Envoy requires CLUSTER_PROVIDED here; gRFC A75 ignores it either way.
    pb.lb_policy = PbLbPolicy::ClusterProvided as i32;
    let cluster = validate(&pb).unwrap();
    assert_eq!(
        cluster.discovery,
        DiscoveryKind::Aggregate {
            clusters: vec!["primary".into(), "secondary".into(), "dns".into()],
        }
    );
}

#[test]
fn logical_dns_cluster_names_host_and_port() {
    let cluster = validate(&logical_dns_cluster("dns", "greeter.example.com", 443)).unwrap();
    assert_eq!(
        cluster.discovery,
        DiscoveryKind::LogicalDns {
            host: "greeter.example.com".into(),
            port: 443,
        }
    );
}

#[test]
fn static_cluster_takes_endpoints_from_load_assignment_with_unweighted_localities() {
    let pb = PbCluster {
        name: "static".to_owned(),
        load_assignment: Some(cla(
            "ignored",
            vec![locality(
                "",
                "",
                0,
                None,
                vec![lb_endpoint("127.0.0.1", 8080)],
            )],
        )),
        ..Default::default()
    };
    let cluster = validate(&pb).unwrap();
    let expected = EndpointSet::new(
        "static",
        vec![LocalityEndpoints::new(
            core_locality("", ""),
            0,
            1,
            vec![Endpoint::new(
                "127.0.0.1:8080".parse::<std::net::SocketAddr>().unwrap(),
            )],
        )],
    );
    assert_eq!(
        cluster.discovery,
        DiscoveryKind::Static {
            endpoints: Arc::new(expected),
        }
    );
}

#[test]
fn static_cluster_without_load_assignment_is_empty() {
    let pb = PbCluster {
        name: "blackhole".to_owned(),
        ..Default::default()
    };
    let DiscoveryKind::Static { endpoints } = validate(&pb).unwrap().discovery else {
        panic!("not static");
    };
    assert_eq!(endpoints.endpoint_count(), 0);
}

#[test]
fn load_balancing_policy_list_takes_the_first_supported_entry() {
    let mut pb = eds_cluster("c");
    // `lb_policy` is ignored when the list is present (gRFC A52).
    pb.lb_policy = PbLbPolicy::Maglev as i32;
    pb.load_balancing_policy = Some(policy_list(vec![
        raw_any("type.googleapis.com/xds.type.v3.TypedStruct", &[]),
        raw_any(
            "type.googleapis.com/envoy.extensions.load_balancing_policies.maglev.v3.Maglev",
            &[],
        ),
        any(&RingHash {
            minimum_ring_size: Some(u64v(2048)),
            maximum_ring_size: Some(u64v(4096)),
            ..Default::default()
        }),
        any(&PickFirst::default()),
    ]));
    assert_eq!(
        validate(&pb).unwrap().lb_policy,
        LbPolicy::RingHash {
            min_ring_size: 2048,
            max_ring_size: 4096,
        }
    );
}

#[test]
fn wrr_locality_contributes_its_endpoint_picking_policy() {
    let mut pb = eds_cluster("c");
    let wrr = ClientSideWeightedRoundRobin {
        enable_oob_load_report: Some(BoolValue { value: true }),
        blackout_period: Some(secs(5)),
        weight_update_period: Some(millis(20)),
        error_utilization_penalty: Some(FloatValue { value: 0.5 }),
        ..Default::default()
    };
    pb.load_balancing_policy = Some(policy_list(vec![any(&WrrLocality {
        endpoint_picking_policy: Some(policy_list(vec![any(&wrr)])),
    })]));
    let mut expected = WrrConfig::default();
    expected.enable_oob_load_report = true;
    expected.blackout_period = Duration::from_secs(5);
    // gRFC A58: raised to the 100 ms floor.
    expected.weight_update_period = Duration::from_millis(100);
    expected.error_utilization_penalty = 0.5;
    assert_eq!(
        validate(&pb).unwrap().lb_policy,
        LbPolicy::WeightedRoundRobin(expected)
    );
}

#[test]
fn pick_first_keeps_shuffle_address_list() {
    let mut pb = eds_cluster("c");
    pb.load_balancing_policy = Some(policy_list(vec![any(&PickFirst {
        shuffle_address_list: true,
    })]));
    assert_eq!(
        validate(&pb).unwrap().lb_policy,
        LbPolicy::PickFirst {
            shuffle_address_list: true
        }
    );
}

#[test]
fn legacy_ring_hash_defaults_and_least_request_cap() {
    let mut ring = eds_cluster("c");
    ring.lb_policy = PbLbPolicy::RingHash as i32;
    assert_eq!(validate(&ring).unwrap().lb_policy, LbPolicy::ring_hash());

    let mut least = eds_cluster("c");
    least.lb_policy = PbLbPolicy::LeastRequest as i32;
    least.lb_config = Some(LbConfig::LeastRequestLbConfig(LeastRequestLbConfig {
        choice_count: Some(u32v(50)),
        ..Default::default()
    }));
    // gRFC A48: capped at 10.
    assert_eq!(
        validate(&least).unwrap().lb_policy,
        LbPolicy::LeastRequest { choice_count: 10 }
    );
}

#[test]
fn empty_outlier_detection_enables_success_rate_and_consecutive_5xx_only() {
    let mut pb = eds_cluster("c");
    pb.outlier_detection = Some(PbOutlier::default());
    let od = validate(&pb).unwrap().outlier_detection.unwrap();
    assert_eq!(od.interval, Duration::from_secs(10));
    assert_eq!(od.base_ejection_time, Duration::from_secs(30));
    assert_eq!(od.max_ejection_time, Duration::from_secs(300));
    assert_eq!(od.max_ejection_percent, 10);
    // gRFC A50: success rate is off only when `enforcing_success_rate` is 0; its default is 100.
    assert_eq!(od.success_rate, Some(SuccessRateEjection::default()));
    // gRFC A50: failure percentage is off when `enforcing_failure_percentage` is unset or 0.
    assert_eq!(od.failure_percentage, None);
    // Envoy: consecutive 5xx defaults on (5, enforced 100%); gateway failures default to 0% enforcement.
    assert_eq!(
        od.consecutive_5xx,
        Some(ConsecutiveErrorEjection::default())
    );
    assert_eq!(od.consecutive_gateway_failure, None);
}

#[test]
fn failure_percentage_runs_when_enforced_and_max_ejection_time_covers_base() {
    let mut pb = eds_cluster("c");
    pb.outlier_detection = Some(PbOutlier {
        base_ejection_time: Some(secs(600)),
        enforcing_failure_percentage: Some(u32v(80)),
        failure_percentage_threshold: Some(u32v(60)),
        failure_percentage_minimum_hosts: Some(u32v(3)),
        consecutive_5xx: Some(u32v(0)),
        enforcing_consecutive_gateway_failure: Some(u32v(50)),
        ..Default::default()
    });
    let od = validate(&pb).unwrap().outlier_detection.unwrap();
    // gRFC A50: ejections last at most max(base_ejection_time, max_ejection_time).
    assert_eq!(od.max_ejection_time, Duration::from_secs(600));
    let failure = od.failure_percentage.unwrap();
    assert_eq!(
        (
            failure.enforcement_percentage,
            failure.threshold,
            failure.minimum_hosts,
            failure.request_volume
        ),
        (80, 60, 3, 50)
    );
    assert_eq!(od.consecutive_5xx, None);
    let gateway = od.consecutive_gateway_failure.unwrap();
    assert_eq!(
        (gateway.consecutive, gateway.enforcement_percentage),
        (5, 50)
    );
}

#[test]
fn circuit_breakers_use_the_default_priority_thresholds() {
    let mut pb = eds_cluster("c");
    pb.circuit_breakers = Some(PbCircuitBreakers {
        thresholds: vec![
            Thresholds {
                priority: RoutingPriority::High as i32,
                max_requests: Some(u32v(1)),
                ..Default::default()
            },
            Thresholds {
                priority: RoutingPriority::Default as i32,
                max_requests: Some(u32v(100)),
                ..Default::default()
            },
            Thresholds {
                priority: RoutingPriority::Default as i32,
                max_requests: Some(u32v(5)),
                ..Default::default()
            },
        ],
        ..Default::default()
    });
    let limits = validate(&pb).unwrap().circuit_breakers;
    assert_eq!(
        limits,
        CircuitBreakers::default().with_max_requests(100_u32)
    );
}

#[test]
fn raw_buffer_transport_socket_is_plaintext() {
    let mut pb = eds_cluster("c");
    pb.transport_socket = Some(TransportSocket {
        name: "envoy.transport_sockets.raw_buffer".to_owned(),
        config_type: Some(ConfigType::TypedConfig(any(&RawBuffer {}))),
    });
    assert_eq!(validate(&pb).unwrap().tls, None);
}

#[test]
fn server_only_tls_with_system_roots() {
    let mut pb = eds_cluster("c");
    pb.transport_socket = Some(tls_socket(&UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            validation_context_type: Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    system_root_certs: Some(Default::default()),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    }));
    let tls = validate(&pb).unwrap().tls.unwrap();
    assert_eq!(tls.identity, None);
    assert_eq!(
        tls.validation,
        CertificateValidation::default().with_system_root_certs(true)
    );
    assert_eq!(tls.sni, None);
}

#[test]
fn validation_context_sets_ca_provider_and_san_matchers() {
    let mut pb = eds_cluster("c");
    pb.transport_socket = Some(tls_socket(&upstream_tls(Some("spiffe://td/ns/a/sa/b"))));
    let tls = validate(&pb).unwrap().tls.unwrap();
    assert_eq!(tls.validation.ca, Some(provider("ROOTCA")));
    assert_eq!(
        tls.validation.san_matchers,
        vec![StringMatcher::exact("spiffe://td/ns/a/sa/b")]
    );
}
