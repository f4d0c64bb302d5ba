//! [`OtelMetrics`]: the request path's [`Metrics`] as OpenTelemetry instruments, with gRPC's names, units and
//! labels (gRFC A66, the locality label of A78, the backend-service label of A89) plus the mesh's own counters.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use mesh_core::locality::Locality;
use mesh_tower::error::EndpointCounts;
use mesh_tower::metrics::{
    AttemptEnd, AttemptLabels, AttemptStart, CallLabels, Metrics, Outcome, split_grpc_path,
};
use mesh_tower::status::Code;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, ObservableGauge};
use opentelemetry::{Key, KeyValue, Value};

use super::method::MethodMetrics;
use super::series::{LabelHash, MethodSeries, SeriesMap};

/// How many distinct method names are recorded as they are before new ones are recorded as `other` (gRFC A66:
/// bounded cardinality).
pub const DEFAULT_MAX_METHODS: usize = 200;

/// gRFC A66's latency buckets, in seconds.
pub(super) const LATENCY_BUCKETS: [f64; 41] = [
    0.0, 0.00001, 0.00005, 0.0001, 0.0003, 0.0006, 0.0008, 0.001, 0.002, 0.003, 0.004, 0.005,
    0.006, 0.008, 0.01, 0.013, 0.016, 0.02, 0.025, 0.03, 0.04, 0.05, 0.065, 0.08, 0.1, 0.13, 0.16,
    0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0,
];

const METHOD: Key = Key::from_static_str("grpc.method");
const STATUS: Key = Key::from_static_str("grpc.status");
const TARGET: Key = Key::from_static_str("grpc.target");
const LOCALITY: Key = Key::from_static_str("grpc.lb.locality");
const BACKEND_SERVICE: Key = Key::from_static_str("grpc.lb.backend_service");
const HTTP_STATUS: Key = Key::from_static_str("http.response.status_code");
const EJECTED: Key = Key::from_static_str("mesh.outlier.ejected");
const FAULT: Key = Key::from_static_str("mesh.fault");
const ENDPOINT_STATE: Key = Key::from_static_str("mesh.endpoint.state");
const PRIORITY_FROM: Key = Key::from_static_str("mesh.priority.from");
const PRIORITY_TO: Key = Key::from_static_str("mesh.priority.to");
pub(super) const OTHER: &str = "other";

/// gRFC A66's size buckets, in bytes (0, 1 KiB, 2 KiB, 4 KiB, 16 KiB, ... 4 GiB).
pub(super) const SIZE_BUCKETS: [f64; 14] = [
    0.0,
    1024.0,
    2048.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
    1_073_741_824.0,
    4_294_967_296.0,
];

