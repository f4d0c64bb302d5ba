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
//! The attribute values every span of a method repeats (`rpc.service`, `rpc.method`) and the `locality` string are
//! built once and shared (bounded as the metrics' labels are: the first [`DEFAULT_MAX_METHODS`] methods), and span
//! names are `'static` (gRPC method names interned process-wide, the first [`MAX_SPAN_NAMES`]): the OTLP exporter
//! copies each batch before converting it, and a shared value is copied without an allocation.
//!
//! `traceparent` is formatted in place and sent as an HPACK literal that is never indexed: each value is unique,
//! and indexing it would evict the headers every request repeats from the connection's table. Eleven values in the
//! process's life are the exception (its first, then one each time its count of values passes a power of four up
//! to about a billion): each is inserted into the table of the connection it goes out on, and later values there
//! are sent with the name's index instead of its literal, some 800 instructions a call less between client and
//! server. More would not pay: h2 compares each value with every inserted one of the same name (see
//! `name_indexable`). Which connection a request will use is not known here, so a connection none of them went
//! out on, or whose table has since evicted it (a table churned by values that differ on every request), spells
//! out the name as before. The values are cut from a per-thread block of a few kilobytes (one allocation per some
//! seventy attempts, none once earlier values are gone and the block is reused) rather than allocated one by one.
//! h2 Huffman-codes every literal it sends, so the value costs its encoding on the wire (and its decoding at the
//! server) in any case.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use bytes::BytesMut;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use mesh_core::locality::Locality;
use mesh_tower::metrics::{
    AttemptSpan, AttemptSpanStart, CallSpan, CallSpanStart, CallTracer, SpanEnd, split_grpc_path,
};
use mesh_tower::status::Code;
use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanKind, Status, TraceContextExt,
};
use opentelemetry::{Context, Key, KeyValue, Value};
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator, Span, Tracer};

use super::metrics::{DEFAULT_MAX_METHODS, LabelCache};

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const GRPC_STATUS: Key = Key::from_static_str("rpc.grpc.status_code");
const HTTP_STATUS: Key = Key::from_static_str("http.response.status_code");
const RPC_SYSTEM: Key = Key::from_static_str("rpc.system");
const RPC_SERVICE: Key = Key::from_static_str("rpc.service");
const RPC_METHOD: Key = Key::from_static_str("rpc.method");
/// How many distinct localities keep a shared `locality` value; later ones are formatted per span.
const MAX_LOCALITIES: usize = 1024;
/// How many gRPC method names are interned for span names, process-wide: each is kept (leaked) for the life of
/// the process, a few kilobytes at most; later names are owned by each span.
const MAX_SPAN_NAMES: usize = 1024;

/// The interned span names.
static SPAN_NAMES: LazyLock<LabelCache<Box<str>, &'static str>> = LazyLock::new(LabelCache::new);

/// The size of the blocks `traceparent` values are cut from.
const TRACEPARENT_BLOCK: usize = 4096;

/// `traceparent` values are counted process-wide in batches of this many cut on one thread (one atomic addition
/// per batch, none per value); see [`name_indexable`].
const TRACEPARENT_BATCH: u64 = 1024;

/// The process's count of `traceparent` values past which none is left indexable (4^15, about a billion); see
/// [`name_indexable`].
const LAST_INDEXABLE: u64 = 1 << 30;

/// How many `traceparent` values the process has cut, in whole batches (each thread's batch counted as it starts).
static TRACEPARENTS_CUT: AtomicU64 = AtomicU64::new(0);

/// This thread's `traceparent` values.
struct Traceparents {
    /// The block they are cut from.
    block: BytesMut,
    /// How many values this thread has sent: cut from the block, or written by the `tracing` spans' propagator.
    cut: u64,
}

thread_local! {
    /// This thread's `traceparent` values.
    static TRACEPARENTS: RefCell<Traceparents> = RefCell::new(Traceparents {
        block: BytesMut::new(),
        cut: 0,
    });
}

