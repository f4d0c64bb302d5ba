//! Choosing an endpoint within a locality: the per-request step after [`EndpointPicker::pick_locality`].
//!
//! What it solves: given the locality's usable endpoints (`candidates`, from
//! [`EndpointPicker::usable_endpoints`]) and a way to read each endpoint's live state, pick one endpoint in O(1)
//! (O(`choice_count`) for least request), without locking or allocating:
//! - [`p2c`]: power of two choices over a cost (peak-EWMA, our default policy).
//! - [`least_request`]: gRFC A48's sampling of `choice_count` endpoints, fewest outstanding requests wins.
//! - [`RoundRobin`]: a shared cursor over the candidates.
//! - [`ring_hash_pick`]: gRFC A42's walk along the ring to the first usable endpoint.
//!
//! Weighted random choice by endpoint weight is [`EndpointPicker::pick_in_locality`] in mesh-core.
//!
//! What it does not solve: it keeps no per-endpoint state (the caller's closures read it), does no priority or
//! locality choice, and does not queue a request while endpoints connect: an endpoint is usable or it is not.
//!
//! [`EndpointPicker::pick_locality`]: mesh_core::picker::EndpointPicker::pick_locality
//! [`EndpointPicker::usable_endpoints`]: mesh_core::picker::EndpointPicker::usable_endpoints
//! [`EndpointPicker::pick_in_locality`]: mesh_core::picker::EndpointPicker::pick_in_locality

use std::sync::atomic::{AtomicUsize, Ordering};

use mesh_core::ring_hash::Ring;
use mesh_core::rng::RandomSource;

/// gRFC A48: the smallest `choice_count` that makes sense.
pub const MIN_CHOICE_COUNT: u32 = 2;
/// gRFC A48: larger `choice_count` values are treated as 10.
pub const MAX_CHOICE_COUNT: u32 = 10;

/// Power of two choices: draws two distinct candidates at random and returns the one with the lower `cost`; a tie is
/// broken at random. One candidate is returned as is; none gives `None`.
///
/// Because the two draws are distinct, the candidate with the strictly highest cost is never chosen when there are
/// at least two, and in general the candidate ranked `r` from the cheapest (0-based, all costs distinct) among `n`
/// wins with probability `2 (n − 1 − r) / (n (n − 1))`. A NaN cost counts as infinitely expensive.
///
/// Draws: two, plus one on a tie. Calls `cost` twice.
pub fn p2c(
    candidates: &[usize],
    cost: impl Fn(usize) -> f64,
    rng: &mut impl RandomSource,
) -> Option<usize> {
    match candidates {
        [] => None,
        [only] => Some(*only),
        _ => {
            let len = candidates.len();
            let first = random_index(rng, len);
            // A second index among the other `len - 1`: skip over `first`.
            let mut second = random_index(rng, len - 1);
            if second >= first {
                second += 1;
            }
            let a = *candidates.get(first)?;
            let b = *candidates.get(second)?;
            let (cost_a, cost_b) = (comparable(cost(a)), comparable(cost(b)));
            if cost_a < cost_b {
                Some(a)
            } else if cost_b < cost_a {
                Some(b)
            } else if rng.below(2) == 0 {
                Some(a)
            } else {
                Some(b)
            }
        }
    }
}

/// gRFC A48's least-request pick: samples `choice_count` candidates at random *with replacement* and returns the one
/// with the fewest `outstanding` requests, the earliest sample winning a tie (A48's picker pseudo-code, after Envoy).
/// `choice_count` is clamped to `2..=10` (A48: values above 10 are treated as 10; below 2 is rejected by config
/// validation, so it is treated as 2 here).
///
/// Sampling with replacement means any candidate, even the busiest, is picked with a small probability, as A48
/// notes ("Allow picking same candidate multiple times").
pub fn least_request(
    candidates: &[usize],
    choice_count: u32,
    outstanding: impl Fn(usize) -> u32,
    rng: &mut impl RandomSource,
) -> Option<usize> {
    if let [only] = candidates {
        return Some(*only);
    }
    let len = candidates.len();
    let mut best = *candidates.get(random_index(rng, len))?;
    let mut best_outstanding = outstanding(best);
    for _ in 1..choice_count.clamp(MIN_CHOICE_COUNT, MAX_CHOICE_COUNT) {
        let sampled = *candidates.get(random_index(rng, len))?;
        let sampled_outstanding = outstanding(sampled);
        // A48: strictly fewer wins, so the first of equals stays.
        if sampled_outstanding < best_outstanding {
            best = sampled;
            best_outstanding = sampled_outstanding;
        }
    }
    Some(best)
}

/// gRFC A42 picker (as simplified by gRFC A61): starting at the ring position of `hash`, the first endpoint in ring
/// order that is `usable` ("if the first is not READY, look at the next unique endpoint in the ring"). `None` when
/// no endpoint on the ring is usable.
///
/// No allocation when one of the first two endpoints on the way is usable; past that, [`Ring::successors`] allocates
/// a bitset of `endpoint_count / 8` bytes once. Asks `usable` at most once per endpoint.
pub fn ring_hash_pick(ring: &Ring, hash: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
    ring.successors(hash).find(|&endpoint| usable(endpoint))
}

/// Round robin over whatever candidate list each pick is given, with one shared atomic cursor.
///
/// Concurrent picks each take the next position (one `fetch_add`), so over any `k × len` consecutive picks on a
/// fixed candidate list every candidate is chosen exactly `k` times, whichever tasks made them. When the list
/// changes (a rebuild), the cursor carries on from where it was. Start it at a random position
/// ([`RoundRobin::with_random_start`]) so that many clients do not march over the endpoints in step, as gRPC's
/// round_robin does.
///
/// The cursor is one cache line shared by every task using the policy; under heavy contention that line moves
/// between cores on each pick, which costs tens of nanoseconds.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// A cursor starting at the first candidate.
    #[must_use]
    pub const fn new() -> Self {
        Self::starting_at(0)
    }

    /// A cursor whose first pick is position `start` (modulo the candidate count).
    #[must_use]
    pub const fn starting_at(start: usize) -> Self {
        Self {
            next: AtomicUsize::new(start),
        }
    }

    /// A cursor starting at a random position.
    pub fn with_random_start(rng: &mut impl RandomSource) -> Self {
        Self::starting_at(random_index(rng, usize::MAX))
    }

    /// The next candidate in turn; `None` when there are none.
    pub fn pick(&self, candidates: &[usize]) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        let position = self.next.fetch_add(1, Ordering::Relaxed);
        candidates.get(position % candidates.len()).copied()
    }
}

impl Clone for RoundRobin {
    /// A cursor at the same position, for carrying it over to a rebuilt balancer.
    fn clone(&self) -> Self {
        Self::starting_at(self.next.load(Ordering::Relaxed))
    }
}

/// A uniformly random index in `0..len` (0 when `len` is 0).
pub(crate) fn random_index(rng: &mut impl RandomSource, len: usize) -> usize {
    let bound = u64::try_from(len).unwrap_or(u64::MAX);
    // `below(bound) < bound`, which came from a usize.
    usize::try_from(rng.below(bound)).unwrap_or(0)
}

/// A cost that compares sensibly: NaN is worse than anything.
fn comparable(cost: f64) -> f64 {
    if cost.is_nan() { f64::INFINITY } else { cost }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