struct Instruments {
    attempt_started: Counter<u64>,
    attempt_duration: Histogram<f64>,
    attempt_sent: Histogram<u64>,
    attempt_received: Histogram<u64>,
    call_duration: Histogram<f64>,
    retries: Counter<u64>,
    retry_budget_exhausted: Counter<u64>,
    circuit_breaker_rejections: Counter<u64>,
    outlier_ejections: Counter<u64>,
    faults: Counter<u64>,
    endpoints: Gauge<u64>,
    priority_changes: Counter<u64>,
    /// Observes nothing: its callback, run as each collection starts, records the values threads keep
    /// (`pending.rs`).
    _flush: ObservableGauge<u64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        let latency = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build()
        };
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit(unit)
                .with_description(description)
                .build()
        };
        let size = |name: &'static str, description: &'static str| {
            meter
                .u64_histogram(name)
                .with_unit("By")
                .with_description(description)
                .with_boundaries(SIZE_BUCKETS.to_vec())
                .build()
        };
        Self {
            _flush: super::pending::flush_gauge(meter),
            attempt_sent: size(
                "grpc.client.attempt.sent_total_compressed_message_size",
                "Total bytes (compressed but not encrypted) sent across all request messages (metadata excluded) \
                 per RPC attempt; does not include grpc or transport framing bytes.",
            ),
            attempt_received: size(
                "grpc.client.attempt.rcvd_total_compressed_message_size",
                "Total bytes (compressed but not encrypted) received across all response messages (metadata \
                 excluded) per RPC attempt; does not include grpc or transport framing bytes.",
            ),
            attempt_started: counter(
                "grpc.client.attempt.started",
                "{attempt}",
                "The total number of RPC attempts started, including those that have not completed.",
            ),
            attempt_duration: latency(
                "grpc.client.attempt.duration",
                "End-to-end time taken to complete an RPC attempt including the time it takes to pick an \
                 endpoint (to the response headers).",
            ),
            call_duration: latency(
                "grpc.client.call.duration",
                "Time the mesh took to complete an RPC, from the application's call to its status.",
            ),
            retries: counter(
                "mesh.client.retries",
                "{retry}",
                "Retries made (the first attempt is not one).",
            ),
            retry_budget_exhausted: counter(
                "mesh.client.retry_budget.exhausted",
                "{call}",
                "Retries the cluster's retry budget refused.",
            ),
            circuit_breaker_rejections: counter(
                "mesh.client.circuit_breaker.rejections",
                "{attempt}",
                "Attempts the cluster's circuit breaker refused.",
            ),
            outlier_ejections: counter(
                "mesh.client.outlier_detection.ejections",
                "{ejection}",
                "Endpoints ejected (mesh.outlier.ejected=true) or returned (false) by outlier detection.",
            ),
            faults: counter(
                "mesh.client.faults",
                "{fault}",
                "Faults injected by the fault filter (mesh.fault=delay|abort).",
            ),
            endpoints: meter
                .u64_gauge("mesh.client.cluster.endpoints")
                .with_unit("{endpoint}")
                .with_description(
                    "A cluster's endpoints by state (mesh.endpoint.state=usable|ejected|unreachable|unhealthy), \
                     as of its last change.",
                )
                .build(),
            priority_changes: counter(
                "mesh.client.cluster.priority_changes",
                "{change}",
                "Changes of a cluster's active priority (failover and return, gRFC A56), from mesh.priority.from \
                 to mesh.priority.to (none: no usable priority).",
            ),
        }
    }
}

/// A channel's methods.
type Methods = SeriesMap<Option<Box<str>>, Arc<MethodMetrics>>;

/// A method's metrics as a thread found them last: the channel's map (kept, so that the same pointer is that map),
/// the request path and its metrics.
type LastMethod = (Arc<Methods>, Box<str>, Arc<MethodMetrics>);

thread_local! {
    /// The method metrics this thread found last.
    static LAST_METHOD: RefCell<Option<LastMethod>> = const { RefCell::new(None) };
}

/// Label values built once and shared, so recording allocates no strings: one atomic load and a hash lookup per
/// label (with the short [`LabelHash`], not SipHash: what network input can add is bounded by the limits); a miss
/// takes a lock once per new value.
pub(super) struct LabelCache<K, V = Value> {
    values: ArcSwap<HashMap<K, V, BuildHasherDefault<LabelHash>>>,
    adding: Mutex<()>,
}

impl<K: Eq + Hash + Clone, V: Clone> LabelCache<K, V> {
    pub(super) fn new() -> Self {
        Self {
            values: ArcSwap::from_pointee(HashMap::default()),
            adding: Mutex::new(()),
        }
    }

    /// The value of `key` if it is known.
    pub(super) fn find<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.values.load().get(key).cloned()
    }

    /// The value of `key`, made by `make` the first time; `None` when the cache holds `limit` values already.
    pub(super) fn get<Q>(&self, key: &Q, limit: usize, make: impl FnOnce() -> (K, V)) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        {
            let values = self.values.load();
            if let Some(value) = values.get(key) {
                return Some(value.clone());
            }
            // Full: no lock for values that will not be added (methods past the limit, on every call).
            if values.len() >= limit {
                return None;
            }
        }
        let _adding = self.adding.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.values.load_full();
        if let Some(value) = current.get(key) {
            return Some(value.clone());
        }
        if current.len() >= limit {
            return None;
        }
        let (key, value) = make();
        let mut next = HashMap::clone(&current);
        next.insert(key, value.clone());
        self.values.store(Arc::new(next));
        Some(value)
    }
}

