//! Load reports (gRFC A27 LRS) from the request path: a [`Metrics`] implementation that counts attempts per cluster
//! and locality into a `mesh-core` [`LoadStore`].
//!
//! An attempt is issued (and in progress) once it has an endpoint and has passed the circuit breaker; it finishes
//! with [`Metrics::attempt_finished`]: for gRPC, successful when its status is OK (as gRPC counts), for other HTTP
//! requests when the status is below 500 (as Envoy counts); transport failures and timeouts are errors, and so is an
//! attempt whose call was dropped by its caller or cut by its deadline while the attempt was on the wire (it ends
//! then, as CANCELLED or DEADLINE_EXCEEDED, so that it does not stay in progress). Requests
//! dropped by a drop overload are counted per category. Only clusters the store records (those whose load the
//! control plane wants) are counted; for the others, each event costs one map lookup.
//!
//! Combine with other metrics through [`FanOut`](crate::metrics::FanOut). The reporting itself (the LRS stream)
//! belongs to mesh-xds-client.
//!
//! [`MeshOptions::load_store`](crate::options::MeshOptions::load_store) counts the same events faster: it resolves
//! each locality's counters when a cluster's endpoints are set, and only for clusters with an `lrs_server`, so an
//! attempt costs two atomic increments and keeps no state for the metrics. This recorder looks the cluster up by
//! name on every event, and as a [`Metrics`] that records attempts it makes the request path keep each attempt
//! whose gRPC status comes in trailers; use it where the events come through [`Metrics`] anyway.

use mesh_core::load::LoadStore;
use mesh_core::locality::Locality;

use crate::metrics::{AttemptLabels, Metrics, Outcome};
use crate::status::Code;

/// Counts attempts into a [`LoadStore`].
#[derive(Debug, Clone)]
pub struct LoadRecorder {
    store: LoadStore,
}

impl LoadRecorder {
    /// Records into `store`.
    #[must_use]
    pub fn new(store: LoadStore) -> Self {
        Self { store }
    }

    /// The store recorded into.
    #[must_use]
    pub fn store(&self) -> &LoadStore {
        &self.store
    }
}

/// Whether an attempt that ended with `outcome` (`None`: no response) counts as successful.
pub(crate) fn succeeded(outcome: Option<Outcome>) -> bool {
    outcome.is_some_and(|o| match o.grpc_status {
        Some(code) => code == Code::Ok,
        None => o.http_status < 500,
    })
}

impl Metrics for LoadRecorder {
    fn attempt_issued(&self, cluster: &str, locality: &Locality) {
        self.store.issued(cluster, locality);
    }

    fn attempt_finished(
        &self,
        labels: &AttemptLabels<'_>,
        outcome: Option<Outcome>,
        duration: std::time::Duration,
    ) {
        let _ = duration;
        self.store
            .finished(labels.cluster, labels.locality, succeeded(outcome));
    }

    fn dropped(&self, cluster: &str, category: &str) {
        self.store.dropped(cluster, category);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_follows_grpc_status_then_http_status() {
        assert!(succeeded(Some(Outcome::new(200, Some(Code::Ok)))));
        assert!(!succeeded(Some(Outcome::new(200, Some(Code::Unavailable)))));
        assert!(succeeded(Some(Outcome::new(404, None))));
        assert!(!succeeded(Some(Outcome::new(503, None))));
        assert!(!succeeded(None));
    }
}
