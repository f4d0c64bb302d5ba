//! The xDS client: a cloneable handle over one worker task that owns the ADS streams.
//!
//! [`XdsClient::start`] takes a [`Bootstrap`] and spawns the worker on the current tokio runtime. The handle offers:
//! - [`XdsClient::watch`]: the latest validated value of one resource (Listener, RouteConfiguration, Cluster or
//!   ClusterLoadAssignment), with errors and does-not-exist, as it changes. Watches of the same name share one
//!   subscription; dropping the last watcher of a name unsubscribes it.
//! - [`XdsClient::watch_target`]: one target's whole configuration as [`ConfigSnapshot`]s, published by the gRFC A74
//!   dependency manager only when complete.
//! - [`XdsClient::config_dump`]: every subscribed resource with its status, version and last error (gRFC A40).
//! - [`XdsClient::load_store`]: the load counters its LRS streams report (gRFC A27, [`crate::lrs`]).
//!
//! The protocol decisions are made by [`crate::protocol::XdsState`]; the worker performs its outputs (streams over
//! tonic, requests, timers), decodes responses with [`crate::resource::decode`] and fans events out to watchers.
//!
//! TLS to the control plane (gRFC A65) is not done here either: a server whose `channel_creds` are not plaintext is
//! dialed through the [`Connector`] registered for it in [`ClientOptions`], and refused at start without one.
//!
//! Not here: anything about requests (mesh-tower).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use mesh_core::snapshot::ConfigSnapshot;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::bootstrap::{Bootstrap, ChannelCreds};
use crate::deps::TargetError;
use crate::protocol::{ConfigError, ResourceStatus, normalize_name};
use crate::resource::{Resource, ResourceKind};

mod connector;
mod dns;
mod dump;
mod metrics;
mod transport;
mod worker;

pub use connector::{ConnectFuture, ConnectedIo, Connector};
pub use dump::{ConfigDump, ResourceDump};
pub use metrics::{NoXdsClientMetrics, XdsClientMetrics};
pub(crate) use transport::{connect, node_proto};

/// The client could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The bootstrap's server list cannot drive the protocol.
    #[error("xDS client configuration: {0}")]
    Config(#[from] ConfigError),
    /// A server uses channel credentials this client cannot use yet.
    #[error(
        "xds_servers[{index}] ({uri}): channel_creds type {kind:?} is not supported by this client"
    )]
    UnsupportedCredentials {
        /// The server's position in the bootstrap.
        index: usize,
        /// The server's URI.
        uri: String,
        /// The credential type.
        kind: String,
    },
    /// No tokio runtime to run on.
    #[error("the xDS client must be started inside a tokio runtime")]
    NoRuntime,
}

/// Settings of the client beyond the bootstrap.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// How long a subscribed resource may go unanswered on a connected stream before it is reported as not existing
    /// (gRFC A57; default 15 s).
    pub resource_timeout: std::time::Duration,
    /// Where the client's metrics go (gRFC A78); nowhere by default.
    pub metrics: Arc<dyn XdsClientMetrics>,
    /// Connectors by `server_uri`, for servers whose `channel_creds` are not plaintext (gRFC A65).
    pub connectors: HashMap<String, Connector>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            resource_timeout: crate::protocol::DEFAULT_RESOURCE_TIMEOUT,
            metrics: Arc::new(NoXdsClientMetrics),
            connectors: HashMap::new(),
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("resource_timeout", &self.resource_timeout)
            .field("connectors", &self.connectors)
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    /// Sets the does-not-exist timeout.
    #[must_use]
    pub fn with_resource_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.resource_timeout = timeout;
        self
    }

    /// Sets where the client's metrics go.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<dyn XdsClientMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Dials the server with `server_uri` through `connector` (for `tls` channel credentials, gRFC A65).
    #[must_use]
    pub fn with_connector(mut self, server_uri: impl Into<String>, connector: Connector) -> Self {
        self.connectors.insert(server_uri.into(), connector);
        self
    }
}

/// The current state of a watched resource.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct WatchState {
    /// The value in use, if any.
    pub resource: Option<Resource>,
    /// The latest error: with a value, an ambient error (the value keeps serving, gRFC A88); without one, why there
    /// is none.
    pub error: Option<Arc<str>>,
    /// The resource does not exist.
    pub does_not_exist: bool,
}

