//! The exporter against a small OTLP trace service on 127.0.0.1 (opentelemetry-proto's generated server).

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use http::HeaderMap;
use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use super::{ExporterSettings, OtlpSpanExporter};

/// What the collector answers, and what it saw.
#[derive(Default)]
struct Collector {
    fail_with: Option<tonic::Code>,
    rejected: i64,
    seen: Mutex<Vec<(Option<String>, ExportTraceServiceRequest)>>,
}

struct Shared(Arc<Collector>);

#[tonic::async_trait]
impl TraceService for Shared {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let api_key = request
            .metadata()
            .get("api-key")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        self.0
            .seen
            .lock()
            .unwrap()
            .push((api_key, request.into_inner()));
        if let Some(code) = self.0.fail_with {
            return Err(tonic::Status::new(code, "the collector says no"));
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: self.0.rejected,
                error_message: String::new(),
            }),
        }))
    }
}

/// Serves `collector` on a free port until the test's runtime ends; returns its endpoint.
async fn serve(collector: Arc<Collector>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Shared(collector)))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    format!("http://{address}")
}

/// `batch` exported alone, as the batch processor exports the SDK's spans.
async fn export(exporter: &OtlpSpanExporter, batch: Vec<SpanData>) -> OTelSdkResult {
    exporter
        .export_parts(&batch, &[], &InstrumentationScope::default())
        .await
}

fn settings(endpoint: String, timeout: Duration) -> ExporterSettings {
    let mut headers = HeaderMap::new();
    headers.insert("api-key", "secret".parse().unwrap());
    ExporterSettings {
        endpoint,
        headers,
        timeout,
    }
}

fn span(name: &'static str) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(1_u128),
            SpanId::from(2_u64),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Client,
        name: Cow::Borrowed(name),
        start_time: UNIX_EPOCH + Duration::from_secs(1),
        end_time: UNIX_EPOCH + Duration::from_secs(2),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Ok,
        instrumentation_scope: InstrumentationScope::builder("test").build(),
    }
}

#[tokio::test]
async fn a_batch_reaches_the_collector_with_the_configured_headers() {
    let collector = Arc::new(Collector {
        rejected: 1,
        ..Collector::default()
    });
    let endpoint = serve(Arc::clone(&collector)).await;
    let exporter = OtlpSpanExporter::new(&settings(endpoint, Duration::from_secs(10))).unwrap();
    // A partial success (one span rejected) is logged, not an error: the rest were taken.
    export(&exporter, vec![span("first"), span("second")])
        .await
        .unwrap();
    export(&exporter, vec![span("third")]).await.unwrap();

    let seen = collector.seen.lock().unwrap();
    let names: Vec<Vec<&str>> = seen
        .iter()
        .map(|(_, request)| {
            request.resource_spans[0].scope_spans[0]
                .spans
                .iter()
                .map(|span| span.name.as_str())
                .collect()
        })
        .collect();
    assert_eq!(names, [vec!["first", "second"], vec!["third"]]);
    assert!(
        seen.iter()
            .all(|(api_key, _)| api_key.as_deref() == Some("secret"))
    );
}