struct Shared {
    instruments: Instruments,
    methods: LabelCache<Box<str>>,
    clusters: LabelCache<Box<str>>,
    localities: LabelCache<Locality>,
    max_methods: usize,
}

/// The request path's [`Metrics`] over an OpenTelemetry [`Meter`], named as gRPC names them (gRFC A66):
///
/// | instrument | unit | labels |
/// | --- | --- | --- |
/// | `grpc.client.attempt.started` | `{attempt}` | `grpc.method`, `grpc.target` |
/// | `grpc.client.attempt.duration` | `s` | `grpc.method`, `grpc.target`, `grpc.status`, `grpc.lb.locality` (A78), `grpc.lb.backend_service` (A89: the leaf cluster) |
/// | `grpc.client.attempt.sent_total_compressed_message_size` | `By` | as `grpc.client.attempt.duration` |
/// | `grpc.client.attempt.rcvd_total_compressed_message_size` | `By` | as `grpc.client.attempt.duration` |
/// | `grpc.client.call.duration` | `s` | `grpc.method`, `grpc.target`, `grpc.status` |
/// | `mesh.client.retries` | `{retry}` | `grpc.target`, `grpc.lb.backend_service` |
/// | `mesh.client.retry_budget.exhausted` | `{call}` | `grpc.target`, `grpc.lb.backend_service` |
/// | `mesh.client.circuit_breaker.rejections` | `{attempt}` | `grpc.target`, `grpc.lb.backend_service` |
/// | `mesh.client.outlier_detection.ejections` | `{ejection}` | `grpc.target`, `grpc.lb.backend_service`, `mesh.outlier.ejected` |
/// | `mesh.client.faults` | `{fault}` | `grpc.target`, `grpc.lb.backend_service`, `mesh.fault` |
/// | `mesh.client.cluster.endpoints` (gauge) | `{endpoint}` | `grpc.target`, `grpc.lb.backend_service`, `mesh.endpoint.state` (`usable`, `ejected`, `unreachable`, `unhealthy`) |
/// | `mesh.client.cluster.priority_changes` | `{change}` | `grpc.target`, `grpc.lb.backend_service`, `mesh.priority.from`, `mesh.priority.to` (a priority number, or `none`) |
///
/// Durations use A66's latency buckets. `grpc.status` is the status name (`OK`, `UNAVAILABLE`, ...); an attempt
/// that failed in transport counts as `UNAVAILABLE`. Requests that are not gRPC carry `http.response.status_code`
/// instead and `grpc.method` = `other`.
///
/// Cardinality stays bounded (A66): a channel cannot tell generated methods from generic ones, so the first
/// [`DEFAULT_MAX_METHODS`] distinct gRPC methods are recorded as they are and later ones as `other`; paths that are
/// not `/service/method` are `other`. `grpc.target` is the channel's canonical target, set per channel by
/// [`Metrics::for_target`].
///
/// An attempt's duration ends with its status: at the response headers, or, when the status comes in trailers,
/// at the end of the call's stream. Attempts that end before an endpoint is picked (no endpoint, or refused by the
/// circuit breaker) are counted in `grpc.client.attempt.started` but have no duration.
///
/// The message sizes (gRFC A66, size buckets 0, 1 KiB, 2 KiB, 4 KiB, 16 KiB, ... 4 GiB) are the payload bytes of
/// the attempt's gRPC messages as they cross the wire: compressed when the message is, without the 5-byte message
/// prefixes, headers or HTTP/2 framing. They are recorded for gRPC attempts only; an attempt that ends at its
/// response headers (a trailers-only status, a transport failure, a retry) received 0 bytes, and sent what the
/// connection had sent of its request by then.
///
/// A call finds its method's series once, as it starts ([`Metrics::for_call`] hands the request path that method's
/// metrics, shared by its calls), and records its attempts and its end on bound instruments: no attribute set is
/// built or hashed per call, and nothing is allocated once a method's series exist (see `series.rs`).
///
/// Not here yet: a target filter. Server metrics: `ServerTelemetry`; xDS client metrics:
/// [`OtelXdsMetrics`](super::OtelXdsMetrics).
#[derive(Clone)]
pub struct OtelMetrics {
    channel: ChannelLabels,
    /// This channel's metrics per request path (`None`: `other`), each with its bound series.
    methods: Arc<Methods>,
}

