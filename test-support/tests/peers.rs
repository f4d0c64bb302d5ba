//! The fixtures themselves work: the pinned peers install, a grpcio backend starts on a loopback address and a
//! grpcio client reaches it. Every interop test builds on these.

use std::process::Command;
use std::time::Duration;

use mesh_test_support::{envoy_binary, python, script, spawn_ready};

#[test]
fn grpcio_backend_answers_a_grpcio_client() {
    let python = python().unwrap();
    let (_server, ready, _rest) = spawn_ready(
        "greeter_server.py",
        Command::new(&python)
            .arg(script("greeter_server.py"))
            .args(["--address", "127.0.0.1:0", "--server-id", "backend-a"]),
        Duration::from_secs(30),
    )
    .unwrap();
    let port: u16 = ready.trim_start_matches("READY ").trim().parse().unwrap();
    let out = Command::new(&python)
        .arg(script("xds_client.py"))
        .args([
            "--target",
            &format!("ipv4:127.0.0.1:{port}"),
            "--calls",
            "5",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("\"by_server\": {\"backend-a\": 5}"),
        "{stdout}"
    );
}

#[test]
fn envoy_binary_runs() {
    let envoy = envoy_binary().unwrap();
    let out = Command::new(&envoy).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("envoy"), "{text}");
}
