//! `certificate_providers` (gRFC A29): named certificate provider instances that xDS TLS contexts refer to.

use serde::Serialize;

pub use mesh_core::tls::FileWatcherConfig;

use super::duration;

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
            config: file_watcher_json(&file_watcher),
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

/// A `file_watcher` config as it would appear in a bootstrap (the model and its rules are mesh-core's).
fn file_watcher_json(config: &FileWatcherConfig) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    let files = [
        ("certificate_file", &config.certificate_file),
        ("private_key_file", &config.private_key_file),
        ("ca_certificate_file", &config.ca_certificate_file),
        (
            "spiffe_trust_bundle_map_file",
            &config.spiffe_trust_bundle_map_file,
        ),
    ];
    for (key, value) in files {
        if let Some(value) = value {
            object.insert(key.to_owned(), value.to_string_lossy().into());
        }
    }
    object.insert(
        "refresh_interval".to_owned(),
        duration::format(config.refresh_interval).into(),
    );
    serde_json::Value::Object(object)
}
