//! One management server entry of `xds_servers` (gRFC A27, A47, A71) and the credentials used to reach it.

use std::time::Duration;

use serde::Serialize;

use super::duration;

/// gRFC A53: a server feature telling the client not to drop Listener and Cluster resources the server stops
/// sending.
pub const SERVER_FEATURE_IGNORE_RESOURCE_DELETION: &str = "ignore_resource_deletion";

/// gRFC A29/A65: how often certificate files are re-read when the config does not say.
pub use mesh_core::tls::DEFAULT_REFRESH_INTERVAL;

/// An xDS management server: where it is, how to reach it, and what it supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct XdsServer {
    /// The server's gRPC target URI (`dns:///xds.example.com:443`, `localhost:18000`).
    pub server_uri: String,
    /// The credentials chosen for it: the first entry of the bootstrap's `channel_creds` list of a type this client
    /// knows (gRFC A27).
    pub channel_creds: ChannelCreds,
    /// The `server_features` strings, in bootstrap order (entries that are not strings are skipped, as C-core does).
    pub server_features: Vec<String>,
}

impl XdsServer {
    /// A server at `server_uri` reached with `channel_creds`, with no server features.
    #[must_use]
    pub fn new(server_uri: impl Into<String>, channel_creds: ChannelCreds) -> Self {
        Self {
            server_uri: server_uri.into(),
            channel_creds,
            server_features: Vec::new(),
        }
    }

    /// Adds a server feature.
    #[must_use]
    pub fn with_server_feature(mut self, feature: impl Into<String>) -> Self {
        self.server_features.push(feature.into());
        self
    }

    /// Whether the bootstrap lists `feature` for this server.
    #[must_use]
    pub fn has_server_feature(&self, feature: &str) -> bool {
        self.server_features.iter().any(|f| f == feature)
    }

    /// gRFC A53: whether resource deletions from this server are ignored (feature `ignore_resource_deletion`).
    #[must_use]
    pub fn ignore_resource_deletion(&self) -> bool {
        self.has_server_feature(SERVER_FEATURE_IGNORE_RESOURCE_DELETION)
    }
}

/// Channel credentials for talking to a management server.
///
/// The types are C-core's: `insecure`, `google_default` and `tls` (gRFC A65). `google_default` is *accepted* and
/// selected exactly where C-core would select it, so a bootstrap written for Google Cloud keeps parsing and a config
/// dump shows what it asked for; but this project has no Google application-default credentials, so the transport
/// must refuse to connect with [`ChannelCreds::GoogleDefault`] and say so. Listing `insecure` or `tls` *before*
/// `google_default` is how a bootstrap picks one of those instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "config", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChannelCreds {
    /// Plaintext.
    Insecure,
    /// Google application-default credentials (accepted here, unsupported by the transport).
    GoogleDefault,
    /// TLS, optionally mutual, from files (gRFC A65).
    Tls(TlsChannelCreds),
}

impl ChannelCreds {
    /// The type name used in the bootstrap's `channel_creds[].type`.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Insecure => "insecure",
            Self::GoogleDefault => "google_default",
            Self::Tls(_) => "tls",
        }
    }
}

/// gRFC A65 `tls` channel credentials: like a `file_watcher` certificate provider, except that every file is
/// optional. Without `ca_certificate_file` the system roots are used; without the certificate pair the client does
/// not present a certificate. The files are only named here; reading and re-reading them is the transport's job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TlsChannelCreds {
    /// PEM trust roots; `None` uses the system roots.
    pub ca_certificate_file: Option<String>,
    /// PEM certificate chain presented to the server; set together with `private_key_file`.
    pub certificate_file: Option<String>,
    /// PEM private key of `certificate_file`.
    pub private_key_file: Option<String>,
    /// How often the files are re-read (default [`DEFAULT_REFRESH_INTERVAL`]).
    #[serde(serialize_with = "duration::serialize")]
    pub refresh_interval: Duration,
}

impl Default for TlsChannelCreds {
    fn default() -> Self {
        Self {
            ca_certificate_file: None,
            certificate_file: None,
            private_key_file: None,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
        }
    }
}

impl TlsChannelCreds {
    /// Server-authenticated TLS against the system roots.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Trust roots from `path` instead of the system roots.
    #[must_use]
    pub fn with_ca_certificate_file(mut self, path: impl Into<String>) -> Self {
        self.ca_certificate_file = Some(path.into());
        self
    }

    /// Mutual TLS: present the certificate chain in `certificate_file` with the key in `private_key_file`.
    #[must_use]
    pub fn with_identity(
        mut self,
        certificate_file: impl Into<String>,
        private_key_file: impl Into<String>,
    ) -> Self {
        self.certificate_file = Some(certificate_file.into());
        self.private_key_file = Some(private_key_file.into());
        self
    }

    /// How often the files are re-read.
    #[must_use]
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }
}
