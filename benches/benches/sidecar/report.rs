//! The figures of all rounds, and their summary: medians per variant and concurrency, ratios against the direct
//! channel, and the latency the mesh and the sidecar add.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::measure::{Sample, median};

/// Which client a sample measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Variant {
    /// (a) a plain tonic channel to the server.
    Direct,
    /// (b) the mesh's `xds:///` channel.
    Mesh,
    /// (c) a plain tonic channel through Envoy.
    Envoy,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Self::Direct => "(a) tonic -> server",
            Self::Mesh => "(b) mesh xds:/// -> server",
            Self::Envoy => "(c) tonic -> Envoy -> server",
        }
    }
}

/// Samples by variant and concurrency, in round order.
#[derive(Debug, Default)]
pub struct Figures {
    samples: BTreeMap<(Variant, usize), Vec<Sample>>,
    /// How long the measured rounds took.
    pub took: Duration,
}

impl Figures {
    pub fn record(&mut self, variant: Variant, concurrency: usize, sample: Sample) {
        self.samples
            .entry((variant, concurrency))
            .or_default()
            .push(sample);
    }

    fn median_of(
        &self,
        variant: Variant,
        concurrency: usize,
        field: impl Fn(&Sample) -> f64,
    ) -> Option<f64> {
        let samples = self.samples.get(&(variant, concurrency))?;
        Some(median(samples.iter().map(field).collect()))
    }

    /// The median over rounds of `field(variant) op field(direct)`, pairing each round's samples.
    fn paired(
        &self,
        variant: Variant,
        concurrency: usize,
        field: impl Fn(&Sample) -> f64,
        op: impl Fn(f64, f64) -> f64,
    ) -> Option<f64> {
        let ours = self.samples.get(&(variant, concurrency))?;
        let direct = self.samples.get(&(Variant::Direct, concurrency))?;
        let values = ours
            .iter()
            .zip(direct)
            .map(|(o, d)| op(field(o), field(d)))
            .collect();
        Some(median(values))
    }

    /// Fails the smoke run when a variant measured nothing or failed calls.
    pub fn check_smoke(&self) {
        for ((variant, concurrency), samples) in &self.samples {
            for sample in samples {
                assert!(
                    sample.calls > 0 && sample.errors == 0,
                    "{variant:?} at concurrency {concurrency}: {} calls, {} errors (first: {:?})",
                    sample.calls,
                    sample.errors,
                    sample.first_error
                );
            }
        }
    }

    pub fn print(&self, rounds: usize, window: Duration, load_before: &str, load_after: &str) {
        println!(
            "sidecar: proxyless vs sidecar, helloworld.Greeter/SayHello on loopback; medians of {rounds} rounds \
             alternating the variants, {} ms per variant, concurrency and round ({:.0} s measured)",
            window.as_millis(),
            self.took.as_secs_f64()
        );
        println!(
            "  1-minute load average: {load_before} before, {load_after} after (above ~3: figures from a busy machine)"
        );
        println!(
            "  CPU columns: CPU time per call in us (cores busy) of the client threads, the server threads and Envoy"
        );
        for concurrency in crate::CONCURRENCIES {
            println!("  concurrency {concurrency}:");
            println!(
                "    {:<28} {:>8} {:>9} {:>9}  {:>12} {:>12} {:>12} {:>6}",
                "variant", "req/s", "p50 us", "p99 us", "client", "server", "envoy", "errors"
            );
            for variant in [Variant::Direct, Variant::Mesh, Variant::Envoy] {
                self.print_row(variant, concurrency);
            }
        }
        self.print_verdicts();
        self.print_errors();
    }

    fn print_row(&self, variant: Variant, concurrency: usize) {
        let Some(samples) = self.samples.get(&(variant, concurrency)) else {
            println!("    {:<28} not measured", variant.label());
            return;
        };
        let field =
            |f: fn(&Sample) -> f64| self.median_of(variant, concurrency, f).unwrap_or_default();
        // Per call, and as cores busy over the window (per call times calls per second).
        let cpu = |f: fn(&Sample) -> Option<f64>| {
            if samples.iter().any(|s| f(s).is_none()) {
                return "-".to_owned();
            }
            let per_call = median(samples.iter().filter_map(f).collect());
            let cores = median(
                samples
                    .iter()
                    .filter_map(|s| Some(f(s)? * s.throughput / 1e6))
                    .collect(),
            );
            format!("{per_call:.1} ({cores:.2})")
        };
        println!(
            "    {:<28} {:>8.0} {:>9.1} {:>9.1}  {:>12} {:>12} {:>12} {:>6}",
            variant.label(),
            field(|s| s.throughput),
            field(|s| s.p50),
            field(|s| s.p99),
            cpu(|s| s.cpu.client),
            cpu(|s| s.cpu.server),
            cpu(|s| s.cpu.envoy),
            samples.iter().map(|s| s.errors).sum::<u64>()
        );
    }

    fn print_verdicts(&self) {
        let ratio = |a: f64, d: f64| if d > 0.0 { a / d } else { 0.0 };
        let added = |a: f64, d: f64| a - d;
        println!("  ratios to (a), medians of per-round ratios:");
        for concurrency in crate::CONCURRENCIES {
            let mesh = self.paired(Variant::Mesh, concurrency, |s| s.throughput, ratio);
            let envoy = self.paired(Variant::Envoy, concurrency, |s| s.throughput, ratio);
            println!(
                "    throughput at concurrency {concurrency:>2}: b/a {} (target >= 0.95: {}) | c/a {}",
                show(mesh, 3),
                verdict(mesh.map(|m| m >= 0.95)),
                show(envoy, 3)
            );
        }
        println!("  latency added over (a), medians of per-round differences:");
        for (name, field) in [
            ("p50", (|s: &Sample| s.p50) as fn(&Sample) -> f64),
            ("p99", |s: &Sample| s.p99),
        ] {
            for concurrency in crate::CONCURRENCIES {
                let mesh = self.paired(Variant::Mesh, concurrency, field, added);
                let envoy = self.paired(Variant::Envoy, concurrency, field, added);
                let share = mesh
                    .zip(envoy)
                    .filter(|(_, e)| *e > 0.0)
                    .map(|(m, e)| m / e);
                let target = if name == "p50" && concurrency == 1 {
                    format!(" (target <= 0.05: {})", verdict(share.map(|s| s <= 0.05)))
                } else {
                    String::new()
                };
                println!(
                    "    {name} at concurrency {concurrency:>2}: b adds {} us, the sidecar adds {} us, b/sidecar {}{target}",
                    show(mesh, 1),
                    show(envoy, 1),
                    show(share, 3),
                );
            }
        }
    }

    fn print_errors(&self) {
        for ((variant, concurrency), samples) in &self.samples {
            if let Some(first) = samples.iter().find_map(|s| s.first_error.as_ref()) {
                println!("  errors: {variant:?} at concurrency {concurrency}, first: {first}");
            }
        }
    }
}

fn show(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.decimals$}"))
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "n/a",
    }
}

/// The 1-minute load average (`/proc/loadavg`), or `?`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}
