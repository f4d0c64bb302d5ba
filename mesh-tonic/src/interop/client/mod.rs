//! gRPC's xDS interop test client (../shared/XDS-FEATURES.md, "The interop contract"; grpc/grpc
//! `doc/xds-test-descriptions.md`) over this crate's [`Mesh`]: the library behind the `xds-interop-client` binary.
//!
//! [`run`] builds a mesh from the environment's bootstrap (`GRPC_XDS_BOOTSTRAP` / `GRPC_XDS_BOOTSTRAP_CONFIG`), sends
//! `grpc.testing.TestService` RPCs to `--server` at `--qps` per RPC type and channel, and serves on the stats port
//! (127.0.0.1): `grpc.testing.LoadBalancerStatsService` ([`stats`]: the peers of the next N RPCs sent, by the
//! `hostname` response header; accumulated counts per type and status), `grpc.testing.XdsUpdateClientConfigureService`
//! (RPC types, headers per type, deadline) and CSDS (gRFC A40).
//!
//! Differences from gRPC's clients, by design or not yet done:
//! - channels made by one [`Mesh`] for one target share one request path, so `--num_channels=N` sends N times the
//!   rate through one balancer, where gRPC balances each channel on its own;
//! - `--secure_mode=true` behaves as gRPC's xDS credentials with plaintext fallback: clusters with an
//!   `UpstreamTlsContext` are called over (mutual) TLS with the bootstrap's `certificate_providers`, the others in
//!   plaintext. Unlike gRPC's insecure credentials, `--secure_mode=false` does not ignore a cluster's TLS: the mesh
//!   always honours it;
//! - `GetClientStats`'s `metadata_keys` reports ASCII entries only (not `-bin` ones), and never gRPC's own
//!   (`content-type`, `grpc-*`).

pub mod flags;
pub mod messages;
mod sender;
mod service;
pub mod stats;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use mesh_core::route::RetryBudget;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

pub use flags::{ClientFlags, Command, USAGE, UsageError, parse};
pub use sender::{RpcConfig, SharedConfig};
pub use service::{
    LOAD_BALANCER_STATS_SERVICE, LoadBalancerStatsClient, LoadBalancerStatsServer,
    XDS_UPDATE_CLIENT_CONFIGURE_SERVICE, XdsUpdateClientConfigureClient,
    XdsUpdateClientConfigureServer,
};

use crate::{ChannelError, Mesh, MeshError, MeshOptions};
use sender::{FailureWatch, Sender};
use stats::Stats;

/// The note printed for `--secure_mode=true`.
pub const SECURE_MODE_NOTE: &str = "--secure_mode=true: xDS credentials with plaintext fallback: clusters \
    with TLS are called over (mutual) TLS with the bootstrap's certificate providers, clusters without TLS in \
    plaintext (as gRPC's xDS credentials do)";

/// Why the client stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The mesh could not be built (bootstrap, xDS client).
    #[error("--server: {0}")]
    Mesh(#[from] MeshError),
    /// `--server` is not a usable target.
    #[error("--server: {0}")]
    Channel(#[from] ChannelError),
    /// The stats port could not be bound.
    #[error("--stats_port: cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The stats server failed.
    #[error("stats server: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// `--fail_on_failed_rpcs`: an RPC failed after one had succeeded.
    #[error("--fail_on_failed_rpcs: {rpc} failed with {code:?}: {message}")]
    FailedRpc {
        /// The method.
        rpc: &'static str,
        /// The status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
}

/// Runs the client until the stats server fails or, with `--fail_on_failed_rpcs`, an RPC fails after one has
/// succeeded. `listening` is told the stats address once it is bound.
///
/// # Errors
/// [`ClientError`].
pub async fn run(
    flags: ClientFlags,
    listening: impl FnOnce(SocketAddr),
) -> Result<(), ClientError> {
    // OpenTelemetry when OTEL_EXPORTER_OTLP_ENDPOINT is set (and the other OTEL_* variables), as gRPC's own
    // interop clients do with their observability plugins.
    // gRPC has no retry budget (gRFC A44), and the interop cases expect every retry the route allows: a loaded
    // machine, with more calls in flight, must not make the mesh's default budget refuse some.
    let builder = Mesh::builder()
        .mesh_options(MeshOptions::default().with_default_retry_budget(RetryBudget::unlimited()))
        .telemetry_from_env();
    let builder = if flags.server.starts_with("xds:") {
        builder.bootstrap_from_env()
    } else {
        builder.without_xds()
    };
    let mesh = builder.build().await?;
    if let Some(telemetry) = mesh.telemetry() {
        // The embedding program may have its own subscriber; then its spans are its business.
        let _ = telemetry.init_tracing();
    }
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, flags.stats_port));
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| ClientError::Bind { address, source })?;
    let address = listener
        .local_addr()
        .map_err(|source| ClientError::Bind { address, source })?;

    let stats = Stats::new();
    let config = SharedConfig::new(RpcConfig {
        types: flags.rpc.clone(),
        metadata: flags.metadata.clone(),
        timeout: flags.rpc_timeout,
    });
    let (failures, mut failed) = FailureWatch::new();
    let mut senders = Vec::new();
    for _ in 0..flags.num_channels {
        let sender = Sender {
            channel: mesh.channel(&flags.server)?,
            qps: flags.qps,
            config: Arc::clone(&config),
            stats: Arc::clone(&stats),
            failures: flags.fail_on_failed_rpcs.then(|| failures.clone()),
            print: flags.print_response,
        };
        senders.push(AbortOnDrop(tokio::spawn(sender.run())));
    }
    drop(failures);

    let serving = Server::builder()
        .add_service(LoadBalancerStatsServer::new(Arc::clone(&stats)))
        .add_service(XdsUpdateClientConfigureServer::new(Arc::clone(&config)))
        .add_optional_service(mesh.csds_service().map(|csds| csds.into_server()))
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)));
    listening(address);
    let failed = async move {
        match failed.recv().await {
            Some((rpc, status)) => Err(ClientError::FailedRpc {
                rpc: rpc.method(),
                code: status.code(),
                message: status.message().to_owned(),
            }),
            // No watch: wait forever.
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = serving => result.map_err(ClientError::from),
        result = failed => result,
    }
}

/// Aborts a sending task when the client stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
