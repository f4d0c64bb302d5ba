//! Server listeners (gRFC A36): the address, filter chains with their matches, TLS and connection manager, the
//! default filter chain, and the rule that the most specific chain for a connection must be unique.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Address as PbAddress;
use envoy_types::pb::envoy::config::core::v3::address::Address as PbAddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::{PortSpecifier, Protocol};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::filter_chain_match::ConnectionSourceType;
use envoy_types::pb::envoy::config::listener::v3::{
    FilterChain as PbFilterChain, FilterChainMatch as PbFilterChainMatch, Listener as PbListener,
};
use mesh_core::listener::{FilterChain, FilterChainMatch, ServerListener, SourceType};
use mesh_core::rbac::CidrRange;

use super::filters::Side;
use super::{HTTP_CONNECTION_MANAGER_TYPE, http_connection_manager_any, tls};
use crate::resource::ValidationContext;
use crate::resource::common::{Errors, cidr_range, typed_config};

/// Upper bound on the normalised matchers (gRFC A36's Cartesian product) checked for duplicates in one listener, so
/// a listener with long lists in every field cannot make validation quadratic in memory.
const MAX_NORMALIZED_MATCHERS: usize = 100_000;

/// A server `Listener` (no `api_listener`), recording problems relative to the listener.
pub(super) fn server_listener(
    pb: &PbListener,
    ctx: &ValidationContext,
    errors: &mut Errors,
) -> Option<ServerListener> {
    let problems_before = errors.len();
    let address = pb
        .address
        .as_ref()
        .and_then(|address| errors.at("address", |e| socket_address(address, e)));
    // gRFC A36: "The xDS client must NACK the Listener resource if `Listener.listener_filters` is non-empty. It must
    // also NACK the Listener resource if `Listener.use_original_dst` is present and `true`."
    if !pb.listener_filters.is_empty() {
        errors.push("listener_filters", "must be empty");
    }
    if pb.use_original_dst.is_some_and(|v| v.value) {
        errors.push("use_original_dst", "must not be true");
    }
    if pb.filter_chain_matcher.is_some() {
        errors.push(
            "filter_chain_matcher",
            "is not supported (use filter_chain_match)",
        );
    }

    let mut chains = Vec::with_capacity(pb.filter_chains.len());
    let mut owners: HashMap<MatchKey, usize> = HashMap::new();
    let mut normalized = 0usize;
    for (index, chain) in pb.filter_chains.iter().enumerate() {
        errors.at(&format!("filter_chains[{index}]"), |e| {
            let Some(converted) = filter_chain(chain, &pb.name, ctx, e) else {
                return;
            };
            // gRFC A36: "If the most-specific matching logic might not produce a unique result, then the Listener
            // must be NACKed", comparing matchers normalised to their Cartesian product; always-failing matchers
            // are included in the check.
            match match_keys(&converted.filter_chain_match, &mut normalized) {
                Ok(keys) => {
                    let mut reported = HashSet::new();
                    for key in keys {
                        if let Some(&first) = owners.get(&key) {
                            if reported.insert(first) {
                                e.push(
                                    "filter_chain_match",
                                    format!("duplicates the match of filter_chains[{first}]"),
                                );
                            }
                        } else {
                            owners.insert(key, index);
                        }
                    }
                }
                Err(problem) => e.push("filter_chain_match", problem),
            }
            chains.push(converted);
        });
    }
    // The default chain's match is never consulted (Envoy), so it takes no part in the uniqueness check.
    let default_chain = pb.default_filter_chain.as_ref().and_then(|chain| {
        errors.at("default_filter_chain", |e| {
            filter_chain(chain, &pb.name, ctx, e)
        })
    });
    if errors.len() != problems_before {
        return None;
    }
    Some(ServerListener::new(address?, chains).with_default_filter_chain(default_chain))
}

