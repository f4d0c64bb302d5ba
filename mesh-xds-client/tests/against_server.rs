//! The xDS client against mesh-xds-server over real sockets: the full LDS -> RDS -> CDS -> EDS cascade into one
//! snapshot, updates, NACK with the last good configuration kept, a server restart with the cache serving meanwhile,
//! fallback to a second server, does-not-exist, federation across two servers, and unsubscription.

// Helpers outside #[test] functions fail loudly too: a panic is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as EnvoyCluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    DiscoveryType, LbPolicy as EnvoyLbPolicy,
};
use envoy_types::pb::envoy::config::listener::v3::Listener as EnvoyListener;
use mesh_core::snapshot::{ClusterChildren, ConfigSnapshot};
use mesh_xds_client::bootstrap::{
    Authority, Bootstrap, ChannelCreds, XdsServer as BootstrapServer,
};
use mesh_xds_client::client::{ClientOptions, TargetWatcher, XdsClient};
use mesh_xds_client::resource::{Resource, ResourceKind};
use mesh_xds_server::mesh::{
    Cluster, Endpoint, Locality, MeshConfig, Route, Service, WeightedCluster,
};
use mesh_xds_server::{Snapshot, XdsServer, type_url};

const WAIT: Duration = Duration::from_secs(10);

fn mesh(endpoints_a: &[&str]) -> MeshConfig {
    let mut a = Locality::new("us-east", "us-east-1a", "");
    for address in endpoints_a {
        a = a.with_endpoint(Endpoint::new(*address));
    }
    MeshConfig::new()
        .with_service(
            Service::new("greeter").with_route(Route::to_weighted_clusters([
                WeightedCluster::new("a", 80),
                WeightedCluster::new("b", 20),
            ])),
        )
        .with_cluster(Cluster::new("a").with_locality(a))
        .with_cluster(
            Cluster::new("b").with_locality(
                Locality::new("eu-west", "eu-west-1a", "")
                    .with_endpoint(Endpoint::new("127.0.0.9:9000")),
            ),
        )
}

