//! The server side: a rustls server config for one listener's `DownstreamTls`, and the accept that hands back the
//! peer's verified certificate for `ConnectionInfo` (authorization and handlers read it from there).

use std::io;
use std::sync::Arc;

use mesh_core::peer::PeerCertificate;
use mesh_core::tls::DownstreamTls;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::certificate::describe_certificate;
use super::error::{TlsConfigError, clarify};
use super::material::crypto_provider;
use super::provider::CertificateProviders;
use super::verifier::{IdentityResolver, PeerVerifier};
use super::{ALPN_H2, PROTOCOL_VERSIONS};

/// Why a connection could not be accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The listener's TLS settings cannot be honoured.
    #[error(transparent)]
    Config(#[from] TlsConfigError),
    /// The handshake failed (a rejected client certificate carries the
    /// [`VerifyError`](super::VerifyError) as its source).
    #[error("TLS handshake: {0}")]
    Handshake(#[source] io::Error),
}

/// TLS for one listener's connections; built once per listener configuration, the material is read at each
/// handshake.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
}

impl ServerTls {
    /// The server TLS of `tls`, with provider instances from `providers`.
    ///
    /// # Errors
    /// [`TlsConfigError`] when a provider instance is unknown, a client certificate is required without a
    /// validation context (gRFC A29), or validation asks for system roots.
    pub fn new(
        tls: &DownstreamTls,
        providers: &CertificateProviders,
    ) -> Result<Self, TlsConfigError> {
        let identity = providers.require(&tls.identity.instance_name)?.clone();
        let verifier = match &tls.validation {
            Some(validation) => {
                let roots = match (&validation.ca, validation.system_root_certs) {
                    (Some(ca), _) => providers.require(&ca.instance_name)?.clone(),
                    (None, true) => return Err(TlsConfigError::SystemRootsUnsupported),
                    (None, false) if tls.require_client_certificate => {
                        return Err(TlsConfigError::ClientCertificateWithoutValidation);
                    }
                    (None, false) => return Self::without_client_auth(identity),
                };
                Some(PeerVerifier::new(
                    roots,
                    &validation.san_matchers,
                    tls.require_client_certificate,
                ))
            }
            None if tls.require_client_certificate => {
                return Err(TlsConfigError::ClientCertificateWithoutValidation);
            }
            None => None,
        };
        match verifier {
            Some(verifier) => Self::build(identity, Some(Arc::new(verifier))),
            None => Self::without_client_auth(identity),
        }
    }

    fn without_client_auth(identity: super::CertificateProvider) -> Result<Self, TlsConfigError> {
        Self::build(identity, None)
    }

    fn build(
        identity: super::CertificateProvider,
        verifier: Option<Arc<PeerVerifier>>,
    ) -> Result<Self, TlsConfigError> {
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(crypto_provider()))
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .map_err(|error| TlsConfigError::Rustls(error.to_string()))?;
        let builder = match verifier {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let mut config =
            builder.with_cert_resolver(Arc::new(IdentityResolver { provider: identity }));
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        // No resumption (see `ClientTls`): each connection is verified against the material of its own handshake.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Runs the server handshake on `stream`; returns the TLS stream and the client's verified certificate, if it
    /// presented one.
    ///
    /// # Errors
    /// [`AcceptError::Handshake`].
    pub async fn accept<S>(
        &self,
        stream: S,
    ) -> Result<(TlsStream<S>, Option<PeerCertificate>), AcceptError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = self
            .acceptor
            .accept(stream)
            .await
            .map_err(|error| AcceptError::Handshake(clarify(error)))?;
        let peer = match stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(<[_]>::first)
        {
            // Verified already; describing it again cannot fail, but a failure must not be a panic.
            Some(leaf) => Some(describe_certificate(leaf).map_err(|error| {
                AcceptError::Handshake(io::Error::new(io::ErrorKind::InvalidData, error))
            })?),
            None => None,
        };
        Ok((stream, peer))
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

/// Accepts one connection with the settings of `tls` (a convenience over [`ServerTls`]; a server accepting many
/// connections builds the [`ServerTls`] once per listener configuration instead).
///
/// # Errors
/// [`AcceptError`].
pub async fn accept<S>(
    stream: S,
    tls: &DownstreamTls,
    providers: &CertificateProviders,
) -> Result<(TlsStream<S>, Option<PeerCertificate>), AcceptError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ServerTls::new(tls, providers)?.accept(stream).await
}
