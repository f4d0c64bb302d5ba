//! Endpoint addresses: `config.core.v3.Address` to a socket address (gRFC A27), and ports.

use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::Address as PbAddress;
use envoy_types::pb::envoy::config::core::v3::address::Address as PbAddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::{PortSpecifier, Protocol};

use crate::resource::common::Errors;

/// An endpoint `address` (the field itself, reported as `address`): gRFC A27 requires a `socket_address` whose
/// `address` is an IPv4 or IPv6 literal and whose `port_value` is set.
pub(super) fn socket_address(
    address: Option<&PbAddress>,
    errors: &mut Errors,
) -> Option<SocketAddr> {
    let Some(address) = address else {
        errors.push("address", "field not present");
        return None;
    };
    let socket = match &address.address {
        Some(PbAddressKind::SocketAddress(socket)) => socket,
        Some(PbAddressKind::Pipe(_)) => {
            errors.push(
                "address.pipe",
                "unix domain socket endpoints are not supported",
            );
            return None;
        }
        Some(PbAddressKind::EnvoyInternalAddress(_)) => {
            errors.push(
                "address.envoy_internal_address",
                "internal addresses are not supported",
            );
            return None;
        }
        None => {
            errors.push("address.socket_address", "field not present");
            return None;
        }
    };
    errors.at("address.socket_address", |e| {
        let problems_before = e.len();
        if !socket.resolver_name.is_empty() {
            e.push(
                "resolver_name",
                format!(
                    "custom resolver {:?} is not supported",
                    socket.resolver_name
                ),
            );
        }
        if socket.protocol != Protocol::Tcp as i32 {
            e.push("protocol", "only TCP is supported");
        }
        let ip = match socket.address.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) if socket.address.is_empty() => {
                e.push("address", "field not present");
                None
            }
            Err(_) => {
                e.push(
                    "address",
                    format!("{:?} is not an IP address", socket.address),
                );
                None
            }
        };
        let port = port(socket.port_specifier.as_ref(), e);
        match (ip, port) {
            (Some(ip), Some(port)) if e.len() == problems_before => Some(SocketAddr::new(ip, port)),
            _ => None,
        }
    })
}

/// A `SocketAddress` port: `port_value` must be set and fit 16 bits (the proto field is a uint32; Envoy bounds it
/// at 65535); named ports are not supported (Envoy only resolves them for listeners).
pub(in crate::resource) fn port(port: Option<&PortSpecifier>, errors: &mut Errors) -> Option<u16> {
    match port {
        Some(PortSpecifier::PortValue(value)) => match u16::try_from(*value) {
            Ok(port) => Some(port),
            Err(_) => {
                errors.push("port_value", format!("{value} is out of range (0-65535)"));
                None
            }
        },
        Some(PortSpecifier::NamedPort(name)) => {
            errors.push(
                "named_port",
                format!("named port {name:?} is not supported"),
            );
            None
        }
        None => {
            errors.push("port_value", "field not present");
            None
        }
    }
}
