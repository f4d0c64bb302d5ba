//! Telemetry of the xDS-enabled server, received by the test OTLP collector: a call from a mesh channel to a mesh
//! server is one trace (the server's SERVER span a child of the client's attempt span), and the server records
//! gRFC A66's `grpc.server.call.*` metrics with `grpc.method` and `grpc.status`.

// Fixtures fail the test that uses them by panicking, as assertions do.
#![allow(clippy::unwrap_used, clippy::panic)]
// Byte sums are whole numbers well below 2^52.
#![allow(clippy::float_cmp, clippy::cast_precision_loss)]

use std::net::SocketAddr;
use std::time::Duration;

use mesh_test_support::otlp::{OtlpReceiver, ReceivedMetric, ReceivedSpan, proto, value_string};
use mesh_tonic::Mesh;
use mesh_tonic::testing::{GreeterClient, GreeterServer, HelloReply, HelloRequest};
use mesh_xds_client::bootstrap::{Bootstrap, ChannelCreds};
use mesh_xds_server::XdsServer as ControlPlane;
use mesh_xds_server::mesh::{
    Cluster, DEFAULT_SERVER_LISTENER_NAME_TEMPLATE, Endpoint, Locality, MeshConfig, Route,
    ServerListener, Service,
};
use prost::Message;
use proto::metrics::v1::metric::Data;
use proto::trace::v1::span::SpanKind;
use tokio::net::TcpListener;

const METHOD: &str = "helloworld.Greeter/SayHello";
const PATIENCE: Duration = Duration::from_secs(10);

type Labels = Vec<(String, String)>;

