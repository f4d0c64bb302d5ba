//! Fixtures for the integration tests: greeter replicas on loopback addresses, an in-process xDS server, a mesh
//! pointed at it, and load that records where every call went.
// Fixtures fail the test that uses them by panicking, as assertions do.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

pub mod hpack;
pub mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_tonic::testing::{GreeterBackend, GreeterClient, HelloRequest, replica_of};
use mesh_tonic::{Channel, Mesh, MeshOptions, ReconnectBackoff};
use mesh_tower::metrics::Metrics;
use mesh_xds_server::mesh::{Cluster, Endpoint, Locality, MeshConfig, RetryPolicy, Route, Service};
use mesh_xds_server::{XdsServer, type_url};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The node id of the test client.
pub const NODE: &str = "mesh-tonic-test";

/// How long a test waits for an event before failing.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A replica named `name` on `ip`, on a free port.
pub async fn backend(ip: [u8; 4], name: &str) -> GreeterBackend {
    GreeterBackend::start(SocketAddr::from((ip, 0)), name)
        .await
        .unwrap()
}

/// A locality of `backends` at `priority`.
pub fn locality(region: &str, priority: u32, backends: &[&GreeterBackend]) -> Locality {
    backends.iter().fold(
        Locality::new(region, format!("{region}-a"), "").with_priority(priority),
        |locality, backend| locality.with_endpoint(Endpoint::new(backend.address().to_string())),
    )
}

/// Service `greeter` routing everything to `cluster`, retrying UNAVAILABLE.
pub fn greeter_to(cluster: &str) -> Service {
    Service::new("greeter")
        .with_route(Route::to_cluster(cluster))
        .with_retry(retry())
}

/// Retry UNAVAILABLE up to 4 times with a short backoff.
pub fn retry() -> RetryPolicy {
    RetryPolicy::new(["unavailable"], 4).with_backoff(Duration::from_millis(5), None)
}

/// A one-service mesh: `greeter` to cluster `main` with `localities`.
pub fn single_cluster(localities: Vec<Locality>) -> MeshConfig {
    let cluster = localities
        .into_iter()
        .fold(Cluster::new("main"), Cluster::with_locality);
    MeshConfig::new()
        .with_service(greeter_to("main"))
        .with_cluster(cluster)
}

/// An xDS server on a free port serving `config`.
pub async fn xds_server(config: MeshConfig) -> XdsServer {
    XdsServer::builder()
        .config(config)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

/// Request-path options for tests: quick reconnects, and the default retry budget (Envoy's 20% with a floor of 3
/// concurrent retries; retries of requests that never reached a server do not draw on it).
pub fn options() -> MeshOptions {
    MeshOptions::default().with_reconnect_backoff(ReconnectBackoff::new(
        Duration::from_millis(50),
        Duration::from_millis(200),
    ))
}

/// Retries made and retries refused by the retry budget.
#[derive(Debug, Default)]
pub struct RetryCounts {
    pub retries: AtomicU64,
    pub budget_exhausted: AtomicU64,
}

impl Metrics for RetryCounts {
    fn retry(&self, _cluster: &str) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    fn retry_budget_exhausted(&self, _cluster: &str) {
        self.budget_exhausted.fetch_add(1, Ordering::Relaxed);
    }
}

/// A mesh whose xDS server is `address`.
pub async fn mesh(address: SocketAddr) -> Mesh {
    Mesh::builder()
        .xds_server(address.to_string())
        .node_id(NODE)
        .mesh_options(options())
        .build()
        .await
        .unwrap()
}

/// One `SayHello` with a 5 s deadline: the replica that answered, or the status.
pub async fn call(client: &mut GreeterClient<Channel>) -> Result<String, tonic::Status> {
    let mut request = tonic::Request::new(HelloRequest {
        name: "test".into(),
    });
    request.set_timeout(Duration::from_secs(5));
    let response = client.say_hello(request).await?;
    assert_eq!(response.get_ref().message, "Hello, test!");
    Ok(replica_of(&response).unwrap_or("?").to_owned())
}

/// `calls` calls, counted by replica; panics on a failed call.
pub async fn tally(client: &mut GreeterClient<Channel>, calls: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..calls {
        let replica = call(client).await.unwrap();
        *counts.entry(replica).or_insert(0) += 1;
    }
    counts
}

/// Calls until one is answered by a replica `accept` takes, up to [`PATIENCE`].
pub async fn call_until(client: &mut GreeterClient<Channel>, accept: impl Fn(&str) -> bool) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(replica) = call(client).await
                && accept(&replica)
            {
                return;
            }
        }
    })
    .await
    .expect("traffic did not move in time");
}

/// Waits until the test client ACKed route configuration version `version`.
pub async fn wait_for_routes(server: &XdsServer, version: &str) {
    tokio::time::timeout(
        PATIENCE,
        server.wait_for_clients(|clients| {
            clients
                .iter()
                .any(|c| c.acked_version(type_url::ROUTE_CONFIGURATION) == Some(version))
        }),
    )
    .await
    .expect("the client did not ACK the new routes");
}

/// Steady load from `tasks` concurrent callers, recording every outcome in order.
pub struct Load {
    pub outcomes: Arc<Mutex<Vec<Result<String, String>>>>,
    completed: watch::Receiver<usize>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(channel: &Channel, tasks: usize) -> Self {
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let (count, completed) = watch::channel(0);
        let count = Arc::new(count);
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..tasks)
            .map(|_| {
                let mut client = GreeterClient::new(channel.clone());
                let outcomes = Arc::clone(&outcomes);
                let count = Arc::clone(&count);
                let stop = Arc::clone(&stop);
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let outcome = call(&mut client)
                            .await
                            .map_err(|status| format!("{:?}: {}", status.code(), status.message()));
                        let len = {
                            let mut outcomes = outcomes.lock().unwrap();
                            outcomes.push(outcome);
                            outcomes.len()
                        };
                        count.send_replace(len);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Self {
            outcomes,
            completed,
            stop,
            tasks,
        }
    }

    /// Outcomes so far.
    pub fn len(&self) -> usize {
        self.outcomes.lock().unwrap().len()
    }

    /// Waits until `more` further calls have completed.
    pub async fn wait_for(&self, more: usize) {
        let target = self.len() + more;
        let mut completed = self.completed.clone();
        tokio::time::timeout(PATIENCE, completed.wait_for(|&n| n >= target))
            .await
            .expect("the load stalled")
            .unwrap();
    }

    /// Failed calls among the outcomes from `from` on.
    pub fn failures(&self, from: usize) -> Vec<String> {
        self.outcomes.lock().unwrap()[from..]
            .iter()
            .filter_map(|o| o.as_ref().err().cloned())
            .collect()
    }

    /// Replicas that answered the outcomes from `from` on, counted.
    pub fn replicas(&self, from: usize) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for replica in self.outcomes.lock().unwrap()[from..].iter().flatten() {
            *counts.entry(replica.clone()).or_insert(0) += 1;
        }
        counts
    }

    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}
