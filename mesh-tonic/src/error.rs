//! What can go wrong while building a [`Mesh`](crate::Mesh) and while making a channel.
//!
//! Failures of individual requests are not here: the request path answers them as gRPC statuses (see
//! [`mesh_tower::error::MeshError`]).

use mesh_xds_client::bootstrap::{BootstrapError, ListenerNameError};
use mesh_xds_client::client::ClientError;

/// [`MeshBuilder::build`](crate::MeshBuilder::build) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// No bootstrap was given and xDS was not turned off.
    #[error(
        "bootstrap: none configured; call .bootstrap(..), .bootstrap_from_env() or .xds_server(..), or \
         .without_xds() for dns: and static channels only"
    )]
    NoBootstrap,
    /// Two ways of configuring the bootstrap were mixed.
    #[error("bootstrap: {0}")]
    Conflict(&'static str),
    /// The bootstrap could not be loaded or is invalid.
    #[error("bootstrap: {0}")]
    Bootstrap(#[from] BootstrapError),
    /// The xDS client could not start.
    #[error("xDS client: {0}")]
    XdsClient(#[from] ClientError),
    /// A certificate provider instance of the bootstrap cannot be started (gRFC A29).
    #[error("bootstrap: certificate_providers[{name:?}]: {source}")]
    CertificateProvider {
        /// The instance name.
        name: String,
        /// Why.
        source: mesh_tower::tls::TlsConfigError,
    },
    /// An xDS server's `tls` channel credentials cannot be honoured (gRFC A65).
    #[error("bootstrap: xds_servers ({server_uri}): tls channel_creds: {source}")]
    ControlPlaneTls {
        /// The server's URI.
        server_uri: String,
        /// Why.
        source: mesh_tower::tls::TlsConfigError,
    },
    /// `build` was called outside a tokio runtime.
    #[error("Mesh::builder().build() must be called inside a tokio runtime")]
    NoRuntime,
    /// Telemetry could not be set up (an `OTEL_*` variable, the OTLP exporter), or its settings were given
    /// without a collector.
    #[error("telemetry: {0}")]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// The admin endpoint ([`MeshBuilder::admin`](crate::MeshBuilder::admin)) could not start.
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
}

/// A channel could not be made for a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The target does not parse or uses an unsupported form.
    #[error("target {target:?}: {problem}")]
    InvalidTarget {
        /// The target as given.
        target: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The target's Listener name cannot be derived from the bootstrap (gRFC A47).
    #[error("target {target:?}: {source}")]
    ListenerName {
        /// The target as given.
        target: String,
        /// Why.
        source: ListenerNameError,
    },
    /// An `xds:` target on a mesh built without xDS.
    #[error("target {target:?}: this mesh was built without xDS (MeshBuilder::without_xds)")]
    XdsDisabled {
        /// The target as given.
        target: String,
    },
    /// A static channel with no addresses.
    #[error("static channel: the address list is empty")]
    NoAddresses,
    /// The configuration made for a `dns:` or static target is inconsistent (a bug in this crate).
    #[error("target {target:?}: {problem}")]
    Internal {
        /// The target.
        target: String,
        /// What went wrong.
        problem: String,
    },
}
