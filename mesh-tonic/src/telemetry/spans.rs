//! [`OtelTracer`]: the request path's call and attempt spans made with the SDK tracer directly (mesh-tower's
//! [`CallTracer`]), and each attempt's W3C Trace Context written without going through a propagator.
//!
//! Sampling is decided as each span starts, before anything else is built: a span the sampler drops is the SDK's
//! non-recording span (ids and flags only), so an unsampled call costs its span ids and its `traceparent` header
//! (the trace still goes on at the server, flagged not sampled). Names and attributes are set only on recording
//! spans. The spans are named and attributed as the `tracing` spans `mesh.request` and `mesh.attempt` were through
//! `tracing-opentelemetry` (OpenTelemetry semantic conventions for RPC: named `service/method`, `rpc.*`
//! attributes; the attempt a CLIENT span, child of the call).

use std::borrow::Cow;
use std::sync::Arc;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use mesh_tower::metrics::{
    AttemptSpan, AttemptSpanStart, CallSpan, CallSpanStart, CallTracer, SpanEnd, split_grpc_path,
};
use mesh_tower::status::Code;
use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanKind, Status, TraceContextExt,
};
use opentelemetry::{Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{Span, Tracer};

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The request path's spans over an SDK [`Tracer`]; see the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct OtelTracer {
    tracer: Tracer,
}

impl OtelTracer {
    pub(crate) fn new(tracer: Tracer) -> Self {
        Self { tracer }
    }

    /// A span of `kind` under `parent`, unnamed until the sampler keeps it.
    fn start(&self, kind: SpanKind, parent: &Context) -> Span {
        SpanBuilder::from_name(Cow::Borrowed(""))
            .with_kind(kind)
            .start_with_context(&self.tracer, parent)
    }
}

impl CallTracer for OtelTracer {
    fn start_call(&self, call: &CallSpanStart<'_>) -> Box<dyn CallSpan> {
        // The parent: the context the application (or the server call this request is made from) made current.
        let context = Context::map_current(|parent| {
            let mut span = self.start(SpanKind::Internal, parent);
            if span.is_recording() {
                let rpc = split_grpc_path(call.path).filter(|_| call.grpc);
                span.update_name(span_name(call.path, call.http_method, rpc.is_some()));
                let mut attributes = Vec::with_capacity(6);
                rpc_attributes(&mut attributes, rpc);
                attributes.push(KeyValue::new("cluster", Arc::clone(call.cluster)));
                attributes.push(KeyValue::new("route", call.route.to_owned()));
                attributes.push(KeyValue::new("grpc", call.grpc));
                span.set_attributes(attributes);
            }
            parent.with_span(span)
        });
        Box::new(OtelCall {
            tracer: self.clone(),
            context,
        })
    }
}

fn span_name(path: &str, method: &http::Method, rpc: bool) -> Cow<'static, str> {
    if rpc {
        Cow::Owned(path.trim_start_matches('/').to_owned())
    } else {
        Cow::Owned(method.as_str().to_owned())
    }
}

fn rpc_attributes(attributes: &mut Vec<KeyValue>, rpc: Option<(&str, &str)>) {
    if let Some((service, method)) = rpc {
        attributes.push(KeyValue::new("rpc.system", "grpc"));
        attributes.push(KeyValue::new("rpc.service", service.to_owned()));
        attributes.push(KeyValue::new("rpc.method", method.to_owned()));
    }
}

/// A call's span, kept in a context that is the parent of its attempts.
struct OtelCall {
    tracer: OtelTracer,
    context: Context,
}

impl CallSpan for OtelCall {
    fn start_attempt(
        &self,
        attempt: &AttemptSpanStart<'_>,
        headers: &mut HeaderMap,
    ) -> Box<dyn AttemptSpan> {
        let mut span = self.tracer.start(SpanKind::Client, &self.context);
        if span.is_recording() {
            let rpc = split_grpc_path(attempt.path).filter(|_| attempt.grpc);
            span.update_name(span_name(attempt.path, attempt.http_method, rpc.is_some()));
            let mut attributes = Vec::with_capacity(7);
            rpc_attributes(&mut attributes, rpc);
            attributes.push(KeyValue::new("attempt", i64::from(attempt.attempt)));
            attributes.push(KeyValue::new("cluster", Arc::clone(attempt.cluster)));
            attributes.push(KeyValue::new("locality", attempt.locality.to_string()));
            attributes.push(KeyValue::new("endpoint", Arc::clone(attempt.endpoint)));
            span.set_attributes(attributes);
        }
        inject(span.span_context(), headers);
        Box::new(OtelAttempt { span })
    }

