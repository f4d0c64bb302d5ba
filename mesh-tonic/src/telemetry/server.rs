//! [`ServerTelemetry`]: the xDS-enabled server's side of telemetry. Per call: gRFC A66's server metrics and a
//! SERVER span (OpenTelemetry semantic conventions for RPC) whose parent is the caller's W3C `traceparent`, so one
//! trace follows a call from the client's attempt into the server and on into the handler's own spans.
//!
//! | instrument | unit | labels |
//! | --- | --- | --- |
//! | `grpc.server.call.started` | `{call}` | `grpc.method` |
//! | `grpc.server.call.duration` | `s` | `grpc.method`, `grpc.status` |
//! | `grpc.server.call.sent_total_compressed_message_size` | `By` | `grpc.method`, `grpc.status` |
//! | `grpc.server.call.rcvd_total_compressed_message_size` | `By` | `grpc.method`, `grpc.status` |
//!
//! A call starts when its request headers arrive and ends when its status goes out (trailers, or a trailers-only
//! response), or when the client goes away (CANCELLED). Calls the server refuses before the application (routing
//! per gRFC A36, RBAC per A41) are counted too, with their status. `grpc.method` is bounded as on the client
//! ([`DEFAULT_MAX_METHODS`](super::DEFAULT_MAX_METHODS) distinct methods, then `other`): the server serves any
//! tower service and cannot list its registered methods.
//!
//! While the application's service is polled, the span's OpenTelemetry context is the current one, so spans the
//! handler opens (with `tracing` and the telemetry's layer, or the OpenTelemetry API) are its children.
//!
//! The sizes are gRFC A66's: the payload bytes of the gRPC messages (compressed when the message is; 5-byte message
//! prefixes, metadata and HTTP/2 framing excluded), counted as the response body is sent and as the application
//! reads the request body ([`RequestBody`](crate::server::RequestBody)); a call refused before the application
//! received 0 bytes.
//!
//! Each method's series are bound once (the counter as the method is first seen, the histograms per status as it
//! first occurs), and their values are kept on the thread that recorded them and handed to the SDK a few dozen at
//! a time and as each collection starts, as the client's are (see `pending.rs`).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use http::HeaderMap;
use mesh_core::peer::ConnectionInfo;
use mesh_tower::metrics::{
    GrpcMessageBytes, MessageBytesCounter, MessageBytesTotal, split_grpc_path,
};
use mesh_tower::status::Code;
use opentelemetry::metrics::{BoundCounter, Counter, Histogram, Meter, ObservableGauge};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, Key, KeyValue, Value};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::Tracer;

use super::metrics::{LATENCY_BUCKETS, LabelCache, OTHER, SIZE_BUCKETS};
use super::pending::{SeriesValues, StartedCount, keep};
use super::series::{AttemptSeries, SeriesMap};

const METHOD: Key = Key::from_static_str("grpc.method");
const STATUS: Key = Key::from_static_str("grpc.status");

/// The server's instruments, tracer and label cache; one per [`Telemetry`](super::Telemetry), shared by its
/// servers.
pub(crate) struct ServerTelemetry {
    started: Counter<u64>,
    duration: Histogram<f64>,
    sent: Histogram<u64>,
    received: Histogram<u64>,
    /// Each method's bound series, up to `max_methods`; the others are `other`'s (bound once a call needs it: a
    /// bound counter is exported from then on, even at 0).
    methods: LabelCache<Box<str>, Arc<ServerMethod>>,
    other: OnceLock<Arc<ServerMethod>>,
    max_methods: usize,
    /// Records the values threads keep as each collection starts (`pending.rs`).
    _flush: ObservableGauge<u64>,
    tracer: Tracer,
    propagator: TraceContextPropagator,
}

impl ServerTelemetry {
    pub(super) fn new(meter: &Meter, tracer: Tracer) -> Self {
        let started = meter
            .u64_counter("grpc.server.call.started")
            .with_unit("{call}")
            .with_description(
                "The total number of RPCs started, including those that have not completed.",
            )
            .build();
        let duration = meter
            .f64_histogram("grpc.server.call.duration")
            .with_unit("s")
            .with_description(
                "End-to-end time taken to complete a call from the server transport's perspective.",
            )
            .with_boundaries(LATENCY_BUCKETS.to_vec())
            .build();
        let size = |name: &'static str, description: &'static str| {
            meter
                .u64_histogram(name)
                .with_unit("By")
                .with_description(description)
                .with_boundaries(SIZE_BUCKETS.to_vec())
                .build()
        };
        let sent = size(
            "grpc.server.call.sent_total_compressed_message_size",
            "Total bytes (compressed but not encrypted) sent across all response messages (metadata excluded) per \
             RPC; does not include gRPC or transport framing bytes.",
        );
        let received = size(
            "grpc.server.call.rcvd_total_compressed_message_size",
            "Total bytes (compressed but not encrypted) received across all request messages (metadata excluded) \
             per RPC; does not include gRPC or transport framing bytes.",
        );
        Self {
            started,
            duration,
            sent,
            received,
            other: OnceLock::new(),
            _flush: super::pending::flush_gauge(meter),
            methods: LabelCache::new(),
            max_methods: super::DEFAULT_MAX_METHODS,
            tracer,
            propagator: TraceContextPropagator::new(),
        }
    }

