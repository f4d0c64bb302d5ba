//! The `mesh-xds-server` binary as a user runs it: help, usage errors, `--check`, and serving until SIGTERM.

// Test helpers outside #[test] functions may fail loudly too: a panic is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::process::{Output, Stdio};

use mesh_xds_server::type_url;
use support::{AdsClient, within};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_mesh-xds-server");

const VALID: &str = "services:\n  - name: greeter\n    routes: [ { cluster: main } ]\nclusters:\n  - name: main\n    localities:\n      - endpoints: [ { address: \"127.0.0.1:50051\" } ]\n";

async fn run(args: &[&str]) -> Output {
    within(
        "the binary",
        Command::new(BINARY)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(directory: &Path, name: &str, contents: &str) -> String {
    let path = directory.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn help_prints_usage_and_exits_zero() {
    for flag in ["--help", "-h"] {
        let output = run(&[flag]).await;
        assert_eq!(output.status.code(), Some(0));
        let stdout = text(&output.stdout);
        assert!(
            stdout.contains("mesh-xds-server --config FILE [--listen ADDR]"),
            "{stdout}"
        );
        assert!(stdout.contains("--check"), "{stdout}");
    }
    let version = run(&["--version"]).await;
    assert_eq!(version.status.code(), Some(0));
    assert!(text(&version.stdout).starts_with("mesh-xds-server "));
}

#[tokio::test]
async fn bad_arguments_exit_2_with_a_clear_message() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "--config FILE is required"),
        (&["--config"], "--config needs a value"),
        (
            &["--config", "m.yaml", "--listen", "localhost:1"],
            "is not an IP:PORT address",
        ),
        (
            &["--config", "m.yaml", "--verbose"],
            "unknown option \"--verbose\"",
        ),
    ];
    for (args, expected) in cases {
        let output = run(args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(stderr.contains("--help"), "{stderr}");
        assert!(output.stdout.is_empty());
    }
}

#[tokio::test]
async fn check_validates_the_mesh_file() {
    let directory = tempfile::tempdir().unwrap();
    let valid = write(directory.path(), "valid.yaml", VALID);
    let output = run(&["--check", "--config", &valid]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("ok (1 services, 1 clusters, 0 server listeners)"));

    let invalid = write(
        directory.path(),
        "invalid.yaml",
        &VALID.replace("127.0.0.1:50051", "x"),
    );
    let output = run(&["--check", "--config", &invalid]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("clusters[0].localities[0].endpoints[0]: invalid address \"x\""),
        "{stderr}"
    );
}

#[tokio::test]
async fn serving_a_bad_or_missing_file_exits_1() {
    let directory = tempfile::tempdir().unwrap();
    let invalid = write(directory.path(), "invalid.yaml", "clusters: 3\n");
    let output = run(&["--config", &invalid, "--listen", "127.0.0.1:0"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("clusters: invalid type"),
        "{}",
        text(&output.stderr)
    );
    let missing = directory.path().join("missing.yaml");
    let output = run(&[
        "--config",
        missing.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("missing.yaml"));
}

#[tokio::test]
async fn serves_the_mesh_file_and_stops_on_sigterm() {
    let directory = tempfile::tempdir().unwrap();
    let config = write(directory.path(), "mesh.yaml", VALID);
    let mut child = Command::new(BINARY)
        .args(["--config", &config, "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = within("the listening line", lines.next_line())
        .await
        .unwrap()
        .unwrap();
    let address = line
        .strip_prefix("mesh-xds-server listening on ")
        .unwrap_or_else(|| panic!("{line}"));
    let mut client = AdsClient::connect(address.parse().unwrap(), "cli").await;
    client.subscribe(type_url::LISTENER, &["greeter"]).await;
    let response = client.recv_type(type_url::LISTENER).await;
    assert_eq!(response.version_info, "1");
    assert_eq!(response.resources.len(), 1);

    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = within("the binary to exit", child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(client.recv_error().await.code(), tonic::Code::Unavailable);
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("mesh file loaded"), "{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
}

/// A supervisor may stop the server as soon as it has printed its address: the signal handlers exist by then, so
/// the server still shuts down gracefully and exits 0 instead of being killed by the signal.
#[tokio::test]
async fn a_sigterm_right_after_the_listening_line_is_a_graceful_stop() {
    let directory = tempfile::tempdir().unwrap();
    let config = write(directory.path(), "mesh.yaml", VALID);
    let mut child = Command::new(BINARY)
        .args(["--config", &config, "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = within("the listening line", lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert!(line.starts_with("mesh-xds-server listening on "), "{line}");
    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = within("the binary to exit", child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}
