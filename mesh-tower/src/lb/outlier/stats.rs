//! One endpoint's outlier-detection state, all in atomics so request tasks update it without locking.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

/// Not ejected.
pub(super) const ACTIVE: u8 = 0;
/// Being ejected: the slot is claimed, the timestamp and multiplier not yet published. Counts as ejected.
pub(super) const EJECTING: u8 = 1;
/// Ejected; `ejected_at` and `multiplier` are published.
pub(super) const EJECTED: u8 = 2;

/// Successes and failures of one interval (gRFC A50's call counter bucket).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct IntervalCounts {
    pub(super) successes: u64,
    pub(super) failures: u64,
}

impl IntervalCounts {
    pub(super) fn total(self) -> u64 {
        self.successes.saturating_add(self.failures)
    }
}

/// Aligned to a cache line so that tasks recording outcomes of neighbouring endpoints do not contend.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(super) struct EndpointStats {
    /// gRFC A50's active bucket: updated per request, swapped out at each evaluation.
    successes: AtomicU64,
    failures: AtomicU64,
    /// The previous interval's bucket, kept for telemetry.
    last_successes: AtomicU64,
    last_failures: AtomicU64,
    /// Envoy's consecutive error streaks.
    pub(super) consecutive_5xx: AtomicU32,
    pub(super) consecutive_gateway: AtomicU32,
    /// [`ACTIVE`], [`EJECTING`] or [`EJECTED`].
    pub(super) state: AtomicU8,
    /// Nanoseconds after the detector's base instant of the current ejection.
    pub(super) ejected_at: AtomicU64,
    /// gRFC A50's ejection time multiplier.
    pub(super) multiplier: AtomicU32,
}

impl EndpointStats {
    pub(super) fn count_success(&self) {
        self.successes.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Envoy `putHttpResponseCode`: a response that is not a 5xx ends both streaks. Writes only when a streak is
    /// running, so a healthy endpoint's line is not dirtied on every success.
    pub(super) fn end_streaks(&self) {
        for streak in [&self.consecutive_5xx, &self.consecutive_gateway] {
            if streak.load(Ordering::Relaxed) != 0 {
                streak.store(0, Ordering::Relaxed);
            }
        }
    }

    /// gRFC A50 "Call Counter": hands over the active bucket as the interval's counts and starts a new one. A request
    /// finishing during the swap is counted in one interval or the next, never lost or doubled.
    pub(super) fn swap_bucket(&self) -> IntervalCounts {
        let counts = IntervalCounts {
            successes: self.successes.swap(0, Ordering::Relaxed),
            failures: self.failures.swap(0, Ordering::Relaxed),
        };
        self.last_successes
            .store(counts.successes, Ordering::Relaxed);
        self.last_failures.store(counts.failures, Ordering::Relaxed);
        counts
    }

    pub(super) fn last_interval(&self) -> IntervalCounts {
        IntervalCounts {
            successes: self.last_successes.load(Ordering::Relaxed),
            failures: self.last_failures.load(Ordering::Relaxed),
        }
    }

    pub(super) fn is_ejected(&self) -> bool {
        self.state.load(Ordering::Relaxed) != ACTIVE
    }

    /// A copy for a rebuilt detector. An ejection still being published counts as ejected.
    pub(super) fn copy(&self) -> Self {
        let state = match self.state.load(Ordering::Acquire) {
            ACTIVE => ACTIVE,
            _ => EJECTED,
        };
        Self {
            successes: AtomicU64::new(self.successes.load(Ordering::Relaxed)),
            failures: AtomicU64::new(self.failures.load(Ordering::Relaxed)),
            last_successes: AtomicU64::new(self.last_successes.load(Ordering::Relaxed)),
            last_failures: AtomicU64::new(self.last_failures.load(Ordering::Relaxed)),
            consecutive_5xx: AtomicU32::new(self.consecutive_5xx.load(Ordering::Relaxed)),
            consecutive_gateway: AtomicU32::new(self.consecutive_gateway.load(Ordering::Relaxed)),
            state: AtomicU8::new(state),
            ejected_at: AtomicU64::new(self.ejected_at.load(Ordering::Relaxed)),
            multiplier: AtomicU32::new(self.multiplier.load(Ordering::Relaxed)),
        }
    }

    /// Zeroes the active bucket.
    pub(super) fn reset_counts(&self) {
        self.successes.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
    }

    /// gRFC A50: on a config with no detector, every endpoint is un-ejected and its multiplier reset.
    pub(super) fn reset_ejection(&self) {
        self.state.store(ACTIVE, Ordering::Release);
        self.multiplier.store(0, Ordering::Relaxed);
    }
}
