//! The interop test driver's fixtures (gRPC's `doc/xds-test-descriptions.md`, "Test Driver"): mesh-xds-server
//! in-process as the control plane, `xds-interop-server` processes as backends, the `xds-interop-client` process
//! under test, and the stats-port queries the published driver makes (`GetClientStats`,
//! `GetClientAccumulatedStats`, `Configure`, CSDS), with its waits ("until all RPCs go to these backends") and
//! tolerances.
// Fixtures fail the test that uses them by panicking, as assertions do.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mesh_test_support::ChildGuard;
use mesh_tonic::interop::client::messages::{
    ClientConfigureRequest, ConfigureMetadata, LoadBalancerAccumulatedStatsResponse,
    LoadBalancerStatsRequest, LoadBalancerStatsResponse, RpcType,
};
use mesh_tonic::interop::client::{LoadBalancerStatsClient, XdsUpdateClientConfigureClient};
use mesh_xds_server::XdsServer;
use mesh_xds_server::mesh::{Cluster, Endpoint, Locality, MeshConfig, Route, Service};
use tonic::transport::{Channel, Endpoint as TonicEndpoint};

pub const SERVER_BINARY: &str = env!("CARGO_BIN_EXE_xds-interop-server");
pub const CLIENT_BINARY: &str = env!("CARGO_BIN_EXE_xds-interop-client");

/// The service the client dials: `xds:///interop`.
pub const SERVICE: &str = "interop";
/// The client's node id.
pub const NODE: &str = "interop-client";
/// The client's (and the primary locality's) region and zone.
pub const REGION: &str = "us-central1";
pub const ZONE: &str = "us-central1-a";

/// How long any one expectation may take to come true (the published driver allows minutes for cloud config
/// propagation; here the control plane is in-process).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Waits for a line starting with `prefix` on `lines`, returning the rest of it.
fn wait_for_line(name: &str, lines: &mpsc::Receiver<String>, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return rest.to_owned();
                }
            }
            Err(error) => panic!("{name} did not print {prefix:?}: {error}"),
        }
    }
}

/// Spawns `command` with stdout read line by line on a thread.
fn spawn(name: &str, command: &mut Command) -> (ChildGuard, mpsc::Receiver<String>) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|error| panic!("starting {name}: {error}"));
    let stdout = child.stdout.take().expect("stdout");
    let (lines, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (ChildGuard::new(name, child), receiver)
}

/// An `xds-interop-server` process: stop it and start it again on the same address.
pub struct Backend {
    pub hostname: String,
    pub address: SocketAddr,
    process: Option<ChildGuard>,
}

impl Backend {
    /// Starts a backend named `hostname` on a free port of `ip`.
    pub fn start(ip: [u8; 4], hostname: &str) -> Self {
        let mut backend = Self {
            hostname: hostname.to_owned(),
            address: SocketAddr::from((ip, 0)),
            process: None,
        };
        backend.restart();
        backend
    }

    /// `count` backends `{prefix}-0`, `{prefix}-1`, … on 127.0.0.`first_ip`, `first_ip + 1`, ….
    pub fn start_many(prefix: &str, count: u8, first_ip: u8) -> Vec<Self> {
        (0..count)
            .map(|i| Self::start([127, 0, 0, first_ip + i], &format!("{prefix}-{i}")))
            .collect()
    }

    /// Starts the process (again), on the same port once it has one.
    pub fn restart(&mut self) {
        assert!(self.process.is_none(), "{} is running", self.hostname);
        let (process, lines) = spawn(
            &self.hostname,
            Command::new(SERVER_BINARY)
                .arg(format!("--bind_address={}", self.address.ip()))
                .arg(format!("--port={}", self.address.port()))
                .arg(format!("--hostname={}", self.hostname)),
        );
        let line = wait_for_line(&self.hostname, &lines, "listening test=");
        let address = line.split_whitespace().next().expect("an address");
        self.address = address.parse().expect("a socket address");
        self.process = Some(process);
    }

    /// Kills the process.
    pub fn stop(&mut self) {
        self.process.take();
    }

    /// This backend as an EDS endpoint.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::new(self.address.to_string())
    }
}

/// Hostnames of `backends`.
pub fn names<'a>(backends: impl IntoIterator<Item = &'a Backend>) -> Vec<String> {
    backends.into_iter().map(|b| b.hostname.clone()).collect()
}

/// A locality in `zone` at `priority` holding `backends`.
pub fn locality<'a>(
    zone: &str,
    priority: u32,
    backends: impl IntoIterator<Item = &'a Backend>,
) -> Locality {
    backends.into_iter().fold(
        Locality::new(REGION, zone, format!("{zone}-sub")).with_priority(priority),
        |locality, backend| locality.with_endpoint(backend.endpoint()),
    )
}

/// Cluster `name` in one locality of the client's zone.
pub fn cluster<'a>(name: &str, backends: impl IntoIterator<Item = &'a Backend>) -> Cluster {
    Cluster::new(name).with_locality(locality(ZONE, 0, backends))
}

