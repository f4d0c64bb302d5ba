//! # mesh-tower
//!
//! The request path of the mesh, in process: a tower [`Service`](tower_service::Service) over `http::Request` that
//! routes each request by the current `mesh-core` [`ConfigSnapshot`](mesh_core::snapshot::ConfigSnapshot), balances
//! it over the cluster's endpoints and sends it over HTTP/2, protecting callers and backends on the way.
//!
//! What it solves, per request ([`MeshService`]):
//! 1. **Routing**: one atomic load of the routing state; the virtual host the snapshot selected; the
//!    first matching route (gRPC requests see headers through mesh-core's `GrpcHeaders`, gRFC A28); the cluster
//!    from the action (direct, weighted, or from a header); the route's timeout, retry, hash and fault settings.
//! 2. **Fault injection** ([`fault`], gRFC A33): delay, then abort, by percentage or by header.
//! 3. **Deadline** ([`timeout`], gRFC A31): `max_stream_duration` capped by `grpc-timeout`, over the whole call
//!    including the response stream.
//! 4. **Attempts with retries** (gRFC A44): on the conditions of `retry_on`, at most 5 attempts, exponential
//!    backoff with jitter, a per-try timeout, a retry budget per cluster, `grpc-previous-rpc-attempts`, request
//!    bodies replayed from a bounded buffer, and another endpoint preferred for each retry.
//! 5. **Per cluster**: aggregate clusters fail over to the first leaf with a usable endpoint (gRFC A37/A75);
//!    priorities and locality weights (gRFC A27/A56) with usable = reachable and not ejected; the cluster's policy
//!    within the locality (P2C over peak-EWMA by default, round robin, least request, ring hash, pick first); the
//!    circuit breaker (gRFC A32, `max_requests` and `max_pending_requests`); outlier detection (gRFC A50 plus
//!    consecutive 5xx and gateway errors).
//! 6. **Per endpoint**: one HTTP/2 connection (`h2`, hyper's HTTP/2 implementation, driven directly: the caller's
//!    task opens its stream and sends a body that is whole in memory itself) made on first use, kept alive with
//!    pings, remade when lost (at once when the peer sends GOAWAY, the requests it refused going out on the new
//!    one), retried with backoff when it fails (the endpoint is unreachable meanwhile, so the picker fails over).
//!    A cluster with `UpstreamTls` connects with TLS or mutual TLS ([`tls`], gRFC A29/A87): certificates come from the
//!    [`tls::CertificateProviders`] in [`MeshOptions`], peers are verified as X.509 or SPIFFE identities with the
//!    cluster's SAN matchers, and a TLS setting that cannot be honoured fails the calls with its reason.
//!
//! Configuration comes from anywhere: [`MeshService::update`] or a [`ConfigSource`] watch channel. Each update is
//! turned into routing state off the request path and swapped in whole; per-cluster and per-endpoint state
//! (connections, latency estimates, ejections, rings, counters) carries over for what remains, and what leaves
//! drains. Failures are answered as gRPC statuses or HTTP 503/504 with a reason ([`error::MeshError`]); telemetry
//! goes through [`metrics::Metrics`], a [`metrics::CallTracer`] that makes a span per call and per attempt and
//! writes each attempt's trace context on its request (OpenTelemetry's, in `mesh-tonic`: sampling is decided before
//! anything is built), and `tracing` spans at DEBUG (`mesh.request` per call, `mesh.attempt` per attempt, with the
//! OpenTelemetry RPC semantic-convention fields `otel.name`, `otel.kind`, `rpc.*`), whose context a
//! [`metrics::TracePropagator`] can write instead. The call's and its last attempt's spans stay open until the
//! response stream ends and carry its gRPC status.
//!
//! On the server side, [`authz`] authorizes incoming requests (gRFC A41): an [`authz::AuthorizationLayer`] evaluates
//! mesh-core RBAC rules (set in code or swapped in at runtime) against each request and the connection facts the
//! server attached, answers denied gRPC calls with `PERMISSION_DENIED`, and writes gRFC A59 audit events through
//! `tracing`.
//!
//! The pure algorithms (latency estimates, endpoint choice, outlier detection, budget, backoff, circuit breaker)
//! live in [`lb`], free of I/O.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use mesh_tower::{ConfigUpdate, MeshOptions, MeshService};
//! use tower_service::Service;
//!
//! # async fn run(snapshot: Arc<mesh_core::snapshot::ConfigSnapshot>) {
//! // The xDS client (or a static configuration) publishes snapshots into a watch channel.
//! let (publish, source) = tokio::sync::watch::channel::<ConfigUpdate>(None);
//! let mut service = MeshService::from_source(source, MeshOptions::default());
//! publish.send_replace(Some(Ok(snapshot)));
//!
//! let request = http::Request::post("/helloworld.Greeter/SayHello")
//!     .header("content-type", "application/grpc")
//!     .body(http_body_util::Full::new(bytes::Bytes::from_static(b"\0\0\0\0\0")))
//!     .unwrap();
//! let response = service.call(request).await.unwrap();
//! println!("{:?}", response.headers().get("grpc-status"));
//! # }
//! ```
//!
//! The server side of TLS ([`tls::ServerTls`], [`tls::accept`]) lives here too, for the xDS-enabled server.
//!
//! Load reports (gRFC A27 LRS): [`MeshOptions::load_store`](options::MeshOptions::load_store) counts attempts per
//! locality of each cluster with an `lrs_server` into a `mesh-core` load store, through counters resolved when the
//! cluster's endpoints are set; the xDS client sends them ([`load_report`] says what counts as a success).
//!
//! A leaf cluster's endpoints are also a tower `Discover` ([`MeshService::discover`], [`discover`]): inserts and
//! removes as configuration updates come, each endpoint a service over its own connection, for callers that balance
//! with tower's machinery next to the mesh.
//!
//! Not for: xDS. This crate never sees Envoy protos; it takes snapshots from any source. Not yet: weighted round
//! robin with load reports (endpoints are then picked at random by weight), HTTP/1.1 upstreams, certificate
//! revocation and system root stores for upstream TLS.

pub mod authz;
pub mod discover;
pub mod error;
pub mod fault;
pub mod lb;
pub mod load_report;
pub mod metrics;
pub mod options;
pub mod status;
pub mod timeout;
pub mod tls;

mod body;
mod cluster;
mod endpoint;
mod mesh;
mod retry;
mod router;
mod runtime;

pub use body::{BoxError, ResponseBody};
pub use endpoint::ResponseStream;
pub use mesh::{
    ConfigSource, ConfigUpdate, GRPC_PREVIOUS_RPC_ATTEMPTS, MeshService, ResponseFuture,
};
pub use options::{MeshOptions, ReconnectBackoff};
