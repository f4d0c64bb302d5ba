//! One endpoint pick (drop overloads, active priority, locality by effective weight, endpoint by weight) at 10,
//! 1,000 and 10,000 endpoints. The pick must not grow with the endpoint count.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mesh_core::picker::EndpointPicker;
use mesh_core::rng::FastRng;

fn endpoint_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("endpoint_pick");
    for size in [10usize, 1_000, 10_000] {
        let set = mesh_benches::endpoint_set(size);
        let picker = EndpointPicker::build_from_health(&set);
        let mut rng = FastRng::from_seed(42);
        group.bench_with_input(BenchmarkId::from_parameter(size), &picker, |b, picker| {
            b.iter(|| black_box(picker.pick(&mut rng)));
        });
    }
    group.finish();

    let mut build = c.benchmark_group("endpoint_picker_build");
    for size in [10usize, 1_000, 10_000] {
        let set = mesh_benches::endpoint_set(size);
        build.bench_with_input(BenchmarkId::from_parameter(size), &set, |b, set| {
            b.iter(|| black_box(EndpointPicker::build_from_health(set)));
        });
    }
    build.finish();
}

criterion_group!(benches, endpoint_pick);
criterion_main!(benches);
