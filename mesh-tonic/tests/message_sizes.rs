//! gRFC A66's message-size histograms of real calls, received by the test OTLP collector: the client's
//! `grpc.client.attempt.{sent,rcvd}_total_compressed_message_size` per attempt (retries included), with the
//! attempt duration's labels, and sums equal to the gRPC message payloads that crossed the wire (5-byte message
//! prefixes excluded); and the xDS-enabled server's `grpc.server.call.{sent,rcvd}_total_compressed_message_size`,
//! equal to what the client received and sent.

// Fixtures fail the test that uses them by panicking, as assertions do.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
// Byte sums are whole numbers well below 2^52.
#![allow(clippy::float_cmp, clippy::cast_precision_loss)]

mod support;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_test_support::otlp::{OtlpReceiver, ReceivedMetric, proto, value_string};
use mesh_tonic::Mesh;
use mesh_tonic::testing::{GreeterClient, GreeterServer, HelloRequest};
use mesh_xds_client::bootstrap::{Bootstrap, ChannelCreds};
use mesh_xds_server::XdsServer as ControlPlane;
use mesh_xds_server::mesh::{
    Cluster, DEFAULT_SERVER_LISTENER_NAME_TEMPLATE, Endpoint, Locality, MeshConfig, Route,
    ServerListener, Service,
};
use prost::Message;
use proto::metrics::v1::metric::Data;
use support::{NODE, PATIENCE, backend, locality, single_cluster, xds_server};
use tokio::net::TcpListener;

const TARGET: &str = "xds:///greeter";
const SENT: &str = "grpc.client.attempt.sent_total_compressed_message_size";
const RECEIVED: &str = "grpc.client.attempt.rcvd_total_compressed_message_size";

type Labels = Vec<(String, String)>;

async fn mesh(xds: SocketAddr, receiver: &OtlpReceiver) -> Mesh {
    Mesh::builder()
        .xds_server(xds.to_string())
        .node_id(NODE)
        .mesh_options(support::options())
        .with_otlp(receiver.endpoint())
        .build()
        .await
        .unwrap()
}

fn labels(attributes: &[proto::common::v1::KeyValue]) -> Labels {
    let mut labels: Labels = attributes
        .iter()
        .map(|kv| {
            let value = kv.value.as_ref().map(value_string).unwrap_or_default();
            (kv.key.clone(), value)
        })
        .collect();
    labels.sort();
    labels
}

/// The points of histogram `metric`: labels, count, sum; sorted by labels.
fn histogram(metric: &ReceivedMetric) -> Vec<(Labels, u64, f64)> {
    let Some(Data::Histogram(histogram)) = &metric.metric.data else {
        panic!("{} is not a histogram", metric.metric.name);
    };
    let mut points: Vec<_> = histogram
        .data_points
        .iter()
        .map(|point| {
            (
                labels(&point.attributes),
                point.count,
                point.sum.unwrap_or(-1.0),
            )
        })
        .collect();
    points.sort_by(|a, b| a.0.cmp(&b.0));
    points
}

