//! The multi-cluster demo: a real mesh on loopback, told as a story in four steps and checked.
//!
//! Everything runs in one process, over real sockets: mesh-xds-server as the control plane, eight tonic greeter
//! replicas (`us-east-1..3` and `us-east-v2` on `127.0.1.x`, `eu-west-1..3` and `eu-west-v2` on `127.0.2.x`), and a
//! client in `us-east` sending steady traffic through `xds:///greeter` with [`mesh_tonic`]. Each step changes the
//! world, measures the traffic (a live line per tick: calls, errors, share per region and for v2, p50 and p99), and
//! checks what a user would expect:
//!
//! 1. locality-aware balancing: all traffic stays in `us-east` (priority 0), spread over its replicas;
//! 2. canary: the route sends 10%, then 50% of calls to the `v2` replicas;
//! 3. cluster failure: every `us-east` replica stops; traffic fails over to `eu-west` with no failed call, then
//!    returns when `us-east` comes back;
//! 4. control-plane restart: traffic is unaffected while the control plane is down; a new one starts on the same
//!    port and the next update (canary back to 0%) applies.
//!
//! The client's mesh serves its admin endpoint on 127.0.0.1 with the Prometheus page (`GET /metrics`); with
//! [`DemoOptions::with_telemetry_from_env`] (the example binary sets it) it also exports metrics and traces over
//! OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The demo says where they go at the start, and what the page
//! counted at the end.
//!
//! [`run_demo`] returns a [`DemoReport`] whose [`passed`](DemoReport::passed) says whether every check held; the
//! `multi_cluster` example prints it and exits non-zero otherwise, and `tests/multi_cluster.rs` runs the same
//! checks with shorter phases.

mod error;
mod observe;
mod report;
mod stage;
mod topology;
mod traffic;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::locality::Locality;
use mesh_tonic::testing::{GreeterClient, HelloRequest, replica_of};
use mesh_tonic::{Channel, Mesh, MeshOptions, ReconnectBackoff};
use mesh_tower::metrics::Metrics;
use mesh_xds_server::{XdsServer, type_url};
use tokio::time::Instant;

pub use error::DemoError;
pub use report::{Check, DemoReport, PhaseReport};
pub use traffic::{Window, percent};

use stage::Demo;
use topology::{AWAY, Fleet, HOME, mesh_config};
use traffic::{RetryCounter, Traffic};

/// The client's node id.
const NODE_ID: &str = "demo-client-us-east";

/// How long the demo waits for an event (an ACK, a reconnect) before giving up.
const PATIENCE: Duration = Duration::from_secs(20);

/// How the demo runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DemoOptions {
    /// How long each phase is measured.
    pub phase: Duration,
    /// How often a live line is printed (a phase is at least two ticks).
    pub tick: Duration,
    /// Calls per second, all callers together.
    pub qps: u32,
    /// Concurrent callers.
    pub concurrency: usize,
    /// Whether the client's mesh reads the OpenTelemetry variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, ...) to
    /// export metrics and traces; off by default, so that tests leave the environment alone.
    pub telemetry_from_env: bool,
}

impl Default for DemoOptions {
    /// Four-second phases, a live line per second, 300 calls per second from 8 callers.
    fn default() -> Self {
        Self {
            phase: Duration::from_secs(4),
            tick: Duration::from_secs(1),
            qps: 300,
            concurrency: 8,
            telemetry_from_env: false,
        }
    }
}

impl DemoOptions {
    /// Sets the length of each phase.
    #[must_use]
    pub fn with_phase(mut self, phase: Duration) -> Self {
        self.phase = phase;
        self
    }

    /// Sets the live line interval.
    #[must_use]
    pub fn with_tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    /// Reads the OpenTelemetry variables for the client's telemetry (see [`DemoOptions::telemetry_from_env`]).
    #[must_use]
    pub fn with_telemetry_from_env(mut self) -> Self {
        self.telemetry_from_env = true;
        self
    }

    /// Sets the traffic.
    #[must_use]
    pub fn with_traffic(mut self, qps: u32, concurrency: usize) -> Self {
        self.qps = qps;
        self.concurrency = concurrency;
        self
    }
}