#[tokio::test]
async fn a_refused_export_is_an_error_and_is_not_retried() {
    let collector = Arc::new(Collector {
        fail_with: Some(tonic::Code::InvalidArgument),
        ..Collector::default()
    });
    let endpoint = serve(Arc::clone(&collector)).await;
    let exporter =
        OtlpSpanExporter::new(&settings(endpoint.clone(), Duration::from_secs(10))).unwrap();
    let error = export(&exporter, vec![span("refused")]).await.unwrap_err();
    let OTelSdkError::InternalFailure(message) = error else {
        panic!("an internal failure, got {error:?}");
    };
    assert!(message.contains(&endpoint), "{message}");
    assert!(message.contains("InvalidArgument"), "{message}");
    assert_eq!(collector.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_unavailable_collector_is_retried_then_reported() {
    let collector = Arc::new(Collector {
        fail_with: Some(tonic::Code::Unavailable),
        ..Collector::default()
    });
    let endpoint = serve(Arc::clone(&collector)).await;
    let exporter = OtlpSpanExporter::new(&settings(endpoint, Duration::from_secs(10))).unwrap();
    let error = export(&exporter, vec![span("later")]).await.unwrap_err();
    assert!(
        matches!(error, OTelSdkError::InternalFailure(_)),
        "{error:?}"
    );
    assert_eq!(
        collector.seen.lock().unwrap().len(),
        4,
        "one try and 3 retries"
    );
}

#[tokio::test]
async fn an_export_to_a_closed_port_ends_in_an_error_within_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let exporter = OtlpSpanExporter::new(&settings(endpoint, Duration::from_millis(300))).unwrap();
    let started = tokio::time::Instant::now();
    let error = export(&exporter, vec![span("lost")]).await.unwrap_err();
    assert!(
        matches!(
            error,
            OTelSdkError::Timeout(_) | OTelSdkError::InternalFailure(_)
        ),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn https_and_malformed_endpoints_are_refused_when_built() {
    for endpoint in ["https://collector:4317", "collector:4317", "http://[::1"] {
        let error = OtlpSpanExporter::new(&settings(endpoint.to_owned(), Duration::from_secs(1)))
            .unwrap_err();
        assert!(error.to_string().contains(endpoint), "{error}");
    }
}

#[tokio::test]
async fn a_shut_down_exporter_exports_nothing() {
    let collector = Arc::new(Collector::default());
    let endpoint = serve(Arc::clone(&collector)).await;
    let exporter = OtlpSpanExporter::new(&settings(endpoint, Duration::from_secs(10))).unwrap();
    exporter.close().unwrap();
    let error = export(&exporter, vec![span("late")]).await.unwrap_err();
    assert!(matches!(error, OTelSdkError::AlreadyShutdown), "{error:?}");
    assert!(exporter.close().is_err());
    assert!(collector.seen.lock().unwrap().is_empty());
}

/// The batch processor's tests: a record of the request path.
fn record(index: u8) -> super::SpanRecord {
    super::SpanRecord {
        trace_id: [1; 16],
        span_id: [index.max(1); 8],
        parent_span_id: [0; 8],
        parent_is_remote: false,
        trace_flags: 1,
        trace_state: None,
        kind: super::RecordKind::Client,
        name: super::SpanName::Http("GET"),
        start: 1,
        end: 2,
        cluster: Arc::from("main"),
        route: None,
        attempt: None,
        grpc_status: None,
        http_status: Some(200),
        status: super::RecordStatus::Unset,
    }
}

fn batcher(
    endpoint: String,
    max_queue: usize,
    max_batch: usize,
    delay: Duration,
) -> super::SpanBatcher {
    use opentelemetry_sdk::trace::SpanProcessor as _;

    let exporter = OtlpSpanExporter::new(&settings(endpoint, Duration::from_secs(10))).unwrap();
    let mut batcher = super::SpanBatcher::start(
        exporter,
        super::BatchSettings {
            max_queue,
            max_batch,
            delay,
        },
        InstrumentationScope::builder("mesh-tonic").build(),
    );
    batcher.set_resource(&opentelemetry_sdk::Resource::builder_empty().build());
    batcher
}

/// The spans of each request the collector saw, by scope: `(scope, names)`.
fn exported(collector: &Collector) -> Vec<Vec<(String, usize)>> {
    collector
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, request)| {
            request.resource_spans[0]
                .scope_spans
                .iter()
                .map(|scope| {
                    (
                        scope.scope.as_ref().unwrap().name.clone(),
                        scope.spans.len(),
                    )
                })
                .collect()
        })
        .collect()
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not done within 5 s");
}

/// A full batch wakes the export without a flush or the delay; the SDK's spans and the request path's records go
/// out together, at most a batch per request.
#[tokio::test]
async fn a_full_batch_is_exported_at_once_in_requests_of_at_most_a_batch() {
    use opentelemetry_sdk::trace::SpanProcessor as _;

    let collector = Arc::new(Collector::default());
    let endpoint = serve(Arc::clone(&collector)).await;
    let batcher = batcher(endpoint, 100, 4, Duration::from_secs(3600));
    // On this one-thread runtime the export task runs only once the test waits: all nine are queued by then.
    for name in ["a", "b", "c"] {
        batcher.on_end(span(name));
    }
    for index in 0..6 {
        batcher.push_record(record(index));
    }
    wait_until(|| exported(&collector).len() == 3).await;
    assert_eq!(
        exported(&collector),
        [
            vec![("test".to_owned(), 3), ("mesh-tonic".to_owned(), 1)],
            vec![("mesh-tonic".to_owned(), 4)],
            vec![("mesh-tonic".to_owned(), 1)],
        ]
    );
    batcher.shutdown().await.unwrap();
}

/// Fewer spans than a batch go out after the delay.
#[tokio::test]
async fn spans_short_of_a_batch_are_exported_after_the_delay() {
    let collector = Arc::new(Collector::default());
    let endpoint = serve(Arc::clone(&collector)).await;
    let batcher = batcher(endpoint, 100, 50, Duration::from_millis(50));
    batcher.push_record(record(1));
    wait_until(|| exported(&collector).len() == 1).await;
    assert_eq!(exported(&collector), [vec![("mesh-tonic".to_owned(), 1)]]);
    batcher.shutdown().await.unwrap();
}

/// Spans beyond the queue are dropped, not waited for; shutdown exports what is queued, and later spans and
/// flushes find it stopped.
#[tokio::test]
async fn a_full_queue_drops_spans_and_shutdown_exports_the_rest() {
    let collector = Arc::new(Collector::default());
    let endpoint = serve(Arc::clone(&collector)).await;
    let batcher = batcher(endpoint, 5, 5, Duration::from_secs(3600));
    for index in 0..8 {
        batcher.push_record(record(index));
    }
    batcher.shutdown().await.unwrap();
    assert_eq!(exported(&collector), [vec![("mesh-tonic".to_owned(), 5)]]);
    batcher.push_record(record(9));
    assert!(matches!(
        batcher.flush().await,
        Err(OTelSdkError::AlreadyShutdown)
    ));
    assert_eq!(exported(&collector).len(), 1);
}

/// The SDK's blocking `force_flush`, from a thread outside the runtime, returns once the spans are exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_flush_from_another_thread_waits_for_the_export() {
    use opentelemetry_sdk::trace::SpanProcessor as _;

    let collector = Arc::new(Collector::default());
    let endpoint = serve(Arc::clone(&collector)).await;
    let batcher = batcher(endpoint, 100, 50, Duration::from_secs(3600));
    batcher.push_record(record(1));
    let flusher = batcher.clone();
    let flushed = std::thread::spawn(move || flusher.force_flush())
        .join()
        .unwrap();
    flushed.unwrap();
    assert_eq!(exported(&collector), [vec![("mesh-tonic".to_owned(), 1)]]);
    batcher.shutdown().await.unwrap();
}

