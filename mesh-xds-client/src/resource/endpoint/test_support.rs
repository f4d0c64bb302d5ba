//! Small builders for the Envoy protos the cluster and endpoint tests encode.

use envoy_types::pb::envoy::config::core::v3::address::Address as PbAddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, Locality, Metadata, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Any, Duration, Struct, UInt32Value, UInt64Value, Value};
use mesh_core::locality::Locality as CoreLocality;

use crate::resource::ValidationContext;

/// `M` packed in an `Any` with its canonical type URL.
pub(crate) fn any<M: prost::Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

/// An `Any` with an arbitrary type URL and payload.
pub(crate) fn raw_any(type_url: &str, value: &[u8]) -> Any {
    Any {
        type_url: type_url.to_owned(),
        value: value.to_vec(),
    }
}

pub(crate) fn u32v(value: u32) -> UInt32Value {
    UInt32Value { value }
}

pub(crate) fn u64v(value: u64) -> UInt64Value {
    UInt64Value { value }
}

pub(crate) fn secs(seconds: i64) -> Duration {
    Duration { seconds, nanos: 0 }
}

pub(crate) fn millis(millis: i32) -> Duration {
    Duration {
        seconds: 0,
        nanos: millis * 1_000_000,
    }
}

/// A validation context knowing the given certificate provider instances.
pub(crate) fn ctx_with_providers(names: &[&str]) -> ValidationContext {
    ValidationContext {
        certificate_providers: names.iter().map(|n| (*n).to_owned()).collect(),
    }
}

/// A `socket_address` with `host` and `port_value`.
pub(crate) fn socket_address(host: &str, port: u32) -> Address {
    Address {
        address: Some(PbAddressKind::SocketAddress(SocketAddress {
            address: host.to_owned(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

/// An `LbEndpoint` at `host:port`, health UNKNOWN, no weight.
pub(crate) fn lb_endpoint(host: &str, port: u32) -> LbEndpoint {
    lb_endpoint_at(socket_address(host, port))
}

/// An `LbEndpoint` with the given address.
pub(crate) fn lb_endpoint_at(address: Address) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(address),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// `endpoint` with a `load_balancing_weight`.
pub(crate) fn weighted(mut endpoint: LbEndpoint, weight: u32) -> LbEndpoint {
    endpoint.load_balancing_weight = Some(u32v(weight));
    endpoint
}

/// `endpoint` with a health status.
pub(crate) fn with_health(
    mut endpoint: LbEndpoint,
    health: envoy_types::pb::envoy::config::core::v3::HealthStatus,
) -> LbEndpoint {
    endpoint.health_status = health as i32;
    endpoint
}

/// Mutable access to the `Endpoint` inside an `LbEndpoint` built by [`lb_endpoint`].
pub(crate) fn inner(endpoint: &mut LbEndpoint) -> &mut Endpoint {
    match &mut endpoint.host_identifier {
        Some(HostIdentifier::Endpoint(inner)) => inner,
        _ => panic!("not an endpoint"),
    }
}

/// A locality `region/zone` at `priority` with an optional weight.
pub(crate) fn locality(
    region: &str,
    zone: &str,
    priority: u32,
    weight: Option<u32>,
    lb_endpoints: Vec<LbEndpoint>,
) -> LocalityLbEndpoints {
    LocalityLbEndpoints {
        locality: Some(Locality {
            region: region.to_owned(),
            zone: zone.to_owned(),
            sub_zone: String::new(),
        }),
        lb_endpoints,
        load_balancing_weight: weight.map(u32v),
        priority,
        ..Default::default()
    }
}

/// The model locality matching [`locality`].
pub(crate) fn core_locality(region: &str, zone: &str) -> CoreLocality {
    CoreLocality::new(region, zone, "")
}

/// A `ClusterLoadAssignment` named `name`.
pub(crate) fn cla(name: &str, endpoints: Vec<LocalityLbEndpoints>) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints,
        ..Default::default()
    }
}

/// `filter_metadata` with one filter holding one string field.
pub(crate) fn string_metadata(filter: &str, key: &str, value: &str) -> Metadata {
    let fields = [(key.to_owned(), string_value(value))]
        .into_iter()
        .collect();
    Metadata {
        filter_metadata: [(filter.to_owned(), Struct { fields })]
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

pub(crate) fn string_value(value: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(value.to_owned())),
    }
}
