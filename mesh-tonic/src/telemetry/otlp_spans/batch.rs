//! [`SpanBatcher`]: the mesh's batch span processor. It queues the SDK's ended spans (the application's, the
//! xDS-enabled server's) and the request path's [`SpanRecord`]s side by side, and a task on the runtime the
//! telemetry started in exports them together through the [`OtlpSpanExporter`].
//!
//! As the SDK's batch processor does, and with its settings and variables: a bounded queue
//! (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048, or [`TelemetryConfig::max_queued_spans`](crate::telemetry::TelemetryConfig)):
//! a span ended while it is full is dropped and counted, never waited for; an export when a batch is full
//! (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, 512) or every `OTEL_BSP_SCHEDULE_DELAY` (5,000 ms), one at a time; flush and
//! shutdown export what is queued and wait for it. Unlike it, there is no thread of its own (the exporter is a tokio
//! client already) and no channel: ending a span counts it in the queue's one atomic count (which the limit and the
//! full batch are checked against), pushes it under a lock, and wakes the task only when a batch is full. The
//! request path's records are pushed into shards of the queue, one per thread (by a per-thread index, twice as
//! many shards as the machine's threads): threads ending spans at once then do not take turns at one lock and its
//! cache line, and the task drains every shard.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use tokio::sync::Notify;

use super::OtlpSpanExporter;
use super::record::SpanRecord;

/// The SDK's default queue size.
const DEFAULT_MAX_QUEUE: usize = 2048;
/// The SDK's default batch size.
const DEFAULT_MAX_BATCH: usize = 512;
/// The SDK's default delay between exports.
const DEFAULT_DELAY: Duration = Duration::from_millis(5000);
/// How long a flush or shutdown waits for the export task.
const WAIT: Duration = Duration::from_secs(30);

/// The queue's and the exports' sizes and pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSettings {
    pub(crate) max_queue: usize,
    pub(crate) max_batch: usize,
    pub(crate) delay: Duration,
}

impl BatchSettings {
    /// The `OTEL_BSP_*` variables' settings, the SDK's defaults for those unset or not a number (as the SDK
    /// reads them), with `max_queue` instead of the variable's when given. A batch is at most the queue.
    pub(crate) fn from_env(max_queue: Option<usize>) -> Self {
        Self::from_lookup(max_queue, |name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), with variables from `lookup`.
    fn from_lookup(max_queue: Option<usize>, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let number = |name| lookup(name).and_then(|value| value.trim().parse::<u64>().ok());
        let max_queue = max_queue
            .or_else(|| number("OTEL_BSP_MAX_QUEUE_SIZE").and_then(|n| usize::try_from(n).ok()))
            .unwrap_or(DEFAULT_MAX_QUEUE)
            .max(1);
        let max_batch = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_MAX_BATCH)
            .min(max_queue);
        // At least a millisecond: a delay of 0 would have the export task spin.
        let delay = number("OTEL_BSP_SCHEDULE_DELAY")
            .map_or(DEFAULT_DELAY, |millis| Duration::from_millis(millis.max(1)));
        Self {
            max_queue,
            max_batch,
            delay,
        }
    }
}

/// The batch processor; see the [module docs](self). Cheap to clone: clones share the queue and the task.
#[derive(Debug, Clone)]
pub(crate) struct SpanBatcher {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The SDK's ended spans (the application's, the xDS-enabled server's).
    spans: Mutex<Vec<SpanData>>,
    /// The request path's records, a shard per thread (see [`shard_index`]).
    shards: Box<[Shard]>,
    /// Spans queued, in `spans` and the shards: counted before they are pushed, so that the limit holds.
    queued: AtomicUsize,
    /// Set once shut down: later spans are dropped.
    closed: AtomicBool,
    /// The export task waits on this: woken when a batch is full, or for a flush or shutdown.
    wake: Notify,
    settings: BatchSettings,
    dropped: AtomicU64,
    /// What the task is asked to answer, and whether it still runs.
    requests: Mutex<Requests>,
    exporter: OtlpSpanExporter,
    /// The request path's spans' scope.
    scope: InstrumentationScope,
}

/// One shard of the request path's records, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<Vec<SpanRecord>>);

/// The most shards a queue has.
const MAX_SHARDS: usize = 64;

/// Where this thread's records go, among shards numbered from 0 (threads take numbers in turn, as they first end
/// a span; a thread being torn down uses 0).
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<Option<usize>> = const { Cell::new(None) };
    }
    INDEX
        .try_with(|index| {
            index.get().unwrap_or_else(|| {
                let next = NEXT.fetch_add(1, Ordering::Relaxed);
                index.set(Some(next));
                next
            })
        })
        .unwrap_or(0)
}

