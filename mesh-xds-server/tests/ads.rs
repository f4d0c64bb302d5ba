//! The ADS server over real sockets: subscriptions, ACK/NACK, pushes, nodes, concurrency, shutdown.

// Test helpers outside #[test] functions may fail loudly too: a panic is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as EnvoyCluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::util::pack_any;
use mesh_xds_server::mesh::{Cluster, Endpoint, LbPolicy, Locality};
use mesh_xds_server::{ClientInfo, Snapshot, XdsServer, type_url};
use support::{AdsClient, cluster_names, sample_mesh, unpack, within};

const LDS: &str = type_url::LISTENER;
const RDS: &str = type_url::ROUTE_CONFIGURATION;
const CDS: &str = type_url::CLUSTER;
const EDS: &str = type_url::CLUSTER_LOAD_ASSIGNMENT;

async fn start(mesh: mesh_xds_server::mesh::MeshConfig) -> XdsServer {
    XdsServer::builder()
        .config(mesh)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

fn node<'a>(clients: &'a [ClientInfo], node_id: &str) -> Option<&'a ClientInfo> {
    clients.iter().find(|client| client.is_node(node_id))
}

async fn wait_acked(server: &XdsServer, node_id: &str, type_url: &str, version: &str) {
    within(
        "an ACK",
        server.wait_for_clients(|clients| {
            node(clients, node_id).and_then(|c| c.acked_version(type_url)) == Some(version)
        }),
    )
    .await;
}

