//! The periodic half of outlier detection: gRFC A50's interval sweep, and telemetry snapshots.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use mesh_core::rng::RandomSource;

use super::stats::{ACTIVE, EJECTED, EndpointStats, IntervalCounts};
use super::{
    EjectionReason, EndpointOutlierState, EvaluationResult, OutlierDetector, OutlierSnapshot,
    Refused, algorithms, enforced,
};
use crate::lb::choose::random_index;

impl OutlierDetector {
    /// Runs one interval of gRFC A50's timer (see the [module docs](crate::lb::outlier)) as of `now`: swaps the
    /// counters, runs the enabled algorithms, then un-ejects endpoints whose time is up and decrements the
    /// multipliers of the others.
    /// Off the request path: it allocates and serialises with other evaluations (never with requests).
    pub fn evaluate(&self, now: Instant, rng: &mut impl RandomSource) -> EvaluationResult {
        let _serial = self
            .evaluation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A50 step 1: the timestamp for this sweep's ejections; A50: "When the timer fires, set the timer start
        // timestamp to the current time."
        let now_nanos = self.nanos_since_base(now);
        if self.timer_started.load(Ordering::Relaxed) != 0 {
            self.timer_started
                .store(now_nanos.saturating_add(1), Ordering::Relaxed);
        }
        // A50 step 2: swap the call counters.
        let intervals: Vec<IntervalCounts> = self
            .endpoints
            .iter()
            .map(EndpointStats::swap_bucket)
            .collect();
        let mut result = EvaluationResult::default();
        // A50 steps 3 and 4.
        if let Some(config) = &self.config.success_rate
            && let Some(threshold) = algorithms::success_rate_threshold(&intervals, config)
        {
            self.sweep(
                &intervals,
                config.request_volume,
                now,
                rng,
                &mut result,
                |counts| {
                    (algorithms::success_rate(counts) < threshold)
                        .then_some((EjectionReason::SuccessRate, config.enforcement_percentage))
                },
            );
        }
        if let Some(config) = &self.config.failure_percentage
            && algorithms::failure_percentage_applies(&intervals, config)
        {
            self.sweep(
                &intervals,
                config.request_volume,
                now,
                rng,
                &mut result,
                |counts| {
                    algorithms::is_failure_percentage_outlier(counts, config.threshold).then_some((
                        EjectionReason::FailurePercentage,
                        config.enforcement_percentage,
                    ))
                },
            );
        }
        // A50 step 5.
        for (endpoint, stats) in self.endpoints.iter().enumerate() {
            match stats.state.load(Ordering::Acquire) {
                ACTIVE => {
                    // A concurrent inline ejection increments the multiplier after leaving ACTIVE: then this
                    // compare-and-swap fails and the ejected endpoint keeps its multiplier, as A50 wants.
                    let multiplier = stats.multiplier.load(Ordering::Acquire);
                    if multiplier > 0 {
                        let _ = stats.multiplier.compare_exchange(
                            multiplier,
                            multiplier - 1,
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        );
                    }
                }
                EJECTED => {
                    let ejected_at = stats.ejected_at.load(Ordering::Relaxed);
                    let time = self.ejection_time(stats.multiplier.load(Ordering::Relaxed));
                    let until = ejected_at
                        .saturating_add(u64::try_from(time.as_nanos()).unwrap_or(u64::MAX));
                    // A50: "If … the current time is after `ejection_timestamp + …`, un-eject."
                    if now_nanos > until
                        && stats
                            .state
                            .compare_exchange(EJECTED, ACTIVE, Ordering::AcqRel, Ordering::Relaxed)
                            .is_ok()
                    {
                        self.ejected.fetch_sub(1, Ordering::AcqRel);
                        result.unejected.push(endpoint);
                    }
                }
                // EJECTING: an inline ejection is being published; it is next interval's business.
                _ => {}
            }
        }
        result
    }

    /// One A50 ejection algorithm over the endpoints, from a random position: stops at `max_ejection_percent`,
    /// skips endpoints without the volume or already ejected, and ejects each outlier `is_outlier` names with
    /// probability `enforcement_percentage`%.
    fn sweep(
        &self,
        intervals: &[IntervalCounts],
        request_volume: u32,
        now: Instant,
        rng: &mut impl RandomSource,
        result: &mut EvaluationResult,
        is_outlier: impl Fn(IntervalCounts) -> Option<(EjectionReason, u32)>,
    ) {
        let len = intervals.len();
        let start = random_index(rng, len);
        for offset in 0..len {
            let endpoint = (start + offset) % len;
            // A50 step 3.1 / 2.1.
            if self.at_maximum(self.ejected.load(Ordering::Acquire)) {
                result.stopped_at_max_ejection_percent = true;
                return;
            }
            let Some(&counts) = intervals.get(endpoint) else {
                continue;
            };
            // A50 step 3.2 / 2.2.
            if !algorithms::has_volume(counts, request_volume) || self.is_ejected(endpoint) {
                continue;
            }
            // A50 step 3.3 / 2.3: "choose a random integer in [0, 100). If that number is less than
            // enforcement_percentage, eject".
            let Some((reason, enforcement_percentage)) = is_outlier(counts) else {
                continue;
            };
            if !enforced(enforcement_percentage, rng) {
                result.not_enforced.push((endpoint, reason));
                continue;
            }
            match self.try_eject(endpoint, reason, now) {
                Ok(ejection) => result.ejected.push(ejection),
                Err(Refused::AtMaximum) => {
                    result.stopped_at_max_ejection_percent = true;
                    return;
                }
                Err(Refused::AlreadyEjected) => {}
            }
        }
    }

    /// Per-endpoint state for telemetry and config dumps, as of `now`.
    #[must_use]
    pub fn snapshot(&self, now: Instant) -> OutlierSnapshot {
        let now_nanos = self.nanos_since_base(now);
        let endpoints = self
            .keys
            .iter()
            .zip(self.endpoints.iter())
            .map(|(key, stats)| {
                let multiplier = stats.multiplier.load(Ordering::Relaxed);
                let ejected = stats.is_ejected();
                let remaining_ejection = ejected.then(|| {
                    let until = stats.ejected_at.load(Ordering::Relaxed).saturating_add(
                        u64::try_from(self.ejection_time(multiplier).as_nanos())
                            .unwrap_or(u64::MAX),
                    );
                    Duration::from_nanos(until.saturating_sub(now_nanos))
                });
                let last = stats.last_interval();
                EndpointOutlierState {
                    key: Arc::clone(key),
                    ejected,
                    remaining_ejection,
                    multiplier,
                    last_interval_successes: last.successes,
                    last_interval_failures: last.failures,
                    consecutive_5xx: stats.consecutive_5xx.load(Ordering::Relaxed),
                    consecutive_gateway_failures: stats.consecutive_gateway.load(Ordering::Relaxed),
                }
            })
            .collect();
        OutlierSnapshot {
            endpoints,
            ejected: self.ejected_count(),
            max_ejection_percent: self.config.max_ejection_percent,
        }
    }
}
