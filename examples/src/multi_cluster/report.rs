//! The demo's checks and tables.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use super::topology::{AWAY, HOME};
use super::traffic::{Window, percent};

/// A measured phase: its names and one window per tick.
#[derive(Debug)]
pub(crate) struct Phase {
    pub(crate) step: String,
    pub(crate) name: String,
    pub(crate) windows: Vec<Window>,
}

impl Phase {
    fn merged(windows: &[Window]) -> Window {
        windows.iter().fold(Window::default(), |mut all, w| {
            all.merge(w);
            all
        })
    }

    /// The whole phase.
    fn all(&self) -> Window {
        Self::merged(&self.windows)
    }

    /// The second half of the phase: after a transition has settled.
    fn second_half(&self) -> Window {
        Self::merged(
            self.windows
                .get(self.windows.len() / 2..)
                .unwrap_or_default(),
        )
    }

    /// Applies `rules`.
    pub(crate) fn judge(self, rules: Vec<Rule>) -> PhaseReport {
        let checks = rules
            .into_iter()
            .map(|rule| {
                let (passed, observed) = (rule.judge)(&self);
                Check {
                    description: rule.description,
                    observed,
                    passed,
                }
            })
            .collect();
        PhaseReport {
            step: self.step.clone(),
            name: self.name.clone(),
            window: self.all(),
            checks,
        }
    }
}

/// Judges a phase: whether it passed, and what was seen.
type Judge = Box<dyn Fn(&Phase) -> (bool, String) + Send>;

/// A check to run on a phase.
pub(crate) struct Rule {
    description: String,
    judge: Judge,
}

/// One check's outcome.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Check {
    /// What was expected.
    pub description: String,
    /// What was seen.
    pub observed: String,
    /// Whether it held.
    pub passed: bool,
}

/// One phase of a step: its traffic and checks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PhaseReport {
    /// The step number.
    pub step: String,
    /// The phase's name.
    pub name: String,
    /// The traffic of the whole phase.
    pub window: Window,
    /// The checks.
    pub checks: Vec<Check>,
}

/// What the demo found.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DemoReport {
    /// Every phase, in order.
    pub phases: Vec<PhaseReport>,
    /// How long the demo ran.
    pub elapsed: Duration,
}

impl DemoReport {
    /// Whether every check of every phase held.
    #[must_use]
    pub fn passed(&self) -> bool {
        !self.phases.is_empty() && self.failed_checks().next().is_none()
    }

    /// The checks that failed, with their phase.
    pub fn failed_checks(&self) -> impl Iterator<Item = (&PhaseReport, &Check)> {
        self.phases
            .iter()
            .flat_map(|phase| phase.checks.iter().map(move |check| (phase, check)))
            .filter(|(_, check)| !check.passed)
    }
}

/// No call failed in the phase.
pub(crate) fn no_failures() -> Rule {
    Rule {
        description: "no failed call".to_owned(),
        judge: Box::new(|phase| {
            let all = phase.all();
            let observed = if all.failures == 0 {
                format!("0 of {} failed", all.calls())
            } else {
                format!(
                    "{} of {} failed, e.g. {}",
                    all.failures,
                    all.calls(),
                    all.failure_samples.first().map_or("?", String::as_str)
                )
            };
            (all.failures == 0 && all.calls() > 0, observed)
        }),
    }
}

fn all_in_window(
    description: String,
    region: &'static str,
    select: fn(&str) -> bool,
    window: fn(&Phase) -> Window,
) -> Rule {
    Rule {
        description,
        judge: Box::new(move |phase| {
            let w = window(phase);
            let elsewhere = w.succeeded() - w.answered_by(select);
            (
                w.succeeded() > 0 && elsewhere == 0,
                format!(
                    "{:.1}% in {region} ({elsewhere} elsewhere)",
                    w.share(select)
                ),
            )
        }),
    }
}

/// Every successful call of the phase was answered in `region`.
pub(crate) fn all_in(region: &'static str, select: fn(&str) -> bool) -> Rule {
    all_in_window(
        format!("all traffic in {region}"),
        region,
        select,
        Phase::all,
    )
}

/// Every successful call of the phase's second half was answered in `region`.
pub(crate) fn all_in_second_half(region: &'static str, select: fn(&str) -> bool) -> Rule {
    all_in_window(
        format!("all traffic in {region} once settled (second half)"),
        region,
        select,
        Phase::second_half,
    )
}

/// Between `low` and `high` percent of successful calls were answered by `label` replicas.
pub(crate) fn share_of(label: &'static str, select: fn(&str) -> bool, low: f64, high: f64) -> Rule {
    let description = if high <= 0.0 {
        format!("no call to {label}")
    } else {
        format!("{label} gets {low:.0}-{high:.0}% of calls")
    };
    Rule {
        description,
        judge: Box::new(move |phase| {
            let all = phase.all();
            let share = all.share(select);
            (
                all.succeeded() > 0 && share >= low && share <= high,
                format!("{share:.1}% to {label}"),
            )
        }),
    }
}

