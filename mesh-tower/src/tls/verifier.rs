//! rustls hooks: the peer verifiers (client side and server side) and the identity resolvers. Each reads its
//! provider's current material when a handshake needs it, so rotation reaches the next handshake with no rebuild
//! of the rustls config, and connections already established are not touched.

use std::fmt;
use std::sync::Arc;

use mesh_core::matcher::StringMatcher;
use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::error::VerifyError;
use super::material::crypto_provider;
use super::provider::CertificateProvider;
use super::verify::{PeerRole, verify_peer};

/// Verifies peers against a provider's roots and a list of SAN matchers.
pub(crate) struct PeerVerifier {
    roots: CertificateProvider,
    matchers: Arc<[StringMatcher]>,
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PeerVerifier {
    pub(crate) fn new(
        roots: CertificateProvider,
        matchers: &[StringMatcher],
        mandatory: bool,
    ) -> Self {
        Self {
            roots,
            matchers: matchers.into(),
            mandatory,
            algorithms: crypto_provider().signature_verification_algorithms,
        }
    }

    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        role: PeerRole,
    ) -> Result<(), rustls::Error> {
        let material = self.roots.material();
        let result = match &material.roots {
            Some(roots) => {
                verify_peer(end_entity, intermediates, roots, &self.matchers, now, role).map(|_| ())
            }
            None => Err(VerifyError::NoTrustRoots(self.roots.name().to_owned())),
        };
        result.map_err(|error| {
            tracing::debug!(provider = self.roots.name(), %error, "peer certificate rejected");
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(error),
            )))
        })
    }
}

impl fmt::Debug for PeerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerVerifier")
            .field("roots", &self.roots.name())
            .field("matchers", &self.matchers)
            .field("mandatory", &self.mandatory)
            .finish_non_exhaustive()
    }
}

/// The handshake-signature checks, the same for both roles: the provider's algorithms (rustls requires them in
/// each verifier trait).
macro_rules! signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        // gRFC A29: with xDS security the SAN matchers replace hostname verification.
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verify(end_entity, intermediates, now, PeerRole::Server)
            .map(|()| ServerCertVerified::assertion())
    }

    signature_checks!();
}

impl ClientCertVerifier for PeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: with a bundle map the acceptable issuers change with rotation, and clients here hold one
        // identity anyway.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verify(end_entity, intermediates, now, PeerRole::Client)
            .map(|()| ClientCertVerified::assertion())
    }

    signature_checks!();
}

/// Presents the provider's current identity.
#[derive(Debug)]
pub(crate) struct IdentityResolver {
    pub(crate) provider: CertificateProvider,
}

impl IdentityResolver {
    fn current(&self) -> Option<Arc<CertifiedKey>> {
        let material = self.provider.material();
        let key = material
            .identity
            .as_ref()
            .map(|identity| Arc::clone(identity.certified_key()));
        if key.is_none() {
            tracing::debug!(
                provider = self.provider.name(),
                "no identity certificate to present"
            );
        }
        key
    }
}

impl ResolvesClientCert for IdentityResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.current()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for IdentityResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}
