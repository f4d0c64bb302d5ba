//! Connectors: how the byte stream under an ADS connection is made when the bootstrap's `channel_creds` ask for
//! more than plaintext (gRFC A65 `tls`).
//!
//! This crate speaks the xDS protocol and does no TLS itself: the layer that owns TLS (mesh-tonic, with
//! mesh-tower's rustls configs and certificate providers) registers a [`Connector`] per `server_uri` in
//! [`ClientOptions`](super::ClientOptions), and the client dials that server through it. A server whose
//! credentials are not plaintext and that has no connector is refused when the client starts.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// A connected byte stream (TLS over TCP, typically).
pub trait ConnectedIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ConnectedIo for T {}

/// The future a [`Connector`] returns.
pub type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<Box<dyn ConnectedIo>>> + Send>>;

/// Makes a connection to the server at a URI (the dial URL derived from `server_uri`, e.g. `http://host:port`).
#[derive(Clone)]
pub struct Connector {
    connect: Arc<dyn Fn(http::Uri) -> ConnectFuture + Send + Sync>,
}

impl Connector {
    /// A connector calling `connect` for each connection.
    pub fn new(connect: impl Fn(http::Uri) -> ConnectFuture + Send + Sync + 'static) -> Self {
        Self {
            connect: Arc::new(connect),
        }
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<Box<dyn ConnectedIo>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = (self.connect)(uri);
        Box::pin(async move { connecting.await.map(TokioIo::new) })
    }
}