/// Records ended on several threads at once (each pushing into its own shard of the queue) are all exported, once
/// each, and the queue's limit holds across the shards: what is past it is dropped.
#[tokio::test]
async fn records_ended_on_several_threads_are_exported_once_each_within_the_queue_limit() {
    let total = |collector: &Collector| -> usize {
        exported(collector)
            .iter()
            .flatten()
            .map(|(_, spans)| spans)
            .sum()
    };
    // The export task runs on this test's one thread: not before the threads are joined.
    let push_from_threads = |batcher: &super::SpanBatcher| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let batcher = batcher.clone();
                std::thread::spawn(move || {
                    for index in 0..300 {
                        batcher.push_record(record(u8::try_from(index % 200).unwrap()));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    };

    let collector = Arc::new(Collector::default());
    let endpoint = serve(Arc::clone(&collector)).await;
    let roomy = batcher(endpoint, 2000, 2000, Duration::from_secs(3600));
    push_from_threads(&roomy);
    roomy.flush().await.unwrap();
    assert_eq!(total(&collector), 1200);
    roomy.flush().await.unwrap();
    assert_eq!(total(&collector), 1200, "nothing is exported twice");
    roomy.shutdown().await.unwrap();

    let collector = Arc::new(Collector::default());
    let endpoint = serve(Arc::clone(&collector)).await;
    let full = batcher(endpoint, 1000, 1000, Duration::from_secs(3600));
    push_from_threads(&full);
    full.shutdown().await.unwrap();
    assert_eq!(total(&collector), 1000, "the queue holds 1000 spans");
}
