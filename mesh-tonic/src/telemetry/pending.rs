//! The request path's and the xDS-enabled server's histogram values and call counts, kept on the thread that
//! recorded them until a few dozen are there or a collection starts, then recorded into their series together.
//!
//! The SDK's bound histogram takes its series' lock for every value, and calls on different threads record into
//! the same series (one method and status, and for attempts one cluster and locality): each value then moves the
//! series' lock and buckets from one core's cache to another's (and `grpc.client.attempt.started`'s count, an
//! atomic shared the same way; the xDS-enabled server's call series and calls-started counter likewise). Here
//! each thread keeps, for the series and counters of each kind it recorded on last, the values not recorded yet,
//! under a lock of its own that only a collection shares. It records them into their series when it has
//! [`FLUSH_AT`] of a kind, when it moves to another series, when the thread ends, and when a collection starts:
//! [`flush_all`] is the callback of an observable instrument on the same meter ([`flush_gauge`], which observes
//! nothing, so it is never exported), and the SDK runs the callbacks before it reads the histograms. So a
//! collection still sees every value recorded before it started.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use opentelemetry::metrics::{BoundCounter, BoundHistogram, Meter, ObservableGauge};

use super::series::{AttemptKey, AttemptSeries, SeriesMap};

/// How many values of a kind a thread keeps before it records them.
pub(super) const FLUSH_AT: usize = 32;

/// A bound series values are kept for: what one value is, and how it is recorded.
pub(super) trait Series {
    type Value;
    fn record(&self, value: &Self::Value);
}

/// A client attempt's or a server call's: its duration and its message sizes (when measured).
impl Series for AttemptSeries {
    type Value = (f64, Option<u64>, Option<u64>);

    fn record(&self, &(duration, sent, received): &Self::Value) {
        self.duration.record(duration);
        if let Some(sent) = sent {
            self.sent.record(sent);
        }
        if let Some(received) = received {
            self.received.record(received);
        }
    }
}

/// A client call's duration.
impl Series for BoundHistogram<f64> {
    type Value = f64;

    fn record(&self, duration: &f64) {
        BoundHistogram::record(self, *duration);
    }
}

/// Values of series `S` (a client attempt's, keyed by [`AttemptKey`]; a client or server call's, keyed by status)
/// not recorded yet, with the series and where it is from: its method's map (kept, so that the same pointer is that
/// map) and key.
pub(super) struct SeriesValues<K, S: Series> {
    pub(super) map: Arc<SeriesMap<K, S>>,
    pub(super) key: K,
    series: S,
    values: Vec<S::Value>,
}

impl<K, S: Series> SeriesValues<K, S> {
    pub(super) const fn new(map: Arc<SeriesMap<K, S>>, key: K, series: S) -> Self {
        Self {
            map,
            key,
            series,
            values: Vec::new(),
        }
    }

    /// Keeps one attempt's or call's values, recording them all when there are [`FLUSH_AT`].
    pub(super) fn push(&mut self, value: S::Value) {
        self.values.push(value);
        if self.values.len() >= FLUSH_AT {
            self.flush();
        }
    }
}

impl<K, S: Series> Kept for SeriesValues<K, S> {
    fn flush(&mut self) {
        for value in self.values.drain(..) {
            self.series.record(&value);
        }
    }
}

/// Attempts (`grpc.client.attempt.started`) or server calls (`grpc.server.call.started`) of one method started
/// and not counted yet.
pub(super) struct StartedCount<K> {
    /// The method's map of series: which method this is.
    pub(super) map: Arc<SeriesMap<K, AttemptSeries>>,
    counter: BoundCounter<u64>,
    count: u64,
}

impl<K> StartedCount<K> {
    pub(super) const fn new(
        map: Arc<SeriesMap<K, AttemptSeries>>,
        counter: BoundCounter<u64>,
    ) -> Self {
        Self {
            map,
            counter,
            count: 0,
        }
    }

    /// Counts one more attempt or call, adding them to the counter when there are [`FLUSH_AT`].
    pub(super) fn push(&mut self) {
        self.count += 1;
        if self.count >= FLUSH_AT as u64 {
            self.flush();
        }
    }
}

impl<K> Kept for StartedCount<K> {
    fn flush(&mut self) {
        if self.count > 0 {
            self.counter.add(std::mem::take(&mut self.count));
        }
    }
}

/// One thread's values not recorded yet.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) started: Option<StartedCount<AttemptKey>>,
    pub(super) attempt: Option<SeriesValues<AttemptKey, AttemptSeries>>,
    pub(super) call: Option<SeriesValues<u32, BoundHistogram<f64>>>,
    /// The xDS-enabled server's calls started and ended (keyed by status).
    pub(super) server_started: Option<StartedCount<u32>>,
    pub(super) server_call: Option<SeriesValues<u32, AttemptSeries>>,
}

impl Pending {
    fn flush(&mut self) {
        if let Some(started) = &mut self.started {
            started.flush();
        }
        if let Some(started) = &mut self.server_started {
            started.flush();
        }
        if let Some(call) = &mut self.server_call {
            call.flush();
        }
        if let Some(attempt) = &mut self.attempt {
            attempt.flush();
        }
        if let Some(call) = &mut self.call {
            call.flush();
        }
    }
}

/// Every thread's values, for [`flush_all`] (a thread's are dropped from here once it ends).
static THREADS: Mutex<Vec<Weak<Mutex<Pending>>>> = Mutex::new(Vec::new());

