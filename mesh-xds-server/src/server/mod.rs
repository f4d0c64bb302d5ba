//! The running server: builder, handle, shutdown.

mod ads;
mod lrs;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use discovery::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use envoy_types::pb::envoy::service::discovery::v3 as discovery;
use envoy_types::pb::envoy::service::load_stats::v3::load_reporting_service_server::LoadReportingServiceServer;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tracing::info;

use crate::cache::SnapshotCache;
use crate::clients::{ClientInfo, ClientRegistry};
use crate::loads::LoadReports;
use crate::mesh::{MeshConfig, MeshError};
use crate::reload::{self, ConfigTarget, ConfigWatcher, DEFAULT_RELOAD_DEBOUNCE, ReloadStatus};
use crate::snapshot::Snapshot;

/// How long [`XdsServer::shutdown`] waits for connections to close before dropping them.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How often clients are asked to send load reports (LRS `load_reporting_interval`), unless
/// [`XdsServerBuilder::load_reporting_interval`] says otherwise.
pub const DEFAULT_LOAD_REPORTING_INTERVAL: Duration = Duration::from_secs(10);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listening address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The mesh config is invalid.
    #[error(transparent)]
    Config(#[from] MeshError),
    /// The mesh file's directory cannot be watched.
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        /// The mesh file.
        path: PathBuf,
        /// The watcher's error.
        source: notify::Error,
    },
    /// The gRPC server failed.
    #[error("xDS server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The server task panicked.
    #[error("xDS server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Hands out snapshot versions `1`, `2`, … for configs applied through the server.
#[derive(Debug, Default)]
pub(crate) struct VersionCounter(AtomicU64);

impl VersionCounter {
    pub(crate) fn next(&self) -> String {
        (self.0.fetch_add(1, Ordering::Relaxed) + 1).to_string()
    }
}

/// Configures an [`XdsServer`]. See [`XdsServer::builder`].
#[derive(Debug, Default)]
pub struct XdsServerBuilder {
    default_snapshot: Option<Snapshot>,
    default_config: Option<MeshConfig>,
    node_snapshots: Vec<(String, Snapshot)>,
    config_file: Option<PathBuf>,
    reload_debounce: Option<Duration>,
    load_reporting_interval: Option<Duration>,
}

impl XdsServerBuilder {
    /// The snapshot served to nodes without their own.
    #[must_use]
    pub fn snapshot(mut self, snapshot: Snapshot) -> Self {
        self.default_snapshot = Some(snapshot);
        self
    }

    /// A mesh config, translated at [`Self::bind`] as the default snapshot (version `1`).
    #[must_use]
    pub fn config(mut self, mesh: MeshConfig) -> Self {
        self.default_config = Some(mesh);
        self
    }

    /// The snapshot served to node `node_id`.
    #[must_use]
    pub fn node_snapshot(mut self, node_id: impl Into<String>, snapshot: Snapshot) -> Self {
        self.node_snapshots.push((node_id.into(), snapshot));
        self
    }

    /// Serve the default snapshot from this mesh file and reload it when it changes. Overrides
    /// [`Self::snapshot`] and [`Self::config`].
    #[must_use]
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Quiet time after file events before reloading; default [`DEFAULT_RELOAD_DEBOUNCE`].
    #[must_use]
    pub fn reload_debounce(mut self, debounce: Duration) -> Self {
        self.reload_debounce = Some(debounce);
        self
    }

    /// How often clients send load reports; default [`DEFAULT_LOAD_REPORTING_INTERVAL`].
    #[must_use]
    pub fn load_reporting_interval(mut self, interval: Duration) -> Self {
        self.load_reporting_interval = Some(interval);
        self
    }

    /// Binds `address` (`127.0.0.1:0` picks a free port) and starts serving.
    ///
    /// # Errors
    /// [`ServerError::Bind`], or [`ServerError::Config`] / [`ServerError::Watch`] for a bad mesh file.
    pub async fn bind<A>(self, address: A) -> Result<XdsServer, ServerError>
    where
        A: ToSocketAddrs + fmt::Display,
    {
        let listener = TcpListener::bind(&address)
            .await
            .map_err(|source| ServerError::Bind {
                address: address.to_string(),
                source,
            })?;
        self.serve_on(listener).await
    }