/// What a channel's series are recorded with: the instruments and label values shared by every channel, and this
/// channel's `grpc.target`.
#[derive(Clone)]
pub(super) struct ChannelLabels {
    shared: Arc<Shared>,
    pub(super) target: KeyValue,
}

impl OtelMetrics {
    /// Instruments created from `meter`, for channels whose target is not known (`grpc.target` = `other`) until
    /// [`Metrics::for_target`] gives one.
    #[must_use]
    pub fn new(meter: &Meter) -> Self {
        Self {
            channel: ChannelLabels {
                shared: Arc::new(Shared {
                    instruments: Instruments::new(meter),
                    methods: LabelCache::new(),
                    clusters: LabelCache::new(),
                    localities: LabelCache::new(),
                    max_methods: DEFAULT_MAX_METHODS,
                }),
                target: KeyValue::new(TARGET, OTHER),
            },
            methods: Arc::new(SeriesMap::new()),
        }
    }

    /// This channel's metrics of `method`, bound the first time. A known gRPC path is found by its hash alone; its
    /// shape is checked only when it is new (or past the method limit, then it is `other`).
    fn method(&self, method: &str, grpc: bool) -> Option<Arc<MethodMetrics>> {
        // The method this thread found last, most often the one asked for again.
        let last = LAST_METHOD
            .try_with(|last| {
                let last = last.try_borrow().ok()?;
                let (methods, path, found) = last.as_ref()?;
                (grpc && Arc::ptr_eq(methods, &self.methods) && **path == *method)
                    .then(|| Arc::clone(found))
            })
            .ok()
            .flatten();
        if last.is_some() {
            return last;
        }
        let found = self.find_method(method, grpc)?;
        if grpc {
            let _ = LAST_METHOD.try_with(|last| {
                if let Ok(mut last) = last.try_borrow_mut() {
                    *last = Some((Arc::clone(&self.methods), method.into(), Arc::clone(&found)));
                }
            });
        }
        Some(found)
    }

    fn find_method(&self, method: &str, grpc: bool) -> Option<Arc<MethodMetrics>> {
        if grpc {
            let hash = LabelHash::of(method);
            let is = |key: &Option<Box<str>>| key.as_deref() == Some(method);
            if let Some(found) = self.methods.get(hash, is, Arc::clone) {
                return Some(found);
            }
            if let Some(value) = split_grpc_path(method)
                .and_then(|_| self.channel.method_value(method.trim_start_matches('/')))
            {
                let make = || (Some(method.into()), self.bind_method(value));
                return self.methods.with(hash, is, usize::MAX, make, Arc::clone);
            }
        }
        let make = || (None, self.bind_method(Value::from(OTHER)));
        self.methods
            .with(0, Option::is_none, usize::MAX, make, Arc::clone)
    }

    fn bind_method(&self, method: Value) -> Arc<MethodMetrics> {
        let labels = [KeyValue::new(METHOD, method), self.channel.target.clone()];
        let series = MethodSeries::new(
            self.channel
                .shared
                .instruments
                .attempt_started
                .bind(&labels),
            labels,
        );
        Arc::new(MethodMetrics::new(self.channel.clone(), series))
    }
}

impl ChannelLabels {
    /// The `grpc.method` value of the gRPC method `name`, `None` past the limit (then it is `other`).
    fn method_value(&self, name: &str) -> Option<Value> {
        self.shared.methods.get(name, self.shared.max_methods, || {
            (name.into(), Value::from(Arc::<str>::from(name)))
        })
    }

    pub(super) fn cluster(&self, cluster: &str) -> KeyValue {
        let value = self
            .shared
            .clusters
            .get(cluster, usize::MAX, || {
                (cluster.into(), Value::from(Arc::<str>::from(cluster)))
            })
            .unwrap_or(Value::from(OTHER));
        KeyValue::new(BACKEND_SERVICE, value)
    }

