//! The xDS-enabled server (gRFC A36): a tonic service (or any tower HTTP service) served on a socket under the
//! control plane's server Listener.
//!
//! [`Mesh::server`](crate::Mesh::server) gives a [`ServerBuilder`]; [`ServerBuilder::serve`] binds the address and
//! returns an [`XdsServer`] handle while serving runs in the background:
//!
//! - The Listener name is `server_listener_resource_name_template` with `%s` replaced by the listening `ip:port`
//!   (`[::]:8080` for IPv6; a port of 0 is resolved to the bound port first). Without a template the server does not
//!   start (A36 allows failing there).
//! - The server serves only once the Listener (and every RouteConfiguration it names by RDS) has arrived and the
//!   Listener's address is the serving address. Until then, and whenever the Listener is removed, does not exist or
//!   stops matching, it is "not serving": connections are accepted and closed at once, without a byte sent (A36's
//!   permitted alternative to not listening), and existing connections drain. See [`ServingState`],
//!   [`XdsServer::watch_serving_state`], [`ServerBuilder::on_serving_state`] and
//!   [`ServerBuilder::health_reporter`].
//! - Each connection gets the most specific filter chain (destination prefix, source type, source prefix, source
//!   port), else the default chain, else it is closed. Every request carries an `Arc<`[`ConnectionInfo`]`>` in its
//!   extensions (a tonic handler reads it with `request.extensions().get::<Arc<ConnectionInfo>>()`) and must match
//!   a route with `non_forwarding_action` in the chain's routes (inline or RDS) for its `:authority` and path;
//!   otherwise it fails with UNAVAILABLE and the reason.
//! - A Listener update drains older connections (GOAWAY now, closed after [`ServerBuilder::drain_grace`], default
//!   [`DEFAULT_DRAIN_GRACE`]); RDS updates apply in place (A36).
//!
//! ```no_run
//! use mesh_tonic::Mesh;
//! use mesh_tonic::testing::GreeterServer;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mesh = Mesh::builder().bootstrap_from_env().build().await?;
//! // grpc.health.v1.Health follows the serving state; mount `health` on a port the control plane does not gate
//! // (or on this one: it then answers only while serving).
//! let (reporter, health) = tonic_health::server::health_reporter();
//! let routes = tonic::service::Routes::new(GreeterServer::new("replica-1"));
//! let server = mesh
//!     .server()
//!     .health_reporter(reporter)
//!     .on_serving_state(|state| println!("serving state: {state}"))
//!     .serve("0.0.0.0:50051".parse()?, routes)
//!     .await?;
//! # let _ = health;
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The RBAC filters before the router are evaluated per request (gRFC A41, with audit events per A59); a denied call
//! gets PERMISSION_DENIED without reaching the application.
//!
//! The application receives requests as `http::Request<`[`RequestBody`]`>` (hyper's body, counted for telemetry):
//! any service generic over its request body (tonic's generated servers and `Routes`, axum) takes it as it is.
//!
//! When the mesh has [telemetry](crate::telemetry), every call (refused ones included) is recorded: gRFC A66's
//! `grpc.server.call.started`, `grpc.server.call.duration`, `grpc.server.call.sent_total_compressed_message_size`
//! and `grpc.server.call.rcvd_total_compressed_message_size` (the request's message bytes the application read),
//! and a SERVER span whose parent is the caller's W3C `traceparent`, current while the application handles the call.
//!
//! A chain with a `DownstreamTlsContext` (gRFC A29) terminates TLS with certificates from the mesh's certificate
//! providers ([`Mesh::certificate_providers`](crate::Mesh::certificate_providers): the bootstrap's `file_watcher`
//! instances and those given in code), requiring and verifying client certificates (SPIFFE, gRFC A87) when the
//! context says so; the verified peer certificate is in the request's [`ConnectionInfo`]. Rotated material applies
//! to new handshakes at once. A chain whose TLS cannot be set up (an unknown provider instance, ...) has its
//! connections closed with a logged reason, never served in plaintext. Failed handshakes are logged at DEBUG and
//! counted ([`XdsServer::tls_handshake_failures`]); a handshake may take up to [`HANDSHAKE_TIMEOUT`].
//!
//! Not applied: `max_stream_duration` (A36 does not ask servers for it). Not here: SNI-based certificate selection,
//! session resumption (off, so each connection is verified on its own). HTTP/2 only (gRPC).
//!
//! [`ConnectionInfo`]: mesh_core::peer::ConnectionInfo

mod accept;
mod authz;
mod body;
mod builder;
mod chain;
#[cfg(test)]
mod chain_proptests;
mod config;
mod rds;
mod route;
mod service;
mod tls;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use body::RequestBody;
pub use builder::ServerBuilder;
pub use tls::{HANDSHAKE_TIMEOUT, TlsError};

/// How long a draining connection may keep calls in flight before it is closed (gRFC A36's default "drain grace
/// time": 10 minutes).
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(600);

/// Whether the server is serving (gRFC A36 "Serving and Not Serving").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServingState {
    /// Connections are accepted and served under the Listener.
    Serving,
    /// Connections are closed at once; existing ones drain.
    NotServing {
        /// Why, for developers (the Listener does not exist, has another address, ...).
        reason: Arc<str>,
    },
}

impl ServingState {
    /// Whether the server is serving.
    #[must_use]
    pub fn is_serving(&self) -> bool {
        matches!(self, Self::Serving)
    }
}

impl fmt::Display for ServingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Serving => f.write_str("serving"),
            Self::NotServing { reason } => write!(f, "not serving: {reason}"),
        }
    }
}

/// The xDS-enabled server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The mesh has no xDS client.
    #[error("xDS-enabled server: this mesh was built without xDS (MeshBuilder::without_xds)")]
    XdsDisabled,
    /// The bootstrap has no `server_listener_resource_name_template`.
    #[error(
        "xDS-enabled server: the bootstrap has no server_listener_resource_name_template, which gRFC A36 requires \
         to name the server's Listener"
    )]
    NoListenerTemplate,
    /// The address cannot be bound.
    #[error("xDS-enabled server: cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The listening socket has no local address.
    #[error("xDS-enabled server: the listening socket has no local address: {0}")]
    LocalAddress(std::io::Error),
}

/// A running xDS-enabled server. Dropping it stops accepting connections and drains the open ones in the
/// background; [`shutdown`](Self::shutdown) does the same and waits.
#[derive(Debug)]
#[must_use = "dropping the XdsServer stops the server"]
pub struct XdsServer {
    shared: Arc<config::Shared>,
    local_addr: SocketAddr,
    listener_name: Arc<str>,
    state: watch::Receiver<ServingState>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl XdsServer {
    /// The address the server listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The Listener resource the server follows.
    #[must_use]
    pub fn listener_name(&self) -> &str {
        &self.listener_name
    }

    /// How many TLS handshakes have failed on connections of chains with TLS (no or rejected client certificate,
    /// a plaintext client, a timeout); each is logged at DEBUG with its reason.
    #[must_use]
    pub fn tls_handshake_failures(&self) -> u64 {
        self.shared.tls_handshake_failures.load(Ordering::Relaxed)
    }

    /// The current serving state.
    #[must_use]
    pub fn serving_state(&self) -> ServingState {
        self.state.borrow().clone()
    }

    /// The serving state as it changes.
    #[must_use]
    pub fn watch_serving_state(&self) -> watch::Receiver<ServingState> {
        self.state.clone()
    }

    /// Stops accepting connections, sends GOAWAY on every open one and waits until their calls in flight have
    /// finished (each connection is closed at the latest after the drain grace time).
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for XdsServer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
