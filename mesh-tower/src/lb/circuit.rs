//! Circuit breaking: fail fast instead of piling more requests onto a saturated cluster (gRFC A32, Envoy's circuit
//! breakers).
//!
//! What it solves: [`CircuitBreaker`] holds a cluster's in-flight counts in atomics and admits a request only while
//! fewer than `max_requests` are in flight (gRFC A32: "if the number of in-flight requests is at or above
//! `max_requests`, fail the RPC with status UNAVAILABLE"). A [`Permit`] counts until it drops; each admission is one
//! compare-and-swap, so exactly `max_requests` permits can be held at once however many tasks race for them. The same
//! applies to requests waiting for a connection or an endpoint, under `max_pending_requests` (Envoy; beyond gRPC).
//!
//! Limits change with [`CircuitBreaker::set_limits`] without touching the counts: lowering a limit below the
//! current count admits nothing new until enough permits drop.
//!
//! What it does not solve: the gRPC status and message of the failed request (the caller maps [`Overloaded`]), the
//! `max_retries` breaker (retries are limited by [`RetryBudget`](super::RetryBudget)) and `max_connections` (the
//! connection pool's business).

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use mesh_core::cluster::CircuitBreakers;

/// A cluster's request limits and in-flight counts; cheap to clone (clones share the counts). See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    state: Arc<BreakerState>,
}

#[derive(Debug)]
struct BreakerState {
    max_requests: AtomicU32,
    max_pending: AtomicU32,
    requests: AtomicU32,
    pending: AtomicU32,
}

/// Which limit a [`Permit`] or an [`Overloaded`] error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerResource {
    /// Requests in flight to the cluster (`max_requests`).
    Requests,
    /// Requests waiting for a connection or an endpoint (`max_pending_requests`).
    PendingRequests,
}

impl BreakerResource {
    /// The Envoy name of the limit, for messages and metrics.
    #[must_use]
    pub const fn limit_name(self) -> &'static str {
        match self {
            Self::Requests => "max_requests",
            Self::PendingRequests => "max_pending_requests",
        }
    }
}

/// A circuit breaker refused a request: `in_flight` had already reached `limit`. gRFC A32: fail the request with
/// `UNAVAILABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Overloaded {
    /// The limit that was reached.
    pub resource: BreakerResource,
    /// Its configured value.
    pub limit: u32,
    /// How many were in flight when the request was refused.
    pub in_flight: u32,
}

impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.resource {
            BreakerResource::Requests => "requests in flight",
            BreakerResource::PendingRequests => "requests pending",
        };
        write!(
            f,
            "circuit breaker open: {} {what} reached {} {}",
            self.in_flight,
            self.resource.limit_name(),
            self.limit
        )
    }
}

impl Error for Overloaded {}

impl CircuitBreaker {
    /// A breaker with `limits`' `max_requests` and `max_pending_requests` and nothing in flight.
    #[must_use]
    pub fn new(limits: &CircuitBreakers) -> Self {
        Self {
            state: Arc::new(BreakerState {
                max_requests: AtomicU32::new(limits.max_requests),
                max_pending: AtomicU32::new(limits.max_pending_requests),
                requests: AtomicU32::new(0),
                pending: AtomicU32::new(0),
            }),
        }
    }

    /// Applies new limits (a config update); permits held keep counting.
    pub fn set_limits(&self, limits: &CircuitBreakers) {
        self.state
            .max_requests
            .store(limits.max_requests, Ordering::Relaxed);
        self.state
            .max_pending
            .store(limits.max_pending_requests, Ordering::Relaxed);
    }

    /// Admits a request if fewer than `max_requests` are in flight; it counts until the permit drops.
    ///
    /// # Errors
    ///
    /// [`Overloaded`] when `max_requests` are already in flight.
    pub fn try_acquire(&self) -> Result<Permit, Overloaded> {
        self.acquire(BreakerResource::Requests)
    }

    /// Admits a request into the queue of those waiting for a connection or an endpoint, if fewer than
    /// `max_pending_requests` wait; it counts until the permit drops.
    ///
    /// # Errors
    ///
    /// [`Overloaded`] when `max_pending_requests` are already waiting.
    pub fn try_acquire_pending(&self) -> Result<Permit, Overloaded> {
        self.acquire(BreakerResource::PendingRequests)
    }

    /// Requests in flight.
    #[must_use]
    pub fn in_flight(&self) -> u32 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Requests pending.
    #[must_use]
    pub fn pending(&self) -> u32 {
        self.state.pending.load(Ordering::Relaxed)
    }

    /// The current `max_requests`.
    #[must_use]
    pub fn max_requests(&self) -> u32 {
        self.state.max_requests.load(Ordering::Relaxed)
    }

    /// The current `max_pending_requests`.
    #[must_use]
    pub fn max_pending(&self) -> u32 {
        self.state.max_pending.load(Ordering::Relaxed)
    }

