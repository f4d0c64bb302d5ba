//! The TLS seam of the xDS-enabled server: what happens to a connection whose filter chain carries a
//! `DownstreamTlsContext` (gRFC A29, A36).
//!
//! Not solved yet: this build has no TLS acceptor for certificate-provider certificates, so [`accept`] refuses every
//! such connection with [`TlsError::Unavailable`], and the accept loop closes it and logs the reason. A chain that
//! asks for TLS is never served in plaintext. When the acceptor lands, [`accept`] performs the handshake with the
//! chain's certificates, fills the [`ConnectionInfo`]'s peer certificate and hands back the encrypted stream; nothing
//! else in the server changes.

use mesh_core::peer::ConnectionInfo;
use mesh_core::tls::DownstreamTls;
use tokio::net::TcpStream;

/// A TLS connection could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// This build cannot terminate TLS for xDS filter chains yet.
    #[error(
        "filter chain {chain:?} requires TLS (certificate provider instance {provider:?}), and this build of \
         mesh-tonic cannot terminate TLS for xDS-enabled servers yet; the connection is closed rather than served \
         in plaintext"
    )]
    Unavailable {
        /// The filter chain's name.
        chain: String,
        /// The certificate provider instance the chain names.
        provider: String,
    },
}

/// The handshake for a connection taken by filter chain `chain` with TLS settings `tls`: the encrypted stream and
/// the connection facts with the verified peer certificate. The caller serves whatever stream type this returns
/// (it is generic over the I/O), so the real acceptor changes only this function's return type.
///
/// # Errors
/// [`TlsError::Unavailable`] in this build, always.
// Async and by value so that the real acceptor drops in with the same shape.
#[allow(clippy::unused_async)]
pub(crate) async fn accept(
    chain: &str,
    tls: &DownstreamTls,
    stream: TcpStream,
    info: ConnectionInfo,
) -> Result<(TcpStream, ConnectionInfo), TlsError> {
    drop((stream, info));
    Err(TlsError::Unavailable {
        chain: chain.to_owned(),
        provider: tls.identity.instance_name.to_string(),
    })
}
