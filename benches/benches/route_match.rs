//! Route lookup in a 100-route table: virtual-host selection, then first-match routing for requests that hit the
//! first route, a middle route with a header condition, a prefix route near the end, and the catch-all.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use mesh_core::rng::FastRng;

fn route_match(c: &mut Criterion) {
    let config = mesh_benches::route_config_100();
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant", HeaderValue::from_static("gold"));
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    headers.insert("user-agent", HeaderValue::from_static("bench/1.0"));

    c.bench_function("virtual_host_select", |b| {
        b.iter(|| black_box(config.select_virtual_host(black_box("greeter.mesh.local"))));
    });

    let Some(vhost) = config.select_virtual_host("greeter.mesh.local") else {
        return;
    };
    let mut group = c.benchmark_group("route_match_100");
    let cases = [
        ("first", "/pkg.Service0/Method0"),
        ("middle_header", "/pkg.Service4/Method6"),
        ("prefix_late", "/pkg.Service8/Unknown"),
        ("catch_all", "/other.Service/Call"),
    ];
    let mut rng = FastRng::from_seed(7);
    for (name, path) in cases {
        group.bench_with_input(BenchmarkId::from_parameter(name), &path, |b, path| {
            b.iter(|| black_box(vhost.find_route(black_box(path), &headers, &mut rng)));
        });
    }
    group.finish();
}

criterion_group!(benches, route_match);
criterion_main!(benches);
