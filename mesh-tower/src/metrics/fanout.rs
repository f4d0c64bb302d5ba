//! One event, several receivers: OpenTelemetry metrics and load reports, say.

use std::sync::Arc;
use std::time::Duration;

use mesh_core::locality::Locality;

use super::{
    AttemptEnd, AttemptLabels, AttemptStart, CallLabels, EndpointCounts, Metrics, Outcome,
};

/// Sends every event to each of its [`Metrics`], in order. [`Metrics::for_target`] is asked of each; the result
/// fans out to their per-target metrics.
#[derive(Clone)]
pub struct FanOut {
    receivers: Vec<Arc<dyn Metrics>>,
}

impl std::fmt::Debug for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOut")
            .field("receivers", &self.receivers.len())
            .finish()
    }
}

impl FanOut {
    /// Events go to each of `receivers`.
    #[must_use]
    pub fn new(receivers: Vec<Arc<dyn Metrics>>) -> Self {
        Self { receivers }
    }
}

impl Metrics for FanOut {
    fn records_nothing(&self) -> bool {
        self.receivers
            .iter()
            .all(|metrics| metrics.records_nothing())
    }

    fn records_attempts(&self) -> bool {
        self.receivers
            .iter()
            .any(|metrics| metrics.records_attempts())
    }

    fn for_target(&self, target: &str) -> Option<Arc<dyn Metrics>> {
        let mut any = false;
        let receivers = self
            .receivers
            .iter()
            .map(|m| {
                m.for_target(target).map_or_else(
                    || Arc::clone(m),
                    |t| {
                        any = true;
                        t
                    },
                )
            })
            .collect();
        any.then(|| Arc::new(Self { receivers }) as Arc<dyn Metrics>)
    }

    fn call_started(&self, call: &CallLabels<'_>) {
        self.receivers.iter().for_each(|m| m.call_started(call));
    }

    fn call_finished(&self, call: &CallLabels<'_>, outcome: Outcome, duration: Duration) {
        for m in &self.receivers {
            m.call_finished(call, outcome, duration);
        }
    }

    fn attempt_started(&self, attempt: &AttemptStart<'_>) {
        self.receivers
            .iter()
            .for_each(|m| m.attempt_started(attempt));
    }

    fn request_started(&self, cluster: &str) {
        self.receivers
            .iter()
            .for_each(|m| m.request_started(cluster));
    }

    fn request_finished(&self, cluster: &str, outcome: Outcome, duration: Duration) {
        for m in &self.receivers {
            m.request_finished(cluster, outcome, duration);
        }
    }

    fn attempt_finished(
        &self,
        labels: &AttemptLabels<'_>,
        outcome: Option<Outcome>,
        duration: Duration,
    ) {
        for m in &self.receivers {
            m.attempt_finished(labels, outcome, duration);
        }
    }

    fn attempt_ended(&self, labels: &AttemptLabels<'_>, end: &AttemptEnd) {
        for m in &self.receivers {
            m.attempt_ended(labels, end);
        }
    }

    fn records_message_sizes(&self) -> bool {
        self.receivers
            .iter()
            .any(|metrics| metrics.records_message_sizes())
    }

    fn attempt_issued(&self, cluster: &str, locality: &Locality) {
        self.receivers
            .iter()
            .for_each(|m| m.attempt_issued(cluster, locality));
    }

    fn dropped(&self, cluster: &str, category: &str) {
        self.receivers
            .iter()
            .for_each(|m| m.dropped(cluster, category));
    }

    fn retry(&self, cluster: &str) {
        self.receivers.iter().for_each(|m| m.retry(cluster));
    }

    fn retry_budget_exhausted(&self, cluster: &str) {
        self.receivers
            .iter()
            .for_each(|m| m.retry_budget_exhausted(cluster));
    }

    fn circuit_breaker_rejected(&self, cluster: &str) {
        self.receivers
            .iter()
            .for_each(|m| m.circuit_breaker_rejected(cluster));
    }

    fn ejection(&self, cluster: &str, endpoint: &str, ejected: bool) {
        for m in &self.receivers {
            m.ejection(cluster, endpoint, ejected);
        }
    }

    fn fault_injected(&self, cluster: &str, abort: bool) {
        self.receivers
            .iter()
            .for_each(|m| m.fault_injected(cluster, abort));
    }

    fn endpoints_changed(&self, cluster: &str, counts: &EndpointCounts) {
        for m in &self.receivers {
            m.endpoints_changed(cluster, counts);
        }
    }

    fn priority_changed(&self, cluster: &str, from: Option<u32>, to: Option<u32>) {
        for m in &self.receivers {
            m.priority_changed(cluster, from, to);
        }
    }
}