/// gRFC A36: the listener's address is a TCP `SocketAddress` (IP literal and port), compared by the server with
/// the address it listens on.
fn socket_address(pb: &PbAddress, errors: &mut Errors) -> Option<SocketAddr> {
    let Some(PbAddressKind::SocketAddress(socket)) = &pb.address else {
        errors.push("", "must be a socket_address");
        return None;
    };
    errors.at("socket_address", |e| {
        if socket.protocol != Protocol::Tcp as i32 {
            e.push("protocol", "must be TCP");
        }
        let ip: Option<IpAddr> = socket.address.parse().ok();
        if ip.is_none() {
            e.push(
                "address",
                format!("{:?} is not an IP address", socket.address),
            );
        }
        let port = match socket.port_specifier {
            Some(PortSpecifier::PortValue(port)) => match u16::try_from(port) {
                Ok(port) => Some(port),
                Err(_) => {
                    e.push("port_value", format!("{port} is above 65535"));
                    None
                }
            },
            Some(PortSpecifier::NamedPort(_)) => {
                e.push("named_port", "is not supported (use port_value)");
                None
            }
            None => {
                e.push("port_value", "must be set");
                None
            }
        };
        Some(SocketAddr::new(ip?, port?))
    })
}

/// One filter chain: gRFC A36 requires its network filters to be exactly one `HttpConnectionManager`, last, with
/// unique names (no `is_optional` exists for network filters); gRFC A29 reads its TLS from `transport_socket`.
fn filter_chain(
    pb: &PbFilterChain,
    listener_name: &str,
    ctx: &ValidationContext,
    errors: &mut Errors,
) -> Option<FilterChain> {
    let problems_before = errors.len();
    let filter_chain_match = errors.at("filter_chain_match", |e| {
        filter_chain_match(pb.filter_chain_match.as_ref(), e)
    });
    let mut names = HashSet::new();
    let mut http = None;
    let mut managers = 0usize;
    for (index, filter) in pb.filters.iter().enumerate() {
        errors.at(&format!("filters[{index}]"), |e| {
            if !names.insert(filter.name.as_str()) {
                e.push("name", format!("duplicate filter name {:?}", filter.name));
            }
            let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
                e.push("typed_config", "must be set");
                return;
            };
            let type_name = match typed_config(any) {
                Ok(config) => config.type_name().to_owned(),
                Err(problem) => {
                    e.push("typed_config", problem);
                    return;
                }
            };
            if type_name != HTTP_CONNECTION_MANAGER_TYPE {
                e.push(
                    "typed_config",
                    format!("unsupported network filter type {type_name:?}"),
                );
                return;
            }
            managers += 1;
            if index + 1 != pb.filters.len() {
                e.push("", "the HttpConnectionManager must be the last filter");
            }
            http = e.at("typed_config", |e| {
                http_connection_manager_any(any, Side::Server, listener_name, ctx, e)
            });
        });
    }
    if managers != 1 && errors.len() == problems_before {
        errors.push("filters", "must contain exactly one HttpConnectionManager");
    }
    let tls = pb.transport_socket.as_ref().and_then(|socket| {
        errors.at("transport_socket", |e| {
            tls::transport_socket(socket, ctx, e)
        })
    });
    if errors.len() != problems_before {
        return None;
    }
    Some(
        FilterChain::new(&pb.name, http?)
            .with_match(filter_chain_match?)
            .with_tls(tls),
    )
}

/// `FilterChainMatch` (gRFC A36 lists its fields). `destination_port`, `server_names`, non-raw-buffer
/// `transport_protocol` and `application_protocols` can never match in gRPC (A36: they depend on unsupported
/// features); they are kept so the server can treat such chains as never matching, and so the uniqueness check sees
/// them.
fn filter_chain_match(
    pb: Option<&PbFilterChainMatch>,
    errors: &mut Errors,
) -> Option<FilterChainMatch> {
    let mut converted = FilterChainMatch::default();
    let Some(pb) = pb else {
        return Some(converted);
    };
    let problems_before = errors.len();
    if let Some(port) = pb.destination_port {
        // Envoy: `destination_port` is in [1, 65535].
        match u16::try_from(port.value) {
            Ok(port) if port != 0 => converted.destination_port = Some(port),
            _ => errors.push(
                "destination_port",
                format!("{} is not in [1, 65535]", port.value),
            ),
        }
    }
    converted.prefix_ranges = cidrs(&pb.prefix_ranges, "prefix_ranges", errors);
    if !pb.direct_source_prefix_ranges.is_empty() {
        errors.push("direct_source_prefix_ranges", "is not supported");
    }
    converted.source_type = match ConnectionSourceType::try_from(pb.source_type) {
        Ok(ConnectionSourceType::Any) => SourceType::Any,
        Ok(ConnectionSourceType::SameIpOrLoopback) => SourceType::SameIpOrLoopback,
        Ok(ConnectionSourceType::External) => SourceType::External,
        Err(_) => {
            errors.push(
                "source_type",
                format!("unknown source type {}", pb.source_type),
            );
            SourceType::Any
        }
    };
    converted.source_prefix_ranges =
        cidrs(&pb.source_prefix_ranges, "source_prefix_ranges", errors);
    for (index, port) in pb.source_ports.iter().enumerate() {
        match u16::try_from(*port) {
            Ok(port) => converted.source_ports.push(port),
            Err(_) => errors.push(
                &format!("source_ports[{index}]"),
                format!("{port} is above 65535"),
            ),
        }
    }
    converted.server_names = pb
        .server_names
        .iter()
        .map(|name| Arc::from(name.as_str()))
        .collect();
    converted.transport_protocol =
        (!pb.transport_protocol.is_empty()).then(|| Arc::from(pb.transport_protocol.as_str()));
    converted.application_protocols = pb
        .application_protocols
        .iter()
        .map(|protocol| Arc::from(protocol.as_str()))
        .collect();
    (errors.len() == problems_before).then_some(converted)
}