/// A watch on one resource. Dropping the last watcher of a name unsubscribes it.
#[derive(Debug)]
pub struct ResourceWatcher {
    rx: watch::Receiver<WatchState>,
    _share: Arc<WatchShare>,
}

impl ResourceWatcher {
    /// The current state.
    #[must_use]
    pub fn current(&self) -> WatchState {
        self.rx.borrow().clone()
    }

    /// Waits for the next change and returns the new state; `None` when the client has stopped.
    pub async fn changed(&mut self) -> Option<WatchState> {
        self.rx.changed().await.ok()?;
        Some(self.rx.borrow_and_update().clone())
    }

    /// Waits until `ready` accepts the state (checking the current state first).
    pub async fn wait_for(
        &mut self,
        mut ready: impl FnMut(&WatchState) -> bool,
    ) -> Option<WatchState> {
        self.rx.wait_for(|s| ready(s)).await.ok().map(|s| s.clone())
    }
}

/// A watch on one target's complete configuration.
#[derive(Debug, Clone)]
pub struct TargetWatcher {
    rx: watch::Receiver<Option<TargetUpdate>>,
    _share: Arc<TargetShare>,
}

/// A target's configuration, or why it has none.
pub type TargetUpdate = Result<Arc<ConfigSnapshot>, TargetError>;

impl TargetWatcher {
    /// The latest configuration, `None` before the first one is complete.
    #[must_use]
    pub fn current(&self) -> Option<TargetUpdate> {
        self.rx.borrow().clone()
    }

    /// Waits for the next published configuration; `None` when the client has stopped.
    pub async fn changed(&mut self) -> Option<TargetUpdate> {
        loop {
            self.rx.changed().await.ok()?;
            if let Some(update) = self.rx.borrow_and_update().clone() {
                return Some(update);
            }
        }
    }

    /// The underlying channel, for callers that want to `select!` on it or hold the latest value lock-free.
    #[must_use]
    pub fn receiver(&self) -> watch::Receiver<Option<TargetUpdate>> {
        self.rx.clone()
    }
}

type Key = (ResourceKind, String);

/// What the handle asks the worker.
#[derive(Debug)]
enum Command {
    Watch(Key, watch::Sender<WatchState>),
    Unwatch(Key),
    WatchTarget {
        id: u64,
        listener: String,
        authority: String,
        tx: watch::Sender<Option<TargetUpdate>>,
    },
    UnwatchTarget(u64),
    Dump(oneshot::Sender<ConfigDump>),
}

/// Sends `Unwatch` when the last watcher of a name drops.
#[derive(Debug)]
struct WatchShare {
    key: Key,
    rx: watch::Receiver<WatchState>,
    inner: Weak<Inner>,
}

impl Drop for WatchShare {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            let mut registry = inner.lock_watchers();
            // Only the registered share unregisters: a newer watch of the same name may have replaced it already.
            if registry
                .get(&self.key)
                .is_some_and(|w| w.strong_count() == 0)
            {
                registry.remove(&self.key);
            }
            let _ = inner.commands.send(Command::Unwatch(self.key.clone()));
        }
    }
}

#[derive(Debug)]
struct TargetShare {
    id: u64,
    commands: mpsc::UnboundedSender<Command>,
}

impl Drop for TargetShare {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::UnwatchTarget(self.id));
    }
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    watchers: Mutex<HashMap<Key, Weak<WatchShare>>>,
    bootstrap: Arc<Bootstrap>,
    next_target: std::sync::atomic::AtomicU64,
    load_store: mesh_core::load::LoadStore,
}

impl Inner {
    fn lock_watchers(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Weak<WatchShare>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and removes).
        self.watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A handle to the xDS client. Cheap to clone; the worker stops when the last handle and watcher are gone.
#[derive(Debug, Clone)]
pub struct XdsClient {
    inner: Arc<Inner>,
}

impl XdsClient {
    /// Starts the client for `bootstrap` on the current tokio runtime.
    ///
    /// # Errors
    /// [`ClientError`] when there is no runtime, a server's credentials are unsupported, or the server list is
    /// unusable.
    pub fn start(bootstrap: Bootstrap) -> Result<Self, ClientError> {
        Self::start_with_options(bootstrap, ClientOptions::default())
    }

