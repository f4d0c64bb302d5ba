//! Counters and histograms of the request path, behind one small trait.
//!
//! The request path reports what happened through [`Metrics`]; every method has an empty default body, so
//! [`NoMetrics`] (the default) costs a virtual call per event and nothing else. The observability work implements
//! the trait over OpenTelemetry (gRFC A66/A78 names: `grpc.client.attempt.*`, with cluster and locality labels).
//!
//! Not here: tracing spans (the request path emits them with `tracing` directly) and load reports.

use std::time::Duration;

use mesh_core::locality::Locality;

use crate::status::Code;

/// How a request or attempt ended: its HTTP status and, for gRPC, its gRPC status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// The HTTP status (the synthesized one for local failures).
    pub http_status: u16,
    /// The gRPC status, for gRPC requests once known.
    pub grpc_status: Option<Code>,
}

impl Outcome {
    /// An outcome with `http_status` and an optional gRPC status.
    #[must_use]
    pub const fn new(http_status: u16, grpc_status: Option<Code>) -> Self {
        Self {
            http_status,
            grpc_status,
        }
    }
}

/// Labels of one attempt.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AttemptLabels<'a> {
    /// The (leaf) cluster.
    pub cluster: &'a str,
    /// The endpoint's locality, in gRFC A78's label form.
    pub locality: &'a Locality,
    /// The endpoint's address.
    pub endpoint: &'a str,
    /// 0 for the first attempt, then 1, 2, ...
    pub attempt: u32,
}

/// The request path's events. Implementations must be cheap and must not block: they run on request tasks.
pub trait Metrics: Send + Sync + 'static {
    /// A request started, routed to `cluster`.
    fn request_started(&self, cluster: &str) {
        let _ = cluster;
    }

    /// A request finished (at the end of its response stream, or with a local failure) after `duration`.
    fn request_finished(&self, cluster: &str, outcome: Outcome, duration: Duration) {
        let _ = (cluster, outcome, duration);
    }

    /// An attempt got response headers or failed, after `duration`. `outcome` is `None` for transport failures.
    fn attempt_finished(
        &self,
        labels: &AttemptLabels<'_>,
        outcome: Option<Outcome>,
        duration: Duration,
    ) {
        let _ = (labels, outcome, duration);
    }

    /// A retry is about to be made.
    fn retry(&self, cluster: &str) {
        let _ = cluster;
    }

    /// A retry was wanted but the retry budget had no room (the request ends with its last attempt's result).
    fn retry_budget_exhausted(&self, cluster: &str) {
        let _ = cluster;
    }

    /// The cluster's circuit breaker refused a request.
    fn circuit_breaker_rejected(&self, cluster: &str) {
        let _ = cluster;
    }

    /// Outlier detection ejected (`true`) or returned (`false`) an endpoint.
    fn ejection(&self, cluster: &str, endpoint: &str, ejected: bool) {
        let _ = (cluster, endpoint, ejected);
    }

    /// The fault filter injected a delay (`abort == false`) or an abort.
    fn fault_injected(&self, cluster: &str, abort: bool) {
        let _ = (cluster, abort);
    }
}

/// Metrics that go nowhere: the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl Metrics for NoMetrics {}
