//! An attempt between [`Metrics::attempt_issued`] and its end: if the caller drops the call's future while the
//! attempt is on the wire (or the call's deadline cuts it), the attempt still ends for the metrics and the load
//! counters, so that load reports (gRFC A27: `total_requests_in_progress`) do not count it in progress for ever.

use mesh_core::load::LocalityCounters;
use tokio::time::Instant;

use crate::metrics::{AttemptEnd, AttemptLabels, MessageBytesTotal, Metrics, Outcome};
use crate::status::Code;

/// HTTP status reported for an attempt its caller abandoned (nginx's "client closed request").
const CLIENT_CLOSED: u16 = 499;

/// Ends the attempt on drop unless [`sent`](Self::sent) was called.
pub(super) struct IssuedAttempt<'a> {
    metrics: &'a dyn Metrics,
    labels: AttemptLabels<'a>,
    started: Instant,
    /// The call's deadline: an attempt dropped at or after it ended with DEADLINE_EXCEEDED, before it CANCELLED.
    deadline: Option<Instant>,
    sent_bytes: Option<MessageBytesTotal>,
    /// The locality's load counters, when the cluster reports load.
    load: Option<&'a LocalityCounters>,
    armed: bool,
}

impl<'a> IssuedAttempt<'a> {
    pub(super) const fn new(
        metrics: &'a dyn Metrics,
        labels: AttemptLabels<'a>,
        started: Instant,
        deadline: Option<Instant>,
        sent_bytes: Option<MessageBytesTotal>,
        load: Option<&'a LocalityCounters>,
    ) -> Self {
        Self {
            metrics,
            labels,
            started,
            deadline,
            sent_bytes,
            load,
            armed: true,
        }
    }

    /// The exchange completed (with a response or an error): the caller reports the end.
    pub(super) fn sent(mut self) -> (AttemptLabels<'a>, Option<MessageBytesTotal>) {
        self.armed = false;
        (self.labels, self.sent_bytes.take())
    }
}

impl Drop for IssuedAttempt<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let now = Instant::now();
        let (http_status, code) = if self.deadline.is_some_and(|at| now >= at) {
            (504, Code::DeadlineExceeded)
        } else {
            (CLIENT_CLOSED, Code::Cancelled)
        };
        let grpc_status = self.labels.grpc.then_some(code);
        let sent = self.sent_bytes.as_ref().map(MessageBytesTotal::get);
        let end = AttemptEnd::new(
            Some(Outcome::new(http_status, grpc_status)),
            now.saturating_duration_since(self.started),
        )
        .with_message_bytes(sent, sent.map(|_| 0));
        self.metrics.attempt_ended(&self.labels, &end);
        if let Some(load) = self.load {
            load.finished(false);
        }
    }
}
