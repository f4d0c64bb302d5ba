//! One test per rejection rule, each asserting the exact problem text with its field path.

#![allow(deprecated)] // builds the deprecated TLS fields a control plane may still send

use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection as PbOutlier;
use envoy_types::pb::envoy::config::cluster::v3::cluster::ring_hash_lb_config::HashFunction as LegacyHash;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, CustomClusterType, DiscoveryType, EdsClusterConfig, LbConfig,
    LbPolicy as PbLbPolicy, LeastRequestLbConfig, RingHashLbConfig,
};
use envoy_types::pb::envoy::config::cluster::v3::load_balancing_policy::Policy;
use envoy_types::pb::envoy::config::cluster::v3::LoadBalancingPolicy;
use envoy_types::pb::envoy::config::core::v3::address::Address as PbAddressKind;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::config::core::v3::{
    Address, ApiConfigSource, SocketAddress, TransportSocket,
};
use envoy_types::pb::envoy::extensions::clusters::aggregate::v3::ClusterConfig;
use envoy_types::pb::envoy::extensions::load_balancing_policies::client_side_weighted_round_robin::v3::ClientSideWeightedRoundRobin;
use envoy_types::pb::envoy::extensions::load_balancing_policies::least_request::v3::LeastRequest;
use envoy_types::pb::envoy::extensions::load_balancing_policies::ring_hash::v3::RingHash;
use envoy_types::pb::envoy::extensions::load_balancing_policies::wrr_locality::v3::WrrLocality;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::{
    CertificateProviderInstance as LegacyInstance, ValidationContextType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SdsSecretConfig, TlsCertificate,
    UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher as PbStringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::{BoolValue, Duration as PbDuration, FloatValue};
use prost::Message as _;

use super::tests::*;
use super::validate_cluster;
use crate::resource::ResourceKind;
use crate::resource::endpoint::test_support::*;

/// Asserts `cluster` is rejected with exactly `problems`, in order.
#[track_caller]
fn assert_rejected(cluster: &PbCluster, problems: &[&str]) {
    let err = validate(cluster).expect_err("the cluster should be rejected");
    assert_eq!(err.kind, ResourceKind::Cluster);
    assert_eq!(err.problems, problems, "{err}");
}

/// One `#[test]` per rule: `name: cluster expression => [problems];`.
macro_rules! rejects {
    ($($(#[$meta:meta])* $name:ident: $cluster:expr => [$($problem:expr),+ $(,)?];)+) => {
        $(
            $(#[$meta])*
            #[test]
            fn $name() {
                assert_rejected(&$cluster, &[$($problem),+]);
            }
        )+
    };
}

fn with(mut cluster: PbCluster, change: impl FnOnce(&mut PbCluster)) -> PbCluster {
    change(&mut cluster);
    cluster
}

fn eds_with(change: impl FnOnce(&mut PbCluster)) -> PbCluster {
    with(eds_cluster("c"), change)
}

fn with_tls(context: &UpstreamTlsContext) -> PbCluster {
    eds_with(|c| c.transport_socket = Some(tls_socket(context)))
}

/// A valid TLS context changed by `change` (on the validation context) .
fn tls_validation_with(change: impl FnOnce(&mut CertificateValidationContext)) -> PbCluster {
    let mut context = upstream_tls(None);
    if let Some(CommonTlsContext {
        validation_context_type: Some(ValidationContextType::ValidationContext(validation)),
        ..
    }) = &mut context.common_tls_context
    {
        change(validation);
    }
    with_tls(&context)
}

fn tls_common_with(change: impl FnOnce(&mut CommonTlsContext)) -> PbCluster {
    let mut context = upstream_tls(None);
    if let Some(common) = &mut context.common_tls_context {
        change(common);
    }
    with_tls(&context)
}

fn logical_dns_with(change: impl FnOnce(&mut PbCluster)) -> PbCluster {
    with(logical_dns_cluster("dns", "example.com", 443), change)
}

fn outlier(od: PbOutlier) -> PbCluster {
    eds_with(|c| c.outlier_detection = Some(od))
}

fn lb_list(list: LoadBalancingPolicy) -> PbCluster {
    eds_with(|c| c.load_balancing_policy = Some(list))
}

fn aggregate_config(any: envoy_types::pb::google::protobuf::Any) -> PbCluster {
    PbCluster {
        name: "agg".to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::ClusterType(CustomClusterType {
            name: "envoy.clusters.aggregate".to_owned(),
            typed_config: Some(any),
        })),
        ..Default::default()
    }
}

fn nested_wrr_locality(depth: usize) -> LoadBalancingPolicy {
    let mut list = policy_list(vec![any(&RingHash::default())]);
    for _ in 0..depth {
        list = policy_list(vec![any(&WrrLocality {
            endpoint_picking_policy: Some(list),
        })]);
    }
    list
}

rejects! {
    // ---- Name and discovery.
    empty_name: eds_with(|c| c.name.clear()) => ["name: must not be empty"];
    strict_dns_type: eds_with(|c| c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32)))
        => ["type: STRICT_DNS is not supported"];
    unknown_discovery_type: eds_with(|c| c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(17)))
        => ["type: unknown discovery type 17"];
    eds_cluster_config_missing: eds_with(|c| c.eds_cluster_config = None) => ["eds_cluster_config: field not present"];
    eds_config_missing: eds_with(|c| c.eds_cluster_config = Some(EdsClusterConfig::default()))
        => ["eds_cluster_config.eds_config: field not present"];
    eds_config_not_ads_or_self: eds_with(|c| c.eds_cluster_config = Some(EdsClusterConfig {
            eds_config: Some(config_source(ConfigSourceSpecifier::ApiConfigSource(ApiConfigSource::default()))),
            service_name: String::new(),
        })) => ["eds_cluster_config.eds_config: ConfigSource is not ads or self"];
    xdstp_name_without_service_name: eds_with(|c| c.name = "xdstp://auth/envoy.config.cluster.v3.Cluster/c".to_owned())
        => ["eds_cluster_config.service_name: must be set if the Cluster resource has an xdstp name"];

    // ---- LOGICAL_DNS (gRFC A37).
    logical_dns_without_load_assignment: logical_dns_with(|c| c.load_assignment = None)
        => ["load_assignment: field not present for LOGICAL_DNS cluster"];
    logical_dns_with_two_localities: logical_dns_with(|c| c.load_assignment = Some(cla("dns", vec![
            locality("", "a", 0, None, vec![lb_endpoint("a.example.com", 1)]),
            locality("", "b", 0, None, vec![lb_endpoint("b.example.com", 1)]),
        ]))) => ["load_assignment.endpoints: must contain exactly one locality for LOGICAL_DNS cluster, found 2"];
    logical_dns_with_no_endpoint: logical_dns_with(|c| c.load_assignment = Some(cla("dns", vec![
            locality("", "a", 0, None, vec![]),
        ]))) => ["load_assignment.endpoints[0].lb_endpoints: must contain exactly one endpoint for LOGICAL_DNS cluster, found 0"];
    logical_dns_endpoint_without_socket_address: logical_dns_with(|c| c.load_assignment = Some(cla("dns", vec![
            locality("", "a", 0, None, vec![lb_endpoint_at(Address { address: None })]),
        ]))) => ["load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address: field not present"];
    logical_dns_socket_address_problems: logical_dns_with(|c| c.load_assignment = Some(cla("dns", vec![
            locality("", "a", 0, None, vec![lb_endpoint_at(Address {
                address: Some(PbAddressKind::SocketAddress(SocketAddress {
                    resolver_name: "dns".to_owned(),
                    ..Default::default()
                })),
            })]),
        ]))) => [
            "load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: field not present",
            "load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: field not present",
            "load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.resolver_name: LOGICAL_DNS clusters must not have a custom resolver name",
        ];
    logical_dns_port_out_of_range: logical_dns_cluster("dns", "example.com", 100_000)
        => ["load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: 100000 is out of range (0-65535)"];

    // ---- STATIC endpoints use the EDS rules.
    static_cluster_with_host_name: PbCluster {
            name: "s".to_owned(),
            load_assignment: Some(cla("s", vec![locality("", "", 0, None, vec![lb_endpoint("localhost", 80)])])),
            ..Default::default()
        } => [r#"load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "localhost" is not an IP address"#];

    // ---- Aggregate clusters (gRFC A37).
    aggregate_without_typed_config: PbCluster {
            name: "agg".to_owned(),
            cluster_discovery_type: Some(ClusterDiscoveryType::ClusterType(CustomClusterType {
                name: "envoy.clusters.aggregate".to_owned(),
                typed_config: None,
            })),
            ..Default::default()
        } => ["cluster_type.typed_config: field not present"];
    unsupported_custom_cluster_type: aggregate_config(raw_any("type.googleapis.com/envoy.extensions.clusters.redis.v3.RedisClusterConfig", &[]))
        => [r#"cluster_type.typed_config: custom cluster type "envoy.clusters.aggregate" (type.googleapis.com/envoy.extensions.clusters.redis.v3.RedisClusterConfig) is not supported"#];
    undecodable_aggregate_config: aggregate_config(raw_any("type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig", &[0x0a, 0x05]))
        => ["cluster_type.typed_config: cannot decode aggregate ClusterConfig: failed to decode Protobuf message: ClusterConfig.clusters: buffer underflow"];
    aggregate_without_clusters: aggregate_cluster("agg", &[]) => ["cluster_type.typed_config.clusters: must not be empty"];
    aggregate_with_empty_child_name: aggregate_config(any(&ClusterConfig { clusters: vec!["a".to_owned(), String::new()] }))
        => ["cluster_type.typed_config.clusters[1]: must not be empty"];

    // ---- Legacy lb_policy.
    maglev_lb_policy: eds_with(|c| c.lb_policy = PbLbPolicy::Maglev as i32) => ["lb_policy: MAGLEV is not supported"];
    unknown_lb_policy: eds_with(|c| c.lb_policy = 42) => ["lb_policy: unknown LB policy 42"];
    ring_hash_murmur: eds_with(|c| {
            c.lb_policy = PbLbPolicy::RingHash as i32;
            c.lb_config = Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
                hash_function: LegacyHash::MurmurHash2 as i32,
                ..Default::default()
            }));
        }) => ["ring_hash_lb_config.hash_function: invalid hash function, only XX_HASH is supported"];
    ring_hash_sizes_out_of_range: eds_with(|c| {
            c.lb_policy = PbLbPolicy::RingHash as i32;
            c.lb_config = Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
                minimum_ring_size: Some(u64v(0)),
                maximum_ring_size: Some(u64v(8_388_609)),
                ..Default::default()
            }));
        }) => [
            "ring_hash_lb_config.minimum_ring_size: must be in the range of 1 to 8388608, got 0",
            "ring_hash_lb_config.maximum_ring_size: must be in the range of 1 to 8388608, got 8388609",
        ];
    ring_hash_min_above_max: eds_with(|c| {
            c.lb_policy = PbLbPolicy::RingHash as i32;
            c.lb_config = Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
                minimum_ring_size: Some(u64v(1025)),
                maximum_ring_size: Some(u64v(1024)),
                ..Default::default()
            }));
        }) => ["ring_hash_lb_config.minimum_ring_size: 1025 is greater than maximum_ring_size 1024"];
    least_request_choice_count_below_two: eds_with(|c| {
            c.lb_policy = PbLbPolicy::LeastRequest as i32;
            c.lb_config = Some(LbConfig::LeastRequestLbConfig(LeastRequestLbConfig {
                choice_count: Some(u32v(1)),
                ..Default::default()
            }));
        }) => ["least_request_lb_config.choice_count: must be at least 2, got 1"];

    // ---- load_balancing_policy (gRFC A52).
    no_supported_policy_in_list: lb_list(policy_list(vec![
            raw_any("type.googleapis.com/envoy.extensions.load_balancing_policies.maglev.v3.Maglev", &[]),
            raw_any("type.googleapis.com/xds.type.v3.TypedStruct", &[0x0a, 0x12, b'm', b'y', b'.', b'c', b'u', b's', b't', b'o', b'm', b'.', b'P', b'o', b'l', b'i', b'c', b'y', b'V', b'1']),
        ])) => [r#"load_balancing_policy.policies: no supported load balancing policy (found ["envoy.extensions.load_balancing_policies.maglev.v3.Maglev", "my.custom.PolicyV1"])"#];
    empty_policy_list: lb_list(policy_list(vec![]))
        => ["load_balancing_policy.policies: no supported load balancing policy (found [])"];
    policy_without_typed_extension_config: lb_list(LoadBalancingPolicy { policies: vec![Policy { typed_extension_config: None }] })
        => ["load_balancing_policy.policies[0].typed_extension_config: field not present"];
    invalid_ring_hash_in_list: lb_list(policy_list(vec![any(&RingHash { hash_function: 2, ..Default::default() })]))
        => ["load_balancing_policy.policies[0].typed_extension_config.typed_config.hash_function: invalid hash function, only XX_HASH is supported"];
    least_request_in_list_with_choice_count_one: lb_list(policy_list(vec![any(&LeastRequest { choice_count: Some(u32v(1)), ..Default::default() })]))
        => ["load_balancing_policy.policies[0].typed_extension_config.typed_config.choice_count: must be at least 2, got 1"];
    undecodable_policy_config: lb_list(policy_list(vec![raw_any("type.googleapis.com/envoy.extensions.load_balancing_policies.pick_first.v3.PickFirst", &[0x08])]))
        => ["load_balancing_policy.policies[0].typed_extension_config.typed_config: cannot decode type.googleapis.com/envoy.extensions.load_balancing_policies.pick_first.v3.PickFirst: failed to decode Protobuf message: PickFirst.shuffle_address_list: invalid varint"];
    wrr_locality_without_child_policy: lb_list(policy_list(vec![any(&WrrLocality { endpoint_picking_policy: None })]))
        => ["load_balancing_policy.policies[0].typed_extension_config.typed_config.endpoint_picking_policy: field not present"];
    wrr_negative_error_penalty: lb_list(policy_list(vec![any(&ClientSideWeightedRoundRobin {
            error_utilization_penalty: Some(FloatValue { value: -1.0 }),
            blackout_period: Some(PbDuration { seconds: -1, nanos: 0 }),
            ..Default::default()
        })])) => [
            "load_balancing_policy.policies[0].typed_extension_config.typed_config.blackout_period: negative duration (-1s 0ns)",
            "load_balancing_policy.policies[0].typed_extension_config.typed_config.error_utilization_penalty: must be non-negative, got -1",
        ];
    policies_nested_too_deep: lb_list(nested_wrr_locality(16))
        => [concat!(
            "load_balancing_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ".policies[0].typed_extension_config.typed_config.endpoint_picking_policy",
            ": policies nest more than 16 deep",
        )];

    // ---- Outlier detection (gRFC A50).
    outlier_percentages_above_100: outlier(PbOutlier {
            max_ejection_percent: Some(u32v(101)),
            enforcing_success_rate: Some(u32v(200)),
            enforcing_failure_percentage: Some(u32v(101)),
            failure_percentage_threshold: Some(u32v(150)),
            enforcing_consecutive_5xx: Some(u32v(101)),
            enforcing_consecutive_gateway_failure: Some(u32v(102)),
            ..Default::default()
        }) => [
            "outlier_detection.max_ejection_percent: must be at most 100, got 101",
            "outlier_detection.enforcing_success_rate: must be at most 100, got 200",
            "outlier_detection.enforcing_failure_percentage: must be at most 100, got 101",
            "outlier_detection.failure_percentage_threshold: must be at most 100, got 150",
            "outlier_detection.enforcing_consecutive_5xx: must be at most 100, got 101",
            "outlier_detection.enforcing_consecutive_gateway_failure: must be at most 100, got 102",
        ];
    outlier_threshold_validated_even_when_disabled: outlier(PbOutlier {
            failure_percentage_threshold: Some(u32v(101)),
            ..Default::default()
        }) => ["outlier_detection.failure_percentage_threshold: must be at most 100, got 101"];
    outlier_invalid_durations: outlier(PbOutlier {
            interval: Some(PbDuration { seconds: -5, nanos: 0 }),
            base_ejection_time: Some(PbDuration { seconds: 1, nanos: 1_000_000_000 }),
            max_ejection_time: Some(PbDuration { seconds: 315_576_000_001, nanos: 0 }),
            ..Default::default()
        }) => [
            "outlier_detection.interval: negative duration (-5s 0ns)",
            "outlier_detection.base_ejection_time: nanos 1000000000 out of range",
            "outlier_detection.max_ejection_time: seconds 315576000001 out of range",
        ];

    // ---- Transport socket and TLS (gRFC A29, A101).
    transport_socket_without_config: eds_with(|c| c.transport_socket = Some(TransportSocket {
            name: "envoy.transport_sockets.tls".to_owned(),
            config_type: None,
        })) => ["transport_socket.typed_config: field not present"];
    unsupported_transport_socket: eds_with(|c| c.transport_socket = Some(TransportSocket {
            name: "envoy.transport_sockets.alts".to_owned(),
            config_type: Some(ConfigType::TypedConfig(raw_any("type.googleapis.com/envoy.extensions.transport_sockets.alts.v3.Alts", &[]))),
        })) => [r#"transport_socket.typed_config: transport socket "envoy.transport_sockets.alts" (type.googleapis.com/envoy.extensions.transport_sockets.alts.v3.Alts) is not supported"#];
    undecodable_upstream_tls_context: eds_with(|c| c.transport_socket = Some(TransportSocket {
            name: "envoy.transport_sockets.tls".to_owned(),
            config_type: Some(ConfigType::TypedConfig(raw_any("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", &[0xff]))),
        })) => ["transport_socket.typed_config: cannot decode UpstreamTlsContext: failed to decode Protobuf message: invalid varint"];
    tls_without_common_tls_context: with_tls(&UpstreamTlsContext::default())
        => ["transport_socket.typed_config.common_tls_context: field not present"];
    tls_without_trust_roots: with_tls(&UpstreamTlsContext { common_tls_context: Some(CommonTlsContext::default()), ..Default::default() })
        => ["transport_socket.typed_config.common_tls_context: no CA certificate provider instance (or system_root_certs) configured to validate the server"];
    tls_unknown_ca_provider: tls_validation_with(|v| v.ca_certificate_provider_instance = Some(instance("other", "")))
        => [r#"transport_socket.typed_config.common_tls_context.validation_context.ca_certificate_provider_instance.instance_name: unrecognized certificate provider instance name "other""#];
    tls_unknown_identity_provider: tls_common_with(|c| c.tls_certificate_provider_instance = Some(instance("missing", "")))
        => [r#"transport_socket.typed_config.common_tls_context.tls_certificate_provider_instance.instance_name: unrecognized certificate provider instance name "missing""#];
    tls_unknown_legacy_identity_provider: tls_common_with(|c| c.tls_certificate_certificate_provider_instance = Some(LegacyInstance {
            instance_name: "legacy".to_owned(),
            certificate_name: String::new(),
        })) => [r#"transport_socket.typed_config.common_tls_context.tls_certificate_certificate_provider_instance.instance_name: unrecognized certificate provider instance name "legacy""#];
    tls_inline_and_sds_certificates: tls_common_with(|c| {
            c.tls_certificates = vec![TlsCertificate::default()];
            c.tls_certificate_sds_secret_configs = vec![SdsSecretConfig::default()];
        }) => [
            "transport_socket.typed_config.common_tls_context.tls_certificates: is not supported, use tls_certificate_provider_instance",
            "transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs: SDS is not supported",
        ];
    tls_sds_validation_context: tls_common_with(|c| c.validation_context_type = Some(ValidationContextType::ValidationContextSdsSecretConfig(SdsSecretConfig::default())))
        => ["transport_socket.typed_config.common_tls_context.validation_context_sds_secret_config: SDS is not supported"];
    tls_unsupported_validation_features: tls_validation_with(|v| {
            v.verify_certificate_spki = vec!["spki".to_owned()];
            v.verify_certificate_hash = vec!["hash".to_owned()];
            v.match_typed_subject_alt_names = vec![Default::default()];
            v.require_signed_certificate_timestamp = Some(BoolValue { value: true });
            v.crl = Some(Default::default());
            v.custom_validator_config = Some(Default::default());
            v.max_verify_depth = Some(u32v(3));
        }) => [
            "transport_socket.typed_config.common_tls_context.validation_context.verify_certificate_spki: is not supported",
            "transport_socket.typed_config.common_tls_context.validation_context.verify_certificate_hash: is not supported",
            "transport_socket.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names: is not supported, use match_subject_alt_names",
            "transport_socket.typed_config.common_tls_context.validation_context.require_signed_certificate_timestamp: is not supported",
            "transport_socket.typed_config.common_tls_context.validation_context.crl: is not supported",
            "transport_socket.typed_config.common_tls_context.validation_context.custom_validator_config: is not supported",
            "transport_socket.typed_config.common_tls_context.validation_context.max_verify_depth: is not supported",
        ];
    tls_inline_trusted_ca: tls_validation_with(|v| v.trusted_ca = Some(Default::default()))
        => ["transport_socket.typed_config.common_tls_context.validation_context.trusted_ca: is not supported, use ca_certificate_provider_instance"];
    tls_sni_too_long: with_tls(&UpstreamTlsContext { sni: "a".repeat(256), ..upstream_tls(None) })
        => ["transport_socket.typed_config.sni: must be at most 255 bytes, got 256"];
    tls_auto_sni_san_validation: with_tls(&UpstreamTlsContext { auto_sni_san_validation: true, ..upstream_tls(None) })
        => ["transport_socket.typed_config.auto_sni_san_validation: is not supported"];

    // ---- Timeouts and load reporting.
    connect_timeout_zero: eds_with(|c| c.connect_timeout = Some(secs(0))) => ["connect_timeout: must be positive"];
    connect_timeout_negative: eds_with(|c| c.connect_timeout = Some(secs(-1))) => ["connect_timeout: negative duration (-1s 0ns)"];
    lrs_server_not_self: eds_with(|c| c.lrs_server = Some(config_source(ConfigSourceSpecifier::ApiConfigSource(ApiConfigSource::default()))))
        => ["lrs_server: ConfigSource is not self"];
}

#[test]
fn tls_invalid_san_matcher() {
    let cluster = tls_validation_with(|v| {
        v.match_subject_alt_names = vec![
            exact("spiffe://ok"),
            PbStringMatcher {
                match_pattern: Some(MatchPattern::SafeRegex(RegexMatcher {
                    regex: "(".to_owned(),
                    ..Default::default()
                })),
                ignore_case: false,
            },
        ];
    });
    let err = validate(&cluster).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    // The rest of the text is the regex engine's own explanation.
    assert!(
        err.problems[0].starts_with(
            "transport_socket.typed_config.common_tls_context.validation_context.match_subject_alt_names[1]: \
             safe_regex: invalid regex \"(\": "
        ),
        "{err}"
    );
}

#[test]
fn all_problems_are_reported_together() {
    let cluster = eds_with(|c| {
        c.eds_cluster_config = None;
        c.lb_policy = PbLbPolicy::Random as i32;
        c.connect_timeout = Some(secs(0));
        c.outlier_detection = Some(PbOutlier {
            max_ejection_percent: Some(u32v(101)),
            ..Default::default()
        });
        c.transport_socket = Some(tls_socket(&UpstreamTlsContext::default()));
        c.lrs_server = Some(config_source(ConfigSourceSpecifier::Path("/x".to_owned())));
    });
    let err = validate(&cluster).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Cluster \"c\": eds_cluster_config: field not present; \
         lb_policy: RANDOM is not supported; \
         outlier_detection.max_ejection_percent: must be at most 100, got 101; \
         transport_socket.typed_config.common_tls_context: field not present; \
         connect_timeout: must be positive; \
         lrs_server: ConfigSource is not self"
    );
}

#[test]
fn garbage_bytes_are_a_decode_error() {
    let err = validate_cluster(&[0x0a, 0xff, 0xff], &ctx_with_providers(&[])).unwrap_err();
    assert_eq!(err.kind, ResourceKind::Cluster);
    assert_eq!(err.name, None);
    assert!(
        err.problems[0].starts_with("cannot decode Cluster: "),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("Cluster (name unreadable): cannot decode Cluster: ")
    );
}

#[test]
fn name_is_kept_when_the_cluster_is_rejected() {
    let err = validate_cluster(
        &eds_with(|c| c.lb_policy = PbLbPolicy::Maglev as i32).encode_to_vec(),
        &ctx_with_providers(&[]),
    )
    .unwrap_err();
    assert_eq!(err.name.as_deref(), Some("c"));
}
