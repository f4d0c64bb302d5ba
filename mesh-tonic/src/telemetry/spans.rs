//! [`OtelTracer`]: the request path's call and attempt spans, recorded as [`SpanRecord`]s for the mesh's own batch
//! processor and exporter (`otlp_spans`), and each attempt's W3C Trace Context written without going through a
//! propagator.
//!
//! The SDK builds every span as a `SpanData` (attributes as a `Vec` of `KeyValue`, a copy of the instrumentation
//! scope, event and link lists) and hands it through its processor's channel to the exporter, which converts it
//! again. A request-path span has a fixed shape, so it is kept in typed fields with shared strings, queued as it
//! ends, and written straight into protobuf when its batch is exported. The parent is the OpenTelemetry context the
//! application (or the server call the request is made from) made current, as for an SDK span.
//!
//! Sampling is decided as the call starts, before anything else is built, as the SDK's samplers decide it (so the
//! decisions agree with the spans the SDK makes, the server's included): parent-based (the parent's sampled flag)
//! or not, and at the root the trace id's low 63 bits against the ratio (`TraceIdRatioBased`). A call that is not
//! sampled (or that no collector receives) is ids only: its trace id and flags, and a span id per attempt for its
//! `traceparent` (the trace still goes on at the server, flagged not sampled).
//!
//! OpenTelemetry semantic conventions for RPC: spans named `service/method` (the HTTP method for other requests),
//! `rpc.system`, `rpc.service`, `rpc.method`, then `rpc.grpc.status_code` (and `http.response.status_code` when
//! there is no gRPC status or the HTTP status is not 200) as they end; the call INTERNAL with `cluster` (and
//! `route` when named), each attempt a CLIENT child of the call with `attempt`, `cluster`, `locality` and
//! `endpoint`. An error status for a gRPC status other than OK, an HTTP error status, or a failure, whose message
//! is the status's description. Each thread keeps the boxes of the spans that ended on it (a few dozen of each
//! kind, emptied: no record, batcher or trace state) for the next spans started there, so that spans allocate
//! nothing per call once traffic flows. The strings every span of a method or route repeats are built once and shared
//! (bounded as the metrics' labels are: the first [`DEFAULT_MAX_METHODS`] methods, the first [`MAX_SHARED`]
//! routes; later ones are each span's own); an attempt's locality is written out as its batch is encoded.
//!
//! `traceparent` is formatted in place and marked sensitive, so that h2 sends it as an HPACK literal that is never
//! indexed: each value is unique, and storing it would evict the headers every request repeats from the
//! connection's table (mesh-tower's connection lets the first one through indexable, so that the table holds the
//! name and later values refer to it by index). The values are cut from a per-thread block of a few kilobytes (one
//! allocation per some seventy attempts, none once earlier values are gone and the block is reused) rather than
//! allocated one by one. h2 Huffman-codes every literal it sends, so the value costs its encoding on the wire (and
//! its decoding at the server) in any case.

use std::cell::RefCell;
use std::sync::Arc;
use std::thread::LocalKey;
use std::time::Instant;

use bytes::BytesMut;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use mesh_tower::metrics::{
    AttemptSpan, AttemptSpanStart, CallSpan, CallSpanStart, CallTracer, SpanEnd, split_grpc_path,
};
use mesh_tower::status::Code;
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};

use super::config::Sampling;
use super::metrics::{DEFAULT_MAX_METHODS, LabelCache};
use super::otlp_spans::{
    RecordKind, RecordStatus, RpcMethod, SpanBatcher, SpanName, SpanRecord, clock,
};
use super::sampling::Sampler;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// How many distinct route names keep a shared string; later ones are copied per span.
const MAX_SHARED: usize = 1024;

/// The size of the blocks `traceparent` values are cut from.
const TRACEPARENT_BLOCK: usize = 4096;

