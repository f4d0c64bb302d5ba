//! Counters and histograms of the request path, behind one small trait.
//!
//! The request path reports what happened through [`Metrics`]; every method has an empty default body, so
//! [`NoMetrics`] (the default) costs a virtual call per event and nothing else; it also says, through
//! [`Metrics::records_attempts`], that it takes no attempt events, so that the request path keeps nothing for an
//! attempt whose gRPC status comes in trailers. The observability work implements the trait over OpenTelemetry
//! (gRFC A66/A78 names: `grpc.client.attempt.*`, with cluster and locality labels).
//!
//! Calls and attempts are reported with their labels ([`CallLabels`], [`AttemptLabels`]: cluster, method,
//! locality) through the `*_for` methods, whose defaults forward to the older cluster-only methods, so existing
//! implementations keep working. A [`Metrics`] shared by several channels learns each channel's target through
//! [`Metrics::for_target`]; one that labels by method can resolve a call's series once, as the call starts, through
//! [`Metrics::for_call`], and then takes that call's events on what it resolved.
//!
//! Several implementations receive the same events through [`FanOut`]. Load reports (gRFC A27 LRS) do not go
//! through this interface: see [`load_report`](crate::load_report).
//!
//! An attempt's end carries gRFC A66's message sizes ([`AttemptEnd`]: the gRPC message bytes it sent and received,
//! counted by the request path's bodies as the frames pass, see [`GrpcMessageBytes`]) to implementations that ask
//! for them ([`Metrics::records_message_sizes`]) through [`Metrics::attempt_ended`].
//!
//! Spans: the request path emits `tracing` spans (`mesh.request`, `mesh.attempt`, at DEBUG) and, when a
//! [`CallTracer`] is set, has it make a span per call and per attempt directly (OpenTelemetry's, in `mesh-tonic`),
//! which also writes each attempt's trace context; without one, a [`TracePropagator`] can write the context of the
//! `tracing` spans instead.

use std::time::Duration;

use mesh_core::locality::Locality;

use crate::error::EndpointCounts;
use crate::status::Code;

/// Labels of one call (request).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CallLabels<'a> {
    /// The cluster the route chose (for a weighted or aggregate cluster, the top-level one).
    pub cluster: &'a str,
    /// The request's path: for gRPC, `/package.Service/Method`.
    pub method: &'a str,
    /// Whether this is a gRPC request.
    pub grpc: bool,
}

impl<'a> CallLabels<'a> {
    /// Labels for a call to `cluster` on `method` (the request path).
    #[must_use]
    pub const fn new(cluster: &'a str, method: &'a str, grpc: bool) -> Self {
        Self {
            cluster,
            method,
            grpc,
        }
    }
}

/// Labels of an attempt as it starts, before an endpoint is picked (gRFC A66 counts attempts there).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AttemptStart<'a> {
    /// The (leaf) cluster.
    pub cluster: &'a str,
    /// The request's path.
    pub method: &'a str,
    /// Whether this is a gRPC request.
    pub grpc: bool,
    /// 0 for the first attempt, then 1, 2, ...
    pub attempt: u32,
}

/// Carries the trace context of the request path's `tracing` spans on outgoing requests (W3C `traceparent`, ...).
/// Set on [`MeshOptions`](crate::options::MeshOptions); called once per attempt, before it is sent, unless a
/// [`CallTracer`] is set (which writes its own spans' context).
pub trait TracePropagator: Send + Sync + 'static {
    /// Writes the context of `span` (the attempt's `mesh.attempt` span; it may be disabled, then the current span,
    /// the request's `mesh.request`, is the one to use) into `headers`.
    fn inject(&self, span: &tracing::Span, headers: &mut http::HeaderMap);
}

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
    /// The request's path: for gRPC, `/package.Service/Method`.
    pub method: &'a str,
    /// Whether this is a gRPC request.
    pub grpc: bool,
}

