//! Reloading the mesh file when it changes.
//!
//! The file's directory is watched (not the file), so editors that replace the file and Kubernetes ConfigMap
//! volumes, which swap a `..data` symlink, are both seen. Events are debounced; the file is re-read and, when its
//! text changed, parsed, validated and translated. A good file becomes a new snapshot version; a bad one is logged
//! with its error and the previous snapshot keeps serving.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::cache::SnapshotCache;
use crate::mesh::{MeshConfig, MeshError};
use crate::server::VersionCounter;

/// Quiet time after the last file event before the file is read, so a multi-step write is read once, whole.
pub const DEFAULT_RELOAD_DEBOUNCE: Duration = Duration::from_millis(100);

/// The result of the last reload attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// The file changed and is now served at `version`.
    Applied {
        /// The new snapshot version.
        version: String,
    },
    /// The file's text did not change.
    Unchanged,
    /// The file could not be read or is invalid; the previous snapshot keeps serving.
    Failed {
        /// What was wrong, with YAML paths.
        error: String,
    },
}

/// Reload progress, observable through [`crate::XdsServer::reload_status`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadStatus {
    /// Reload attempts so far (each debounced burst of file events is one attempt).
    pub attempts: u64,
    /// The version being served from the file.
    pub version: String,
    /// The outcome of the last attempt.
    pub last: Option<ReloadOutcome>,
}

/// Loads a mesh file and translates it into the cache as a new version.
#[derive(Debug, Clone)]
pub(crate) struct ConfigTarget {
    pub(crate) cache: SnapshotCache,
    pub(crate) versions: Arc<VersionCounter>,
    pub(crate) node: Option<String>,
}

impl ConfigTarget {
    pub(crate) fn apply(&self, mesh: &MeshConfig) -> Result<String, MeshError> {
        let resources = mesh.translate()?;
        let version = self.versions.next();
        self.cache
            .set_snapshot(self.node.as_deref(), resources.into_snapshot(&version));
        Ok(version)
    }
}

/// A running watch; dropping it stops watching.
#[derive(Debug)]
pub(crate) struct ConfigWatcher {
    _watcher: RecommendedWatcher,
    task: JoinHandle<()>,
    status: watch::Receiver<ReloadStatus>,
}

impl ConfigWatcher {
    pub(crate) fn status(&self) -> watch::Receiver<ReloadStatus> {
        self.status.clone()
    }
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `path`, whose current text `initial_text` is already served at `initial_version`.
pub(crate) fn watch_file(
    path: PathBuf,
    initial_text: String,
    initial_version: String,
    target: ConfigTarget,
    debounce: Duration,
) -> Result<ConfigWatcher, notify::Error> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().map(ToOwned::to_owned).unwrap_or_default();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // The receiver is gone only after the task ended; nothing to do then.
        let _ = events_tx.send(event);
    })?;
    watcher.watch(&directory, RecursiveMode::NonRecursive)?;
    let (status_tx, status) = watch::channel(ReloadStatus {
        attempts: 0,
        version: initial_version,
        last: None,
    });
    let reloader = Reloader {
        path,
        file_name,
        last_text: initial_text,
        target,
        status: status_tx,
        debounce,
    };
    let task = tokio::spawn(reloader.run(events_rx));
    Ok(ConfigWatcher {
        _watcher: watcher,
        task,
        status,
    })
}

struct Reloader {
    path: PathBuf,
    file_name: OsString,
    last_text: String,
    target: ConfigTarget,
    status: watch::Sender<ReloadStatus>,
    debounce: Duration,
}

impl Reloader {
    async fn run(mut self, mut events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>) {
        while let Some(event) = events.recv().await {
            if !self.is_relevant(event) {
                continue;
            }
            // Debounce: wait for a quiet period so an editor's truncate-then-write is read once, complete.
            loop {
                match tokio::time::timeout(self.debounce, events.recv()).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return,
                    Err(_elapsed) => break,
                }
            }
            self.reload().await;
        }
    }

    fn is_relevant(&self, event: notify::Result<notify::Event>) -> bool {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                warn!(path = %self.path.display(), %error, "mesh file watch error");
                return false;
            }
        };
        // Reading the file ourselves produces access events: ignoring them avoids a reload loop.
        if matches!(event.kind, EventKind::Access(_)) {
            return false;
        }
        // The file itself, or a Kubernetes `..data` style swap; events without paths are taken as relevant.
        event.paths.is_empty()
            || event.paths.iter().any(|changed| {
                changed.file_name().is_some_and(|name| {
                    name == self.file_name.as_os_str() || name.to_string_lossy().starts_with("..")
                })
            })
    }

    async fn reload(&mut self) {
        let outcome = match tokio::fs::read_to_string(&self.path).await {
            Err(source) => Err(MeshError::Read {
                path: self.path.clone(),
                source,
            }),
            Ok(text) if text == self.last_text => Ok(None),
            Ok(text) => {
                let result = MeshConfig::from_yaml(&text).and_then(|mesh| self.target.apply(&mesh));
                self.last_text = text;
                result.map(Some)
            }
        };
        let outcome = match outcome {
            Ok(Some(version)) => {
                info!(path = %self.path.display(), %version, "mesh file reloaded");
                ReloadOutcome::Applied { version }
            }
            Ok(None) => ReloadOutcome::Unchanged,
            Err(err) => {
                let serving = self.status.borrow().version.clone();
                error!(
                    path = %self.path.display(), error = %err, serving_version = %serving,
                    "mesh file rejected; the previous snapshot keeps serving"
                );
                ReloadOutcome::Failed {
                    error: err.to_string(),
                }
            }
        };
        self.status.send_modify(|status| {
            status.attempts += 1;
            if let ReloadOutcome::Applied { version } = &outcome {
                status.version.clone_from(version);
            }
            status.last = Some(outcome);
        });
    }
}

/// Reads and validates the mesh file for the first time.
pub(crate) fn load_initial(path: &Path) -> Result<(String, MeshConfig), MeshError> {
    let text = std::fs::read_to_string(path).map_err(|source| MeshError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mesh = MeshConfig::from_yaml(&text)?;
    Ok((text, mesh))
}