/// A mesh of node `node` under `control_plane`, with server Listener names, exporting as `service` to `receiver`.
async fn mesh(
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

fn labels(attributes: &[proto::common::v1::KeyValue]) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = attributes
        .iter()
        .map(|kv| {
            let value = kv.value.as_ref().map(value_string).unwrap_or_default();
            (kv.key.clone(), value)
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

/// The histogram points of `metric` by their labels.
fn histogram(metric: &ReceivedMetric) -> Vec<(Labels, u64, f64)> {
    let Some(Data::Histogram(histogram)) = &metric.metric.data else {
        panic!("{} is not a histogram", metric.metric.name);
    };
    histogram
        .data_points
        .iter()
        .map(|p| (labels(&p.attributes), p.count, p.sum.unwrap_or_default()))
        .collect()
}

fn from_server(metric: &ReceivedMetric) -> bool {
    value_string_of(&metric.resource, "service.name") == "greeter-server"
}

fn value_string_of(attributes: &[proto::common::v1::KeyValue], key: &str) -> String {
    mesh_test_support::otlp::attribute(attributes, key).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_one_trace_from_the_client_attempt_into_the_server_which_records_its_metrics() {
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

    let server_mesh = mesh(
        control_plane.local_addr(),
        "server",
        "greeter-server",
        &receiver,
    )
    .await;
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

    let client_mesh = mesh(
        control_plane.local_addr(),
        "client",
        "greeter-client",
        &receiver,
    )
    .await;
    let client_telemetry = client_mesh.telemetry().unwrap();
    client_telemetry.init_tracing().unwrap();
    let mut client = GreeterClient::new(client_mesh.channel("xds:///greeter").unwrap());
    let mut reply_size = 0;
    for _ in 0..2 {
        let reply = client
            .say_hello(HelloRequest {
                name: "trace".into(),
            })
            .await
            .unwrap()
            .into_inner();
        reply_size = reply.encoded_len();
        assert_eq!(
            reply,
            HelloReply {
                message: "Hello, trace!".into()
            }
        );
    }
    client_telemetry.flush().await.unwrap();
    let server_telemetry = server_mesh.telemetry().unwrap();
    server_telemetry.flush().await.unwrap();

    let is_attempt =
        |s: &ReceivedSpan| s.name() == METHOD && s.span.kind == SpanKind::Client as i32;
    let is_server = |s: &ReceivedSpan| s.name() == METHOD && s.span.kind == SpanKind::Server as i32;
    let spans = receiver
        .wait_for_spans(PATIENCE, |spans| {
            spans.iter().filter(|s| is_attempt(s)).count() >= 2
                && spans.iter().filter(|s| is_server(s)).count() >= 2
        })
        .await
        .unwrap();
    let attempts: Vec<&ReceivedSpan> = spans.iter().filter(|s| is_attempt(s)).collect();
    let servers: Vec<&ReceivedSpan> = spans.iter().filter(|s| is_server(s)).collect();
    assert_eq!(servers.len(), 2, "{servers:#?}");
    for server_span in servers {
        // Each server span continues the trace of one client attempt, as its child.
        let parent = attempts
            .iter()
            .find(|a| a.span_id() == server_span.parent_span_id())
            .unwrap_or_else(|| panic!("no client attempt is the parent of {server_span:#?}"));
        assert_eq!(server_span.trace_id(), parent.trace_id());
        assert_eq!(
            server_span.resource_attribute("service.name").as_deref(),
            Some("greeter-server")
        );
        assert_eq!(
            parent.resource_attribute("service.name").as_deref(),
            Some("greeter-client")
        );
        assert_eq!(server_span.attribute("rpc.system").as_deref(), Some("grpc"));
        assert_eq!(
            server_span.attribute("rpc.service").as_deref(),
            Some("helloworld.Greeter")
        );
        assert_eq!(
            server_span.attribute("rpc.method").as_deref(),
            Some("SayHello")
        );
        assert_eq!(
            server_span.attribute("rpc.grpc.status_code").as_deref(),
            Some("0")
        );
        assert_eq!(
            server_span.attribute("network.peer.address").as_deref(),
            Some("127.0.0.1")
        );
    }

    let metrics = receiver
        .wait_for_metrics(PATIENCE, |metrics| {
            metrics
                .iter()
                .any(|m| from_server(m) && m.metric.name == "grpc.server.call.duration")
        })
        .await
        .unwrap();
    let latest = |name: &str| {
        metrics
            .iter()
            .rev()
            .find(|m| from_server(m) && m.metric.name == name)
            .unwrap_or_else(|| panic!("no {name} from the server"))
    };
    let started = latest("grpc.server.call.started");
    assert_eq!(started.metric.unit, "{call}");
    let Some(Data::Sum(sum)) = &started.metric.data else {
        panic!("grpc.server.call.started is not a sum");
    };
    let points: Vec<(Labels, Option<proto::metrics::v1::number_data_point::Value>)> = sum
        .data_points
        .iter()
        .map(|p| (labels(&p.attributes), p.value))
        .collect();
    assert_eq!(
        points,
        vec![(
            owned(&[("grpc.method", METHOD)]),
            Some(proto::metrics::v1::number_data_point::Value::AsInt(2))
        )]
    );
    let ok = owned(&[("grpc.method", METHOD), ("grpc.status", "OK")]);
    let duration = latest("grpc.server.call.duration");
    assert_eq!(duration.metric.unit, "s");
    let [(duration_labels, count, sum)] = &histogram(duration)[..] else {
        panic!("one series expected: {duration:?}");
    };
    assert_eq!((duration_labels, *count), (&ok, 2));
    assert!(*sum > 0.0);
    let sent = latest("grpc.server.call.sent_total_compressed_message_size");
    assert_eq!(sent.metric.unit, "By");
    let [(sent_labels, count, sum)] = &histogram(sent)[..] else {
        panic!("one series expected: {sent:?}");
    };
    assert_eq!((sent_labels, *count), (&ok, 2));
    // The reply messages' bytes, without gRPC's 5-byte message prefixes.
    assert_eq!(*sum, (2 * reply_size) as f64);

    // A path outside gRPC's `/service/method` shape is recorded as method `other` (its series made only now).
    let mut grpc = tonic::client::Grpc::new(client_mesh.channel("xds:///greeter").unwrap());
    grpc.ready().await.unwrap();
    let refused = grpc
        .unary::<HelloRequest, HelloReply, _>(
            tonic::Request::new(HelloRequest { name: "x".into() }),
            http::uri::PathAndQuery::from_static("/not-a-method"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented, "{refused:?}");
    server_telemetry.flush().await.unwrap();
    let other = owned(&[("grpc.method", "other")]);
    let metrics = receiver
        .wait_for_metrics(PATIENCE, |metrics| {
            metrics.iter().any(|m| {
                from_server(m)
                    && m.metric.name == "grpc.server.call.duration"
                    && histogram(m)
                        .iter()
                        .any(|(labels, _, _)| labels.contains(&other[0]))
            })
        })
        .await
        .unwrap();
    let duration = metrics
        .iter()
        .rev()
        .find(|m| from_server(m) && m.metric.name == "grpc.server.call.duration")
        .unwrap();
    let mut series: Vec<(Labels, u64)> = histogram(duration)
        .into_iter()
        .map(|(labels, count, _)| (labels, count))
        .collect();
    series.sort();
    assert_eq!(
        series,
        vec![
            (ok.clone(), 2),
            (
                owned(&[("grpc.method", "other"), ("grpc.status", "UNIMPLEMENTED")]),
                1
            ),
        ]
    );

    client_telemetry.shutdown().await.unwrap();
    server_telemetry.shutdown().await.unwrap();
    server.shutdown().await;
}

/// Kills the child process when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interop_server_exports_to_the_collector_named_by_the_otel_variables() {
    use std::io::BufRead;

    use mesh_tonic::interop::TestServiceClient;
    use mesh_tonic::interop::messages::SimpleRequest;

    let receiver = OtlpReceiver::start().await.unwrap();
    let control_plane = ControlPlane::builder()
        .config(MeshConfig::new())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let bootstrap = format!(
        r#"{{"xds_servers": [{{"server_uri": "{}", "channel_creds": [{{"type": "insecure"}}]}}],
          "node": {{"id": "interop-server"}},
          "server_listener_resource_name_template": "{DEFAULT_SERVER_LISTENER_NAME_TEMPLATE}"}}"#,
        control_plane.local_addr()
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xds-interop-server"))
        .args([
            "--secure_mode=true",
            "--port=0",
            "--maintenance_port=0",
            "--bind_address=127.0.0.1",
        ])
        .env("GRPC_XDS_BOOTSTRAP_CONFIG", bootstrap)
        .env_remove("GRPC_XDS_BOOTSTRAP")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_SERVICE_NAME", "interop-server")
        .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=interop")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "100")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _child = Child(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    let test: SocketAddr = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("test="))
        .unwrap_or_else(|| panic!("no test= in {line:?}"))
        .parse()
        .unwrap();
    control_plane
        .set_config(
            None,
            &MeshConfig::new().with_server(ServerListener::new(test.to_string())),
        )
        .unwrap();

    // A caller with its own trace: the server's span must continue it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{test}"))
        .unwrap()
        .connect_lazy();
    let mut client = TestServiceClient::new(channel);
    tokio::time::timeout(PATIENCE, async {
        loop {
            let mut request = tonic::Request::new(SimpleRequest::default());
            request.metadata_mut().insert(
                "traceparent",
                format!("00-{trace_id}-{caller_span}-01").parse().unwrap(),
            );
            if client.unary_call(request).await.is_ok() {
                return;
            }
        }
    })
    .await
    .expect("the test port serves once the Listener arrives");

    let spans = receiver
        .wait_for_spans(PATIENCE, |spans| {
            spans.iter().any(|s| {
                s.span.kind == SpanKind::Server as i32
                    && s.attribute("rpc.grpc.status_code").as_deref() == Some("0")
            })
        })
        .await
        .unwrap();
    let served = spans
        .iter()
        .find(|s| {
            s.span.kind == SpanKind::Server as i32
                && s.attribute("rpc.grpc.status_code").as_deref() == Some("0")
        })
        .unwrap();
    assert_eq!(served.name(), "grpc.testing.TestService/UnaryCall");
    assert_eq!(served.trace_id(), trace_id);
    assert_eq!(served.parent_span_id(), caller_span);
    assert_eq!(
        served.resource_attribute("service.name").as_deref(),
        Some("interop-server")
    );
    assert_eq!(
        served
            .resource_attribute("deployment.environment")
            .as_deref(),
        Some("interop")
    );
    receiver
        .wait_for_metrics(PATIENCE, |metrics| {
            metrics.iter().any(|m| {
                m.metric.name == "grpc.server.call.duration"
                    && histogram(m).iter().any(|(labels, count, _)| {
                        *count >= 1
                            && *labels
                                == owned(&[
                                    ("grpc.method", "grpc.testing.TestService/UnaryCall"),
                                    ("grpc.status", "OK"),
                                ])
                    })
            })
        })
        .await
        .unwrap();
}