/// How an attempt ended: its outcome, duration and, when measured, gRFC A66's message sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptEnd {
    /// The attempt's outcome; `None` for transport failures.
    pub outcome: Option<Outcome>,
    /// From the attempt's start (before the pick) to its end.
    pub duration: Duration,
    /// gRFC A66's `sent_total_compressed_message_size`: the payload bytes of the gRPC request messages the attempt
    /// sent (as on the wire, compressed when the message is; prefixes, headers and HTTP/2 framing excluded).
    /// `None` when not measured: not a gRPC request, or no [`Metrics`] asked for sizes.
    pub sent_message_bytes: Option<u64>,
    /// gRFC A66's `rcvd_total_compressed_message_size`: the payload bytes of the gRPC response messages received
    /// (0 when the attempt ended at its response headers). `None` when not measured.
    pub received_message_bytes: Option<u64>,
}

impl AttemptEnd {
    /// An end without message sizes.
    #[must_use]
    pub const fn new(outcome: Option<Outcome>, duration: Duration) -> Self {
        Self {
            outcome,
            duration,
            sent_message_bytes: None,
            received_message_bytes: None,
        }
    }

    /// With message sizes.
    #[must_use]
    pub const fn with_message_bytes(mut self, sent: Option<u64>, received: Option<u64>) -> Self {
        self.sent_message_bytes = sent;
        self.received_message_bytes = received;
        self
    }
}

/// The request path's events. Implementations must be cheap and must not block: they run on request tasks.
pub trait Metrics: Send + Sync + 'static {
    /// The metrics of a channel to `target` (its canonical URI, e.g. `xds:///greeter`; gRFC A66's `grpc.target`),
    /// when this implementation labels by target; `None` (the default) uses `self` for every target.
    fn for_target(&self, target: &str) -> Option<std::sync::Arc<dyn Metrics>> {
        let _ = target;
        None
    }

    /// The metrics of one call, resolved once as it starts (its method's series, say): the request path then sends
    /// that call's events (its start, its attempts and their ends, its end) to the result instead of `self`, so an
    /// implementation that labels by method finds its series once per call rather than once per event. The
    /// result must take every other event as `self` does. `None` (the default; [`FanOut`] too): `self` takes them.
    fn for_call(&self, call: &CallLabels<'_>) -> Option<std::sync::Arc<dyn Metrics>> {
        let _ = call;
        None
    }

    /// A call started. The default calls [`request_started`](Self::request_started).
    fn call_started(&self, call: &CallLabels<'_>) {
        self.request_started(call.cluster);
    }

    /// A call finished (at the end of its response stream, or with a local failure) after `duration`. The default
    /// calls [`request_finished`](Self::request_finished).
    fn call_finished(&self, call: &CallLabels<'_>, outcome: Outcome, duration: Duration) {
        self.request_finished(call.cluster, outcome, duration);
    }

    /// An attempt started (after routing, before an endpoint is picked).
    fn attempt_started(&self, attempt: &AttemptStart<'_>) {
        let _ = attempt;
    }

    /// A request started, routed to `cluster`.
    fn request_started(&self, cluster: &str) {
        let _ = cluster;
    }

    /// A request finished (at the end of its response stream, or with a local failure) after `duration`.
    fn request_finished(&self, cluster: &str, outcome: Outcome, duration: Duration) {
        let _ = (cluster, outcome, duration);
    }

    /// An attempt ended, after `duration`: with its response headers, or, for a gRPC response whose status comes
    /// in trailers (the attempt the call kept), when the call's stream ends; or it failed. `outcome` is `None` for
    /// transport failures.
    fn attempt_finished(
        &self,
        labels: &AttemptLabels<'_>,
        outcome: Option<Outcome>,
        duration: Duration,
    ) {
        let _ = (labels, outcome, duration);
    }

    /// An attempt ended, with its message sizes when [`records_message_sizes`](Self::records_message_sizes) asked for
    /// them. This is what the request path calls; the default forwards to
    /// [`attempt_finished`](Self::attempt_finished), so implementations that need no sizes implement that one.
    fn attempt_ended(&self, labels: &AttemptLabels<'_>, end: &AttemptEnd) {
        self.attempt_finished(labels, end.outcome, end.duration);
    }

    /// Whether [`attempt_ended`](Self::attempt_ended) wants gRFC A66's message sizes (default `false`). When no
    /// metrics want them, the request path counts nothing; when one does, each gRPC attempt costs one small
    /// allocation (the counter its request body shares with it) and each data frame a few operations.
    fn records_message_sizes(&self) -> bool {
        false
    }

    /// An attempt was sent to an endpoint in `locality` of `cluster` (after the pick and the circuit breaker); it
    /// is then in progress until its [`attempt_finished`](Self::attempt_finished). Used for load reports.
    fn attempt_issued(&self, cluster: &str, locality: &Locality) {
        let _ = (cluster, locality);
    }

    /// A drop overload of `cluster` dropped a request, with the overload's category (gRFC A27).
    fn dropped(&self, cluster: &str, category: &str) {
        let _ = (cluster, category);
    }

    /// Whether every method of this implementation does nothing (default `false`; [`NoMetrics`] says `true`), so
    /// that what combines metrics can leave it out and spare every event a virtual call.
    fn records_nothing(&self) -> bool {
        false
    }

    /// Whether [`attempt_finished`](Self::attempt_finished) records anything (the default, `true`). When it does
    /// not, and no `tracing` subscriber takes the attempt's span, the request path keeps nothing of an attempt whose
    /// gRPC status is still to come in trailers.
    fn records_attempts(&self) -> bool {
        true
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

    /// A cluster's endpoints changed state: an endpoint update, a connection failing or coming back, an ejection
    /// or its end. Called off the request path, once per change of the counts (and once when the cluster gets its
    /// first endpoints).
    fn endpoints_changed(&self, cluster: &str, counts: &EndpointCounts) {
        let _ = (cluster, counts);
    }

    /// A cluster's active priority changed (gRFC A27/A56): traffic failed over from `from` to a lower priority
    /// because `from` had no usable endpoint, or returned to a higher one that healed. `None` is no usable
    /// priority at all (before the first endpoints, or when every one is down). Called off the request path.
    fn priority_changed(&self, cluster: &str, from: Option<u32>, to: Option<u32>) {
        let _ = (cluster, from, to);
    }
}

