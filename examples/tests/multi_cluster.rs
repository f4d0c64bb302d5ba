//! The demo's checks, as a test: the same run as `cargo run --example multi_cluster`, with two-second phases, and
//! what it says of its telemetry.

use std::time::Duration;

use mesh_examples::multi_cluster::{DemoOptions, run_demo};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_step_of_the_multi_cluster_demo_behaves_as_described() {
    let options = DemoOptions::default()
        .with_phase(Duration::from_secs(2))
        .with_tick(Duration::from_millis(500));
    let mut out = Vec::new();
    let report = run_demo(&options, &mut out).await;
    let text = String::from_utf8_lossy(&out);
    let report = report.unwrap_or_else(|error| panic!("the demo could not run: {error}\n{text}"));
    assert!(report.passed(), "some checks failed:\n{text}");
    assert_eq!(report.phases.len(), 7, "{text}");
    // It says where its telemetry goes, and the Prometheus page counted the demo's calls.
    assert!(text.contains("Telemetry: no OTLP collector"), "{text}");
    assert!(
        text.contains("Metrics for Prometheus: http://127.0.0.1:"),
        "{text}"
    );
    let counted = text
        .lines()
        .find_map(|line| line.strip_prefix("The Prometheus page counted "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|calls| calls.parse::<u64>().ok());
    assert!(counted.is_some_and(|calls| calls > 100), "{text}");
    assert!(
        report.elapsed < Duration::from_secs(30),
        "took {:?}",
        report.elapsed
    );
}