    fn acquire(&self, resource: BreakerResource) -> Result<Permit, Overloaded> {
        let (count, limit) = self.state.counters(resource);
        let limit = limit.load(Ordering::Relaxed);
        // gRFC A32: at or above the limit, refuse. The compare-and-swap makes the check and the increment one step,
        // so racing tasks cannot overshoot.
        match count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |in_flight| {
            (in_flight < limit).then(|| in_flight + 1)
        }) {
            Ok(_) => Ok(Permit {
                state: Arc::clone(&self.state),
                resource,
            }),
            Err(in_flight) => Err(Overloaded {
                resource,
                limit,
                in_flight,
            }),
        }
    }
}

impl BreakerState {
    fn counters(&self, resource: BreakerResource) -> (&AtomicU32, &AtomicU32) {
        match resource {
            BreakerResource::Requests => (&self.requests, &self.max_requests),
            BreakerResource::PendingRequests => (&self.pending, &self.max_pending),
        }
    }
}

/// One admitted request (or pending request), counted by its [`CircuitBreaker`] until dropped.
#[derive(Debug)]
#[must_use = "the request stops counting as soon as the permit is dropped"]
pub struct Permit {
    state: Arc<BreakerState>,
    resource: BreakerResource,
}

impl Permit {
    /// Which count this permit holds.
    #[must_use]
    pub fn resource(&self) -> BreakerResource {
        self.resource
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let (count, _) = self.state.counters(self.resource);
        count.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn limits(max_requests: u32, max_pending: u32) -> CircuitBreakers {
        CircuitBreakers::default()
            .with_max_requests(max_requests)
            .with_max_pending_requests(max_pending)
    }

    #[test]
    fn admits_up_to_max_requests_then_fails_fast() {
        let breaker = CircuitBreaker::new(&limits(3, 10));
        let permits: Vec<Permit> = (0..3).map(|_| breaker.try_acquire().unwrap()).collect();
        let refused = breaker.try_acquire().unwrap_err();
        assert_eq!(
            refused,
            Overloaded {
                resource: BreakerResource::Requests,
                limit: 3,
                in_flight: 3
            }
        );
        assert_eq!(
            refused.to_string(),
            "circuit breaker open: 3 requests in flight reached max_requests 3"
        );
        drop(permits);
        assert_eq!(breaker.in_flight(), 0);
        assert!(breaker.try_acquire().is_ok());
    }

    #[test]
    fn pending_requests_have_their_own_limit() {
        let breaker = CircuitBreaker::new(&limits(10, 1));
        let pending = breaker.try_acquire_pending().unwrap();
        assert_eq!(pending.resource(), BreakerResource::PendingRequests);
        let refused = breaker.try_acquire_pending().unwrap_err();
        assert_eq!(refused.resource, BreakerResource::PendingRequests);
        assert!(refused.to_string().contains("max_pending_requests 1"));
        // The request limit is untouched.
        let _request = breaker.try_acquire().unwrap();
        assert_eq!((breaker.in_flight(), breaker.pending()), (1, 1));
        drop(pending);
        assert_eq!(breaker.pending(), 0);
    }

    #[test]
    fn zero_limit_admits_nothing() {
        let breaker = CircuitBreaker::new(&limits(0, 0));
        assert!(breaker.try_acquire().is_err());
        assert!(breaker.try_acquire_pending().is_err());
    }

    #[test]
    fn set_limits_keeps_the_requests_in_flight() {
        let breaker = CircuitBreaker::new(&limits(4, 4));
        let held: Vec<Permit> = (0..4).map(|_| breaker.try_acquire().unwrap()).collect();
        breaker.set_limits(&limits(2, 4));
        assert_eq!(breaker.max_requests(), 2);
        assert_eq!(breaker.in_flight(), 4);
        let refused = breaker.try_acquire().unwrap_err();
        assert_eq!((refused.limit, refused.in_flight), (2, 4));
        let mut held = held;
        held.truncate(2);
        assert!(breaker.try_acquire().is_err(), "2 of 2 still in flight");
        held.pop();
        assert!(breaker.try_acquire().is_ok());
        breaker.set_limits(&limits(100, 4));
        assert!(breaker.try_acquire().is_ok());
    }

    #[test]
    fn exactly_max_requests_are_held_under_contention() {
        // 32 threads race for 8 permits, many times over: the count never passes 8, and at a moment when every
        // thread holds what it could get, exactly 8 are held.
        const LIMIT: u32 = 8;
        const THREADS: usize = 32;
        let breaker = CircuitBreaker::new(&limits(LIMIT, 0));
        let holding = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let rounds = 50;
        let barrier = Barrier::new(THREADS);
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    for _ in 0..rounds {
                        barrier.wait();
                        let permit = breaker.try_acquire().ok();
                        if permit.is_some() {
                            let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                        }
                        // Everyone has tried: exactly LIMIT got a permit this round.
                        barrier.wait();
                        assert_eq!(breaker.in_flight(), LIMIT);
                        assert_eq!(holding.load(Ordering::SeqCst), LIMIT as usize);
                        barrier.wait();
                        if permit.is_some() {
                            holding.fetch_sub(1, Ordering::SeqCst);
                        }
                        drop(permit);
                    }
                });
            }
        });
        assert_eq!(peak.load(Ordering::SeqCst), LIMIT as usize);
        assert_eq!(breaker.in_flight(), 0);
    }
}
