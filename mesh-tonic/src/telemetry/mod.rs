//! OpenTelemetry for the mesh's channels: metrics with gRPC's names over OTLP, a span per call and per attempt,
//! and W3C Trace Context on every attempt.
//!
//! A [`Telemetry`] owns an OTLP/gRPC metrics pipeline (opentelemetry-otlp over tonic) and trace pipeline (the SDK's
//! batch span processor feeding the mesh's own OTLP span exporter, `otlp_spans`, which encodes each batch straight
//! into protobuf and sends it over a tonic channel) for one
//! [`TelemetryConfig`] (collector endpoint, `service.name` and resource attributes, sampling), and, when asked, a
//! Prometheus scrape page of the same metrics ([`Telemetry::prometheus_page`], served by the admin endpoint at
//! `GET /metrics`; enable it with [`MeshBuilder::prometheus`](crate::MeshBuilder::prometheus), with or without a
//! collector). Hand it to the mesh
//! with [`MeshBuilder::telemetry`](crate::MeshBuilder::telemetry), or let the builder make one
//! ([`MeshBuilder::with_otlp`](crate::MeshBuilder::with_otlp),
//! [`MeshBuilder::telemetry_from_env`](crate::MeshBuilder::telemetry_from_env)); then:
//!
//! - every channel records [`OtelMetrics`] (gRFC A66 `grpc.client.attempt.*` and `grpc.client.call.duration` with
//!   `grpc.method`, `grpc.target`, `grpc.status`, A78's `grpc.lb.locality`, A89's `grpc.lb.backend_service`, and
//!   the mesh's retry, retry-budget, circuit-breaker, outlier and fault counters), and the xDS client records
//!   [`OtelXdsMetrics`] (A78: valid and invalid resource updates, server failures, connectivity, and
//!   the resources by cache state);
//! - every call and every attempt has a span, made with this telemetry's tracer as the request path runs (no
//!   `tracing` subscriber needed): the call's (INTERNAL) is a child of the current OpenTelemetry context (the
//!   application's span, or the server call the request is made from), each attempt's (CLIENT) a child of the
//!   call's, named and attributed by the OpenTelemetry semantic conventions for RPC. Sampling is decided as a
//!   span starts, and a span not sampled is built no further (see `spans.rs`);
//! - every attempt carries `traceparent` (and `tracestate`) from its span, sampled or not;
//! - every xDS-enabled server of the mesh ([`Mesh::server`](crate::Mesh::server)) records gRFC A66's
//!   `grpc.server.call.*` metrics and a SERVER span per call whose parent is the caller's `traceparent`, exported
//!   through this telemetry's own tracer (no `tracing` subscriber needed); see `ServerTelemetry` in `server.rs`;
//! - the application's own `tracing` spans become OpenTelemetry spans once its subscriber has
//!   [`Telemetry::tracing_layer`] (or [`Telemetry::init_tracing`] installs one), and a call made inside one of
//!   them is its child. [`W3cPropagator`] writes the context of `tracing` spans instead, for channels that use
//!   their own `tracing-opentelemetry` setup rather than this telemetry's spans.
//!
//! ```no_run
//! use mesh_tonic::Mesh;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mesh = Mesh::builder()
//!     .bootstrap_from_env()
//!     .with_otlp("http://127.0.0.1:4317")
//!     .service_name("frontend")
//!     .build()
//!     .await?;
//! if let Some(telemetry) = mesh.telemetry() {
//!     telemetry.init_tracing()?;
//! }
//! // ... calls ...
//! if let Some(telemetry) = mesh.telemetry() {
//!     telemetry.shutdown().await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The OTLP exporters read the `OTEL_EXPORTER_OTLP_*` variables: the span exporter (ours, see `otlp_spans`) the
//! generic and `TRACES_` headers, timeout and insecure ones, ignoring compression; the metrics exporter
//! (opentelemetry-otlp, built without TLS or compression) its own. The endpoint given here takes precedence over
//! their endpoint variables. Spans are batched by the mesh's own processor (the SDK's spans, the application's and
//! the xDS-enabled server's, and the request path's own records, which never become SDK spans), with the SDK's
//! settings and its `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` and `OTEL_BSP_SCHEDULE_DELAY`
//! variables; the queue's size can also be given in code ([`TelemetryConfig::max_queued_spans`]): spans beyond it
//! are dropped, never waited for. Batches are exported by a task on the runtime the telemetry started in.
//!
//! What it costs (the `request_path` bench's `--count` mode under callgrind, instructions per call of the whole
//! loopback stack, client and server, ~81k without telemetry): about 6.9k with 1% of traces sampled, of which some
//! 4.2k are `traceparent` on the wire (h2 Huffman-codes every literal it sends and the server decodes it: ~1.8k for
//! the value alone; the name goes as an index into the connection's table, see `spans`), ~1.1k the metrics and the
//! rest the sampling decision, the ids and the header; about 12.3k with every trace sampled, the call's two spans
//! adding their recording (ids, shared strings, the queue), their encoding and the export call (26.5k when the
//! spans were SDK spans through the SDK's batch processor; 59k with opentelemetry-otlp's exporter as well). What
//! instructions do not show is threads contending for the same cache lines: the request path's histogram values
//! are therefore kept per thread and recorded a few dozen at a time (`pending.rs`; in perf samples the SDK's
//! metric updates went from 2.2% to 0.8% of the CPU), the span queue is sharded per thread, and spans take their
//! times from the duration metrics' clock readings.

