//! Load reporting (gRFC A27 "LRS"; Envoy `envoy.service.load_stats.v3.LoadReportingService`): per cluster and
//! locality, the requests issued, succeeded, failed and in progress, and the drops per category, sent to the
//! management server that asked for them.
//!
//! - Which clusters: those with `lrs_server: self` in a published target configuration. While at least one is in
//!   use, one `StreamLoadStats` stream is open to the server the cluster came from (the bootstrap's first server for
//!   its authority, gRFC A47); when none is left, the stream closes.
//! - What the server wants: its `LoadStatsResponse` gives the interval and either `send_all_clusters` (advertised
//!   with the client feature `envoy.lrs.supports_send_all_clusters`) or a list of cluster names; each report
//!   carries the counts since the cluster's previous report and that interval, per cluster and EDS service name.
//! - Counting: the request path records into the shared [`LoadStore`] ([`crate::client::XdsClient::load_store`];
//!   mesh-tower's `MeshOptions::with_load_store`); a report takes the counts and resets them. While the stream is
//!   down nothing is taken, so a reconnect loses nothing.
//!
//! Not done: per-endpoint granularity (`report_endpoint_granularity`), connection counts, ORCA-derived
//! `load_metric_stats`, and LRS servers other than `self`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node as PbNode;
use mesh_core::cluster::{DiscoveryKind, LoadReportServer};
use mesh_core::load::LoadStore;
use mesh_core::snapshot::ConfigSnapshot;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bootstrap::{Bootstrap, xdstp_authority};
use crate::client::Connector;

mod state;
mod worker;

pub use state::{CLIENT_FEATURE_SEND_ALL_CLUSTERS, MIN_LOAD_REPORTING_INTERVAL};

/// A cluster whose load is reported: its name, EDS service name and LRS server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Reported {
    name: Arc<str>,
    eds_service_name: Option<Arc<str>>,
    server_uri: String,
}

struct Stream {
    ours: watch::Sender<BTreeSet<Arc<str>>>,
    task: JoinHandle<()>,
}

/// The clusters in use that want load reports, and one LRS stream per server they report to.
pub(crate) struct LoadReporting {
    store: LoadStore,
    bootstrap: Arc<Bootstrap>,
    connectors: HashMap<String, Connector>,
    node: PbNode,
    targets: HashMap<u64, BTreeSet<Reported>>,
    streams: HashMap<String, Stream>,
}

impl LoadReporting {
    pub(crate) fn new(
        store: LoadStore,
        bootstrap: Arc<Bootstrap>,
        connectors: HashMap<String, Connector>,
        node: PbNode,
    ) -> Self {
        Self {
            store,
            bootstrap,
            connectors,
            node,
            targets: HashMap::new(),
            streams: HashMap::new(),
        }
    }

    /// Target `id` published `snapshot`: its clusters with an `lrs_server` are reported.
    pub(crate) fn target_updated(&mut self, id: u64, snapshot: &ConfigSnapshot) {
        let reported: BTreeSet<Reported> = snapshot
            .clusters()
            .values()
            .filter_map(|entry| entry.as_ref().ok())
            .filter_map(|config| {
                let cluster = &config.cluster;
                // gRFC A27: `self` is the only LRS server; it is the server the cluster came from (gRFC A47).
                let Some(LoadReportServer::SameAsXds) = cluster.lrs_server else {
                    return None;
                };
                let server = self
                    .bootstrap
                    .servers_for_authority(xdstp_authority(&cluster.name))
                    .first()?;
                let eds_service_name = match &cluster.discovery {
                    DiscoveryKind::Eds { service_name } => service_name.clone(),
                    _ => None,
                };
                Some(Reported {
                    name: Arc::clone(&cluster.name),
                    eds_service_name,
                    server_uri: server.server_uri.clone(),
                })
            })
            .collect();
        if self.targets.get(&id) != Some(&reported) {
            self.targets.insert(id, reported);
            self.refresh();
        }
    }

    /// Target `id` is no longer watched.
    pub(crate) fn target_removed(&mut self, id: u64) {
        if self.targets.remove(&id).is_some() {
            self.refresh();
        }
    }

    fn refresh(&mut self) {
        let all: BTreeSet<&Reported> = self.targets.values().flatten().collect();
        self.store.set_clusters(
            all.iter()
                .map(|r| (Arc::clone(&r.name), r.eds_service_name.clone())),
        );
        let mut per_server: BTreeMap<&str, BTreeSet<Arc<str>>> = BTreeMap::new();
        for r in &all {
            per_server
                .entry(r.server_uri.as_str())
                .or_default()
                .insert(Arc::clone(&r.name));
        }
        self.streams.retain(|uri, stream| {
            let keep = per_server.contains_key(uri.as_str());
            if !keep {
                tracing::debug!(server = %uri, "LRS: no cluster reports to this server any more");
                stream.task.abort();
            }
            keep
        });
        for (uri, ours) in per_server {
            if let Some(stream) = self.streams.get(uri) {
                stream.ours.send_replace(ours);
                continue;
            }
            tracing::debug!(server = %uri, clusters = ?ours, "LRS: starting load reporting");
            let (tx, rx) = watch::channel(ours);
            let task = tokio::spawn(worker::run(
                uri.to_owned(),
                self.connectors.get(uri).cloned(),
                state::LrsState::new(self.node.clone()),
                self.store.clone(),
                rx,
            ));
            self.streams
                .insert(uri.to_owned(), Stream { ours: tx, task });
        }
    }
}

impl Drop for LoadReporting {
    fn drop(&mut self) {
        for stream in self.streams.values() {
            stream.task.abort();
        }
    }
}
