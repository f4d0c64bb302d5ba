//! Properties of filter-chain selection over arbitrary chains and connections.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use mesh_core::listener::{
    FilterChain, FilterChainMatch, HttpConnectionManager, RouteSource, SourceType,
};
use mesh_core::rbac::CidrRange;
use mesh_core::route::RouteConfig;
use proptest::prelude::*;

use super::chain::select;

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0_u8..4).prop_map(|last| IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))),
        (1_u8..3).prop_map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))),
    ]
}

fn arb_cidr() -> impl Strategy<Value = CidrRange> {
    (arb_ip(), prop::sample::select(vec![0_u8, 8, 24, 30, 32]))
        .prop_map(|(ip, len)| CidrRange::new(ip, len).unwrap())
}

fn arb_match() -> impl Strategy<Value = FilterChainMatch> {
    (
        prop::collection::vec(arb_cidr(), 0..3),
        prop::sample::select(vec![
            SourceType::Any,
            SourceType::SameIpOrLoopback,
            SourceType::External,
        ]),
        prop::collection::vec(arb_cidr(), 0..3),
        prop::collection::vec(1_u16..4, 0..3),
        prop::option::weighted(0.2, Just(Arc::<str>::from("raw_buffer"))),
        prop::option::weighted(0.1, 1_u16..3),
    )
        .prop_map(
            |(prefixes, source_type, sources, ports, transport, destination_port)| {
                let mut m = FilterChainMatch::default();
                m.prefix_ranges = prefixes;
                m.source_type = source_type;
                m.source_prefix_ranges = sources;
                m.source_ports = ports;
                m.transport_protocol = transport;
                m.destination_port = destination_port;
                m
            },
        )
}

fn chains(matches: Vec<FilterChainMatch>) -> Vec<FilterChain> {
    let http = HttpConnectionManager::new(RouteSource::Inline(Arc::new(RouteConfig::new(
        "r",
        Vec::new(),
    ))));
    matches
        .into_iter()
        .enumerate()
        .map(|(index, m)| FilterChain::new(&format!("c{index}"), http.clone()).with_match(m))
        .collect()
}

fn covers(ranges: &[CidrRange], ip: IpAddr) -> bool {
    ranges.is_empty() || ranges.iter().any(|range| range.contains(ip))
}

fn longest(ranges: &[CidrRange], ip: IpAddr) -> Option<i16> {
    if ranges.is_empty() {
        return Some(-1);
    }
    ranges
        .iter()
        .filter(|r| r.contains(ip))
        .map(|r| i16::from(r.prefix_len()))
        .max()
}

proptest! {
    /// The chosen chain matches the connection on every field gRPC can match.
    #[test]
    fn the_chosen_chain_matches_the_connection(
        matches in prop::collection::vec(arb_match(), 0..6),
        local in arb_ip(),
        remote in arb_ip(),
        port in 1_u16..4,
    ) {
        let chains = chains(matches);
        let (local, remote) = (SocketAddr::new(local, 80), SocketAddr::new(remote, port));
        if let Some(index) = select(&chains, local, remote) {
            let m = &chains[index].filter_chain_match;
            let same_host = remote.ip().is_loopback() || remote.ip() == local.ip();
            prop_assert!(m.destination_port.is_none());
            prop_assert!(covers(&m.prefix_ranges, local.ip()));
            prop_assert!(covers(&m.source_prefix_ranges, remote.ip()));
            prop_assert!(m.source_ports.is_empty() || m.source_ports.contains(&remote.port()));
            let source_type_matches = match m.source_type {
                SourceType::SameIpOrLoopback => same_host,
                SourceType::External => !same_host,
                _ => true,
            };
            prop_assert!(source_type_matches);
        }
    }

    /// No chain that matches the destination is more specific there than the chosen one (Envoy's first criterion),
    /// and a lone catch-all chain takes every connection.
    #[test]
    fn the_destination_prefix_is_the_most_specific(
        matches in prop::collection::vec(arb_match(), 0..6),
        local in arb_ip(),
        remote in arb_ip(),
        port in 1_u16..4,
    ) {
        let chains = chains(matches);
        let (local_addr, remote_addr) = (SocketAddr::new(local, 80), SocketAddr::new(remote, port));
        if let Some(index) = select(&chains, local_addr, remote_addr) {
            let chosen = longest(&chains[index].filter_chain_match.prefix_ranges, local).unwrap();
            for chain in &chains {
                let m = &chain.filter_chain_match;
                if m.destination_port.is_none() {
                    prop_assert!(longest(&m.prefix_ranges, local).is_none_or(|other| other <= chosen));
                }
            }
        }
        let lone = super::chain::select(&self::chains(vec![FilterChainMatch::default()]), local_addr, remote_addr);
        prop_assert_eq!(lone, Some(0));
    }
}