mod config;
mod method;
mod metrics;
mod otlp_spans;
mod pending;
mod prometheus;
mod propagation;
mod sampling;
mod series;
mod server;
mod spans;
mod xds;

use std::sync::Arc;

use mesh_tower::MeshOptions;
use mesh_tower::metrics::{FanOut, Metrics, TracePropagator};
use mesh_xds_client::client::XdsClientMetrics;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{MetricExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, Tracer};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

pub use config::{DEFAULT_METRICS_INTERVAL, DEFAULT_SERVICE_NAME, Sampling, TelemetryConfig};
pub use metrics::{DEFAULT_MAX_METHODS, OtelMetrics};
use otlp_spans::{BatchSettings, ExporterSettings, OtlpSpanExporter, SpanBatcher};
pub use prometheus::{PROMETHEUS_CONTENT_TYPE, PROMETHEUS_PATH};
pub use propagation::W3cPropagator;
pub(crate) use server::{ServerCall, ServerTelemetry};
use spans::OtelTracer;
pub use xds::OtelXdsMetrics;

/// The instrumentation scope of the mesh's meters and tracer.
const SCOPE: &str = "mesh-tonic";

/// Telemetry could not be set up or flushed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// An `OTEL_*` variable holds a value that is not understood.
    #[error("{name}: {problem}")]
    Variable {
        /// The variable.
        name: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
    /// An OTLP exporter could not be built (a malformed endpoint, ...).
    #[error("OTLP {signal} exporter to {endpoint:?}: {source}")]
    Exporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// The endpoint given.
        endpoint: String,
        /// The exporter's error.
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// Exporting (on flush or shutdown) failed.
    #[error("OTLP {signal} {action}: {source}")]
    Export {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// `flush` or `shutdown`.
        action: &'static str,
        /// The SDK's error.
        source: opentelemetry_sdk::error::OTelSdkError,
    },
    /// Telemetry must start inside a tokio runtime (the exporters are tonic clients).
    #[error("telemetry must be started inside a tokio runtime")]
    NoRuntime,
    /// [`Telemetry::init_tracing`] found a global `tracing` subscriber already set.
    #[error(
        "a global tracing subscriber is already set; add Telemetry::tracing_layer to it instead"
    )]
    SubscriberAlreadySet,
}

struct Inner {
    config: TelemetryConfig,
    tracer_provider: SdkTracerProvider,
    /// The span processor, when spans go to a collector.
    spans: Option<SpanBatcher>,
    meter_provider: SdkMeterProvider,
    metrics: OtelMetrics,
    xds_metrics: OtelXdsMetrics,
    server: Arc<ServerTelemetry>,
    prometheus: Option<prometheus::PrometheusReader>,
}

