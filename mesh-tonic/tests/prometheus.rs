//! The Prometheus scrape page (`MeshBuilder::prometheus`): after real calls, `GET /metrics` on the admin endpoint
//! (a real socket, HTTP/1.1 as Prometheus and curl ask) answers the text exposition format 0.0.4, which the
//! Prometheus project's own Python parser reads back with the calls' counts, histograms and labels; next to an
//! OTLP collector, both receive the metrics.

// Fixtures fail the test that uses them by panicking, as assertions do.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
// Counts and byte sums are whole numbers well below 2^52.
#![allow(clippy::float_cmp, clippy::cast_precision_loss)]

mod support;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use mesh_test_support::otlp::OtlpReceiver;
use mesh_test_support::{prometheus_python, script};
use mesh_tonic::Mesh;
use mesh_tonic::testing::{GreeterClient, HelloRequest};
use prost::Message;
use serde_json::Value;
use support::{NODE, PATIENCE, backend, locality, single_cluster, xds_server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TARGET: &str = "xds:///greeter";

/// An HTTP/1.1 GET of `path`: status, content type and body (not chunked: the page is sent whole).
async fn get(address: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (status, content_type, body.to_owned())
}

/// A sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// The page as prometheus_client's parser reads it: family types and samples.
struct Parsed {
    families: serde_json::Map<String, Value>,
    samples: Vec<Sample>,
}

impl Parsed {
    /// The value of the one sample named `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let matching: Vec<_> = self
            .samples
            .iter()
            .filter(|(sample, sample_labels, _)| {
                sample == name
                    && labels.iter().all(|(key, value)| {
                        sample_labels.iter().any(|(k, v)| k == key && v == value)
                    })
            })
            .collect();
        let [(_, _, value)] = matching[..] else {
            panic!(
                "one {name} {labels:?} expected: {matching:?}\nall: {:?}",
                self.samples
            );
        };
        *value
    }
}