    /// Starts serving on an already bound listener.
    ///
    /// # Errors
    /// As [`Self::bind`], except binding.
    pub async fn serve_on(self, listener: TcpListener) -> Result<XdsServer, ServerError> {
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            address: "listener".to_owned(),
            source,
        })?;
        let versions = Arc::new(VersionCounter::default());
        let cache = SnapshotCache::new(self.default_snapshot.unwrap_or_default());
        let target = ConfigTarget {
            cache: cache.clone(),
            versions: Arc::clone(&versions),
            node: None,
        };
        if let (Some(mesh), None) = (&self.default_config, &self.config_file) {
            target.apply(mesh)?;
        }
        for (node, snapshot) in self.node_snapshots {
            cache.set_snapshot(Some(&node), snapshot);
        }
        let watcher = match self.config_file {
            Some(path) => {
                let (text, mesh) = tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || reload::load_initial(&path)
                })
                .await??;
                let version = target.apply(&mesh)?;
                info!(path = %path.display(), %version, "mesh file loaded");
                let debounce = self.reload_debounce.unwrap_or(DEFAULT_RELOAD_DEBOUNCE);
                Some(
                    reload::watch_file(path.clone(), text, version, target.clone(), debounce)
                        .map_err(|source| ServerError::Watch { path, source })?,
                )
            }
            None => None,
        };

        let clients = ClientRegistry::default();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let service = ads::AdsService {
            cache: cache.clone(),
            clients: clients.clone(),
            shutdown: shutdown_rx.clone(),
            next_stream_id: AtomicU64::new(1),
        };
        let load_reports = LoadReports::default();
        let lrs = lrs::LrsService {
            reports: load_reports.clone(),
            interval: self
                .load_reporting_interval
                .unwrap_or(DEFAULT_LOAD_REPORTING_INTERVAL),
            shutdown: shutdown_rx.clone(),
        };
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut signal = shutdown_rx;
        let serve = tonic::transport::Server::builder()
            .add_service(AggregatedDiscoveryServiceServer::new(service))
            .add_service(LoadReportingServiceServer::new(lrs))
            .serve_with_incoming_shutdown(incoming, async move {
                // An error means the handle was dropped: stop as well.
                let _ = signal.wait_for(|stopping| *stopping).await;
            });
        let task = tokio::spawn(serve);
        info!(address = %local_addr, "xDS server listening");
        Ok(XdsServer {
            local_addr,
            cache,
            clients,
            load_reports,
            target,
            shutdown: shutdown_tx,
            task: Some(task),
            watcher,
        })
    }
}

/// A running xDS management server (SotW ADS). Dropping it stops the server without waiting; prefer
/// [`Self::shutdown`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mesh_xds_server::XdsServer;
/// use mesh_xds_server::mesh::{Cluster, Endpoint, Locality, MeshConfig, Route, Service};
///
/// let mesh = MeshConfig::new()
///     .with_service(Service::new("greeter").with_route(Route::to_cluster("greeter")))
///     .with_cluster(Cluster::new("greeter").with_locality(
///         Locality::new("", "", "").with_endpoint(Endpoint::new("127.0.0.1:50051")),
///     ));
/// let server = XdsServer::builder().config(mesh).bind("127.0.0.1:0").await?;
/// println!("bootstrap server_uri: {}", server.local_addr());
/// server.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct XdsServer {
    local_addr: SocketAddr,
    cache: SnapshotCache,
    clients: ClientRegistry,
    load_reports: LoadReports,
    target: ConfigTarget,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    watcher: Option<ConfigWatcher>,
}

impl XdsServer {
    /// A builder.
    #[must_use]
    pub fn builder() -> XdsServerBuilder {
        XdsServerBuilder::default()
    }

    /// The bound address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The snapshot cache (shared with the server).
    #[must_use]
    pub fn cache(&self) -> &SnapshotCache {
        &self.cache
    }

    /// Replaces the snapshot of `node` (or the default with `None`); streams whose resources changed get a push.
    pub fn set_snapshot(&self, node: Option<&str>, snapshot: Snapshot) {
        self.cache.set_snapshot(node, snapshot);
    }

    /// Translates `mesh` and serves it to `node` (or as the default with `None`) at the next version, which is
    /// returned.
    ///
    /// # Errors
    /// The config is invalid; nothing changes then.
    pub fn set_config(&self, node: Option<&str>, mesh: &MeshConfig) -> Result<String, MeshError> {
        let target = ConfigTarget {
            node: node.map(str::to_owned),
            ..self.target.clone()
        };
        target.apply(mesh)
    }

    /// The connected ADS streams.
    #[must_use]
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.clients.clients()
    }

    /// The client registry, to wait for client state changes.
    #[must_use]
    pub fn client_registry(&self) -> &ClientRegistry {
        &self.clients
    }

    /// Waits until `condition` holds for the connected streams (see [`ClientRegistry::wait_until`]).
    pub async fn wait_for_clients<F>(&self, condition: F) -> Vec<ClientInfo>
    where
        F: FnMut(&[ClientInfo]) -> bool,
    {
        self.clients.wait_until(condition).await
    }

    /// The load reports clients sent (LRS, gRFC A27), for clusters with `load_reporting` (`lrs_server: self`).
    #[must_use]
    pub fn load_reports(&self) -> &LoadReports {
        &self.load_reports
    }

    /// Reload progress of the mesh file, when serving one.
    #[must_use]
    pub fn reload_status(&self) -> Option<watch::Receiver<ReloadStatus>> {
        self.watcher.as_ref().map(ConfigWatcher::status)
    }

    /// Stops watching the mesh file, ends every ADS stream with `UNAVAILABLE`, and waits (up to
    /// [`DEFAULT_SHUTDOWN_GRACE`]) for connections to close.
    ///
    /// # Errors
    /// The server had failed.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        self.watcher = None;
        self.shutdown.send_replace(true);
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(DEFAULT_SHUTDOWN_GRACE, &mut task).await {
            Ok(result) => Ok(result??),
            Err(_elapsed) => {
                task.abort();
                info!("xDS server shutdown grace period elapsed; connections dropped");
                Ok(())
            }
        }
    }
}

impl Drop for XdsServer {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
