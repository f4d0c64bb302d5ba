//! Settings of the request path that do not come from xDS: connection behaviour, defaults, randomness and
//! telemetry, each with a documented default.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::load::LoadStore;
use mesh_core::route::RetryBudget;

use crate::metrics::{CallTracer, Metrics, NoMetrics, TracePropagator};
use crate::tls::CertificateProviders;

/// Backoff between attempts to reconnect to an endpoint whose connection failed (gRPC's connection backoff,
/// `grpc/doc/connection-backoff.md`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ReconnectBackoff {
    /// The first wait.
    pub base: Duration,
    /// Each wait is the previous times this.
    pub multiplier: f64,
    /// Random spread, as a fraction of the wait (0.2 = ±20%).
    pub jitter: f64,
    /// The longest wait.
    pub max: Duration,
}

impl ReconnectBackoff {
    /// gRPC's initial backoff.
    pub const DEFAULT_BASE: Duration = Duration::from_secs(1);
    /// gRPC's multiplier.
    pub const DEFAULT_MULTIPLIER: f64 = 1.6;
    /// gRPC's jitter.
    pub const DEFAULT_JITTER: f64 = 0.2;
    /// gRPC's maximum backoff.
    pub const DEFAULT_MAX: Duration = Duration::from_secs(120);

    /// A backoff from `base` up to `max` with gRPC's multiplier and jitter.
    #[must_use]
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            multiplier: Self::DEFAULT_MULTIPLIER,
            jitter: Self::DEFAULT_JITTER,
            max,
        }
    }

    /// The wait before reconnect number `failures` (1 for the first), before jitter.
    #[must_use]
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = self.multiplier.max(1.0).powi(exponent);
        let secs = self.base.as_secs_f64() * factor;
        Duration::try_from_secs_f64(secs)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The wait before reconnect number `failures`, with jitter from `unit` (a uniform draw in `0.0..1.0`).
    #[must_use]
    pub fn wait(&self, failures: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(failures).as_secs_f64();
        let spread = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 - spread + 2.0 * spread * unit.clamp(0.0, 1.0);
        Duration::try_from_secs_f64(ceiling * factor).unwrap_or(self.max)
    }
}

impl Default for ReconnectBackoff {
    fn default() -> Self {
        Self::new(Self::DEFAULT_BASE, Self::DEFAULT_MAX)
    }
}

/// Settings of a [`MeshService`](crate::MeshService).
#[derive(Clone)]
#[non_exhaustive]
pub struct MeshOptions {
    /// How long a request waits for the first configuration before failing with UNAVAILABLE.
    pub initial_config_timeout: Duration,
    /// Reconnect backoff for endpoints.
    pub reconnect_backoff: ReconnectBackoff,
    /// HTTP/2 keep-alive ping interval; `None` (the default, as in gRPC's clients, gRFC A8) sends no pings.
    /// Servers limit how often they accept pings (gRPC's by default to one per 5 minutes, fewer on connections
    /// without calls) and close connections that ping more often with GOAWAY `ENHANCE_YOUR_CALM`: set this in
    /// agreement with the endpoints' policy.
    pub keep_alive_interval: Option<Duration>,
    /// How long to wait for a ping's acknowledgement before closing the connection.
    pub keep_alive_timeout: Duration,
    /// The retry budget for policies that set none.
    pub default_retry_budget: RetryBudget,
    /// Seed for every random choice (weighted clusters, pickers, faults, backoff); `None` seeds from the OS.
    pub rng_seed: Option<u64>,
    /// Where counters and histograms go.
    pub metrics: Arc<dyn Metrics>,
    /// What writes the trace context of the `tracing` spans on each attempt's request (W3C `traceparent`), when
    /// no [`tracer`](Self::tracer) does; `None` writes nothing.
    pub propagator: Option<Arc<dyn TracePropagator>>,
    /// What makes a span per call and per attempt and writes each attempt's trace context; `None` makes none.
    pub tracer: Option<Arc<dyn CallTracer>>,
    /// The certificate provider instances clusters' `UpstreamTls` names (gRFC A29); empty by default, so a
    /// cluster with TLS fails its calls until its instances are given here.
    pub certificate_providers: CertificateProviders,
    /// Where load reports are counted (gRFC A27 LRS): the attempts to each locality of the clusters that have an
    /// `lrs_server`, and their drops. Their counters are resolved when a cluster's endpoints are set, so a request
    /// costs two atomic increments per attempt and no lookup; clusters without an `lrs_server` cost nothing.
    /// `None` (the default) counts nothing.
    pub load_store: Option<LoadStore>,
}

