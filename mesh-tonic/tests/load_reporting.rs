//! Load reporting (gRFC A27 LRS) end to end: calls through an `xds:///` channel to backends in two localities of a
//! cluster with `load_reporting: true` (`lrs_server: self`), and the reports mesh-xds-server receives and records;
//! calls abandoned mid-attempt (dropped by the caller, cut by the deadline) end instead of staying in progress.

// Fixtures fail the test that uses them by panicking, as assertions do.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_tonic::testing::{GreeterClient, HelloReply, HelloRequest};
use mesh_xds_server::mesh::{Cluster, Endpoint, Locality, MeshConfig, Route, Service};
use mesh_xds_server::{ClusterLoad, LoadReports, ReportedLocality, XdsServer};
use prost::Message;
use support::{NODE, PATIENCE};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What one backend answered: OK and failed calls.
#[derive(Debug, Default)]
struct Served {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// A greeter on 127.0.0.1: answers OK, or INTERNAL for requests with `x-fail`, and holds requests with `x-hold`
/// until `release` turns true.
async fn backend(served: Arc<Served>, release: watch::Receiver<bool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let served = Arc::clone(&served);
            let release = release.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let served = Arc::clone(&served);
                    let release = release.clone();
                    async move { Ok::<_, Infallible>(answer(request, &served, release).await) }
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
    served: &Served,
    mut release: watch::Receiver<bool>,
) -> Response<BoxBody<Bytes, Infallible>> {
    let fail = request.headers().contains_key("x-fail");
    if request.headers().contains_key("x-hold") {
        let _ = release.wait_for(|released| *released).await;
    }
    let _ = request.into_body().collect().await;
    let response = Response::builder().header("content-type", "application/grpc");
    if fail {
        served.failed.fetch_add(1, Ordering::Relaxed);
        return response
            .header("grpc-status", "13")
            .header("grpc-message", "asked to fail")
            .body(Empty::new().boxed())
            .unwrap();
    }
    served.ok.fetch_add(1, Ordering::Relaxed);
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

fn east() -> ReportedLocality {
    ReportedLocality::new("us-east", "us-east-a", "")
}

fn west() -> ReportedLocality {
    ReportedLocality::new("us-west", "us-west-a", "")
}

/// `greeter` to cluster `main` (load reported; backends in us-east and us-west) and `other` to cluster `other`
/// (not reported); no retries, so every call is one attempt.
fn config(east: SocketAddr, west: SocketAddr, other: SocketAddr) -> MeshConfig {
    let locality = |region: &str, address: SocketAddr| {
        Locality::new(region, format!("{region}-a"), "")
            .with_endpoint(Endpoint::new(address.to_string()))
    };
    MeshConfig::new()
        .with_service(Service::new("greeter").with_route(Route::to_cluster("main")))
        .with_service(Service::new("other").with_route(Route::to_cluster("other")))
        .with_cluster(
            Cluster::new("main")
                .with_load_reporting(true)
                .with_locality(locality("us-east", east))
                .with_locality(locality("us-west", west)),
        )
        .with_cluster(Cluster::new("other").with_locality(locality("us-east", other)))
}

async fn xds_server(config: MeshConfig, address: &str) -> XdsServer {
    XdsServer::builder()
        .config(config)
        .load_reporting_interval(Duration::from_millis(100))
        .bind(address)
        .await
        .unwrap()
}

async fn call(
    client: &mut GreeterClient<mesh_tonic::Channel>,
    header: Option<&'static str>,
) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(HelloRequest {
        name: "test".into(),
    });
    request.set_timeout(Duration::from_secs(5));
    if let Some(header) = header {
        request
            .metadata_mut()
            .insert(header, tonic::metadata::MetadataValue::from_static("1"));
    }
    client.say_hello(request).await.map(drop)
}

fn main_load(loads: &[ClusterLoad]) -> Option<&ClusterLoad> {
    loads.iter().find(|l| l.cluster == "main" && l.node == NODE)
}

/// Waits until the reports of cluster `main` satisfy `ready`.
async fn wait_main(
    reports: &LoadReports,
    ready: impl Fn(&ClusterLoad) -> bool,
) -> Vec<ClusterLoad> {
    tokio::time::timeout(
        PATIENCE,
        reports.wait_until(|loads| main_load(loads).is_some_and(&ready)),
    )
    .await
    .unwrap_or_else(|_| panic!("reports never matched: {:?}", reports.loads()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_count_each_localitys_calls_and_calls_in_progress() {
    let (release, released) = watch::channel(false);
    let (east_served, west_served, other_served) = (
        Arc::new(Served::default()),
        Arc::new(Served::default()),
        Arc::new(Served::default()),
    );
    let east_address = backend(Arc::clone(&east_served), released.clone()).await;
    let west_address = backend(Arc::clone(&west_served), released.clone()).await;
    let other_address = backend(Arc::clone(&other_served), released.clone()).await;
    let xds = xds_server(
        config(east_address, west_address, other_address),
        "127.0.0.1:0",
    )
    .await;
    let mesh = support::mesh(xds.local_addr()).await;
    let mut client = GreeterClient::new(mesh.channel("xds:///greeter").unwrap());
    let mut other = GreeterClient::new(mesh.channel("xds:///other").unwrap());

    for _ in 0..12 {
        call(&mut client, None).await.unwrap();
    }
    for _ in 0..5 {
        assert_eq!(
            call(&mut client, Some("x-fail")).await.unwrap_err().code(),
            tonic::Code::Internal
        );
    }
    for _ in 0..3 {
        call(&mut other, None).await.unwrap();
    }
    let expected = |served: &Served| {
        let (ok, failed) = (
            served.ok.load(Ordering::Relaxed),
            served.failed.load(Ordering::Relaxed),
        );
        (ok, failed, ok + failed)
    };
    let (east_expected, west_expected) = (expected(&east_served), expected(&west_served));
    assert_eq!(east_expected.0 + west_expected.0, 12);
    assert!(
        east_expected.2 > 0 && west_expected.2 > 0,
        "both localities got calls"
    );
    let counts = |load: &ClusterLoad, locality: &ReportedLocality| {
        load.localities
            .get(locality)
            .map_or((0, 0, 0), |l| (l.succeeded, l.errored, l.issued))
    };
    let matches = |load: &ClusterLoad| {
        counts(load, &east()) == east_expected && counts(load, &west()) == west_expected
    };
    let loads = wait_main(xds.load_reports(), matches).await;
    let main = main_load(&loads).unwrap();
    assert_eq!(
        main.service_name, "",
        "the cluster has no separate EDS service name"
    );
    assert!(main.localities.values().all(|l| l.in_progress == 0));
    assert!(
        loads.iter().all(|l| l.cluster != "other"),
        "a cluster without lrs_server is not reported: {loads:?}"
    );

    // Two more reports later, nothing was counted twice.
    let reports_so_far = main.reports;
    let loads = wait_main(xds.load_reports(), |l| l.reports >= reports_so_far + 2).await;
    assert!(matches(main_load(&loads).unwrap()));

    // Held calls are in progress until they finish, then counted once.
    let held: Vec<_> = (0..3)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { call(&mut client, Some("x-hold")).await })
        })
        .collect();
    wait_main(xds.load_reports(), |l| {
        l.localities.values().map(|l| l.in_progress).sum::<u64>() == 3
    })
    .await;
    release.send_replace(true);
    for call in held {
        call.await.unwrap().unwrap();
    }
    wait_main(xds.load_reports(), |l| {
        l.localities.values().map(|l| l.in_progress).sum::<u64>() == 0
            && l.localities.values().map(|l| l.succeeded).sum::<u64>() == 15
            && l.localities.values().map(|l| l.issued).sum::<u64>() == 20
    })
    .await;
    drop(mesh);
    xds.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_made_while_the_lrs_stream_is_down_are_reported_after_it_reconnects() {
    let (_release, released) = watch::channel(false);
    let served = Arc::new(Served::default());
    let east_address = backend(Arc::clone(&served), released.clone()).await;
    let west_address = backend(Arc::clone(&served), released.clone()).await;
    let other_address = backend(Arc::clone(&served), released).await;
    let config = config(east_address, west_address, other_address);
    let first = xds_server(config.clone(), "127.0.0.1:0").await;
    let address = first.local_addr();
    let mesh = support::mesh(address).await;
    let mut client = GreeterClient::new(mesh.channel("xds:///greeter").unwrap());
    let total = |l: &ClusterLoad| l.localities.values().map(|l| l.succeeded).sum::<u64>();
    for _ in 0..3 {
        call(&mut client, None).await.unwrap();
    }
    wait_main(first.load_reports(), |l| total(l) == 3).await;
    first.shutdown().await.unwrap();

    // The mesh keeps serving from its cached configuration; the load is kept for the next stream.
    for _ in 0..5 {
        call(&mut client, None).await.unwrap();
    }
    let second = xds_server(config, &address.to_string()).await;
    let loads = wait_main(second.load_reports(), |l| total(l) == 5).await;
    assert!(
        main_load(&loads)
            .unwrap()
            .localities
            .values()
            .all(|l| l.errored == 0)
    );
    drop(mesh);
    second.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_given_up_mid_attempt_are_not_left_in_progress() {
    let (release, released) = watch::channel(false);
    let served = Arc::new(Served::default());
    let east_address = backend(Arc::clone(&served), released.clone()).await;
    let west_address = backend(Arc::clone(&served), released.clone()).await;
    let other_address = backend(Arc::clone(&served), released).await;
    let xds = xds_server(
        config(east_address, west_address, other_address),
        "127.0.0.1:0",
    )
    .await;
    let mesh = support::mesh(xds.local_addr()).await;
    let client = GreeterClient::new(mesh.channel("xds:///greeter").unwrap());
    let in_progress = |l: &ClusterLoad| l.localities.values().map(|l| l.in_progress).sum::<u64>();
    let sum = |l: &ClusterLoad, count: fn(&mesh_xds_server::LocalityLoad) -> u64| {
        l.localities.values().map(count).sum::<u64>()
    };

    // Two calls held by their backends, then dropped by their caller while their attempts are on the wire.
    let held: Vec<_> = (0..2)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { call(&mut client, Some("x-hold")).await })
        })
        .collect();
    wait_main(xds.load_reports(), |l| in_progress(l) == 2).await;
    for call in &held {
        call.abort();
    }
    for call in held {
        assert!(call.await.unwrap_err().is_cancelled());
    }
    // And one cut by its own deadline.
    let mut request = tonic::Request::new(HelloRequest {
        name: "test".into(),
    });
    request.set_timeout(Duration::from_millis(200));
    request
        .metadata_mut()
        .insert("x-hold", tonic::metadata::MetadataValue::from_static("1"));
    let status = client.clone().say_hello(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);

    // All three ended: nothing in progress, each counted once, as an error.
    wait_main(xds.load_reports(), |l| {
        in_progress(l) == 0 && sum(l, |l| l.issued) == 3 && sum(l, |l| l.errored) == 3
    })
    .await;
    release.send_replace(true);
    drop(mesh);
    xds.shutdown().await.unwrap();
}