/// Each of `replicas` got at least half its fair share of the calls they answered together.
pub(crate) fn spread_over(replicas: &[&str]) -> Rule {
    let names: Vec<String> = replicas.iter().map(|r| (*r).to_owned()).collect();
    Rule {
        description: format!("spread over {}", names.join(", ")),
        judge: Box::new(move |phase| {
            let all = phase.all();
            let together = all.answered_by(|r| names.iter().any(|n| n == r));
            #[allow(clippy::cast_precision_loss)]
            let fair = 100.0 / names.len().max(1) as f64;
            let shares: Vec<(String, f64)> = names
                .iter()
                .map(|name| {
                    let share = percent(all.by_replica.get(name).copied().unwrap_or(0), together);
                    (name.clone(), share)
                })
                .collect();
            let observed = shares
                .iter()
                .map(|(name, share)| format!("{name} {share:.0}%"))
                .collect::<Vec<_>>()
                .join(", ");
            (
                shares.iter().all(|(_, share)| *share >= fair / 2.0),
                observed,
            )
        }),
    }
}

fn is_home(replica: &str) -> bool {
    replica.starts_with(HOME)
}

fn is_away(replica: &str) -> bool {
    replica.starts_with(AWAY)
}

fn is_v2(replica: &str) -> bool {
    replica.ends_with("-v2")
}

fn millis(duration: Duration) -> String {
    format!("{:.2}ms", duration.as_secs_f64() * 1000.0)
}

/// The live table's header.
pub(crate) fn live_header(out: &mut (dyn Write + Send)) -> io::Result<()> {
    writeln!(
        out,
        "    {:>6} {:>6} {:>6} {:>7} {:>8} {:>8} {:>6} {:>8} {:>8}",
        "t", "calls", "failed", "retried", HOME, AWAY, "v2", "p50", "p99"
    )
}

/// One live line.
pub(crate) fn live_line(
    out: &mut (dyn Write + Send),
    at: Duration,
    window: &Window,
) -> io::Result<()> {
    writeln!(
        out,
        "    {:>5.1}s {:>6} {:>6} {:>7} {:>7.1}% {:>7.1}% {:>5.1}% {:>8} {:>8}",
        at.as_secs_f64(),
        window.calls(),
        window.failures,
        window.retries,
        window.share(is_home),
        window.share(is_away),
        window.share(is_v2),
        millis(window.latency(0.5)),
        millis(window.latency(0.99)),
    )
}

/// A phase's per-replica shares and checks.
pub(crate) fn print_phase(out: &mut (dyn Write + Send), phase: &PhaseReport) -> io::Result<()> {
    let mut replicas = String::new();
    for (replica, n) in &phase.window.by_replica {
        let _ = write!(
            replicas,
            "{replica} {:.1}%  ",
            percent(*n, phase.window.succeeded())
        );
    }
    writeln!(out, "    replicas: {}", replicas.trim_end())?;
    for check in &phase.checks {
        let mark = if check.passed { "ok  " } else { "FAIL" };
        writeln!(out, "    {mark} {}: {}", check.description, check.observed)?;
    }
    Ok(())
}

/// The summary table and the verdict.
pub(crate) fn summary(report: &DemoReport, out: &mut (dyn Write + Send)) -> io::Result<()> {
    writeln!(out, "\nSummary ({:.1?})", report.elapsed)?;
    writeln!(
        out,
        "  {:<4} {:<14} {:>6} {:>6} {:>7} {:>8} {:>8} {:>6} {:>8} {:>8}  result",
        "step", "phase", "calls", "failed", "retried", HOME, AWAY, "v2", "p50", "p99"
    )?;
    for phase in &report.phases {
        let w = &phase.window;
        let passed = phase.checks.iter().all(|c| c.passed);
        writeln!(
            out,
            "  {:<4} {:<14} {:>6} {:>6} {:>7} {:>7.1}% {:>7.1}% {:>5.1}% {:>8} {:>8}  {}",
            phase.step,
            phase.name,
            w.calls(),
            w.failures,
            w.retries,
            w.share(is_home),
            w.share(is_away),
            w.share(is_v2),
            millis(w.latency(0.5)),
            millis(w.latency(0.99)),
            if passed { "ok" } else { "FAIL" },
        )?;
    }
    let checks: usize = report.phases.iter().map(|p| p.checks.len()).sum();
    if report.passed() {
        writeln!(
            out,
            "\nAll {checks} checks passed: every step behaved as described."
        )
    } else {
        writeln!(out, "\nSome checks failed:")?;
        for (phase, check) in report.failed_checks() {
            writeln!(
                out,
                "  step {} [{}] {}: {}",
                phase.step, phase.name, check.description, check.observed
            )?;
        }
        Ok(())
    }
}
