//! gRPC's `file_watcher` certificate provider (gRFC A29; `spiffe_trust_bundle_map_file` from gRFC A87).
//!
//! The files are read once when the provider is made, then again when their directories change (notify; a
//! Kubernetes secret volume swaps a `..data` symlink inside the directory, which shows as an event there) and every
//! `refresh_interval` (for file systems that send no events). A reload publishes only what changed. The identity
//! (certificate and key, which must match) and the roots are reloaded independently: a part that fails to load
//! keeps its previous material, and the failure is logged and reported in the provider's status with the field,
//! the path and the problem. Nothing in a file can make this panic.
//!
//! Not here: the settings and their rules ([`FileWatcherConfig`], mesh-core's), the bootstrap JSON (mesh-xds-client
//! parses it into the same type).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

pub use mesh_core::tls::{DEFAULT_REFRESH_INTERVAL, FileWatcherConfig};

use notify::Watcher;
use tokio::sync::Notify;

use super::error::{LoadError, MaterialError, TlsConfigError};
use super::material::{Identity, TrustRoots};
use super::provider::{CertificateProvider, Shared};

/// How long to wait after a file event before reading, so a multi-step swap (new key, new certificate, symlink)
/// is read once, complete.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// The bytes last loaded successfully, to skip reloads that change nothing.
#[derive(Default)]
struct Loaded {
    identity: Option<(Vec<u8>, Vec<u8>)>,
    roots: Option<Vec<u8>>,
}

impl CertificateProvider {
    /// A `file_watcher` provider named `name`: reads the files now, then watches them on a task of the current
    /// tokio runtime, which ends when the last handle to the provider is dropped. A failed first read leaves that
    /// part empty (handshakes needing it fail) and is reported in [`CertificateProvider::status`].
    ///
    /// # Errors
    /// [`TlsConfigError::FileWatcher`] when only one of the certificate and key is set, or nothing is set.
    ///
    /// # Panics
    /// Outside a tokio runtime (as `tokio::spawn` does).
    pub fn file_watcher(name: &str, options: FileWatcherConfig) -> Result<Self, TlsConfigError> {
        options.validate().map_err(TlsConfigError::FileWatcher)?;
        let provider = Self::new(name);
        let mut loaded = Loaded::default();
        reload(&provider.shared, &options, &mut loaded);
        let wake = Arc::new(Notify::new());
        let watcher = watch_directories(&options, &wake, name);
        tokio::spawn(run(
            Arc::downgrade(&provider.shared),
            options,
            loaded,
            wake,
            watcher,
        ));
        Ok(provider)
    }
}

/// Watches the directory of every file (not the files: a symlink swap replaces them).
fn watch_directories(
    options: &FileWatcherConfig,
    wake: &Arc<Notify>,
    name: &str,
) -> Option<notify::RecommendedWatcher> {
    let notify_wake = Arc::clone(wake);
    let mut watcher = match notify::recommended_watcher(move |_event| notify_wake.notify_one()) {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(provider = name, %error, "cannot watch certificate files; relying on refresh_interval");
            return None;
        }
    };
    let files = [
        &options.certificate_file,
        &options.private_key_file,
        &options.ca_certificate_file,
        &options.spiffe_trust_bundle_map_file,
    ];
    let mut directories: Vec<PathBuf> = Vec::new();
    for file in files.into_iter().flatten() {
        let directory = match file.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !directories.contains(&directory) {
            directories.push(directory);
        }
    }
    for directory in &directories {
        if let Err(error) = watcher.watch(directory, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(provider = name, directory = %directory.display(), %error, "cannot watch directory; relying on refresh_interval");
        }
    }
    Some(watcher)
}

async fn run(
    shared: Weak<Shared>,
    options: FileWatcherConfig,
    mut loaded: Loaded,
    wake: Arc<Notify>,
    _watcher: Option<notify::RecommendedWatcher>,
) {
    loop {
        if tokio::time::timeout(options.refresh_interval, wake.notified())
            .await
            .is_ok()
        {
            tokio::time::sleep(DEBOUNCE).await;
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        reload(&shared, &options, &mut loaded);
    }
}

/// Reads every file and publishes what changed and what failed.
fn reload(shared: &Shared, options: &FileWatcherConfig, loaded: &mut Loaded) {
    let current = shared.load();
    let mut next = (*current).clone();
    let mut changed = false;
    let mut errors = Vec::new();

    if let (Some(certificate_file), Some(private_key_file)) =
        (&options.certificate_file, &options.private_key_file)
    {
        match read_identity(certificate_file, private_key_file, loaded) {
            Ok(Some(identity)) => {
                next.identity = Some(identity);
                changed = true;
            }
            Ok(None) => {}
            Err(error) => errors.push(Arc::new(error)),
        }
    }
    if let Some((field, path)) = options.roots_file() {
        match read_roots(field, path, loaded) {
            Ok(Some(roots)) => {
                next.roots = Some(roots);
                changed = true;
            }
            Ok(None) => {}
            Err(error) => errors.push(Arc::new(error)),
        }
    }
    shared.publish(changed.then_some(next), errors);
}

/// Reads the certificate and key; `Ok(None)` when they are unchanged since the last successful load.
fn read_identity(
    certificate_file: &Path,
    private_key_file: &Path,
    loaded: &mut Loaded,
) -> Result<Option<Identity>, LoadError> {
    let chain = read("certificate_file", certificate_file)?;
    let key = read("private_key_file", private_key_file)?;
    if loaded
        .identity
        .as_ref()
        .is_some_and(|(old_chain, old_key)| *old_chain == chain && *old_key == key)
    {
        return Ok(None);
    }
    let identity = Identity::from_pem(&chain, &key).map_err(|source| {
        // A key that does not fit is as much the key file's fault as the certificate's; name the pair.
        let (field, path) = match source {
            MaterialError::NoPrivateKey
            | MaterialError::PrivateKey(_)
            | MaterialError::KeyMismatch => ("private_key_file", private_key_file),
            _ => ("certificate_file", certificate_file),
        };
        LoadError::Material {
            field,
            path: path.to_path_buf(),
            source,
        }
    })?;
    loaded.identity = Some((chain, key));
    Ok(Some(identity))
}

/// Reads the roots; `Ok(None)` when unchanged since the last successful load.
fn read_roots(
    field: &'static str,
    path: &Path,
    loaded: &mut Loaded,
) -> Result<Option<TrustRoots>, LoadError> {
    let bytes = read(field, path)?;
    if loaded.roots.as_ref() == Some(&bytes) {
        return Ok(None);
    }
    let roots = if field == "spiffe_trust_bundle_map_file" {
        TrustRoots::spiffe_from_json(&bytes)
    } else {
        TrustRoots::ca_from_pem(&bytes)
    }
    .map_err(|source| LoadError::Material {
        field,
        path: path.to_path_buf(),
        source,
    })?;
    loaded.roots = Some(bytes);
    Ok(Some(roots))
}

/// Upper bound on a certificate file, so a wrong path (a device, a huge log) cannot exhaust memory.
pub const MAX_FILE_SIZE: u64 = 1 << 20;

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, LoadError> {
    let error = |reason: String| LoadError::Read {
        field,
        path: path.to_path_buf(),
        reason,
    };
    let metadata = std::fs::metadata(path).map_err(|e| error(e.to_string()))?;
    if !metadata.is_file() {
        return Err(error("not a regular file".to_owned()));
    }
    if metadata.len() > MAX_FILE_SIZE {
        return Err(error(format!("larger than {MAX_FILE_SIZE} bytes")));
    }
    std::fs::read(path).map_err(|e| error(e.to_string()))
}
