//! The wait before a retry: exponential backoff with full jitter (gRFC A6, as configured through xDS by gRFC A44).
//!
//! What it solves: [`retry_backoff`] turns a route's [`RetryBackoff`] and the number of attempts made so far into a
//! random wait, with integer arithmetic that cannot overflow or panic whatever the inputs.
//!
//! The rule: gRFC A6 "Exponential backoff": "The initial retry attempt will occur at `random(0, initialBackoff)`. In
//! general, the n-th attempt will occur at `random(0, min(initialBackoff*backoffMultiplier**(n-1), maxBackoff))`."
//! gRFC A44 maps Envoy's `retry_back_off` onto it: `initialBackoff = base_interval`, `maxBackoff = max_interval`,
//! `backoffMultiplier = 2`, and intervals below 1 ms are treated as 1 ms. The `n` of A6 counts retries, so the
//! first retry (one attempt made so far, `grpc-previous-rpc-attempts: 1`) waits up to `base_interval`, the second up
//! to twice that, and so on until `max_interval`.
//!
//! What it does not solve: server pushback (`grpc-retry-pushback-ms`, gRFC A6), which replaces the computed wait and
//! resets `n`; the caller applies it. It does not sleep: it only says for how long.

use std::time::Duration;

use mesh_core::rng::RandomSource;
use mesh_core::route::RetryBackoff;

/// gRFC A44: `base_interval` and `max_interval` below this are treated as this.
pub const MIN_BACKOFF_INTERVAL: Duration = Duration::from_millis(1);

/// gRFC A44: the multiplier applied per retry.
pub const BACKOFF_MULTIPLIER: u32 = 2;

/// How long to wait before the next retry, drawn uniformly from `[0, backoff_ceiling(previous_attempts, backoff))`
/// (gRFC A6 full jitter). `previous_attempts` is the number of attempts already made, the value the retry will send
/// in `grpc-previous-rpc-attempts`: 1 before the first retry. 0 is treated as 1.
pub fn retry_backoff(
    previous_attempts: u32,
    backoff: &RetryBackoff,
    rng: &mut impl RandomSource,
) -> Duration {
    let ceiling = backoff_ceiling(previous_attempts, backoff);
    let ceiling_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.below(ceiling_nanos))
}

/// The upper bound of [`retry_backoff`]'s draw: `min(base_interval × 2^(n−1), max_interval)` with
/// `n = max(previous_attempts, 1)` and both intervals at least [`MIN_BACKOFF_INTERVAL`] (gRFC A6, A44). Saturates
/// instead of overflowing, so any `previous_attempts` is fine.
#[must_use]
pub fn backoff_ceiling(previous_attempts: u32, backoff: &RetryBackoff) -> Duration {
    let base = backoff.base_interval.max(MIN_BACKOFF_INTERVAL);
    let max = backoff.max_interval.max(MIN_BACKOFF_INTERVAL);
    let retries_before = previous_attempts.saturating_sub(1);
    let grown = BACKOFF_MULTIPLIER
        .checked_pow(retries_before)
        .map_or(Duration::MAX, |factor| base.saturating_mul(factor));
    grown.min(max)
}

#[cfg(test)]
mod tests {
    use mesh_core::rng::FastRng;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ceiling_doubles_per_retry_up_to_the_maximum() {
        let backoff = RetryBackoff::default(); // 25 ms base, 250 ms max
        let ceilings: Vec<Duration> = (0..7).map(|n| backoff_ceiling(n, &backoff)).collect();
        assert_eq!(
            ceilings,
            [
                25 * MS,
                25 * MS,
                50 * MS,
                100 * MS,
                200 * MS,
                250 * MS,
                250 * MS
            ]
        );
    }

    #[test]
    fn huge_attempt_counts_saturate_at_the_maximum() {
        let backoff = RetryBackoff::new(Duration::from_secs(u64::MAX / 2), Duration::MAX);
        assert_eq!(backoff_ceiling(u32::MAX, &backoff), Duration::MAX);
        assert_eq!(backoff_ceiling(64, &backoff), Duration::MAX);
        let default = RetryBackoff::default();
        for n in [31, 32, 33, 63, 64, 65, 1_000, u32::MAX] {
            assert_eq!(backoff_ceiling(n, &default), 250 * MS);
        }
        let mut rng = FastRng::from_seed(1);
        assert!(retry_backoff(u32::MAX, &backoff, &mut rng) < Duration::MAX);
    }

    #[test]
    fn intervals_below_a_millisecond_count_as_one() {
        let backoff = RetryBackoff::new(Duration::ZERO, Duration::from_micros(10));
        assert_eq!(backoff_ceiling(1, &backoff), MS);
        assert_eq!(backoff_ceiling(5, &backoff), MS);
        let backoff = RetryBackoff::new(Duration::from_nanos(1), 8 * MS);
        assert_eq!(backoff_ceiling(3, &backoff), 4 * MS);
    }

    #[test]
    fn a_maximum_below_the_base_caps_even_the_first_retry() {
        // Config validation rejects this (gRFC A44); the formula's `min` still bounds the wait.
        let backoff = RetryBackoff::new(100 * MS, 10 * MS);
        assert_eq!(backoff_ceiling(1, &backoff), 10 * MS);
    }

    #[test]
    fn draws_stay_below_the_ceiling_for_each_attempt() {
        let backoff = RetryBackoff::default();
        let mut rng = FastRng::from_seed(2);
        for attempt in 1..=6 {
            let ceiling = backoff_ceiling(attempt, &backoff);
            for _ in 0..2_000 {
                assert!(retry_backoff(attempt, &backoff, &mut rng) < ceiling);
            }
        }
    }

    #[test]
    fn draws_are_uniform_over_the_range() {
        // Ten equal buckets of [0, 100 ms): each expects 5,000 of 50,000 draws.
        let backoff = RetryBackoff::new(100 * MS, Duration::from_secs(1));
        let mut rng = FastRng::from_seed(3);
        let mut buckets = [0_u32; 10];
        let mut sum = Duration::ZERO;
        for _ in 0..50_000 {
            let wait = retry_backoff(1, &backoff, &mut rng);
            sum += wait;
            buckets[usize::try_from(wait.as_millis() / 10).unwrap()] += 1;
        }
        assert!(
            buckets.iter().all(|&n| (4_600..5_400).contains(&n)),
            "{buckets:?}"
        );
        let mean = sum / 50_000;
        assert!((48 * MS..52 * MS).contains(&mean), "{mean:?}");
    }
}
