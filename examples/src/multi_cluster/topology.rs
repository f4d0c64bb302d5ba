//! The demo's world: greeter replicas in two regions, and the mesh configuration the control plane serves.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mesh_tonic::testing::GreeterBackend;
use mesh_xds_server::mesh::{
    Cluster, Endpoint, Locality, MeshConfig, RetryPolicy, Route, Service, WeightedCluster,
};

use super::DemoError;

/// The client's region (priority 0).
pub(crate) const HOME: &str = "us-east";
/// The other region (priority 1: the failover target).
pub(crate) const AWAY: &str = "eu-west";

/// The stable version's cluster.
const V1: &str = "greeter-v1";
/// The canary's cluster.
const V2: &str = "greeter-v2";

/// One replica: its name (`us-east-2`, `eu-west-v2`), region, version and address.
#[derive(Debug, Clone)]
pub(crate) struct Replica {
    pub(crate) name: String,
    pub(crate) region: &'static str,
    pub(crate) canary: bool,
    pub(crate) address: SocketAddr,
}

/// Every replica, running or not, with its server while it runs.
#[derive(Debug)]
pub(crate) struct Fleet {
    replicas: Vec<(Replica, Option<GreeterBackend>)>,
}

/// Where a region's replicas live: `127.0.1.x` for us-east, `127.0.2.x` for eu-west (x = 1..3 for v1, 11 for v2).
fn ip(region: &str, host: u8) -> [u8; 4] {
    let third = if region == HOME { 1 } else { 2 };
    [127, 0, third, host]
}

impl Fleet {
    /// Starts three v1 replicas and one v2 replica per region, each on a free port.
    pub(crate) async fn start() -> Result<Self, DemoError> {
        let mut replicas = Vec::new();
        for region in [HOME, AWAY] {
            for (host, name, canary) in [
                (1, format!("{region}-1"), false),
                (2, format!("{region}-2"), false),
                (3, format!("{region}-3"), false),
                (11, format!("{region}-v2"), true),
            ] {
                let address = SocketAddr::from((ip(region, host), 0));
                let backend = start_backend(address, &name).await?;
                let replica = Replica {
                    name,
                    region,
                    canary,
                    address: backend.address(),
                };
                replicas.push((replica, Some(backend)));
            }
        }
        Ok(Self { replicas })
    }

    /// The replicas.
    pub(crate) fn replicas(&self) -> impl Iterator<Item = &Replica> {
        self.replicas.iter().map(|(replica, _)| replica)
    }

    /// Gracefully stops every replica of `region` at once; returns how many stopped.
    pub(crate) async fn stop_region(&mut self, region: &str) -> usize {
        let stopping: Vec<GreeterBackend> = self
            .replicas
            .iter_mut()
            .filter(|(replica, _)| replica.region == region)
            .filter_map(|(_, backend)| backend.take())
            .collect();
        let count = stopping.len();
        let handles: Vec<_> = stopping
            .into_iter()
            .map(|backend| tokio::spawn(backend.shutdown()))
            .collect();
        for handle in handles {
            // A replica whose server had failed is stopped all the same.
            let _ = handle.await;
        }
        count
    }

    /// Starts the replicas of `region` again, on their old addresses.
    pub(crate) async fn start_region(&mut self, region: &str) -> Result<(), DemoError> {
        for (replica, backend) in &mut self.replicas {
            if replica.region == region && backend.is_none() {
                *backend = Some(start_backend(replica.address, &replica.name).await?);
            }
        }
        Ok(())
    }

    /// Stops everything.
    pub(crate) async fn shutdown(mut self) {
        for region in [HOME, AWAY] {
            self.stop_region(region).await;
        }
    }
}

async fn start_backend(address: SocketAddr, name: &str) -> Result<GreeterBackend, DemoError> {
    GreeterBackend::start(address, name)
        .await
        .map_err(|source: io::Error| DemoError::Bind { address, source })
}

/// The mesh the control plane serves: service `greeter` splitting `canary_percent` of calls to the v2 replicas,
/// retrying UNAVAILABLE; each version's cluster has the client's region at priority 0 and the other at priority 1.
pub(crate) fn mesh_config(fleet: &Fleet, canary_percent: u32) -> MeshConfig {
    let cluster = |name: &str, canary: bool| {
        [HOME, AWAY].into_iter().enumerate().fold(
            Cluster::new(name),
            |cluster, (priority, region)| {
                let locality = fleet
                    .replicas()
                    .filter(|r| r.region == region && r.canary == canary)
                    .fold(
                        Locality::new(region, format!("{region}-1a"), "")
                            .with_priority(u32::try_from(priority).unwrap_or(u32::MAX)),
                        |locality, replica| {
                            locality.with_endpoint(Endpoint::new(replica.address.to_string()))
                        },
                    );
                cluster.with_locality(locality)
            },
        )
    };
    let canary = canary_percent.min(100);
    MeshConfig::new()
        .with_service(
            Service::new("greeter")
                .with_route(
                    Route::to_weighted_clusters([
                        WeightedCluster::new(V1, 100 - canary),
                        WeightedCluster::new(V2, canary),
                    ])
                    .with_prefix("/helloworld.Greeter/"),
                )
                .with_timeout(Duration::from_secs(2))
                // gRFC A44: a call that failed with UNAVAILABLE (or never reached a server) is tried again, on
                // another endpoint, up to four times.
                .with_retry(
                    RetryPolicy::new(["unavailable"], 4)
                        .with_backoff(Duration::from_millis(10), Some(Duration::from_millis(100))),
                ),
        )
        .with_cluster(cluster(V1, false))
        .with_cluster(cluster(V2, true))
}
