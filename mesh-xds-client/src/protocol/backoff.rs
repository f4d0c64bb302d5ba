//! Exponential backoff with jitter, as gRPC uses for connection attempts (grpc/grpc `doc/connection-backoff.md`).

use std::time::Duration;

use mesh_core::rng::RandomSource;

use super::config::BackoffConfig;

/// The nominal delay of the next retry for one server.
#[derive(Debug, Clone)]
pub(super) struct Backoff {
    current: Duration,
}

impl Backoff {
    pub(super) fn new(config: &BackoffConfig) -> Self {
        Self {
            current: config.initial,
        }
    }

    /// Back to the initial delay (gRFC A57: "The backoff state will be reset when an ADS stream attempt does finally
    /// receive a response from the server").
    pub(super) fn reset(&mut self, config: &BackoffConfig) {
        self.current = config.initial;
    }

    /// The delay before the next attempt; grows the nominal delay for the one after.
    pub(super) fn next_delay(
        &mut self,
        config: &BackoffConfig,
        rng: &mut impl RandomSource,
    ) -> Duration {
        let nominal = self.current;
        self.current = scale(nominal, config.multiplier, config.max).min(config.max);
        // connection-backoff.md: `current_backoff * (1 + uniform(-JITTER, JITTER))`.
        let unit = f64::from(u32::try_from(rng.next_u64() >> 32).unwrap_or(u32::MAX))
            / f64::from(u32::MAX);
        let factor = 1.0 + config.jitter * (2.0 * unit - 1.0);
        scale(nominal, factor, config.max.saturating_mul(2))
    }
}

/// `duration * factor`, saturating at `ceiling` instead of panicking on overflow or a bad factor.
fn scale(duration: Duration, factor: f64, ceiling: Duration) -> Duration {
    Duration::try_from_secs_f64(duration.as_secs_f64() * factor.max(0.0))
        .map_or(ceiling, |scaled| scaled.min(ceiling))
}
