//! [`OtlpReceiver`]: a small OTLP/gRPC collector for tests, recording the spans and metrics it is sent.
//!
//! It serves `opentelemetry.proto.collector.trace.v1.TraceService/Export` and
//! `opentelemetry.proto.collector.metrics.v1.MetricsService/Export` (the services every OTLP gRPC exporter calls,
//! with the `opentelemetry-proto` crate's messages) on 127.0.0.1, answers every export with success, and keeps what
//! arrived, flattened with the resource and scope each span or metric came with. Tests wait for what they expect
//! with [`OtlpReceiver::wait_for_spans`] and [`OtlpReceiver::wait_for_metrics`]: each export wakes the waiters, so
//! there is no polling or sleeping.
//!
//! Checked against a real exporter (the OpenTelemetry Python SDK, `tests/otlp.rs`). Not here: logs, profiles,
//! partial-success answers, compression other than what tonic decodes by default (none).

use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

/// The OTLP protobuf messages, for tests that look deeper than the flattened records.
pub use opentelemetry_proto::tonic as proto;

/// One span as received, with the resource and instrumentation scope it was exported under.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The resource's attributes (`service.name`, ...).
    pub resource: Vec<KeyValue>,
    /// The instrumentation scope's name.
    pub scope: String,
    /// The span.
    pub span: Span,
}

impl ReceivedSpan {
    /// The span's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.span.name
    }

    /// The span's attribute `key`, as a string (see [`value_string`]).
    #[must_use]
    pub fn attribute(&self, key: &str) -> Option<String> {
        attribute(&self.span.attributes, key)
    }

    /// The resource's attribute `key`, as a string.
    #[must_use]
    pub fn resource_attribute(&self, key: &str) -> Option<String> {
        attribute(&self.resource, key)
    }

    /// The trace id in lowercase hex (W3C form).
    #[must_use]
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// The span id in lowercase hex.
    #[must_use]
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent span id in lowercase hex, empty for a root span.
    #[must_use]
    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
}

/// One metric as received in one export, with its resource and scope.
#[derive(Debug, Clone)]
pub struct ReceivedMetric {
    /// The resource's attributes.
    pub resource: Vec<KeyValue>,
    /// The instrumentation scope's name.
    pub scope: String,
    /// The metric (name, unit, data points).
    pub metric: Metric,
}

/// A wait ended before what was expected arrived.
#[derive(Debug, thiserror::Error)]
#[error("the OTLP receiver did not get the expected {what} within {timeout:?}; it has:\n{have}")]
pub struct WaitTimeout {
    /// Spans or metrics.
    pub what: &'static str,
    /// How long we waited.
    pub timeout: Duration,
    /// What had arrived (names), for the test log.
    pub have: String,
}

#[derive(Debug, Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    metrics: Vec<ReceivedMetric>,
}

#[derive(Debug)]
struct Collector {
    received: Mutex<Received>,
    exports: watch::Sender<u64>,
}

