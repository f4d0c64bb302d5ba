//! Outlier detection: passive health checking that stops sending requests to endpoints that fail more than their
//! peers (gRFC A50, plus Envoy's consecutive-error detectors).
//!
//! What it solves: an [`OutlierDetector`] per cluster keeps, per endpoint, atomic counters that request tasks update
//! with [`record`](OutlierDetector::record) and an ejection flag they read with
//! [`is_ejected`](OutlierDetector::is_ejected), neither taking a lock nor allocating. Once per `interval`, off the
//! request path, [`evaluate`](OutlierDetector::evaluate) runs gRFC A50's timer steps:
//! 1. Swap each endpoint's call counters into "last interval" ("Call Counter").
//! 2. Success-rate ejection: among endpoints with at least `request_volume` requests, if there are at least
//!    `minimum_hosts`, eject those whose success rate is below `mean − stdev × stdev_factor / 1000`, each with
//!    probability `enforcement_percentage`%.
//! 3. Failure-percentage ejection: with the same gates, eject those whose failure percentage is above `threshold`.
//! 4. Un-eject each endpoint whose `ejected_at + min(base_ejection_time × multiplier, max(base_ejection_time,
//!    max_ejection_time))` has passed; decrement the multiplier of each endpoint that is not ejected. Each ejection
//!    increments the multiplier, so an endpoint that keeps failing stays out longer each time.
//!
//! Both algorithms stop as soon as the ejected endpoints reach `max_ejection_percent` of all endpoints (A50: "If the
//! percentage of ejected addresses is greater than or equal to `max_ejection_percent`, stop"), so one ejection can
//! take the share past the percentage (1 of 5 endpoints is 20% > 10%) but no ejection starts at or above it; a
//! percentage of 0 ejects nothing.
//!
//! Beyond gRPC, Envoy's `consecutive_5xx` and `consecutive_gateway_failure` detectors eject inline: the request that
//! makes the streak reach exactly `consecutive` ejects the endpoint at once (Envoy "Ejection algorithm": "ejection
//! either runs inline (for example in the case of consecutive 5xx) or at a specified interval"), under the same
//! `max_ejection_percent` and their own enforcement percentage, and `record` returns the [`Ejection`]. As in Envoy's
//! `putHttpResponseCode`, any failure extends the 5xx streak, a gateway failure (502, 503, 504, connect failure or
//! reset) extends the gateway streak, a non-gateway failure ends the gateway streak, and a success ends both; the
//! streak restarts from zero after it triggered, whether or not the ejection was enforced.
//!
//! Every ejection, inline or periodic, reserves its place in the ejected count with one compare-and-swap before it
//! takes effect, so racing ejections cannot together pass `max_ejection_percent`.
//!
//! Choices where the specs leave room:
//! - One detector per cluster, as in Envoy; gRPC runs one per priority (A50 "Per-priority outlier detection"). As
//!   A50 notes, with gRPC's strict priority failover only one priority carries traffic, so the statistics agree.
//! - An endpoint already ejected is not ejected again by an algorithm (its timestamp and multiplier stay), though its
//!   counts still take part in the mean.
//! - The algorithms walk the endpoints from a random position, so when `max_ejection_percent` stops a sweep the
//!   survivors are not always the same indices.
//! - An endpoint needs at least one request in the interval to be judged, even with `request_volume: 0`.
//!
//! What it does not solve: the interval timer itself (the caller sleeps for
//! [`next_evaluation_in`](OutlierDetector::next_evaluation_in), then runs [`evaluate`](OutlierDetector::evaluate)),
//! rebuilding the endpoint picker when ejections change (the caller does so when `record` returns an ejection or an
//! evaluation [`changed`](EvaluationResult::changed)), and classifying responses ([`Outcome`] has constructors for
//! HTTP and gRPC statuses). Envoy's local-origin split and consecutive-local-origin detector are not implemented.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesh_core::cluster::OutlierDetection;
use mesh_core::rng::RandomSource;

mod algorithms;
mod evaluate;
mod stats;
mod types;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use stats::{ACTIVE, EJECTED, EJECTING, EndpointStats};
pub use types::{
    Ejection, EjectionReason, EndpointOutlierState, EvaluationResult, Outcome, OutlierSnapshot,
};

