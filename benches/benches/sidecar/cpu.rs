//! CPU time spent by a process, or by the threads of this process with a given name, from Linux's `/proc` (user plus
//! system time). Elsewhere, or when `/proc` cannot be read, the figures are absent rather than wrong.

use std::time::Duration;

/// Linux reports CPU time in clock ticks of `USER_HZ`, which is 100 on every architecture Linux supports today.
const TICKS_PER_SECOND: u64 = 100;

/// User plus system time of the process `pid`.
pub fn process(pid: u32) -> Option<Duration> {
    ticks_of(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?).map(from_ticks)
}

/// User plus system time of the threads of this process named `name` (tokio's `thread_name`).
pub fn threads_named(name: &str) -> Option<Duration> {
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            ticks += ticks_of(&std::fs::read_to_string(path.join("stat")).ok()?)?;
        }
    }
    Some(from_ticks(ticks))
}

/// `utime + stime` of a `stat` line. The command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last `)`: `utime` and `stime` are fields 14 and 15 of the line.
fn ticks_of(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

fn from_ticks(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

/// The average CPU time per call of a stretch that used `cpu` for `calls` calls, in microseconds.
pub fn micros_per_call(cpu: Duration, calls: u64) -> f64 {
    if calls == 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)] // call counts far below 2^52
    let calls = calls as f64;
    cpu.as_secs_f64() * 1e6 / calls
}
