//! `Cluster` (CDS) validation into [`mesh_core::cluster::Cluster`].
//!
//! Discovery follows gRFC A27 (EDS), A37 (LOGICAL_DNS and aggregate clusters) and, beyond gRPC, Envoy's STATIC
//! clusters; the load-balancing policy follows A27/A42/A48/A52/A58/A62 ([`lb_policy`]); circuit breaking A32;
//! outlier detection A50 plus Envoy's consecutive-error detectors ([`outlier`]); upstream TLS A29/A101 ([`tls`]).
//! Every problem found is reported, each as `field.path: problem`, so one NACK tells the operator everything.
//!
//! Decisions where the specs leave room:
//! - LB policy: whatever the control plane sends is honoured. A cluster that sets nothing (`lb_policy` is then
//!   `ROUND_ROBIN`, proto3's zero value, and `load_balancing_policy` is absent) gets round robin, as in gRPC: the
//!   wire cannot tell "unset" from an explicit `ROUND_ROBIN`. The model's default (P2C peak-EWMA) applies only to
//!   clusters built in code. Aggregate clusters' policies are ignored (gRFC A75: their children's apply).
//! - STATIC clusters (beyond gRPC) take their endpoints from `load_assignment` with EDS's rules, except that a
//!   locality without a weight counts as weight 1 (see `super::endpoint::MissingLocalityWeight`).
//! - `transport_socket_matches` is ignored, as in gRPC (gRFC A29); `transport_socket` decides TLS alone.
//!
//! Not here: watching the EDS resource or child clusters this cluster names (`crate::protocol`), and the
//! aggregate-cluster depth limit and cycle detection, which need the whole graph (gRFC A37/A74).

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::CircuitBreakers as PbCircuitBreakers;
use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, CustomClusterType, DiscoveryType,
};
use envoy_types::pb::envoy::config::core::v3::RoutingPriority;
use envoy_types::pb::envoy::config::core::v3::address::Address as PbAddressKind;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::extensions::clusters::aggregate::v3::ClusterConfig;
use envoy_types::pb::google::protobuf::Any;
use mesh_core::cluster::{CircuitBreakers, Cluster, DiscoveryKind, LbPolicy, LoadReportServer};
use mesh_core::endpoint::EndpointSet;
use prost::Message as _;

use super::common::{Errors, duration, type_name};
use super::endpoint::{self, MissingLocalityWeight};
use super::{ResourceError, ResourceKind, ValidationContext};

mod lb_policy;
mod outlier;
mod tls;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod rejection_tests;
#[cfg(test)]
mod tests;

/// Decodes and validates a `Cluster`, returning its name and the model value.
///
/// # Errors
/// [`ResourceError`] listing every problem found (as `field.path: problem`) when the bytes do not decode or the
/// cluster breaks a rule.
pub fn validate_cluster(
    bytes: &[u8],
    ctx: &ValidationContext,
) -> Result<(String, Cluster), ResourceError> {
    let kind = ResourceKind::Cluster;
    let pb = PbCluster::decode(bytes)
        .map_err(|e| ResourceError::new(kind, None, format!("cannot decode Cluster: {e}")))?;
    let mut errors = Errors::new();
    if pb.name.is_empty() {
        errors.push("name", "must not be empty");
    }
    let cluster = convert(&pb, ctx, &mut errors);
    let name = (!pb.name.is_empty()).then_some(pb.name);
    match errors.finish(cluster) {
        Ok(cluster) => Ok((name.unwrap_or_default(), cluster)),
        Err(problems) => Err(ResourceError {
            kind,
            name,
            problems,
        }),
    }
}

/// Converts every part, recording problems; the result is only meaningful when `errors` stayed empty.
fn convert(pb: &PbCluster, ctx: &ValidationContext, errors: &mut Errors) -> Cluster {
    let discovery = discovery(pb, errors);
    let lb_policy = if matches!(discovery, DiscoveryKind::Aggregate { .. }) {
        // gRFC A75: an aggregate cluster's own policy is ignored (Envoy requires CLUSTER_PROVIDED there, gRPC does
        // not check it); each child cluster is balanced by its own policy. The value below is never used.
        LbPolicy::RoundRobin
    } else {
        lb_policy::lb_policy(pb, errors)
    };
    let outlier_detection = pb
        .outlier_detection
        .as_ref()
        .map(|od| errors.at("outlier_detection", |e| outlier::outlier_detection(od, e)));
    let tls = pb.transport_socket.as_ref().and_then(|socket| {
        errors.at("transport_socket", |e| {
            tls::transport_socket(socket, ctx, e)
        })
    });
    Cluster::new(&pb.name, discovery)
        .with_lb_policy(lb_policy)
        .with_circuit_breakers(circuit_breakers(pb.circuit_breakers.as_ref()))
        .with_outlier_detection(outlier_detection)
        .with_tls(tls)
        .with_connect_timeout(connect_timeout(pb, errors))
        .with_lrs_server(lrs_server(pb, errors))
        .with_metadata(endpoint::metadata(pb.metadata.as_ref()))
}