/// One cluster's outlier detection state; see the [module docs](self).
///
/// Endpoints are identified by their index in the key list the detector was built with (typically the endpoint
/// address, `ip:port`, as A50 keys its map by address). Rebuild it with [`resized`](Self::resized) or
/// [`reconfigured`](Self::reconfigured) when the endpoints or the config change: state carries over for keys that
/// remain.
#[derive(Debug)]
pub struct OutlierDetector {
    config: OutlierDetection,
    keys: Box<[Arc<str>]>,
    endpoints: Box<[EndpointStats]>,
    /// Endpoints ejected or being ejected.
    ejected: AtomicUsize,
    /// gRFC A50: calls are counted only when success-rate or failure-percentage ejection is on.
    counting: bool,
    /// Timestamps are nanoseconds after this instant.
    base: Instant,
    /// gRFC A50's timer start timestamp (when the timer was started or last fired): nanoseconds after `base`, plus
    /// one; 0 when unset, that is when no detector is on.
    timer_started: AtomicU64,
    /// Serialises evaluations; requests never take it.
    evaluation: Mutex<()>,
}

/// Why [`OutlierDetector::try_eject`] did not eject.
enum Refused {
    /// `max_ejection_percent` is reached.
    AtMaximum,
    /// The endpoint is already ejected (or is not one).
    AlreadyEjected,
}

impl OutlierDetector {
    /// A detector for endpoints named by `keys` (in index order), none ejected. `now` anchors its clock and, when a
    /// detector is on, starts the interval timer (gRFC A50).
    pub fn new<K: Into<Arc<str>>>(
        config: OutlierDetection,
        keys: impl IntoIterator<Item = K>,
        now: Instant,
    ) -> Self {
        let keys: Box<[Arc<str>]> = keys.into_iter().map(Into::into).collect();
        let endpoints = keys.iter().map(|_| EndpointStats::default()).collect();
        // `now` is the base, so the timer starts at 0 ns (stored as 1).
        let timer_started = u64::from(any_detector(&config));
        Self::assemble(config, keys, endpoints, now, timer_started)
    }

    /// A detector with the same config for a new endpoint list: endpoints whose key was here before keep their
    /// counters, streaks, ejection and multiplier (gRFC A50 "Outlier Detection Behavior": map entries are created for
    /// new addresses and removed for absent ones). Outcomes recorded on `self` after this call are not carried over.
    #[must_use]
    pub fn resized<K: Into<Arc<str>>>(&self, keys: impl IntoIterator<Item = K>) -> Self {
        self.rebuild(
            self.config.clone(),
            keys,
            self.timer_started.load(Ordering::Relaxed),
        )
    }

    /// A detector with a new config and endpoint list received at `now`, carrying state over as
    /// [`resized`](Self::resized) does. gRFC A50 on a new config: when no detector is on, the timer stops and every
    /// endpoint is un-ejected with its multiplier reset ("If a config is provided with both … unset … Un-eject all
    /// currently ejected addresses. Reset each address's ejection time multiplier to 0", extended here to the
    /// consecutive-error detectors); otherwise a stopped timer starts at `now` and a running one keeps its start, so
    /// [`next_evaluation_in`](Self::next_evaluation_in) gives what is left of the interval.
    #[must_use]
    pub fn reconfigured<K: Into<Arc<str>>>(
        &self,
        config: OutlierDetection,
        keys: impl IntoIterator<Item = K>,
        now: Instant,
    ) -> Self {
        let timer_started = match self.timer_started.load(Ordering::Relaxed) {
            _ if !any_detector(&config) => 0,
            0 => self.nanos_since_base(now).saturating_add(1),
            running => running,
        };
        self.rebuild(config, keys, timer_started)
    }

    fn rebuild<K: Into<Arc<str>>>(
        &self,
        config: OutlierDetection,
        keys: impl IntoIterator<Item = K>,
        timer_started: u64,
    ) -> Self {
        let previous: HashMap<&str, &EndpointStats> = self
            .keys
            .iter()
            .map(|key| &**key)
            .zip(self.endpoints.iter())
            .collect();
        let keys: Box<[Arc<str>]> = keys.into_iter().map(Into::into).collect();
        let endpoints: Box<[EndpointStats]> = keys
            .iter()
            .map(|key| {
                previous
                    .get(&**key)
                    .map_or_else(EndpointStats::default, |stats| stats.copy())
            })
            .collect();
        if !any_detector(&config) {
            endpoints.iter().for_each(EndpointStats::reset_ejection);
        }
        if !(self.counting && counts_calls(&config)) {
            // Counts from before counting was switched off would otherwise leak into the first interval after it is
            // switched back on (gRFC A50 resets the call counters when the timer starts).
            endpoints.iter().for_each(EndpointStats::reset_counts);
        }
        let detector = Self::assemble(config, keys, endpoints, self.base, timer_started);
        let ejected = detector
            .endpoints
            .iter()
            .filter(|stats| stats.is_ejected())
            .count();
        detector.ejected.store(ejected, Ordering::Relaxed);
        detector
    }

