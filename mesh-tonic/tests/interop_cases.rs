//! gRPC's xDS interop test cases (grpc/grpc `doc/xds-test-descriptions.md` and the published driver's checks),
//! run against `xds-interop-client` with `xds-interop-server` backends and mesh-xds-server as the control plane.
//!
//! Each case follows the published description; where the cloud setup has no local equivalent the mapping is said
//! at the case (a "MIG" is a locality of backends; "stopping" a backend kills its process). Rates, block sizes and
//! timers are scaled down so the whole suite runs in a few minutes on two cores; the tolerances are the published
//! ones.

// Fixtures and assertions fail tests by panicking.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod interop_driver;

use interop_driver::{Backend, Client, ControlPlane, cluster, mesh, names};
use mesh_xds_server::mesh::Route;

/// ping_pong: every backend receives traffic, and no RPC fails (`--fail_on_failed_rpcs=true`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_pong() {
    let backends = Backend::start_many("ping-pong", 4, 10);
    let config = mesh([Route::to_cluster("main")], [cluster("main", &backends)]);
    let control_plane = ControlPlane::start(&config).await;
    let mut client = Client::start(
        &control_plane.bootstrap(),
        &[
            "--qps=100",
            "--num_channels=1",
            "--fail_on_failed_rpcs=true",
        ],
    )
    .await;
    client.until_peers(100, &names(&backends), false).await;
    assert!(client.is_running(), "the client exited on a failed RPC");
}

/// round_robin: once every backend has an RPC, the next 100 are spread evenly, each backend within 1 of a quarter
/// (the published threshold).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin() {
    let backends = Backend::start_many("round-robin", 4, 20);
    let config = mesh([Route::to_cluster("main")], [cluster("main", &backends)]);
    let control_plane = ControlPlane::start(&config).await;
    let mut client = Client::start(
        &control_plane.bootstrap(),
        &["--qps=200", "--fail_on_failed_rpcs=true"],
    )
    .await;
    client.until_peers(100, &names(&backends), false).await;
    let stats = client.stats(100).await;
    assert_eq!(stats.num_failures, 0, "{stats:?}");
    assert_eq!(stats.rpcs_by_peer.values().sum::<i32>(), 100, "{stats:?}");
    for backend in &backends {
        let got = stats
            .rpcs_by_peer
            .get(&backend.hostname)
            .copied()
            .unwrap_or(0);
        assert!(
            (got - 25).abs() <= 1,
            "{}: {got} of 100: {stats:?}",
            backend.hostname
        );
    }
}