thread_local! {
    /// The gRPC method this thread last named a span after, by request path.
    static LAST_METHOD: RefCell<Option<(Box<str>, Arc<RpcMethod>)>> = const { RefCell::new(None) };
    /// The block this thread cuts `traceparent` values from.
    static TRACEPARENTS: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// The request path's spans; see the [module docs](self). Cloned (a reference count) into each recorded call.
#[derive(Clone)]
pub(crate) struct OtelTracer {
    inner: Arc<TracerInner>,
}

/// The sampler, the batch processor and the strings shared by the spans of a method or route.
struct TracerInner {
    sampler: Sampler,
    /// `None`: no collector; spans are ids only.
    batcher: Option<SpanBatcher>,
    /// Name, `rpc.service` and `rpc.method` by request path.
    methods: LabelCache<Box<str>, Arc<RpcMethod>>,
    routes: LabelCache<Box<str>, Arc<str>>,
}

impl std::fmt::Debug for OtelTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelTracer").finish_non_exhaustive()
    }
}

impl OtelTracer {
    pub(crate) fn new(sampling: Sampling, batcher: Option<SpanBatcher>) -> Self {
        Self {
            inner: Arc::new(TracerInner {
                sampler: Sampler::new(sampling),
                batcher,
                methods: LabelCache::new(),
                routes: LabelCache::new(),
            }),
        }
    }

    /// The span name (and for gRPC the attributes) of a request to `path` with `method`.
    fn name(&self, path: &str, method: &http::Method, grpc: bool) -> SpanName {
        if grpc {
            // The method this thread named a span after last (a method's name and attributes depend on its path
            // alone), then a known method, found without splitting its path again.
            let last = LAST_METHOD
                .try_with(|last| {
                    let last = last.try_borrow().ok()?;
                    let (last_path, rpc) = last.as_ref()?;
                    (**last_path == *path).then(|| Arc::clone(rpc))
                })
                .ok()
                .flatten();
            if let Some(rpc) = last {
                return SpanName::Rpc(rpc);
            }
            if let Some(rpc) = self.inner.methods.find(path) {
                let _ = LAST_METHOD.try_with(|last| {
                    if let Ok(mut last) = last.try_borrow_mut() {
                        *last = Some((path.into(), Arc::clone(&rpc)));
                    }
                });
                return SpanName::Rpc(rpc);
            }
            if let Some((service, rpc_method)) = split_grpc_path(path) {
                let make = || Arc::new(RpcMethod::new(service, rpc_method));
                let rpc = self
                    .inner
                    .methods
                    .get(path, DEFAULT_MAX_METHODS, || (path.into(), make()))
                    .unwrap_or_else(make);
                return SpanName::Rpc(rpc);
            }
        }
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
            _ => return SpanName::Owned(method.as_str().into()),
        };
        SpanName::Http(name)
    }

    /// The `route` value, shared per route name; `None` for an unnamed route.
    fn route(&self, route: &str) -> Option<Arc<str>> {
        if route.is_empty() {
            return None;
        }
        let make = || Arc::<str>::from(route);
        Some(
            self.inner
                .routes
                .get(route, MAX_SHARED, || (route.into(), make()))
                .unwrap_or_else(make),
        )
    }
}

impl CallTracer for OtelTracer {
    fn start_call(&self, call: &CallSpanStart<'_>) -> Box<dyn CallSpan> {
        let parent = Context::map_current(|context| {
            let span = context.span();
            let parent = span.span_context();
            parent.is_valid().then(|| parent.clone())
        });
        let ids = RandomIdGenerator::default();
        let trace_id = parent
            .as_ref()
            .map_or_else(|| ids.new_trace_id(), SpanContext::trace_id);
        let sampled = self.inner.sampler.sampled(parent.as_ref(), trace_id);
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let (parent_span_id, parent_is_remote, trace_state) =
            parent.map_or((SpanId::INVALID, false, None), |parent| {
                let state = parent.trace_state();
                (
                    parent.span_id(),
                    parent.is_remote(),
                    (*state != TraceState::NONE).then(|| Arc::from(state.header())),
                )
            });
        let Some(batcher) = self.inner.batcher.as_ref().filter(|_| sampled) else {
            return reuse::<IdsOnlyCall>(
                &SPARE_IDS_ONLY,
                IdsOnlyCall {
                    trace_id,
                    flags,
                    trace_state,
                },
            );
        };
        let record = SpanRecord {
            trace_id: trace_id.to_bytes(),
            span_id: ids.new_span_id().to_bytes(),
            parent_span_id: parent_span_id.to_bytes(),
            parent_is_remote,
            trace_flags: flags.to_u8(),
            trace_state,
            kind: RecordKind::Internal,
            name: self.name(call.path, call.http_method, call.grpc),
            start: clock::unix_nanos(call.started),
            end: 0,
            cluster: Arc::clone(call.cluster),
            route: self.route(call.route),
            attempt: None,
            grpc_status: None,
            http_status: None,
            status: RecordStatus::Unset,
        };
        reuse::<RecordedCall>(
            &SPARE_CALLS,
            RecordedCall {
                recording: Some(Recording {
                    batcher: batcher.clone(),
                    record,
                    started: call.started,
                }),
            },
        )
    }
}