    fn end(self: Box<Self>, end: SpanEnd<'_>) {
        let span = self.context.span();
        if span.is_recording() {
            let (attributes, status) = ending(end, false);
            span.set_attributes(attributes);
            if let Some(status) = status {
                span.set_status(status);
            }
        }
        span.end();
    }
}

struct OtelAttempt {
    span: Span,
}

impl AttemptSpan for OtelAttempt {
    fn end(mut self: Box<Self>, end: SpanEnd<'_>) {
        if self.span.is_recording() {
            let (attributes, status) = ending(end, true);
            self.span.set_attributes(attributes);
            if let Some(status) = status {
                self.span.set_status(status);
            }
        }
        self.span.end();
    }
}

/// The attributes and status a span ends with (semantic conventions for RPC: a gRPC status other than OK, an
/// HTTP error status or a failure is an error). An attempt's `status` reads `200/OK`; a call's is its HTTP status.
fn ending(end: SpanEnd<'_>, attempt: bool) -> (Vec<KeyValue>, Option<Status>) {
    let mut attributes = Vec::with_capacity(2);
    match end {
        SpanEnd::Response {
            http_status,
            grpc_status,
        } => {
            attributes.push(if attempt {
                KeyValue::new("status", status_label(http_status, grpc_status))
            } else {
                KeyValue::new("status", i64::from(http_status))
            });
            if let Some(code) = grpc_status {
                attributes.push(KeyValue::new(
                    "rpc.grpc.status_code",
                    i64::from(code.as_u32()),
                ));
            }
            let error = grpc_status.is_some_and(|code| code != Code::Ok) || http_status >= 400;
            (attributes, error.then(|| Status::error("")))
        }
        SpanEnd::Failed { error, grpc_status } => {
            attributes.push(KeyValue::new("status", error.to_string()));
            if let Some(code) = grpc_status {
                attributes.push(KeyValue::new(
                    "rpc.grpc.status_code",
                    i64::from(code.as_u32()),
                ));
            }
            (attributes, Some(Status::error("")))
        }
        _ => (attributes, None),
    }
}

fn status_label(http_status: u16, grpc_status: Option<Code>) -> Value {
    match grpc_status {
        Some(code) => Value::String(StringValue::from(format!("{http_status}/{code}"))),
        None => Value::I64(i64::from(http_status)),
    }
}

/// Writes `traceparent` (`00-{trace id}-{span id}-{flags}`, W3C Trace Context) and a non-empty `tracestate`: the
/// value is formatted in place, without the propagator's strings.
fn inject(context: &SpanContext, headers: &mut HeaderMap) {
    if !context.is_valid() {
        return;
    }
    let mut value = [0_u8; 55];
    let (version, rest) = value.split_at_mut(3);
    version.copy_from_slice(b"00-");
    let (trace, rest) = rest.split_at_mut(33);
    hex(&context.trace_id().to_bytes(), trace);
    let (span, rest) = rest.split_at_mut(17);
    hex(&context.span_id().to_bytes(), span);
    hex(&[context.trace_flags().to_u8()], rest);
    if let Ok(value) = HeaderValue::from_bytes(&value) {
        headers.insert(TRACEPARENT, value);
    }
    let state = context.trace_state();
    if *state != opentelemetry::trace::TraceState::NONE
        && let Ok(value) = HeaderValue::try_from(state.header())
    {
        headers.insert(TRACESTATE, value);
    }
}

/// Lowercase hex of `bytes` into `out`, then a `-` when `out` has room for it.
fn hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = out.iter_mut();
    for byte in bytes {
        for nibble in [byte >> 4, byte & 0x0f] {
            if let (Some(slot), Some(digit)) = (out.next(), DIGITS.get(usize::from(nibble))) {
                *slot = *digit;
            }
        }
    }
    if let Some(slot) = out.next() {
        *slot = b'-';
    }
}
