//! The LRS stream's protocol decisions, without I/O: what to send first, what the server asked for, when the next
//! report is due and what it holds. The worker feeds it the server's responses and the clock.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::{Locality as PbLocality, Node as PbNode};
use envoy_types::pb::envoy::config::endpoint::v3::cluster_stats::DroppedRequests;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterStats, UpstreamLocalityStats};
use envoy_types::pb::envoy::service::load_stats::v3::{LoadStatsRequest, LoadStatsResponse};
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use mesh_core::load::{ClusterLoadReport, LoadStore};

/// The shortest reporting interval honoured: a server asking for less (or for zero) gets this, so a bad response
/// cannot make the client spin.
pub const MIN_LOAD_REPORTING_INTERVAL: Duration = Duration::from_millis(10);

/// The client feature that tells the server this client honours `send_all_clusters` (gRFC A27 sets it).
pub const CLIENT_FEATURE_SEND_ALL_CLUSTERS: &str = "envoy.lrs.supports_send_all_clusters";

/// Which clusters the server wants.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selection {
    All,
    Named(BTreeSet<String>),
}

#[derive(Debug)]
struct Schedule {
    interval: Duration,
    selection: Selection,
    next_report: Instant,
    /// When the server's first response on this stream came: the start of a cluster's first interval.
    since: Instant,
}

/// One LRS stream's state; it lives across reconnects (the intervals of clusters already reported continue).
#[derive(Debug)]
pub(crate) struct LrsState {
    node: PbNode,
    schedule: Option<Schedule>,
    /// When each cluster's counts were last taken.
    last_report: HashMap<Arc<str>, Instant>,
}

impl LrsState {
    /// The state for a client described by `node` (its client features gain `send_all_clusters`).
    pub(crate) fn new(mut node: PbNode) -> Self {
        if !node
            .client_features
            .iter()
            .any(|f| f == CLIENT_FEATURE_SEND_ALL_CLUSTERS)
        {
            node.client_features
                .push(CLIENT_FEATURE_SEND_ALL_CLUSTERS.to_owned());
        }
        Self {
            node,
            schedule: None,
            last_report: HashMap::new(),
        }
    }

    /// A stream opened: its first request, carrying the node and no stats (Envoy load_stats.proto: the client
    /// "sends an initial LoadStatsRequest ... with the Node identifier").
    pub(crate) fn connected(&mut self) -> LoadStatsRequest {
        self.schedule = None;
        LoadStatsRequest {
            node: Some(self.node.clone()),
            cluster_stats: Vec::new(),
        }
    }

    /// The stream ended: nothing is reported until the next stream's server says what it wants. Counts not taken
    /// stay in the store for then.
    pub(crate) fn disconnected(&mut self) {
        self.schedule = None;
    }

    /// The server said what it wants (load_stats.proto `LoadStatsResponse`): a new interval and cluster selection.
    /// The next report is one interval from `now`.
    pub(crate) fn response(&mut self, response: &LoadStatsResponse, now: Instant) {
        let interval = response
            .load_reporting_interval
            .and_then(|d| {
                let secs = u64::try_from(d.seconds).ok()?;
                let nanos = u32::try_from(d.nanos).ok()?;
                Some(Duration::new(secs, nanos))
            })
            .unwrap_or_default()
            .max(MIN_LOAD_REPORTING_INTERVAL);
        let selection = if response.send_all_clusters {
            Selection::All
        } else {
            Selection::Named(response.clusters.iter().cloned().collect())
        };
        let since = self.schedule.as_ref().map_or(now, |s| s.since);
        self.schedule = Some(Schedule {
            interval,
            selection,
            next_report: now + interval,
            since,
        });
    }

    /// When the next report is due; `None` before the server's first response.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.schedule.as_ref().map(|s| s.next_report)
    }

    /// At `now`, the report due, if any: the counts of the clusters the server wants among `ours` (the clusters this
    /// server is the LRS server of), taken from `store`.
    pub(crate) fn tick(
        &mut self,
        now: Instant,
        store: &LoadStore,
        ours: &BTreeSet<Arc<str>>,
    ) -> Option<LoadStatsRequest> {
        let schedule = self.schedule.as_mut()?;
        if now < schedule.next_report {
            return None;
        }
        schedule.next_report = now + schedule.interval;
        let since = schedule.since;
        let cluster_stats = ours
            .iter()
            .filter(|name| match &schedule.selection {
                Selection::All => true,
                Selection::Named(names) => names.contains(&***name),
            })
            .filter_map(|name| {
                let report = store.take(name)?;
                let start = self
                    .last_report
                    .insert(Arc::clone(name), now)
                    .unwrap_or(since);
                Some(cluster_stats(&report, now.saturating_duration_since(start)))
            })
            .collect();
        self.last_report.retain(|name, _| ours.contains(name));
        Some(LoadStatsRequest {
            node: None,
            cluster_stats,
        })
    }
}

/// The wire form of one cluster's report (envoy/config/endpoint/v3/load_report.proto).
fn cluster_stats(report: &ClusterLoadReport, interval: Duration) -> ClusterStats {
    ClusterStats {
        cluster_name: report.cluster.to_string(),
        cluster_service_name: report
            .eds_service_name
            .as_deref()
            .unwrap_or_default()
            .to_owned(),
        upstream_locality_stats: report
            .localities
            .iter()
            .map(|l| UpstreamLocalityStats {
                locality: Some(PbLocality {
                    region: l.locality.region.to_string(),
                    zone: l.locality.zone.to_string(),
                    sub_zone: l.locality.sub_zone.to_string(),
                }),
                total_successful_requests: l.succeeded,
                total_requests_in_progress: l.in_progress,
                total_error_requests: l.errored,
                total_issued_requests: l.issued,
                ..Default::default()
            })
            .collect(),
        total_dropped_requests: report.total_dropped(),
        dropped_requests: report
            .dropped
            .iter()
            .map(|(category, count)| DroppedRequests {
                category: category.to_string(),
                dropped_count: *count,
            })
            .collect(),
        load_report_interval: Some(PbDuration {
            seconds: i64::try_from(interval.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(interval.subsec_nanos()).unwrap_or(0),
        }),
    }
}

#[cfg(test)]
mod tests;
