//! The accept loop and the life of one connection (gRFC A36 "Connection and Request Handling").
//!
//! Per accepted connection: if the server is not serving, the connection is closed at once, before any byte is
//! sent (A36 allows accepting and closing instead of not listening). Otherwise the most specific filter chain is
//! chosen ([`super::chain`]), else the default chain, else the connection is closed. A chain with TLS goes through
//! the [TLS seam](super::tls). The connection is then served over HTTP/2 (gRPC; no HTTP/1), each request carrying an
//! `Arc<ConnectionInfo>` in its extensions and checked against the chain's routes and filters ([`super::route`]).
//!
//! When the configuration moves to a new generation (a Listener update, not-serving, shutdown), the connection
//! drains: HTTP/2 GOAWAY at once, so clients open new connections under the new configuration, while calls in
//! flight finish; after the drain grace time (gRFC A36: default 10 minutes) whatever is left is closed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::peer::ConnectionInfo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::RequestBody;
use super::chain;
use super::config::{SHUT_DOWN, Shared};
use super::route::ChainConfig;
use super::service::ConnectionService;
use super::tls;
use crate::telemetry::ServerTelemetry;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long the loop pauses after a failed `accept` (out of file descriptors, ...), so it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// What every connection task needs.
pub(crate) struct Accepting<S> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) service: S,
    pub(crate) drain_grace: Duration,
    /// The mesh's server telemetry, if it has telemetry.
    pub(crate) telemetry: Option<Arc<ServerTelemetry>>,
}

impl<S, B> Accepting<S>
where
    S: tower_service::Service<http::Request<RequestBody>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// Accepts connections until `stop` turns true; connection tasks hold a clone of `alive` until they end.
    pub(crate) async fn run(
        self,
        listener: TcpListener,
        mut stop: watch::Receiver<bool>,
        alive: mpsc::Sender<()>,
    ) {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.wait_for(|stopped| *stopped) => return,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "xDS-enabled server: accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            // gRFC A36: not serving, close the connection without sending anything.
            let Some(config) = self.shared.config.load_full() else {
                continue;
            };
            let Ok(local) = stream.local_addr() else {
                continue;
            };
            let chosen = match chain::select(&config.filter_chains, local, remote) {
                Some(index) => config.chains.get(index),
                None => config.default_chain.as_ref(),
            };
            let Some(chosen) = chosen else {
                tracing::debug!(%remote, %local, "no filter chain matches the connection and there is no default chain; closing it");
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection(
                stream,
                ConnectionInfo::new(local, remote),
                Arc::clone(chosen),
                config.generation,
                self.shared.generation.subscribe(),
                self.drain_grace,
                self.service.clone(),
                self.telemetry.clone(),
                Arc::clone(&self.shared),
                alive.clone(),
            ));
        }
    }
}

/// Sets up one connection (TLS when its chain asks for it) and serves it.
// One call site; a struct would only rename the arguments.
#[allow(clippy::too_many_arguments)]
async fn connection<S, B>(
    stream: TcpStream,
    info: ConnectionInfo,
    chain: Arc<ChainConfig>,
    generation: u64,
    mut current: watch::Receiver<u64>,
    drain_grace: Duration,
    service: S,
    telemetry: Option<Arc<ServerTelemetry>>,
    shared: Arc<Shared>,
    _alive: mpsc::Sender<()>,
) where
    S: tower_service::Service<http::Request<RequestBody>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let Some(tls) = &chain.tls else {
        let service = ConnectionService::new(service, info, chain, telemetry);
        return serve(stream, service, generation, current, drain_grace).await;
    };
    let remote = info.remote_addr;
    let accepted = tokio::select! {
        accepted = tls.accept(&chain.name, stream, info) => accepted,
        // Shutdown does not wait for a handshake.
        _ = current.wait_for(|current| *current == SHUT_DOWN) => return,
    };
    match accepted {
        Ok((secured, info)) => {
            let service = ConnectionService::new(service, info, chain, telemetry);
            serve(secured, service, generation, current, drain_grace).await;
        }
        Err(error @ tls::TlsError::Unavailable { .. }) => {
            tracing::debug!(%remote, %error, "xDS-enabled server: refusing a connection");
        }
        Err(error) => {
            shared
                .tls_handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%remote, %error, "xDS-enabled server: TLS handshake failed");
        }
    }
}

/// Serves HTTP/2 on `io` until the connection ends, or drains it when the generation moves on.
async fn serve<I, S, B>(
    io: I,
    service: ConnectionService<S>,
    generation: u64,
    mut current: watch::Receiver<u64>,
    drain_grace: Duration,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower_service::Service<http::Request<RequestBody>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let remote = service.connection.remote_addr;
    let serving =
        http2::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(io), service);
    tokio::pin!(serving);
    tokio::select! {
        result = serving.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%remote, %error, "connection ended with an error");
            }
            return;
        }
        _ = current.wait_for(|current| *current != generation) => {}
    }
    serving.as_mut().graceful_shutdown();
    if tokio::time::timeout(drain_grace, serving).await.is_err() {
        tracing::debug!(%remote, ?drain_grace, "drain grace time over; closing the connection");
    }
}