/// Splits a gRPC path, `/package.Service/Method`, into service and method; `None` for any other shape.
#[must_use]
pub fn split_grpc_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// Metrics that go nowhere: the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn records_attempts(&self) -> bool {
        false
    }

    fn records_nothing(&self) -> bool {
        true
    }
}

mod fanout;
mod message_size;
mod trace;
pub use fanout::FanOut;
pub use message_size::{GrpcMessageBytes, MessageBytesCounter, MessageBytesTotal};
pub use trace::{AttemptSpan, AttemptSpanStart, CallSpan, CallSpanStart, CallTracer, SpanEnd};

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn no_metrics_records_no_attempts_and_others_do_by_default() {
        struct Calls;
        impl Metrics for Calls {}
        assert!(!NoMetrics.records_attempts());
        assert!(Calls.records_attempts());
        // A fan-out records attempts when any of its receivers does.
        let quiet = FanOut::new(vec![Arc::new(NoMetrics), Arc::new(NoMetrics)]);
        assert!(!quiet.records_attempts());
        let listening = FanOut::new(vec![Arc::new(NoMetrics), Arc::new(Calls)]);
        assert!(listening.records_attempts());
        // Only metrics that do nothing at all say so (and may be left out).
        assert!(NoMetrics.records_nothing());
        assert!(!Calls.records_nothing());
        assert!(quiet.records_nothing());
        assert!(!listening.records_nothing());
    }

    #[test]
    fn grpc_paths_split_into_service_and_method() {
        assert_eq!(
            split_grpc_path("/helloworld.Greeter/SayHello"),
            Some(("helloworld.Greeter", "SayHello"))
        );
        for other in ["/", "", "/a", "//m", "/s/", "/a/b/c", "a/b"] {
            assert_eq!(split_grpc_path(other), None, "{other:?}");
        }
    }
}