fn cidrs(
    pb: &[envoy_types::pb::envoy::config::core::v3::CidrRange],
    field: &str,
    errors: &mut Errors,
) -> Vec<CidrRange> {
    pb.iter()
        .enumerate()
        .filter_map(|(index, cidr)| errors.check(&format!("{field}[{index}]"), cidr_range(cidr)))
        .collect()
}

/// One normalised matcher (gRFC A36): every field holds at most one value, CIDRs with their unused low bits cleared.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MatchKey {
    destination_port: Option<u16>,
    prefix_range: Option<(IpAddr, u8)>,
    source_type: SourceType,
    source_prefix_range: Option<(IpAddr, u8)>,
    source_port: Option<u16>,
    server_name: Option<Arc<str>>,
    transport_protocol: Option<Arc<str>>,
    application_protocol: Option<Arc<str>>,
}

/// The Cartesian product of a match's repeated fields (A36's normalisation), deduplicated. `budget` counts the
/// matchers normalised so far in the listener, bounded by [`MAX_NORMALIZED_MATCHERS`].
fn match_keys(m: &FilterChainMatch, budget: &mut usize) -> Result<HashSet<MatchKey>, String> {
    fn options<T: Clone>(values: &[T]) -> Vec<Option<T>> {
        if values.is_empty() {
            vec![None]
        } else {
            values.iter().cloned().map(Some).collect()
        }
    }
    let prefixes = options(&m.prefix_ranges.iter().map(normalize).collect::<Vec<_>>());
    let sources = options(
        &m.source_prefix_ranges
            .iter()
            .map(normalize)
            .collect::<Vec<_>>(),
    );
    let ports = options(&m.source_ports);
    let names = options(&m.server_names);
    let protocols = options(&m.application_protocols);
    let size = [
        prefixes.len(),
        sources.len(),
        ports.len(),
        names.len(),
        protocols.len(),
    ]
    .into_iter()
    .try_fold(1usize, usize::checked_mul)
    .unwrap_or(usize::MAX);
    *budget = budget.saturating_add(size);
    if *budget > MAX_NORMALIZED_MATCHERS {
        return Err(format!(
            "too many combinations of match values to check for duplicates (more than {MAX_NORMALIZED_MATCHERS})"
        ));
    }
    let mut keys = HashSet::with_capacity(size);
    for prefix_range in &prefixes {
        for source_prefix_range in &sources {
            for source_port in &ports {
                for server_name in &names {
                    for application_protocol in &protocols {
                        keys.insert(MatchKey {
                            destination_port: m.destination_port,
                            prefix_range: *prefix_range,
                            source_type: m.source_type,
                            source_prefix_range: *source_prefix_range,
                            source_port: *source_port,
                            server_name: server_name.clone(),
                            transport_protocol: m.transport_protocol.clone(),
                            application_protocol: application_protocol.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(keys)
}

/// A CIDR with the bits beyond its prefix cleared (A36: "Unused low bits of the `address_prefix` must be ignored").
fn normalize(cidr: &CidrRange) -> (IpAddr, u8) {
    let len = cidr.prefix_len();
    let masked = match cidr.prefix() {
        IpAddr::V4(ip) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(ip) & mask))
        }
        IpAddr::V6(ip) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(ip) & mask))
        }
    };
    (masked, len)
}