impl MeshOptions {
    /// The default wait for the first configuration.
    pub const DEFAULT_INITIAL_CONFIG_TIMEOUT: Duration = Duration::from_secs(20);
    /// A keep-alive interval for connections whose servers accept pings that often (pings are off by default;
    /// see [`keep_alive_interval`](Self::keep_alive_interval)).
    pub const DEFAULT_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
    /// The default keep-alive timeout (gRPC's default).
    pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

    /// Sets the wait for the first configuration.
    #[must_use]
    pub fn with_initial_config_timeout(mut self, timeout: Duration) -> Self {
        self.initial_config_timeout = timeout;
        self
    }

    /// Sets the reconnect backoff.
    #[must_use]
    pub fn with_reconnect_backoff(mut self, backoff: ReconnectBackoff) -> Self {
        self.reconnect_backoff = backoff;
        self
    }

    /// Sets the keep-alive ping interval (`None` disables pings).
    #[must_use]
    pub fn with_keep_alive(mut self, interval: Option<Duration>, timeout: Duration) -> Self {
        self.keep_alive_interval = interval;
        self.keep_alive_timeout = timeout;
        self
    }

    /// Sets the default retry budget.
    #[must_use]
    pub fn with_default_retry_budget(mut self, budget: RetryBudget) -> Self {
        self.default_retry_budget = budget;
        self
    }

    /// Seeds every random choice, for reproducible tests.
    #[must_use]
    pub fn with_rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// Sets where metrics go.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sets what writes the trace context on each attempt's request.
    #[must_use]
    pub fn with_propagator(mut self, propagator: Arc<dyn TracePropagator>) -> Self {
        self.propagator = Some(propagator);
        self
    }

    /// Sets what makes the spans of calls and attempts (and writes their trace context on each attempt).
    #[must_use]
    pub fn with_tracer(mut self, tracer: Arc<dyn CallTracer>) -> Self {
        self.tracer = Some(tracer);
        self
    }

    /// These options for a channel to `target`: the metrics labelled with it when they label by target (see
    /// [`Metrics::for_target`]).
    #[must_use]
    pub fn for_target(mut self, target: &str) -> Self {
        if let Some(metrics) = self.metrics.for_target(target) {
            self.metrics = metrics;
        }
        self
    }

    /// Counts load reports into `store` (see [`load_store`](Self::load_store)).
    #[must_use]
    pub fn with_load_store(mut self, store: LoadStore) -> Self {
        self.load_store = Some(store);
        self
    }

    /// Sets the certificate provider instances for upstream TLS.
    #[must_use]
    pub fn with_certificate_providers(mut self, providers: CertificateProviders) -> Self {
        self.certificate_providers = providers;
        self
    }
}

impl Default for MeshOptions {
    fn default() -> Self {
        Self {
            initial_config_timeout: Self::DEFAULT_INITIAL_CONFIG_TIMEOUT,
            reconnect_backoff: ReconnectBackoff::default(),
            keep_alive_interval: None,
            keep_alive_timeout: Self::DEFAULT_KEEP_ALIVE_TIMEOUT,
            default_retry_budget: RetryBudget::default(),
            rng_seed: None,
            metrics: Arc::new(NoMetrics),
            propagator: None,
            tracer: None,
            certificate_providers: CertificateProviders::new(),
            load_store: None,
        }
    }
}

impl fmt::Debug for MeshOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshOptions")
            .field("initial_config_timeout", &self.initial_config_timeout)
            .field("reconnect_backoff", &self.reconnect_backoff)
            .field("keep_alive_interval", &self.keep_alive_interval)
            .field("keep_alive_timeout", &self.keep_alive_timeout)
            .field("default_retry_budget", &self.default_retry_budget)
            .field("rng_seed", &self.rng_seed)
            .field("propagator", &self.propagator.is_some())
            .field("tracer", &self.tracer.is_some())
            .field("certificate_providers", &self.certificate_providers)
            .field("load_store", &self.load_store.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_backoff_grows_by_the_multiplier_up_to_the_maximum() {
        let backoff = ReconnectBackoff::default();
        assert_eq!(backoff.ceiling(1), Duration::from_secs(1));
        assert_eq!(backoff.ceiling(2), Duration::from_millis(1600));
        assert_eq!(backoff.ceiling(100), Duration::from_secs(120));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(120));
    }

    #[test]
    fn jitter_spreads_the_wait_by_twenty_percent() {
        let backoff = ReconnectBackoff::default();
        assert_eq!(backoff.wait(1, 0.0), Duration::from_millis(800));
        assert_eq!(backoff.wait(1, 0.5), Duration::from_secs(1));
        assert_eq!(backoff.wait(1, 1.0), Duration::from_millis(1200));
    }
}
