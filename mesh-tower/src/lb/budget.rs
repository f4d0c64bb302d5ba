//! Retry budgets: retries may be at most a share of the requests in flight, so they cannot multiply an outage.
//!
//! What it solves: [`RetryBudget`] counts active requests and active retries of a cluster with two atomics and
//! admits a retry only while `active_retries < max(min_retry_concurrency, budget_percent% × active_requests)`
//! (Envoy's `RetryBudget`: "the limit on concurrent retries as a percentage of the sum of active requests and
//! active pending requests"; "the limit on the number of active retries may never go below"
//! `min_retry_concurrency`). When every request fails, a fixed-count retry policy would send `num_retries` times the
//! traffic to a struggling cluster; under a budget of 20% it sends at most a fifth more.
//!
//! Counting: a request holds its [`RequestGuard`] from start to finish, retries included; a retry attempt also holds
//! a [`RetryGuard`] while it runs. Both decrement on drop, so a cancelled future gives its share back. The share is
//! rounded down, as Envoy converts it to an integer count.
//!
//! What it does not solve: which failures are retried, how many times per request, or how long to wait between
//! attempts (the route's retry policy and [`retry_backoff`](super::retry_backoff) say so). gRPC's retry throttling
//! (gRFC A6 token bucket) is a different mechanism and is not implemented here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use mesh_core::route::RetryBudget as RetryBudgetConfig;

/// The budget share is held in millionths of the active requests, so admission needs no floating point.
const PARTS_PER_MILLION: u128 = 1_000_000;

/// A cluster's retry budget; cheap to clone (clones share the counters). See the [module docs](self).
#[derive(Debug, Clone)]
pub struct RetryBudget {
    state: Arc<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    active_requests: AtomicUsize,
    active_retries: AtomicUsize,
    /// `budget_percent` in millionths of the active requests (20% = 200,000).
    budget_ppm: AtomicU64,
    min_retry_concurrency: AtomicU32,
}

impl RetryBudget {
    /// A budget with `config`'s share and floor and no request in flight.
    #[must_use]
    pub fn new(config: &RetryBudgetConfig) -> Self {
        let budget = Self {
            state: Arc::new(BudgetState {
                active_requests: AtomicUsize::new(0),
                active_retries: AtomicUsize::new(0),
                budget_ppm: AtomicU64::new(0),
                min_retry_concurrency: AtomicU32::new(0),
            }),
        };
        budget.set_config(config);
        budget
    }

    /// Applies a new share and floor; requests and retries in flight keep counting. A `budget_percent` that is NaN
    /// or below 0 counts as 0, one above 100 as 100 (Envoy's `Percent` range).
    pub fn set_config(&self, config: &RetryBudgetConfig) {
        self.state
            .budget_ppm
            .store(percent_to_ppm(config.budget_percent), Ordering::Relaxed);
        self.state
            .min_retry_concurrency
            .store(config.min_retry_concurrency, Ordering::Relaxed);
    }

    /// Counts a request as active until the guard drops. Hold it for the whole request, retries included.
    pub fn start_request(&self) -> RequestGuard {
        self.state.active_requests.fetch_add(1, Ordering::Relaxed);
        RequestGuard {
            state: Arc::clone(&self.state),
        }
    }

    /// Admits a retry if the budget allows one now, counting it as active until the guard drops; `None` means the
    /// budget is spent and the request should fail with its last error.
    pub fn try_start_retry(&self) -> Option<RetryGuard> {
        self.state
            .active_retries
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |retries| {
                (retries < self.retry_limit()).then_some(retries + 1)
            })
            .ok()?;
        Some(RetryGuard {
            state: Arc::clone(&self.state),
        })
    }

    /// The number of concurrent retries allowed right now: `max(min_retry_concurrency, ⌊budget_percent% × active
    /// requests⌋)`.
    #[must_use]
    pub fn retry_limit(&self) -> usize {
        let active = self.state.active_requests.load(Ordering::Relaxed);
        let ppm = self.state.budget_ppm.load(Ordering::Relaxed);
        let share = (active as u128) * u128::from(ppm) / PARTS_PER_MILLION;
        let floor = usize::try_from(self.state.min_retry_concurrency.load(Ordering::Relaxed))
            .unwrap_or(usize::MAX);
        usize::try_from(share).unwrap_or(usize::MAX).max(floor)
    }

    /// Requests in flight.
    #[must_use]
    pub fn active_requests(&self) -> usize {
        self.state.active_requests.load(Ordering::Relaxed)
    }

    /// Retries in flight.
    #[must_use]
    pub fn active_retries(&self) -> usize {
        self.state.active_retries.load(Ordering::Relaxed)
    }
}

/// An active request, counted in its [`RetryBudget`] until dropped.
#[derive(Debug)]
#[must_use = "the request stops counting as active when the guard is dropped"]
pub struct RequestGuard {
    state: Arc<BudgetState>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.state.active_requests.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An active retry, counted in its [`RetryBudget`] until dropped.
#[derive(Debug)]
#[must_use = "the retry stops counting as active when the guard is dropped"]
pub struct RetryGuard {
    state: Arc<BudgetState>,
}

impl Drop for RetryGuard {
    fn drop(&mut self) {
        self.state.active_retries.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A percentage in millionths of the whole, clamped to `0..=100` percent.
fn percent_to_ppm(percent: f64) -> u64 {
    let clamped = if percent.is_nan() {
        0.0
    } else {
        percent.clamp(0.0, 100.0)
    };
    // `clamped × 10,000` lies in 0..=1,000,000, so the conversion is exact in range and sign.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ppm = (clamped * 10_000.0).round() as u64;
    ppm
}

#[cfg(test)]
mod tests;