/// Runs the demo, writing its story to `out`; see the [module docs](self).
///
/// # Errors
/// [`DemoError`] when the demo cannot run at all; failed checks are in the report.
pub async fn run_demo(
    options: &DemoOptions,
    out: &mut (dyn Write + Send),
) -> Result<DemoReport, DemoError> {
    let started = Instant::now();
    let mut fleet = Fleet::start().await?;
    let mut server = XdsServer::builder()
        .config(mesh_config(&fleet, 0))
        .bind("127.0.0.1:0")
        .await?;
    let xds_address = server.local_addr();
    let retries = Arc::new(RetryCounter::default());
    writeln!(
        out,
        "Control plane (mesh-xds-server) on {xds_address}; replicas:"
    )?;
    for region in [HOME, AWAY] {
        let names: Vec<String> = fleet
            .replicas()
            .filter(|r| r.region == region)
            .map(|r| format!("{} {}", r.name, r.address))
            .collect();
        writeln!(out, "  {region:<8} {}", names.join(", "))?;
    }

    let mut builder = Mesh::builder();
    if options.telemetry_from_env {
        builder = builder.telemetry_from_env();
    }
    let mesh = builder
        // Metrics for Prometheus on the admin endpoint (127.0.0.1, a free port).
        .prometheus()
        .admin_port(0)
        .xds_server(xds_address.to_string())
        .node_id(NODE_ID)
        .locality(Locality::new(HOME, "us-east-1a", ""))
        // Reconnect to a stopped replica every 100 ms to 0.5 s (gRPC's default starts at 1 s and grows to 2 min),
        // so that the demo's short phases see a returning region at once.
        .mesh_options(
            MeshOptions::default()
                .with_reconnect_backoff(ReconnectBackoff::new(
                    Duration::from_millis(100),
                    Duration::from_millis(500),
                ))
                .with_metrics(Arc::clone(&retries) as Arc<dyn Metrics>),
        )
        .build()
        .await?;
    let channel = mesh.channel("xds:///greeter")?;
    let first = Instant::now();
    let reply = GreeterClient::new(channel.clone())
        .say_hello(HelloRequest {
            name: "demo".into(),
        })
        .await
        .map_err(DemoError::FirstCall)?;
    writeln!(
        out,
        "Client in {HOME} (node {NODE_ID}) dials xds:///greeter; the first call waited for the configuration and \
         was answered by {} after {:.0?}.",
        replica_of(&reply).unwrap_or("?"),
        first.elapsed()
    )?;
    observe::announce(&mesh, options.telemetry_from_env, out)?;
    writeln!(
        out,
        "Traffic: {} calls/s from {} callers. Each line below covers {:.1?}.",
        options.qps, options.concurrency, options.tick
    )?;

    let traffic = Traffic::start(&channel, retries, options.qps, options.concurrency);
    let mut demo = Demo {
        out,
        options,
        traffic: &traffic,
        report: DemoReport::default(),
    };

    // Step 1.
    demo.step("1", "locality-aware balancing")?;
    let phase = demo
        .phase(
            "1",
            "local",
            "The control plane gives the client's region (us-east) priority 0 and eu-west priority 1: traffic \
             stays local, round robin over the three us-east replicas.",
        )
        .await?;
    demo.finish(
        phase,
        vec![
            report::no_failures(),
            report::all_in(HOME, |r| r.starts_with(HOME)),
            report::spread_over(&[
                &format!("{HOME}-1"),
                &format!("{HOME}-2"),
                &format!("{HOME}-3"),
            ]),
        ],
    )?;

    // Step 2.
    demo.step("2", "canary release")?;
    for (name, percent, low, high) in [("10%", 10, 5.0, 15.0), ("50%", 50, 40.0, 60.0)] {
        let applied = channel.config_version();
        let version = server.set_config(None, &mesh_config(&fleet, percent))?;
        wait_for_routes(&server, &version, &channel, applied).await?;
        demo.traffic.restart();
        let phase = demo
            .phase(
                "2",
                &format!("canary {name}"),
                &format!(
                    "The route now sends {percent}% of calls to greeter-v2 (weighted clusters, gRFC A28); the \
                     update is pushed and applied without a restart."
                ),
            )
            .await?;
        demo.finish(
            phase,
            vec![
                report::no_failures(),
                report::share_of("v2", |r| r.ends_with("-v2"), low, high),
                report::all_in(HOME, |r| r.starts_with(HOME)),
            ],
        )?;
    }

    // Step 3.
    demo.step("3", "cluster failure and recovery")?;
    demo.traffic.take();
    let (stopped, phase) = {
        let phase_start = demo.begin_phase(
            "3",
            "us-east down",
            "Every us-east replica stops now. Calls caught by a closing connection or a refused connect are \
             retried (retry_on: unavailable); the dead endpoints become unreachable, so priority 0 has nothing \
             usable and priority 1 (eu-west) takes all traffic (gRFC A27/A56).",
        )?;
        let stopping = Instant::now();
        let count = fleet.stop_region(HOME).await;
        let stopped = format!(
            "    ({count} us-east replicas shut down gracefully in {:.0?})",
            stopping.elapsed()
        );
        (stopped, demo.run_phase(phase_start).await?)
    };
    writeln!(demo.out, "{stopped}")?;
    demo.finish(
        phase,
        vec![
            report::no_failures(),
            report::all_in_second_half(AWAY, |r| r.starts_with(AWAY)),
            report::share_of("v2", |r| r.ends_with("-v2"), 40.0, 60.0),
        ],
    )?;
    demo.traffic.take();
    let phase_start = demo.begin_phase(
        "3",
        "us-east back",
        "The us-east replicas start again on their addresses. Reconnects succeed, priority 0 is usable again, \
         and traffic returns to us-east.",
    )?;
    fleet.start_region(HOME).await?;
    let phase = demo.run_phase(phase_start).await?;
    demo.finish(
        phase,
        vec![
            report::no_failures(),
            report::all_in_second_half(HOME, |r| r.starts_with(HOME)),
        ],
    )?;

    // Step 4.
    demo.step("4", "control-plane restart")?;
    server.shutdown().await?;
    demo.traffic.take();
    let down = Instant::now();
    let phase = demo
        .phase(
            "4",
            "xDS down",
            "The control plane is shut down. The client keeps serving from its cached configuration (gRFC A57, \
             A88) and retries the ADS stream with backoff; traffic does not notice.",
        )
        .await?;
    demo.finish(
        phase,
        vec![
            report::no_failures(),
            report::all_in(HOME, |r| r.starts_with(HOME)),
            report::share_of("v2", |r| r.ends_with("-v2"), 40.0, 60.0),
        ],
    )?;
    server = XdsServer::builder()
        .config(mesh_config(&fleet, 50))
        .bind(xds_address)
        .await?;
    tokio::time::timeout(
        PATIENCE,
        server.wait_for_clients(|clients| {
            clients
                .iter()
                .any(|c| c.acked_version(type_url::ROUTE_CONFIGURATION).is_some())
        }),
    )
    .await
    .map_err(|_| DemoError::Timeout("the client to reconnect to the new control plane"))?;
    writeln!(
        demo.out,
        "    (a new control plane listens on {xds_address}; the client reconnected {:.1?} after the old one \
         stopped)",
        down.elapsed()
    )?;
    let applied = channel.config_version();
    let version = server.set_config(None, &mesh_config(&fleet, 0))?;
    wait_for_routes(&server, &version, &channel, applied).await?;
    demo.traffic.restart();
    let phase = demo
        .phase(
            "4",
            "update after",
            "An update sent after the restart (canary back to 0%) is received and applied: no call goes to v2.",
        )
        .await?;
    demo.finish(
        phase,
        vec![
            report::no_failures(),
            report::share_of("v2", |r| r.ends_with("-v2"), 0.0, 0.0),
            report::all_in(HOME, |r| r.starts_with(HOME)),
        ],
    )?;

    let mut report = demo.report;
    report.elapsed = started.elapsed();
    report::summary(&report, out)?;
    traffic.stop().await;
    observe::summarize(&mesh, out).await?;
    drop(channel);
    server.shutdown().await?;
    fleet.shutdown().await;
    Ok(report)
}

/// Waits until the client ACKed route configuration `version` and `channel` applied a configuration newer than
/// `applied` (the ACK is sent once the update is valid, before the channel has built its new snapshot).
async fn wait_for_routes(
    server: &XdsServer,
    version: &str,
    channel: &Channel,
    applied: Option<u64>,
) -> Result<(), DemoError> {
    let wait = async {
        server
            .wait_for_clients(|clients| {
                clients
                    .iter()
                    .any(|c| c.acked_version(type_url::ROUTE_CONFIGURATION) == Some(version))
            })
            .await;
        while channel.config_version() <= applied {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .map_err(|_| DemoError::Timeout("the client to apply the new routes"))
}
