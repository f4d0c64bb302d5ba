#![allow(clippy::cast_precision_loss)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_core::ring_hash::{Ring, hash_key};
use mesh_core::rng::FastRng;

use super::*;
use crate::lb::PeakEwma;

/// Counts the draws made through it.
struct Counting {
    inner: FastRng,
    draws: u32,
}

impl RandomSource for Counting {
    fn next_u64(&mut self) -> u64 {
        self.draws += 1;
        self.inner.next_u64()
    }
}

fn shares(counts: &[u32]) -> Vec<f64> {
    let total: u32 = counts.iter().sum();
    counts
        .iter()
        .map(|&count| f64::from(count) / f64::from(total))
        .collect()
}

#[test]
fn p2c_handles_empty_and_single_candidate_lists() {
    let mut rng = FastRng::from_seed(1);
    assert_eq!(p2c(&[], |_| 1.0, &mut rng), None);
    assert_eq!(p2c(&[7], |_| f64::NAN, &mut rng), Some(7));
}

#[test]
fn p2c_never_picks_the_strictly_most_expensive_candidate() {
    let mut rng = FastRng::from_seed(2);
    for len in 2..12_usize {
        let candidates: Vec<usize> = (100..100 + len).collect();
        let worst = candidates[len / 2];
        for _ in 0..2_000 {
            let pick = p2c(
                &candidates,
                |e| if e == worst { 1.1 } else { 1.0 },
                &mut rng,
            )
            .unwrap();
            assert_ne!(pick, worst, "len {len}");
        }
    }
}

#[test]
fn p2c_shares_follow_the_rank_formula() {
    // Candidate r has cost r: it wins when drawn (probability 2/n for a pair) and paired with a costlier one.
    let n = 10_usize;
    let candidates: Vec<usize> = (0..n).collect();
    let mut rng = FastRng::from_seed(3);
    let mut counts = vec![0_u32; n];
    let picks = 200_000;
    for _ in 0..picks {
        counts[p2c(&candidates, |e| e as f64, &mut rng).unwrap()] += 1;
    }
    let expected = |rank: usize| 2.0 * (n - 1 - rank) as f64 / (n * (n - 1)) as f64;
    for (rank, share) in shares(&counts).into_iter().enumerate() {
        assert!(
            (share - expected(rank)).abs() < 0.005,
            "rank {rank}: {share} vs {}",
            expected(rank)
        );
    }
    assert_eq!(counts[n - 1], 0);
}

#[test]
fn p2c_breaks_ties_at_random() {
    let mut rng = FastRng::from_seed(4);
    let mut first = 0_u32;
    for _ in 0..10_000 {
        if p2c(&[1, 2], |_| 5.0, &mut rng) == Some(1) {
            first += 1;
        }
    }
    assert!((4_600..5_400).contains(&first), "{first}");
}

#[test]
fn p2c_treats_nan_as_the_highest_cost() {
    let mut rng = FastRng::from_seed(5);
    for _ in 0..1_000 {
        let pick = p2c(
            &[1, 2],
            |e| if e == 1 { f64::NAN } else { f64::MAX },
            &mut rng,
        );
        assert_eq!(pick, Some(2));
    }
}

/// A closed loop of `concurrency` clients over endpoints with fixed service times, picking by P2C over peak-EWMA
/// cost with outstanding counts: returns requests served per endpoint.
fn simulate_p2c_peak_ewma(service: &[Duration], concurrency: usize, requests: usize) -> Vec<u32> {
    let start = Instant::now();
    let ewmas: Vec<PeakEwma> = service
        .iter()
        .map(|_| PeakEwma::new(Duration::from_secs(10), Duration::from_millis(30), start))
        .collect();
    let mut outstanding = vec![0_u32; service.len()];
    let mut served = vec![0_u32; service.len()];
    let candidates: Vec<usize> = (0..service.len()).collect();
    let mut rng = FastRng::from_seed(6);
    // (completion time, endpoint, sent at)
    let mut in_flight: BinaryHeap<Reverse<(Duration, usize, Duration)>> = BinaryHeap::new();
    let mut send = |at: Duration, in_flight: &mut BinaryHeap<_>, outstanding: &mut Vec<u32>| {
        let now = start + at;
        let pick = p2c(
            &candidates,
            |e| ewmas[e].cost(now, outstanding[e]),
            &mut rng,
        )
        .unwrap();
        outstanding[pick] += 1;
        in_flight.push(Reverse((at + service[pick], pick, at)));
    };
    for _ in 0..concurrency {
        send(Duration::ZERO, &mut in_flight, &mut outstanding);
    }
    for _ in 0..requests {
        let Reverse((done, endpoint, sent)) = in_flight.pop().unwrap();
        outstanding[endpoint] -= 1;
        served[endpoint] += 1;
        ewmas[endpoint].observe(done - sent, start + done);
        send(done, &mut in_flight, &mut outstanding);
    }
    served
}

