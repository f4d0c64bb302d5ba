//! Which filter chain takes a connection (gRFC A36 "FilterChainMatch", Envoy's `FilterChainMatch` rules).
//!
//! Envoy narrows the chains field by field, in a fixed order, keeping at each step only the chains whose criterion
//! matches most specifically; a chain that leaves a field empty matches anything there, but less specifically than
//! one that names the value. If no chain survives a step, nothing matches (Envoy does not backtrack) and the
//! listener's `default_filter_chain` applies. The order (Envoy `listener_components.proto`): destination port,
//! destination IP, server name, transport protocol, application protocol, source type, source IP, source port.
//!
//! gRFC A36: `destination_port`, `server_names` and `application_protocols` can never match in gRPC (they depend on
//! `use_original_dst` and listener filters, which gRPC rejects), and `transport_protocol` matches only
//! `raw_buffer`; chains using them are pruned before matching. Validation (mesh-xds-client) guarantees that the most
//! specific chain is unique, so ties cannot happen; if one did, the first configured chain would win.

use std::net::{IpAddr, SocketAddr};

use mesh_core::listener::{FilterChain, FilterChainMatch, SourceType};
use mesh_core::rbac::CidrRange;

/// The transport protocol of every connection gRPC accepts before TLS is negotiated (gRFC A36).
const RAW_BUFFER: &str = "raw_buffer";

/// The index in `chains` of the chain for a connection from `remote` to `local`, or `None` when no chain matches
/// (the caller then uses the default chain, or closes the connection). Addresses are compared in canonical form:
/// an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, from a dual-stack socket) is its IPv4 address.
pub(crate) fn select(
    chains: &[FilterChain],
    local: SocketAddr,
    remote: SocketAddr,
) -> Option<usize> {
    let local_ip = local.ip().to_canonical();
    let remote_ip = remote.ip().to_canonical();
    let mut candidates: Vec<usize> = chains
        .iter()
        .enumerate()
        .filter(|(_, chain)| can_match(&chain.filter_chain_match))
        .map(|(index, _)| index)
        .collect();
    let of = |index: usize| chains.get(index).map(|chain| &chain.filter_chain_match);

    // Destination IP: the longest matching prefix wins; no prefixes is the least specific match.
    narrow(&mut candidates, |i| {
        of(i).and_then(|m| prefix_specificity(&m.prefix_ranges, local_ip))
    });
    // Transport protocol: a chain naming `raw_buffer` is more specific than one naming none.
    narrow(&mut candidates, |i| {
        of(i).map(|m| i16::from(m.transport_protocol.is_some()))
    });
    // Source type: a matching specific type beats ANY (gRFC A36).
    let same_host = remote_ip.is_loopback() || remote_ip == local_ip;
    narrow(&mut candidates, |i| {
        of(i).and_then(|m| match m.source_type {
            SourceType::SameIpOrLoopback => same_host.then_some(1),
            SourceType::External => (!same_host).then_some(1),
            _ => Some(0),
        })
    });
    // Source IP, then source port.
    narrow(&mut candidates, |i| {
        of(i).and_then(|m| prefix_specificity(&m.source_prefix_ranges, remote_ip))
    });
    narrow(&mut candidates, |i| {
        of(i).and_then(|m| {
            if m.source_ports.is_empty() {
                Some(0)
            } else {
                m.source_ports.contains(&remote.port()).then_some(1)
            }
        })
    });
    candidates.first().copied()
}

/// Whether a chain can match any connection at all (gRFC A36's hard-coded fields).
fn can_match(m: &FilterChainMatch) -> bool {
    m.destination_port.is_none()
        && m.server_names.is_empty()
        && m.application_protocols.is_empty()
        && m.transport_protocol
            .as_deref()
            .is_none_or(|p| p == RAW_BUFFER)
}

/// Keeps the candidates whose `score` is highest, dropping those that do not match (`None`).
fn narrow(candidates: &mut Vec<usize>, score: impl Fn(usize) -> Option<i16>) {
    let best = candidates.iter().filter_map(|&i| score(i)).max();
    match best {
        Some(best) => candidates.retain(|&i| score(i) == Some(best)),
        None => candidates.clear(),
    }
}

