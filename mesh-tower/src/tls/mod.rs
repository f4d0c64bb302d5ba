//! Transport security: certificate providers, rustls configs with SPIFFE verification, and mutual TLS on upstream
//! connections (gRFC A29, A87; the SPIFFE X509-SVID spec).
//!
//! - [`CertificateProvider`]: our identity and trust roots (a CA set or a SPIFFE trust bundle map), swapped
//!   atomically on rotation; in memory ([`CertificateProvider::new`]) or gRPC's `file_watcher`
//!   ([`CertificateProvider::file_watcher`]). [`CertificateProviders`] is the registry xDS TLS contexts name
//!   instances from; give it to the mesh with [`MeshOptions::with_certificate_providers`](crate::MeshOptions).
//! - [`ClientTls`] and [`ServerTls`]: rustls (ring provider only) with TLS 1.3 and 1.2 and ALPN `h2`. Handshakes
//!   read the providers' current material, so rotation applies to the next handshake and established connections
//!   stay up. Session resumption is off on both sides, so a reconnect never carries the identity or trust decision
//!   of an earlier handshake.
//! - [`verify_peer`]: chain verification by rustls-webpki to the peer's trust-domain bundle (SPIFFE) or the CA
//!   set; X509-SVID rules (one URI SAN with a SPIFFE ID, a CA certificate never a leaf, key usage); then the xDS SAN
//!   matchers. The result is a [`PeerCertificate`](mesh_core::peer::PeerCertificate).
//!
//! A cluster with `UpstreamTls` connects with [`ClientTls`]; an unknown provider instance, system roots or a
//! missing validation context fail its calls with the reason ([`TlsConfigError`]), never plaintext.
//!
//! ```no_run
//! use mesh_tower::MeshOptions;
//! use mesh_tower::tls::{CertificateProvider, CertificateProviders, FileWatcherConfig};
//!
//! # async fn run() -> Result<(), mesh_tower::tls::TlsConfigError> {
//! // gRPC's file_watcher plugin: identity and a SPIFFE trust bundle map, reloaded when the files change.
//! let files = FileWatcherConfig::default()
//!     .with_identity("/var/run/secrets/svid/tls.crt", "/var/run/secrets/svid/tls.key")
//!     .with_spiffe_trust_bundle_map_file("/var/run/secrets/svid/bundles.json");
//! let provider = CertificateProvider::file_watcher("default", files)?;
//! // A failed reload keeps the previous material and says which file is wrong.
//! for error in &provider.status().errors {
//!     eprintln!("{error}");
//! }
//! // Clusters whose UpstreamTls names instance "default" now connect with mutual TLS.
//! let options = MeshOptions::default()
//!     .with_certificate_providers(CertificateProviders::new().with(provider));
//! # let _ = options;
//! # Ok(())
//! # }
//! ```
//!
//! Not here: revocation (CRLs, OCSP), certificate pinning, system root stores, SNI-based certificate selection on
//! servers, a provider instance's non-default `certificate_name` (ignored, as gRPC's `file_watcher` has only one
//! certificate), provider plugins other than `file_watcher` and in-memory. TLS to the control plane (gRFC A65) is
//! mesh-tonic's glue over [`ClientTls`].

mod bundle;
mod certificate;
mod client;
mod error;
mod file_watcher;
pub(crate) mod io;
mod material;
mod provider;
mod server;
mod verifier;
mod verify;

pub use bundle::X509_SVID_USE;
pub use certificate::describe_certificate;
pub use client::ClientTls;
pub use error::{LoadError, MaterialError, PeerRejected, TlsConfigError, VerifyError};
pub use file_watcher::{DEBOUNCE, DEFAULT_REFRESH_INTERVAL, FileWatcherConfig, MAX_FILE_SIZE};
pub use material::{Identity, RootSet, TrustRoots};
pub use provider::{
    CertificateMaterial, CertificateProvider, CertificateProviders, ProviderStatus,
};
pub use server::{AcceptError, ServerTls, accept};
pub use verify::{PeerRole, verify_peer};

/// The certificate types of the public API (`CertificateDer`, `UnixTime`, ...), as rustls re-exports them.
pub use rustls::pki_types;

/// The ALPN protocol offered and accepted: HTTP/2 only (gRPC).
pub const ALPN_H2: &[u8] = b"h2";

/// TLS 1.3 and 1.2.
const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