async fn serve(mesh: MeshConfig) -> XdsServer {
    XdsServer::builder()
        .config(mesh)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

fn bootstrap(servers: &[SocketAddr]) -> Bootstrap {
    let mut builder = Bootstrap::builder().node_id("rust-client");
    for addr in servers {
        builder = builder.server(addr.to_string(), ChannelCreds::Insecure);
    }
    builder.build().unwrap()
}

fn start(bootstrap: Bootstrap) -> XdsClient {
    XdsClient::start_with_options(
        bootstrap,
        ClientOptions::default().with_resource_timeout(Duration::from_millis(500)),
    )
    .unwrap()
}

async fn next_snapshot(target: &mut TargetWatcher) -> Arc<ConfigSnapshot> {
    match tokio::time::timeout(WAIT, target.changed()).await {
        Ok(Some(Ok(snapshot))) => snapshot,
        other => panic!("expected a complete snapshot, got {other:?}"),
    }
}

fn endpoints_of(snapshot: &ConfigSnapshot, cluster: &str) -> Vec<String> {
    match snapshot.cluster(cluster) {
        Some(Ok(config)) => match &config.children {
            ClusterChildren::Endpoints {
                endpoints: Some(set),
                ..
            } => set
                .endpoints()
                .map(|(_, e)| e.address.to_string())
                .collect(),
            other => panic!("cluster {cluster}: {other:?}"),
        },
        other => panic!("cluster {cluster}: {other:?}"),
    }
}

#[tokio::test]
async fn the_cascade_becomes_one_complete_snapshot_and_updates_republish_it() {
    let server = serve(mesh(&["127.0.0.1:8001", "127.0.0.1:8002"])).await;
    let client = start(bootstrap(&[server.local_addr()]));
    let mut target = client.watch_target("greeter", "greeter");
    let first = next_snapshot(&mut target).await;
    assert_eq!(
        endpoints_of(&first, "a"),
        vec!["127.0.0.1:8001", "127.0.0.1:8002"]
    );
    assert_eq!(endpoints_of(&first, "b"), vec!["127.0.0.9:9000"]);

    // Every type was ACKed at the server's version.
    server
        .wait_for_clients(|clients| {
            clients.iter().any(|c| {
                c.is_node("rust-client")
                    && type_url::ALL
                        .iter()
                        .all(|t| c.acked_version(t) == Some("1"))
            })
        })
        .await;

    server.set_config(None, &mesh(&["127.0.0.1:8003"])).unwrap();
    let second = next_snapshot(&mut target).await;
    assert!(second.version() > first.version());
    assert_eq!(endpoints_of(&second, "a"), vec!["127.0.0.1:8003"]);

    let dump = client.config_dump().await.unwrap();
    let eds = dump
        .resource(ResourceKind::ClusterLoadAssignment, "a")
        .unwrap();
    assert_eq!(eds.status, "ACKED");
    assert!(eds.raw.is_some(), "CSDS needs the resource as received");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_invalid_update_is_nacked_and_the_last_good_config_keeps_serving() {
    let good = mesh(&["127.0.0.1:8001"]);
    let server = serve(good.clone()).await;
    let client = start(bootstrap(&[server.local_addr()]));
    let mut target = client.watch_target("greeter", "greeter");
    let first = next_snapshot(&mut target).await;

    // The same resources, except cluster "b" asks for a ring hash whose minimum exceeds its maximum.
    let mut snapshot = good.to_snapshot("2").unwrap();
    let bad = EnvoyCluster {
        name: "b".into(),
        cluster_discovery_type: Some(
            envoy_types::pb::envoy::config::cluster::v3::cluster::ClusterDiscoveryType::Type(DiscoveryType::Eds as i32),
        ),
        lb_policy: EnvoyLbPolicy::RingHash as i32,
        lb_config: Some(envoy_types::pb::envoy::config::cluster::v3::cluster::LbConfig::RingHashLbConfig(
            envoy_types::pb::envoy::config::cluster::v3::cluster::RingHashLbConfig {
                minimum_ring_size: Some(envoy_types::pb::google::protobuf::UInt64Value { value: 4096 }),
                maximum_ring_size: Some(envoy_types::pb::google::protobuf::UInt64Value { value: 1024 }),
                ..Default::default()
            },
        )),
        eds_cluster_config: Some(envoy_types::pb::envoy::config::cluster::v3::cluster::EdsClusterConfig {
            eds_config: Some(envoy_types::pb::envoy::config::core::v3::ConfigSource {
                config_source_specifier: Some(
                    envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier::Ads(
                        Default::default(),
                    ),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    snapshot.insert(type_url::CLUSTER, "b", envoy_types::util::pack_any(bad));
    snapshot.set_version(type_url::CLUSTER, "2");
    server.set_snapshot(None, snapshot);

    let clients = server
        .wait_for_clients(|clients| {
            clients
                .iter()
                .any(|c| c.is_node("rust-client") && c.last_nack(type_url::CLUSTER).is_some())
        })
        .await;
    let nack = clients
        .iter()
        .find_map(|c| c.last_nack(type_url::CLUSTER))
        .unwrap();
    assert_eq!(
        nack.accepted_version, "1",
        "a NACK carries the last accepted version"
    );
    assert!(nack.message.contains("Cluster \"b\""), "{}", nack.message);
    assert!(nack.message.contains("ring"), "{}", nack.message);

    // gRFC A88: the cached cluster keeps serving; the published configuration is unchanged.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), target.changed())
            .await
            .is_err()
    );
    let current = target.current().unwrap().unwrap();
    assert_eq!(current.version(), first.version());
    let dump = client.config_dump().await.unwrap();
    let b = dump.resource(ResourceKind::Cluster, "b").unwrap();
    assert_eq!(b.status, "NACKED");
    assert!(b.value.is_some() && b.error.as_deref().unwrap_or("").contains("ring"));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_cache_serves_while_the_server_is_down_and_the_client_resubscribes_after() {
    let server = serve(mesh(&["127.0.0.1:8001"])).await;
    let addr = server.local_addr();
    let client = start(bootstrap(&[addr]));
    let mut target = client.watch_target("greeter", "greeter");
    let first = next_snapshot(&mut target).await;
    server.shutdown().await.unwrap();

    // Down: nothing is withdrawn.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), target.changed())
            .await
            .is_err()
    );
    assert_eq!(
        target.current().unwrap().unwrap().version(),
        first.version()
    );

    // Back on the same address with new endpoints: the client reconnects, resends its subscriptions, and the
    // update arrives.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let restarted = XdsServer::builder()
        .config(mesh(&["127.0.0.1:8004"]))
        .serve_on(listener)
        .await
        .unwrap();
    let mut latest = next_snapshot(&mut target).await;
    while endpoints_of(&latest, "a") != vec!["127.0.0.1:8004"] {
        latest = next_snapshot(&mut target).await;
    }
    let clients = restarted
        .wait_for_clients(|clients| {
            clients
                .iter()
                .any(|c| c.is_node("rust-client") && c.acked_version(type_url::LISTENER).is_some())
        })
        .await;
    let listener_status = clients[0].type_status(type_url::LISTENER).unwrap();
    assert!(listener_status.subscribed.contains("greeter"));
    restarted.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_primary_falls_back_to_the_next_server() {
    // A port nothing listens on.
    let dead = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let secondary = serve(mesh(&["127.0.0.1:8005"])).await;
    let client = start(bootstrap(&[dead, secondary.local_addr()]));
    let mut target = client.watch_target("greeter", "greeter");
    let snapshot = next_snapshot(&mut target).await;
    assert_eq!(endpoints_of(&snapshot, "a"), vec!["127.0.0.1:8005"]);
    secondary.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_missing_listener_is_reported_after_the_resource_timeout() {
    let server = serve(mesh(&["127.0.0.1:8001"])).await;
    let client = start(bootstrap(&[server.local_addr()]));
    let mut target = client.watch_target("nobody-serves-this", "nobody-serves-this");
    match tokio::time::timeout(WAIT, target.changed()).await {
        Ok(Some(Err(error))) => assert!(error.to_string().contains("does not exist"), "{error}"),
        other => panic!("expected does-not-exist, got {other:?}"),
    }
    let mut watcher = client.watch(ResourceKind::Listener, "nobody-serves-this");
    let state = tokio::time::timeout(WAIT, watcher.wait_for(|s| s.does_not_exist))
        .await
        .unwrap()
        .unwrap();
    assert!(state.resource.is_none());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn xdstp_names_go_to_their_authoritys_server() {
    let default_server = serve(mesh(&["127.0.0.1:8001"])).await;
    let federated_name = "xdstp://other.example/envoy.config.listener.v3.Listener/greeter";
    let federated = XdsServer::builder()
        .snapshot(
            Snapshot::builder()
                .version("7")
                .listener(EnvoyListener {
                    name: federated_name.into(),
                    ..mesh(&["127.0.0.1:8001"]).translate().unwrap().listeners[0].clone()
                })
                .build(),
        )
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut bootstrap = bootstrap(&[default_server.local_addr()]);
    bootstrap.authorities.insert(
        "other.example".into(),
        Authority::new().with_server(BootstrapServer::new(
            federated.local_addr().to_string(),
            ChannelCreds::Insecure,
        )),
    );
    let client = start(bootstrap);
    let mut watcher = client.watch(ResourceKind::Listener, federated_name);
    let state = tokio::time::timeout(WAIT, watcher.wait_for(|s| s.resource.is_some()))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(state.resource, Some(Resource::Listener(ref l)) if &*l.name == federated_name)
    );
    // Only the authority's server was asked for it.
    let asked = federated.clients();
    assert!(asked.iter().any(|c| {
        c.type_status(type_url::LISTENER)
            .is_some_and(|t| t.subscribed.contains(federated_name))
    }));
    assert!(default_server.clients().iter().all(|c| {
        c.type_status(type_url::LISTENER)
            .is_none_or(|t| !t.subscribed.contains(federated_name))
    }));
    default_server.shutdown().await.unwrap();
    federated.shutdown().await.unwrap();
}

#[tokio::test]
async fn dropping_the_last_watcher_unsubscribes() {
    let server = serve(mesh(&["127.0.0.1:8001"])).await;
    let client = start(bootstrap(&[server.local_addr()]));
    let mut first = client.watch(ResourceKind::Cluster, "a");
    let second = client.watch(ResourceKind::Cluster, "a");
    first.wait_for(|s| s.resource.is_some()).await.unwrap();
    let subscribed = |clients: &[mesh_xds_server::ClientInfo]| {
        clients.iter().any(|c| {
            c.type_status(type_url::CLUSTER)
                .is_some_and(|t| t.subscribed.contains("a"))
        })
    };
    assert!(subscribed(&server.clients()));
    drop(first);
    // One watcher remains: still subscribed.
    assert!(second.current().resource.is_some());
    assert!(subscribed(&server.clients()));
    drop(second);
    server
        .wait_for_clients(|clients| !subscribed(clients))
        .await;
    server.shutdown().await.unwrap();
}
