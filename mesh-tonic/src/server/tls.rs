//! The TLS seam of the xDS-enabled server: connections whose filter chain carries a `DownstreamTlsContext` (gRFC
//! A29, A36).
//!
//! When a Listener arrives, each chain with TLS gets a [`ChainTls`]: a [`ServerTls`] built once from the chain's
//! settings and the mesh's certificate providers ([`Mesh::certificate_providers`](crate::Mesh::certificate_providers)),
//! or, when the settings cannot be honoured (an unknown provider instance, a client certificate required without a
//! validation context, system roots), the reason. Such a chain's connections are refused (closed, never served in
//! plaintext); the reason is logged once at ERROR when the Listener is applied and again at DEBUG per refused
//! connection.
//!
//! Per connection, [`ChainTls::accept`] runs the handshake (bounded by [`HANDSHAKE_TIMEOUT`]) and fills the
//! [`ConnectionInfo`]: TLS, and the client's verified certificate when it presented one (gRFC A41 counts every TLS
//! peer as authenticated). Handshakes read the providers' current material, so after a rotation new connections use
//! the new certificate and trust roots while established ones keep theirs. A failed handshake (no or rejected client
//! certificate, a plaintext client, a timeout) is logged at DEBUG and counted ([`XdsServer::tls_handshake_failures`](super::XdsServer::tls_handshake_failures)).

use std::sync::Arc;
use std::time::Duration;

use mesh_core::peer::ConnectionInfo;
use mesh_core::tls::DownstreamTls;
use mesh_tower::tls::{AcceptError, CertificateProviders, ServerTls};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// How long a client may take to complete the TLS handshake before its connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS connection could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The chain's TLS settings cannot be honoured; every connection it takes is refused.
    #[error(
        "filter chain {chain:?}: its DownstreamTlsContext cannot be honoured ({reason}); the connection is closed \
         rather than served in plaintext"
    )]
    Unavailable {
        /// The filter chain's name.
        chain: String,
        /// Why.
        reason: Arc<str>,
    },
    /// The handshake failed (the client presented no certificate or one that failed verification, spoke
    /// plaintext, or went away).
    #[error("filter chain {chain:?}: {source}")]
    Handshake {
        /// The filter chain's name.
        chain: String,
        /// The handshake's error.
        #[source]
        source: AcceptError,
    },
    /// The handshake did not complete within [`HANDSHAKE_TIMEOUT`].
    #[error("filter chain {chain:?}: TLS handshake not completed within {timeout:?}")]
    Timeout {
        /// The filter chain's name.
        chain: String,
        /// The limit.
        timeout: Duration,
    },
}

/// One chain's TLS: ready to accept, or why it cannot be.
#[derive(Debug, Clone)]
pub(crate) enum ChainTls {
    Ready(ServerTls),
    Unavailable(Arc<str>),
}

impl ChainTls {
    /// The TLS of chain `chain` with settings `tls`; logs the reason when it cannot be honoured.
    pub(crate) fn new(chain: &str, tls: &DownstreamTls, providers: &CertificateProviders) -> Self {
        match ServerTls::new(tls, providers) {
            Ok(server) => Self::Ready(server),
            Err(error) => {
                tracing::error!(chain, %error,
                    "xDS-enabled server: filter chain requires TLS that cannot be set up; its connections are refused");
                Self::Unavailable(error.to_string().into())
            }
        }
    }

    /// The handshake for a connection taken by chain `chain`: the encrypted stream and `info` with the verified
    /// peer certificate.
    ///
    /// # Errors
    /// [`TlsError`]: the chain cannot do TLS, or the handshake failed or timed out.
    pub(crate) async fn accept(
        &self,
        chain: &str,
        stream: TcpStream,
        info: ConnectionInfo,
    ) -> Result<
        (
            impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
            ConnectionInfo,
        ),
        TlsError,
    > {
        let server = match self {
            Self::Ready(server) => server,
            Self::Unavailable(reason) => {
                return Err(TlsError::Unavailable {
                    chain: chain.to_owned(),
                    reason: Arc::clone(reason),
                });
            }
        };
        let (stream, peer) = tokio::time::timeout(HANDSHAKE_TIMEOUT, server.accept(stream))
            .await
            .map_err(|_| TlsError::Timeout {
                chain: chain.to_owned(),
                timeout: HANDSHAKE_TIMEOUT,
            })?
            .map_err(|source| TlsError::Handshake {
                chain: chain.to_owned(),
                source,
            })?;
        let info = match peer {
            Some(peer) => info.with_peer_certificate(Arc::new(peer)),
            None => info.with_tls(),
        };
        Ok((stream, info))
    }
}

#[cfg(test)]
mod tests {
    use mesh_core::tls::CertificateProviderInstance;

    use super::*;

    #[tokio::test]
    async fn a_chain_naming_an_unknown_provider_refuses_its_connections_with_the_reason() {
        let tls = DownstreamTls::new(CertificateProviderInstance::new("missing"));
        let chain = ChainTls::new("inbound", &tls, &CertificateProviders::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        let (stream, remote) = accepted.unwrap();
        let info = ConnectionInfo::new(address, remote);
        let Err(error) = chain.accept("inbound", stream, info).await else {
            panic!("a chain without its provider instance must not accept");
        };
        let message = error.to_string();
        assert!(matches!(error, TlsError::Unavailable { .. }), "{error:?}");
        assert!(message.contains("\"inbound\""), "{message}");
        assert!(
            message.contains("\"missing\" is not configured"),
            "{message}"
        );
        drop(client);
    }
}