#[derive(Debug, Default)]
struct Requests {
    waiting: Vec<(Request, Answer)>,
    /// The task is gone (stopped, or its runtime shut down): nobody will answer.
    gone: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Flush,
    Shutdown,
}

impl SpanBatcher {
    /// A processor exporting through `exporter`, its task spawned on the current runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime (the telemetry checks that it starts in one).
    pub(crate) fn start(
        exporter: OtlpSpanExporter,
        settings: BatchSettings,
        scope: InstrumentationScope,
    ) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let shards = (2 * threads).clamp(2, MAX_SHARDS);
        let shared = Arc::new(Shared {
            spans: Mutex::new(Vec::new()),
            shards: (0..shards).map(|_| Shard::default()).collect(),
            queued: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            wake: Notify::new(),
            settings,
            dropped: AtomicU64::new(0),
            requests: Mutex::new(Requests::default()),
            exporter,
            scope,
        });
        tokio::spawn(run(Arc::clone(&shared)));
        Self { shared }
    }

    /// Queues an ended request-path span in this thread's shard (dropped when the queue is full or shut down).
    pub(crate) fn push_record(&self, record: SpanRecord) {
        let shared = &*self.shared;
        let Some(queued) = shared.reserve() else {
            return;
        };
        if let Some(shard) = shared.shards.get(shard_index() % shared.shards.len()) {
            lock(&shard.0).push(record);
        }
        shared.wake_when_full(queued);
    }

    /// Exports everything queued now; the outcome once it is exported.
    pub(crate) async fn flush(&self) -> OTelSdkResult {
        self.ask(Request::Flush).await
    }

    /// Exports everything queued and stops: later spans are dropped.
    pub(crate) async fn shutdown(&self) -> OTelSdkResult {
        self.ask(Request::Shutdown).await
    }

    async fn ask(&self, request: Request) -> OTelSdkResult {
        let (answer, outcome) = tokio::sync::oneshot::channel();
        if !self.enqueue(request, Answer::Async(answer)) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(problem)) => Err(OTelSdkError::InternalFailure(problem)),
            Err(_) => Err(OTelSdkError::AlreadyShutdown),
        }
    }

    /// For the SDK's blocking `force_flush` and `shutdown` (the provider's, or its drop): asks the task, and waits
    /// for it only on a thread outside any tokio runtime. On a runtime's thread waiting could block the task itself
    /// (a current-thread runtime, or a drop inside the last task); [`Telemetry`](crate::telemetry::Telemetry)'s
    /// flush and shutdown wait through [`flush`](Self::flush) and [`shutdown`](Self::shutdown) instead.
    fn ask_blocking(&self, request: Request) -> OTelSdkResult {
        let (answer, outcome) = sync_channel(1);
        if !self.enqueue(request, Answer::Blocking(answer)) {
            return match request {
                Request::Flush => Err(OTelSdkError::AlreadyShutdown),
                // Shutting down twice is no error for a processor: the provider may do it on drop.
                Request::Shutdown => Ok(()),
            };
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return Ok(());
        }
        match outcome.recv_timeout(WAIT) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(problem)) => Err(OTelSdkError::InternalFailure(problem)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(WAIT)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(OTelSdkError::AlreadyShutdown)
            }
        }
    }

    /// Hands `request` to the task; false when it is gone.
    fn enqueue(&self, request: Request, answer: Answer) -> bool {
        {
            let mut requests = self
                .shared
                .requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if requests.gone {
                return false;
            }
            requests.waiting.push((request, answer));
        }
        self.shared.wake.notify_one();
        true
    }
}

/// Where a request's outcome goes.
#[derive(Debug)]
enum Answer {
    Async(tokio::sync::oneshot::Sender<Result<(), String>>),
    Blocking(SyncSender<Result<(), String>>),
}