/// A thread's values, recorded as it ends.
struct ThreadValues(Arc<Mutex<Pending>>);

impl ThreadValues {
    fn register() -> Self {
        let values = Arc::new(Mutex::new(Pending::default()));
        let mut threads = lock(&THREADS);
        threads.retain(|thread| thread.strong_count() > 0);
        threads.push(Arc::downgrade(&values));
        Self(values)
    }
}

impl Drop for ThreadValues {
    fn drop(&mut self) {
        lock(&self.0).flush();
    }
}

thread_local! {
    static VALUES: ThreadValues = ThreadValues::register();
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `keep` on this thread's values; `None` when the thread has none any more (it is ending).
fn with_pending<R>(keep: impl FnOnce(&mut Pending) -> R) -> Option<R> {
    VALUES.try_with(|values| keep(&mut lock(&values.0))).ok()
}

/// Values of one series kept for later.
pub(super) trait Kept {
    /// Records the values kept into the series.
    fn flush(&mut self);
}

/// Keeps a value (`push`) in this thread's `slot` when the values there are its series' (`is_for`); otherwise
/// `fresh` makes its series' values (`None`: not recorded), the value goes there, and they take the slot, the
/// values the slot held being recorded now. On a thread that is ending, the value is recorded at once.
pub(super) fn keep<V: Kept>(
    slot: fn(&mut Pending) -> &mut Option<V>,
    is_for: impl FnOnce(&V) -> bool,
    mut push: impl FnMut(&mut V),
    fresh: impl FnOnce() -> Option<V>,
) {
    let kept = with_pending(|pending| match slot(pending) {
        Some(values) if is_for(values) => {
            push(values);
            true
        }
        _ => false,
    });
    if kept == Some(true) {
        return;
    }
    let Some(mut values) = fresh() else {
        return;
    };
    push(&mut values);
    let mut values = Some(values);
    let replaced = with_pending(|pending| {
        let values = values.take()?;
        slot(pending).replace(values)
    });
    for mut done in [replaced.flatten(), values].into_iter().flatten() {
        done.flush();
    }
}

/// The instrument whose callback runs [`flush_all`] as each collection of `meter`'s provider starts; it
/// observes nothing. Keep it as long as values are recorded through the meter.
pub(super) fn flush_gauge(meter: &Meter) -> ObservableGauge<u64> {
    meter
        .u64_observable_gauge("mesh.client.pending_values")
        .with_description(
            "Never observed: records the request path's values kept on threads as a collection starts.",
        )
        .with_callback(|_| flush_all())
        .build()
}

/// Records every thread's values into their series.
pub(super) fn flush_all() {
    let threads: Vec<Arc<Mutex<Pending>>> =
        lock(&THREADS).iter().filter_map(Weak::upgrade).collect();
    for values in threads {
        lock(&values).flush();
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::SdkMeterProvider;

    use super::super::prometheus::PrometheusReader;
    use super::*;

    /// How many values of `op.duration` a collection of `reader` finds.
    fn collected(reader: &PrometheusReader) -> usize {
        reader
            .render()
            .unwrap()
            .lines()
            .find_map(|line| line.strip_prefix("op_duration_seconds_count "))
            .map_or(0, |count| count.parse().unwrap())
    }

    /// A thread's values reach their series once it has `FLUSH_AT` of them, when it ends, and (kept on a thread
    /// still running) when a collection starts, by the callback of an instrument that is itself never exported.
    #[test]
    fn values_are_recorded_at_the_threshold_as_their_thread_ends_and_as_a_collection_starts() {
        let reader = PrometheusReader::new();
        let provider = SdkMeterProvider::builder()
            .with_reader(reader.clone())
            .build();
        let meter = provider.meter("test");
        let histogram = meter.f64_histogram("op.duration").with_unit("s").build();
        let values = || SeriesValues::new(Arc::new(SeriesMap::new()), 0, histogram.bind(&[]));

        let mut kept = values();
        for _ in 1..FLUSH_AT {
            kept.push(0.5);
        }
        assert_eq!(collected(&reader), 0, "short of the threshold");
        kept.push(0.5);
        assert_eq!(collected(&reader), FLUSH_AT);

        let ending = values();
        std::thread::spawn(move || {
            with_pending(|pending| {
                let mut ending = ending;
                ending.push(1.0);
                ending.push(1.0);
                pending.call = Some(ending);
            })
            .unwrap();
        })
        .join()
        .unwrap();
        assert_eq!(
            collected(&reader),
            FLUSH_AT + 2,
            "recorded as the thread ended"
        );

        let _flush = flush_gauge(&meter);
        let running = values();
        let (kept_them, wait) = std::sync::mpsc::channel();
        let (done, finish) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            with_pending(|pending| {
                let mut running = running;
                for _ in 0..3 {
                    running.push(2.0);
                }
                pending.call = Some(running);
            })
            .unwrap();
            kept_them.send(()).unwrap();
            let _ = finish.recv();
        });
        wait.recv().unwrap();
        let page = reader.render().unwrap();
        assert!(
            page.contains(&format!("op_duration_seconds_count {}\n", FLUSH_AT + 5))
                && !page.contains("pending"),
            "{page}"
        );
        drop(done);
        thread.join().unwrap();
        assert_eq!(collected(&reader), FLUSH_AT + 5, "nothing recorded twice");
    }
}