/// The service with `routes`.
pub fn service(routes: impl IntoIterator<Item = Route>) -> Service {
    routes
        .into_iter()
        .fold(Service::new(SERVICE), Service::with_route)
}

/// A mesh of the service routed by `routes` and `clusters`.
pub fn mesh(
    routes: impl IntoIterator<Item = Route>,
    clusters: impl IntoIterator<Item = Cluster>,
) -> MeshConfig {
    clusters.into_iter().fold(
        MeshConfig::new().with_service(service(routes)),
        MeshConfig::with_cluster,
    )
}

/// The in-process control plane.
pub struct ControlPlane {
    pub server: XdsServer,
}

impl ControlPlane {
    pub async fn start(config: &MeshConfig) -> Self {
        let server = XdsServer::builder()
            .config(config.clone())
            .bind("127.0.0.1:0")
            .await
            .expect("the xDS server starts");
        Self { server }
    }

    /// Serves `config` from now on.
    pub fn set(&self, config: &MeshConfig) {
        self.server.set_config(None, config).expect("a valid mesh");
    }

    /// A bootstrap for a client in [`ZONE`].
    pub fn bootstrap(&self) -> String {
        format!(
            r#"{{"xds_servers":[{{"server_uri":"{}","channel_creds":[{{"type":"insecure"}}],"server_features":["xds_v3"]}}],"node":{{"id":"{NODE}","locality":{{"region":"{REGION}","zone":"{ZONE}"}}}}}}"#,
            self.server.local_addr()
        )
    }
}

/// The `xds-interop-client` process and its stats port.
pub struct Client {
    process: ChildGuard,
    pub stats_address: SocketAddr,
    stats: LoadBalancerStatsClient<Channel>,
    configure: XdsUpdateClientConfigureClient<Channel>,
    pub channel: Channel,
}

impl Client {
    /// Starts the client for `xds:///interop` with `bootstrap` and `args` (plus `--stats_port=0`).
    pub async fn start(bootstrap: &str, args: &[&str]) -> Self {
        let (process, lines) = spawn(
            "xds-interop-client",
            Command::new(CLIENT_BINARY)
                .env_remove("GRPC_XDS_BOOTSTRAP")
                .env("GRPC_XDS_BOOTSTRAP_CONFIG", bootstrap)
                .arg(format!("--server=xds:///{SERVICE}"))
                .arg("--stats_port=0")
                .args(args),
        );
        let line = tokio::task::spawn_blocking(move || {
            wait_for_line("xds-interop-client", &lines, "listening stats=")
        })
        .await
        .unwrap();
        let stats_address: SocketAddr = line.trim().parse().expect("a socket address");
        let channel = TonicEndpoint::from_shared(format!("http://{stats_address}"))
            .unwrap()
            .connect()
            .await
            .expect("the stats port accepts connections");
        Self {
            process,
            stats_address,
            stats: LoadBalancerStatsClient::new(channel.clone()),
            configure: XdsUpdateClientConfigureClient::new(channel.clone()),
            channel,
        }
    }

    /// `GetClientStats` for the next `num_rpcs` RPCs.
    pub async fn stats(&mut self, num_rpcs: i32) -> LoadBalancerStatsResponse {
        self.stats_with_metadata(num_rpcs, &[]).await
    }

    /// `GetClientStats` for the next `num_rpcs` RPCs, with the response metadata named by `keys`.
    pub async fn stats_with_metadata(
        &mut self,
        num_rpcs: i32,
        keys: &[&str],
    ) -> LoadBalancerStatsResponse {
        self.stats
            .get_client_stats(LoadBalancerStatsRequest {
                num_rpcs,
                timeout_sec: 10,
                metadata_keys: keys.iter().map(|key| (*key).to_owned()).collect(),
            })
            .await
            .expect("GetClientStats")
    }

    /// `GetClientAccumulatedStats`.
    pub async fn accumulated(&mut self) -> LoadBalancerAccumulatedStatsResponse {
        self.stats
            .get_client_accumulated_stats()
            .await
            .expect("GetClientAccumulatedStats")
    }

    /// `Configure`: send `types`, with `metadata` (type, key, value), and a deadline of `timeout_sec` (0: the
    /// flag's).
    pub async fn configure(
        &mut self,
        types: &[RpcType],
        metadata: &[(RpcType, &str, &str)],
        timeout_sec: i32,
    ) {
        self.configure
            .configure(ClientConfigureRequest {
                types: types.iter().map(|rpc| *rpc as i32).collect(),
                metadata: metadata
                    .iter()
                    .map(|(rpc, key, value)| ConfigureMetadata {
                        r#type: *rpc as i32,
                        key: (*key).to_owned(),
                        value: (*value).to_owned(),
                    })
                    .collect(),
                timeout_sec,
            })
            .await
            .expect("Configure");
    }

