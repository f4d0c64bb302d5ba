//! One method's metrics on one channel: what [`OtelMetrics`](super::OtelMetrics) hands the request path for each
//! call ([`Metrics::for_call`]), so that a call finds its method's series once, as it starts, and its attempts,
//! their message sizes and its end record on them without looking the method up again.
//!
//! Each `MethodMetrics` is made once per channel and method (bounded as the `grpc.method` label is) and shared by
//! that method's calls: handing it to a call is a reference count, not an allocation. What is not per call
//! (retries, circuit breakers, outlier ejections, ...) it records as its channel does. Each thread keeps the attempt
//! series it recorded on last, which the next attempt of the same labels finds without a lookup.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use mesh_tower::error::EndpointCounts;
use mesh_tower::metrics::{AttemptEnd, AttemptLabels, AttemptStart, CallLabels, Metrics, Outcome};

use super::metrics::{ChannelLabels, channel_events, status, status_key};
use super::series::{AttemptKey, AttemptSeries, MethodSeries, SeriesMap};

thread_local! {
    /// The attempt series this thread recorded on last: attempts repeat their method, status, cluster and
    /// locality, so most find their series here, compared in full but without hashing their labels.
    static LAST_ATTEMPT: RefCell<Option<LastAttempt>> = const { RefCell::new(None) };
}

/// An attempt series and where it is from: its method's map (kept, so that the same pointer is that map) and key.
struct LastAttempt {
    map: Arc<SeriesMap<AttemptKey, AttemptSeries>>,
    key: AttemptKey,
    series: AttemptSeries,
}

/// A channel's metrics of one method; see the [module docs](self).
pub(super) struct MethodMetrics {
    channel: ChannelLabels,
    series: MethodSeries,
}

impl MethodMetrics {
    pub(super) const fn new(channel: ChannelLabels, series: MethodSeries) -> Self {
        Self { channel, series }
    }
}

impl Metrics for MethodMetrics {
    fn call_finished(&self, call: &CallLabels<'_>, outcome: Outcome, duration: Duration) {
        let key = status_key(Some(outcome), call.grpc);
        let make = || {
            let [method, target] = self.series.labels.clone();
            let labels = [method, target, status(Some(outcome), call.grpc)];
            (key, self.channel.call_duration().bind(&labels))
        };
        self.series.calls.with(
            u64::from(key),
            |known| *known == key,
            usize::MAX,
            make,
            |histogram| histogram.record(duration.as_secs_f64()),
        );
    }

    fn attempt_started(&self, _attempt: &AttemptStart<'_>) {
        self.series.attempt_started.add(1);
    }

    fn attempt_finished(
        &self,
        labels: &AttemptLabels<'_>,
        outcome: Option<Outcome>,
        duration: Duration,
    ) {
        self.attempt_ended(labels, &AttemptEnd::new(outcome, duration));
    }

    fn attempt_ended(&self, labels: &AttemptLabels<'_>, end: &AttemptEnd) {
        let key = status_key(end.outcome, labels.grpc);
        let make = || {
            let [method, target] = self.series.labels.clone();
            let attributes = [
                method,
                target,
                status(end.outcome, labels.grpc),
                self.channel.locality(labels.locality),
                self.channel.cluster(labels.cluster),
            ];
            let attempt_key = AttemptKey {
                status: key,
                cluster: labels.cluster.into(),
                locality: labels.locality.clone(),
            };
            let (duration, sent, received) = self.channel.attempt_instruments();
            let bound = AttemptSeries {
                duration: duration.bind(&attributes),
                sent: sent.bind(&attributes),
                received: received.bind(&attributes),
            };
            (attempt_key, bound)
        };
        let record = |bound: &AttemptSeries| {
            bound.duration.record(end.duration.as_secs_f64());
            if let Some(sent) = end.sent_message_bytes {
                bound.sent.record(sent);
            }
            if let Some(received) = end.received_message_bytes {
                bound.received.record(received);
            }
        };
        let attempts = &self.series.attempts;
        let hit = LAST_ATTEMPT
            .try_with(|last| {
                let last = last.try_borrow().ok()?;
                let last = last
                    .as_ref()
                    .filter(|last| Arc::ptr_eq(&last.map, attempts))
                    .filter(|last| last.key.is(key, labels.cluster, labels.locality))?;
                record(&last.series);
                Some(())
            })
            .ok()
            .flatten();
        if hit.is_some() {
            return;
        }
        let found = attempts.with(
            AttemptKey::hash(key, labels.cluster, labels.locality),
            |known| known.is(key, labels.cluster, labels.locality),
            usize::MAX,
            make,
            |bound| {
                record(bound);
                bound.clone()
            },
        );
        if let Some(series) = found {
            let _ = LAST_ATTEMPT.try_with(|last| {
                if let Ok(mut last) = last.try_borrow_mut() {
                    *last = Some(LastAttempt {
                        map: Arc::clone(attempts),
                        key: AttemptKey {
                            status: key,
                            cluster: labels.cluster.into(),
                            locality: labels.locality.clone(),
                        },
                        series,
                    });
                }
            });
        }
    }

    fn records_message_sizes(&self) -> bool {
        true
    }

    channel_events!();
}
