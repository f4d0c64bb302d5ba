//! One EDS update of 10,000 endpoints over 100 localities (two priorities), from its encoded bytes:
//!
//! - `eds/decode`: protobuf decoding alone (prost), for scale.
//! - `eds/decode_validate`: decoding and validation into a `mesh_core::endpoint::EndpointSet`.
//! - `eds/decode_validate_publish`: the same, then the update delivered to a gRFC A74 dependency manager that holds
//!   the target's listener, routes and cluster, which publishes a complete new `ConfigSnapshot` (replacing the one
//!   built from the previous generation). Issue requirement: at most 20 ms.
//!
//! Before the timings, the memory of the validated `EndpointSet` is measured with a counting global allocator and
//! printed as `bytes per endpoint: N` (issue requirement: at most 1 KiB; Envoy spends about 1.4 KB per host).
#![allow(missing_docs)]

use std::alloc::System;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::google::protobuf::Any;
use mesh_benches::eds::{self, ENDPOINTS, EndpointExtras, LOCALITIES};
use mesh_core::endpoint::Endpoint;
use mesh_xds_client::deps::Action;
use mesh_xds_client::resource::{
    Resource, ResourceKind, ValidationContext, decode, validate_cluster_load_assignment,
};
use prost::Message as _;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The memory requirement of issue 3, per endpoint.
const LIMIT_BYTES_PER_ENDPOINT: usize = 1024;

/// Heap bytes still held, and allocations still live, after `build` returns a value that is kept: what the value
/// costs while it is retained. Everything `build` freed before returning (the decoded proto, scratch maps) is not
/// counted there; the last figure is every byte allocated on the way, freed or not.
fn retained<T>(build: impl FnOnce() -> T) -> (T, isize, isize, usize) {
    let region = Region::new(GLOBAL);
    let value = build();
    let stats = region.change();
    // `stats_alloc` already counts a realloc's growth as allocated and its shrinking as deallocated.
    let bytes = isize::try_from(stats.bytes_allocated).unwrap_or(isize::MAX)
        - isize::try_from(stats.bytes_deallocated).unwrap_or(isize::MAX);
    let allocations = isize::try_from(stats.allocations).unwrap_or(isize::MAX)
        - isize::try_from(stats.deallocations).unwrap_or(isize::MAX);
    (value, bytes, allocations, stats.bytes_allocated)
}

#[allow(clippy::print_stdout, reason = "the benchmark's report")]
fn memory(_: &mut Criterion) {
    let ctx = ValidationContext::default();
    println!(
        "\nmemory of the validated EndpointSet ({ENDPOINTS} endpoints, {LOCALITIES} localities, 2 priorities)"
    );
    for (label, extras) in [
        ("address, weight, health", EndpointExtras::None),
        (
            "plus host name and Istio-style metadata",
            EndpointExtras::HostnameAndMetadata,
        ),
    ] {
        let bytes = eds::encoded_cluster_load_assignment(ENDPOINTS, LOCALITIES, 0, extras);
        let (set, held, live, churn) =
            retained(|| validate_cluster_load_assignment(&bytes, &ctx).map(|(_, set)| set));
        let Ok(set) = set else {
            println!("  {label}: the fixture was rejected: {set:?}");
            continue;
        };
        let count = set.endpoint_count();
        let inline = std::mem::size_of_val(&set);
        let held = usize::try_from(held).unwrap_or(0) + inline;
        let per_endpoint = held / count.max(1);
        let verdict = if per_endpoint <= LIMIT_BYTES_PER_ENDPOINT {
            "within"
        } else {
            "OVER"
        };
        println!("  {label}:");
        println!(
            "    bytes per endpoint: {per_endpoint} ({verdict} the {LIMIT_BYTES_PER_ENDPOINT}-byte limit; {held} bytes for {count} endpoints, {live} live allocations)"
        );
        println!(
            "    allocated while decoding and validating: {} bytes per endpoint (freed except the above)",
            churn / count.max(1)
        );
        println!(
            "    encoded size: {} bytes per endpoint; mesh_core Endpoint inline size: {} bytes",
            bytes.len() / count.max(1),
            std::mem::size_of::<Endpoint>()
        );
        black_box(set);
    }
    println!();
}

fn eds_update(c: &mut Criterion) {
    let ctx = ValidationContext::default();
    let [first, second] = [0, 1].map(|generation| {
        eds::encoded_cluster_load_assignment(
            ENDPOINTS,
            LOCALITIES,
            generation,
            EndpointExtras::None,
        )
    });

    let mut group = c.benchmark_group("eds");
    group.sample_size(30);
    group.bench_function("decode", |b| {
        b.iter(|| black_box(ClusterLoadAssignment::decode(black_box(first.as_slice()))));
    });
    group.bench_function("decode_validate", |b| {
        b.iter(|| black_box(validate_cluster_load_assignment(black_box(&first), &ctx)));
    });

    // Each iteration delivers the generation the manager does not hold, so each one is a real update that
    // publishes; the previous snapshot and endpoint set are dropped inside the iteration, as they would be.
    let [even, odd] = [first, second].map(|value| Any {
        type_url: ResourceKind::ClusterLoadAssignment.type_url().to_owned(),
        value,
    });
    let mut manager = eds::dependency_manager_waiting_for_eds();
    let mut flip = false;
    group.bench_function("decode_validate_publish", |b| {
        b.iter(|| {
            flip = !flip;
            let any = if flip { &odd } else { &even };
            let published = match decode(ResourceKind::ClusterLoadAssignment, any, &ctx) {
                Ok((_, resource @ Resource::ClusterLoadAssignment(_))) => {
                    eds::deliver_endpoints(&mut manager, resource);
                    manager
                        .take_actions()
                        .into_iter()
                        .filter(|action| matches!(action, Action::Publish(Ok(_))))
                        .count()
                }
                _ => 0,
            };
            assert_eq!(published, 1, "each update publishes one snapshot");
            black_box(published)
        });
    });
    group.finish();
}

criterion_group!(benches, memory, eds_update);
criterion_main!(benches);