/// Whether `any` holds an `M`. As in gRPC and Envoy, only the part of the type URL after the last `/` counts.
fn any_is<M: prost::Name>(any: &Any) -> bool {
    type_name(&any.type_url) == M::full_name()
}

/// The discovery mechanism: `type` (EDS, LOGICAL_DNS, STATIC) or `cluster_type` (aggregate).
fn discovery(pb: &PbCluster, errors: &mut Errors) -> DiscoveryKind {
    // Placeholder for invalid clusters; never returned without a recorded problem.
    let invalid = || DiscoveryKind::Eds { service_name: None };
    let discovery_type = match &pb.cluster_discovery_type {
        Some(ClusterDiscoveryType::ClusterType(custom)) => {
            return errors.at("cluster_type", |e| {
                aggregate(custom, e).unwrap_or_else(invalid)
            });
        }
        Some(ClusterDiscoveryType::Type(value)) => *value,
        // proto3: an absent `type` is its zero value, STATIC.
        None => DiscoveryType::Static as i32,
    };
    match DiscoveryType::try_from(discovery_type) {
        Ok(DiscoveryType::Eds) => eds(pb, errors),
        Ok(DiscoveryType::LogicalDns) => logical_dns(pb, errors).unwrap_or_else(invalid),
        Ok(DiscoveryType::Static) => DiscoveryKind::Static {
            endpoints: Arc::new(static_endpoints(pb, errors)),
        },
        Ok(other @ (DiscoveryType::StrictDns | DiscoveryType::OriginalDst)) => {
            errors.push("type", format!("{} is not supported", other.as_str_name()));
            invalid()
        }
        Err(_) => {
            errors.push("type", format!("unknown discovery type {discovery_type}"));
            invalid()
        }
    }
}

/// gRFC A27: an EDS cluster names its EDS config source, which must be `ads` or `self`.
fn eds(pb: &PbCluster, errors: &mut Errors) -> DiscoveryKind {
    let Some(config) = &pb.eds_cluster_config else {
        errors.push("eds_cluster_config", "field not present");
        return DiscoveryKind::Eds { service_name: None };
    };
    match config
        .eds_config
        .as_ref()
        .map(|source| &source.config_source_specifier)
    {
        Some(Some(ConfigSourceSpecifier::Ads(_) | ConfigSourceSpecifier::Self_(_))) => {}
        Some(_) => errors.push(
            "eds_cluster_config.eds_config",
            "ConfigSource is not ads or self",
        ),
        None => errors.push("eds_cluster_config.eds_config", "field not present"),
    }
    // gRFC A47: with an `xdstp:` cluster name, the EDS resource name cannot be derived and must be given.
    if config.service_name.is_empty() && pb.name.starts_with("xdstp:") {
        errors.push(
            "eds_cluster_config.service_name",
            "must be set if the Cluster resource has an xdstp name",
        );
    }
    let service_name =
        (!config.service_name.is_empty()).then(|| config.service_name.as_str().into());
    DiscoveryKind::Eds { service_name }
}

/// gRFC A37: a LOGICAL_DNS cluster's `load_assignment` holds exactly one locality with exactly one endpoint, whose
/// `socket_address` names the host (non-empty) and the port, with no custom resolver.
fn logical_dns(pb: &PbCluster, errors: &mut Errors) -> Option<DiscoveryKind> {
    let Some(assignment) = &pb.load_assignment else {
        errors.push(
            "load_assignment",
            "field not present for LOGICAL_DNS cluster",
        );
        return None;
    };
    errors.at("load_assignment", |e| {
        let [locality] = assignment.endpoints.as_slice() else {
            e.push(
                "endpoints",
                format!(
                    "must contain exactly one locality for LOGICAL_DNS cluster, found {}",
                    assignment.endpoints.len()
                ),
            );
            return None;
        };
        e.at("endpoints[0]", |e| {
            let [lb_endpoint] = locality.lb_endpoints.as_slice() else {
                e.push(
                    "lb_endpoints",
                    format!(
                        "must contain exactly one endpoint for LOGICAL_DNS cluster, found {}",
                        locality.lb_endpoints.len()
                    ),
                );
                return None;
            };
            e.at("lb_endpoints[0]", |e| {
                let Some(HostIdentifier::Endpoint(endpoint)) = &lb_endpoint.host_identifier else {
                    e.push("endpoint", "field not present");
                    return None;
                };
                let Some(address) = &endpoint.address else {
                    e.push("endpoint.address", "field not present");
                    return None;
                };
                let Some(PbAddressKind::SocketAddress(socket)) = &address.address else {
                    e.push("endpoint.address.socket_address", "field not present");
                    return None;
                };
                e.at("endpoint.address.socket_address", |e| {
                    let problems_before = e.len();
                    if socket.address.is_empty() {
                        e.push("address", "field not present");
                    }
                    let port = endpoint::port(socket.port_specifier.as_ref(), e);
                    if !socket.resolver_name.is_empty() {
                        e.push(
                            "resolver_name",
                            "LOGICAL_DNS clusters must not have a custom resolver name",
                        );
                    }
                    let port = port.filter(|_| e.len() == problems_before)?;
                    Some(DiscoveryKind::LogicalDns {
                        host: socket.address.as_str().into(),
                        port,
                    })
                })
            })
        })
    })
}