    fn assemble(
        config: OutlierDetection,
        keys: Box<[Arc<str>]>,
        endpoints: Box<[EndpointStats]>,
        base: Instant,
        timer_started: u64,
    ) -> Self {
        Self {
            counting: counts_calls(&config),
            config,
            keys,
            endpoints,
            ejected: AtomicUsize::new(0),
            base,
            timer_started: AtomicU64::new(timer_started),
            evaluation: Mutex::new(()),
        }
    }

    /// The config in force.
    #[must_use]
    pub fn config(&self) -> &OutlierDetection {
        &self.config
    }

    /// The endpoint keys, in index order.
    #[must_use]
    pub fn keys(&self) -> &[Arc<str>] {
        &self.keys
    }

    /// The number of endpoints.
    #[must_use]
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether there are no endpoints.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Whether `endpoint` is ejected now (one atomic load); `false` for an index out of range.
    #[must_use]
    pub fn is_ejected(&self, endpoint: usize) -> bool {
        self.endpoints
            .get(endpoint)
            .is_some_and(EndpointStats::is_ejected)
    }

    /// The number of endpoints ejected now.
    #[must_use]
    pub fn ejected_count(&self) -> usize {
        self.ejected.load(Ordering::Relaxed)
    }

    /// Whether any detector is enabled, that is whether the caller needs to run the interval timer at all.
    #[must_use]
    pub fn needs_timer(&self) -> bool {
        any_detector(&self.config)
    }

    /// How long until the next [`evaluate`](Self::evaluate) is due: `interval` after the timer started or last
    /// fired, 0 when that is past; `None` when no detector is on and no timer should run (gRFC A50: "skip starting
    /// the timer").
    #[must_use]
    pub fn next_evaluation_in(&self, now: Instant) -> Option<Duration> {
        match self.timer_started.load(Ordering::Relaxed) {
            0 => None,
            started => {
                let since = self.nanos_since_base(now).saturating_sub(started - 1);
                Some(
                    self.config
                        .interval
                        .saturating_sub(Duration::from_nanos(since)),
                )
            }
        }
    }

    /// How long the ejection with this multiplier lasts: gRFC A50 `min(base_ejection_time × multiplier,
    /// max(base_ejection_time, max_ejection_time))`.
    #[must_use]
    pub fn ejection_time(&self, multiplier: u32) -> Duration {
        let base = self.config.base_ejection_time;
        base.saturating_mul(multiplier)
            .min(base.max(self.config.max_ejection_time))
    }

    /// Records a successful request to `endpoint`: [`record`](Self::record) of [`Outcome::Success`], which needs
    /// neither the time nor a random draw. An index out of range is ignored.
    pub fn record_success(&self, endpoint: usize) {
        let Some(stats) = self.endpoints.get(endpoint) else {
            return;
        };
        if self.counting {
            stats.count_success();
        }
        stats.end_streaks();
    }

    /// Records the outcome of a request to `endpoint` that finished at `now`. Returns the ejection when the outcome
    /// made a consecutive-error streak reach its threshold and the endpoint was ejected (subject to enforcement, drawn
    /// from `rng`, and `max_ejection_percent`): the caller should then stop picking it. Atomics only; `rng` is
    /// touched only when a streak reaches its threshold. An index out of range is ignored.
    pub fn record(
        &self,
        endpoint: usize,
        outcome: Outcome,
        now: Instant,
        rng: &mut impl RandomSource,
    ) -> Option<Ejection> {
        let stats = self.endpoints.get(endpoint)?;
        let Outcome::Failure { gateway } = outcome else {
            self.record_success(endpoint);
            return None;
        };
        if self.counting {
            stats.count_failure();
        }
        let mut ejection = None;
        if let Some(detector) = self.config.consecutive_gateway_failure {
            if gateway {
                let streak = stats.consecutive_gateway.fetch_add(1, Ordering::Relaxed);
                // Envoy: the ejection fires when the streak *reaches* the threshold (`==`), once per streak.
                if streak.wrapping_add(1) == detector.consecutive {
                    ejection = self.consecutive_ejection(
                        endpoint,
                        &stats.consecutive_gateway,
                        detector.enforcement_percentage,
                        EjectionReason::ConsecutiveGatewayFailure,
                        now,
                        rng,
                    );
                }
            } else if stats.consecutive_gateway.load(Ordering::Relaxed) != 0 {
                // Envoy: a 5xx that is not a gateway error breaks the gateway streak.
                stats.consecutive_gateway.store(0, Ordering::Relaxed);
            }
        }
        if let Some(detector) = self.config.consecutive_5xx {
            let streak = stats.consecutive_5xx.fetch_add(1, Ordering::Relaxed);
            if streak.wrapping_add(1) == detector.consecutive {
                let by_5xx = self.consecutive_ejection(
                    endpoint,
                    &stats.consecutive_5xx,
                    detector.enforcement_percentage,
                    EjectionReason::Consecutive5xx,
                    now,
                    rng,
                );
                ejection = ejection.or(by_5xx);
            }
        }
        ejection
    }