#[tokio::test]
async fn cascade_lds_rds_cds_eds_by_name_receives_exactly_the_translated_resources() {
    let mesh = sample_mesh();
    let expected = mesh.translate().unwrap();
    let server = start(mesh).await;
    let mut client = AdsClient::connect(server.local_addr(), "cascade").await;

    client.subscribe(LDS, &["greeter"]).await;
    let lds = client.recv_type(LDS).await;
    assert_eq!(lds.version_info, "1");
    assert_eq!(lds.resources, vec![pack_any(expected.listeners[0].clone())]);
    client.ack(&lds, &["greeter"]).await;
    let listener: Listener = unpack(&lds.resources[0]);
    let hcm: HttpConnectionManager = unpack(
        listener
            .api_listener
            .unwrap()
            .api_listener
            .as_ref()
            .unwrap(),
    );
    let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier else {
        panic!("not RDS")
    };

    client.subscribe(RDS, &[&rds.route_config_name]).await;
    let rds_response = client.recv_type(RDS).await;
    assert_eq!(
        rds_response.resources,
        vec![pack_any(expected.route_configurations[0].clone())]
    );
    client.ack(&rds_response, &[&rds.route_config_name]).await;
    let routes: RouteConfiguration = unpack(&rds_response.resources[0]);
    let mut clusters: Vec<String> = Vec::new();
    for route in &routes.virtual_hosts[0].routes {
        let Some(Action::Route(action)) = &route.action else {
            panic!("no route action")
        };
        match action.cluster_specifier.as_ref().unwrap() {
            ClusterSpecifier::Cluster(name) => clusters.push(name.clone()),
            ClusterSpecifier::WeightedClusters(split) => {
                clusters.extend(split.clusters.iter().map(|c| c.name.clone()));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    clusters.sort();
    clusters.dedup();
    assert_eq!(clusters, ["canary", "main"]);
    let cluster_refs: Vec<&str> = clusters.iter().map(String::as_str).collect();

    client.subscribe(CDS, &cluster_refs).await;
    let cds = client.recv_type(CDS).await;
    let mut expected_clusters: Vec<EnvoyCluster> = expected.clusters.clone();
    expected_clusters.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        cds.resources,
        expected_clusters
            .into_iter()
            .map(pack_any)
            .collect::<Vec<_>>()
    );
    client.ack(&cds, &cluster_refs).await;
    let eds_names: Vec<String> = cds
        .resources
        .iter()
        .map(|any| {
            let cluster: EnvoyCluster = unpack(any);
            let service_name = cluster.eds_cluster_config.unwrap().service_name;
            if service_name.is_empty() {
                cluster.name
            } else {
                service_name
            }
        })
        .collect();
    let eds_refs: Vec<&str> = eds_names.iter().map(String::as_str).collect();

    client.subscribe(EDS, &eds_refs).await;
    let eds = client.recv_type(EDS).await;
    let mut expected_assignments: Vec<ClusterLoadAssignment> =
        expected.cluster_load_assignments.clone();
    expected_assignments.sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
    assert_eq!(
        eds.resources,
        expected_assignments
            .into_iter()
            .map(pack_any)
            .collect::<Vec<_>>()
    );
    client.ack(&eds, &eds_refs).await;

    wait_acked(&server, "cascade", EDS, "1").await;
    let clients = server.clients();
    let info = node(&clients, "cascade").unwrap();
    for t in type_url::ALL {
        let status = info.type_status(t).unwrap();
        assert_eq!(status.acked_version.as_deref(), Some("1"), "{t}");
        assert_eq!(status.ack_count, 1, "{t}");
        assert!(status.last_nack.is_none());
    }
    assert_eq!(info.type_status(CDS).unwrap().subscribed.len(), 2);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn nack_is_recorded_with_its_error_and_the_same_version_is_not_resent() {
    let server = start(sample_mesh()).await;
    let mut client = AdsClient::connect(server.local_addr(), "nacker").await;
    client.subscribe(LDS, &["greeter"]).await;
    let lds = client.recv_type(LDS).await;
    client
        .nack(
            &lds,
            &["greeter"],
            "",
            "Listener greeter: http_filters: router must be last",
        )
        .await;
    let clients = within(
        "the NACK",
        server.wait_for_clients(|clients| {
            node(clients, "nacker")
                .and_then(|c| c.last_nack(LDS))
                .is_some()
        }),
    )
    .await;
    let status = node(&clients, "nacker")
        .unwrap()
        .type_status(LDS)
        .unwrap()
        .clone();
    let nack = status.last_nack.unwrap();
    assert_eq!(
        nack.message,
        "Listener greeter: http_filters: router must be last"
    );
    assert_eq!(nack.code, 3);
    assert_eq!(nack.rejected_version, "1");
    assert_eq!(nack.nonce, lds.nonce);
    assert_eq!(status.nack_count, 1);
    assert_eq!(status.acked_version, None);
    // The stream is ordered: had the server resent the Listener after the NACK, it would arrive before the answer to
    // this later request.
    client.subscribe(CDS, &["main"]).await;
    let next = client.recv().await;
    assert_eq!(next.type_url, CDS, "the NACKed version must not be resent");
    // A fixed config is sent.
    let mut fixed = sample_mesh();
    fixed.services[0].timeout = Some(std::time::Duration::from_secs(3));
    let version = server.set_config(None, &fixed).unwrap();
    let pushed = client.recv_type(LDS).await;
    assert_eq!(pushed.version_info, version);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn snapshot_update_pushes_only_to_clients_whose_resources_changed() {
    let server = start(sample_mesh()).await;
    let mut watches_main = AdsClient::connect(server.local_addr(), "a").await;
    let mut watches_canary = AdsClient::connect(server.local_addr(), "b").await;
    watches_main.subscribe(CDS, &["main"]).await;
    let first = watches_main.recv_type(CDS).await;
    watches_main.ack(&first, &["main"]).await;
    watches_canary.subscribe(CDS, &["canary"]).await;
    let canary = watches_canary.recv_type(CDS).await;
    watches_canary.ack(&canary, &["canary"]).await;
    wait_acked(&server, "b", CDS, "1").await;

    let mut changed = sample_mesh();
    changed.clusters[0] = changed.clusters[0]
        .clone()
        .with_lb_policy(LbPolicy::RingHash);
    let version = server.set_config(None, &changed).unwrap();
    assert_eq!(version, "2");
    let pushed = watches_main.recv_type(CDS).await;
    assert_eq!(pushed.version_info, "2");
    assert_eq!(cluster_names(&pushed), ["main"]);
    watches_main.ack(&pushed, &["main"]).await;
    wait_acked(&server, "a", CDS, "2").await;

    // `b`'s cluster did not change: its next response is the answer to a new subscription, not a CDS push.
    watches_canary.subscribe(EDS, &["canary"]).await;
    let next = watches_canary.recv().await;
    assert_eq!(next.type_url, EDS);
    assert_eq!(next.version_info, "2");
    let clients = server.clients();
    assert_eq!(
        node(&clients, "b")
            .unwrap()
            .type_status(CDS)
            .unwrap()
            .sent_version
            .as_deref(),
        Some("1")
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn wildcard_cds_receives_every_cluster_and_later_additions() {
    let server = start(sample_mesh()).await;
    let mut client = AdsClient::connect(server.local_addr(), "envoy-like").await;
    client.subscribe(CDS, &[]).await;
    let all = client.recv_type(CDS).await;
    assert_eq!(cluster_names(&all), ["canary", "main"]);
    client.ack(&all, &[]).await;
    let grown =
        sample_mesh().with_cluster(Cluster::new("extra").with_locality(
            Locality::new("", "", "").with_endpoint(Endpoint::new("127.0.0.1:50099")),
        ));
    server.set_config(None, &grown).unwrap();
    let pushed = client.recv_type(CDS).await;
    assert_eq!(cluster_names(&pushed), ["canary", "extra", "main"]);
    client.ack(&pushed, &[]).await;
    wait_acked(&server, "envoy-like", CDS, "2").await;
    assert!(
        node(&server.clients(), "envoy-like")
            .unwrap()
            .type_status(CDS)
            .unwrap()
            .wildcard
    );
    // Removing a cluster is announced by its absence (SotW).
    server.set_config(None, &sample_mesh()).unwrap();
    assert_eq!(
        cluster_names(&client.recv_type(CDS).await),
        ["canary", "main"]
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn clients_with_different_node_ids_get_their_own_snapshots() {
    let blue_mesh = sample_mesh().with_cluster(Cluster::new("blue-only"));
    let server = XdsServer::builder()
        .config(sample_mesh())
        .node_snapshot("blue", blue_mesh.to_snapshot("blue-1").unwrap())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut red = AdsClient::connect(server.local_addr(), "red").await;
    let mut blue = AdsClient::connect(server.local_addr(), "blue").await;
    red.subscribe(CDS, &[]).await;
    blue.subscribe(CDS, &[]).await;
    let red_clusters = red.recv_type(CDS).await;
    let blue_clusters = blue.recv_type(CDS).await;
    assert_eq!(
        (
            red_clusters.version_info.as_str(),
            cluster_names(&red_clusters)
        ),
        ("1", vec!["canary".to_owned(), "main".to_owned()])
    );
    assert_eq!(blue_clusters.version_info, "blue-1");
    assert_eq!(
        cluster_names(&blue_clusters),
        ["blue-only", "canary", "main"]
    );
    red.ack(&red_clusters, &[]).await;
    blue.ack(&blue_clusters, &[]).await;

    let blue_two = sample_mesh().with_cluster(Cluster::new("blue-two"));
    server.set_snapshot(Some("blue"), blue_two.to_snapshot("blue-2").unwrap());
    let pushed = blue.recv_type(CDS).await;
    assert_eq!(pushed.version_info, "blue-2");
    assert_eq!(cluster_names(&pushed), ["blue-two", "canary", "main"]);
    red.subscribe(EDS, &["main"]).await;
    assert_eq!(
        red.recv().await.type_url,
        EDS,
        "red's snapshot did not change"
    );

    // A node that loses its own snapshot falls back to the default.
    assert!(server.cache().clear_snapshot("blue"));
    let fallback = blue.recv_type(CDS).await;
    assert_eq!(fallback.version_info, "1");
    assert_eq!(cluster_names(&fallback), ["canary", "main"]);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn stale_nonce_is_ignored_and_the_latest_nonce_is_served() {
    let server = start(sample_mesh()).await;
    let mut client = AdsClient::connect(server.local_addr(), "stale").await;
    client.subscribe(CDS, &["main"]).await;
    let first = client.recv_type(CDS).await;
    let mut changed = sample_mesh();
    changed.clusters[0].circuit_breakers = None;
    changed.clusters[0] = changed.clusters[0].clone().with_max_requests(7);
    server.set_config(None, &changed).unwrap();
    let second = client.recv_type(CDS).await;
    // An answer to the first response, sent after the second: stale, so its new names are ignored.
    client
        .request(CDS, &["main", "canary"], "1", &first.nonce)
        .await;
    let clients = within(
        "the stale request",
        server.wait_for_clients(|clients| {
            node(clients, "stale")
                .and_then(|c| c.type_status(CDS))
                .is_some_and(|s| s.stale_requests == 1)
        }),
    )
    .await;
    assert_eq!(
        node(&clients, "stale")
            .unwrap()
            .type_status(CDS)
            .unwrap()
            .subscribed
            .len(),
        1
    );
    client
        .request(
            CDS,
            &["main", "canary"],
            &second.version_info,
            &second.nonce,
        )
        .await;
    let both = client.recv_type(CDS).await;
    assert_eq!(cluster_names(&both), ["canary", "main"]);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn reconnecting_client_gets_its_resources_again() {
    let server = start(sample_mesh()).await;
    let mut client = AdsClient::connect(server.local_addr(), "again").await;
    client.subscribe(LDS, &["greeter"]).await;
    let first = client.recv_type(LDS).await;
    client.ack(&first, &["greeter"]).await;
    drop(client);
    within(
        "the stream to go",
        server.wait_for_clients(|clients| clients.is_empty()),
    )
    .await;
    // gRFC A27 / xDS: a new stream resends the last accepted version with an empty nonce.
    let mut client = AdsClient::connect(server.local_addr(), "again").await;
    client.request(LDS, &["greeter"], "1", "").await;
    let again = client.recv_type(LDS).await;
    assert_eq!(again.resources, first.resources);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_names_get_no_response_until_they_exist() {
    let server = start(sample_mesh()).await;
    let mut client = AdsClient::connect(server.local_addr(), "early").await;
    client.subscribe(CDS, &["later"]).await;
    client.subscribe(LDS, &["greeter"]).await;
    assert_eq!(
        client.recv().await.type_url,
        LDS,
        "no response for a cluster that does not exist"
    );
    server
        .set_config(None, &sample_mesh().with_cluster(Cluster::new("later")))
        .unwrap();
    let cds = client.recv_type(CDS).await;
    assert_eq!(cluster_names(&cds), ["later"]);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn hand_built_snapshots_of_any_type_are_served() {
    let snapshot = Snapshot::builder()
        .version("v9")
        .resource(
            "type.googleapis.com/example.Thing",
            "thing",
            pack_any(Listener {
                name: "x".into(),
                ..Default::default()
            }),
        )
        .build();
    let server = XdsServer::builder()
        .snapshot(snapshot)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut client = AdsClient::connect(server.local_addr(), "any").await;
    client
        .subscribe("type.googleapis.com/example.Thing", &["thing"])
        .await;
    let response = client.recv_type("type.googleapis.com/example.Thing").await;
    assert_eq!(response.version_info, "v9");
    assert_eq!(response.resources.len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn delta_ads_is_unimplemented() {
    let server = start(sample_mesh()).await;
    let client = AdsClient::connect(server.local_addr(), "delta").await;
    let mut grpc = client.grpc_client();
    let status = within(
        "the delta call",
        grpc.delta_aggregated_resources(tokio_stream::empty()),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn request_without_type_url_ends_the_stream_with_invalid_argument() {
    let server = start(sample_mesh()).await;
    let mut client = AdsClient::connect(server.local_addr(), "typeless").await;
    client.send(DiscoveryRequest::default()).await;
    let status = client.recv_error().await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("type_url"), "{status}");
    within(
        "the stream to go",
        server.wait_for_clients(|clients| clients.is_empty()),
    )
    .await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_ends_streams_with_unavailable() {
    let server = start(sample_mesh()).await;
    let mut client = AdsClient::connect(server.local_addr(), "bye").await;
    client.subscribe(LDS, &["greeter"]).await;
    client.recv_type(LDS).await;
    within("shutdown", server.shutdown()).await.unwrap();
    let status = client.recv_error().await;
    assert_eq!(status.code(), tonic::Code::Unavailable);
}

#[tokio::test]
async fn many_concurrent_clients_each_get_their_resources_and_pushes() {
    const CLIENTS: usize = 40;
    let server = start(sample_mesh()).await;
    let address = server.local_addr();
    let mut tasks = tokio::task::JoinSet::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(CLIENTS);
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    for index in 0..CLIENTS {
        let ready = ready_tx.clone();
        let mut go = go_rx.clone();
        tasks.spawn(async move {
            let mut client = AdsClient::connect(address, &format!("client-{index}")).await;
            client.subscribe(LDS, &["greeter"]).await;
            let lds = client.recv_type(LDS).await;
            client.ack(&lds, &["greeter"]).await;
            client.subscribe(CDS, &["main", "canary"]).await;
            let cds = client.recv_type(CDS).await;
            client.ack(&cds, &["main", "canary"]).await;
            ready.send(()).await.unwrap();
            go.wait_for(|go| *go).await.unwrap();
            let pushed = client.recv_type(CDS).await;
            client.ack(&pushed, &["main", "canary"]).await;
            // The client stays connected until the test has seen every ACK.
            (client, cluster_names(&cds).len(), pushed.version_info)
        });
    }
    drop(ready_tx);
    for _ in 0..CLIENTS {
        within("every client ready", ready_rx.recv()).await.unwrap();
    }
    let mut changed = sample_mesh();
    changed.clusters[1] = changed.clusters[1].clone().with_max_requests(5);
    server.set_config(None, &changed).unwrap();
    go_tx.send_replace(true);
    let results: Vec<(AdsClient, usize, String)> = within("every client", async {
        let mut results = Vec::new();
        while let Some(result) = tasks.join_next().await {
            results.push(result.unwrap());
        }
        results
    })
    .await;
    assert_eq!(results.len(), CLIENTS);
    assert!(
        results
            .iter()
            .all(|(_, clusters, version)| *clusters == 2 && version == "2")
    );
    within(
        "every ACK",
        server.wait_for_clients(|clients| {
            clients.len() == CLIENTS && clients.iter().all(|c| c.acked_version(CDS) == Some("2"))
        }),
    )
    .await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn closed_streams_leave_the_client_list() {
    let server = start(sample_mesh()).await;
    let mut client = AdsClient::connect(server.local_addr(), "leaver").await;
    client.subscribe(LDS, &["greeter"]).await;
    client.recv_type(LDS).await;
    assert!(node(&server.clients(), "leaver").is_some_and(|c| c.peer.is_some()));
    drop(client);
    within(
        "the stream to go",
        server.wait_for_clients(|clients| clients.is_empty()),
    )
    .await;
    server.shutdown().await.unwrap();
}
