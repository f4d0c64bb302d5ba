//! TLS settings as the control plane expresses them (gRFC A29): which certificate provider instance supplies our
//! identity and our trust roots, and how the peer's subject alternative names are checked.
//!
//! These are plain settings. Loading certificates, watching files and running handshakes is the security layer's
//! job (mesh-tower / mesh-tonic); this module only says what was asked for, and what the `file_watcher` provider
//! is to read ([`FileWatcherConfig`]).

mod file_watcher;

use std::sync::Arc;

use serde::Serialize;

use crate::macros::setters;
use crate::matcher::StringMatcher;

pub use file_watcher::{DEFAULT_REFRESH_INTERVAL, FileWatcherConfig, FileWatcherConfigError};

/// A reference to a certificate provider instance from the bootstrap's `certificate_providers` (gRFC A29
/// `CertificateProviderPluginInstance`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub struct CertificateProviderInstance {
    /// The instance name, a key of the bootstrap's `certificate_providers`.
    pub instance_name: Arc<str>,
    /// Which certificate of that instance (empty for the default one).
    pub certificate_name: Arc<str>,
}

impl CertificateProviderInstance {
    /// The default certificate of instance `instance_name`.
    #[must_use]
    pub fn new(instance_name: &str) -> Self {
        Self {
            instance_name: instance_name.into(),
            certificate_name: "".into(),
        }
    }
}

/// How a peer's certificate is validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CertificateValidation {
    /// The provider of trust roots (or of the SPIFFE bundle map, gRFC A87); `None` uses system roots when
    /// [`CertificateValidation::system_root_certs`] is set, and otherwise means "no validation context".
    pub ca: Option<CertificateProviderInstance>,
    /// Use the platform's root store instead of a provider.
    pub system_root_certs: bool,
    /// The peer's certificate must carry a SAN matching at least one of these (gRFC A29); empty accepts any SAN.
    pub san_matchers: Vec<StringMatcher>,
}

setters!(CertificateValidation {
    /// Sets the trust-root provider.
    with_ca => ca: Option<CertificateProviderInstance>,
    /// Sets whether system roots are used.
    with_system_root_certs => system_root_certs: bool,
    /// Sets the SAN matchers.
    with_san_matchers => san_matchers: Vec<StringMatcher>,
});

/// TLS from a client to a cluster's endpoints (Envoy's `UpstreamTlsContext`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UpstreamTls {
    /// Our certificate, for mutual TLS; `None` for server-authenticated TLS only.
    pub identity: Option<CertificateProviderInstance>,
    /// How the server's certificate is validated.
    pub validation: CertificateValidation,
    /// The SNI to send, if any.
    pub sni: Option<Arc<str>>,
}

impl UpstreamTls {
    /// Upstream TLS validating the server with `validation`.
    #[must_use]
    pub fn new(validation: CertificateValidation) -> Self {
        Self {
            identity: None,
            validation,
            sni: None,
        }
    }
}

setters!(UpstreamTls {
    /// Sets our certificate provider (making the connection mutual TLS).
    with_identity => identity: Option<CertificateProviderInstance>,
    /// Sets the SNI.
    with_sni => sni: Option<Arc<str>>,
});

/// TLS on a server listener's filter chain (Envoy's `DownstreamTlsContext`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DownstreamTls {
    /// Our certificate (required: a TLS server needs one).
    pub identity: CertificateProviderInstance,
    /// How client certificates are validated; `None` means clients are not asked for one.
    pub validation: Option<CertificateValidation>,
    /// Whether a client certificate is required (mutual TLS).
    pub require_client_certificate: bool,
}

impl DownstreamTls {
    /// Server TLS with certificate `identity`, without client certificates.
    #[must_use]
    pub fn new(identity: CertificateProviderInstance) -> Self {
        Self {
            identity,
            validation: None,
            require_client_certificate: false,
        }
    }

    /// The security mode this context gives a connection.
    #[must_use]
    pub fn mode(&self) -> TlsMode {
        if self.require_client_certificate {
            TlsMode::Mutual
        } else {
            TlsMode::Tls
        }
    }
}

setters!(DownstreamTls {
    /// Sets how client certificates are validated.
    with_validation => validation: Option<CertificateValidation>,
    /// Sets whether a client certificate is required.
    with_require_client_certificate => require_client_certificate: bool,
});

/// The security mode of a connection (gRFC A29/A36).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TlsMode {
    /// No TLS: the control plane sent no security config (gRFC A29 plaintext fallback).
    Plaintext,
    /// Server-authenticated TLS.
    Tls,
    /// Mutual TLS.
    Mutual,
}
