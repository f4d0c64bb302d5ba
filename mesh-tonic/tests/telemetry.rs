//! Telemetry of real calls through an `xds:///` channel, received by the test OTLP collector
//! (`mesh_test_support::otlp`, itself checked against the OpenTelemetry Python SDK): gRPC's metric names, units and
//! labels (gRFC A66, A78, A89), a span per call and per attempt with the attempts children of the call, and the
//! W3C `traceparent` each attempt carries to the server, retries included; the xDS client's metrics (A78),
//! `grpc.xds_client.resources` through a NACK included.

// Fixtures fail the test that uses them by panicking, as assertions do.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use envoy_types::pb::envoy::config::cluster::v3::Cluster as EnvoyCluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{LbConfig, LbPolicy, RingHashLbConfig};
use envoy_types::pb::google::protobuf::UInt64Value;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_test_support::otlp::{OtlpReceiver, ReceivedMetric, ReceivedSpan, attribute, proto};
use mesh_tonic::Mesh;
use mesh_tonic::testing::{GreeterClient, HelloReply, HelloRequest};
use mesh_xds_server::mesh::{Endpoint, Locality};
use mesh_xds_server::type_url;
use prost::Message;
use proto::metrics::v1::metric::Data;
use proto::trace::v1::span::SpanKind;
use proto::trace::v1::status::StatusCode;
use support::{NODE, PATIENCE, backend, locality, single_cluster, xds_server};
use tokio::net::TcpListener;

const METHOD: &str = "helloworld.Greeter/SayHello";
const TARGET: &str = "xds:///greeter";

/// A mesh with its xDS server at `xds`, sending telemetry to `receiver`.
async fn mesh(xds: SocketAddr, receiver: &OtlpReceiver) -> Mesh {
    Mesh::builder()
        .xds_server(xds.to_string())
        .node_id(NODE)
        .mesh_options(support::options())
        .with_otlp(receiver.endpoint())
        .service_name("greeter-client")
        .resource_attribute("deployment.environment", "test")
        .build()
        .await
        .unwrap()
}

async fn say_hello(client: &mut GreeterClient<mesh_tonic::Channel>) {
    let mut request = tonic::Request::new(HelloRequest {
        name: "test".into(),
    });
    request.set_timeout(Duration::from_secs(5));
    let reply = client.say_hello(request).await.unwrap();
    assert_eq!(reply.get_ref().message, "Hello, test!");
}

/// The metrics received once an export has metric `name`.
async fn metrics_with(receiver: &OtlpReceiver, name: &str) -> Vec<ReceivedMetric> {
    receiver
        .wait_for_metrics(PATIENCE, |metrics| {
            metrics.iter().any(|m| m.metric.name == name)
        })
        .await
        .unwrap()
}

/// The only data point of `metric`, with its attributes; panics unless there is exactly one.
fn histogram_point(metric: &ReceivedMetric) -> &proto::metrics::v1::HistogramDataPoint {
    let Some(Data::Histogram(histogram)) = &metric.metric.data else {
        panic!("{} is not a histogram", metric.metric.name);
    };
    let [point] = &histogram.data_points[..] else {
        panic!(
            "{}: one series expected: {:?}",
            metric.metric.name, histogram.data_points
        );
    };
    point
}

fn sum_point(metric: &ReceivedMetric) -> (&proto::metrics::v1::NumberDataPoint, bool) {
    let Some(Data::Sum(sum)) = &metric.metric.data else {
        panic!("{} is not a sum", metric.metric.name);
    };
    let [point] = &sum.data_points[..] else {
        panic!(
            "{}: one series expected: {:?}",
            metric.metric.name, sum.data_points
        );
    };
    (point, sum.is_monotonic)
}

/// `grpc.xds_client.connected` for xDS server `server`, in the latest export that has it.
fn connected(receiver: &OtlpReceiver, server: &str) -> Option<i64> {
    let gauge = receiver.latest_metric("grpc.xds_client.connected")?;
    assert_eq!(gauge.metric.unit, "{bool}");
    let Some(Data::Gauge(gauge)) = &gauge.metric.data else {
        panic!("grpc.xds_client.connected is not a gauge");
    };
    gauge.data_points.iter().find_map(|point| {
        (attribute(&point.attributes, "grpc.xds.server").as_deref() == Some(server)).then_some(
            match point.value {
                Some(proto::metrics::v1::number_data_point::Value::AsInt(value)) => value,
                _ => -1,
            },
        )
    })
}

