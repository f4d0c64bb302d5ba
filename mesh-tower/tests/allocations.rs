//! Heap allocations per request: the mesh adds to hyper's own only those its design needs.
//!
//! A counting global allocator measures the same unary gRPC exchange with the same loopback server, sent by a bare
//! hyper HTTP/2 client (configured as the mesh configures its connections) and through [`MeshService`], over many
//! requests one after the other on one thread. The difference per request is what the mesh allocates: routing,
//! picking, the circuit breaker, outlier detection and the call's bookkeeping allocate nothing; what remains is
//! listed at [`MESH_ALLOCATIONS`] and [`RETRY_HEAD_COPY`]. (The difference is negative in fact: the mesh drives
//! `h2` directly, without hyper's per-request hand-offs between tasks, which allocate more than the mesh adds.)
//!
//! This binary holds one test on purpose: the allocator counts every thread of the process.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::alloc::System;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use mesh_core::cluster::{Cluster, OutlierDetection};
use mesh_core::endpoint::{Endpoint, EndpointSet, LocalityEndpoints};
use mesh_core::listener::{HttpConnectionManager, Listener, RouteSource};
use mesh_core::locality::Locality;
use mesh_core::route::{
    RetryOn, RetryPolicy, Route, RouteAction, RouteConfig, RouteMatch, VirtualHost,
};
use mesh_core::snapshot::{ClusterConfig, ConfigSnapshot};
use mesh_tower::{MeshOptions, MeshService};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::ServiceExt;

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// What the mesh allocates per request beyond hyper, on a route without retries:
/// 1. the request's future (`ResponseFuture` boxes the request's state machine once, so the type can be named).
const MESH_ALLOCATIONS: f64 = 1.0;

/// What a route with retries adds per request: a retry needs the request's head after hyper has consumed the first
/// attempt's, so the first attempt sends a copy of it. Copying a `HeaderMap` allocates its index table and its
/// entries (2); the header values and URI parts are reference-counted `Bytes`, shared without copying (static here).
/// The request body is not copied: a whole body's `Bytes` are shared by every attempt.
const RETRY_HEAD_COPY: f64 = 2.0;

/// Measurement noise allowed per request (hyper's and h2's buffers grow now and then).
const TOLERANCE: f64 = 0.1;

const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

const REQUESTS: usize = 2_000;
const WARM_UP: usize = 200;

async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |request: Request<hyper::body::Incoming>| async move {
                        let _message = request.into_body().collect().await;
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/grpc")
                                .header("grpc-status", "0")
                                .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")))
                                .unwrap(),
                        )
                    },
                );
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A bare hyper client, with the connection settings the mesh side uses (keep-alive pings on a timer).
async fn direct_client(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    builder
        .keep_alive_interval(MeshOptions::DEFAULT_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(MeshOptions::DEFAULT_KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    let (send, connection) = builder.handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    send
}

/// The whole stack: routing, P2C over peak-EWMA, circuit breaker, outlier detection, and retries when `retries`.
fn mesh_client(addr: SocketAddr, retries: bool) -> MeshService {
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
    let mut action = RouteAction::cluster("greeter");
    if retries {
        let (retry_on, _) = RetryOn::parse("unavailable,reset,connect-failure");
        action = action.with_retry_policy(RetryPolicy::new(retry_on, 2));
    }
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
    // Keep-alive pings (off by default) as the direct client's.
    let service = MeshService::new(MeshOptions::default().with_keep_alive(
        Some(MeshOptions::DEFAULT_KEEP_ALIVE_INTERVAL),
        MeshOptions::DEFAULT_KEEP_ALIVE_TIMEOUT,
    ));
    service.update(Some(Ok(Arc::new(snapshot))));
    service
}

/// The same unary gRPC request for both clients; its parts are static, so building it allocates the same for both.
fn request() -> Request<Full<Bytes>> {
    Request::post(http::Uri::from_static(
        "http://greeter/helloworld.Greeter/SayHello",
    ))
    .header(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    )
    .header(http::header::TE, http::HeaderValue::from_static("trailers"))
    .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")))
    .unwrap()
}

enum Client {
    Direct(SendRequest<Full<Bytes>>),
    Mesh(MeshService),
}

impl Client {
    async fn call(&mut self) {
        let body = match self {
            Self::Direct(send) => {
                send.ready().await.unwrap();
                let response = send.send_request(request()).await.unwrap();
                assert_eq!(response.status(), 200);
                response.into_body().collect().await.unwrap()
            }
            Self::Mesh(service) => {
                let response = service.clone().oneshot(request()).await.unwrap();
                // The server's answer, not one the mesh made up.
                assert_eq!(response.headers()[GRPC_STATUS], "0");
                response.into_body().collect().await.unwrap()
            }
        };
        assert_eq!(body.to_bytes().len(), 7);
    }

    /// Allocations (and reallocations) per request over [`REQUESTS`] requests, after a warm-up.
    async fn allocations_per_request(&mut self) -> f64 {
        for _ in 0..WARM_UP {
            self.call().await;
        }
        let region = Region::new(ALLOCATOR);
        for _ in 0..REQUESTS {
            self.call().await;
        }
        let change = region.change();
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let per_request = (change.allocations + change.reallocations) as f64 / REQUESTS as f64;
        per_request
    }
}

#[test]
fn the_mesh_allocates_per_request_only_its_boxed_future_and_a_retryable_head_copy() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let addr = serve().await;
        let direct = Client::Direct(direct_client(addr).await)
            .allocations_per_request()
            .await;
        let plain = Client::Mesh(mesh_client(addr, false))
            .allocations_per_request()
            .await;
        let retrying = Client::Mesh(mesh_client(addr, true))
            .allocations_per_request()
            .await;
        let added = plain - direct;
        let added_with_retries = retrying - direct;
        println!(
            "allocations per request: direct hyper {direct:.2}, mesh {plain:.2} (+{added:.2}), \
             mesh with retries {retrying:.2} (+{added_with_retries:.2})"
        );
        assert!(
            added <= MESH_ALLOCATIONS + TOLERANCE,
            "the mesh adds {added:.2} allocations per request; its design needs {MESH_ALLOCATIONS}"
        );
        assert!(
            added_with_retries <= MESH_ALLOCATIONS + RETRY_HEAD_COPY + TOLERANCE,
            "with retries the mesh adds {added_with_retries:.2} allocations per request; its design needs {}",
            MESH_ALLOCATIONS + RETRY_HEAD_COPY
        );
    });
}