impl Answer {
    fn send(self, outcome: Result<(), String>) {
        match self {
            Self::Async(answer) => {
                let _ = answer.send(outcome);
            }
            Self::Blocking(answer) => {
                let _ = answer.try_send(outcome);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Counts one more span in the queue; its count with it, or `None` (the span is dropped) when the queue is
    /// full or shut down.
    fn reserve(&self) -> Option<usize> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let queued = self.queued.fetch_add(1, Ordering::Relaxed) + 1;
        if queued > self.settings.max_queue {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(queued)
    }

    /// Wakes the task when `queued` (a span's [`reserve`](Self::reserve)) filled a batch.
    fn wake_when_full(&self, queued: usize) {
        if queued == self.settings.max_batch {
            self.wake.notify_one();
        }
    }

    /// Moves everything queued into `spans` and `records`, and uncounts it.
    fn drain(&self, spans: &mut Vec<SpanData>, records: &mut Vec<SpanRecord>) {
        std::mem::swap(&mut *lock(&self.spans), spans);
        for shard in &self.shards {
            records.append(&mut lock(&shard.0));
        }
        self.queued
            .fetch_sub(spans.len() + records.len(), Ordering::Relaxed);
    }
}

impl SpanProcessor for SpanBatcher {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled()
            && let Some(queued) = self.shared.reserve()
        {
            lock(&self.shared.spans).push(span);
            self.shared.wake_when_full(queued);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.ask_blocking(Request::Flush)
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.ask_blocking(Request::Shutdown)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.shared.exporter.set_shared_resource(resource);
    }
}

/// Marks the task gone when it ends or its runtime drops it, answering whoever still waits.
struct Gone(Arc<Shared>);

impl Drop for Gone {
    fn drop(&mut self) {
        let waiting = {
            let mut requests = self
                .0
                .requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            requests.gone = true;
            std::mem::take(&mut requests.waiting)
        };
        for (_, answer) in waiting {
            answer.send(Err("the span export task stopped".to_owned()));
        }
        self.0.closed.store(true, Ordering::Release);
    }
}

/// The export task: waits for a full batch, a request or the delay, then exports everything queued.
async fn run(shared: Arc<Shared>) {
    let _gone = Gone(Arc::clone(&shared));
    let mut spans = Vec::new();
    let mut records = Vec::with_capacity(shared.settings.max_batch);
    loop {
        let _ = tokio::time::timeout(shared.settings.delay, shared.wake.notified()).await;
        let requests = std::mem::take(
            &mut shared
                .requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .waiting,
        );
        let stop = requests
            .iter()
            .any(|(request, _)| *request == Request::Shutdown);
        if stop {
            shared.closed.store(true, Ordering::Release);
        }
        // The request path's spans ended from now on take their times by the system clock now.
        super::clock::reanchor();
        let mut outcome = Ok(());
        // Everything queued now, a batch at a time; spans ended meanwhile wait for the next round.
        shared.drain(&mut spans, &mut records);
        // Batches of at most `max_batch` spans: the SDK's first, then the request path's.
        let batch = shared.settings.max_batch;
        let (mut sdk, mut mesh) = (0, 0);
        while sdk < spans.len() || mesh < records.len() {
            let sdk_end = spans.len().min(sdk + batch);
            let mesh_end = records.len().min(mesh + batch - (sdk_end - sdk));
            let result = shared
                .exporter
                .export_parts(
                    spans.get(sdk..sdk_end).unwrap_or_default(),
                    records.get(mesh..mesh_end).unwrap_or_default(),
                    &shared.scope,
                )
                .await;
            if let Err(error) = result {
                tracing::debug!(%error, "span export failed");
                outcome = Err(error.to_string());
            }
            (sdk, mesh) = (sdk_end, mesh_end);
        }
        spans.clear();
        records.clear();
        let mut requests = requests;
        if stop {
            // Stopped before anyone hears of it: later requests find the task gone at once.
            let mut pending = shared
                .requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            pending.gone = true;
            requests.append(&mut pending.waiting);
        }
        for (_, answer) in requests {
            answer.send(outcome.clone());
        }
        if stop {
            let dropped = shared.dropped.load(Ordering::Relaxed);
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "spans were dropped: the span queue was full (max_queued_spans, OTEL_BSP_MAX_QUEUE_SIZE)"
                );
            }
            let _ = shared.exporter.close();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variables as the SDK reads them, the queue given in code first, a batch never above the queue and a
    /// delay never zero.
    #[test]
    fn settings_come_from_the_variables_within_bounds() {
        let vars = [
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "OTEL_BSP_SCHEDULE_DELAY",
        ];
        let with = |values: [Option<&str>; 3], queue: Option<usize>| {
            BatchSettings::from_lookup(queue, |name| {
                vars.iter()
                    .zip(values)
                    .find(|(var, _)| **var == name)
                    .and_then(|(_, value)| value.map(str::to_owned))
            })
        };
        assert_eq!(
            with([None, None, None], None),
            BatchSettings {
                max_queue: 2048,
                max_batch: 512,
                delay: Duration::from_secs(5)
            }
        );
        assert_eq!(
            with([Some("100"), Some("1000"), Some("0")], None),
            BatchSettings {
                max_queue: 100,
                max_batch: 100,
                delay: Duration::from_millis(1)
            }
        );
        assert_eq!(
            with([Some("100"), Some("not a number"), Some(" 250 ")], Some(10)),
            BatchSettings {
                max_queue: 10,
                max_batch: 10,
                delay: Duration::from_millis(250)
            }
        );
    }
}