fn labels(attributes: &[proto::common::v1::KeyValue]) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value
                    .as_ref()
                    .map(mesh_test_support::otlp::value_string)
                    .unwrap_or_default(),
            )
        })
        .collect();
    labels.sort();
    labels
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_measured_with_grpc_metric_names_units_and_labels() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let replica = backend([127, 0, 0, 1], "a").await;
    let xds = xds_server(single_cluster(vec![locality("us-east", 0, &[&replica])])).await;
    let mesh = mesh(xds.local_addr(), &receiver).await;
    let mut client = GreeterClient::new(mesh.channel(TARGET).unwrap());
    for _ in 0..3 {
        say_hello(&mut client).await;
    }
    let telemetry = mesh.telemetry().unwrap();
    telemetry.flush().await.unwrap();
    metrics_with(&receiver, "grpc.client.call.duration").await;

    let started = receiver
        .latest_metric("grpc.client.attempt.started")
        .unwrap();
    assert_eq!(started.metric.unit, "{attempt}");
    assert_eq!(started.scope, "mesh-tonic");
    assert_eq!(
        attribute(&started.resource, "service.name").as_deref(),
        Some("greeter-client")
    );
    assert_eq!(
        attribute(&started.resource, "deployment.environment").as_deref(),
        Some("test")
    );
    let (point, monotonic) = sum_point(&started);
    assert!(monotonic);
    assert_eq!(
        point.value,
        Some(proto::metrics::v1::number_data_point::Value::AsInt(3))
    );
    assert_eq!(
        labels(&point.attributes),
        owned(&[("grpc.method", METHOD), ("grpc.target", TARGET)])
    );

    let attempts = receiver
        .latest_metric("grpc.client.attempt.duration")
        .unwrap();
    assert_eq!(attempts.metric.unit, "s");
    let point = histogram_point(&attempts);
    assert_eq!(point.count, 3);
    assert!(point.sum.is_some_and(|sum| sum > 0.0));
    assert_eq!(
        labels(&point.attributes),
        owned(&[
            ("grpc.method", METHOD),
            ("grpc.target", TARGET),
            ("grpc.status", "OK"),
            (
                "grpc.lb.locality",
                r#"{region="us-east", zone="us-east-a", sub_zone=""}"#
            ),
            ("grpc.lb.backend_service", "main"),
        ])
    );
    // gRFC A66's latency buckets: 0, 10 µs, ... 100 s.
    assert_eq!(point.explicit_bounds.len(), 41);
    assert_eq!(point.explicit_bounds.first(), Some(&0.0));
    assert_eq!(point.explicit_bounds.get(1), Some(&0.00001));
    assert_eq!(point.explicit_bounds.last(), Some(&100.0));

    let calls = receiver.latest_metric("grpc.client.call.duration").unwrap();
    assert_eq!(calls.metric.unit, "s");
    let point = histogram_point(&calls);
    assert_eq!(point.count, 3);
    assert_eq!(
        labels(&point.attributes),
        owned(&[
            ("grpc.method", METHOD),
            ("grpc.target", TARGET),
            ("grpc.status", "OK"),
        ])
    );

    // gRFC A78: the xDS client counts the valid resources each server sent, by type.
    let updates = receiver
        .latest_metric("grpc.xds_client.resource_updates_valid")
        .unwrap();
    assert_eq!(updates.metric.unit, "{resource}");
    let Some(Data::Sum(sum)) = &updates.metric.data else {
        panic!("resource_updates_valid is not a sum");
    };
    let by_type: Vec<(Vec<(String, String)>, i64)> = sum
        .data_points
        .iter()
        .map(|point| {
            let value = match point.value {
                Some(proto::metrics::v1::number_data_point::Value::AsInt(value)) => value,
                _ => 0,
            };
            (labels(&point.attributes), value)
        })
        .collect();
    let server = xds.local_addr().to_string();
    for resource_type in [
        "envoy.config.listener.v3.Listener",
        "envoy.config.route.v3.RouteConfiguration",
        "envoy.config.cluster.v3.Cluster",
        "envoy.config.endpoint.v3.ClusterLoadAssignment",
    ] {
        let wanted = owned(&[
            ("grpc.xds.server", server.as_str()),
            ("grpc.xds.resource_type", resource_type),
        ]);
        assert!(
            by_type
                .iter()
                .any(|(labels, value)| *labels == wanted && *value >= 1),
            "no valid {resource_type} counted: {by_type:?}"
        );
    }
    assert!(
        receiver
            .latest_metric("grpc.xds_client.resource_updates_invalid")
            .is_none(),
        "nothing invalid was sent"
    );
    assert_eq!(
        connected(&receiver, &server),
        Some(1),
        "the ADS stream works"
    );
    telemetry.shutdown().await.unwrap();
}

/// What the flaky server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    traceparent: Option<String>,
    tracestate: Option<String>,
    previous_attempts: Option<String>,
}

/// A gRPC server on 127.0.0.1 that fails every first attempt with UNAVAILABLE and answers retries (requests with
/// `grpc-previous-rpc-attempts`) with a `HelloReply`, recording each request's `traceparent` and `tracestate`.
async fn flaky_server(seen: Arc<Mutex<Vec<Seen>>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let seen = Arc::clone(&seen);
                    async move { Ok::<_, Infallible>(answer(request, &seen).await) }
                });
                let _ = http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

async fn answer(
    request: Request<Incoming>,
    seen: &Mutex<Vec<Seen>>,
) -> Response<BoxBody<Bytes, Infallible>> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let record = Seen {
        traceparent: header("traceparent"),
        tracestate: header("tracestate"),
        previous_attempts: header("grpc-previous-rpc-attempts"),
    };
    let retry = record.previous_attempts.is_some();
    seen.lock().unwrap().push(record);
    let _ = request.into_body().collect().await;
    let response = Response::builder().header("content-type", "application/grpc");
    if !retry {
        return response
            .header("grpc-status", "14")
            .header("grpc-message", "try again")
            .body(Empty::new().boxed())
            .unwrap();
    }
    let message = HelloReply {
        message: "Hello, test!".into(),
    }
    .encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(u32::try_from(message.len()).unwrap());
    frame.put_slice(&message);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    response
        .body(
            Full::new(frame.freeze())
                .with_trailers(async move { Some(Ok(trailers)) })
                .boxed(),
        )
        .unwrap()
}

/// A collector, an xDS server whose one cluster is a [`flaky_server`] recording into `seen`, and a mesh over them.
async fn flaky_mesh(
    seen: Arc<Mutex<Vec<Seen>>>,
) -> (OtlpReceiver, mesh_xds_server::XdsServer, Mesh) {
    let receiver = OtlpReceiver::start().await.unwrap();
    let server = flaky_server(seen).await;
    let region =
        Locality::new("us-east", "us-east-a", "").with_endpoint(Endpoint::new(server.to_string()));
    let xds = xds_server(single_cluster(vec![region])).await;
    let mesh = mesh(xds.local_addr(), &receiver).await;
    (receiver, xds, mesh)
}