#[test]
fn p2c_over_peak_ewma_starves_an_endpoint_ten_times_slower() {
    // Issue 4: an endpoint ten times slower than the others receives under 10% of requests.
    let mut service = vec![Duration::from_millis(10); 9];
    service.push(Duration::from_millis(100));
    let served = simulate_p2c_peak_ewma(&service, 16, 20_000);
    let slow_share = shares(&served)[9];
    assert!(
        slow_share < 0.02,
        "slow endpoint got {slow_share}: {served:?}"
    );
    // And the fast endpoints share the rest evenly (each within 25% of a ninth).
    for &count in &served[..9] {
        let share = f64::from(count) / f64::from(served.iter().sum::<u32>());
        assert!((share - 1.0 / 9.0).abs() < 0.25 / 9.0, "{served:?}");
    }
}

#[test]
fn least_request_prefers_fewer_outstanding_and_keeps_the_first_of_equals() {
    let mut rng = FastRng::from_seed(7);
    assert_eq!(least_request(&[], 2, |_| 0, &mut rng), None);
    assert_eq!(least_request(&[4], 2, |_| 9, &mut rng), Some(4));
    // Two candidates, the second always busier: it wins only when both samples are it (1/4).
    let mut busy = 0_u32;
    for _ in 0..40_000 {
        if least_request(&[1, 2], 2, |e| if e == 2 { 5 } else { 0 }, &mut rng) == Some(2) {
            busy += 1;
        }
    }
    assert!((9_400..10_600).contains(&busy), "{busy}");
    // Equal load: the first sample stays, so the pick is uniform over the samples' first draw.
    let mut first = 0_u32;
    for _ in 0..10_000 {
        if least_request(&[1, 2], 2, |_| 3, &mut rng) == Some(1) {
            first += 1;
        }
    }
    assert!((4_600..5_400).contains(&first), "{first}");
}

#[test]
fn least_request_clamps_the_choice_count() {
    for (choice_count, expected_draws) in [(0, 2), (1, 2), (2, 2), (5, 5), (10, 10), (u32::MAX, 10)]
    {
        let mut rng = Counting {
            inner: FastRng::from_seed(8),
            draws: 0,
        };
        least_request(&[1, 2, 3], choice_count, |_| 0, &mut rng).unwrap();
        assert_eq!(rng.draws, expected_draws, "choice_count {choice_count}");
    }
}

#[test]
fn round_robin_cycles_through_the_candidates_in_order() {
    let rr = RoundRobin::new();
    assert_eq!(rr.pick(&[]), None);
    let picks: Vec<usize> = (0..7).filter_map(|_| rr.pick(&[10, 20, 30])).collect();
    // The empty pick above did not advance the cursor.
    assert_eq!(picks, [10, 20, 30, 10, 20, 30, 10]);
    let copy = rr.clone();
    assert_eq!(copy.pick(&[10, 20, 30]), Some(20));
    assert_eq!(
        rr.pick(&[10, 20, 30]),
        Some(20),
        "the copy has its own cursor"
    );
    assert_eq!(RoundRobin::starting_at(5).pick(&[1, 2, 3]), Some(3));
}

#[test]
fn round_robin_is_exactly_even_under_concurrency() {
    let candidates: Arc<[usize]> = (0..7).collect();
    let rr = Arc::new(RoundRobin::with_random_start(&mut FastRng::from_seed(9)));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (rr, candidates) = (Arc::clone(&rr), Arc::clone(&candidates));
            std::thread::spawn(move || {
                let mut counts = [0_u32; 7];
                for _ in 0..7_000 {
                    counts[rr.pick(&candidates).unwrap()] += 1;
                }
                counts
            })
        })
        .collect();
    let mut totals = [0_u32; 7];
    for thread in threads {
        for (total, count) in totals.iter_mut().zip(thread.join().unwrap()) {
            *total += count;
        }
    }
    assert_eq!(totals, [8_000; 7]);
}

fn ring(endpoints: usize) -> Ring {
    Ring::build(
        (0..endpoints).map(|e| (format!("10.0.0.{e}:80"), 1)),
        1024,
        4096,
    )
    .unwrap()
}

#[test]
fn ring_hash_pick_takes_the_owner_when_it_is_usable() {
    let ring = ring(5);
    for key in 0..200_u32 {
        let hash = hash_key(&key.to_be_bytes());
        assert_eq!(ring_hash_pick(&ring, hash, |_| true), ring.lookup(hash));
    }
}

#[test]
fn ring_hash_pick_walks_on_to_the_next_usable_endpoint() {
    let ring = ring(6);
    for key in 0..200_u32 {
        let hash = hash_key(&key.to_be_bytes());
        let order: Vec<usize> = ring.successors(hash).collect();
        // The first two in ring order are down: the third is chosen.
        let down = [order[0], order[1]];
        assert_eq!(
            ring_hash_pick(&ring, hash, |e| !down.contains(&e)),
            Some(order[2])
        );
    }
    assert_eq!(ring_hash_pick(&ring, 42, |_| false), None);
}

#[test]
fn ring_hash_pick_is_stable_for_a_key() {
    let ring = ring(8);
    let hash = hash_key(b"user-1234");
    let first = ring_hash_pick(&ring, hash, |_| true);
    for _ in 0..100 {
        assert_eq!(ring_hash_pick(&ring, hash, |_| true), first);
    }
}
