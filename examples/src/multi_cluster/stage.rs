//! The demo's running state: phases measured tick by tick, judged, printed and recorded.

use std::io::{self, Write};
use std::time::Duration;

use tokio::time::Instant;

use super::report::{self, DemoReport, Phase};
use super::traffic::Traffic;
use super::{DemoError, DemoOptions};

/// The demo's running state: where it writes, its traffic and what it found.
pub(super) struct Demo<'a> {
    pub(super) out: &'a mut (dyn Write + Send),
    pub(super) options: &'a DemoOptions,
    pub(super) traffic: &'a Traffic,
    pub(super) report: DemoReport,
}

/// A phase that has started: its names and when.
pub(super) struct PhaseStart {
    step: String,
    name: String,
    started: Instant,
}

impl Demo<'_> {
    pub(super) fn step(&mut self, number: &str, title: &str) -> io::Result<()> {
        writeln!(self.out, "\nStep {number}: {title}")
    }

    pub(super) fn begin_phase(
        &mut self,
        step: &str,
        name: &str,
        explanation: &str,
    ) -> io::Result<PhaseStart> {
        writeln!(self.out, "  [{name}] {explanation}")?;
        report::live_header(self.out)?;
        Ok(PhaseStart {
            step: step.to_owned(),
            name: name.to_owned(),
            started: Instant::now(),
        })
    }

    pub(super) async fn phase(
        &mut self,
        step: &str,
        name: &str,
        explanation: &str,
    ) -> Result<Phase, DemoError> {
        let start = self.begin_phase(step, name, explanation)?;
        self.run_phase(start).await
    }

    /// Measures the traffic for the phase's length, a live line per tick.
    pub(super) async fn run_phase(&mut self, start: PhaseStart) -> Result<Phase, DemoError> {
        let tick = self.options.tick.max(Duration::from_millis(100));
        let ticks = (self.options.phase.as_secs_f64() / tick.as_secs_f64())
            .ceil()
            .max(2.0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ticks = ticks as u32;
        let mut windows = Vec::new();
        for index in 1..=ticks {
            tokio::time::sleep_until(start.started + tick * index).await;
            let window = self.traffic.take();
            report::live_line(self.out, start.started.elapsed(), &window)?;
            windows.push(window);
        }
        Ok(Phase {
            step: start.step,
            name: start.name,
            windows,
        })
    }

    /// Runs `checks` on `phase`, prints them and records the phase.
    pub(super) fn finish(&mut self, phase: Phase, checks: Vec<report::Rule>) -> io::Result<()> {
        let report = phase.judge(checks);
        report::print_phase(self.out, &report)?;
        self.report.phases.push(report);
        Ok(())
    }
}
