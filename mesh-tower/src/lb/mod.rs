//! The balancing algorithms the request path runs, free of I/O: endpoint choice within a locality, latency
//! estimates, outlier detection, retry budgets and backoff, circuit breaking.
//!
//! What it solves: each piece is a small, deterministic state machine or function. Per-request operations
//! ([`PeakEwma::observe`], [`p2c`], [`OutlierDetector::record`], [`RetryBudget::try_start_retry`],
//! [`CircuitBreaker::try_acquire`], ...) use atomics only: no lock, no allocation, so every type is `Send + Sync` and
//! shared by all request tasks. Periodic work ([`OutlierDetector::evaluate`], rebuilds) runs off the request path and
//! may allocate. Time is an input (`std::time::Instant` passed in) and randomness is a
//! [`RandomSource`](mesh_core::rng::RandomSource) passed in, so tests drive everything with explicit instants and
//! seeded generators.
//!
//! | piece | rule | spec |
//! | --- | --- | --- |
//! | [`PeakEwma`] | latency estimate: peaks at once, decays with a time constant | linkerd/Finagle peak-EWMA |
//! | [`p2c`] | the cheaper of two distinct random candidates | power of two choices |
//! | [`least_request`] | fewest outstanding among `choice_count` samples | gRFC A48 |
//! | [`RoundRobin`] | a shared cursor | gRFC A27 `round_robin` |
//! | [`ring_hash_pick`] | first usable endpoint along the ring | gRFC A42, A61 |
//! | [`OutlierDetector`] | success rate, failure percentage, consecutive 5xx / gateway errors | gRFC A50, Envoy |
//! | [`RetryBudget`] | concurrent retries ≤ max(floor, share of active requests) | Envoy `RetryBudget` |
//! | [`retry_backoff`] | `random(0, min(base × 2^(n−1), max))` | gRFC A6, A44 |
//! | [`CircuitBreaker`] | at most `max_requests` in flight, fail fast beyond | gRFC A32 |
//!
//! How they fit together for one request: the cluster's
//! [`EndpointPicker`](mesh_core::picker::EndpointPicker) (built with `usable` = not ejected, connected) picks the
//! locality; one of the functions here picks the endpoint among
//! [`usable_endpoints`](mesh_core::picker::EndpointPicker::usable_endpoints); the [`CircuitBreaker`] admits the
//! request; the response feeds the endpoint's [`PeakEwma`] and the [`OutlierDetector`]; a retryable failure asks the
//! [`RetryBudget`] and waits [`retry_backoff`].
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! use mesh_core::cluster::{CircuitBreakers, ConsecutiveErrorEjection, LbPolicy, OutlierDetection};
//! use mesh_core::route::{RetryBackoff, RetryBudget as RetryBudgetConfig};
//! use mesh_core::rng::FastRng;
//! use mesh_tower::lb::{
//!     CircuitBreaker, OutlierDetector, Outcome, PeakEwma, RetryBudget, p2c, retry_backoff,
//! };
//!
//! let start = Instant::now();
//! let mut rng = FastRng::from_seed(7);
//! let addresses = ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"];
//! let ewmas: Vec<PeakEwma> = addresses
//!     .iter()
//!     .map(|_| PeakEwma::new(LbPolicy::DEFAULT_EWMA_DECAY, LbPolicy::DEFAULT_EWMA_RTT, start))
//!     .collect();
//! let outstanding = [0_u32; 3];
//! let detection = OutlierDetection::default()
//!     .with_consecutive_gateway_failure(ConsecutiveErrorEjection::default());
//! let outliers = OutlierDetector::new(detection, addresses, start);
//! let breaker = CircuitBreaker::new(&CircuitBreakers::default());
//! let budget = RetryBudget::new(&RetryBudgetConfig::default());
//!
//! // One request: admit it, pick among the usable endpoints, record what happened.
//! let _request = budget.start_request();
//! let _permit = breaker.try_acquire()?;
//! let usable: Vec<usize> = (0..addresses.len()).filter(|&e| !outliers.is_ejected(e)).collect();
//! let now = start + Duration::from_millis(5);
//! let endpoint = p2c(&usable, |e| ewmas[e].cost(now, outstanding[e]), &mut rng).unwrap_or(0);
//! let done = now + Duration::from_millis(12);
//! ewmas[endpoint].observe(done - now, done);
//! if outliers.record(endpoint, Outcome::from_http_status(503), done, &mut rng).is_some() {
//!     // Ejected at once: rebuild the picker without it.
//! }
//! // The response is retryable: retry if the budget allows, after a jittered wait.
//! if let Some(_retry) = budget.try_start_retry() {
//!     let wait = retry_backoff(1, &RetryBackoff::default(), &mut rng);
//!     assert!(wait < Duration::from_millis(25));
//! }
//! # Ok::<(), mesh_tower::lb::Overloaded>(())
//! ```
//!
//! What it does not solve: connections, timers, the tower layers and the mapping of these results to gRPC statuses;
//! those are the rest of this crate. Weighted random endpoint choice lives in mesh-core
//! ([`EndpointPicker::pick_in_locality`](mesh_core::picker::EndpointPicker::pick_in_locality)).

pub mod backoff;
pub mod budget;
pub mod choose;
pub mod circuit;
pub mod ewma;
pub mod outlier;

pub use backoff::{BACKOFF_MULTIPLIER, MIN_BACKOFF_INTERVAL, backoff_ceiling, retry_backoff};
pub use budget::{RequestGuard, RetryBudget, RetryGuard};
pub use choose::{
    MAX_CHOICE_COUNT, MIN_CHOICE_COUNT, RoundRobin, least_request, p2c, ring_hash_pick,
};
pub use circuit::{BreakerResource, CircuitBreaker, Overloaded, Permit};
pub use ewma::PeakEwma;
pub use outlier::{
    Ejection, EjectionReason, EndpointOutlierState, EvaluationResult, Outcome, OutlierDetector,
    OutlierSnapshot,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Every type here is shared by all request tasks.
    #[test]
    fn types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PeakEwma>();
        assert_send_sync::<RoundRobin>();
        assert_send_sync::<OutlierDetector>();
        assert_send_sync::<RetryBudget>();
        assert_send_sync::<RequestGuard>();
        assert_send_sync::<RetryGuard>();
        assert_send_sync::<CircuitBreaker>();
        assert_send_sync::<Permit>();
        assert_send_sync::<Overloaded>();
        assert_send_sync::<Ejection>();
        assert_send_sync::<OutlierSnapshot>();
    }
}