/// The spans received once a call's span and two attempts' spans are there.
async fn spans_of_a_retried_call(receiver: &OtlpReceiver) -> Vec<ReceivedSpan> {
    receiver
        .wait_for_spans(PATIENCE, |spans| {
            spans.iter().filter(|s| is_attempt(s)).count() >= 2 && spans.iter().any(is_call)
        })
        .await
        .unwrap()
}

fn is_call(span: &ReceivedSpan) -> bool {
    span.name() == METHOD && span.span.kind == SpanKind::Internal as i32
}

fn is_attempt(span: &ReceivedSpan) -> bool {
    span.name() == METHOD && span.span.kind == SpanKind::Client as i32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_call_is_one_trace_whose_attempts_carry_traceparent_to_the_server() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = flaky_server(Arc::clone(&seen)).await;
    let region =
        Locality::new("us-east", "us-east-a", "").with_endpoint(Endpoint::new(server.to_string()));
    // `greeter` retries UNAVAILABLE.
    let xds = xds_server(single_cluster(vec![region])).await;
    let mesh = mesh(xds.local_addr(), &receiver).await;
    let telemetry = mesh.telemetry().unwrap();
    telemetry.init_tracing().unwrap();
    let mut client = GreeterClient::new(mesh.channel(TARGET).unwrap());
    say_hello(&mut client).await;
    telemetry.flush().await.unwrap();

    let spans = spans_of_a_retried_call(&receiver).await;
    let calls: Vec<&ReceivedSpan> = spans.iter().filter(|s| is_call(s)).collect();
    let [call] = calls[..] else {
        panic!("one call span expected: {calls:#?}");
    };
    let mut attempts: Vec<&ReceivedSpan> = spans.iter().filter(|s| is_attempt(s)).collect();
    attempts.sort_by_key(|s| s.attribute("attempt"));
    let [first, second] = attempts[..] else {
        panic!("two attempt spans expected: {attempts:#?}");
    };

    // The call: the RPC's semantic-convention attributes, a root span of the client's service.
    assert_eq!(call.parent_span_id(), "");
    assert_eq!(call.attribute("rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        call.attribute("rpc.service").as_deref(),
        Some("helloworld.Greeter")
    );
    assert_eq!(call.attribute("rpc.method").as_deref(), Some("SayHello"));
    assert_eq!(call.attribute("cluster").as_deref(), Some("main"));
    assert_eq!(
        call.resource_attribute("service.name").as_deref(),
        Some("greeter-client")
    );

    // Both attempts: children of the call in its trace, the first failed with UNAVAILABLE, the retry succeeded.
    for (number, attempt) in [first, second].into_iter().enumerate() {
        assert_eq!(attempt.trace_id(), call.trace_id(), "attempt {number}");
        assert_eq!(attempt.parent_span_id(), call.span_id(), "attempt {number}");
        assert_eq!(attempt.attribute("attempt"), Some(number.to_string()));
        assert_eq!(attempt.attribute("rpc.system").as_deref(), Some("grpc"));
        assert_eq!(attempt.attribute("cluster").as_deref(), Some("main"));
        assert_eq!(
            attempt.attribute("endpoint").as_deref(),
            Some(server.to_string().as_str())
        );
    }
    assert_eq!(
        first.attribute("rpc.grpc.status_code").as_deref(),
        Some("14")
    );
    assert_eq!(
        first.span.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    assert_eq!(
        second.attribute("rpc.grpc.status_code").as_deref(),
        Some("0")
    );

    // The server saw each attempt's own context: the call's trace, the attempt's span as parent, sampled.
    let seen = seen.lock().unwrap().clone();
    let [on_first, on_second] = &seen[..] else {
        panic!("two requests expected at the server: {seen:?}");
    };
    assert_eq!(on_first.previous_attempts, None);
    assert_eq!(on_second.previous_attempts.as_deref(), Some("1"));
    assert_eq!(
        on_first.traceparent.as_deref(),
        Some(format!("00-{}-{}-01", call.trace_id(), first.span_id()).as_str())
    );
    assert_eq!(
        on_second.traceparent.as_deref(),
        Some(format!("00-{}-{}-01", call.trace_id(), second.span_id()).as_str())
    );

    // And the retry is counted.
    let retries = metrics_with(&receiver, "mesh.client.retries").await;
    let retries = retries
        .iter()
        .rev()
        .find(|m| m.metric.name == "mesh.client.retries")
        .unwrap();
    let (point, _) = sum_point(retries);
    assert_eq!(
        point.value,
        Some(proto::metrics::v1::number_data_point::Value::AsInt(1))
    );
    assert_eq!(
        labels(&point.attributes),
        owned(&[("grpc.target", TARGET), ("grpc.lb.backend_service", "main")])
    );
    // Each attempt's duration in the series of its own status (one after the other on this thread).
    let durations = receiver
        .latest_metric("grpc.client.attempt.duration")
        .unwrap();
    let Some(Data::Histogram(histogram)) = &durations.metric.data else {
        panic!("grpc.client.attempt.duration is not a histogram");
    };
    let mut by_status: Vec<(String, u64)> = histogram
        .data_points
        .iter()
        .map(|point| {
            let status = labels(&point.attributes)
                .into_iter()
                .find(|(key, _)| key == "grpc.status")
                .map(|(_, value)| value)
                .unwrap_or_default();
            (status, point.count)
        })
        .collect();
    by_status.sort();
    assert_eq!(
        by_status,
        [("OK".to_owned(), 1), ("UNAVAILABLE".to_owned(), 1)]
    );
    telemetry.shutdown().await.unwrap();
}

#[tokio::test]
async fn telemetry_settings_without_a_collector_are_refused() {
    let error = Mesh::builder()
        .without_xds()
        .service_name("frontend")
        .build()
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains(".with_otlp"),
        "the error says what is missing: {error}"
    );
    let mesh = Mesh::builder().without_xds().build().await.unwrap();
    assert!(mesh.telemetry().is_none(), "no telemetry unless asked for");
}

#[tokio::test]
async fn a_malformed_collector_endpoint_fails_the_build_naming_it() {
    let error = Mesh::builder()
        .without_xds()
        .with_otlp("not a uri")
        .build()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not a uri"), "{error}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_made_inside_an_application_span_is_its_child() {
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;

    let receiver = OtlpReceiver::start().await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = flaky_server(Arc::clone(&seen)).await;
    let region =
        Locality::new("us-east", "us-east-a", "").with_endpoint(Endpoint::new(server.to_string()));
    let xds = xds_server(single_cluster(vec![region])).await;
    let mesh = mesh(xds.local_addr(), &receiver).await;
    let telemetry = mesh.telemetry().unwrap();
    // This thread only (the runtime is single-threaded), so other tests' subscribers are not disturbed.
    let _subscriber = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(telemetry.tracing_layer()),
    );
    let mut client = GreeterClient::new(mesh.channel(TARGET).unwrap());
    say_hello(&mut client)
        .instrument(tracing::info_span!("checkout"))
        .await;
    telemetry.flush().await.unwrap();

    let spans = receiver
        .wait_for_spans(PATIENCE, |spans| {
            spans.iter().any(is_call) && spans.iter().any(|s| s.name() == "checkout")
        })
        .await
        .unwrap();
    let application = spans.iter().find(|s| s.name() == "checkout").unwrap();
    let call = spans.iter().find(|s| is_call(s)).unwrap();
    assert_eq!(call.trace_id(), application.trace_id());
    assert_eq!(call.parent_span_id(), application.span_id());
    assert_eq!(
        call.span.status.as_ref().map(|s| s.code),
        Some(StatusCode::Unset as i32),
        "an OK call is no error: {call:#?}"
    );
    // The mesh's own `tracing` spans are not exported a second time through the layer.
    assert!(
        !spans
            .iter()
            .any(|s| s.name() == "mesh.request" || s.name() == "mesh.attempt"),
        "{spans:#?}"
    );
    telemetry.shutdown().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn the_parents_tracestate_goes_out_with_every_attempt_sampled_or_not() {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };

    let server_log = Arc::new(Mutex::new(Vec::new()));
    let (receiver, _xds, mesh) = flaky_mesh(Arc::clone(&server_log)).await;
    let telemetry = mesh.telemetry().unwrap();
    let mut client = GreeterClient::new(mesh.channel(TARGET).unwrap());
    let state =
        TraceState::from_key_value([("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")])
            .unwrap();
    // A caller's context as an xDS-enabled server would make current: sampled first, then not (the call follows
    // its parent's decision, so the second call's span is its trace context only).
    for (trace, flags) in [
        (0x0af7_u128, TraceFlags::SAMPLED),
        (0x0bf8_u128, TraceFlags::default()),
    ] {
        let parent = SpanContext::new(
            TraceId::from(trace),
            SpanId::from(0x00f0_67aa_0ba9_02b7_u64),
            flags,
            true,
            state.clone(),
        );
        let _current = opentelemetry::Context::new()
            .with_remote_span_context(parent)
            .attach();
        say_hello(&mut client).await;
    }
    telemetry.flush().await.unwrap();

    let seen = server_log.lock().unwrap().clone();
    let fields = traceparent_fields(&seen);
    assert_eq!(fields.len(), 4, "two attempts a call: {seen:?}");
    for (request, (parent, flags)) in fields.iter().zip([
        ("0af7", "01"),
        ("0af7", "01"),
        ("0bf8", "00"),
        ("0bf8", "00"),
    ]) {
        assert_eq!(
            request.get(1),
            Some(&format!("{parent:0>32}").as_str()),
            "{seen:?}"
        );
        assert_eq!(request.get(3), Some(&flags), "{seen:?}");
    }
    for request in &seen {
        assert_eq!(
            request.tracestate.as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            "{seen:?}"
        );
    }
    // The sampled call's span is the remote parent's child and keeps its trace state.
    let spans = receiver
        .wait_for_spans(PATIENCE, |spans| spans.iter().any(is_call))
        .await
        .unwrap();
    let calls: Vec<&ReceivedSpan> = spans.iter().filter(|s| is_call(s)).collect();
    let [call] = calls[..] else {
        panic!("one sampled call expected: {calls:#?}");
    };
    assert_eq!(call.parent_span_id(), "00f067aa0ba902b7");
    assert_eq!(
        call.span.trace_state,
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    );
    telemetry.shutdown().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn calls_one_after_another_on_one_thread_each_record_their_own_spans() {
    let (receiver, _xds, mesh) = flaky_mesh(Arc::default()).await;
    let telemetry = mesh.telemetry().unwrap();
    let mut client = GreeterClient::new(mesh.channel(TARGET).unwrap());
    // One thread: each call's and attempt's span goes into the box of one that ended before it.
    for _ in 0..3 {
        say_hello(&mut client).await;
    }
    telemetry.flush().await.unwrap();

    let spans = receiver
        .wait_for_spans(PATIENCE, |spans| {
            spans.iter().filter(|s| is_attempt(s)).count() >= 6
                && spans.iter().filter(|s| is_call(s)).count() >= 3
        })
        .await
        .unwrap();
    let calls: Vec<&ReceivedSpan> = spans.iter().filter(|s| is_call(s)).collect();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    let mut traces: Vec<String> = calls.iter().map(|call| call.trace_id()).collect();
    traces.sort();
    traces.dedup();
    assert_eq!(traces.len(), 3, "a trace per call: {calls:#?}");
    for call in calls {
        assert_eq!(call.parent_span_id(), "");
        let mut attempts: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|s| is_attempt(s) && s.parent_span_id() == call.span_id())
            .collect();
        attempts.sort_by_key(|s| s.attribute("attempt"));
        let [first, second] = attempts[..] else {
            panic!("two attempts of {call:#?} expected: {spans:#?}");
        };
        for (number, attempt) in [first, second].into_iter().enumerate() {
            assert_eq!(attempt.trace_id(), call.trace_id());
            assert_eq!(attempt.attribute("attempt"), Some(number.to_string()));
            assert!(attempt.span.end_time_unix_nano >= attempt.span.start_time_unix_nano);
        }
        assert_eq!(
            first.attribute("rpc.grpc.status_code").as_deref(),
            Some("14")
        );
        assert_eq!(
            second.attribute("rpc.grpc.status_code").as_deref(),
            Some("0")
        );
        assert_eq!(call.attribute("rpc.grpc.status_code").as_deref(), Some("0"));
    }
    telemetry.shutdown().await.unwrap();
}

/// The `grpc.status` series of histogram `name` in the latest export: its one value's sum, in nanoseconds.
fn duration_nanos(receiver: &OtlpReceiver, name: &str, status: &str) -> u64 {
    let metric = receiver.latest_metric(name).unwrap();
    let Some(Data::Histogram(histogram)) = &metric.metric.data else {
        panic!("{name} is not a histogram");
    };
    let point = histogram
        .data_points
        .iter()
        .find(|point| attribute(&point.attributes, "grpc.status").as_deref() == Some(status))
        .unwrap_or_else(|| panic!("no {status} series of {name}: {histogram:?}"));
    assert_eq!(point.count, 1, "{name} {status}");
    u64::try_from(Duration::from_secs_f64(point.sum.unwrap()).as_nanos()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_last_exactly_as_long_as_the_duration_metrics_and_sit_in_wall_clock_time() {
    let (receiver, _xds, mesh) = flaky_mesh(Arc::default()).await;
    let telemetry = mesh.telemetry().unwrap();
    let mut client = GreeterClient::new(mesh.channel(TARGET).unwrap());
    let since_epoch = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    };
    let before = since_epoch();
    // One call: a first attempt answered UNAVAILABLE in its headers, a second OK in its trailers.
    say_hello(&mut client).await;
    let after = since_epoch();
    telemetry.flush().await.unwrap();
    let spans = spans_of_a_retried_call(&receiver).await;
    metrics_with(&receiver, "grpc.client.call.duration").await;

    let lasted =
        |span: &ReceivedSpan| span.span.end_time_unix_nano - span.span.start_time_unix_nano;
    let (before, after) = (
        u64::try_from(before).unwrap(),
        u64::try_from(after).unwrap(),
    );
    let call = spans.iter().find(|s| is_call(s)).unwrap();
    // Within the test's own clock reads around the call (a millisecond's leeway for the reading of the system
    // clock the spans' times are anchored to).
    assert!(
        call.span.start_time_unix_nano + 1_000_000 >= before
            && call.span.end_time_unix_nano <= after + 1_000_000,
        "{before} <= {call:?} <= {after}"
    );
    // The spans' durations are the metrics' own (f64 seconds keep nanoseconds exactly at this scale).
    assert_eq!(
        lasted(call),
        duration_nanos(&receiver, "grpc.client.call.duration", "OK"),
        "{call:?}"
    );
    let attempt = |status: &str| {
        spans
            .iter()
            .find(|s| {
                is_attempt(s) && s.attribute("rpc.grpc.status_code").as_deref() == Some(status)
            })
            .unwrap_or_else(|| panic!("no attempt with status {status}: {spans:#?}"))
    };
    let (failed, succeeded) = (attempt("14"), attempt("0"));
    for (span, status) in [(failed, "UNAVAILABLE"), (succeeded, "OK")] {
        assert_eq!(
            lasted(span),
            duration_nanos(&receiver, "grpc.client.attempt.duration", status),
            "{span:?}"
        );
        assert!(span.span.start_time_unix_nano >= call.span.start_time_unix_nano);
        assert!(span.span.end_time_unix_nano <= call.span.end_time_unix_nano);
    }
    assert!(failed.span.end_time_unix_nano <= succeeded.span.start_time_unix_nano);
    telemetry.shutdown().await.unwrap();
}

/// The `-`-separated fields of each request's `traceparent` (none for a request without one).
fn traceparent_fields(seen: &[Seen]) -> Vec<Vec<&str>> {
    seen.iter()
        .map(|s| {
            s.traceparent
                .as_deref()
                .unwrap_or_default()
                .split('-')
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn an_unsampled_call_exports_no_spans_but_still_carries_its_trace() {
    use tracing_subscriber::layer::SubscriberExt;

    let receiver = OtlpReceiver::start().await.unwrap();
    let server_log = Arc::new(Mutex::new(Vec::new()));
    let server = flaky_server(Arc::clone(&server_log)).await;
    let region =
        Locality::new("us-east", "us-east-a", "").with_endpoint(Endpoint::new(server.to_string()));
    let xds = xds_server(single_cluster(vec![region])).await;
    let mesh = Mesh::builder()
        .xds_server(xds.local_addr().to_string())
        .node_id(NODE)
        .mesh_options(support::options())
        .with_otlp(receiver.endpoint())
        .trace_sampling_ratio(0.0)
        .build()
        .await
        .unwrap();
    let telemetry = mesh.telemetry().unwrap();
    // This thread only (the runtime is single-threaded), so other tests' subscribers are not disturbed.
    let _subscriber = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(telemetry.tracing_layer()),
    );
    let mut client = GreeterClient::new(mesh.channel(TARGET).unwrap());
    say_hello(&mut client).await;
    telemetry.flush().await.unwrap();

    assert!(
        !receiver.spans().iter().any(|s| s.name() == METHOD),
        "an unsampled call exports no span: {:?}",
        receiver.spans()
    );
    // Both attempts still carried one trace id, flagged not sampled, so the server's decision follows the client's.
    let seen = server_log.lock().unwrap().clone();
    let parents = traceparent_fields(&seen);
    let [first, second] = &parents[..] else {
        panic!("two requests expected at the server: {seen:?}");
    };
    assert_eq!(first.len(), 4, "{seen:?}");
    assert_eq!(first.get(1), second.get(1), "one trace: {seen:?}");
    assert_ne!(
        first.get(2),
        second.get(2),
        "one parent span per attempt: {seen:?}"
    );
    assert_eq!(first.get(3), Some(&"00"));
    assert_eq!(second.get(3), Some(&"00"));

    // The next call (on this same thread, where the first call's span is kept for reuse) is a trace of its own.
    say_hello(&mut client).await;
    let seen = server_log.lock().unwrap().clone();
    let next = traceparent_fields(&seen[2..]);
    let [third, fourth] = &next[..] else {
        panic!("two more requests expected at the server: {seen:?}");
    };
    assert_eq!(third.get(1), fourth.get(1), "one trace: {seen:?}");
    assert_ne!(third.get(1), first.get(1), "a new trace per call: {seen:?}");
    assert_eq!(third.get(3), Some(&"00"));
    assert_eq!(fourth.get(3), Some(&"00"));
    telemetry.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_calls_are_labelled_other_so_paths_do_not_become_labels() {
    use tower::ServiceExt;

    let (receiver, _xds, mesh) = flaky_mesh(Arc::default()).await;
    let client = mesh.http_client(TARGET).unwrap();
    for item in 0..3 {
        let request = Request::get(format!("/items/{item}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let telemetry = mesh.telemetry().unwrap();
    telemetry.flush().await.unwrap();
    metrics_with(&receiver, "grpc.client.call.duration").await;
    let calls = receiver.latest_metric("grpc.client.call.duration").unwrap();
    let point = histogram_point(&calls);
    assert_eq!(point.count, 3, "three paths, one series");
    assert_eq!(
        labels(&point.attributes),
        owned(&[
            ("grpc.method", "other"),
            ("grpc.target", TARGET),
            ("http.response.status_code", "200"),
        ])
    );
    telemetry.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_control_plane_counts_as_a_server_failure() {
    let receiver = OtlpReceiver::start().await.unwrap();
    // A port nothing listens on.
    let nowhere = mesh_test_support::free_port([127, 0, 0, 1].into()).unwrap();
    let nowhere = SocketAddr::from(([127, 0, 0, 1], nowhere));
    let mesh = Mesh::builder()
        .xds_server(nowhere.to_string())
        .node_id(NODE)
        .with_otlp(receiver.endpoint())
        // Periodic exports deliver the counter once the client has tried.
        .metrics_export_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let _channel = mesh.channel(TARGET).unwrap();
    receiver
        .wait_for_metrics(PATIENCE, |metrics| {
            [
                "grpc.xds_client.server_failure",
                "grpc.xds_client.connected",
            ]
            .iter()
            .all(|name| metrics.iter().any(|m| m.metric.name == *name))
        })
        .await
        .unwrap();
    assert_eq!(connected(&receiver, &nowhere.to_string()), Some(0));
    let failures = receiver
        .latest_metric("grpc.xds_client.server_failure")
        .unwrap();
    assert_eq!(failures.metric.unit, "{failure}");
    let (point, _) = sum_point(&failures);
    assert_eq!(
        labels(&point.attributes),
        owned(&[("grpc.xds.server", nowhere.to_string().as_str())])
    );
    assert_eq!(
        point.value,
        Some(proto::metrics::v1::number_data_point::Value::AsInt(1))
    );
    mesh.telemetry().unwrap().shutdown().await.unwrap();
}

/// Counts the calls it is told about.
#[derive(Default)]
struct CallCounter(std::sync::atomic::AtomicUsize);

impl mesh_tower::metrics::Metrics for CallCounter {
    fn request_started(&self, _cluster: &str) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_applications_own_metrics_keep_receiving_events_next_to_opentelemetry() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let replica = backend([127, 0, 0, 1], "a").await;
    let xds = xds_server(single_cluster(vec![locality("us-east", 0, &[&replica])])).await;
    let counter = Arc::new(CallCounter::default());
    let mesh = Mesh::builder()
        .xds_server(xds.local_addr().to_string())
        .node_id(NODE)
        .mesh_options(support::options().with_metrics(Arc::clone(&counter) as _))
        .with_otlp(receiver.endpoint())
        .build()
        .await
        .unwrap();
    let mut client = GreeterClient::new(mesh.channel(TARGET).unwrap());
    for _ in 0..2 {
        say_hello(&mut client).await;
    }
    assert_eq!(counter.0.load(std::sync::atomic::Ordering::Relaxed), 2);
    mesh.telemetry().unwrap().flush().await.unwrap();
    metrics_with(&receiver, "grpc.client.call.duration").await;
}

/// The data points of the latest export of gauge `name` among `metrics`, as (labels, value).
fn gauge_points(metrics: &[ReceivedMetric], name: &str) -> Vec<(Vec<(String, String)>, i64)> {
    let Some(metric) = metrics.iter().rev().find(|m| m.metric.name == name) else {
        return Vec::new();
    };
    let Some(Data::Gauge(gauge)) = &metric.metric.data else {
        panic!("{name} is not a gauge: {:?}", metric.metric.data);
    };
    gauge
        .data_points
        .iter()
        .map(|point| {
            let value = match point.value {
                Some(proto::metrics::v1::number_data_point::Value::AsInt(value)) => value,
                ref other => panic!("{name}: not an integer: {other:?}"),
            };
            (labels(&point.attributes), value)
        })
        .collect()
}

/// The endpoint count of `state` in the latest export of `mesh.client.cluster.endpoints` among `metrics`.
fn endpoints_in(metrics: &[ReceivedMetric], state: &str) -> Option<i64> {
    gauge_points(metrics, "mesh.client.cluster.endpoints")
        .into_iter()
        .find(|(labels, _)| labels.contains(&("mesh.endpoint.state".to_owned(), state.to_owned())))
        .map(|(_, value)| value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_failover_and_the_endpoint_states_are_reported() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let primary = backend([127, 0, 13, 1], "primary").await;
    let secondary = backend([127, 0, 13, 2], "secondary").await;
    let xds = xds_server(single_cluster(vec![
        locality("us-east", 0, &[&primary]),
        locality("eu-west", 1, &[&secondary]),
    ]))
    .await;
    let mesh = mesh(xds.local_addr(), &receiver).await;
    let mut client = GreeterClient::new(mesh.channel(TARGET).unwrap());
    support::call_until(&mut client, |replica| replica == "primary").await;
    let telemetry = mesh.telemetry().unwrap();
    telemetry.flush().await.unwrap();
    receiver
        .wait_for_metrics(PATIENCE, |metrics| {
            endpoints_in(metrics, "usable") == Some(2)
        })
        .await
        .unwrap();
    let endpoints = gauge_points(&receiver.metrics(), "mesh.client.cluster.endpoints");
    let expected_labels = |state: &str| {
        owned(&[
            ("grpc.target", TARGET),
            ("grpc.lb.backend_service", "main"),
            ("mesh.endpoint.state", state),
        ])
    };
    for (state, count) in [
        ("usable", 2),
        ("ejected", 0),
        ("unreachable", 0),
        ("unhealthy", 0),
    ] {
        assert!(
            endpoints.contains(&(expected_labels(state), count)),
            "{state}: {endpoints:?}"
        );
    }

    // The whole primary priority goes away: traffic fails over to priority 1, and the change is counted.
    primary.shutdown().await.unwrap();
    support::call_until(&mut client, |replica| replica == "secondary").await;
    telemetry.flush().await.unwrap();
    receiver
        .wait_for_metrics(PATIENCE, |metrics| {
            endpoints_in(metrics, "unreachable") == Some(1)
        })
        .await
        .unwrap();
    assert_eq!(endpoints_in(&receiver.metrics(), "usable"), Some(1));
    let changes = receiver
        .latest_metric("mesh.client.cluster.priority_changes")
        .unwrap();
    assert_eq!(changes.metric.unit, "{change}");
    let Some(Data::Sum(sum)) = &changes.metric.data else {
        panic!("not a sum: {:?}", changes.metric.data);
    };
    let change = |from: &str, to: &str| {
        sum.data_points.iter().find_map(|point| {
            (labels(&point.attributes)
                == owned(&[
                    ("grpc.target", TARGET),
                    ("grpc.lb.backend_service", "main"),
                    ("mesh.priority.from", from),
                    ("mesh.priority.to", to),
                ]))
            .then_some(point.value)
        })
    };
    assert_eq!(
        change("none", "0"),
        Some(Some(proto::metrics::v1::number_data_point::Value::AsInt(1))),
        "the first endpoints made priority 0 active: {sum:?}"
    );
    assert_eq!(
        change("0", "1"),
        Some(Some(proto::metrics::v1::number_data_point::Value::AsInt(1))),
        "the failover: {sum:?}"
    );
    telemetry.shutdown().await.unwrap();
    xds.shutdown().await.unwrap();
    secondary.shutdown().await.unwrap();
}

/// The span queue is bounded as configured: spans ended faster than the exporter takes them are dropped beyond
/// `max_queued_spans` (calls are never held up), while the SDK's default queue keeps a burst of them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_beyond_the_configured_queue_are_dropped() {
    use mesh_tonic::telemetry::{Telemetry, TelemetryConfig};
    use opentelemetry::trace::Tracer as _;

    const SPANS: usize = 20;
    for queue in [Some(3), None] {
        let receiver = OtlpReceiver::start().await.unwrap();
        let mut config = TelemetryConfig::otlp(receiver.endpoint());
        config.max_queued_spans = queue;
        let telemetry = Telemetry::start(&config).unwrap();
        let tracer = telemetry.tracer();
        // Far faster than an export's round trip to the collector.
        for index in 0..SPANS {
            tracer.in_span(format!("burst-{index}"), |_| {});
        }
        telemetry.flush().await.unwrap();
        let received = receiver
            .spans()
            .iter()
            .filter(|span| span.name().starts_with("burst-"))
            .count();
        match queue {
            Some(size) => assert!(
                (1..SPANS).contains(&received) && received < SPANS - size,
                "queue of {size}: {received} of {SPANS} spans exported"
            ),
            None => assert_eq!(received, SPANS, "the default queue holds the burst"),
        }
        telemetry.shutdown().await.unwrap();
    }
}

/// `flush_spans` exports the finished spans at once, without waiting for the batch processor's delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_spans_exports_the_finished_spans_now() {
    use mesh_tonic::telemetry::{Telemetry, TelemetryConfig};
    use opentelemetry::trace::Tracer as _;

    let receiver = OtlpReceiver::start().await.unwrap();
    let telemetry = Telemetry::start(&TelemetryConfig::otlp(receiver.endpoint())).unwrap();
    telemetry.tracer().in_span("flushed", |_| {});
    telemetry.flush_spans().await.unwrap();
    assert!(
        receiver.spans().iter().any(|span| span.name() == "flushed"),
        "{:?}",
        receiver.spans()
    );
    telemetry.shutdown().await.unwrap();
}

/// The latest `grpc.xds_client.resources` among `metrics`, as `(authority, cache state, resource type) -> count`.
fn resource_counts(metrics: &[ReceivedMetric]) -> BTreeMap<(String, String, String), i64> {
    if let Some(metric) = metrics
        .iter()
        .rev()
        .find(|m| m.metric.name == "grpc.xds_client.resources")
    {
        assert_eq!(metric.metric.unit, "{resource}");
    }
    gauge_points(metrics, "grpc.xds_client.resources")
        .into_iter()
        .map(|(labels, count)| {
            let label = |key: &str| {
                labels
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| panic!("no {key} in {labels:?}"))
            };
            assert_eq!(labels.len(), 3, "{labels:?}");
            let key = (
                label("grpc.xds.authority"),
                label("grpc.xds.cache_state"),
                label("grpc.xds.resource_type"),
            );
            (key, count)
        })
        .collect()
}

/// The non-zero counts of [`resource_counts`]: a combination once seen stays, at 0, when it has no resource left.
fn nonzero(metrics: &[ReceivedMetric]) -> BTreeMap<(String, String, String), i64> {
    let mut counts = resource_counts(metrics);
    counts.retain(|_, count| *count != 0);
    counts
}

fn old_style(cache_state: &str, resource_type: &str) -> (String, String, String) {
    (
        "#old".to_owned(),
        cache_state.to_owned(),
        format!("envoy.config.{resource_type}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_xds_resources_gauge_counts_resources_by_cache_state_and_shows_a_nack() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let replica = backend([127, 0, 0, 1], "a").await;
    let config = single_cluster(vec![locality("us-east", 0, &[&replica])]);
    let xds = xds_server(config.clone()).await;
    let mesh = Mesh::builder()
        .xds_server(xds.local_addr().to_string())
        .node_id(NODE)
        .mesh_options(support::options())
        .with_otlp(receiver.endpoint())
        .metrics_export_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let mut client = GreeterClient::new(mesh.channel(TARGET).unwrap());
    say_hello(&mut client).await;

    // gRFC A78: one acked resource of each type, all old-style names.
    let acked: BTreeMap<_, _> = [
        (old_style("acked", "listener.v3.Listener"), 1),
        (old_style("acked", "route.v3.RouteConfiguration"), 1),
        (old_style("acked", "cluster.v3.Cluster"), 1),
        (old_style("acked", "endpoint.v3.ClusterLoadAssignment"), 1),
    ]
    .into_iter()
    .collect();
    let metrics = receiver
        .wait_for_metrics(PATIENCE, |metrics| nonzero(metrics) == acked)
        .await
        .unwrap_or_else(|timeout| {
            panic!("{timeout}; last counts: {:?}", nonzero(&receiver.metrics()))
        });
    assert_eq!(nonzero(&metrics), acked);
    // Each was requested before it arrived; none is now.
    let counts = resource_counts(&metrics);
    for resource_type in [
        "listener.v3.Listener",
        "route.v3.RouteConfiguration",
        "cluster.v3.Cluster",
        "endpoint.v3.ClusterLoadAssignment",
    ] {
        assert_eq!(
            counts.get(&old_style("requested", resource_type)),
            Some(&0),
            "{counts:?}"
        );
    }

    // The control plane breaks cluster "main" (a ring hash whose minimum exceeds its maximum): the client NACKs it
    // and keeps the cached version serving (gRFC A88).
    let mut snapshot = config.to_snapshot("2").unwrap();
    let any = snapshot
        .resources(type_url::CLUSTER)
        .and_then(|resources| resources.get("main"))
        .unwrap();
    let mut cluster = EnvoyCluster::decode(any.value.as_slice()).unwrap();
    cluster.lb_policy = LbPolicy::RingHash as i32;
    cluster.lb_config = Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
        minimum_ring_size: Some(UInt64Value { value: 4096 }),
        maximum_ring_size: Some(UInt64Value { value: 1024 }),
        ..Default::default()
    }));
    snapshot.insert(
        type_url::CLUSTER,
        "main",
        envoy_types::util::pack_any(cluster),
    );
    snapshot.set_version(type_url::CLUSTER, "2");
    xds.set_snapshot(None, snapshot);

    let mut nacked = acked.clone();
    nacked.remove(&old_style("acked", "cluster.v3.Cluster"));
    nacked.insert(old_style("nacked_but_cached", "cluster.v3.Cluster"), 1);
    let metrics = receiver
        .wait_for_metrics(PATIENCE, |metrics| nonzero(metrics) == nacked)
        .await
        .unwrap_or_else(|timeout| {
            panic!("{timeout}; last counts: {:?}", nonzero(&receiver.metrics()))
        });
    assert_eq!(nonzero(&metrics), nacked);
    assert_eq!(
        resource_counts(&metrics).get(&old_style("acked", "cluster.v3.Cluster")),
        Some(&0),
        "the acked cluster count drops to 0 rather than disappearing"
    );
    // The cached cluster keeps serving.
    say_hello(&mut client).await;
    mesh.telemetry().unwrap().shutdown().await.unwrap();
    xds.shutdown().await.unwrap();
}