    pub(super) fn locality(&self, locality: &Locality) -> KeyValue {
        let value = self
            .shared
            .localities
            .get(locality, usize::MAX, || {
                (
                    locality.clone(),
                    Value::from(Arc::<str>::from(locality.to_string())),
                )
            })
            .unwrap_or(Value::from(OTHER));
        KeyValue::new(LOCALITY, value)
    }

    /// `grpc.client.call.duration`.
    pub(super) fn call_duration(&self) -> &Histogram<f64> {
        &self.shared.instruments.call_duration
    }

    /// `grpc.client.attempt.duration` and the attempt's message sizes, sent and received.
    pub(super) fn attempt_instruments(
        &self,
    ) -> (&Histogram<f64>, &Histogram<u64>, &Histogram<u64>) {
        let instruments = &self.shared.instruments;
        (
            &instruments.attempt_duration,
            &instruments.attempt_sent,
            &instruments.attempt_received,
        )
    }

    fn counted(&self, counter: &Counter<u64>, cluster: &str, extra: Option<KeyValue>) {
        let labels = [self.target.clone(), self.cluster(cluster)];
        match extra {
            Some(extra) => {
                let [target, cluster] = labels;
                counter.add(1, &[target, cluster, extra]);
            }
            None => counter.add(1, &labels),
        }
    }

    pub(super) fn retry(&self, cluster: &str) {
        self.counted(&self.shared.instruments.retries, cluster, None);
    }

    pub(super) fn retry_budget_exhausted(&self, cluster: &str) {
        self.counted(
            &self.shared.instruments.retry_budget_exhausted,
            cluster,
            None,
        );
    }

    pub(super) fn circuit_breaker_rejected(&self, cluster: &str) {
        self.counted(
            &self.shared.instruments.circuit_breaker_rejections,
            cluster,
            None,
        );
    }

    pub(super) fn ejection(&self, cluster: &str, ejected: bool) {
        self.counted(
            &self.shared.instruments.outlier_ejections,
            cluster,
            Some(KeyValue::new(EJECTED, ejected)),
        );
    }

    pub(super) fn fault_injected(&self, cluster: &str, abort: bool) {
        let kind = if abort { "abort" } else { "delay" };
        self.counted(
            &self.shared.instruments.faults,
            cluster,
            Some(KeyValue::new(FAULT, kind)),
        );
    }

    pub(super) fn endpoints_changed(&self, cluster: &str, counts: &EndpointCounts) {
        let cluster = self.cluster(cluster);
        let states = [
            ("usable", counts.usable()),
            ("ejected", counts.ejected),
            ("unreachable", counts.unreachable),
            ("unhealthy", counts.unhealthy),
        ];
        for (state, count) in states {
            self.shared.instruments.endpoints.record(
                u64::try_from(count).unwrap_or(u64::MAX),
                &[
                    self.target.clone(),
                    cluster.clone(),
                    KeyValue::new(ENDPOINT_STATE, state),
                ],
            );
        }
    }

    pub(super) fn priority_changed(&self, cluster: &str, from: Option<u32>, to: Option<u32>) {
        let label = |priority: Option<u32>| -> Value {
            priority.map_or(Value::from("none"), |p| {
                Value::from(i64::from(p).to_string())
            })
        };
        self.shared.instruments.priority_changes.add(
            1,
            &[
                self.target.clone(),
                self.cluster(cluster),
                KeyValue::new(PRIORITY_FROM, label(from)),
                KeyValue::new(PRIORITY_TO, label(to)),
            ],
        );
    }
}

/// The outcome as a number that tells status labels apart: the gRPC code, or 1000 + the HTTP status.
pub(super) fn status_key(outcome: Option<Outcome>, grpc: bool) -> u32 {
    match outcome {
        Some(outcome) if grpc => outcome
            .grpc_status
            .unwrap_or_else(|| Code::from_http_status(outcome.http_status))
            .as_u32(),
        Some(outcome) => 1000 + u32::from(outcome.http_status),
        None if grpc => Code::Unavailable.as_u32(),
        None => 1000 + 503,
    }
}

