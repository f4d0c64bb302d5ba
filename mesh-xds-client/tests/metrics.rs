//! The xDS client's resource counts (gRFC A78 `grpc.xds_client.resources`) against mesh-xds-server over real
//! sockets: every state the cache reaches is reported, and an update that changes no count reports nothing.

// Helpers outside #[test] functions fail loudly too: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use mesh_xds_client::bootstrap::{Bootstrap, ChannelCreds};
use mesh_xds_client::client::{ClientOptions, XdsClient, XdsClientMetrics};
use mesh_xds_client::protocol::{CacheState, ResourceCounts};
use mesh_xds_client::resource::ResourceKind;
use mesh_xds_server::mesh::{Cluster, Endpoint, Locality, MeshConfig, Route, Service};
use mesh_xds_server::{XdsServer, type_url};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);

/// Every resource-count report, in order.
struct Recorder(watch::Sender<Vec<ResourceCounts>>);

impl XdsClientMetrics for Recorder {
    fn resource_counts(&self, counts: &ResourceCounts) {
        self.0.send_modify(|reports| reports.push(counts.clone()));
    }
}

fn mesh(endpoint: &str) -> MeshConfig {
    MeshConfig::new()
        .with_service(Service::new("greeter").with_route(Route::to_cluster("a")))
        .with_cluster(Cluster::new("a").with_locality(
            Locality::new("us-east", "us-east-1a", "").with_endpoint(Endpoint::new(endpoint)),
        ))
}

#[tokio::test]
async fn resource_counts_are_reported_when_they_change_and_only_then() {
    let server = XdsServer::builder()
        .config(mesh("127.0.0.1:8001"))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let bootstrap = Bootstrap::builder()
        .node_id("rust-client")
        .server(server.local_addr().to_string(), ChannelCreds::Insecure)
        .build()
        .unwrap();
    let (tx, mut reports) = watch::channel(Vec::new());
    let client = XdsClient::start_with_options(
        bootstrap,
        ClientOptions::default()
            .with_resource_timeout(Duration::from_millis(300))
            .with_metrics(Arc::new(Recorder(tx))),
    )
    .unwrap();
    let _target = client.watch_target("greeter", "greeter");
    let _missing = client.watch(ResourceKind::Listener, "missing");

    let settled = |counts: &ResourceCounts| {
        counts.get(None, CacheState::Acked, ResourceKind::Listener) == 1
            && counts.get(None, CacheState::DoesNotExist, ResourceKind::Listener) == 1
            && counts.get(None, CacheState::Acked, ResourceKind::RouteConfiguration) == 1
            && counts.get(None, CacheState::Acked, ResourceKind::Cluster) == 1
            && counts.get(None, CacheState::Acked, ResourceKind::ClusterLoadAssignment) == 1
    };
    let history = tokio::time::timeout(
        WAIT,
        reports.wait_for(|history| history.last().is_some_and(settled)),
    )
    .await
    .expect("the counts did not settle")
    .unwrap()
    .clone();
    let last = history.last().unwrap();
    assert_eq!(last.iter().count(), 5, "nothing else counted: {last:?}");
    assert!(
        history.iter().any(|counts| counts.get(
            None,
            CacheState::Requested,
            ResourceKind::Listener
        ) == 2),
        "both listeners were requested before anything arrived: {history:?}"
    );
    assert!(
        history.windows(2).all(|pair| pair[0] != pair[1]),
        "a report repeats the previous one: {history:?}"
    );

    // A new endpoint: the ClusterLoadAssignment changes and is ACKed, but no count changes.
    let version = server.set_config(None, &mesh("127.0.0.1:8002")).unwrap();
    let acked = server.wait_for_clients(|clients| {
        clients.iter().any(|c| {
            c.is_node("rust-client")
                && c.acked_version(type_url::CLUSTER_LOAD_ASSIGNMENT) == Some(version.as_str())
        })
    });
    if tokio::time::timeout(WAIT, acked).await.is_err() {
        panic!("version {version} not ACKed: {:?}", server.clients());
    }
    // A round trip through the worker: it has handled every response before this.
    client.config_dump().await.unwrap();
    assert_eq!(
        reports.borrow().len(),
        history.len(),
        "unchanged counts were reported again"
    );
    server.shutdown().await.unwrap();
}
