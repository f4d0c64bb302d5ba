//! Steady client traffic and what it saw: calls by replica, failures, latencies.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mesh_tonic::Channel;
use mesh_tonic::testing::{GreeterClient, HelloRequest, replica_of};
use mesh_tower::metrics::Metrics;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// What a stretch of traffic saw.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Successful calls by replica name.
    pub by_replica: BTreeMap<String, u64>,
    /// Failed calls.
    pub failures: u64,
    /// Retry attempts the request path made (calls that failed on one endpoint and were tried on another).
    pub retries: u64,
    /// The first few failures' statuses.
    pub failure_samples: Vec<String>,
    /// Latency of every call, successful or not.
    pub latencies: Vec<Duration>,
}

impl Window {
    /// Calls made.
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.succeeded() + self.failures
    }

    /// Calls answered.
    #[must_use]
    pub fn succeeded(&self) -> u64 {
        self.by_replica.values().sum()
    }

    /// Successful calls answered by replicas `select` takes.
    #[must_use]
    pub fn answered_by(&self, select: impl Fn(&str) -> bool) -> u64 {
        self.by_replica
            .iter()
            .filter(|(replica, _)| select(replica))
            .map(|(_, n)| n)
            .sum()
    }

    /// The share of successful calls answered by replicas `select` takes, in percent.
    #[must_use]
    pub fn share(&self, select: impl Fn(&str) -> bool) -> f64 {
        percent(self.answered_by(select), self.succeeded())
    }

    /// The `quantile` (0–1) of call latency.
    #[must_use]
    pub fn latency(&self, quantile: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let last = sorted.len().saturating_sub(1);
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((last as f64) * quantile.clamp(0.0, 1.0)).round() as usize;
        sorted.get(index.min(last)).copied().unwrap_or_default()
    }

    /// Adds `other` to this window.
    pub fn merge(&mut self, other: &Self) {
        for (replica, n) in &other.by_replica {
            *self.by_replica.entry(replica.clone()).or_insert(0) += n;
        }
        self.failures += other.failures;
        self.retries += other.retries;
        for sample in &other.failure_samples {
            if self.failure_samples.len() < MAX_SAMPLES {
                self.failure_samples.push(sample.clone());
            }
        }
        self.latencies.extend_from_slice(&other.latencies);
    }
}

/// `part` of `whole` in percent (0 when `whole` is 0).
#[must_use]
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let share = part as f64 * 100.0 / whole as f64;
    share
}

const MAX_SAMPLES: usize = 5;

/// Counts the request path's retries (a [`Metrics`] sink).
#[derive(Debug, Default)]
pub(crate) struct RetryCounter(AtomicU64);

impl Metrics for RetryCounter {
    fn retry(&self, _cluster: &str) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The traffic: `concurrency` callers sharing `qps` calls per second, recording into the current window.
pub(crate) struct Traffic {
    current: Arc<Mutex<Window>>,
    /// Bumped by [`Traffic::restart`]: a successful call that started in an earlier epoch is not counted.
    epoch: Arc<AtomicU64>,
    retries: Arc<RetryCounter>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Traffic {
    /// Starts the callers on `channel`, whose retries `retries` counts.
    pub(crate) fn start(
        channel: &Channel,
        retries: Arc<RetryCounter>,
        qps: u32,
        concurrency: usize,
    ) -> Self {
        let current = Arc::new(Mutex::new(Window::default()));
        let epoch = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let concurrency = concurrency.max(1);
        let per_caller =
            f64::from(qps.max(1)) / f64::from(u32::try_from(concurrency).unwrap_or(u32::MAX));
        let period = Duration::from_secs_f64(1.0 / per_caller);
        let tasks = (0..concurrency)
            .map(|caller| {
                let client = GreeterClient::new(channel.clone());
                let current = Arc::clone(&current);
                let epoch = Arc::clone(&epoch);
                let stop = Arc::clone(&stop);
                // Callers start spread over one period so that the load is even.
                let offset = period.mul_f64(
                    f64::from(u32::try_from(caller).unwrap_or(0))
                        / f64::from(u32::try_from(concurrency).unwrap_or(u32::MAX)),
                );
                tokio::spawn(caller_loop(client, current, epoch, stop, period, offset))
            })
            .collect();
        Self {
            current,
            epoch,
            retries,
            stop,
            tasks,
        }
    }

    /// What was seen since the last call, starting a new window.
    pub(crate) fn take(&self) -> Window {
        let mut window =
            std::mem::take(&mut *self.current.lock().unwrap_or_else(PoisonError::into_inner));
        window.retries = self.retries.0.swap(0, Ordering::Relaxed);
        window
    }

    /// Starts afresh after a configuration change: drops what was seen so far, and a successful call that
    /// started before now is not counted (it was routed by the old configuration). Failures always count.
    pub(crate) fn restart(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
        self.take();
    }

    /// Stops the callers, waiting for calls in flight.
    pub(crate) async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Traffic {
    /// A demo that ends early (an error) stops its callers too.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn caller_loop(
    mut client: GreeterClient<Channel>,
    current: Arc<Mutex<Window>>,
    epoch: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    period: Duration,
    offset: Duration,
) {
    let mut ticks = tokio::time::interval_at(Instant::now() + offset, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        let mut request = tonic::Request::new(HelloRequest {
            name: "demo".into(),
        });
        request.set_timeout(CALL_TIMEOUT);
        let started = Instant::now();
        let started_in = epoch.load(Ordering::Relaxed);
        let result = client.say_hello(request).await;
        let latency = started.elapsed();
        if result.is_ok() && epoch.load(Ordering::Relaxed) != started_in {
            continue;
        }
        let mut window = current.lock().unwrap_or_else(PoisonError::into_inner);
        window.latencies.push(latency);
        match result {
            Ok(response) => {
                let replica = replica_of(&response).unwrap_or("unknown").to_owned();
                *window.by_replica.entry(replica).or_insert(0) += 1;
            }
            Err(status) => {
                window.failures += 1;
                if window.failure_samples.len() < MAX_SAMPLES {
                    window.failure_samples.push(format!(
                        "{:?}: {}",
                        status.code(),
                        status.message()
                    ));
                }
            }
        }
    }
}
