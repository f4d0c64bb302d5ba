//! Differential: the same control-plane configuration drives gRPC C-core (Python grpcio, an `xds:///` channel) and
//! `xds-interop-client`; both must spread traffic the same way, within the published tolerances, for a weighted
//! split and for locality failover (`test-support/python/xds_interop_peers.py` is the C-core side).

// Fixtures and assertions fail tests by panicking.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod interop_driver;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use interop_driver::{
    Backend, Client, ControlPlane, PATIENCE, SERVICE, ZONE, cluster, locality, mesh, names,
};
use mesh_test_support::{ChildGuard, python, script, spawn_ready};
use mesh_xds_server::mesh::{Cluster, Route, WeightedCluster};

/// Counts of one block of calls: by answering backend, and failures.
#[derive(Debug, Default)]
struct Block {
    peers: BTreeMap<String, i32>,
    failures: i32,
}

impl Block {
    fn total(&self) -> i32 {
        self.peers.values().sum::<i32>() + self.failures
    }

    fn share(&self, peer: &str) -> f64 {
        f64::from(self.peers.get(peer).copied().unwrap_or(0)) / f64::from(self.total().max(1))
    }

    fn goes_only_to(&self, backends: &[String]) -> bool {
        self.failures == 0
            && self.peers.keys().collect::<BTreeSet<_>>()
                == backends.iter().collect::<BTreeSet<_>>()
    }
}

/// gRPC C-core's view: a long-lived grpcio channel driven over stdin.
struct CoreClient {
    process: ChildGuard,
    lines: mpsc::Receiver<String>,
}

impl CoreClient {
    fn start(bootstrap: &str) -> Self {
        let python = python().expect("the Python venv with grpcio");
        let (process, _, lines) = spawn_ready(
            "xds_interop_peers.py",
            Command::new(python)
                .arg(script("xds_interop_peers.py"))
                .args(["--target", &format!("xds:///{SERVICE}")])
                .env_remove("GRPC_XDS_BOOTSTRAP")
                .env("GRPC_XDS_BOOTSTRAP_CONFIG", bootstrap),
            Duration::from_secs(60),
        )
        .expect("grpcio starts");
        Self { process, lines }
    }

    /// The next `calls` calls, one after another.
    async fn block(&mut self, calls: i32) -> Block {
        let stdin = self.process.stdin().expect("piped stdin");
        writeln!(stdin, "{calls}").unwrap();
        stdin.flush().unwrap();
        let line = tokio::task::block_in_place(|| self.lines.recv_timeout(PATIENCE))
            .expect("grpcio answers");
        let mut block = Block::default();
        for entry in line.split_whitespace() {
            let (key, count) = entry.rsplit_once(':').expect("KEY:COUNT");
            let count: i32 = count.parse().expect("a count");
            match key.split_once('=') {
                Some(("peer", peer)) => {
                    block.peers.insert(peer.to_owned(), count);
                }
                Some(("error", _)) => block.failures += count,
                _ => panic!("unexpected output {line:?}"),
            }
        }
        block
    }
}

/// Our client's block of `calls` RPCs.
async fn our_block(client: &mut Client, calls: i32) -> Block {
    let stats = client.stats(calls).await;
    Block {
        peers: stats.rpcs_by_peer.into_iter().collect(),
        failures: stats.num_failures,
    }
}

/// Both clients: measures blocks of `calls` until one satisfies `accept`, for up to [`PATIENCE`] each; returns
/// (ours, C-core's).
async fn both_until(
    ours: &mut Client,
    core: &mut CoreClient,
    calls: i32,
    what: &str,
    accept: impl Fn(&Block) -> bool,
) -> (Block, Block) {
    let deadline = Instant::now() + PATIENCE;
    let our = loop {
        let block = our_block(ours, calls).await;
        if accept(&block) {
            break block;
        }
        assert!(
            Instant::now() < deadline,
            "xds-interop-client: {what}: last block {block:?}"
        );
    };
    let deadline = Instant::now() + PATIENCE;
    let theirs = loop {
        let block = core.block(calls).await;
        if accept(&block) {
            break block;
        }
        assert!(
            Instant::now() < deadline,
            "gRPC C-core: {what}: last block {block:?}"
        );
    };
    (our, theirs)
}

/// traffic_splitting's weighted clusters {a: 20, b: 80}: both clients split 1000 calls within the published 5%
/// (relative) of the weights, hence within 10% of each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_matches_grpc_core() {
    let a = Backend::start_many("diff-split-a", 1, 180);
    let b = Backend::start_many("diff-split-b", 1, 181);
    let config = mesh(
        [Route::to_weighted_clusters([
            WeightedCluster::new("a", 20),
            WeightedCluster::new("b", 80),
        ])],
        [cluster("a", &a), cluster("b", &b)],
    );
    let control_plane = ControlPlane::start(&config).await;
    let bootstrap = control_plane.bootstrap();
    let mut ours = Client::start(&bootstrap, &["--qps=500"]).await;
    // The first use creates the Python environment (pip): off the runtime's workers.
    let mut core = tokio::task::block_in_place(|| CoreClient::start(&bootstrap));
    let weights = [(a[0].hostname.clone(), 0.2), (b[0].hostname.clone(), 0.8)];
    let (our, theirs) = both_until(
        &mut ours,
        &mut core,
        1000,
        "a: 20, b: 80 within 5%",
        |block| {
            block.failures == 0
                && weights
                    .iter()
                    .all(|(peer, weight)| (block.share(peer) - weight).abs() <= weight * 0.05)
        },
    )
    .await;
    for (peer, weight) in &weights {
        let (mine, core_share) = (our.share(peer), theirs.share(peer));
        assert!(
            (mine - core_share).abs() <= weight * 0.1,
            "{peer}: {mine:.3} here, {core_share:.3} in C-core"
        );
    }
}

/// secondary_locality_gets_requests_on_primary_failure, side by side: both clients send everything to the primary
/// locality, both fail over to the secondary when every primary backend stops, and both return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locality_failover_matches_grpc_core() {
    let mut primary = Backend::start_many("diff-primary", 2, 190);
    let secondary = Backend::start_many("diff-secondary", 2, 192);
    let config = mesh(
        [Route::to_cluster("main")],
        [Cluster::new("main")
            .with_locality(locality(ZONE, 0, &primary))
            .with_locality(locality("us-west1-b", 1, &secondary))],
    );
    let control_plane = ControlPlane::start(&config).await;
    let bootstrap = control_plane.bootstrap();
    let mut ours = Client::start(&bootstrap, &["--qps=200"]).await;
    // The first use creates the Python environment (pip): off the runtime's workers.
    let mut core = tokio::task::block_in_place(|| CoreClient::start(&bootstrap));
    let (primaries, secondaries) = (names(&primary), names(&secondary));

    both_until(
        &mut ours,
        &mut core,
        50,
        "all to the primary locality",
        |block| block.goes_only_to(&primaries),
    )
    .await;

    primary.iter_mut().for_each(Backend::stop);
    both_until(
        &mut ours,
        &mut core,
        50,
        "all to the secondary locality",
        |block| block.goes_only_to(&secondaries),
    )
    .await;

    primary.iter_mut().for_each(Backend::restart);
    both_until(
        &mut ours,
        &mut core,
        50,
        "all back to the primary locality",
        |block| block.goes_only_to(&primaries),
    )
    .await;
}
