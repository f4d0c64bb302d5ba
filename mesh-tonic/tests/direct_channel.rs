//! Channels without xDS: `dns:///` targets and static address lists through the same request path, and the plain
//! HTTP entry point.
// Helpers fail their test by panicking, as assertions do.
#![allow(clippy::unwrap_used)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mesh_tonic::Mesh;
use mesh_tonic::testing::GreeterClient;
use support::{backend, call, tally};
use tokio::net::TcpListener;
use tonic::Code;
use tower::ServiceExt;

async fn mesh_without_xds() -> Mesh {
    Mesh::builder()
        .without_xds()
        .mesh_options(support::options())
        .wait_for_ready(Duration::from_secs(2))
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_target_with_an_ip_reaches_its_backend() {
    let replica = backend([127, 0, 9, 1], "dns-ip").await;
    let mesh = mesh_without_xds().await;
    let target = format!("dns:///{}", replica.address());
    let mut client = GreeterClient::new(mesh.channel(&target).unwrap());

    assert_eq!(tally(&mut client, 10).await.get("dns-ip"), Some(&10));
    replica.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_target_with_a_name_is_resolved() {
    // `localhost` may resolve to ::1 as well, where nothing listens: the transparent retry covers that address.
    let replica = backend([127, 0, 0, 1], "dns-name").await;
    let mesh = mesh_without_xds().await;
    let target = format!("dns:///localhost:{}", replica.address().port());
    let channel = mesh.channel(&target).unwrap();
    assert_eq!(channel.target(), target);
    let mut client = GreeterClient::new(channel);

    assert_eq!(tally(&mut client, 20).await.get("dns-name"), Some(&20));
    replica.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_name_that_does_not_resolve_fails_with_unavailable_and_the_target() {
    let mesh = Mesh::builder()
        .without_xds()
        .wait_for_ready(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let mut client = GreeterClient::new(mesh.channel("dns:///no-such-host.invalid:80").unwrap());

    let status = call(&mut client).await.unwrap_err();

    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("dns:///no-such-host.invalid:80"),
        "{:?}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_channel_balances_over_its_addresses_and_skips_a_dead_one() {
    let replicas = [
        backend([127, 0, 9, 2], "s1").await,
        backend([127, 0, 9, 3], "s2").await,
    ];
    // Nothing listens here: connecting fails, and the call goes to another address.
    let dead: SocketAddr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let channel = Mesh::static_channel_with_options(
        [replicas[0].address(), replicas[1].address(), dead],
        support::options(),
    )
    .unwrap();
    let mut client = GreeterClient::new(channel);

    let counts = tally(&mut client, 200).await;

    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        ["s1", "s2"],
        "{counts:?}"
    );
    assert!(counts.values().all(|&n| n >= 40), "{counts:?}");
    for replica in replicas {
        replica.shutdown().await.unwrap();
    }
}

/// A plain HTTP/2 server answering `METHOD PATH from NAME`.
async fn http_server(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| async move {
                        let text =
                            format!("{} {} from {name}", request.method(), request.uri().path());
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(text))))
                    },
                );
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_client_serves_plain_http_and_answers_failures_with_503() {
    let address = http_server("inventory").await;
    let mesh = mesh_without_xds().await;
    let client = mesh.http_client(&format!("dns:///{address}")).unwrap();

    let request = http::Request::get("/items/42")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"GET /items/42 from inventory");

    let dead: SocketAddr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let down = Mesh::static_channel([dead]).unwrap();
    let request = http::Request::get("/items/42")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = down.oneshot(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let reason = String::from_utf8_lossy(&body);
    assert!(
        reason.contains(&dead.to_string()),
        "the reason names the endpoint: {reason:?}"
    );
}
