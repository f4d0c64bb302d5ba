//! Peak-EWMA: a per-endpoint latency estimate that reacts to slowness at once and forgives it gradually.
//!
//! What it solves: [`PeakEwma`] keeps one endpoint's round-trip-time estimate in two atomics, so every request task
//! can [`observe`](PeakEwma::observe) a response time and read a [`cost`](PeakEwma::cost) without a lock or an
//! allocation. The cost, the estimate times `outstanding + 1`, is what power-of-two-choices compares
//! ([`p2c`](super::p2c)) to steer traffic away from slow or busy endpoints.
//!
//! The rules (after Finagle's and linkerd's peak-EWMA, as in tower's `load::PeakEwma`; our own implementation):
//! - **Peak.** An RTT above the current estimate replaces it at once: one slow response makes the endpoint look
//!   slow immediately.
//! - **Decay.** Otherwise the sample is mixed in with weight `1 - w`, where `w = exp(-elapsed / decay)` and
//!   `elapsed` is the time since the previous observation: a sample after a long quiet spell counts almost fully,
//!   one right after another counts little.
//! - **Idle decay.** Between observations the estimate decays towards zero with the same time constant, when read.
//!   Without it an endpoint that was slow once would never win a comparison again, so it would never get the
//!   request that shows it has recovered.
//! - **Default.** Before its first observation an endpoint costs `default_rtt`, decaying from the moment the
//!   estimate was created like an observation made then. A fixed default would let endpoints already answering
//!   faster than it win every comparison forever, so a new endpoint would never get the request that measures it;
//!   decaying, it wins one within a few time constants.
//!
//! What it does not solve: it counts no outstanding requests (the caller passes its own count to
//! [`cost`](PeakEwma::cost)), and it does not measure time: every method takes `now`, so tests use explicit
//! instants.
//!
//! Concurrency: an observation is one compare-and-swap loop on the estimate (an `f64` stored as bits) followed by a
//! `fetch_max` on the observation time. Two racing observations each land (one retries) and a reader may briefly
//! pair a new estimate with the previous time, which only over-decays by the width of the race. Every stored value
//! is a finite, non-negative number, so no interleaving can produce NaN.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A peak-sensitive, exponentially weighted moving average of an endpoint's round-trip time; see the
/// [module docs](self).
pub struct PeakEwma {
    /// Observation times are stored as nanoseconds after this instant.
    base: Instant,
    /// The decay time constant in nanoseconds.
    decay_nanos: f64,
    /// The estimate reported before the first observation, in nanoseconds.
    default_rtt_nanos: f64,
    /// The estimate in nanoseconds as of `observed_at`, as `f64` bits.
    estimate: AtomicU64,
    /// Nanoseconds after `base` of the latest observation, plus one; 0 means never observed.
    observed_at: AtomicU64,
}

impl PeakEwma {
    /// A fresh estimate that fades with time constant `decay` and reports `default_rtt` until its first observation.
    /// `now` anchors the internal clock; later calls may pass any instant (earlier ones count as `now`).
    #[must_use]
    pub fn new(decay: Duration, default_rtt: Duration, now: Instant) -> Self {
        Self {
            base: now,
            decay_nanos: nanos_f64(decay),
            default_rtt_nanos: nanos_f64(default_rtt),
            estimate: AtomicU64::new(0.0_f64.to_bits()),
            observed_at: AtomicU64::new(0),
        }
    }

