//! `certificate_providers` (gRFC A29): named certificate provider instances that xDS TLS contexts refer to.

use std::time::Duration;

use serde::Serialize;

use super::duration;
use super::server::DEFAULT_REFRESH_INTERVAL;

/// The plugin name of gRPC's file-watcher certificate provider (gRFC A29).
pub const FILE_WATCHER_PLUGIN: &str = "file_watcher";

/// One entry of `certificate_providers`.
///
/// Plugins other than `file_watcher` are kept, with [`CertificateProviderConfig::file_watcher`] `None`, as grpc-go
/// keeps them (C-core refuses the whole bootstrap instead): a bootstrap shared with other gRPC clients still loads,
/// and a TLS context that names such an instance fails when it is used, not before.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CertificateProviderConfig {
    /// `plugin_name`.
    pub plugin_name: String,
    /// `config` as written (an empty object when absent).
    pub config: serde_json::Value,
    /// The validated `config` when the plugin is `file_watcher`.
    #[serde(skip)]
    pub file_watcher: Option<FileWatcherConfig>,
}

impl CertificateProviderConfig {
    /// A `file_watcher` instance; `config` is filled in from `file_watcher` so a config dump shows it.
    #[must_use]
    pub fn file_watcher(file_watcher: FileWatcherConfig) -> Self {
        Self {
            plugin_name: FILE_WATCHER_PLUGIN.to_owned(),
            config: file_watcher.to_json(),
            file_watcher: Some(file_watcher),
        }
    }

    /// An instance of plugin `plugin_name` with `config`. A `file_watcher` config given this way is validated by
    /// [`super::BootstrapBuilder::build`].
    #[must_use]
    pub fn new(plugin_name: impl Into<String>, config: serde_json::Value) -> Self {
        Self {
            plugin_name: plugin_name.into(),
            config,
            file_watcher: None,
        }
    }
}

/// The `file_watcher` plugin's config (gRFC A29; `spiffe_trust_bundle_map_file` from gRFC A87, which gRPC guards
/// behind `GRPC_EXPERIMENTAL_XDS_MTLS_SPIFFE` and this library always accepts).
///
/// Rules (C-core's `FileWatcherCertificateProviderFactory::Config` and grpc-go's `pemfile`): `certificate_file` and
/// `private_key_file` are both set or both unset, and at least one of the certificate pair, `ca_certificate_file`
/// and `spiffe_trust_bundle_map_file` is set. Empty strings count as unset, as in grpc-go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FileWatcherConfig {
    /// PEM certificate chain of our identity.
    pub certificate_file: Option<String>,
    /// PEM private key of `certificate_file`.
    pub private_key_file: Option<String>,
    /// PEM trust roots.
    pub ca_certificate_file: Option<String>,
    /// SPIFFE trust bundle map (gRFC A87); when set, `ca_certificate_file` is ignored by the provider.
    pub spiffe_trust_bundle_map_file: Option<String>,
    /// How often the files are re-read (default [`DEFAULT_REFRESH_INTERVAL`]).
    #[serde(serialize_with = "duration::serialize")]
    pub refresh_interval: Duration,
}

impl Default for FileWatcherConfig {
    fn default() -> Self {
        Self {
            certificate_file: None,
            private_key_file: None,
            ca_certificate_file: None,
            spiffe_trust_bundle_map_file: None,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
        }
    }
}

impl FileWatcherConfig {
    /// An empty config, to be completed with the `with_*` setters (empty is not valid on its own).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Our identity: the certificate chain in `certificate_file` with the key in `private_key_file`.
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

    /// Trust roots from `path`.
    #[must_use]
    pub fn with_ca_certificate_file(mut self, path: impl Into<String>) -> Self {
        self.ca_certificate_file = Some(path.into());
        self
    }

    /// A SPIFFE trust bundle map from `path`.
    #[must_use]
    pub fn with_spiffe_trust_bundle_map_file(mut self, path: impl Into<String>) -> Self {
        self.spiffe_trust_bundle_map_file = Some(path.into());
        self
    }

    /// How often the files are re-read.
    #[must_use]
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// The plugin config as it would appear in a bootstrap.
    fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        let files = [
            ("certificate_file", &self.certificate_file),
            ("private_key_file", &self.private_key_file),
            ("ca_certificate_file", &self.ca_certificate_file),
            (
                "spiffe_trust_bundle_map_file",
                &self.spiffe_trust_bundle_map_file,
            ),
        ];
        for (key, value) in files {
            if let Some(value) = value {
                object.insert(key.to_owned(), value.clone().into());
            }
        }
        object.insert(
            "refresh_interval".to_owned(),
            duration::format(self.refresh_interval).into(),
        );
        serde_json::Value::Object(object)
    }
}
