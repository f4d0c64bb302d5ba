//! The settings of gRPC's `file_watcher` certificate provider (gRFC A29; `spiffe_trust_bundle_map_file` from gRFC
//! A87), one model for every place that names them: a bootstrap's `certificate_providers` (mesh-xds-client parses
//! them), the provider that reads and watches the files (mesh-tower), and code that builds a provider directly.
//!
//! The rules are C-core's (`FileWatcherCertificateProviderFactory::Config`) and grpc-go's (`pemfile`):
//! `certificate_file` and `private_key_file` come together, and at least one of the certificate, the CA file and the
//! SPIFFE bundle map is set. Reading and watching the files is not done here.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// gRPC's default `refresh_interval` (10 minutes).
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(600);

/// The files of a `file_watcher` instance and how often they are re-read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileWatcherConfig {
    /// PEM certificate chain of our identity (with `private_key_file`).
    pub certificate_file: Option<PathBuf>,
    /// PEM private key of `certificate_file`.
    pub private_key_file: Option<PathBuf>,
    /// PEM CA certificates (ignored when `spiffe_trust_bundle_map_file` is set, gRFC A87).
    pub ca_certificate_file: Option<PathBuf>,
    /// SPIFFE trust bundle map (gRFC A87).
    pub spiffe_trust_bundle_map_file: Option<PathBuf>,
    /// How often the files are re-read even without a file system event (default [`DEFAULT_REFRESH_INTERVAL`]).
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

/// A rule of [`FileWatcherConfig`] that a config breaks. The messages are C-core's, naming the fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileWatcherConfigError {
    /// Only one of the certificate and its key is set.
    #[error("fields \"certificate_file\" and \"private_key_file\" must be both set or both unset")]
    IdentityPair,
    /// Neither an identity nor roots: the provider would provide nothing.
    #[error(
        "at least one of \"certificate_file\", \"ca_certificate_file\" and \"spiffe_trust_bundle_map_file\" must be \
         specified"
    )]
    NothingProvided,
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
        certificate_file: impl Into<PathBuf>,
        private_key_file: impl Into<PathBuf>,
    ) -> Self {
        self.certificate_file = Some(certificate_file.into());
        self.private_key_file = Some(private_key_file.into());
        self
    }

    /// Trust roots from `path`.
    #[must_use]
    pub fn with_ca_certificate_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_certificate_file = Some(path.into());
        self
    }

    /// A SPIFFE trust bundle map from `path`.
    #[must_use]
    pub fn with_spiffe_trust_bundle_map_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.spiffe_trust_bundle_map_file = Some(path.into());
        self
    }

    /// How often the files are re-read.
    #[must_use]
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Where the trust roots come from, with the field's name: the SPIFFE bundle map when set (gRFC A87), else the
    /// CA file.
    #[must_use]
    pub fn roots_file(&self) -> Option<(&'static str, &Path)> {
        match (
            &self.spiffe_trust_bundle_map_file,
            &self.ca_certificate_file,
        ) {
            (Some(path), _) => Some(("spiffe_trust_bundle_map_file", path)),
            (None, Some(path)) => Some(("ca_certificate_file", path)),
            (None, None) => None,
        }
    }

    /// Every rule this config breaks, in a fixed order (empty when it is valid).
    pub fn problems(&self) -> impl Iterator<Item = FileWatcherConfigError> {
        let unpaired = self.certificate_file.is_some() != self.private_key_file.is_some();
        let nothing = self.certificate_file.is_none() && self.roots_file().is_none();
        [
            unpaired.then_some(FileWatcherConfigError::IdentityPair),
            nothing.then_some(FileWatcherConfigError::NothingProvided),
        ]
        .into_iter()
        .flatten()
    }

    /// Checks the rules.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), FileWatcherConfigError> {
        self.problems().next().map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_without_its_certificate_and_nothing_else_breaks_both_rules() {
        let config = FileWatcherConfig {
            private_key_file: Some("key.pem".into()),
            ..FileWatcherConfig::default()
        };
        assert_eq!(
            config.problems().collect::<Vec<_>>(),
            [
                FileWatcherConfigError::IdentityPair,
                FileWatcherConfigError::NothingProvided
            ]
        );
        assert_eq!(config.validate(), Err(FileWatcherConfigError::IdentityPair));
    }

    #[test]
    fn any_one_source_is_enough() {
        let identity = FileWatcherConfig::new().with_identity("cert.pem", "key.pem");
        let ca = FileWatcherConfig::new().with_ca_certificate_file("ca.pem");
        let bundles = FileWatcherConfig::new().with_spiffe_trust_bundle_map_file("bundles.json");
        for config in [identity, ca, bundles] {
            assert_eq!(config.validate(), Ok(()), "{config:?}");
        }
        assert_eq!(
            FileWatcherConfig::new().validate(),
            Err(FileWatcherConfigError::NothingProvided)
        );
    }

    #[test]
    fn the_bundle_map_wins_over_the_ca_file() {
        let config = FileWatcherConfig::new()
            .with_ca_certificate_file("ca.pem")
            .with_spiffe_trust_bundle_map_file("bundles.json");
        assert_eq!(
            config.roots_file(),
            Some(("spiffe_trust_bundle_map_file", Path::new("bundles.json")))
        );
    }
}