    /// Starts the record of a call on `path` with request `headers` from `connection`.
    pub(crate) fn start(
        self: &Arc<Self>,
        path: &str,
        headers: &HeaderMap,
        connection: &ConnectionInfo,
    ) -> ServerCall {
        let rpc = split_grpc_path(path);
        let method = rpc
            .and_then(|_| {
                let name = path.trim_start_matches('/');
                self.methods.get(name, self.max_methods, || {
                    let value = Value::from(Arc::<str>::from(name));
                    (
                        name.into(),
                        Arc::new(ServerMethod::new(value, &self.started)),
                    )
                })
            })
            .unwrap_or_else(|| {
                let other = self
                    .other
                    .get_or_init(|| Arc::new(ServerMethod::new(Value::from(OTHER), &self.started)));
                Arc::clone(other)
            });
        method.started();
        let parent = self.propagator.extract(&HeaderExtractor(headers));
        // Semantic conventions for RPC: the span is named `service/method`; an unknown shape keeps the path.
        let mut attributes = vec![
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new(
                "network.peer.address",
                connection.remote_addr.ip().to_string(),
            ),
            KeyValue::new(
                "network.peer.port",
                i64::from(connection.remote_addr.port()),
            ),
        ];
        if let Some((service, name)) = rpc {
            attributes.push(KeyValue::new("rpc.service", service.to_owned()));
            attributes.push(KeyValue::new("rpc.method", name.to_owned()));
        }
        let span = self
            .tracer
            .span_builder(path.trim_start_matches('/').to_owned())
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        ServerCall {
            telemetry: Arc::clone(self),
            method,
            started: Instant::now(),
            context: parent.with_span(span),
            sent: GrpcMessageBytes::default(),
            received: None,
            finished: false,
        }
    }
}

/// One method's bound series: its `grpc.server.call.started` count, and its call series by status (made as
/// statuses first occur).
struct ServerMethod {
    label: KeyValue,
    started: BoundCounter<u64>,
    calls: Arc<SeriesMap<u32, AttemptSeries>>,
}

impl ServerMethod {
    fn new(method: Value, started: &Counter<u64>) -> Self {
        let label = KeyValue::new(METHOD, method);
        Self {
            started: started.bind(std::slice::from_ref(&label)),
            label,
            calls: Arc::new(SeriesMap::new()),
        }
    }

    /// Counts a call started, on this thread first (see `pending.rs`).
    fn started(&self) {
        let calls = &self.calls;
        keep(
            |pending| &mut pending.server_started,
            |kept| Arc::ptr_eq(&kept.map, calls),
            StartedCount::push,
            || Some(StartedCount::new(Arc::clone(calls), self.started.clone())),
        );
    }

    /// Records a call's end with `status`, on this thread first (see `pending.rs`).
    fn finished(
        &self,
        telemetry: &ServerTelemetry,
        status: Code,
        duration: f64,
        sent: u64,
        received: u64,
    ) {
        let key = status.as_u32();
        let calls = &self.calls;
        let fresh = || {
            let series = calls.of_status(key, || {
                let labels = [self.label.clone(), KeyValue::new(STATUS, status.name())];
                AttemptSeries {
                    duration: telemetry.duration.bind(&labels),
                    sent: telemetry.sent.bind(&labels),
                    received: telemetry.received.bind(&labels),
                }
            })?;
            Some(SeriesValues::new(Arc::clone(calls), key, series))
        };
        keep(
            |pending| &mut pending.server_call,
            |kept| kept.key == key && Arc::ptr_eq(&kept.map, calls),
            |kept| kept.push((duration, Some(sent), Some(received))),
            fresh,
        );
    }
}

impl std::fmt::Debug for ServerTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTelemetry").finish_non_exhaustive()
    }
}

/// One call being recorded; ends with [`finish`](Self::finish), or as CANCELLED when dropped before.
pub(crate) struct ServerCall {
    telemetry: Arc<ServerTelemetry>,
    method: Arc<ServerMethod>,
    started: Instant,
    context: Context,
    sent: GrpcMessageBytes,
    /// The request's message bytes, counted by the request body the application reads.
    received: Option<MessageBytesTotal>,
    finished: bool,
}

impl ServerCall {
    /// The OpenTelemetry context holding the call's span (to make it current while the handler runs).
    pub(crate) fn context(&self) -> &Context {
        &self.context
    }

    /// The counter for the request body's message bytes (one per call).
    pub(crate) fn count_received(&mut self) -> MessageBytesCounter {
        let (counter, total) = MessageBytesCounter::new();
        self.received = Some(total);
        counter
    }

    /// Counts response body bytes.
    pub(crate) fn sent(&mut self, data: &[u8]) {
        self.sent.feed(data);
    }

    /// Records the call's end with `status`.
    pub(crate) fn finish(&mut self, status: Code) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.method.finished(
            &self.telemetry,
            status,
            self.started.elapsed().as_secs_f64(),
            self.sent.total(),
            self.received.as_ref().map_or(0, MessageBytesTotal::get),
        );
        let span = self.context.span();
        span.set_attribute(KeyValue::new(
            "rpc.grpc.status_code",
            i64::from(status.as_u32()),
        ));
        // Semantic conventions for gRPC: on a server, these codes are errors; the others are the client's problem.
        if matches!(
            status,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        ) {
            span.set_status(Status::error(status.name()));
        }
        span.end();
    }
}

impl Drop for ServerCall {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