/// The span of a call that is not sampled, or that no collector receives: its trace context only. Its attempts
/// are not recorded either (a child of an unsampled span under the parent-based sampler; the same trace id under
/// the ratio sampler).
struct IdsOnlyCall {
    trace_id: TraceId,
    flags: TraceFlags,
    /// The parent's `tracestate`.
    trace_state: Option<Arc<str>>,
}

/// The most boxes of each kind of span a thread keeps for reuse.
const SPARE_BOXES: usize = 64;

thread_local! {
    // Boxes of ended spans, for the next ones started on this thread, so that spans allocate nothing per call once
    // traffic flows (the boxes themselves are what is kept). A kept box holds no batcher, trace state or record.
    #[allow(clippy::vec_box)]
    static SPARE_IDS_ONLY: RefCell<Vec<Box<IdsOnlyCall>>> = const { RefCell::new(Vec::new()) };
    #[allow(clippy::vec_box)]
    static SPARE_CALLS: RefCell<Vec<Box<RecordedCall>>> = const { RefCell::new(Vec::new()) };
    #[allow(clippy::vec_box)]
    static SPARE_ATTEMPTS: RefCell<Vec<Box<OtelAttempt>>> = const { RefCell::new(Vec::new()) };
}

/// `value` in a box from `spare` when it has one, or a new box.
fn reuse<T: 'static>(spare: &'static LocalKey<RefCell<Vec<Box<T>>>>, value: T) -> Box<T> {
    let kept = spare
        .try_with(|spare| spare.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten();
    match kept {
        Some(mut kept) => {
            *kept = value;
            kept
        }
        None => Box::new(value),
    }
}

/// Keeps `emptied` (a span whose contents were taken) in `spare` unless it is full.
fn keep<T: 'static>(spare: &'static LocalKey<RefCell<Vec<Box<T>>>>, emptied: Box<T>) {
    let _ = spare.try_with(|spare| {
        if let Ok(mut spare) = spare.try_borrow_mut()
            && spare.len() < SPARE_BOXES
        {
            spare.push(emptied);
        }
    });
}

/// The span of an attempt that is not recorded: nothing to end (and nothing allocated for it).
struct IdsOnly;

impl AttemptSpan for IdsOnly {
    fn end(self: Box<Self>, _end: SpanEnd<'_>, _at: Instant) {}
}

impl CallSpan for IdsOnlyCall {
    fn start_attempt(
        &self,
        _attempt: &AttemptSpanStart<'_>,
        headers: &mut HeaderMap,
    ) -> Box<dyn AttemptSpan> {
        inject_attempt(
            self.trace_id.to_bytes(),
            self.flags.to_u8(),
            self.trace_state.as_deref(),
            headers,
        );
        Box::new(IdsOnly)
    }