fn parse(page: &str) -> Parsed {
    let python = prometheus_python().unwrap();
    let mut child = Command::new(python)
        .arg(script("prometheus_parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the parser refused the page: {}\n{page}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let samples = parsed["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sample| {
            let labels = sample[1]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            let value = sample[2]
                .as_f64()
                .unwrap_or_else(|| match sample[2].as_str() {
                    Some("+Inf") => f64::INFINITY,
                    other => panic!("value {other:?}"),
                });
            (sample[0].as_str().unwrap().to_owned(), labels, value)
        })
        .collect();
    Parsed {
        families: parsed["families"].as_object().unwrap().clone(),
        samples,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_serves_the_calls_metrics_for_prometheus() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let replica = backend([127, 0, 0, 1], "a").await;
    let xds = xds_server(single_cluster(vec![locality("us-east", 0, &[&replica])])).await;
    let mesh = Mesh::builder()
        .xds_server(xds.local_addr().to_string())
        .node_id(NODE)
        .mesh_options(support::options())
        .with_otlp(receiver.endpoint())
        .service_name("scraped \"client\"")
        .prometheus()
        .admin_port(0)
        .build()
        .await
        .unwrap();
    let admin = mesh.admin_addr().unwrap();
    assert_eq!(admin.ip().to_string(), "127.0.0.1");
    let mut client = GreeterClient::new(mesh.channel(TARGET).unwrap());
    let request = HelloRequest {
        name: "prometheus".into(),
    };
    for _ in 0..3 {
        client.say_hello(request.clone()).await.unwrap();
    }

    let (status, content_type, page) = get(admin, "/metrics").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let parsed = parse(&page);

    // Types as Prometheus reads them: counters lose `_total` in their family name, histograms keep theirs.
    for (family, kind) in [
        ("grpc_client_attempt_started", "counter"),
        ("grpc_client_attempt_duration_seconds", "histogram"),
        ("grpc_client_call_duration_seconds", "histogram"),
        (
            "grpc_client_attempt_sent_total_compressed_message_size_bytes",
            "histogram",
        ),
        ("grpc_xds_client_connected", "gauge"),
        ("grpc_xds_client_resources", "gauge"),
        ("target_info", "gauge"),
    ] {
        assert_eq!(
            parsed.families.get(family).and_then(Value::as_str),
            Some(kind),
            "{family}: {:?}",
            parsed.families
        );
    }
    let method = ("grpc_method", "helloworld.Greeter/SayHello");
    let target = ("grpc_target", TARGET);
    assert_eq!(
        parsed.value("grpc_client_attempt_started_total", &[method, target]),
        3.0
    );
    let attempt = [
        method,
        target,
        ("grpc_status", "OK"),
        (
            "grpc_lb_locality",
            r#"{region="us-east", zone="us-east-a", sub_zone=""}"#,
        ),
        ("grpc_lb_backend_service", "main"),
    ];
    assert_eq!(
        parsed.value("grpc_client_attempt_duration_seconds_count", &attempt),
        3.0
    );
    let mut le_inf = attempt.to_vec();
    le_inf.push(("le", "+Inf"));
    assert_eq!(
        parsed.value("grpc_client_attempt_duration_seconds_bucket", &le_inf),
        3.0
    );
    assert!(parsed.value("grpc_client_attempt_duration_seconds_sum", &attempt) > 0.0);
    // gRFC A66's sizes: three requests of a known size, each in the (0, 1024] bucket.
    let sent = "grpc_client_attempt_sent_total_compressed_message_size_bytes";
    assert_eq!(
        parsed.value(&format!("{sent}_sum"), &attempt),
        3.0 * request.encoded_len() as f64
    );
    let mut le_1024 = attempt.to_vec();
    le_1024.push(("le", "1024"));
    assert_eq!(parsed.value(&format!("{sent}_bucket"), &le_1024), 3.0);
    // gRFC A78: the xDS client's resources by authority, cache state and type.
    assert_eq!(
        parsed.value(
            "grpc_xds_client_resources",
            &[
                ("grpc_xds_authority", "#old"),
                ("grpc_xds_cache_state", "acked"),
                ("grpc_xds_resource_type", "envoy.config.cluster.v3.Cluster"),
            ]
        ),
        1.0
    );
    // The resource, quotes escaped and read back.
    assert_eq!(
        parsed.value("target_info", &[("service_name", "scraped \"client\"")]),
        1.0
    );

    // The same provider still exports to the collector.
    mesh.telemetry().unwrap().flush().await.unwrap();
    receiver
        .wait_for_metrics(PATIENCE, |metrics| {
            metrics
                .iter()
                .any(|m| m.metric.name == "grpc.client.attempt.started")
        })
        .await
        .unwrap();
    mesh.telemetry().unwrap().shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_alone_needs_no_collector_but_needs_the_admin_endpoint() {
    let error = Mesh::builder()
        .without_xds()
        .prometheus()
        .build()
        .await
        .unwrap_err();
    assert!(error.to_string().contains(".admin_port"), "{error}");

    // Without a collector, the page alone has the metrics.
    let replica = backend([127, 0, 0, 1], "a").await;
    let xds = xds_server(single_cluster(vec![locality("us-east", 0, &[&replica])])).await;
    let mesh = Mesh::builder()
        .xds_server(xds.local_addr().to_string())
        .node_id(NODE)
        .prometheus()
        .admin_port(0)
        .build()
        .await
        .unwrap();
    assert_eq!(mesh.telemetry().unwrap().config().endpoint, None);
    let mut client = GreeterClient::new(mesh.channel(TARGET).unwrap());
    client
        .say_hello(HelloRequest { name: "x".into() })
        .await
        .unwrap();
    let (status, _, page) = get(mesh.admin_addr().unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    let line = "grpc_client_attempt_started_total{grpc_method=\"helloworld.Greeter/SayHello\",grpc_target=\"xds:///greeter\"} 1";
    assert!(page.lines().any(|l| l == line), "{line} in:\n{page}");

    // A mesh without it answers 404 on /metrics.
    let plain = Mesh::builder()
        .without_xds()
        .admin_port(0)
        .build()
        .await
        .unwrap();
    let (status, _, body) = get(plain.admin_addr().unwrap(), "/metrics").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains(".prometheus()"), "{body}");
}