/// The mesh's OpenTelemetry pipelines; see the [module docs](self). Cheap to clone; clones share the pipelines.
/// Call [`shutdown`](Self::shutdown) before the process exits: spans and metrics are exported in batches, and a
/// `tracing` subscriber holding the tracer keeps the pipelines alive, so the last batch goes out only then.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl Telemetry {
    /// Starts OTLP/gRPC exporters to `config.endpoint` (they connect lazily: an unreachable collector costs the
    /// request path nothing; exports fail and are retried at the next interval), and the Prometheus reader when
    /// `config.prometheus` is set.
    ///
    /// # Errors
    /// [`TelemetryError::NoRuntime`] outside a tokio runtime, [`TelemetryError::Exporter`] when an exporter
    /// cannot be built.
    pub fn start(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let _runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| TelemetryError::NoRuntime)?
            .enter();
        let resource = Resource::builder_empty()
            .with_service_name(
                config
                    .service_name
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned()),
            )
            .with_attributes(
                config
                    .resource_attributes
                    .iter()
                    .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
            )
            .build();
        let mut tracer_provider = SdkTracerProvider::builder()
            .with_sampler(sampler(config.sampling))
            .with_resource(resource.clone());
        let mut meter_provider = SdkMeterProvider::builder().with_resource(resource);
        let mut spans = None;
        if let Some(endpoint) = &config.endpoint {
            let exporter_error = |signal| {
                move |source| TelemetryError::Exporter {
                    signal,
                    endpoint: endpoint.clone(),
                    source,
                }
            };
            // Our own OTLP span exporter and batch processor (otlp_spans), which the request path's spans go
            // to directly.
            let exporter = OtlpSpanExporter::new(&ExporterSettings::from_env(endpoint))
                .map_err(exporter_error("traces"))?;
            let batcher = SpanBatcher::start(
                exporter,
                BatchSettings::from_env(config.max_queued_spans),
                scope(),
            );
            tracer_provider = tracer_provider.with_span_processor(batcher.clone());
            spans = Some(batcher);
            let metrics = MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(exporter_error("metrics"))?;
            meter_provider = meter_provider.with_reader(
                PeriodicReader::builder(metrics)
                    .with_interval(config.metrics_interval)
                    .build(),
            );
        }
        let prometheus = config.prometheus.then(prometheus::PrometheusReader::new);
        if let Some(reader) = &prometheus {
            meter_provider = meter_provider.with_reader(reader.clone());
        }
        let tracer_provider = tracer_provider.build();
        let meter_provider = meter_provider.build();
        let meter = meter_provider.meter_with_scope(scope());
        let server = Arc::new(ServerTelemetry::new(
            &meter,
            tracer_provider.tracer_with_scope(scope()),
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                server,
                metrics: OtelMetrics::new(&meter),
                xds_metrics: OtelXdsMetrics::new(&meter),
                tracer_provider,
                spans,
                meter_provider,
                prometheus,
            }),
        })
    }

    /// The current metrics as a Prometheus scrape page (text exposition format 0.0.4,
    /// [`PROMETHEUS_CONTENT_TYPE`]); `None` unless the configuration asked for it
    /// (the `prometheus` field of [`TelemetryConfig`]) or after [`shutdown`](Self::shutdown). See `prometheus.rs` for the naming.
    #[must_use]
    pub fn prometheus_page(&self) -> Option<String> {
        self.inner
            .prometheus
            .as_ref()
            .and_then(|reader| reader.render().ok())
    }

    /// The configuration this telemetry was started with.
    #[must_use]
    pub fn config(&self) -> &TelemetryConfig {
        &self.inner.config
    }

    /// The request path's metrics over this telemetry's meter provider.
    #[must_use]
    pub fn metrics(&self) -> Arc<dyn Metrics> {
        Arc::new(self.inner.metrics.clone())
    }

    /// The xDS client's metrics (gRFC A78) over this telemetry's meter provider.
    #[must_use]
    pub fn xds_metrics(&self) -> Arc<dyn XdsClientMetrics> {
        Arc::new(self.inner.xds_metrics.clone())
    }

    /// What the xDS-enabled servers record with.
    pub(crate) fn server(&self) -> Arc<ServerTelemetry> {
        Arc::clone(&self.inner.server)
    }

    /// A W3C Trace Context propagator writing the context of the request path's `tracing` spans, for options that
    /// take spans from an application's own `tracing-opentelemetry` setup instead of this telemetry's tracer
    /// ([`apply`](Self::apply) sets the tracer, which writes its own spans' context).
    #[must_use]
    pub fn propagator(&self) -> Arc<dyn TracePropagator> {
        Arc::new(W3cPropagator::new())
    }

    /// `options` with this telemetry's metrics next to the metrics they already had (both receive every event; alone
    /// when those record nothing, as the default [`NoMetrics`](mesh_tower::metrics::NoMetrics)) and this
    /// telemetry's spans of calls and attempts (which write each attempt's `traceparent`).
    #[must_use]
    pub fn apply(&self, options: MeshOptions) -> MeshOptions {
        let metrics: Arc<dyn Metrics> = if options.metrics.records_nothing() {
            self.metrics()
        } else {
            Arc::new(FanOut::new(vec![
                Arc::clone(&options.metrics),
                self.metrics(),
            ]))
        };
        options
            .with_metrics(metrics)
            .with_tracer(Arc::new(OtelTracer::new(
                self.inner.config.sampling,
                self.inner.spans.clone(),
            )))
    }

    /// The tracer, for applications that build their own `tracing-opentelemetry` layer.
    #[must_use]
    pub fn tracer(&self) -> Tracer {
        self.inner.tracer_provider.tracer_with_scope(scope())
    }

    /// A `tracing` layer exporting the application's spans through this telemetry, INFO and above: the
    /// application's own spans (the mesh's calls and attempts are this telemetry's spans already, made by the
    /// tracer [`apply`](Self::apply) sets; their `tracing` twins are at DEBUG, so this layer builds nothing for
    /// them). Add it to the application's subscriber: a call made inside one of its spans is that span's child.
    #[must_use]
    pub fn tracing_layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
    {
        let filter = Targets::new().with_default(LevelFilter::INFO);
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer())
            .with_filter(filter)
    }

    /// Installs a global `tracing` subscriber holding only [`tracing_layer`](Self::tracing_layer), for
    /// applications that have none.
    ///
    /// # Errors
    /// [`TelemetryError::SubscriberAlreadySet`] when a global subscriber is already set.
    pub fn init_tracing(&self) -> Result<(), TelemetryError> {
        let subscriber = tracing_subscriber::registry().with(self.tracing_layer());
        tracing::subscriber::set_global_default(subscriber)
            .map_err(|_| TelemetryError::SubscriberAlreadySet)
    }

    /// Exports every finished span and the current metrics now.
    ///
    /// # Errors
    /// [`TelemetryError::Export`] when the collector did not take them.
    pub async fn flush(&self) -> Result<(), TelemetryError> {
        self.flush_spans().await?;
        self.blocking("flush", |inner| {
            (Ok(()), inner.meter_provider.force_flush())
        })
        .await
    }

    /// Exports every finished span now (metrics wait for their interval).
    ///
    /// # Errors
    /// [`TelemetryError::Export`] when the collector did not take them.
    pub async fn flush_spans(&self) -> Result<(), TelemetryError> {
        let Some(spans) = &self.inner.spans else {
            return Ok(());
        };
        spans
            .flush()
            .await
            .map_err(|source| TelemetryError::Export {
                signal: "traces",
                action: "flush",
                source,
            })
    }

    /// Exports what is left and stops the pipelines (later spans and metrics are dropped).
    ///
    /// # Errors
    /// [`TelemetryError::Export`] when the final export failed.
    pub async fn shutdown(&self) -> Result<(), TelemetryError> {
        // The span processor first, awaited here: the provider's blocking shutdown then finds it stopped.
        let spans = match &self.inner.spans {
            Some(spans) => spans.shutdown().await,
            None => Ok(()),
        };
        self.blocking("shutdown", |inner| {
            (
                inner.tracer_provider.shutdown(),
                inner.meter_provider.shutdown(),
            )
        })
        .await?;
        spans.map_err(|source| TelemetryError::Export {
            signal: "traces",
            action: "shutdown",
            source,
        })
    }

    /// Runs a blocking SDK call off the runtime's threads: the exporters need the runtime to make progress.
    async fn blocking(
        &self,
        action: &'static str,
        call: impl FnOnce(
            &Inner,
        ) -> (
            opentelemetry_sdk::error::OTelSdkResult,
            opentelemetry_sdk::error::OTelSdkResult,
        ) + Send
        + 'static,
    ) -> Result<(), TelemetryError> {
        let inner = Arc::clone(&self.inner);
        let (traces, metrics) = tokio::task::spawn_blocking(move || call(&inner))
            .await
            .map_err(|_| TelemetryError::Export {
                signal: "traces",
                action,
                source: opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                    "the blocking task panicked".to_owned(),
                ),
            })?;
        traces.map_err(|source| TelemetryError::Export {
            signal: "traces",
            action,
            source,
        })?;
        metrics.map_err(|source| TelemetryError::Export {
            signal: "metrics",
            action,
            source,
        })
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl crate::Mesh {
    /// The telemetry the mesh was built with ([`MeshBuilder::with_otlp`](crate::MeshBuilder::with_otlp),
    /// [`telemetry`](crate::MeshBuilder::telemetry) or [`telemetry_from_env`](crate::MeshBuilder::telemetry_from_env)),
    /// to flush or shut down, or to add its tracing layer to a subscriber.
    #[must_use]
    pub fn telemetry(&self) -> Option<&Telemetry> {
        self.inner.telemetry.as_ref()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

fn sampler(sampling: Sampling) -> Sampler {
    match sampling {
        Sampling::Ratio(ratio) => ratio_sampler(ratio),
        Sampling::ParentBasedRatio(ratio) => Sampler::ParentBased(Box::new(ratio_sampler(ratio))),
    }
}

fn ratio_sampler(ratio: f64) -> Sampler {
    if ratio >= 1.0 {
        Sampler::AlwaysOn
    } else if ratio <= 0.0 {
        Sampler::AlwaysOff
    } else {
        Sampler::TraceIdRatioBased(ratio)
    }
}
