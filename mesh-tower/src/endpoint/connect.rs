//! Making one HTTP/2 connection: TCP connect with a timeout, then the HTTP/2 handshake with keep-alive pings.

use std::time::Duration;

use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use mesh_core::endpoint::EndpointAddress;
use tokio::net::TcpStream;

use crate::body::UpstreamBody;
use crate::options::ReconnectBackoff;

/// How an endpoint's connections are made.
#[derive(Debug, Clone)]
pub(crate) struct ConnectSettings {
    /// The cluster's connect timeout.
    pub(crate) connect_timeout: Duration,
    /// HTTP/2 keep-alive ping interval, if pings are on.
    pub(crate) keep_alive_interval: Option<Duration>,
    /// How long a ping may go unanswered.
    pub(crate) keep_alive_timeout: Duration,
    /// Backoff between failed connection attempts.
    pub(crate) backoff: ReconnectBackoff,
    /// Seed for the backoff's jitter.
    pub(crate) seed: u64,
    /// Why connections cannot be made at all (TLS configured but not supported here), if so.
    pub(crate) unsupported: Option<&'static str>,
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// TCP connect failed.
    #[error("connect to {address}: {source}")]
    Io {
        address: String,
        #[source]
        source: std::io::Error,
    },
    /// TCP connect or the handshake took longer than the connect timeout.
    #[error("connect to {address}: timed out after {timeout:?}")]
    Timeout { address: String, timeout: Duration },
    /// The HTTP/2 handshake failed.
    #[error("HTTP/2 handshake with {address}: {source}")]
    Handshake {
        address: String,
        #[source]
        source: hyper::Error,
    },
    /// The cluster needs something this crate does not do.
    #[error("connect to {address}: {reason}")]
    Unsupported {
        address: String,
        reason: &'static str,
    },
}

/// The connection future: drive it to completion to keep the connection alive.
pub(crate) type Http2Connection =
    http2::Connection<TokioIo<TcpStream>, UpstreamBody, TokioExecutor>;

/// Connects to `address` and performs the HTTP/2 handshake.
pub(crate) async fn connect(
    address: &EndpointAddress,
    settings: &ConnectSettings,
) -> Result<(SendRequest<UpstreamBody>, Http2Connection), ConnectError> {
    let label = || address.to_string();
    if let Some(reason) = settings.unsupported {
        return Err(ConnectError::Unsupported {
            address: label(),
            reason,
        });
    }
    let timeout = settings.connect_timeout;
    let timed_out = || ConnectError::Timeout {
        address: label(),
        timeout,
    };
    let connecting = async {
        match address {
            EndpointAddress::Socket(socket) => TcpStream::connect(socket).await,
            EndpointAddress::HostPort { host, port } => TcpStream::connect((&**host, *port)).await,
            // A future address kind: nothing to connect to.
            #[allow(unreachable_patterns)]
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "unsupported address kind",
            )),
        }
    };
    let stream = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| timed_out())?
        .map_err(|source| ConnectError::Io {
            address: label(),
            source,
        })?;
    // Small request frames must not wait for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    if let Some(interval) = settings.keep_alive_interval {
        builder
            .keep_alive_interval(interval)
            .keep_alive_timeout(settings.keep_alive_timeout)
            .keep_alive_while_idle(true);
    }
    tokio::time::timeout(timeout, builder.handshake(TokioIo::new(stream)))
        .await
        .map_err(|_| timed_out())?
        .map_err(|source| ConnectError::Handshake {
            address: label(),
            source,
        })
}
