//! The client side: a rustls client config for one cluster's `UpstreamTls`, and the handshake on a new
//! connection.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use mesh_core::endpoint::EndpointAddress;
use mesh_core::tls::UpstreamTls;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::error::{TlsConfigError, clarify};
use super::material::crypto_provider;
use super::provider::CertificateProviders;
use super::verifier::{IdentityResolver, PeerVerifier};
use super::{ALPN_H2, PROTOCOL_VERSIONS};

/// TLS for the connections of one cluster: validates servers against the cluster's CA provider instance and, for
/// mutual TLS, presents the identity provider instance's certificate. Built once per cluster configuration; the
/// material is read at each handshake.
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
    sni: Option<ServerName<'static>>,
}

impl ClientTls {
    /// The client TLS of `tls`, with provider instances from `providers`.
    ///
    /// # Errors
    /// [`TlsConfigError`] when a provider instance is unknown, validation is missing or asks for system roots, or
    /// the SNI is not a valid name.
    pub fn new(
        tls: &UpstreamTls,
        providers: &CertificateProviders,
    ) -> Result<Self, TlsConfigError> {
        let validation = &tls.validation;
        let roots = match (&validation.ca, validation.system_root_certs) {
            (Some(ca), _) => providers.require(&ca.instance_name)?.clone(),
            (None, true) => return Err(TlsConfigError::SystemRootsUnsupported),
            (None, false) => return Err(TlsConfigError::NoValidationContext),
        };
        let identity = tls
            .identity
            .as_ref()
            .map(|instance| providers.require(&instance.instance_name).cloned())
            .transpose()?;
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(crypto_provider()))
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .map_err(|error| TlsConfigError::Rustls(error.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PeerVerifier::new(
                roots,
                &validation.san_matchers,
                true,
            )));
        let mut config = match identity {
            Some(provider) => {
                builder.with_client_cert_resolver(Arc::new(IdentityResolver { provider }))
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        // A resumed session skips certificate verification and presents the identity of the original handshake:
        // after a rotation (new identity, new roots, a trust domain removed) a reconnect would still run on the old
        // material. Connections are long-lived, so every handshake is a full one.
        config.resumption = rustls::client::Resumption::disabled();
        let sni = tls
            .sni
            .as_deref()
            .map(|name| {
                ServerName::try_from(name.to_owned())
                    .map_err(|error| TlsConfigError::Rustls(format!("sni {name:?}: {error}")))
            })
            .transpose()?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            sni,
        })
    }

    /// Runs the client handshake on `stream` to the endpoint at `address`.
    ///
    /// The name sent as SNI is the configured `sni`; without one no SNI is sent (the endpoint's IP address stands
    /// in as the name, which rustls never sends). Server names are not checked against the certificate: gRFC A29
    /// replaces hostname checks with the SAN matchers.
    ///
    /// # Errors
    /// The handshake's I/O error; a rejected certificate carries the [`VerifyError`](super::VerifyError) as its
    /// source.
    pub async fn connect<S>(&self, address: &EndpointAddress, stream: S) -> io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = match (&self.sni, address) {
            (Some(sni), _) => sni.clone(),
            (None, EndpointAddress::Socket(socket)) => ServerName::IpAddress(socket.ip().into()),
            (None, _) => ServerName::IpAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED).into()),
        };
        self.connector.connect(name, stream).await.map_err(clarify)
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("sni", &self.sni)
            .finish_non_exhaustive()
    }
}
