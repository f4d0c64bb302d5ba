//! Clusters (EDS over ADS) and their ClusterLoadAssignments (gRFC A27, A29, A32, A42, A48, A50, A62).

use std::collections::HashMap;
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::cluster::v3::cluster::common_lb_config::{
    LocalityConfigSpecifier, LocalityWeightedLbConfig,
};
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, CommonLbConfig, DiscoveryType, EdsClusterConfig, LbConfig,
    LbPolicy as EnvoyLbPolicy, RingHashLbConfig,
};
use envoy_types::pb::envoy::config::cluster::v3::load_balancing_policy::Policy;
use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers as EnvoyCircuitBreakers, Cluster as EnvoyCluster, LoadBalancingPolicy,
    OutlierDetection as EnvoyOutlierDetection,
};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as TransportSocketConfig;
use envoy_types::pb::envoy::config::core::v3::{
    Address, HealthStatus as EnvoyHealthStatus, Http2ProtocolOptions, Locality as EnvoyLocality,
    RoutingPriority, SocketAddress, TransportSocket, TypedExtensionConfig,
};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::extensions::load_balancing_policies::pick_first::v3::PickFirst;
use envoy_types::pb::envoy::extensions::load_balancing_policies::round_robin::v3::RoundRobin;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateProviderPluginInstance, CertificateValidationContext, CommonTlsContext,
    UpstreamTlsContext, common_tls_context::ValidationContextType,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{
        ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
    },
};
use envoy_types::pb::google::protobuf::{UInt32Value, UInt64Value};
use envoy_types::util::pack_any;

use super::{
    HTTP_PROTOCOL_OPTIONS_KEY, TLS_TRANSPORT_SOCKET_NAME, ads_config_source, proto_duration,
    self_config_source, string_matcher,
};
use crate::mesh::{
    Cluster, FieldError, HealthStatus, LbPolicy, MeshError, OutlierDetection, UpstreamTls,
};

/// The `load_balancing_policy` extension names (gRFC A52, A62).
const PICK_FIRST_POLICY_NAME: &str = "envoy.load_balancing_policies.pick_first";
const ROUND_ROBIN_POLICY_NAME: &str = "envoy.load_balancing_policies.round_robin";
const LEAST_REQUEST_POLICY_NAME: &str = "envoy.load_balancing_policies.least_request";

pub(super) fn cluster(cluster: &Cluster) -> EnvoyCluster {
    let mut envoy = EnvoyCluster {
        name: cluster.name.clone(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds.into())),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            // Only when it differs from the cluster name, as clients then use the cluster name.
            service_name: cluster.eds_service_name.clone().unwrap_or_default(),
        }),
        connect_timeout: cluster.connect_timeout.map(proto_duration),
        circuit_breakers: cluster
            .circuit_breakers
            .and_then(|breakers| breakers.max_requests)
            .map(|max_requests| EnvoyCircuitBreakers {
                // gRFC A32: gRPC reads max_requests of the DEFAULT priority threshold.
                thresholds: vec![Thresholds {
                    priority: RoutingPriority::Default.into(),
                    max_requests: Some(UInt32Value {
                        value: max_requests,
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        outlier_detection: cluster.outlier_detection.as_ref().map(outlier_detection),
        transport_socket: cluster.tls.as_ref().map(upstream_tls),
        // gRFC A27: `self` is the only LRS server gRPC accepts: the management server the Cluster came from.
        lrs_server: cluster.load_reporting.then(self_config_source),
        ..Default::default()
    };
    set_lb_policy(&mut envoy, cluster);
    if cluster.http2 {
        // Envoy speaks HTTP/1.1 upstream unless told otherwise; gRPC backends need HTTP/2.
        let options = HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                        Http2ProtocolOptions::default(),
                    )),
                },
            )),
            ..Default::default()
        };
        envoy
            .typed_extension_protocol_options
            .insert(HTTP_PROTOCOL_OPTIONS_KEY.to_owned(), pack_any(options));
    }
    envoy
}

/// Envoy weighs localities only with `common_lb_config.locality_weighted_lb_config` (gRPC always does, gRFC A27),
/// so it is set for the policies that honour it, keeping Envoy's picks like a proxyless client's.
fn locality_weighted() -> Option<CommonLbConfig> {
    Some(CommonLbConfig {
        locality_config_specifier: Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(
            LocalityWeightedLbConfig {},
        )),
        ..Default::default()
    })
}

