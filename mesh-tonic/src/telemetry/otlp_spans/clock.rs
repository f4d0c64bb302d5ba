//! Wall-clock times for the request path's spans, from the monotonic clock readings the request path already makes
//! for its duration metrics: a span starts at the reading its duration metric starts at, and lasts exactly as long
//! as that metric says (no clock read of the span's own).
//!
//! A call's start becomes Unix-epoch nanoseconds through an anchor: the system clock's time at a fixed monotonic
//! instant. Its attempts' times and its own end are then its start plus the time between readings, so a call's
//! spans keep their measured durations and its attempts stay within it. Before each round of exports the export
//! task checks the anchor against the system clock and moves it when they differ by more than 100 µs, so a change
//! of the system clock (a step, NTP's slewing) reaches the calls started after the next round
//! (`OTEL_BSP_SCHEDULE_DELAY`, 5 s by default).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The monotonic instant anchors are taken against, and the epoch time at it by the latest anchor (nanoseconds).
struct Anchor {
    base: Instant,
    unix_nanos: AtomicU64,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

fn anchor() -> &'static Anchor {
    ANCHOR.get_or_init(|| {
        let base = Instant::now();
        Anchor {
            base,
            unix_nanos: AtomicU64::new(system_nanos_at(base)),
        }
    })
}

/// The system clock's time at `base`, in nanoseconds since the Unix epoch (0 for a clock set before it): the
/// system clock read between two monotonic readings, the closest pair of three tries (a thread preempted between
/// its reads would skew one).
fn system_nanos_at(base: Instant) -> u64 {
    let mut best: Option<(Duration, u64)> = None;
    for _ in 0..3 {
        let before = base.elapsed();
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let after = base.elapsed();
        let window = after.saturating_sub(before);
        if best.is_none_or(|(narrowest, _)| window < narrowest) {
            let at = system.saturating_sub(before + window / 2);
            best = Some((window, nanos(at)));
        }
    }
    best.map_or(0, |(_, at)| at)
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// How far the system clock must have moved from the anchor for a new one to be taken: less is the jitter of
/// reading two clocks, and moving the anchor by it would only shift spans against the ones before.
const MOVED: u64 = 100_000;

/// Takes a new anchor from the system clock now, if it moved from the current one by more than [`MOVED`].
pub(crate) fn reanchor() {
    let anchor = anchor();
    let now = system_nanos_at(anchor.base);
    if now.abs_diff(anchor.unix_nanos.load(Ordering::Relaxed)) > MOVED {
        anchor.unix_nanos.store(now, Ordering::Relaxed);
    }
}

/// `at` in nanoseconds since the Unix epoch, by the latest anchor.
pub(crate) fn unix_nanos(at: Instant) -> u64 {
    let anchor = anchor();
    let base = anchor.unix_nanos.load(Ordering::Relaxed);
    match at.checked_duration_since(anchor.base) {
        Some(after) => base.saturating_add(nanos(after)),
        None => base.saturating_sub(nanos(anchor.base.duration_since(at))),
    }
}

/// The epoch time of the reading `later`, from the epoch time `nanos_at` of the reading `earlier`: the time
/// between the two readings added, whatever the anchor did meanwhile (a span's end from its start, an attempt's
/// start from its call's, so that a span lasts what its metric says and its children stay within it).
pub(crate) fn after(nanos_at: u64, earlier: Instant, later: Instant) -> u64 {
    nanos_at.saturating_add(nanos(later.saturating_duration_since(earlier)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reading converts to the system clock's time at it (within the few microseconds between the two clock
    /// reads), readings before the anchor's base included, and a span's end is its start plus the readings'
    /// difference, to the nanosecond.
    #[test]
    fn readings_convert_to_epoch_time_and_later_ones_keep_the_measured_difference() {
        let before = Instant::now();
        reanchor();
        let system = nanos(SystemTime::now().duration_since(UNIX_EPOCH).unwrap());
        let converted = unix_nanos(Instant::now());
        assert!(
            converted.abs_diff(system) < 5_000_000,
            "{converted} vs {system}"
        );
        assert!(unix_nanos(before) <= converted);
        let earlier = before.checked_sub(Duration::from_secs(1)).unwrap();
        assert_eq!(
            unix_nanos(before) - unix_nanos(earlier),
            1_000_000_000,
            "a reading before the anchor's base"
        );
        let start = unix_nanos(before);
        let ended = before + Duration::from_nanos(1_234_567);
        assert_eq!(after(start, before, ended), start + 1_234_567);
        // A later reading before the earlier one (it cannot be, but must not wrap) is the earlier's time.
        assert_eq!(after(start, ended, before), start);
    }
}