/// Flushes and waits for an export holding all of `names`.
async fn exported(mesh: &Mesh, receiver: &OtlpReceiver, names: &[&str]) {
    mesh.telemetry().unwrap().flush().await.unwrap();
    receiver
        .wait_for_metrics(PATIENCE, |metrics| {
            names
                .iter()
                .all(|name| metrics.iter().any(|m| m.metric.name == *name))
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_record_the_request_and_reply_message_bytes() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let replica = backend([127, 0, 0, 1], "a").await;
    let xds = xds_server(single_cluster(vec![locality("us-east", 0, &[&replica])])).await;
    let mesh = mesh(xds.local_addr(), &receiver).await;
    let mut client = GreeterClient::new(mesh.channel(TARGET).unwrap());
    // Two calls of different sizes: a 3000-byte name makes a request over 2 KiB.
    let names = ["x".repeat(3000), "short".to_owned()];
    let (mut sent, mut received) = (0, 0);
    for name in &names {
        let request = HelloRequest { name: name.clone() };
        sent += request.encoded_len();
        let reply = client.say_hello(request).await.unwrap().into_inner();
        assert_eq!(reply.message, format!("Hello, {name}!"));
        received += reply.encoded_len();
    }
    assert_eq!(sent, 3003 + 7, "the protobuf sizes, independently known");
    exported(&mesh, &receiver, &[SENT, RECEIVED]).await;

    let duration = receiver
        .latest_metric("grpc.client.attempt.duration")
        .unwrap();
    let [(duration_labels, 2, _)] = &histogram(&duration)[..] else {
        panic!("one series of two attempts: {:?}", histogram(&duration));
    };
    for (name, total) in [(SENT, sent), (RECEIVED, received)] {
        let metric = receiver.latest_metric(name).unwrap();
        assert_eq!(metric.metric.unit, "By", "{name}");
        let points = histogram(&metric);
        let [(labels, count, sum)] = &points[..] else {
            panic!("{name}: one series expected: {points:?}");
        };
        assert_eq!(labels, duration_labels, "{name}: the attempt's labels");
        assert_eq!(*count, 2, "{name}");
        assert_eq!(*sum, total as f64, "{name}: message payloads only");
        // gRFC A66's size buckets: 0, 1 KiB, 2 KiB, 4 KiB, ...
        let Some(Data::Histogram(data)) = &metric.metric.data else {
            unreachable!()
        };
        let point = &data.data_points[0];
        assert_eq!(&point.explicit_bounds[..4], &[0.0, 1024.0, 2048.0, 4096.0]);
    }
    let metric = receiver.latest_metric(SENT).unwrap();
    let Some(Data::Histogram(data)) = &metric.metric.data else {
        unreachable!()
    };
    // One request of 7 bytes (in (0, 1024]) and one of 3003 (in (2048, 4096]).
    assert_eq!(&data.data_points[0].bucket_counts[..5], &[0, 1, 0, 1, 0]);
    mesh.telemetry().unwrap().shutdown().await.unwrap();
}

/// Payload sizes of the request messages the streaming test sends, and of the messages its server answers.
const REQUEST_MESSAGES: [usize; 3] = [3000, 0, 10];
const REPLY_MESSAGES: [usize; 2] = [70_000, 5];

fn grpc_frame(payload: usize) -> Bytes {
    let mut frame = BytesMut::with_capacity(5 + payload);
    frame.put_u8(0);
    frame.put_u32(u32::try_from(payload).unwrap());
    frame.put_bytes(b'p', payload);
    frame.freeze()
}

/// A server that reads each request whole, answers first attempts UNAVAILABLE (trailers-only) and retries with
/// [`REPLY_MESSAGES`], then OK in trailers.
async fn flaky_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|request: Request<Incoming>| async move {
                    Ok::<_, Infallible>(answer(request).await)
                });
                let _ = http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

async fn answer(request: Request<Incoming>) -> Response<BoxBody<Bytes, Infallible>> {
    let retry = request.headers().contains_key("grpc-previous-rpc-attempts");
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let wire: usize = REQUEST_MESSAGES.iter().map(|len| 5 + len).sum();
    assert_eq!(body.len(), wire, "the server got the whole request");
    let response = Response::builder().header("content-type", "application/grpc");
    if !retry {
        return response
            .header("grpc-status", "14")
            .body(Empty::new().boxed())
            .unwrap();
    }
    let mut frames: VecDeque<Frame<Bytes>> = REPLY_MESSAGES
        .iter()
        .map(|len| Frame::data(grpc_frame(*len)))
        .collect();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    frames.push_back(Frame::trailers(trailers));
    response.body(Frames(frames).boxed()).unwrap()
}

/// A body of given frames (data and trailers), of a type the mesh cannot take whole (so a request is streamed and
/// replayed for retries).
struct Frames(VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_streaming_call_records_each_attempts_message_bytes() {
    use tower::ServiceExt;

    let receiver = OtlpReceiver::start().await.unwrap();
    let server = flaky_server().await;
    let region =
        Locality::new("us-east", "us-east-a", "").with_endpoint(Endpoint::new(server.to_string()));
    // `greeter` retries UNAVAILABLE.
    let xds = xds_server(single_cluster(vec![region])).await;
    let mesh = mesh(xds.local_addr(), &receiver).await;
    let client = mesh.http_client(TARGET).unwrap();
    // The messages cut across frames: a prefix split in two, a payload in two pieces.
    let wire: Vec<u8> = REQUEST_MESSAGES
        .iter()
        .flat_map(|len| grpc_frame(*len))
        .collect();
    let frames = [&wire[..3], &wire[3..1000], &wire[1000..3007], &wire[3007..]]
        .into_iter()
        .map(|piece| Frame::data(Bytes::copy_from_slice(piece)))
        .collect();
    let request = Request::post("/test.Stream/Upload")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Frames(frames))
        .unwrap();
    // A clone: the channel (and its subscription) must outlive the call.
    let response = client.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap();
    assert_eq!(
        body.trailers().and_then(|t| t.get("grpc-status")),
        Some(&HeaderValue::from_static("0"))
    );
    exported(&mesh, &receiver, &[SENT, RECEIVED]).await;

    let sent: usize = REQUEST_MESSAGES.iter().sum();
    let received: usize = REPLY_MESSAGES.iter().sum();
    let status = |points: &[(Labels, u64, f64)], status: &str| {
        points
            .iter()
            .find(|(labels, ..)| {
                labels
                    .iter()
                    .any(|(k, v)| k == "grpc.status" && v == status)
            })
            .map(|(_, count, sum)| (*count, *sum))
    };
    let sent_points = histogram(&receiver.latest_metric(SENT).unwrap());
    let received_points = histogram(&receiver.latest_metric(RECEIVED).unwrap());
    // Both attempts sent the whole request; only the retry received messages.
    assert_eq!(status(&sent_points, "UNAVAILABLE"), Some((1, sent as f64)));
    assert_eq!(status(&sent_points, "OK"), Some((1, sent as f64)));
    assert_eq!(status(&received_points, "UNAVAILABLE"), Some((1, 0.0)));
    assert_eq!(status(&received_points, "OK"), Some((1, received as f64)));
    assert_eq!(sent_points.len(), 2, "{sent_points:?}");
    mesh.telemetry().unwrap().shutdown().await.unwrap();
}

/// A mesh of node `node` under `control_plane`, with server Listener names, exporting as `service` to `receiver`.
async fn named_mesh(
    control_plane: SocketAddr,
    node: &str,
    service: &str,
    receiver: &OtlpReceiver,
) -> Mesh {
    let bootstrap = Bootstrap::builder()
        .server(control_plane.to_string(), ChannelCreds::Insecure)
        .node_id(node)
        .server_listener_resource_name_template(DEFAULT_SERVER_LISTENER_NAME_TEMPLATE)
        .build()
        .unwrap();
    Mesh::builder()
        .bootstrap(bootstrap)
        .with_otlp(receiver.endpoint())
        .service_name(service)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_records_the_bytes_the_client_sent_and_received() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let config = MeshConfig::new()
        .with_service(Service::new("greeter").with_route(Route::to_cluster("main")))
        .with_cluster(
            Cluster::new("main").with_locality(
                Locality::new("us-east", "us-east-a", "")
                    .with_endpoint(Endpoint::new(address.to_string())),
            ),
        )
        .with_server(ServerListener::new(address.to_string()));
    let control_plane = ControlPlane::builder()
        .config(config)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let server_mesh = named_mesh(control_plane.local_addr(), "server", "server", &receiver).await;
    let server = server_mesh
        .server()
        .serve_with_listener(socket, GreeterServer::new("replica-1"))
        .await
        .unwrap();
    let mut serving = server.watch_serving_state();
    tokio::time::timeout(PATIENCE, serving.wait_for(|s| s.is_serving()))
        .await
        .unwrap()
        .unwrap();
    let client_mesh = named_mesh(control_plane.local_addr(), "client", "client", &receiver).await;
    let mut client = GreeterClient::new(client_mesh.channel(TARGET).unwrap());
    // A 40 kB name: both messages span several HTTP/2 DATA frames.
    let request = HelloRequest {
        name: "n".repeat(40_000),
    };
    let reply = client
        .say_hello(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        request.encoded_len(),
        40_004,
        "the protobuf size, independently known"
    );
    for mesh in [&client_mesh, &server_mesh] {
        mesh.telemetry().unwrap().flush().await.unwrap();
    }
    let from = |metric: &ReceivedMetric, service: &str| {
        mesh_test_support::otlp::attribute(&metric.resource, "service.name").as_deref()
            == Some(service)
    };
    let server_sent = "grpc.server.call.sent_total_compressed_message_size";
    let server_received = "grpc.server.call.rcvd_total_compressed_message_size";
    let metrics = receiver
        .wait_for_metrics(PATIENCE, |metrics| {
            [(server_received, "server"), (SENT, "client")]
                .iter()
                .all(|(name, service)| {
                    metrics
                        .iter()
                        .any(|m| m.metric.name == *name && from(m, service))
                })
        })
        .await
        .unwrap();
    let sum = |name: &str, service: &str| {
        let metric = metrics
            .iter()
            .rev()
            .find(|m| m.metric.name == name && from(m, service))
            .unwrap_or_else(|| panic!("no {name} from the {service}"));
        assert_eq!(metric.metric.unit, "By");
        let points = histogram(metric);
        let [(labels, 1, sum)] = &points[..] else {
            panic!("{name}: one call expected: {points:?}");
        };
        (labels.clone(), *sum)
    };
    let ok = vec![
        (
            "grpc.method".to_owned(),
            "helloworld.Greeter/SayHello".to_owned(),
        ),
        ("grpc.status".to_owned(), "OK".to_owned()),
    ];
    // What one side sent, the other received: the message payloads, prefixes excluded.
    let request_bytes = request.encoded_len() as f64;
    let reply_bytes = reply.encoded_len() as f64;
    assert_eq!(sum(server_received, "server"), (ok.clone(), request_bytes));
    assert_eq!(sum(server_sent, "server"), (ok, reply_bytes));
    assert_eq!(sum(SENT, "client").1, request_bytes);
    assert_eq!(sum(RECEIVED, "client").1, reply_bytes);
    for mesh in [&client_mesh, &server_mesh] {
        mesh.telemetry().unwrap().shutdown().await.unwrap();
    }
    server.shutdown().await;
}

/// A server that reads each request whole, tells `read`, and never answers.
async fn silent_server(read: tokio::sync::mpsc::UnboundedSender<usize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let read = read.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let read = read.clone();
                    async move {
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let _ = read.send(body.len());
                        std::future::pending::<()>().await;
                        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
                    }
                });
                let _ = http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_cut_by_the_deadline_or_dropped_by_the_caller_still_end_with_what_they_sent() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let (read, mut requests) = tokio::sync::mpsc::unbounded_channel();
    let server = silent_server(read).await;
    let region =
        Locality::new("us-east", "us-east-a", "").with_endpoint(Endpoint::new(server.to_string()));
    let xds = xds_server(single_cluster(vec![region])).await;
    let mesh = mesh(xds.local_addr(), &receiver).await;
    let client = GreeterClient::new(mesh.channel(TARGET).unwrap());
    let request = HelloRequest {
        name: "given up".into(),
    };

    // Dropped by its caller once the server has the request.
    let dropped = tokio::spawn({
        let (mut client, request) = (client.clone(), request.clone());
        async move { client.say_hello(request).await }
    });
    assert_eq!(requests.recv().await, Some(5 + request.encoded_len()));
    dropped.abort();
    assert!(dropped.await.unwrap_err().is_cancelled());
    // Cut by its deadline.
    let mut call = tonic::Request::new(request.clone());
    call.set_timeout(std::time::Duration::from_millis(200));
    let status = client.clone().say_hello(call).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    exported(&mesh, &receiver, &[SENT, "grpc.client.attempt.duration"]).await;

    let by_status = |name: &str| -> Vec<(String, u64, f64)> {
        histogram(&receiver.latest_metric(name).unwrap())
            .into_iter()
            .map(|(labels, count, sum)| {
                let status = labels
                    .into_iter()
                    .find(|(k, _)| k == "grpc.status")
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                (status, count, sum)
            })
            .collect()
    };
    let sent = request.encoded_len() as f64;
    let expected = vec![
        ("CANCELLED".to_owned(), 1, sent),
        ("DEADLINE_EXCEEDED".to_owned(), 1, sent),
    ];
    let mut got = by_status(SENT);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, expected);
    let mut durations: Vec<(String, u64)> = by_status("grpc.client.attempt.duration")
        .into_iter()
        .map(|(status, count, _)| (status, count))
        .collect();
    durations.sort();
    assert_eq!(
        durations,
        vec![
            ("CANCELLED".to_owned(), 1),
            ("DEADLINE_EXCEEDED".to_owned(), 1)
        ]
    );
    mesh.telemetry().unwrap().shutdown().await.unwrap();
}
