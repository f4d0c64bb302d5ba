//! Certificate providers (gRFC A29): named sources of our identity and of trust roots, read by handshakes with one
//! atomic load and updated (rotated) without touching established connections.
//!
//! A [`CertificateProvider`] is a cheap handle to shared state. Its material is set from code
//! ([`CertificateProvider::new`] and the setters: the in-memory provider) or by the `file_watcher` task
//! ([`CertificateProvider::file_watcher`]). Updates and failed reloads are published as a [`ProviderStatus`] that
//! callers can read or await ([`CertificateProvider::status`], [`CertificateProvider::subscribe`]).
//!
//! [`CertificateProviders`] is the registry TLS contexts look instances up in by name.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::error::{LoadError, TlsConfigError};
use super::material::{Identity, TrustRoots};

/// One snapshot of a provider's material.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CertificateMaterial {
    /// Our identity, if this provider supplies one.
    pub identity: Option<Identity>,
    /// The trust roots, if this provider supplies them.
    pub roots: Option<TrustRoots>,
}

/// What a provider reports about its updates.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ProviderStatus {
    /// How many times new material was published.
    pub updates: u64,
    /// The errors of the last reload, if it failed in part or in whole (the previous material stayed in use for
    /// what failed); empty after a clean reload.
    pub errors: Vec<Arc<LoadError>>,
}

pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    material: ArcSwap<CertificateMaterial>,
    status: watch::Sender<ProviderStatus>,
}

/// A certificate provider instance: a cheap handle to its shared, atomically swapped material (see [`crate::tls`]).
#[derive(Clone)]
pub struct CertificateProvider {
    pub(crate) shared: Arc<Shared>,
}

impl CertificateProvider {
    /// An in-memory provider named `name` (the name shows in errors), with no material yet.
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self {
            shared: Arc::new(Shared {
                name: name.into(),
                material: ArcSwap::from_pointee(CertificateMaterial::default()),
                status: watch::Sender::new(ProviderStatus::default()),
            }),
        }
    }

    /// An in-memory provider holding `identity` and `roots`.
    #[must_use]
    pub fn with_material(
        name: &str,
        identity: Option<Identity>,
        roots: Option<TrustRoots>,
    ) -> Self {
        let provider = Self::new(name);
        provider.set_material(CertificateMaterial { identity, roots });
        provider
    }

    /// The instance name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The current material (one atomic load).
    #[must_use]
    pub fn material(&self) -> Arc<CertificateMaterial> {
        self.shared.material.load_full()
    }

    /// Replaces the whole material; new handshakes use it at once, established connections are not touched.
    pub fn set_material(&self, material: CertificateMaterial) {
        self.shared.material.store(Arc::new(material));
        self.shared.status.send_modify(|status| {
            status.updates = status.updates.saturating_add(1);
            status.errors.clear();
        });
    }

    /// Replaces the identity, keeping the roots.
    pub fn set_identity(&self, identity: Option<Identity>) {
        let roots = self.material().roots.clone();
        self.set_material(CertificateMaterial { identity, roots });
    }

    /// Replaces the roots, keeping the identity.
    pub fn set_roots(&self, roots: Option<TrustRoots>) {
        let identity = self.material().identity.clone();
        self.set_material(CertificateMaterial { identity, roots });
    }

    /// The latest status.
    #[must_use]
    pub fn status(&self) -> ProviderStatus {
        self.shared.status.borrow().clone()
    }

    /// A receiver that sees every status change (to await a reload or a reload failure).
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<ProviderStatus> {
        self.shared.status.subscribe()
    }
}

impl Shared {
    /// The current material.
    pub(crate) fn load(&self) -> Arc<CertificateMaterial> {
        self.material.load_full()
    }

    /// Publishes the outcome of a reload: `material` when something changed, and the errors of what failed.
    pub(crate) fn publish(
        &self,
        material: Option<CertificateMaterial>,
        errors: Vec<Arc<LoadError>>,
    ) {
        let shared = self;
        for error in &errors {
            tracing::warn!(provider = %shared.name, %error, "certificate reload failed; keeping the previous material");
        }
        let changed = material.is_some();
        if let Some(material) = material {
            shared.material.store(Arc::new(material));
            tracing::info!(provider = %shared.name, "certificate material updated");
        }
        shared.status.send_if_modified(|status| {
            if changed {
                status.updates = status.updates.saturating_add(1);
            }
            let errors_changed = status.errors != errors;
            status.errors = errors;
            changed || errors_changed
        });
    }
}

impl fmt::Debug for CertificateProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateProvider")
            .field("name", &self.shared.name)
            .field("material", &self.shared.material.load())
            .finish()
    }
}

/// The certificate provider instances TLS contexts can name, by instance name.
#[derive(Debug, Clone, Default)]
pub struct CertificateProviders {
    providers: Arc<HashMap<Arc<str>, CertificateProvider>>,
}

impl CertificateProviders {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `provider` under its name.
    #[must_use]
    pub fn with(mut self, provider: CertificateProvider) -> Self {
        Arc::make_mut(&mut self.providers).insert(Arc::clone(&provider.shared.name), provider);
        self
    }

    /// The instance named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&CertificateProvider> {
        self.providers.get(name)
    }

    /// The instance named `name`, or the error a TLS context naming it fails with.
    ///
    /// # Errors
    /// [`TlsConfigError::UnknownProvider`].
    pub fn require(&self, name: &str) -> Result<&CertificateProvider, TlsConfigError> {
        self.get(name)
            .ok_or_else(|| TlsConfigError::UnknownProvider(name.to_owned()))
    }

    /// Every instance, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &CertificateProvider> {
        self.providers.values()
    }

    /// Whether the registry is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}