/// The request path's spans over an SDK [`Tracer`]; see the [module docs](self). Cloned (a reference count) into
/// each sampled call's span.
#[derive(Clone)]
pub(crate) struct OtelTracer {
    inner: Arc<TracerInner>,
}

/// The tracer and the attribute values shared by the spans of a method or locality.
struct TracerInner {
    tracer: Tracer,
    /// `rpc.service` and `rpc.method` by request path.
    methods: LabelCache<Box<str>, (Value, Value)>,
    /// `locality`, in gRFC A78's form.
    localities: LabelCache<Locality>,
}

impl std::fmt::Debug for OtelTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelTracer").finish_non_exhaustive()
    }
}

impl OtelTracer {
    pub(crate) fn new(tracer: Tracer) -> Self {
        Self {
            inner: Arc::new(TracerInner {
                tracer,
                methods: LabelCache::new(),
                localities: LabelCache::new(),
            }),
        }
    }

    /// `rpc.system`, `rpc.service` and `rpc.method` of a gRPC `path` (split into `rpc`), shared per method.
    fn rpc_attributes(
        &self,
        attributes: &mut Vec<KeyValue>,
        path: &str,
        rpc: Option<(&str, &str)>,
    ) {
        let Some((service, method)) = rpc else {
            return;
        };
        let (service, method) = self
            .inner
            .methods
            .get(path, DEFAULT_MAX_METHODS, || {
                let shared = |value: &str| Value::from(Arc::<str>::from(value));
                (path.into(), (shared(service), shared(method)))
            })
            .unwrap_or_else(|| {
                (
                    Value::from(service.to_owned()),
                    Value::from(method.to_owned()),
                )
            });
        attributes.push(KeyValue::new(RPC_SYSTEM, "grpc"));
        attributes.push(KeyValue::new(RPC_SERVICE, service));
        attributes.push(KeyValue::new(RPC_METHOD, method));
    }

    /// The `locality` value, shared per locality.
    fn locality(&self, locality: &Locality) -> Value {
        self.inner
            .localities
            .get(locality, MAX_LOCALITIES, || {
                (
                    locality.clone(),
                    Value::from(Arc::<str>::from(locality.to_string())),
                )
            })
            .unwrap_or_else(|| Value::from(locality.to_string()))
    }

