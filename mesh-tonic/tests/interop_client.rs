//! The `xds-interop-client` binary's own contract: usage errors, `--secure_mode`, `--fail_on_failed_rpcs` and the
//! `Configure` service, over real sockets.

// Fixtures and assertions fail tests by panicking.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod interop_driver;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use interop_driver::{
    Backend, CLIENT_BINARY, Client, ControlPlane, PATIENCE, cluster, mesh, names,
};
use mesh_tonic::interop::client::messages::{MetadataType, RpcType};
use mesh_xds_server::mesh::Route;

/// Runs the client with `args`, expecting it to exit at once: its status code and stderr.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(CLIENT_BINARY)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run xds-interop-client");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn usage_errors_exit_2_naming_the_flag() {
    for (arg, flag) in [
        ("--qps=fast", "--qps"),
        ("--rpc=StreamingCall", "--rpc"),
        ("--metadata=EmptyCall", "--metadata"),
        ("--secure_mode=maybe", "--secure_mode"),
        ("--no_such_flag=1", "--no_such_flag"),
    ] {
        let (code, stderr) = run_to_exit(&[arg]);
        assert_eq!(code, Some(2), "{arg}: {stderr}");
        assert!(stderr.contains(flag), "{arg}: {stderr}");
    }
    let (code, _) = run_to_exit(&["--help"]);
    assert_eq!(code, Some(0));
}

#[test]
fn a_missing_bootstrap_is_reported_and_exits_1() {
    let output = Command::new(CLIENT_BINARY)
        .args(["--server=xds:///interop", "--stats_port=0"])
        .env_remove("GRPC_XDS_BOOTSTRAP")
        .env_remove("GRPC_XDS_BOOTSTRAP_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run xds-interop-client");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bootstrap"), "{stderr}");
}

/// `--secure_mode=true` says what it does, and the client reaches plaintext backends (the fallback credentials).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_mode_falls_back_to_plaintext_for_clusters_without_tls() {
    let backends = Backend::start_many("secure", 1, 170);
    let config = mesh([Route::to_cluster("main")], [cluster("main", &backends)]);
    let control_plane = ControlPlane::start(&config).await;
    let mut client = Client::start(
        &control_plane.bootstrap(),
        &["--qps=50", "--secure_mode=true"],
    )
    .await;
    client.until_peers(10, &names(&backends), false).await;
}

/// `--fail_on_failed_rpcs=true`: failures before the first success are tolerated (no config yet), and the first
/// failure after a success ends the client with status 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_failed_rpcs_exits_after_a_failure_that_follows_a_success() {
    let backends = Backend::start_many("fail-fast", 1, 175);
    let config = mesh([Route::to_cluster("main")], [cluster("main", &backends)]);
    let control_plane = ControlPlane::start(&config).await;
    let mut client = Client::start(
        &control_plane.bootstrap(),
        &["--qps=50", "--fail_on_failed_rpcs=true"],
    )
    .await;
    client.until_peers(10, &names(&backends), false).await;
    assert!(client.is_running());

    client
        .configure(
            &[RpcType::UnaryCall],
            &[(RpcType::UnaryCall, "rpc-behavior", "error-code-14")],
            0,
        )
        .await;
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = client.exit_status() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the client kept running after a failed RPC"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(1));
}

/// `Configure` switches RPC types at once, and `GetClientStats` counts them by method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_changes_the_rpc_types_sent() {
    let backends = Backend::start_many("configure", 1, 178);
    let config = mesh([Route::to_cluster("main")], [cluster("main", &backends)]);
    let control_plane = ControlPlane::start(&config).await;
    let mut client = Client::start(&control_plane.bootstrap(), &["--qps=100"]).await;
    let all = names(&backends);
    client
        .until_methods(20, &[(RpcType::UnaryCall, &all), (RpcType::EmptyCall, &[])])
        .await;

    client.configure(&[RpcType::EmptyCall], &[], 0).await;
    client
        .until_methods(20, &[(RpcType::UnaryCall, &[]), (RpcType::EmptyCall, &all)])
        .await;
}

/// `GetClientStats` with `metadata_keys` reports, per peer and RPC, the named response headers (matched without
/// regard to case), or every entry for `*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stats_report_the_requested_response_metadata() {
    let backends = Backend::start_many("metadata", 2, 195);
    let config = mesh([Route::to_cluster("main")], [cluster("main", &backends)]);
    let control_plane = ControlPlane::start(&config).await;
    let mut client = Client::start(&control_plane.bootstrap(), &["--qps=100"]).await;
    client.until_peers(20, &names(&backends), false).await;

    for keys in [&["HOSTNAME"][..], &["*"][..]] {
        let stats = client.stats_with_metadata(20, keys).await;
        assert_eq!(stats.num_failures, 0, "{stats:?}");
        for (peer, count) in &stats.rpcs_by_peer {
            let rpcs = &stats.metadatas_by_peer[peer].rpc_metadata;
            assert_eq!(
                rpcs.len(),
                usize::try_from(*count).unwrap(),
                "{keys:?}: {stats:?}"
            );
            for rpc in rpcs {
                let hostname: Vec<_> = rpc
                    .metadata
                    .iter()
                    .filter(|e| e.key == "hostname")
                    .collect();
                assert_eq!(hostname.len(), 1, "{keys:?}: {rpc:?}");
                assert_eq!(hostname[0].value, *peer);
                assert_eq!(hostname[0].r#type, MetadataType::Initial as i32);
                assert!(
                    rpc.metadata.iter().all(|e| !e.key.starts_with("grpc-")),
                    "{rpc:?}"
                );
            }
        }
    }
    // Without keys, nothing is collected.
    assert!(client.stats(20).await.metadatas_by_peer.is_empty());
}
