//! The `xds-interop-server` binary over real sockets: its flags, services, `hostname` header and `rpc-behavior`.

// Fixtures fail the test that uses them by panicking, as assertions do.
#![allow(clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_tonic::interop::messages::{Empty, SimpleRequest};
use mesh_tonic::interop::{HOSTNAME_HEADER, TestServiceClient, XdsUpdateHealthClient};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const BINARY: &str = env!("CARGO_BIN_EXE_xds-interop-server");

/// A running server, killed when dropped.
struct Server {
    child: Child,
    test: SocketAddr,
    maintenance: SocketAddr,
}

impl Server {
    /// Starts the binary on 127.0.0.1 with `args` (plus `--port=0` unless given) and waits for its
    /// `listening test=ADDR maintenance=ADDR` line.
    fn start(args: &[&str]) -> Self {
        let mut command = Command::new(BINARY);
        command.arg("--bind_address=127.0.0.1");
        if !args.iter().any(|arg| arg.starts_with("--port")) {
            command.arg("--port=0");
        }
        let mut child = command
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start xds-interop-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the listening line");
        let address = |key: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                .parse()
                .expect("an address")
        };
        let (test, maintenance) = (address("test="), address("maintenance="));
        Self {
            child,
            test,
            maintenance,
        }
    }

    async fn channel(address: SocketAddr) -> Channel {
        Endpoint::from_shared(format!("http://{address}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    }

    async fn test_client(&self) -> TestServiceClient<Channel> {
        TestServiceClient::new(Self::channel(self.test).await)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request carrying `rpc-behavior: behavior` and any `extra` headers.
fn with_behavior<T>(
    message: T,
    behavior: &str,
    extra: &[(&'static str, &str)],
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("rpc-behavior", behavior.parse().expect("header value"));
    for (key, value) in extra {
        request
            .metadata_mut()
            .insert(*key, value.parse().expect("header value"));
    }
    request
}

fn hostname_header<T>(response: &tonic::Response<T>) -> Option<&str> {
    response
        .metadata()
        .get(HOSTNAME_HEADER)
        .and_then(|value| value.to_str().ok())
}

/// A free port on 127.0.0.1 (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test]
async fn unary_call_returns_hostname_in_body_and_header() {
    let server = Server::start(&["--hostname=host-a", "--server_id=id-a"]);
    let mut client = server.test_client().await;
    let response = client
        .unary_call(SimpleRequest {
            response_size: 10,
            fill_server_id: true,
            ..SimpleRequest::default()
        })
        .await
        .expect("UnaryCall");
    assert_eq!(hostname_header(&response), Some("host-a"));
    let body = response.into_inner();
    assert_eq!(body.hostname, "host-a");
    assert_eq!(body.server_id, "id-a");
    assert_eq!(body.payload.expect("payload").body.len(), 10);
}

#[tokio::test]
async fn server_id_alone_names_the_peer() {
    let server = Server::start(&["--server_id", "only-id", "--secure_mode=false"]);
    let response = server
        .test_client()
        .await
        .unary_call(SimpleRequest::default())
        .await
        .expect("UnaryCall");
    assert_eq!(hostname_header(&response), Some("only-id"));
    assert_eq!(response.get_ref().hostname, "only-id");
}

#[tokio::test]
async fn empty_call_works_and_names_the_host() {
    let server = Server::start(&["--hostname=host-e"]);
    let response = server
        .test_client()
        .await
        .empty_call(Empty {})
        .await
        .expect("EmptyCall");
    assert_eq!(hostname_header(&response), Some("host-e"));
}

#[tokio::test]
async fn error_code_is_answered_trailers_only() {
    let server = Server::start(&["--hostname=host-x"]);
    let status = server
        .test_client()
        .await
        .unary_call(with_behavior(
            SimpleRequest::default(),
            "error-code-14",
            &[],
        ))
        .await
        .expect_err("UNAVAILABLE");
    assert_eq!(status.code(), Code::Unavailable);

    // On the wire: one HEADERS frame with the status (and the hostname), no data, no separate trailers.
    let stream = tokio::net::TcpStream::connect(server.test)
        .await
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let request = http::Request::post(format!(
        "http://{}/grpc.testing.TestService/UnaryCall",
        server.test
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("rpc-behavior", "error-code-14")
    // One empty, uncompressed message.
    .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
    .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(
        response.headers().get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"14"[..]),
        "grpc-status must be in the response headers: {:?}",
        response.headers()
    );
    assert_eq!(
        response
            .headers()
            .get(HOSTNAME_HEADER)
            .map(|v| v.as_bytes()),
        Some(&b"host-x"[..])
    );
    let collected = response.into_body().collect().await.expect("body");
    assert!(
        collected.trailers().is_none(),
        "no trailers after the headers"
    );
    assert!(collected.to_bytes().is_empty(), "no response message");
}

#[tokio::test]
async fn succeed_on_retry_attempt_applies_only_on_that_attempt() {
    let server = Server::start(&[]);
    let mut client = server.test_client().await;
    for spelling in ["succeed", "success"] {
        let behavior = format!("{spelling}-on-retry-attempt-1,error-code-14");
        client
            .unary_call(with_behavior(
                SimpleRequest::default(),
                &behavior,
                &[("grpc-previous-rpc-attempts", "1")],
            ))
            .await
            .expect("the retry attempt succeeds");
        let status = client
            .unary_call(with_behavior(SimpleRequest::default(), &behavior, &[]))
            .await
            .expect_err("the first attempt fails");
        assert_eq!(status.code(), Code::Unavailable);
        let status = client
            .empty_call(with_behavior(
                Empty {},
                &behavior,
                &[("grpc-previous-rpc-attempts", "2")],
            ))
            .await
            .expect_err("another attempt fails");
        assert_eq!(status.code(), Code::Unavailable);
    }
}

#[tokio::test]
async fn hostname_prefix_applies_only_on_the_matching_host() {
    let a = Server::start(&["--hostname=host-a"]);
    let b = Server::start(&["--hostname=host-b"]);
    let behavior = "hostname=host-b error-code-4";
    a.test_client()
        .await
        .unary_call(with_behavior(SimpleRequest::default(), behavior, &[]))
        .await
        .expect("host-a is not targeted");
    let status = b
        .test_client()
        .await
        .unary_call(with_behavior(SimpleRequest::default(), behavior, &[]))
        .await
        .expect_err("host-b is targeted");
    assert_eq!(status.code(), Code::DeadlineExceeded);
}

#[tokio::test]
async fn sleep_delays_the_answer() {
    let server = Server::start(&[]);
    let mut client = server.test_client().await;
    client.empty_call(Empty {}).await.expect("warm up");
    let started = Instant::now();
    client
        .unary_call(with_behavior(SimpleRequest::default(), "sleep-1", &[]))
        .await
        .expect("UnaryCall after the sleep");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn keep_open_never_answers() {
    let server = Server::start(&[]);
    let mut client = server.test_client().await;
    // No grpc-timeout header: the server would end the call itself at the deadline.
    let call = client.empty_call(with_behavior(Empty {}, "keep-open", &[]));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), call)
            .await
            .is_err(),
        "keep-open must not answer"
    );
    // The connection still serves other calls.
    client.empty_call(Empty {}).await.expect("EmptyCall");
}

async fn health_status(channel: Channel) -> ServingStatus {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("Health.Check");
    response.into_inner().status()
}

#[tokio::test]
async fn set_not_serving_and_back_on_the_shared_port() {
    let server = Server::start(&[]);
    assert_eq!(server.test, server.maintenance);
    let channel = Server::channel(server.maintenance).await;
    let mut update = XdsUpdateHealthClient::new(channel.clone());
    assert_eq!(health_status(channel.clone()).await, ServingStatus::Serving);
    update.set_not_serving().await.expect("SetNotServing");
    assert_eq!(
        health_status(channel.clone()).await,
        ServingStatus::NotServing
    );
    update.set_serving().await.expect("SetServing");
    assert_eq!(health_status(channel).await, ServingStatus::Serving);
}

#[tokio::test]
async fn separate_maintenance_port_holds_only_the_maintenance_services() {
    let maintenance_port = free_port().to_string();
    let server = Server::start(&["--maintenance_port", &maintenance_port]);
    assert_ne!(server.test, server.maintenance);
    assert_eq!(server.maintenance.port().to_string(), maintenance_port);

    let maintenance = Server::channel(server.maintenance).await;
    let mut update = XdsUpdateHealthClient::new(maintenance.clone());
    update.set_not_serving().await.expect("SetNotServing");
    assert_eq!(
        health_status(maintenance.clone()).await,
        ServingStatus::NotServing
    );
    update.set_serving().await.expect("SetServing");
    assert_eq!(
        health_status(maintenance.clone()).await,
        ServingStatus::Serving
    );
    let status = TestServiceClient::new(maintenance)
        .empty_call(Empty {})
        .await
        .expect_err("no TestService on the maintenance port");
    assert_eq!(status.code(), Code::Unimplemented);

    let test = Server::channel(server.test).await;
    server
        .test_client()
        .await
        .empty_call(Empty {})
        .await
        .expect("EmptyCall");
    let status = XdsUpdateHealthClient::new(test)
        .set_serving()
        .await
        .expect_err("no maintenance services on the test port");
    assert_eq!(status.code(), Code::Unimplemented);
}

#[test]
fn usage_errors_exit_2_naming_the_flag() {
    for (args, flag) in [
        (&["--port=eighty"][..], "--port"),
        (&["--maintenance_port=-1"][..], "--maintenance_port"),
        (&["--secure_mode=true"][..], "--secure_mode"),
        (&["--secure_mode"][..], "--secure_mode"),
        (&["--bind_address=somewhere"][..], "--bind_address"),
        (&["--no_such_flag=1"][..], "--no_such_flag"),
        (&["--server_id"][..], "--server_id"),
    ] {
        let output = Command::new(BINARY).args(args).output().expect("run");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
    let help = Command::new(BINARY).arg("--help").output().expect("run");
    assert_eq!(help.status.code(), Some(0));
}
