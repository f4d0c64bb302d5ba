//! The load reports clients sent over LRS (gRFC A27; Envoy `envoy.service.load_stats.v3`), per node, cluster and
//! locality: totals since the first report, the latest in-progress gauge, and how many reports came.
//!
//! For inspection (tests, demos, a control plane prototyping global load balancing): [`LoadReports::wait_until`]
//! waits for "N successful requests reported" as an event instead of sleeping.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterStats;
use tokio::sync::watch;

/// A locality as reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct ReportedLocality {
    /// The region.
    pub region: String,
    /// The zone.
    pub zone: String,
    /// The sub-zone.
    pub sub_zone: String,
}

impl ReportedLocality {
    /// A locality from its three parts.
    #[must_use]
    pub fn new(region: &str, zone: &str, sub_zone: &str) -> Self {
        Self {
            region: region.to_owned(),
            zone: zone.to_owned(),
            sub_zone: sub_zone.to_owned(),
        }
    }
}

/// One locality's load, summed over the reports received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalityLoad {
    /// `total_successful_requests`, summed.
    pub succeeded: u64,
    /// `total_error_requests`, summed.
    pub errored: u64,
    /// `total_issued_requests`, summed.
    pub issued: u64,
    /// `total_requests_in_progress` of the latest report that had this cluster (0 when it left the locality out).
    pub in_progress: u64,
}

/// One cluster's load as one node reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterLoad {
    /// The reporting node's id.
    pub node: String,
    /// `cluster_name`.
    pub cluster: String,
    /// `cluster_service_name` (the EDS service name; empty when the cluster has none).
    pub service_name: String,
    /// How many reports had this cluster.
    pub reports: u64,
    /// Per locality.
    pub localities: BTreeMap<ReportedLocality, LocalityLoad>,
    /// `total_dropped_requests`, summed.
    pub total_dropped: u64,
    /// `dropped_requests` per category, summed.
    pub dropped: BTreeMap<String, u64>,
    /// The sum of the reports' `load_report_interval`s.
    pub interval: Duration,
}

#[derive(Debug, Default)]
struct Inner {
    loads: Mutex<BTreeMap<(String, String, String), ClusterLoad>>,
    changed: watch::Sender<u64>,
}

/// Every load report received, summed per node, cluster and service name. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct LoadReports {
    inner: Arc<Inner>,
}

impl LoadReports {
    /// The loads reported so far, by node, cluster and service name.
    #[must_use]
    pub fn loads(&self) -> Vec<ClusterLoad> {
        self.lock().values().cloned().collect()
    }

    /// Waits until `condition` holds for the loads and returns them. Checks at once, then after every report.
    /// Never returns if the condition never holds: wrap it in `tokio::time::timeout`.
    pub async fn wait_until<F>(&self, mut condition: F) -> Vec<ClusterLoad>
    where
        F: FnMut(&[ClusterLoad]) -> bool,
    {
        let mut changes = self.inner.changed.subscribe();
        loop {
            changes.borrow_and_update();
            let loads = self.loads();
            if condition(&loads) {
                return loads;
            }
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String, String), ClusterLoad>> {
        // Each update is a whole insert or sum; a panic cannot leave a half-written entry worth refusing.
        self.inner
            .loads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one `LoadStatsRequest`'s cluster stats from `node`.
    pub(crate) fn record(&self, node: &str, stats: &[ClusterStats]) {
        {
            let mut loads = self.lock();
            for cluster in stats {
                let key = (
                    node.to_owned(),
                    cluster.cluster_name.clone(),
                    cluster.cluster_service_name.clone(),
                );
                let load = loads.entry(key).or_insert_with(|| ClusterLoad {
                    node: node.to_owned(),
                    cluster: cluster.cluster_name.clone(),
                    service_name: cluster.cluster_service_name.clone(),
                    ..ClusterLoad::default()
                });
                load.reports += 1;
                load.total_dropped += cluster.total_dropped_requests;
                for dropped in &cluster.dropped_requests {
                    *load.dropped.entry(dropped.category.clone()).or_default() +=
                        dropped.dropped_count;
                }
                if let Some(interval) = cluster.load_report_interval {
                    let secs = u64::try_from(interval.seconds).unwrap_or(0);
                    let nanos = u32::try_from(interval.nanos).unwrap_or(0).min(999_999_999);
                    load.interval += Duration::new(secs, nanos);
                }
                for locality in load.localities.values_mut() {
                    locality.in_progress = 0;
                }
                for stats in &cluster.upstream_locality_stats {
                    let name = stats
                        .locality
                        .as_ref()
                        .map_or_else(ReportedLocality::default, |l| {
                            ReportedLocality::new(&l.region, &l.zone, &l.sub_zone)
                        });
                    let entry = load.localities.entry(name).or_default();
                    entry.succeeded += stats.total_successful_requests;
                    entry.errored += stats.total_error_requests;
                    entry.issued += stats.total_issued_requests;
                    entry.in_progress = stats.total_requests_in_progress;
                }
            }
        }
        self.inner.changed.send_modify(|n| *n += 1);
    }
}
