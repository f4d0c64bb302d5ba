//! End to end on loopback: the whole request path (`MeshService`: routing, balancing, retry, circuit breaker,
//! outlier detection; no faults) against the same hyper HTTP/2 client calling the same local server directly,
//! measured side by side in one run.
//!
//! Reports, for both, latency at concurrency 1 (p50, p99) and throughput at concurrency 64, and the ratios the
//! request-path issue sets: throughput mesh/direct at least 0.95; p50 latency added at concurrency 1 at most 10 µs.
//! Rounds alternate between the two so machine noise hits both alike. Run with
//! `cargo bench -p mesh-benches --bench request_path`.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::cluster::{Cluster, OutlierDetection};
use mesh_core::endpoint::{Endpoint, EndpointSet, LocalityEndpoints};
use mesh_core::listener::{HttpConnectionManager, Listener, RouteSource};
use mesh_core::locality::Locality;
use mesh_core::route::{
    RetryOn, RetryPolicy, Route, RouteAction, RouteConfig, RouteMatch, VirtualHost,
};
use mesh_core::snapshot::{ClusterConfig, ConfigSnapshot};
use mesh_tower::{MeshOptions, MeshService};
use tower::ServiceExt;

const PATH: &str = "/helloworld.Greeter/SayHello";
const LATENCY_REQUESTS: usize = 5_000;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(2);
const CONCURRENCY: usize = 64;
const ROUNDS: usize = 3;

async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        // A gRPC server reads the request message before it answers. Answering from the headers
                        // alone would make h2 reset each stream whose body is still coming and count the frames
                        // that arrive after the reset against its reset limits, ending the connection for any
                        // client.
                        let _message = req.into_body().collect().await;
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/grpc")
                                .header("grpc-status", "0")
                                .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")))
                                .unwrap(),
                        )
                    },
                );
                // hyper's default HTTP/2 settings, flood protections included.
                if let Err(e) = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    println!("server connection error: {e:?}");
                }
            });
        }
    });
    addr
}

async fn direct_client(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    send
}

fn mesh_client(addr: SocketAddr) -> MeshService {
    let endpoints = EndpointSet::new(
        "greeter",
        vec![LocalityEndpoints::new(
            Locality::new("local", "a", ""),
            0,
            1,
            vec![Endpoint::new(addr)],
        )],
    );
    let cluster = Cluster::eds("greeter").with_outlier_detection(OutlierDetection::default());
    let (retry_on, _) = RetryOn::parse("unavailable,reset,connect-failure");
    let action = RouteAction::cluster("greeter").with_retry_policy(RetryPolicy::new(retry_on, 2));
    let routes = Arc::new(RouteConfig::new(
        "routes",
        vec![VirtualHost::new(
            "greeter",
            &["*"],
            vec![Route::new(RouteMatch::prefix("/"), action)],
        )],
    ));
    let listener = Arc::new(Listener::client(
        "greeter",
        HttpConnectionManager::new(RouteSource::Rds("routes".into())),
    ));
    let snapshot = ConfigSnapshot::builder("greeter", listener, routes)
        .cluster(ClusterConfig::with_endpoints(
            Arc::new(cluster),
            Arc::new(endpoints),
        ))
        .build(1)
        .unwrap();
    let service = MeshService::new(MeshOptions::default());
    service.update(Some(Ok(Arc::new(snapshot))));
    service
}

fn request() -> http::Request<Full<Bytes>> {
    http::Request::post(format!("http://greeter{PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")))
        .unwrap()
}

#[derive(Clone)]
enum Client {
    Direct(SendRequest<Full<Bytes>>),
    Mesh(MeshService),
}

impl Client {
    async fn call(&mut self) {
        match self {
            Self::Direct(send) => {
                send.ready().await.unwrap();
                let response = send.send_request(request()).await.unwrap();
                assert_eq!(response.status(), 200);
                response.into_body().collect().await.unwrap();
            }
            Self::Mesh(service) => {
                let response = service.clone().oneshot(request()).await.unwrap();
                assert_eq!(response.status(), 200);
                assert_eq!(
                    response.headers().get("grpc-status").map(|v| v.as_bytes()),
                    Some(&b"0"[..]),
                    "the mesh must reach the server: {:?}",
                    response.headers()
                );
                response.into_body().collect().await.unwrap();
            }
        }
    }
}

async fn latencies(client: &mut Client) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(LATENCY_REQUESTS);
    for _ in 0..LATENCY_REQUESTS {
        let start = Instant::now();
        client.call().await;
        samples.push(start.elapsed());
    }
    samples.sort_unstable();
    samples
}

/// The `per_mille`-th value of a sorted, non-empty sample.
fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    let index = (sorted.len().saturating_sub(1) * per_mille) / 1000;
    sorted.get(index).copied().unwrap_or_default()
}

async fn throughput(client: &Client) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let mut client = client.clone();
        let done = Arc::clone(&done);
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                client.call().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(THROUGHPUT_WINDOW).await;
    stop.store(true, Ordering::Relaxed);
    let counted = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    for task in tasks {
        task.await.unwrap();
    }
    #[allow(clippy::cast_precision_loss)] // a request count far below 2^52
    let counted = counted as f64;
    counted / elapsed.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run a short smoke pass then.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let addr = serve().await;
        let mut direct = Client::Direct(direct_client(addr).await);
        let mut mesh = Client::Mesh(mesh_client(addr));
        // Warm up both (connections, EWMA, allocator).
        for _ in 0..500 {
            direct.call().await;
            mesh.call().await;
        }
        if smoke {
            println!("request_path: smoke run ok (use `cargo bench` for figures)");
            return;
        }
        let (mut direct_p50, mut direct_p99, mut mesh_p50, mut mesh_p99) = (vec![], vec![], vec![], vec![]);
        let (mut direct_rps, mut mesh_rps) = (vec![], vec![]);
        for _ in 0..ROUNDS {
            let d = latencies(&mut direct).await;
            let m = latencies(&mut mesh).await;
            direct_p50.push(percentile(&d, 500).as_secs_f64() * 1e6);
            direct_p99.push(percentile(&d, 990).as_secs_f64() * 1e6);
            mesh_p50.push(percentile(&m, 500).as_secs_f64() * 1e6);
            mesh_p99.push(percentile(&m, 990).as_secs_f64() * 1e6);
            direct_rps.push(throughput(&direct).await);
            mesh_rps.push(throughput(&mesh).await);
        }
        let (dp50, dp99, mp50, mp99) = (median(direct_p50), median(direct_p99), median(mesh_p50), median(mesh_p99));
        let (drps, mrps) = (median(direct_rps), median(mesh_rps));
        println!("request_path (loopback, 2 runtime threads, medians of {ROUNDS} alternating rounds)");
        println!("  concurrency 1:  direct p50 {dp50:.1} us p99 {dp99:.1} us | mesh p50 {mp50:.1} us p99 {mp99:.1} us");
        println!("  concurrency 1:  p50 added by the mesh: {:.1} us (target <= 10 us)", mp50 - dp50);
        println!("  concurrency {CONCURRENCY}: direct {drps:.0} req/s | mesh {mrps:.0} req/s");
        println!("  concurrency {CONCURRENCY}: throughput ratio mesh/direct: {:.3} (target >= 0.95)", mrps / drps);
    });
}