    fn end(mut self: Box<Self>, _end: SpanEnd<'_>, _at: Instant) {
        self.trace_state = None;
        keep(&SPARE_IDS_ONLY, self);
    }
}

/// Writes the W3C context of a new attempt of trace `trace_id` on `headers`; returns the attempt's span id.
fn inject_attempt(
    trace_id: [u8; 16],
    flags: u8,
    trace_state: Option<&str>,
    headers: &mut HeaderMap,
) -> [u8; 8] {
    let span_id = RandomIdGenerator::default().new_span_id().to_bytes();
    inject(trace_id, span_id, flags, trace_state, headers);
    span_id
}

/// A recorded span's record, and the batcher it is queued in as it ends.
struct Recording {
    batcher: SpanBatcher,
    record: SpanRecord,
    /// The clock reading the record's start is (see `otlp_spans::clock`).
    started: Instant,
}

/// A recorded call's span, exported as it ends (its record holds the parent's `tracestate`, which its attempts
/// send on). Its recording is `None` only once it ended (its box kept for reuse).
struct RecordedCall {
    recording: Option<Recording>,
}

impl CallSpan for RecordedCall {
    fn start_attempt(
        &self,
        attempt: &AttemptSpanStart<'_>,
        headers: &mut HeaderMap,
    ) -> Box<dyn AttemptSpan> {
        let Some(Recording {
            batcher,
            record: parent,
            started: call_started,
        }) = &self.recording
        else {
            return Box::new(IdsOnly);
        };
        let span_id = inject_attempt(
            parent.trace_id,
            parent.trace_flags,
            parent.trace_state.as_deref(),
            headers,
        );
        // The call is recorded, so its attempts are (parent-based: its child; ratio: its trace id).
        let record = SpanRecord {
            trace_id: parent.trace_id,
            span_id,
            parent_span_id: parent.span_id,
            parent_is_remote: false,
            trace_flags: parent.trace_flags,
            trace_state: parent.trace_state.clone(),
            kind: RecordKind::Client,
            // The attempt's request is the call's.
            name: parent.name.clone(),
            // From the call's start: within the call whatever the clock's anchor did meanwhile.
            start: clock::after(parent.start, *call_started, attempt.started),
            end: 0,
            cluster: Arc::clone(attempt.cluster),
            route: None,
            attempt: Some((
                attempt.attempt,
                attempt.locality.clone(),
                Arc::clone(attempt.endpoint),
            )),
            grpc_status: None,
            http_status: None,
            status: RecordStatus::Unset,
        };
        reuse::<OtelAttempt>(
            &SPARE_ATTEMPTS,
            OtelAttempt {
                recording: Some(Recording {
                    batcher: batcher.clone(),
                    record,
                    started: attempt.started,
                }),
            },
        )
    }

