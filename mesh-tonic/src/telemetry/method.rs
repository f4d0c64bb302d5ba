//! One method's metrics on one channel: what [`OtelMetrics`](super::OtelMetrics) hands the request path for each
//! call ([`Metrics::for_call`]), so that a call finds its method's series once, as it starts, and its attempts,
//! their message sizes and its end record on them without looking the method up again.
//!
//! Each `MethodMetrics` is made once per channel and method (bounded as the `grpc.method` label is) and shared by
//! that method's calls: handing it to a call is a reference count, not an allocation. What is not per call
//! (retries, circuit breakers, outlier ejections, ...) it records as its channel does. Each thread keeps the attempt
//! series, the call series and the attempts-started counter it recorded on last, with the values not recorded into
//! them yet (see `pending.rs`): the next attempt or call of the same labels finds its series there without a
//! lookup.

use std::sync::Arc;
use std::time::Duration;

use mesh_tower::error::EndpointCounts;
use mesh_tower::metrics::{AttemptEnd, AttemptLabels, AttemptStart, CallLabels, Metrics, Outcome};

use super::metrics::{ChannelLabels, channel_events, status, status_key};
use super::pending::{SeriesValues, StartedCount, keep};
use super::series::{AttemptKey, AttemptSeries, MethodSeries};

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
        let calls = &self.series.calls;
        let duration = duration.as_secs_f64();
        let fresh = || {
            let series = calls.of_status(key, || {
                let [method, target] = self.series.labels.clone();
                let labels = [method, target, status(Some(outcome), call.grpc)];
                self.channel.call_duration().bind(&labels)
            })?;
            Some(SeriesValues::new(Arc::clone(calls), key, series))
        };
        keep(
            |pending| &mut pending.call,
            |kept| kept.key == key && Arc::ptr_eq(&kept.map, calls),
            |kept| kept.push(duration),
            fresh,
        );
    }

    fn attempt_started(&self, _attempt: &AttemptStart<'_>) {
        let attempts = &self.series.attempts;
        keep(
            |pending| &mut pending.started,
            |kept| Arc::ptr_eq(&kept.map, attempts),
            StartedCount::push,
            || {
                Some(StartedCount::new(
                    Arc::clone(attempts),
                    self.series.attempt_started.clone(),
                ))
            },
        );
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
        let attempts = &self.series.attempts;
        let fresh = || {
            let series = attempts.with(
                AttemptKey::hash(key, labels.cluster, labels.locality),
                |known| known.is(key, labels.cluster, labels.locality),
                usize::MAX,
                make,
                Clone::clone,
            )?;
            let attempt_key = AttemptKey {
                status: key,
                cluster: labels.cluster.into(),
                locality: labels.locality.clone(),
            };
            Some(SeriesValues::new(Arc::clone(attempts), attempt_key, series))
        };
        keep(
            |pending| &mut pending.attempt,
            |kept| {
                Arc::ptr_eq(&kept.map, attempts)
                    && kept.key.is(key, labels.cluster, labels.locality)
            },
            |kept| {
                kept.push((
                    end.duration.as_secs_f64(),
                    end.sent_message_bytes,
                    end.received_message_bytes,
                ));
            },
            fresh,
        );
    }

    fn records_message_sizes(&self) -> bool {
        true
    }

    channel_events!();
}