/// gRFC A37: `cluster_type.typed_config` must be an aggregate `ClusterConfig` with at least one cluster.
fn aggregate(custom: &CustomClusterType, errors: &mut Errors) -> Option<DiscoveryKind> {
    let Some(any) = &custom.typed_config else {
        errors.push("typed_config", "field not present");
        return None;
    };
    if !any_is::<ClusterConfig>(any) {
        errors.push(
            "typed_config",
            format!(
                "custom cluster type {:?} ({}) is not supported",
                custom.name, any.type_url
            ),
        );
        return None;
    }
    let config = match ClusterConfig::decode(any.value.as_slice()) {
        Ok(config) => config,
        Err(e) => {
            errors.push(
                "typed_config",
                format!("cannot decode aggregate ClusterConfig: {e}"),
            );
            return None;
        }
    };
    if config.clusters.is_empty() {
        errors.push("typed_config.clusters", "must not be empty");
        return None;
    }
    let mut clusters: Vec<Arc<str>> = Vec::with_capacity(config.clusters.len());
    for (index, name) in config.clusters.iter().enumerate() {
        if name.is_empty() {
            errors.push(
                &format!("typed_config.clusters[{index}]"),
                "must not be empty",
            );
        } else if !clusters.iter().any(|seen| **seen == **name) {
            // gRFC A37: a cluster listed twice keeps its earliest position.
            clusters.push(name.as_str().into());
        }
    }
    Some(DiscoveryKind::Aggregate { clusters })
}

/// A STATIC cluster's endpoints (beyond gRPC), validated with EDS's rules; none when `load_assignment` is absent.
fn static_endpoints(pb: &PbCluster, errors: &mut Errors) -> EndpointSet {
    match &pb.load_assignment {
        Some(assignment) => errors.at("load_assignment", |e| {
            endpoint::load_assignment(assignment, &pb.name, MissingLocalityWeight::One, e)
        }),
        None => EndpointSet::new(&pb.name, Vec::new()),
    }
}

/// gRFC A32: the first `thresholds` entry for the DEFAULT routing priority sets the limits (Envoy uses the first
/// entry per priority too); HIGH-priority thresholds do not apply, as gRPC has no routing priority. `max_requests`
/// defaults to 1024; the other limits, which we honour beyond gRPC, take Envoy's defaults.
fn circuit_breakers(pb: Option<&PbCircuitBreakers>) -> CircuitBreakers {
    let mut limits = CircuitBreakers::default();
    let thresholds = pb.and_then(|pb| {
        pb.thresholds
            .iter()
            .find(|t| t.priority == RoutingPriority::Default as i32)
    });
    if let Some(thresholds) = thresholds {
        if let Some(max) = thresholds.max_requests {
            limits.max_requests = max.value;
        }
        if let Some(max) = thresholds.max_pending_requests {
            limits.max_pending_requests = max.value;
        }
        if let Some(max) = thresholds.max_retries {
            limits.max_retries = max.value;
        }
        if let Some(max) = thresholds.max_connections {
            limits.max_connections = max.value;
        }
    }
    limits
}

/// Envoy's `cluster.proto`: `connect_timeout` must be positive; default 5 s. (gRPC ignores it; we honour it.)
fn connect_timeout(pb: &PbCluster, errors: &mut Errors) -> Duration {
    let Some(timeout) = &pb.connect_timeout else {
        return Cluster::DEFAULT_CONNECT_TIMEOUT;
    };
    match errors.check("connect_timeout", duration(timeout)) {
        Some(Duration::ZERO) => {
            errors.push("connect_timeout", "must be positive");
            Cluster::DEFAULT_CONNECT_TIMEOUT
        }
        Some(timeout) => timeout,
        None => Cluster::DEFAULT_CONNECT_TIMEOUT,
    }
}

/// gRFC A27: `lrs_server`, when set, must be `self`.
fn lrs_server(pb: &PbCluster, errors: &mut Errors) -> Option<LoadReportServer> {
    let source = pb.lrs_server.as_ref()?;
    if matches!(
        source.config_source_specifier,
        Some(ConfigSourceSpecifier::Self_(_))
    ) {
        Some(LoadReportServer::SameAsXds)
    } else {
        errors.push("lrs_server", "ConfigSource is not self");
        None
    }
}
