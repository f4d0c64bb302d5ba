//! The outlier-detection timer of a leaf cluster (gRFC A50): runs the detector's interval sweep and rebuilds the
//! picker when ejections change. The task holds the cluster weakly and ends with it, or when its handle drops.

use std::sync::{Arc, Weak};

use mesh_core::rng::FastRng;

use super::LeafCluster;
use crate::endpoint::now;

/// How often a timer without a detector looks again.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Aborts the timer task when dropped.
#[derive(Debug)]
pub(super) struct TaskHandle(tokio::task::AbortHandle);

impl Drop for TaskHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the timer of `cluster`.
pub(super) fn spawn(cluster: Weak<LeafCluster>, seed: u64) -> TaskHandle {
    let task = tokio::spawn(async move {
        let mut rng = FastRng::from_seed(seed);
        loop {
            let wait = {
                let Some(cluster) = cluster.upgrade() else {
                    return;
                };
                let list = Arc::clone(&cluster.table().list);
                // No detector (yet, or any more): the owner drops this task when detection is off for good.
                list.detector
                    .as_ref()
                    .and_then(|d| d.next_evaluation_in(now()))
                    .unwrap_or(IDLE_CHECK)
            };
            tokio::time::sleep(wait).await;
            let Some(cluster) = cluster.upgrade() else {
                return;
            };
            let list = Arc::clone(&cluster.table().list);
            let Some(detector) = &list.detector else {
                continue;
            };
            let result = detector.evaluate(now(), &mut rng);
            tracing::trace!(cluster = %cluster.name(), ?result, "outlier detection interval");
            let metrics = &cluster.runtime().options.metrics;
            for ejection in &result.ejected {
                let endpoint = list
                    .endpoint(ejection.endpoint)
                    .map_or("?", |e| &**e.label());
                tracing::info!(cluster = %cluster.name(), endpoint, reason = %ejection.reason, "endpoint ejected");
                metrics.ejection(cluster.name(), endpoint, true);
            }
            for &index in &result.unejected {
                let endpoint = list.endpoint(index).map_or("?", |e| &**e.label());
                tracing::info!(cluster = %cluster.name(), endpoint, "endpoint returned from ejection");
                metrics.ejection(cluster.name(), endpoint, false);
            }
            if result.changed() {
                cluster.rebuild();
            }
        }
    });
    TaskHandle(task.abort_handle())
}
