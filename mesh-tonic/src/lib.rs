//! # mesh-tonic
//!
//! The front door for tonic services: a [`Mesh`] made by [`Mesh::builder`] (bootstrap, xDS client, settings), and
//! [`Channel`]s that any tonic-generated client accepts, running the mesh's request path
//! ([`mesh_tower::MeshService`]: routing, locality- and priority-aware balancing, retries, timeouts, circuit
//! breaking, outlier detection, fault injection).
//!
//! - `mesh.channel("xds:///greeter")`: configuration from the control plane (gRFC A27), shared by every channel of
//!   the target. The first calls wait for it ([`MeshBuilder::wait_for_ready`]); afterwards a target without usable
//!   configuration fails calls at once with UNAVAILABLE and the reason.
//! - `mesh.channel("dns:///host:port")` and [`Mesh::static_channel`]: the same request path over resolved or fixed
//!   addresses, without xDS.
//! - [`Mesh::http_client`]: the same channel for services that are not gRPC (`http::Request<B>` in, `http::Response`
//!   out).
//! - [`Mesh::server`]: an xDS-enabled server (gRFC A36) for a tonic service: it serves only under the control
//!   plane's server Listener, picks a filter chain per connection, checks each request against the chain's routes
//!   and RBAC policies (gRFC A41), drains connections on Listener changes and reports serving / not-serving
//!   (callback, watch, gRPC health). See [`server`].
//! - [`Mesh::config_dump`] and [`Mesh::csds_service`]: what the xDS client holds (gRFC A40); [`admin`]: an admin
//!   endpoint ([`MeshBuilder::admin`]) serving both, CSDS over gRPC and the dump as JSON (`GET /config_dump`), and
//!   the mesh's metrics for Prometheus (`GET /metrics`, [`MeshBuilder::prometheus`]).
//! - Load reports (gRFC A27 LRS): for clusters whose `lrs_server` is `self`, the channels count calls per cluster
//!   and locality (mesh-tower's `MeshOptions::load_store`: counters resolved when a cluster's endpoints are set,
//!   two atomic increments per attempt) and the xDS client reports them to the
//!   control plane at the interval it asks for (`mesh_xds_client::lrs`).
//! - [`telemetry`]: OpenTelemetry over OTLP ([`MeshBuilder::with_otlp`], [`MeshBuilder::telemetry_from_env`]):
//!   gRPC's client and server metrics (gRFC A66/A78) and the mesh's counters, spans per call and per attempt, W3C
//!   `traceparent` on every attempt, and on xDS-enabled servers a span per call continuing the caller's trace; the
//!   same metrics optionally as a Prometheus scrape page ([`MeshBuilder::prometheus`]), with or without a collector.
//! - [`testing`]: a hand-written `helloworld.Greeter` client, server and runnable replica, for demos and tests.
//! - [`interop`]: gRPC's xDS interop test services, server and client (the `xds-interop-server` and
//!   `xds-interop-client` binaries), so gRPC's xDS interop test cases run against this mesh.
//!
//! ```no_run
//! use mesh_tonic::Mesh;
//! use mesh_tonic::testing::{GreeterClient, HelloRequest};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // GRPC_XDS_BOOTSTRAP or GRPC_XDS_BOOTSTRAP_CONFIG names the control plane, as for any proxyless gRPC client.
//! let mesh = Mesh::builder().bootstrap_from_env().build().await?;
//! let mut greeter = GreeterClient::new(mesh.channel("xds:///greeter")?);
//! let reply = greeter.say_hello(HelloRequest { name: "mesh".into() }).await?;
//! println!("{}", reply.get_ref().message);
//! # Ok(())
//! # }
//! ```
//!
//! TLS: clusters with `UpstreamTls` connect with (mutual) TLS from the bootstrap's `certificate_providers` (gRFC
//! A29/A87, see [`Mesh::certificate_providers`]); xDS servers with `tls` channel credentials are reached over TLS
//! (gRFC A65). xDS-enabled servers terminate (mutual) TLS for filter chains with a `DownstreamTlsContext`, with the
//! same providers, and hand the verified peer certificate to handlers and RBAC (see [`server`]).
//!
//! Not for: protocol or balancing logic; this crate is glue over `mesh-xds-client` and `mesh-tower`.

pub mod admin;
mod builder;
mod channel;
mod direct;
mod error;
mod gate;
pub mod interop;
mod mesh;
pub mod server;
mod target;
pub mod telemetry;
pub mod testing;
mod unary;
mod xds_tls;

pub use builder::{DEFAULT_WAIT_FOR_READY, MeshBuilder};
pub use channel::Channel;
pub use direct::DEFAULT_DNS_REFRESH;
pub use error::{ChannelError, MeshError};
pub use mesh::Mesh;
pub use mesh_tower::{MeshOptions, ReconnectBackoff, ResponseBody};
pub use server::{ServerBuilder, ServerError, ServingState, XdsServer};
pub use unary::GrpcTransport;
