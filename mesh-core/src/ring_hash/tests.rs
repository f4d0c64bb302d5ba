#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;
use crate::rng::{FastRng, RandomSource};

fn address(index: usize) -> String {
    format!("10.0.{}.{}:8080", index / 256, index % 256)
}

fn equal_endpoints(count: usize) -> Vec<(String, u32)> {
    (0..count).map(|index| (address(index), 1)).collect()
}

fn default_ring(endpoints: &[(String, u32)]) -> Ring {
    Ring::build(
        endpoints.iter().map(|(key, weight)| (key, *weight)),
        1024,
        DEFAULT_MAX_RING_SIZE,
    )
    .unwrap()
}

fn points_per_endpoint(ring: &Ring) -> Vec<usize> {
    let mut counts = vec![0; ring.endpoint_count()];
    for (_, endpoint) in ring.points() {
        counts[endpoint] += 1;
    }
    counts
}

/// Ring order, first point `>= hash`, found by a linear scan: the reference for `lookup`.
fn naive_owner_position(ring: &Ring, hash: u64) -> usize {
    ring.points()
        .position(|(point, _)| point >= hash)
        .unwrap_or(0)
}

#[test]
fn hash_key_is_xxh64_with_seed_zero() {
    // Reference values of XXH64 with seed 0 (xxHash's own test vectors).
    assert_eq!(hash_key(b""), 0xEF46_DB37_51D8_E999);
    assert_eq!(hash_key(b"abc"), 0x44BC_2CF5_AD77_0999);
}

#[test]
fn points_hash_key_underscore_index() {
    // Two equal weights, min size 4: scale = ceil(0.5 * 4) / 0.5 = 4, two points each.
    let ring = Ring::build([("a", 1), ("b", 1)], 4, 4).unwrap();
    let mut expected: Vec<(u64, usize)> = vec![
        (xxh64(b"a_0", 0), 0),
        (xxh64(b"a_1", 0), 0),
        (xxh64(b"b_0", 0), 1),
        (xxh64(b"b_1", 0), 1),
    ];
    expected.sort_unstable();
    assert_eq!(ring.points().collect::<Vec<_>>(), expected);

    let mut digits = b"x_".to_vec();
    push_decimal(&mut digits, 1_234_567_890);
    assert_eq!(digits, b"x_1234567890");
}

#[test]
fn same_input_builds_the_same_ring() {
    let endpoints = equal_endpoints(7);
    let first = default_ring(&endpoints);
    let second = default_ring(&endpoints);
    assert_eq!(first, second);
    assert_eq!(format!("{first:?}"), format!("{second:?}"));
    assert!(format!("{first:?}").starts_with("Ring { points: "));
}

#[test]
fn lookup_takes_the_first_point_at_or_after_the_hash_and_wraps() {
    let ring = default_ring(&equal_endpoints(5));
    let points: Vec<(u64, usize)> = ring.points().collect();
    let (first_hash, first_owner) = points[0];
    let (last_hash, last_owner) = *points.last().unwrap();

    assert_eq!(ring.lookup(0), Some(first_owner));
    assert_eq!(ring.lookup(first_hash), Some(first_owner));
    assert_eq!(ring.lookup(last_hash), Some(last_owner));
    // Past the last point the ring wraps to the first.
    assert!(last_hash < u64::MAX);
    assert_eq!(ring.lookup(last_hash + 1), Some(first_owner));
    assert_eq!(ring.lookup(u64::MAX), Some(first_owner));
    // Between two points, the later one owns the hash.
    let (hash_a, _) = points[10];
    let (hash_b, owner_b) = points[11];
    assert!(hash_a < hash_b);
    assert_eq!(ring.lookup(hash_a + 1), Some(owner_b));
}

#[test]
fn points_per_endpoint_follow_the_weights() {
    // min normalised weight 0.1: scale = ceil(0.1 * 1024) / 0.1 = 1030, split 103 / 206 / 309 / 412.
    let ring = Ring::build(
        [("a", 1), ("b", 2), ("c", 3), ("d", 4)],
        1024,
        DEFAULT_MAX_RING_SIZE,
    )
    .unwrap();
    let counts = points_per_endpoint(&ring);
    for (count, expected) in counts.iter().zip([103, 206, 309, 412]) {
        assert!(count.abs_diff(expected) <= 1, "{counts:?}");
    }
    assert!(ring.len().abs_diff(1030) <= 1);

    let skewed = Ring::build([("light", 1), ("heavy", 99)], 1024, DEFAULT_MAX_RING_SIZE).unwrap();
    let counts = points_per_endpoint(&skewed);
    // The lightest endpoint gets ceil(0.01 * 1024) = 11 whole points; the heavy one 99 times as many.
    assert_eq!(counts[0], 11);
    assert!(counts[1].abs_diff(11 * 99) <= 1, "{counts:?}");
}