    /// A span of `kind` under `parent`, unnamed until the sampler keeps it.
    fn start(&self, kind: SpanKind, parent: &Context) -> Span {
        SpanBuilder::from_name(Cow::Borrowed(""))
            .with_kind(kind)
            .start_with_context(&self.inner.tracer, parent)
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
                self.rpc_attributes(&mut attributes, call.path, rpc);
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

/// A span's name: `service/method` for gRPC, the HTTP method otherwise. Names are `'static` where they can be
/// (gRPC methods interned, the standard HTTP methods), so that a span, and the copy the OTLP exporter takes of
/// each batch, carry no string of their own.
fn span_name(path: &str, method: &http::Method, rpc: bool) -> Cow<'static, str> {
    if rpc {
        let name = path.trim_start_matches('/');
        SPAN_NAMES
            .get(name, MAX_SPAN_NAMES, || {
                (name.into(), &*Box::leak(Box::<str>::from(name)))
            })
            .map_or_else(|| Cow::Owned(name.to_owned()), Cow::Borrowed)
    } else {
        let name = match *method {
            http::Method::GET => "GET",
            http::Method::POST => "POST",
            http::Method::PUT => "PUT",
            http::Method::DELETE => "DELETE",
            http::Method::HEAD => "HEAD",
            http::Method::OPTIONS => "OPTIONS",
            http::Method::PATCH => "PATCH",
            http::Method::CONNECT => "CONNECT",
            http::Method::TRACE => "TRACE",
            _ => return Cow::Owned(method.as_str().to_owned()),
        };
        Cow::Borrowed(name)
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
        tracer.rpc_attributes(&mut attributes, attempt.path, rpc);
        attributes.push(KeyValue::new("attempt", i64::from(attempt.attempt)));
        attributes.push(KeyValue::new("cluster", Arc::clone(attempt.cluster)));
        attributes.push(KeyValue::new("locality", tracer.locality(attempt.locality)));
        attributes.push(KeyValue::new("endpoint", Arc::clone(attempt.endpoint)));
        let span =
            SpanBuilder::from_name(span_name(attempt.path, attempt.http_method, rpc.is_some()))
                .with_kind(SpanKind::Client)
                .with_attributes(attributes)
                .start_with_context(&tracer.inner.tracer, context);
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
/// value is formatted in place, without the propagator's strings, into a slice of this thread's block.
fn inject(context: &SpanContext, headers: &mut HeaderMap) {
    if !context.is_valid() {
        return;
    }
    let mut value = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let (_version, rest) = value.split_at_mut(3);
    let (trace, rest) = rest.split_at_mut(32);
    hex(&context.trace_id().to_bytes(), trace);
    let (span, flags) = rest.split_at_mut(17);
    hex(&context.span_id().to_bytes(), span.split_at_mut(1).1);
    hex(&[context.trace_flags().to_u8()], flags.split_at_mut(1).1);
    if let Some(value) = traceparent_value(&value) {
        headers.insert(TRACEPARENT, value);
    }
    let state = context.trace_state();
    if *state != opentelemetry::trace::TraceState::NONE
        && let Ok(value) = HeaderValue::try_from(state.header())
    {
        headers.insert(TRACESTATE, value);
    }
}

/// `value` as a header value sharing this thread's block: the block is refilled (reused when every value cut from
/// it is gone) when it has no room left. Outside a thread's life (its locals destroyed), a value of its own.
///
/// Unique per attempt, the value is marked sensitive, so that h2 sends it as an HPACK literal never indexed: it
/// does not evict the headers every request repeats from the connection's header table, and the server does not
/// store it. Except now and then ([`name_indexable`]), so that the connection's table learns the name.
fn traceparent_value(value: &[u8]) -> Option<HeaderValue> {
    let shared = TRACEPARENTS
        .try_with(|traceparents| {
            let mut traceparents = traceparents.try_borrow_mut().ok()?;
            let Traceparents { block, cut } = &mut *traceparents;
            if block.capacity() - block.len() < value.len() {
                block.reserve(TRACEPARENT_BLOCK);
            }
            block.extend_from_slice(value);
            Some((block.split().freeze(), next_indexable(cut)))
        })
        .ok()
        .flatten();
    let (mut value, indexable) = match shared {
        Some((bytes, indexable)) => (HeaderValue::from_maybe_shared(bytes).ok()?, indexable),
        None => (HeaderValue::from_bytes(value).ok()?, false),
    };
    value.set_sensitive(!indexable);
    Some(value)
}

/// Marks a `traceparent` value written elsewhere (the `tracing` spans' [`W3cPropagator`](super::W3cPropagator)) as
/// this module's are: sensitive, so that h2 sends it as an HPACK literal never indexed, but for the few values
/// that teach the connections' tables the name ([`name_indexable`]).
pub(super) fn mark_traceparent(value: &mut HeaderValue) {
    let indexable = TRACEPARENTS
        .try_with(|traceparents| {
            let mut traceparents = traceparents.try_borrow_mut().ok()?;
            Some(next_indexable(&mut traceparents.cut))
        })
        .ok()
        .flatten()
        .unwrap_or(false);
    value.set_sensitive(!indexable);
}

/// Counts a value of this thread's (`cut` of them so far): whether it is indexable.
fn next_indexable(cut: &mut u64) -> bool {
    let indexable = name_indexable(*cut);
    *cut = cut.wrapping_add(1);
    indexable
}

/// Whether this thread's `cut`-th `traceparent` value (from 0) is sent indexable rather than never indexed.
///
/// h2 never inserts a sensitive header into the connection's dynamic table, but sends one whose name is there
/// with that name's index (a literal never indexed with an indexed name: only the value goes out). So once one
/// value has gone out indexable on a connection (inserting 98 bytes, name and value), later ones skip the name's
/// literal, which the client Huffman-codes and the server decodes, validates and allocates: some 800 instructions
/// a call between the two sides (callgrind, `request_path --count mesh`). But each value inserted stays in the
/// table until it is full, and h2 compares every later value of the name with each of them, some 40 instructions
/// apiece (indexing one value in 128 filled the table with them and cost 1,280 instructions a call more than
/// never indexing). Which connection a value will use is not known here, so the insertions are bounded
/// process-wide ([`indexable_batch`]): eleven in the process's life, which even all on one connection cost it less
/// than the name. A connection none of them goes out on sends the name as a literal, as it did before.
fn name_indexable(cut: u64) -> bool {
    if !cut.is_multiple_of(TRACEPARENT_BATCH) {
        return false;
    }
    indexable_batch(TRACEPARENTS_CUT.fetch_add(TRACEPARENT_BATCH, Ordering::Relaxed))
}

/// Whether the first value of the batch that takes the process's count of values from `before` to
/// `before + TRACEPARENT_BATCH` is indexable: the process's first, then the first past each power of four from
/// 4,096 to [`LAST_INDEXABLE`]. Geometric, so that connections made later may still learn the name while the
/// count of insertions stays small.
fn indexable_batch(before: u64) -> bool {
    let after = before.saturating_add(TRACEPARENT_BATCH);
    after <= LAST_INDEXABLE && after.checked_ilog(4) > before.checked_ilog(4)
}

/// Lowercase hex of each byte of `bytes`, two digits each, into `out`.
fn hex(bytes: &[u8], out: &mut [u8]) {
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        if let Some(digits) = HEX.get(usize::from(*byte)) {
            pair.copy_from_slice(digits);
        }
    }
}

/// The two lowercase hex digits of every byte.
#[allow(clippy::indexing_slicing)] // Evaluated at compile time: `byte` < 256, its nibbles < 16.
static HEX: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0_u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = [DIGITS[byte >> 4], DIGITS[byte & 0x0f]];
        byte += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    #[test]
    fn traceparent_is_the_w3c_form_and_values_cut_from_one_block_stay_apart() {
        let context = |span: u64| {
            SpanContext::new(
                TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128),
                SpanId::from(span),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            )
        };
        let mut headers = Vec::new();
        // More than a block holds, so the block is refilled while earlier values are still alive.
        for span in 1..=200_u64 {
            let mut map = HeaderMap::new();
            inject(&context(span), &mut map);
            headers.push(map);
        }
        for (span, map) in (1..=200_u64).zip(&headers) {
            let value = map.get(TRACEPARENT).expect("traceparent");
            assert_eq!(
                value.to_str().expect("ascii"),
                format!("00-0af7651916cd43dd8448eb211c80319c-{span:016x}-01")
            );
            // Only a thread's first value of a batch may be indexable.
            assert!(value.is_sensitive() || span == 1, "value {span}");
            assert!(map.get(TRACESTATE).is_none());
        }
    }

    #[test]
    fn eleven_values_are_indexable_the_first_and_those_passing_powers_of_four() {
        let indexable = |batches: std::ops::Range<u64>| {
            batches
                .filter(|batch| indexable_batch(batch * TRACEPARENT_BATCH))
                .collect::<Vec<_>>()
        };
        // Counts 0, 4,096, 16,384, 65,536.
        assert_eq!(indexable(0..64), [0, 3, 15, 63]);
        let last = LAST_INDEXABLE / TRACEPARENT_BATCH;
        assert_eq!(indexable(0..last + 10_000).len(), 11);
        assert_eq!(indexable(last - 1..last + 10_000), [last - 1]);
        assert!(!indexable_batch(u64::MAX));
    }
}
