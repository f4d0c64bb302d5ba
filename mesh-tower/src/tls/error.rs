//! Errors of the TLS layer: bad certificate material, configurations that cannot be honoured, and peers that fail
//! verification. Each says what was wrong and where (the file, the trust domain, the provider instance).

use std::path::PathBuf;

/// Certificate material (PEM, DER or a SPIFFE bundle map) that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MaterialError {
    /// The PEM text has no `CERTIFICATE` block.
    #[error("no certificate found")]
    NoCertificate,
    /// The PEM text has no private key block.
    #[error("no private key found")]
    NoPrivateKey,
    /// The PEM text is malformed.
    #[error("malformed PEM: {0}")]
    Pem(String),
    /// The private key cannot be used for signing (unsupported algorithm or malformed).
    #[error("unusable private key: {0}")]
    PrivateKey(String),
    /// The private key does not belong to the first certificate of the chain.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    /// A certificate meant as a trust root cannot be parsed as one.
    #[error("trust root #{index}: {reason}")]
    TrustRoot {
        /// Its position among the roots (0 for the first).
        index: usize,
        /// Why it was rejected.
        reason: String,
    },
    /// The SPIFFE trust bundle map is not valid (gRFC A87).
    #[error("SPIFFE trust bundle map: {0}")]
    Bundle(String),
}

/// A file of a `file_watcher` provider that could not be loaded; the previous material stays in use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("{field} {path:?}: {reason}")]
    Read {
        /// The config field naming the file (`certificate_file`, ...).
        field: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error, as text.
        reason: String,
    },
    /// The file was read but its content is not usable.
    #[error("{field} {path:?}: {source}")]
    Material {
        /// The config field naming the file.
        field: &'static str,
        /// The path.
        path: PathBuf,
        /// What is wrong with the content.
        #[source]
        source: MaterialError,
    },
}

/// A TLS configuration this library cannot honour safely; calls (or the listener) fail with it rather than run
/// with weaker security.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A TLS context names a certificate provider instance that the registry does not hold (not in the
    /// bootstrap's `certificate_providers`, or its plugin is not supported).
    #[error("certificate provider instance {0:?} is not configured")]
    UnknownProvider(String),
    /// Validation with the platform's root store was asked for; this library has no system root store.
    #[error(
        "system root certificates are not supported; configure a CA certificate provider instance"
    )]
    SystemRootsUnsupported,
    /// Upstream TLS without a way to validate the server: refused rather than accept any server.
    #[error("upstream TLS has no validation context (no CA certificate provider instance)")]
    NoValidationContext,
    /// A listener requires client certificates but has no validation context to check them with (gRFC A29).
    #[error("require_client_certificate is set but there is no validation context")]
    ClientCertificateWithoutValidation,
    /// A `file_watcher` config with neither identity nor roots, or with only half of the identity pair.
    #[error("file_watcher: {0}")]
    FileWatcher(#[from] mesh_core::tls::FileWatcherConfigError),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

/// Why a peer's certificate was rejected. The handshake fails with this as its reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The peer sent no certificate where one is required.
    #[error("the peer presented no certificate")]
    NoCertificate,
    /// The certificate cannot be parsed.
    #[error("malformed peer certificate: {0}")]
    Malformed(String),
    /// The provider has no trust roots (yet, or its files never loaded).
    #[error("certificate provider {0:?} has no trust roots")]
    NoTrustRoots(String),
    /// SPIFFE verification needs exactly one URI SAN (X509-SVID §2, gRFC A87).
    #[error("an X509-SVID must carry exactly one URI SAN, found {0}")]
    UriSanCount(usize),
    /// The URI SAN is not a valid SPIFFE ID.
    #[error("URI SAN {uri:?} is not a valid SPIFFE ID: {reason}")]
    InvalidSpiffeId {
        /// The URI SAN.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The SPIFFE ID's trust domain has no bundle in the map (gRFC A87 step 2).
    #[error("no trust bundle for trust domain {0:?}")]
    UnknownTrustDomain(String),
    /// Chain building or checking failed (signature, issuer, validity period, CA used as leaf, extended key
    /// usage, ...).
    #[error("certificate chain rejected: {0}")]
    Chain(String),
    /// The leaf's key usage extension does not allow TLS authentication (X509-SVID §4.3).
    #[error("leaf key usage: {0}")]
    KeyUsage(&'static str),
    /// No SAN matched the configured matchers (gRFC A29 `match_subject_alt_names`).
    #[error("no subject alternative name matches the configured matchers")]
    SanMismatch,
}

/// A handshake that failed because the peer's certificate was rejected; the source of the handshake's
/// `io::Error`, so callers can tell this from network failures by type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer certificate rejected: {0}")]
pub struct PeerRejected(pub VerifyError);

/// Rewrites a handshake error whose cause is one of our [`VerifyError`]s so that its message says why (rustls
/// prints foreign errors with `Debug`).
pub(crate) fn clarify(error: std::io::Error) -> std::io::Error {
    let verify = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|tls| match tls {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
                other.0.downcast_ref::<VerifyError>().cloned()
            }
            _ => None,
        });
    match verify {
        Some(verify) => std::io::Error::new(error.kind(), PeerRejected(verify)),
        None => error,
    }
}