/// The outcome as a status label: `grpc.status` for gRPC, `http.response.status_code` otherwise.
pub(super) fn status(outcome: Option<Outcome>, grpc: bool) -> KeyValue {
    match outcome {
        Some(outcome) if grpc => KeyValue::new(
            STATUS,
            outcome
                .grpc_status
                .unwrap_or_else(|| Code::from_http_status(outcome.http_status))
                .name(),
        ),
        Some(outcome) => KeyValue::new(HTTP_STATUS, i64::from(outcome.http_status)),
        // gRPC reports a transport failure as UNAVAILABLE.
        None if grpc => KeyValue::new(STATUS, Code::Unavailable.name()),
        None => KeyValue::new(HTTP_STATUS, 503_i64),
    }
}

/// The channel's own events (retries, circuit breaker, ejections, faults, endpoints, priorities), recorded on
/// `self.channel` by every [`Metrics`] of a channel.
macro_rules! channel_events {
    () => {
        fn retry(&self, cluster: &str) {
            self.channel.retry(cluster);
        }

        fn retry_budget_exhausted(&self, cluster: &str) {
            self.channel.retry_budget_exhausted(cluster);
        }

        fn circuit_breaker_rejected(&self, cluster: &str) {
            self.channel.circuit_breaker_rejected(cluster);
        }

        fn ejection(&self, cluster: &str, _endpoint: &str, ejected: bool) {
            self.channel.ejection(cluster, ejected);
        }

        fn fault_injected(&self, cluster: &str, abort: bool) {
            self.channel.fault_injected(cluster, abort);
        }

        fn endpoints_changed(&self, cluster: &str, counts: &EndpointCounts) {
            self.channel.endpoints_changed(cluster, counts);
        }

        fn priority_changed(&self, cluster: &str, from: Option<u32>, to: Option<u32>) {
            self.channel.priority_changed(cluster, from, to);
        }
    };
}
pub(super) use channel_events;

impl Metrics for OtelMetrics {
    fn for_target(&self, target: &str) -> Option<Arc<dyn Metrics>> {
        Some(Arc::new(Self {
            channel: ChannelLabels {
                shared: Arc::clone(&self.channel.shared),
                target: KeyValue::new(TARGET, target.to_owned()),
            },
            methods: Arc::new(SeriesMap::new()),
        }))
    }

    fn for_call(&self, call: &CallLabels<'_>) -> Option<Arc<dyn Metrics>> {
        self.method(call.method, call.grpc)
            .map(|method| method as Arc<dyn Metrics>)
    }

    fn call_finished(&self, call: &CallLabels<'_>, outcome: Outcome, duration: Duration) {
        if let Some(method) = self.method(call.method, call.grpc) {
            method.call_finished(call, outcome, duration);
        }
    }

    fn attempt_started(&self, attempt: &AttemptStart<'_>) {
        if let Some(method) = self.method(attempt.method, attempt.grpc) {
            method.attempt_started(attempt);
        }
    }

    fn attempt_finished(
        &self,
        labels: &AttemptLabels<'_>,
        outcome: Option<Outcome>,
        duration: Duration,
    ) {
        self.attempt_ended(labels, &AttemptEnd::new(outcome, duration));
    }

    fn attempt_ended(&self, labels: &AttemptLabels<'_>, end: &AttemptEnd) {
        if let Some(method) = self.method(labels.method, labels.grpc) {
            method.attempt_ended(labels, end);
        }
    }

    fn records_message_sizes(&self) -> bool {
        true
    }

    channel_events!();
}

impl std::fmt::Debug for OtelMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelMetrics")
            .field("target", &self.channel.target.value)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_beyond_the_limit_are_other() {
        let cache: LabelCache<Box<str>> = LabelCache::new();
        let make = |name: &str| {
            let name = name.to_owned();
            move || (name.as_str().into(), Value::from(name.clone()))
        };
        assert!(cache.get("a/b", 2, make("a/b")).is_some());
        assert!(cache.get("a/c", 2, make("a/c")).is_some());
        assert!(cache.get("a/d", 2, make("a/d")).is_none(), "full");
        assert_eq!(
            cache.get("a/b", 2, make("a/b")),
            Some(Value::from("a/b".to_owned())),
            "known values stay"
        );
    }
}