    /// Starts the client for `bootstrap` with `options` on the current tokio runtime.
    ///
    /// # Errors
    /// As [`XdsClient::start`].
    pub fn start_with_options(
        bootstrap: Bootstrap,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ClientError::NoRuntime)?;
        for (index, server) in bootstrap.xds_servers.iter().enumerate() {
            if !matches!(server.channel_creds, ChannelCreds::Insecure)
                && !options.connectors.contains_key(&server.server_uri)
            {
                return Err(ClientError::UnsupportedCredentials {
                    index,
                    uri: server.server_uri.clone(),
                    kind: server.channel_creds.type_name().to_owned(),
                });
            }
        }
        let bootstrap = Arc::new(bootstrap);
        let (commands, rx) = mpsc::unbounded_channel();
        let load_store = mesh_core::load::LoadStore::new();
        let worker = worker::Worker::new(Arc::clone(&bootstrap), options, rx, load_store.clone())?;
        runtime.spawn(worker.run());
        Ok(Self {
            inner: Arc::new(Inner {
                commands,
                watchers: Mutex::new(HashMap::new()),
                bootstrap,
                next_target: std::sync::atomic::AtomicU64::new(1),
                load_store,
            }),
        })
    }

    /// The bootstrap the client runs with.
    #[must_use]
    pub fn bootstrap(&self) -> &Bootstrap {
        &self.inner.bootstrap
    }

    /// The load counters of the clusters whose load this client reports (gRFC A27 LRS, see [`crate::lrs`]): the
    /// request path records into it (mesh-tower's `MeshOptions::with_load_store`), the client's LRS streams take from it.
    #[must_use]
    pub fn load_store(&self) -> &mesh_core::load::LoadStore {
        &self.inner.load_store
    }

    /// Watches resource `name` of `kind`.
    #[must_use]
    pub fn watch(&self, kind: ResourceKind, name: &str) -> ResourceWatcher {
        let key = (kind, normalize_name(name).into_owned());
        let mut registry = self.inner.lock_watchers();
        if let Some(share) = registry.get(&key).and_then(Weak::upgrade) {
            return ResourceWatcher {
                rx: share.rx.clone(),
                _share: share,
            };
        }
        let (tx, rx) = watch::channel(WatchState::default());
        let share = Arc::new(WatchShare {
            key: key.clone(),
            rx: rx.clone(),
            inner: Arc::downgrade(&self.inner),
        });
        registry.insert(key.clone(), Arc::downgrade(&share));
        let _ = self.inner.commands.send(Command::Watch(key, tx));
        ResourceWatcher { rx, _share: share }
    }

    /// Watches the whole configuration of the target whose client listener is `listener` (see
    /// [`Bootstrap::client_listener_name`]), selecting the virtual host by `authority` (for `xds:///name`, the
    /// name).
    #[must_use]
    pub fn watch_target(&self, listener: &str, authority: &str) -> TargetWatcher {
        let id = self
            .inner
            .next_target
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        let _ = self.inner.commands.send(Command::WatchTarget {
            id,
            listener: normalize_name(listener).into_owned(),
            authority: authority.to_owned(),
            tx,
        });
        TargetWatcher {
            rx,
            _share: Arc::new(TargetShare {
                id,
                commands: self.inner.commands.clone(),
            }),
        }
    }

    /// Every subscribed resource with its status, version and last error (gRFC A40); `None` when the worker has
    /// stopped.
    pub async fn config_dump(&self) -> Option<ConfigDump> {
        let (tx, rx) = oneshot::channel();
        self.inner.commands.send(Command::Dump(tx)).ok()?;
        rx.await.ok()
    }
}

/// CSDS-style client status of a resource.
#[must_use]
pub fn status_name(status: ResourceStatus) -> &'static str {
    match status {
        ResourceStatus::Requested => "REQUESTED",
        ResourceStatus::Acked => "ACKED",
        ResourceStatus::Nacked => "NACKED",
        ResourceStatus::DoesNotExist => "DOES_NOT_EXIST",
        _ => "UNKNOWN",
    }
}