    fn end(mut self: Box<Self>, end: SpanEnd<'_>, at: Instant) {
        if let Some(recording) = self.recording.take() {
            recording.finish(end, at);
        }
        keep(&SPARE_CALLS, self);
    }
}

/// A recorded attempt's span; as [`RecordedCall`]'s, its recording is `None` only once it ended.
struct OtelAttempt {
    recording: Option<Recording>,
}

impl AttemptSpan for OtelAttempt {
    fn end(mut self: Box<Self>, end: SpanEnd<'_>, at: Instant) {
        if let Some(recording) = self.recording.take() {
            recording.finish(end, at);
        }
        keep(&SPARE_ATTEMPTS, self);
    }
}

impl Recording {
    /// Ends the record `at` that reading and queues it, with the attributes and status of `end` (semantic conventions for RPC):
    /// `rpc.grpc.status_code` once a gRPC status is known, `http.response.status_code` when there is none or the
    /// HTTP status is not 200; an error status for a gRPC status other than OK, an HTTP error status, or a failure
    /// (with its message).
    fn finish(self, end: SpanEnd<'_>, at: Instant) {
        let Self {
            batcher,
            mut record,
            started,
        } = self;
        record.end = clock::after(record.start, started, at);
        match end {
            SpanEnd::Response {
                http_status,
                grpc_status,
            } => {
                record.grpc_status = grpc_status.map(Code::as_u32);
                record.http_status =
                    (grpc_status.is_none() || http_status != 200).then_some(http_status);
                if grpc_status.is_some_and(|code| code != Code::Ok) || http_status >= 400 {
                    record.status = RecordStatus::Error(Box::default());
                }
            }
            SpanEnd::Failed { error, grpc_status } => {
                record.grpc_status = grpc_status.map(Code::as_u32);
                record.status = RecordStatus::Error(error.to_string().into());
            }
            _ => {}
        }
        batcher.push_record(record);
    }
}

/// Writes `traceparent` (`00-{trace id}-{span id}-{flags}`, W3C Trace Context) and the parent's `tracestate` when
/// it has one, for a valid context (neither id all zeros): the value is formatted in place, without the
/// propagator's strings, into a slice of this thread's block.
fn inject(
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
    state: Option<&str>,
    headers: &mut HeaderMap,
) {
    if trace_id == [0; 16] || span_id == [0; 8] {
        return;
    }
    let mut value = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let (_version, rest) = value.split_at_mut(3);
    let (trace, rest) = rest.split_at_mut(32);
    hex(&trace_id, trace);
    let (span, rest) = rest.split_at_mut(17);
    hex(&span_id, span.split_at_mut(1).1);
    hex(&[flags], rest.split_at_mut(1).1);
    if let Some(mut value) = traceparent_value(&value) {
        // Unique per attempt: sent as a literal never indexed (HPACK), so it does not evict the headers every
        // request repeats from the connection's header table, and the server does not store it.
        value.set_sensitive(true);
        headers.insert(TRACEPARENT, value);
    }
    if let Some(state) = state
        && let Ok(value) = HeaderValue::from_str(state)
    {
        headers.insert(TRACESTATE, value);
    }
}

/// `value` as a header value sharing this thread's block: the block is refilled (reused when every value cut from
/// it is gone) when it has no room left. Outside a thread's life (its locals destroyed), a value of its own.
fn traceparent_value(value: &[u8]) -> Option<HeaderValue> {
    let shared = TRACEPARENTS
        .try_with(|block| {
            let mut block = block.try_borrow_mut().ok()?;
            if block.capacity() - block.len() < value.len() {
                block.reserve(TRACEPARENT_BLOCK);
            }
            block.extend_from_slice(value);
            Some(block.split().freeze())
        })
        .ok()
        .flatten();
    match shared {
        Some(bytes) => HeaderValue::from_maybe_shared(bytes).ok(),
        None => HeaderValue::from_bytes(value).ok(),
    }
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
        let trace = TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128).to_bytes();
        let mut headers = Vec::new();
        // More than a block holds, so the block is refilled while earlier values are still alive.
        for span in 1..=200_u64 {
            let mut map = HeaderMap::new();
            inject(
                trace,
                SpanId::from(span).to_bytes(),
                TraceFlags::SAMPLED.to_u8(),
                None,
                &mut map,
            );
            headers.push(map);
        }
        for (span, map) in (1..=200_u64).zip(&headers) {
            let value = map.get(TRACEPARENT).expect("traceparent");
            assert_eq!(
                value.to_str().expect("ascii"),
                format!("00-0af7651916cd43dd8448eb211c80319c-{span:016x}-01")
            );
            assert!(value.is_sensitive());
            assert!(map.get(TRACESTATE).is_none());
        }
    }

    #[test]
    fn tracestate_goes_with_traceparent_and_an_invalid_context_writes_nothing() {
        let state =
            TraceState::from_key_value([("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")])
                .expect("valid trace state")
                .header();
        let state = Some(state.as_str());
        let mut map = HeaderMap::new();
        inject([0xab; 16], [0xcd; 8], 0, state, &mut map);
        assert_eq!(
            map.get(TRACEPARENT).and_then(|v| v.to_str().ok()),
            Some("00-abababababababababababababababab-cdcdcdcdcdcdcdcd-00")
        );
        assert_eq!(
            map.get(TRACESTATE).and_then(|v| v.to_str().ok()),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        for (trace, span) in [([0; 16], [0xcd; 8]), ([0xab; 16], [0; 8])] {
            let mut map = HeaderMap::new();
            inject(trace, span, 1, state, &mut map);
            assert!(map.is_empty(), "{map:?}");
        }
    }
}
