//! [`OtelTracer`]: the request path's call and attempt spans made with the SDK tracer directly (mesh-tower's
//! [`CallTracer`]), and each attempt's W3C Trace Context written without going through a propagator.
//!
//! Sampling is decided as the call's span starts, before anything else is built: a call the sampler drops is the
//! SDK's non-recording span, and its attempts are span ids made here, so an unsampled call costs its ids and its
//! `traceparent` header (the trace still goes on at the server, flagged not sampled). Names and attributes are
//! built only for recorded spans. OpenTelemetry semantic conventions for RPC: spans named `service/method` (the
//! HTTP method for other requests), `rpc.system`, `rpc.service`, `rpc.method`, then `rpc.grpc.status_code` (and
//! `http.response.status_code` when there is no gRPC status or the HTTP status is not 200) as they end; the call
//! INTERNAL with `cluster` (and `route` when named), each attempt a CLIENT child of the call with `attempt`,
//! `cluster`, `locality` and `endpoint`. An error status for a gRPC status other than OK, an HTTP error status, or
//! a failure, whose message is the status's description.
//!
//! `traceparent` is formatted in place and sent as an HPACK literal that is never indexed: each value is unique,
//! and indexing it would evict the headers every request repeats from the connection's table.

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
use opentelemetry::{Context, Key, KeyValue};
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator, Span, Tracer};

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const GRPC_STATUS: Key = Key::from_static_str("rpc.grpc.status_code");
const HTTP_STATUS: Key = Key::from_static_str("http.response.status_code");

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
        let call = Context::map_current(|parent| {
            let mut span = self.start(SpanKind::Internal, parent);
            if !span.is_recording() {
                return OtelCall::Unsampled {
                    context: span.span_context().clone(),
                    ids: RandomIdGenerator::default(),
                };
            }
            {
                let rpc = split_grpc_path(call.path).filter(|_| call.grpc);
                span.update_name(span_name(call.path, call.http_method, rpc.is_some()));
                let mut attributes = Vec::with_capacity(7);
                rpc_attributes(&mut attributes, rpc);
                attributes.push(KeyValue::new("cluster", Arc::clone(call.cluster)));
                if !call.route.is_empty() {
                    attributes.push(KeyValue::new("route", call.route.to_owned()));
                }
                span.set_attributes(attributes);
            }
            OtelCall::Recorded {
                tracer: self.clone(),
                context: parent.with_span(span),
            }
        });
        Box::new(call)
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

/// A call's span.
enum OtelCall {
    /// Recorded: the span, in the context its attempts are made under.
    Recorded {
        tracer: OtelTracer,
        context: Context,
    },
    /// Not sampled: its trace context only. Its attempts are not sampled either (a child of an unsampled span
    /// under the parent-based sampler; the same trace id under the ratio sampler), so they are ids only, made
    /// without the SDK.
    Unsampled {
        context: SpanContext,
        ids: RandomIdGenerator,
    },
}

/// The span of an attempt that is not sampled: nothing to end (and nothing allocated for it).
struct Unsampled;

impl AttemptSpan for Unsampled {
    fn end(self: Box<Self>, _end: SpanEnd<'_>) {}
}

impl CallSpan for OtelCall {
    fn start_attempt(
        &self,
        attempt: &AttemptSpanStart<'_>,
        headers: &mut HeaderMap,
    ) -> Box<dyn AttemptSpan> {
        let (tracer, context) = match self {
            Self::Recorded { tracer, context } => (tracer, context),
            Self::Unsampled { context, ids } => {
                inject(
                    &SpanContext::new(
                        context.trace_id(),
                        ids.new_span_id(),
                        context.trace_flags(),
                        false,
                        context.trace_state().clone(),
                    ),
                    headers,
                );
                return Box::new(Unsampled);
            }
        };
        // The call is sampled, so its attempts are (parent-based: its child; ratio: its trace id): named and
        // attributed as they start, in one go.
        let rpc = split_grpc_path(attempt.path).filter(|_| attempt.grpc);
        // Two more for the end's.
        let mut attributes = Vec::with_capacity(9);
        rpc_attributes(&mut attributes, rpc);
        attributes.push(KeyValue::new("attempt", i64::from(attempt.attempt)));
        attributes.push(KeyValue::new("cluster", Arc::clone(attempt.cluster)));
        attributes.push(KeyValue::new("locality", attempt.locality.to_string()));
        attributes.push(KeyValue::new("endpoint", Arc::clone(attempt.endpoint)));
        let span =
            SpanBuilder::from_name(span_name(attempt.path, attempt.http_method, rpc.is_some()))
                .with_kind(SpanKind::Client)
                .with_attributes(attributes)
                .start_with_context(&tracer.tracer, context);
        inject(span.span_context(), headers);
        Box::new(OtelAttempt { span })
    }

    fn end(self: Box<Self>, end: SpanEnd<'_>) {
        let Self::Recorded { context, .. } = *self else {
            return;
        };
        let span = context.span();
        if span.is_recording() {
            let (attributes, status) = ending(end);
            for attribute in attributes.into_iter().flatten() {
                span.set_attribute(attribute);
            }
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
            let (attributes, status) = ending(end);
            for attribute in attributes.into_iter().flatten() {
                self.span.set_attribute(attribute);
            }
            if let Some(status) = status {
                self.span.set_status(status);
            }
        }
        self.span.end();
    }
}

/// The attributes and status a span ends with (semantic conventions for RPC): `rpc.grpc.status_code` once a gRPC
/// status is known, `http.response.status_code` when there is none or the HTTP status is not 200; an error status
/// for a gRPC status other than OK, an HTTP error status, or a failure (with its message).
fn ending(end: SpanEnd<'_>) -> ([Option<KeyValue>; 2], Option<Status>) {
    let http = |status: u16| KeyValue::new(HTTP_STATUS, i64::from(status));
    let grpc = |code: Code| KeyValue::new(GRPC_STATUS, i64::from(code.as_u32()));
    match end {
        SpanEnd::Response {
            http_status,
            grpc_status,
        } => {
            let error = grpc_status.is_some_and(|code| code != Code::Ok) || http_status >= 400;
            let attributes = match grpc_status {
                Some(code) => [
                    Some(grpc(code)),
                    (http_status != 200).then(|| http(http_status)),
                ],
                None => [Some(http(http_status)), None],
            };
            (attributes, error.then(|| Status::error("")))
        }
        SpanEnd::Failed { error, grpc_status } => (
            [grpc_status.map(grpc), None],
            Some(Status::error(error.to_string())),
        ),
        _ => ([None, None], None),
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
    if let Ok(mut value) = HeaderValue::from_bytes(&value) {
        // Unique per attempt: sent as a literal never indexed (HPACK), so it does not evict the headers every
        // request repeats from the connection's header table, and the server does not store it.
        value.set_sensitive(true);
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