fn set_lb_policy(envoy: &mut EnvoyCluster, cluster: &Cluster) {
    match cluster.lb_policy {
        LbPolicy::RoundRobin => {
            envoy.lb_policy = EnvoyLbPolicy::RoundRobin.into();
            envoy.common_lb_config = locality_weighted();
        }
        LbPolicy::LeastRequest => {
            // gRFC A48 least_request exists in grpc-java and grpc-go but not in C-core, which rejects a cluster
            // whose `lb_policy` is LEAST_REQUEST. As a `load_balancing_policy` list with round_robin after it,
            // clients without least_request take round_robin instead (gRFC A52: the first supported policy wins).
            let locality_lb_config = Some(
                envoy_types::pb::envoy::extensions::load_balancing_policies::common::v3::LocalityLbConfig {
                    locality_config_specifier: Some(
                        envoy_types::pb::envoy::extensions::load_balancing_policies::common::v3::locality_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(
                            Default::default(),
                        ),
                    ),
                },
            );
            let least_request = envoy_types::pb::envoy::extensions::load_balancing_policies::least_request::v3::LeastRequest {
                choice_count: cluster
                    .least_request
                    .and_then(|config| config.choice_count)
                    .map(|value| UInt32Value { value }),
                locality_lb_config,
                ..Default::default()
            };
            envoy.load_balancing_policy = Some(LoadBalancingPolicy {
                policies: vec![
                    Policy {
                        typed_extension_config: Some(TypedExtensionConfig {
                            name: LEAST_REQUEST_POLICY_NAME.to_owned(),
                            typed_config: Some(pack_any(least_request)),
                        }),
                    },
                    Policy {
                        typed_extension_config: Some(TypedExtensionConfig {
                            name: ROUND_ROBIN_POLICY_NAME.to_owned(),
                            typed_config: Some(pack_any(RoundRobin::default())),
                        }),
                    },
                ],
            });
        }
        LbPolicy::RingHash => {
            envoy.lb_policy = EnvoyLbPolicy::RingHash.into();
            // gRFC A42: hash_function must be XX_HASH, the default (0).
            envoy.lb_config = cluster.ring_hash.map(|config| {
                LbConfig::RingHashLbConfig(RingHashLbConfig {
                    minimum_ring_size: config.minimum_ring_size.map(|value| UInt64Value { value }),
                    maximum_ring_size: config.maximum_ring_size.map(|value| UInt64Value { value }),
                    ..Default::default()
                })
            });
        }
        LbPolicy::PickFirst => {
            // gRFC A62: pick_first exists only as a `load_balancing_policy` extension. Clients take the first
            // policy they support (gRFC A52), so round_robin follows for those without pick_first (Envoy).
            envoy.load_balancing_policy = Some(LoadBalancingPolicy {
                policies: vec![
                    Policy {
                        typed_extension_config: Some(TypedExtensionConfig {
                            name: PICK_FIRST_POLICY_NAME.to_owned(),
                            typed_config: Some(pack_any(PickFirst::default())),
                        }),
                    },
                    Policy {
                        typed_extension_config: Some(TypedExtensionConfig {
                            name: ROUND_ROBIN_POLICY_NAME.to_owned(),
                            typed_config: Some(pack_any(RoundRobin::default())),
                        }),
                    },
                ],
            });
        }
    }
}

/// gRFC A50, read literally: success-rate ejection is off only when `enforcing_success_rate` is 0 (default 100),
/// so it is written as 0 unless configured; failure-percentage and the Envoy-only consecutive-error ejections are
/// likewise off unless configured.
fn outlier_detection(outlier: &OutlierDetection) -> EnvoyOutlierDetection {
    let value = |value: u32| UInt32Value { value };
    let mut envoy = EnvoyOutlierDetection {
        interval: outlier.interval.map(proto_duration),
        base_ejection_time: outlier.base_ejection_time.map(proto_duration),
        max_ejection_time: outlier.max_ejection_time.map(proto_duration),
        max_ejection_percent: outlier.max_ejection_percent.map(value),
        enforcing_success_rate: Some(value(0)),
        enforcing_failure_percentage: Some(value(0)),
        consecutive_5xx: outlier.consecutive_5xx.map(value),
        enforcing_consecutive_5xx: Some(value(if outlier.consecutive_5xx.is_some() {
            100
        } else {
            0
        })),
        consecutive_gateway_failure: outlier.consecutive_gateway_failure.map(value),
        enforcing_consecutive_gateway_failure: Some(value(
            if outlier.consecutive_gateway_failure.is_some() {
                100
            } else {
                0
            },
        )),
        ..Default::default()
    };
    if let Some(success) = &outlier.success_rate {
        envoy.enforcing_success_rate = Some(value(success.enforcement_percentage.unwrap_or(100)));
        envoy.success_rate_stdev_factor = success.stdev_factor.map(value);
        envoy.success_rate_minimum_hosts = success.minimum_hosts.map(value);
        envoy.success_rate_request_volume = success.request_volume.map(value);
    }
    if let Some(failure) = &outlier.failure_percentage {
        envoy.enforcing_failure_percentage =
            Some(value(failure.enforcement_percentage.unwrap_or(100)));
        envoy.failure_percentage_threshold = failure.threshold.map(value);
        envoy.failure_percentage_minimum_hosts = failure.minimum_hosts.map(value);
        envoy.failure_percentage_request_volume = failure.request_volume.map(value);
    }
    envoy
}