    /// Envoy `onConsecutiveErrorWorker`: leaves an endpoint that is already ejected alone (streak included);
    /// otherwise restarts the streak and ejects if enforced and allowed.
    fn consecutive_ejection(
        &self,
        endpoint: usize,
        streak: &std::sync::atomic::AtomicU32,
        enforcement_percentage: u32,
        reason: EjectionReason,
        now: Instant,
        rng: &mut impl RandomSource,
    ) -> Option<Ejection> {
        if self.is_ejected(endpoint) {
            return None;
        }
        streak.store(0, Ordering::Relaxed);
        if !enforced(enforcement_percentage, rng) {
            return None;
        }
        self.try_eject(endpoint, reason, now).ok()
    }

    /// gRFC A50 "Ejection and Un-ejection": reserves a place under `max_ejection_percent`, then marks the endpoint
    /// ejected at `now` and increments its multiplier.
    fn try_eject(
        &self,
        endpoint: usize,
        reason: EjectionReason,
        now: Instant,
    ) -> Result<Ejection, Refused> {
        let stats = self
            .endpoints
            .get(endpoint)
            .ok_or(Refused::AlreadyEjected)?;
        self.ejected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |ejected| {
                (!self.at_maximum(ejected)).then_some(ejected + 1)
            })
            .map_err(|_| Refused::AtMaximum)?;
        if stats
            .state
            .compare_exchange(ACTIVE, EJECTING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.ejected.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::AlreadyEjected);
        }
        stats
            .ejected_at
            .store(self.nanos_since_base(now), Ordering::Relaxed);
        let previous = stats
            .multiplier
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| {
                Some(m.saturating_add(1))
            })
            .unwrap_or(u32::MAX);
        let multiplier = previous.saturating_add(1);
        // Publishes the timestamp and multiplier to `evaluate`, which only un-ejects EJECTED endpoints.
        stats.state.store(EJECTED, Ordering::Release);
        Ok(Ejection {
            endpoint,
            reason,
            multiplier,
            duration: self.ejection_time(multiplier),
        })
    }

    /// gRFC A50: "If the percentage of ejected addresses is greater than or equal to `max_ejection_percent`, stop."
    /// In integers: `ejected × 100 ≥ max_ejection_percent × endpoints`.
    fn at_maximum(&self, ejected: usize) -> bool {
        let endpoints = self.endpoints.len() as u128;
        (ejected as u128) * 100 >= u128::from(self.config.max_ejection_percent) * endpoints
    }

    fn nanos_since_base(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// gRFC A50: calls are counted only for success-rate and failure-percentage ejection.
fn counts_calls(config: &OutlierDetection) -> bool {
    config.success_rate.is_some() || config.failure_percentage.is_some()
}

/// Whether any detector, periodic or inline, is on.
fn any_detector(config: &OutlierDetection) -> bool {
    config.success_rate.is_some()
        || config.failure_percentage.is_some()
        || config.consecutive_5xx.is_some()
        || config.consecutive_gateway_failure.is_some()
}

/// gRFC A50: "choose a random integer in `[0, 100)`. If that number is less than `enforcement_percentage`, eject."
fn enforced(enforcement_percentage: u32, rng: &mut impl RandomSource) -> bool {
    match enforcement_percentage {
        0 => false,
        100.. => true,
        percentage => rng.below(100) < u64::from(percentage),
    }
}
