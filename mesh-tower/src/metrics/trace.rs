//! Spans of the request path made by a [`CallTracer`] (OpenTelemetry's SDK tracer in `mesh-tonic`) directly,
//! next to the `tracing` spans.
//!
//! Going through a `tracing` subscriber (a registry, `tracing-opentelemetry`'s layer) costs every call the same
//! whether its trace is sampled or not: span slots and extensions in the registry, each field formatted into an
//! attribute, the OpenTelemetry context attached on every poll. A tracer called here decides sampling first and
//! builds nothing else for a call it does not record, and it writes each attempt's trace context (W3C
//! `traceparent`) itself, so an unsampled call costs a span id, a header and little more.

use std::sync::Arc;
use std::time::Instant;

use http::HeaderMap;
use mesh_core::locality::Locality;

use crate::status::Code;

/// Makes a span per call. Set on [`MeshOptions`](crate::options::MeshOptions); called once per call, as it is
/// routed.
pub trait CallTracer: Send + Sync + 'static {
    /// A call started. Its parent is whatever the tracer takes as the current context (the application's span,
    /// the server call the request is made from).
    fn start_call(&self, call: &CallSpanStart<'_>) -> Box<dyn CallSpan>;
}

/// One call's span: attempts are its children. Dropped without [`end`](Self::end) (a call cut by its deadline
/// while its attempt was in flight), it ends without a status.
pub trait CallSpan: Send + Sync {
    /// An attempt of this call is about to be sent: its span, whose trace context is written into `headers`.
    fn start_attempt(
        &self,
        attempt: &AttemptSpanStart<'_>,
        headers: &mut HeaderMap,
    ) -> Box<dyn AttemptSpan>;

    /// The call ended, `at` the clock reading its `grpc.client.call.duration` ends at.
    fn end(self: Box<Self>, end: SpanEnd<'_>, at: Instant);
}

/// One attempt's span.
pub trait AttemptSpan: Send + Sync {
    /// The attempt ended, `at` the clock reading its `grpc.client.attempt.duration` ends at.
    fn end(self: Box<Self>, end: SpanEnd<'_>, at: Instant);
}

impl std::fmt::Debug for dyn AttemptSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttemptSpan")
    }
}

impl std::fmt::Debug for dyn CallSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallSpan")
    }
}

/// What a call's span is made from.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CallSpanStart<'a> {
    /// The cluster the route chose (the top-level one).
    pub cluster: &'a Arc<str>,
    /// The route's name, empty when it has none.
    pub route: &'a str,
    /// The request's path: for gRPC, `/package.Service/Method`.
    pub path: &'a str,
    /// The request's HTTP method.
    pub http_method: &'a http::Method,
    /// Whether this is a gRPC request.
    pub grpc: bool,
    /// When the call started: the clock reading its `grpc.client.call.duration` starts at (read once, for both).
    pub started: Instant,
}

/// What an attempt's span is made from.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AttemptSpanStart<'a> {
    /// The (leaf) cluster.
    pub cluster: &'a Arc<str>,
    /// The endpoint's locality.
    pub locality: &'a Locality,
    /// The endpoint's address.
    pub endpoint: &'a Arc<str>,
    /// 0 for the first attempt, then 1, 2, ...
    pub attempt: u32,
    /// The request's path.
    pub path: &'a str,
    /// The request's HTTP method.
    pub http_method: &'a http::Method,
    /// Whether this is a gRPC request.
    pub grpc: bool,
    /// When the attempt started: the clock reading its `grpc.client.attempt.duration` starts at.
    pub started: Instant,
}

/// How a call or attempt ended.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum SpanEnd<'a> {
    /// With a response: its HTTP status and, for gRPC once known, its gRPC status.
    Response {
        /// The HTTP status.
        http_status: u16,
        /// The gRPC status.
        grpc_status: Option<Code>,
    },
    /// Without one: the error (a transport failure, a timeout, a local refusal), with the gRPC status a gRPC
    /// call ends with for it (`None` for attempts and plain HTTP).
    Failed {
        /// The error, for the span's `status` attribute.
        error: &'a (dyn std::error::Error + 'static),
        /// The gRPC status the call reports.
        grpc_status: Option<Code>,
    },
}