pub(super) fn certificate_provider(
    instance: &str,
    certificate: Option<&String>,
) -> CertificateProviderPluginInstance {
    CertificateProviderPluginInstance {
        instance_name: instance.to_owned(),
        certificate_name: certificate.cloned().unwrap_or_default(),
    }
}

/// gRFC A29: an `UpstreamTlsContext` whose `common_tls_context` names certificate-provider instances from the
/// client's bootstrap, with SAN matchers in `match_subject_alt_names`.
fn upstream_tls(tls: &UpstreamTls) -> TransportSocket {
    // gRFC A29 specifies `match_subject_alt_names`, which Envoy deprecated for `match_typed_subject_alt_names`;
    // gRPC clients read the former and Envoy still honours it when the typed list is empty.
    #[allow(deprecated)]
    let validation = CertificateValidationContext {
        ca_certificate_provider_instance: Some(certificate_provider(
            &tls.ca_certificate_provider,
            tls.ca_certificate_name.as_ref(),
        )),
        match_subject_alt_names: tls.san_matchers.iter().map(string_matcher).collect(),
        ..Default::default()
    };
    let context = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_provider_instance: tls
                .certificate_provider
                .as_deref()
                .map(|instance| certificate_provider(instance, tls.certificate_name.as_ref())),
            validation_context_type: Some(ValidationContextType::ValidationContext(validation)),
            ..Default::default()
        }),
        sni: tls.sni.clone().unwrap_or_default(),
        ..Default::default()
    };
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET_NAME.to_owned(),
        config_type: Some(TransportSocketConfig::TypedConfig(pack_any(context))),
    }
}

fn health_status(health: HealthStatus) -> EnvoyHealthStatus {
    match health {
        HealthStatus::Unknown => EnvoyHealthStatus::Unknown,
        HealthStatus::Healthy => EnvoyHealthStatus::Healthy,
        HealthStatus::Unhealthy => EnvoyHealthStatus::Unhealthy,
        HealthStatus::Draining => EnvoyHealthStatus::Draining,
        HealthStatus::Timeout => EnvoyHealthStatus::Timeout,
        HealthStatus::Degraded => EnvoyHealthStatus::Degraded,
    }
}

pub(super) fn socket_address(address: SocketAddr) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: address.ip().to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(address.port()))),
            ..Default::default()
        })),
    }
}

pub(super) fn parse_address(path: String, text: &str) -> Result<SocketAddr, MeshError> {
    text.parse().map_err(|_| MeshError::Invalid {
        errors: vec![FieldError {
            path,
            message: format!("invalid address {text:?}"),
        }],
    })
}

/// gRFC A27: localities by priority, each with `load_balancing_weight` always set (C-core drops a locality without
/// one) and endpoints with their health and weight.
pub(super) fn load_assignment(
    path: &str,
    cluster: &Cluster,
) -> Result<ClusterLoadAssignment, MeshError> {
    let mut endpoints = Vec::with_capacity(cluster.localities.len());
    for (index, locality) in cluster.localities.iter().enumerate() {
        let mut lb_endpoints = Vec::with_capacity(locality.endpoints.len());
        for (endpoint_index, endpoint) in locality.endpoints.iter().enumerate() {
            let address = parse_address(
                format!("{path}.localities[{index}].endpoints[{endpoint_index}]"),
                &endpoint.address,
            )?;
            lb_endpoints.push(LbEndpoint {
                health_status: health_status(endpoint.health).into(),
                load_balancing_weight: Some(UInt32Value {
                    value: endpoint.weight,
                }),
                host_identifier: Some(HostIdentifier::Endpoint(EnvoyEndpoint {
                    address: Some(socket_address(address)),
                    ..Default::default()
                })),
                ..Default::default()
            });
        }
        endpoints.push(LocalityLbEndpoints {
            locality: Some(EnvoyLocality {
                region: locality.region.clone(),
                zone: locality.zone.clone(),
                sub_zone: locality.sub_zone.clone(),
            }),
            lb_endpoints,
            load_balancing_weight: Some(UInt32Value {
                value: locality.weight,
            }),
            priority: locality.priority,
            ..Default::default()
        });
    }
    Ok(ClusterLoadAssignment {
        cluster_name: cluster.eds_service_name().to_owned(),
        endpoints,
        named_endpoints: HashMap::new(),
        policy: None,
    })
}