impl Collector {
    fn record(&self, edit: impl FnOnce(&mut Received)) {
        edit(&mut self.received.lock().unwrap_or_else(PoisonError::into_inner));
        self.exports.send_modify(|count| *count += 1);
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        self.record(|received| {
            for resource_spans in request.resource_spans {
                let resource = resource_spans
                    .resource
                    .map(|r| r.attributes)
                    .unwrap_or_default();
                for scope_spans in resource_spans.scope_spans {
                    let scope = scope_spans.scope.map(|s| s.name).unwrap_or_default();
                    for span in scope_spans.spans {
                        received.spans.push(ReceivedSpan {
                            resource: resource.clone(),
                            scope: scope.clone(),
                            span,
                        });
                    }
                }
            }
        });
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        self.record(|received| {
            for resource_metrics in request.resource_metrics {
                let resource = resource_metrics
                    .resource
                    .map(|r| r.attributes)
                    .unwrap_or_default();
                for scope_metrics in resource_metrics.scope_metrics {
                    let scope = scope_metrics.scope.map(|s| s.name).unwrap_or_default();
                    for metric in scope_metrics.metrics {
                        received.metrics.push(ReceivedMetric {
                            resource: resource.clone(),
                            scope: scope.clone(),
                            metric,
                        });
                    }
                }
            }
        });
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC receiver on 127.0.0.1; see the [module docs](self). Dropping it stops the server.
#[derive(Debug)]
pub struct OtlpReceiver {
    address: SocketAddr,
    collector: Arc<Collector>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl OtlpReceiver {
    /// Starts a receiver on a free port of 127.0.0.1. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub async fn start() -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let (exports, _) = watch::channel(0);
        let collector = Arc::new(Collector {
            received: Mutex::default(),
            exports,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let serve = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::from_arc(Arc::clone(&collector)))
            .add_service(MetricsServiceServer::from_arc(Arc::clone(&collector)))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            });
        let task = tokio::spawn(async move {
            let _ = serve.await;
        });
        Ok(Self {
            address,
            collector,
            stop: Some(stop),
            task,
        })
    }

    /// The bound address.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The endpoint to give an exporter: `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every span received so far, in arrival order.
    #[must_use]
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().spans.clone()
    }

    /// Every metric received so far, one entry per metric per export, in arrival order.
    #[must_use]
    pub fn metrics(&self) -> Vec<ReceivedMetric> {
        self.lock().metrics.clone()
    }

    /// The most recent export of metric `name` (exporters send cumulative totals by default, so the latest one
    /// holds everything so far).
    #[must_use]
    pub fn latest_metric(&self, name: &str) -> Option<ReceivedMetric> {
        self.lock()
            .metrics
            .iter()
            .rev()
            .find(|m| m.metric.name == name)
            .cloned()
    }

    /// Waits until the spans received so far satisfy `done`, and returns them.
    ///
    /// # Errors
    /// [`WaitTimeout`] (listing the span names that did arrive) after `timeout`.
    pub async fn wait_for_spans(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Result<Vec<ReceivedSpan>, WaitTimeout> {
        let waited = self
            .wait(timeout, |received| {
                done(&received.spans).then(|| received.spans.clone())
            })
            .await;
        waited.ok_or_else(|| WaitTimeout {
            what: "spans",
            timeout,
            have: self.spans().iter().fold(String::new(), |mut out, s| {
                let _ = writeln!(
                    out,
                    "  {} (trace {} parent {:?})",
                    s.name(),
                    s.trace_id(),
                    s.parent_span_id()
                );
                out
            }),
        })
    }

    /// Waits until the metrics received so far satisfy `done`, and returns them. `done` runs under the receiver's
    /// lock: it must look only at the slice it is given, never call the receiver (that deadlocks).
    ///
    /// # Errors
    /// [`WaitTimeout`] (listing the metric names that did arrive) after `timeout`.
    pub async fn wait_for_metrics(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedMetric]) -> bool,
    ) -> Result<Vec<ReceivedMetric>, WaitTimeout> {
        let waited = self
            .wait(timeout, |received| {
                done(&received.metrics).then(|| received.metrics.clone())
            })
            .await;
        waited.ok_or_else(|| WaitTimeout {
            what: "metrics",
            timeout,
            have: self.metrics().iter().fold(String::new(), |mut out, m| {
                let _ = writeln!(out, "  {} ({})", m.metric.name, m.metric.unit);
                out
            }),
        })
    }

    async fn wait<T>(
        &self,
        timeout: Duration,
        check: impl Fn(&Received) -> Option<T>,
    ) -> Option<T> {
        let mut exports = self.collector.exports.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            exports.borrow_and_update();
            if let Some(found) = check(&self.lock()) {
                return Some(found);
            }
            match tokio::time::timeout_at(deadline, exports.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.collector
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// `key`'s value among `attributes`, as a string.
#[must_use]
pub fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(value_string)
}

/// An attribute value as a string: strings as they are, numbers and booleans in Rust's `Display` form, arrays and
/// maps in `Debug` form.
#[must_use]
pub fn value_string(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}