    /// The exit status, once the process has exited.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.process.child_mut().try_wait().ok().flatten()
    }

    /// Whether the process is still running (`--fail_on_failed_rpcs` ends it on a failure).
    pub fn is_running(&mut self) -> bool {
        matches!(self.process.child_mut().try_wait(), Ok(None))
    }

    /// Asks for blocks of `num_rpcs` RPCs until one satisfies `accept`, for up to [`PATIENCE`]; panics with the
    /// last block and `what` otherwise.
    pub async fn until(
        &mut self,
        num_rpcs: i32,
        what: &str,
        accept: impl Fn(&LoadBalancerStatsResponse) -> bool,
    ) -> LoadBalancerStatsResponse {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let stats = self.stats(num_rpcs).await;
            if accept(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {PATIENCE:?}; last block: {stats:?}"
            );
        }
    }

    /// The published `wait_until_all_rpcs_go_to_given_backends`: a block of `num_rpcs` RPCs all answered by exactly
    /// `backends` (each at least once), with no failure unless `allow_failures`.
    pub async fn until_peers(
        &mut self,
        num_rpcs: i32,
        backends: &[String],
        allow_failures: bool,
    ) -> LoadBalancerStatsResponse {
        let want: BTreeSet<&str> = backends.iter().map(String::as_str).collect();
        self.until(
            num_rpcs,
            &format!("all RPCs go to {want:?} (failures allowed: {allow_failures})"),
            |stats| peers(stats) == want && (allow_failures || stats.num_failures == 0),
        )
        .await
    }

    /// The published `compare_expected_instances`, repeated until it holds: per method, exactly these backends.
    pub async fn until_methods(&mut self, num_rpcs: i32, want: &[(RpcType, &[String])]) {
        self.until(
            num_rpcs,
            &format!("RPCs by method go to {want:?}"),
            |stats| {
                want.iter().all(|(rpc, backends)| {
                    let got: BTreeSet<&str> = stats
                        .rpcs_by_method
                        .get(rpc.method())
                        .map(|by_peer| by_peer.rpcs_by_peer.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    got == backends.iter().map(String::as_str).collect()
                })
            },
        )
        .await;
    }

    /// Status counts of `rpc` completed from now until at least `count` have completed.
    pub async fn next_results(&mut self, rpc: RpcType, count: i32) -> BTreeMap<i32, i32> {
        let results = |stats: &LoadBalancerAccumulatedStatsResponse| -> HashMap<i32, i32> {
            stats
                .stats_per_method
                .get(rpc.enum_name())
                .map(|method| method.result.clone())
                .unwrap_or_default()
        };
        let before = results(&self.accumulated().await);
        let deadline = Instant::now() + PATIENCE;
        let mut ticks = tokio::time::interval(Duration::from_millis(50));
        loop {
            ticks.tick().await;
            let after = results(&self.accumulated().await);
            let delta: BTreeMap<i32, i32> = after
                .iter()
                .map(|(code, n)| (*code, n - before.get(code).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect();
            if delta.values().sum::<i32>() >= count {
                return delta;
            }
            assert!(
                Instant::now() < deadline,
                "{count} {rpc:?} RPCs did not complete in {PATIENCE:?}: {delta:?}"
            );
        }
    }

    /// The published fault-injection and timeout check, as shares: among the next `count` completed `rpc`s, each
    /// status in `want` has its share within 10% (relative) of the expected one. Measured again until it holds (the
    /// first blocks may hold RPCs sent under the previous configuration), for up to [`PATIENCE`].
    pub async fn until_results(&mut self, rpc: RpcType, count: i32, want: &[(tonic::Code, f64)]) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.next_results(rpc, count).await;
            let total = f64::from(got.values().sum::<i32>());
            let ok = want.iter().all(|(code, share)| {
                let n = f64::from(got.get(&(*code as i32)).copied().unwrap_or(0));
                (n - share * total).abs() <= share * total * 0.1
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{rpc:?}: statuses {got:?} never matched {want:?} within 10%"
            );
        }
    }

    /// RPCs of `rpc` in flight (started, not completed).
    pub async fn in_flight(&mut self, rpc: RpcType) -> i32 {
        let stats = self.accumulated().await;
        let name = rpc.enum_name();
        let started = stats
            .num_rpcs_started_by_method
            .get(name)
            .copied()
            .unwrap_or(0);
        let succeeded = stats
            .num_rpcs_succeeded_by_method
            .get(name)
            .copied()
            .unwrap_or(0);
        let failed = stats
            .num_rpcs_failed_by_method
            .get(name)
            .copied()
            .unwrap_or(0);
        started - succeeded - failed
    }

    /// Failed RPCs so far, all types.
    pub async fn failures(&mut self) -> i32 {
        self.accumulated()
            .await
            .num_rpcs_failed_by_method
            .values()
            .sum()
    }
}

/// The peers of a block.
pub fn peers(stats: &LoadBalancerStatsResponse) -> BTreeSet<&str> {
    stats.rpcs_by_peer.keys().map(String::as_str).collect()
}