#[test]
fn zero_weight_endpoints_get_no_points() {
    let ring = Ring::build([("a", 0), ("b", 3), ("c", 0), ("d", 1)], 64, 1024).unwrap();
    let counts = points_per_endpoint(&ring);
    assert_eq!(counts[0], 0);
    assert_eq!(counts[2], 0);
    assert!(counts[1] > 0 && counts[3] > 0);
    assert_eq!(ring.endpoint_count(), 4);
    assert_eq!(ring.endpoints_on_ring(), 2);
}

#[test]
fn ring_size_respects_max_and_the_cap() {
    let endpoints = equal_endpoints(3);
    let grpc = Ring::build(
        endpoints.iter().map(|(key, weight)| (key, *weight)),
        GRPC_DEFAULT_MAX_RING_SIZE,
        GRPC_DEFAULT_MAX_RING_SIZE,
    )
    .unwrap();
    assert!(grpc.len() <= 4097, "{}", grpc.len());
    assert!(grpc.len() >= 4095, "{}", grpc.len());

    // Sizes above the cap are treated as the cap (building an 8M-point ring here would only slow the test).
    let capped = MAX_RING_SIZE_CAP as f64;
    assert!((ring_scale(1.0, u64::MAX, u64::MAX) - capped).abs() < 1e-6);
    assert!((ring_scale(0.5, 1024, u64::MAX) - 1024.0).abs() < 1e-6);
    assert!((ring_scale(1e-9, 1024, u64::MAX) - capped).abs() < 1e-6);
    assert!((ring_scale(0.1, 1024, 100) - 100.0).abs() < 1e-6);
    assert_eq!(point_capacity(capped), MAX_RING_SIZE_CAP as usize + 1);
}

#[test]
fn invalid_inputs_are_rejected() {
    let none: [(&str, u32); 0] = [];
    assert_eq!(Ring::build(none, 1, 2), Err(RingError::Empty));
    assert_eq!(
        Ring::build([("a", 0), ("b", 0)], 1, 2),
        Err(RingError::AllWeightsZero { count: 2 })
    );
    assert_eq!(
        Ring::build([("a", 1)], 0, 2),
        Err(RingError::ZeroMinRingSize)
    );
    let inverted = Ring::build([("a", 1)], 10, 2);
    assert_eq!(inverted, Err(RingError::MinAboveMax { min: 10, max: 2 }));
    assert_eq!(
        inverted.unwrap_err().to_string(),
        "ring_hash: min_ring_size 10 is greater than max_ring_size 2"
    );
}

#[test]
fn ten_equal_endpoints_share_keys_evenly() {
    const KEYS: usize = 100_000;
    let ring = default_ring(&equal_endpoints(10));
    let mut rng = FastRng::from_seed(42);
    let mut counts = [0usize; 10];
    for _ in 0..KEYS {
        counts[ring.lookup(rng.next_u64()).unwrap()] += 1;
    }
    for (endpoint, &count) in counts.iter().enumerate() {
        let share = count as f64 / KEYS as f64;
        assert!(
            (share - 0.1).abs() < 0.03,
            "endpoint {endpoint} got {share:.4}: {counts:?}"
        );
    }
}

#[test]
fn successors_visit_each_endpoint_once_in_ring_order() {
    let ring = default_ring(&equal_endpoints(6));
    let mut rng = FastRng::from_seed(3);
    for _ in 0..200 {
        let hash = rng.next_u64();
        let successors = ring.successors(hash);
        assert_eq!(successors.len(), 6);
        let walked: Vec<usize> = successors.collect();

        let points: Vec<(u64, usize)> = ring.points().collect();
        let start = naive_owner_position(&ring, hash);
        let mut expected = Vec::new();
        for offset in 0..points.len() {
            let endpoint = points[(start + offset) % points.len()].1;
            if !expected.contains(&endpoint) {
                expected.push(endpoint);
            }
        }
        assert_eq!(walked, expected);
        assert_eq!(walked.first().copied(), ring.lookup(hash));
    }
}

#[test]
fn removing_an_endpoint_without_rescaling_moves_only_its_keys() {
    // With 81 as min_ring_size, 10 and 9 equal endpoints both get 9 points each, so the rebuilt ring is the old
    // one minus the removed endpoint's points: every key whose owner survives must keep it.
    let endpoints = equal_endpoints(10);
    let before = Ring::build(endpoints.iter().map(|(k, w)| (k, *w)), 81, 1024).unwrap();
    let removed = 4;
    let survivors: Vec<(String, u32)> = endpoints
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != removed)
        .map(|(_, e)| e.clone())
        .collect();
    let after = Ring::build(survivors.iter().map(|(k, w)| (k, *w)), 81, 1024).unwrap();
    assert!(points_per_endpoint(&before).iter().all(|&count| count == 9));
    assert!(points_per_endpoint(&after).iter().all(|&count| count == 9));

    let to_old = |index: usize| if index < removed { index } else { index + 1 };
    let mut rng = FastRng::from_seed(9);
    for _ in 0..5_000 {
        let hash = rng.next_u64();
        let old_owner = before.lookup(hash).unwrap();
        let new_owner = to_old(after.lookup(hash).unwrap());
        if old_owner == removed {
            assert_ne!(new_owner, removed);
        } else {
            assert_eq!(
                new_owner, old_owner,
                "hash {hash:#x} moved off a surviving endpoint"
            );
        }
    }
}

