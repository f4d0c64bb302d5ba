//! The multi-cluster demo: a control plane, two regions of greeter replicas and a client, all in this process, told
//! in four checked steps (see `mesh_examples::multi_cluster`). Exits 0 only if every step behaved as described.
//! Prints where its telemetry goes: the Prometheus page on the client's admin endpoint, and an OTLP collector when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`OTEL_SERVICE_NAME` and the other OpenTelemetry variables are honoured).
//!
//! ```text
//! cargo run --release -p mesh-examples --example multi_cluster [-- --phase-secs N]
//! ```
// An example program reports on standard output and standard error by design.
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::process::ExitCode;
use std::time::Duration;

use mesh_examples::multi_cluster::{DemoOptions, run_demo};

#[tokio::main]
async fn main() -> ExitCode {
    let mut options = DemoOptions::default().with_telemetry_from_env();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|v| v.parse::<f64>())) {
            ("--phase-secs", Some(Ok(secs))) if secs > 0.0 && secs.is_finite() => {
                options = options.with_phase(Duration::from_secs_f64(secs));
            }
            _ => {
                eprintln!("usage: multi_cluster [--phase-secs N]  (N > 0; default 4)");
                return ExitCode::from(2);
            }
        }
    }
    let mut out = std::io::stdout();
    match run_demo(&options, &mut out).await {
        Ok(report) if report.passed() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("the demo could not run: {error}");
            ExitCode::FAILURE
        }
    }
}