    /// Records a response that took `rtt`, finishing at `now`.
    pub fn observe(&self, rtt: Duration, now: Instant) {
        let rtt = nanos_f64(rtt);
        let now_nanos = self.nanos_since_base(now);
        loop {
            // Time first: a racing writer stores its estimate before its time, so this pairing can only be older.
            let observed_at = self.observed_at.load(Ordering::Acquire);
            let previous_bits = self.estimate.load(Ordering::Acquire);
            let next = if observed_at == 0 {
                // First observation: the sample is the estimate (the default is only a placeholder).
                rtt
            } else {
                let weight = self.weight(now_nanos.saturating_sub(observed_at - 1));
                let current = f64::from_bits(previous_bits) * weight;
                if rtt > current {
                    // Peak: a slower response replaces the estimate at once.
                    rtt
                } else {
                    current + rtt * (1.0 - weight)
                }
            };
            if self
                .estimate
                .compare_exchange_weak(
                    previous_bits,
                    next.to_bits(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                self.observed_at
                    .fetch_max(now_nanos.saturating_add(1), Ordering::AcqRel);
                return;
            }
        }
    }

    /// The estimate as of `now`: before any observation the default, otherwise the last estimate, each decayed
    /// towards zero for the time since it was made.
    #[must_use]
    pub fn estimate(&self, now: Instant) -> Duration {
        Duration::try_from_secs_f64(self.estimate_nanos(now) / 1e9).unwrap_or(Duration::MAX)
    }

    /// The load score P2C compares: the estimate in nanoseconds times `outstanding + 1`, so an idle endpoint costs
    /// its latency and each request already in flight adds as much again (tower's `PeakEwma` cost).
    #[must_use]
    pub fn cost(&self, now: Instant, outstanding: u32) -> f64 {
        self.estimate_nanos(now) * (f64::from(outstanding) + 1.0)
    }

    /// Whether a response has been observed yet.
    #[must_use]
    pub fn has_observation(&self) -> bool {
        self.observed_at.load(Ordering::Acquire) != 0
    }

    fn estimate_nanos(&self, now: Instant) -> f64 {
        let observed_at = self.observed_at.load(Ordering::Acquire);
        if observed_at == 0 {
            return self.default_rtt_nanos * self.weight(self.nanos_since_base(now));
        }
        let estimate = f64::from_bits(self.estimate.load(Ordering::Acquire));
        let elapsed = self.nanos_since_base(now).saturating_sub(observed_at - 1);
        estimate * self.weight(elapsed)
    }

    /// `exp(-elapsed / decay)`: 1 when no time has passed, towards 0 as time passes; with a zero decay only the
    /// latest sample counts.
    fn weight(&self, elapsed_nanos: u64) -> f64 {
        if elapsed_nanos == 0 {
            1.0
        } else if self.decay_nanos > 0.0 {
            (-(elapsed_nanos as f64) / self.decay_nanos).exp()
        } else {
            0.0
        }
    }

    fn nanos_since_base(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Clone for PeakEwma {
    /// A copy of the current state, for carrying an endpoint's estimate over to a rebuilt balancer.
    fn clone(&self) -> Self {
        // Same load order as `observe`, so the copy pairs an estimate with its own or an older time.
        let observed_at = self.observed_at.load(Ordering::Acquire);
        let estimate = self.estimate.load(Ordering::Acquire);
        Self {
            base: self.base,
            decay_nanos: self.decay_nanos,
            default_rtt_nanos: self.default_rtt_nanos,
            estimate: AtomicU64::new(estimate),
            observed_at: AtomicU64::new(observed_at),
        }
    }
}

impl fmt::Debug for PeakEwma {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeakEwma")
            .field(
                "estimate_nanos",
                &f64::from_bits(self.estimate.load(Ordering::Relaxed)),
            )
            .field("observed", &self.has_observation())
            .field("decay_nanos", &self.decay_nanos)
            .field("default_rtt_nanos", &self.default_rtt_nanos)
            .finish()
    }
}

/// A duration in nanoseconds as a float (exact below 2^53 ns, about 104 days).
fn nanos_f64(duration: Duration) -> f64 {
    duration.as_nanos() as f64
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ms(estimate: Duration) -> f64 {
        estimate.as_secs_f64() * 1e3
    }

    #[test]
    fn reports_a_decaying_default_until_the_first_observation() {
        let start = Instant::now();
        let ewma = PeakEwma::new(10 * MS, 30 * MS, start);
        assert!(!ewma.has_observation());
        assert_eq!(ewma.estimate(start), 30 * MS);
        // One time constant later the default has decayed like an observation would (by 1/e)...
        let later = ewma.estimate(start + 10 * MS).as_secs_f64();
        assert!(
            (later - 0.030 / std::f64::consts::E).abs() < 1e-6,
            "{later}"
        );
        // ...so an endpoint never measured eventually costs less than one answering in a millisecond.
        assert!(ewma.estimate(start + 50 * MS) < MS);
        assert!((ewma.cost(start, 2) - 90e6).abs() < 1.0);
        ewma.observe(5 * MS, start);
        assert!(ewma.has_observation());
        assert_eq!(ewma.estimate(start), 5 * MS);
    }

    #[test]
    fn cost_scales_with_outstanding_requests() {
        let start = Instant::now();
        let ewma = PeakEwma::new(Duration::from_secs(10), 30 * MS, start);
        ewma.observe(10 * MS, start);
        let idle = ewma.cost(start, 0);
        assert!((idle - 10e6).abs() < 1.0, "{idle}");
        assert!((ewma.cost(start, 3) - 4.0 * idle).abs() < 1.0);
    }

    #[test]
    fn a_slower_response_replaces_the_estimate_at_once() {
        let start = Instant::now();
        let ewma = PeakEwma::new(Duration::from_secs(10), 30 * MS, start);
        for step in 0..100 {
            ewma.observe(10 * MS, start + step * MS);
        }
        let later = start + 100 * MS;
        ewma.observe(500 * MS, later);
        assert_eq!(ewma.estimate(later), 500 * MS);
    }

    #[test]
    fn converges_to_a_steady_rtt_after_a_peak() {
        let start = Instant::now();
        let decay = Duration::from_millis(100);
        let ewma = PeakEwma::new(decay, 30 * MS, start);
        ewma.observe(200 * MS, start);
        // One sample per 10 ms for 2 s: twenty time constants.
        let mut now = start;
        for _ in 0..200 {
            now += 10 * MS;
            ewma.observe(20 * MS, now);
        }
        let estimate = ms(ewma.estimate(now));
        assert!((estimate - 20.0).abs() < 0.01, "{estimate}");
    }

    #[test]
    fn a_lower_sample_is_weighted_by_the_time_since_the_last_one() {
        let start = Instant::now();
        let decay = Duration::from_secs(1);
        let ewma = PeakEwma::new(decay, 30 * MS, start);
        ewma.observe(100 * MS, start);
        // One time constant later, a 10 ms sample: 100·e⁻¹ decayed, plus 10·(1 − e⁻¹).
        let later = start + decay;
        ewma.observe(10 * MS, later);
        let w = (-1.0_f64).exp();
        let expected = 100.0 * w + 10.0 * (1.0 - w);
        assert!((ms(ewma.estimate(later)) - expected).abs() < 1e-6);
        // A sample at the same instant carries no weight.
        ewma.observe(MS, later);
        assert!((ms(ewma.estimate(later)) - expected).abs() < 1e-6);
    }

    #[test]
    fn idle_estimate_decays_with_the_time_constant() {
        let start = Instant::now();
        let decay = Duration::from_secs(10);
        let ewma = PeakEwma::new(decay, 30 * MS, start);
        ewma.observe(100 * MS, start);
        for constants in 1..=5_u32 {
            let estimate = ms(ewma.estimate(start + decay * constants));
            let expected = 100.0 * (-f64::from(constants)).exp();
            assert!(
                (estimate - expected).abs() < 1e-6,
                "{constants}: {estimate} vs {expected}"
            );
        }
        // Reading does not change the state: the same instant gives the same value.
        let half = ms(ewma.estimate(start + decay / 2));
        assert!((half - ms(ewma.estimate(start + decay / 2))).abs() < f64::EPSILON);
    }

    #[test]
    fn zero_decay_keeps_only_the_latest_sample() {
        let start = Instant::now();
        let ewma = PeakEwma::new(Duration::ZERO, 30 * MS, start);
        ewma.observe(50 * MS, start);
        ewma.observe(5 * MS, start + MS);
        assert_eq!(ewma.estimate(start + MS), 5 * MS);
        assert!(ewma.cost(start + 2 * MS, 0).abs() < f64::EPSILON);
    }

    #[test]
    fn instants_before_the_base_count_as_the_base() {
        let later = Instant::now() + Duration::from_secs(1);
        let ewma = PeakEwma::new(Duration::from_secs(1), 30 * MS, later);
        ewma.observe(7 * MS, later - Duration::from_millis(500));
        assert_eq!(ewma.estimate(later), 7 * MS);
    }

    #[test]
    fn clone_carries_the_state_over() {
        let start = Instant::now();
        let ewma = PeakEwma::new(Duration::from_secs(1), 30 * MS, start);
        ewma.observe(40 * MS, start);
        let copy = ewma.clone();
        let later = start + Duration::from_millis(300);
        assert_eq!(copy.estimate(later), ewma.estimate(later));
        copy.observe(400 * MS, later);
        assert_eq!(ewma.estimate(start), 40 * MS, "the copy is independent");
    }

    #[test]
    fn concurrent_observations_never_corrupt_the_estimate() {
        let start = Instant::now();
        let ewma = Arc::new(PeakEwma::new(Duration::from_millis(50), 30 * MS, start));
        let threads: Vec<_> = (0..8_u32)
            .map(|thread| {
                let ewma = Arc::clone(&ewma);
                std::thread::spawn(move || {
                    for step in 0..5_000_u32 {
                        let rtt = Duration::from_micros(u64::from(100 + (thread * 7 + step) % 900));
                        let now = start + Duration::from_micros(u64::from(step) * 10);
                        ewma.observe(rtt, now);
                        let cost = ewma.cost(now, thread);
                        assert!(cost.is_finite() && cost >= 0.0, "{cost}");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let end = start + Duration::from_millis(50);
        let estimate = ewma.estimate(end);
        // Every sample was within 100..1000 µs, so the estimate is too (decay only lowers it towards 0).
        assert!(estimate <= Duration::from_micros(1000), "{estimate:?}");
        assert!(ewma.cost(end, 0).is_finite());
    }
}