/// How specifically `ranges` match `ip`: `-1` for no ranges (matches anything), the longest containing prefix's
/// length otherwise, `None` when no range contains it.
fn prefix_specificity(ranges: &[CidrRange], ip: IpAddr) -> Option<i16> {
    if ranges.is_empty() {
        return Some(-1);
    }
    ranges
        .iter()
        .filter(|range| range.contains(ip))
        .map(|range| i16::from(range.prefix_len()))
        .max()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mesh_core::listener::{HttpConnectionManager, RouteSource};
    use mesh_core::route::RouteConfig;

    use super::*;

    fn cidr(text: &str) -> CidrRange {
        let (ip, len) = text.split_once('/').unwrap();
        CidrRange::new(ip.parse().unwrap(), len.parse().unwrap()).unwrap()
    }

    fn chain(name: &str, edit: impl FnOnce(&mut FilterChainMatch)) -> FilterChain {
        let mut m = FilterChainMatch::default();
        edit(&mut m);
        let http = HttpConnectionManager::new(RouteSource::Inline(Arc::new(RouteConfig::new(
            "r",
            Vec::new(),
        ))));
        FilterChain::new(name, http).with_match(m)
    }

    fn pick(chains: &[FilterChain], local: &str, remote: &str) -> Option<String> {
        select(chains, local.parse().unwrap(), remote.parse().unwrap())
            .map(|i| chains[i].name.to_string())
    }

    #[test]
    fn the_longest_destination_prefix_wins_and_empty_is_least_specific() {
        let chains = [
            chain("any", |_| {}),
            chain("wide", |m| m.prefix_ranges = vec![cidr("10.0.0.0/8")]),
            chain("narrow", |m| {
                m.prefix_ranges = vec![cidr("10.1.0.0/16"), cidr("192.168.0.0/16")];
            }),
        ];
        assert_eq!(
            pick(&chains, "10.1.2.3:80", "1.2.3.4:5").as_deref(),
            Some("narrow")
        );
        assert_eq!(
            pick(&chains, "10.2.2.3:80", "1.2.3.4:5").as_deref(),
            Some("wide")
        );
        assert_eq!(
            pick(&chains, "172.16.0.1:80", "1.2.3.4:5").as_deref(),
            Some("any")
        );
    }

    #[test]
    fn source_type_prefix_and_port_narrow_in_order_without_backtracking() {
        let chains = [
            chain("local", |m| m.source_type = SourceType::SameIpOrLoopback),
            chain("external", |m| m.source_type = SourceType::External),
        ];
        assert_eq!(
            pick(&chains, "127.0.0.1:80", "127.0.0.2:5").as_deref(),
            Some("local")
        );
        assert_eq!(
            pick(&chains, "10.0.0.1:80", "10.0.0.1:5").as_deref(),
            Some("local")
        );
        assert_eq!(
            pick(&chains, "10.0.0.1:80", "10.0.0.2:5").as_deref(),
            Some("external")
        );

        let chains = [
            chain("from-a", |m| {
                m.source_prefix_ranges = vec![cidr("127.0.9.0/24")];
            }),
            chain("any", |_| {}),
            chain("port", |m| {
                m.source_prefix_ranges = vec![cidr("127.0.8.0/24")];
                m.source_ports = vec![4000];
            }),
        ];
        assert_eq!(
            pick(&chains, "127.0.0.1:80", "127.0.9.1:5").as_deref(),
            Some("from-a")
        );
        assert_eq!(
            pick(&chains, "127.0.0.1:80", "127.0.7.1:5").as_deref(),
            Some("any")
        );
        assert_eq!(
            pick(&chains, "127.0.0.1:80", "127.0.8.1:4000").as_deref(),
            Some("port")
        );
        // The source prefix step chose "port"; its port does not match, and Envoy does not go back to "any".
        assert_eq!(pick(&chains, "127.0.0.1:80", "127.0.8.1:4001"), None);
    }

    #[test]
    fn fields_grpc_cannot_match_prune_the_chain() {
        let chains = [
            chain("dport", |m| m.destination_port = Some(80)),
            chain("sni", |m| m.server_names = vec!["a.example".into()]),
            chain("alpn", |m| m.application_protocols = vec!["h2".into()]),
            chain("tls", |m| m.transport_protocol = Some("tls".into())),
        ];
        assert_eq!(pick(&chains, "127.0.0.1:80", "127.0.0.1:5"), None);
        let chains = [
            chain("plain", |_| {}),
            chain("raw", |m| m.transport_protocol = Some("raw_buffer".into())),
        ];
        assert_eq!(
            pick(&chains, "127.0.0.1:80", "127.0.0.1:5").as_deref(),
            Some("raw")
        );
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_ranges() {
        let chains = [chain("v4", |m| {
            m.source_prefix_ranges = vec![cidr("127.0.0.0/8")];
        })];
        assert_eq!(
            pick(&chains, "[::ffff:127.0.0.1]:80", "[::ffff:127.0.0.5]:5").as_deref(),
            Some("v4")
        );
        assert_eq!(pick(&chains, "[::1]:80", "[::1]:5"), None);
    }
}
