//! Making one HTTP/2 connection: TCP connect with a timeout, the TLS handshake when the cluster has TLS, then the
//! HTTP/2 handshake (keep-alive pings are the connection driver's).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use mesh_core::endpoint::EndpointAddress;
use tokio::net::TcpStream;

use crate::options::ReconnectBackoff;
use crate::tls::ClientTls;
use crate::tls::io::ClientIo;

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
    /// The cluster's TLS, when it has some: the client config, or why it cannot be honoured (every connection
    /// then fails with that reason, never falling back to plaintext).
    pub(crate) tls: Option<Result<Arc<ClientTls>, Arc<str>>>,
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
        source: h2::Error,
    },
    /// The cluster's TLS settings cannot be honoured.
    #[error("connect to {address}: {reason}")]
    Unsupported { address: String, reason: Arc<str> },
    /// The TLS handshake failed (a rejected certificate says why in the source).
    #[error("TLS handshake with {address}: {source}")]
    Tls {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

/// The connection future: drive it to completion to keep the connection alive.
pub(crate) type Http2Connection = h2::client::Connection<ClientIo, Bytes>;

/// HTTP/2 settings, as hyper's client has them: windows of 2 MiB per stream and 5 MiB per connection (so a
/// response of a few megabytes does not wait for window updates), no server push, at most 100 streams until the
/// peer's settings say otherwise, and 16 KiB of headers.
fn builder() -> h2::client::Builder {
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(2 * 1024 * 1024)
        .initial_connection_window_size(5 * 1024 * 1024)
        .max_send_buffer_size(400 * 1024)
        .initial_max_send_streams(100)
        .max_header_list_size(16 * 1024)
        .enable_push(false);
    builder
}

/// Connects to `address` and performs the HTTP/2 handshake.
pub(crate) async fn connect(
    address: &EndpointAddress,
    settings: &ConnectSettings,
) -> Result<(SendRequest<Bytes>, Http2Connection), ConnectError> {
    let label = || address.to_string();
    let tls = match &settings.tls {
        Some(Ok(tls)) => Some(tls),
        Some(Err(reason)) => {
            return Err(ConnectError::Unsupported {
                address: label(),
                reason: Arc::clone(reason),
            });
        }
        None => None,
    };
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
    let stream = match tls {
        Some(tls) => ClientIo::Tls(Box::new(
            tokio::time::timeout(timeout, tls.connect(address, stream))
                .await
                .map_err(|_| timed_out())?
                .map_err(|source| ConnectError::Tls {
                    address: label(),
                    source,
                })?,
        )),
        None => ClientIo::Plain(stream),
    };
    tokio::time::timeout(timeout, builder().handshake(stream))
        .await
        .map_err(|_| timed_out())?
        .map_err(|source| ConnectError::Handshake {
            address: label(),
            source,
        })
}