fn endpoints_strategy() -> impl Strategy<Value = Vec<(String, u32)>> {
    proptest::collection::vec(prop_oneof![Just(0u32), 1u32..10, 1u32..100_000], 1..24).prop_map(
        |weights| {
            weights
                .into_iter()
                .enumerate()
                .map(|(index, weight)| (address(index), weight))
                .collect()
        },
    )
}

proptest! {
    #[test]
    fn lookups_never_panic_and_return_endpoints_on_the_ring(
        endpoints in endpoints_strategy(),
        min_ring_size in 1u64..2048,
        extra in 0u64..4096,
        hashes in proptest::collection::vec(any::<u64>(), 1..64),
    ) {
        let built = Ring::build(endpoints.iter().map(|(k, w)| (k, *w)), min_ring_size, min_ring_size + extra);
        if endpoints.iter().all(|(_, weight)| *weight == 0) {
            prop_assert_eq!(built, Err(RingError::AllWeightsZero { count: endpoints.len() }));
            return Ok(());
        }
        let ring = built.unwrap();
        prop_assert!(!ring.is_empty());
        prop_assert!(ring.len() as u64 <= min_ring_size + extra + 1);
        let on_ring: HashSet<usize> = ring.points().map(|(_, endpoint)| endpoint).collect();
        prop_assert_eq!(on_ring.len(), ring.endpoints_on_ring());
        for hash in hashes.into_iter().chain([0, u64::MAX]) {
            let owner = ring.lookup(hash).unwrap();
            prop_assert!(owner < endpoints.len());
            prop_assert!(endpoints[owner].1 > 0, "zero-weight endpoint {} returned", owner);
            prop_assert_eq!(ring.points().nth(naive_owner_position(&ring, hash)).map(|p| p.1), Some(owner));

            let walked: Vec<usize> = ring.successors(hash).collect();
            prop_assert_eq!(walked.first().copied(), Some(owner));
            let distinct: HashSet<usize> = walked.iter().copied().collect();
            prop_assert_eq!(distinct.len(), walked.len());
            prop_assert_eq!(&distinct, &on_ring);
        }
    }

    /// Our issue's property: removing one of N endpoints moves about 1/N of the keys. The removed endpoint's keys
    /// must move; a key whose owner survives may only move to a point the rebuild added, never between points
    /// both rings share. Survivors do gain points: each of N - 1 equal endpoints now gets
    /// ceil(1024 / (N - 1)) instead of ceil(1024 / N), about 1/N more, so roughly another 1/N of keys (less the
    /// share that lands back on its own owner) moves between survivors. The keys are a fixed sample, so each
    /// (N, removed) pair is deterministic; all 1,225 pairs pass with at least 0.01 to spare on both bounds.
    #[test]
    fn removing_an_endpoint_moves_about_one_nth_of_keys(
        count in 2usize..50,
        removed_seed in any::<usize>(),
    ) {
        const KEYS: usize = 2_000;
        let removed = removed_seed % count;
        let endpoints = equal_endpoints(count);
        let before = default_ring(&endpoints);
        let survivors: Vec<(String, u32)> =
            endpoints.iter().enumerate().filter(|(i, _)| *i != removed).map(|(_, e)| e.clone()).collect();
        let after = default_ring(&survivors);
        let to_old = |index: usize| if index < removed { index } else { index + 1 };
        let old_points: HashSet<(u64, usize)> = before.points().collect();
        let new_points: Vec<(u64, usize)> = after.points().map(|(hash, e)| (hash, to_old(e))).collect();

        let mut rng = FastRng::from_seed(0x5eed);
        let mut moved = 0usize;
        let mut moved_between_survivors = 0usize;
        for _ in 0..KEYS {
            let hash = rng.next_u64();
            let old_owner = before.lookup(hash).unwrap();
            let new_owner = to_old(after.lookup(hash).unwrap());
            prop_assert_ne!(new_owner, removed);
            if new_owner == old_owner {
                continue;
            }
            moved += 1;
            if old_owner != removed {
                moved_between_survivors += 1;
                let owning_point = new_points[naive_owner_position(&after, hash)];
                prop_assert!(
                    !old_points.contains(&owning_point),
                    "hash {:#x} moved from {} to {} through a point both rings share", hash, old_owner, new_owner
                );
            }
        }
        let n = count as f64;
        let moved_share = moved as f64 / KEYS as f64;
        let survivor_share = moved_between_survivors as f64 / KEYS as f64;
        prop_assert!(moved_share < 3.0 / n + 0.02, "moved {} of keys with {} endpoints", moved_share, count);
        prop_assert!(survivor_share < 1.0 / n + 0.03, "survivors swapped {} of keys with {} endpoints", survivor_share, count);
    }
}
