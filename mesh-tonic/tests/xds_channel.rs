//! `xds:///` channels end to end: an in-process mesh-xds-server, tonic greeter replicas on loopback addresses, and a
//! tonic-generated-style client over the mesh's channel.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_tonic::Mesh;
use mesh_tonic::testing::{GreeterClient, HelloRequest};
use mesh_tower::metrics::Metrics;
use mesh_xds_server::mesh::{Cluster, MeshConfig, Route, Service, WeightedCluster};
use mesh_xds_server::{XdsServer, type_url};
use support::{
    Load, NODE, RetryCounts, backend, call, call_until, greeter_to, locality, mesh, options,
    single_cluster, tally, wait_for_routes, xds_server,
};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_client_over_xds_reaches_every_backend() {
    let replicas = [
        backend([127, 0, 3, 1], "a").await,
        backend([127, 0, 3, 2], "b").await,
        backend([127, 0, 3, 3], "c").await,
    ];
    let server = xds_server(single_cluster(vec![locality(
        "east",
        0,
        &replicas.iter().collect::<Vec<_>>(),
    )]))
    .await;
    let mesh = mesh(server.local_addr()).await;
    let channel = mesh.channel("xds:///greeter").unwrap();
    assert!(
        channel.shares_path_with(&mesh.channel("xds:///greeter").unwrap()),
        "channels for one target share one request path"
    );
    let mut client = GreeterClient::new(channel);

    let counts = tally(&mut client, 300).await;

    assert_eq!(counts.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    for (replica, count) in &counts {
        assert!(
            *count >= 50,
            "replica {replica} got {count} of 300: {counts:?}"
        );
    }
    let dump = mesh.config_dump().await.unwrap();
    assert!(
        dump.resources.iter().any(|r| r.name == "greeter"),
        "the config dump lists the listener"
    );
    assert!(mesh.csds_service().is_some());
    server.shutdown().await.unwrap();
    for replica in replicas {
        replica.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_split_sends_traffic_as_configured() {
    let (v1, v2) = (
        backend([127, 0, 4, 1], "v1").await,
        backend([127, 0, 4, 2], "v2").await,
    );
    let config = MeshConfig::new()
        .with_service(
            Service::new("greeter").with_route(Route::to_weighted_clusters([
                WeightedCluster::new("v1", 80),
                WeightedCluster::new("v2", 20),
            ])),
        )
        .with_cluster(Cluster::new("v1").with_locality(locality("east", 0, &[&v1])))
        .with_cluster(Cluster::new("v2").with_locality(locality("east", 0, &[&v2])));
    let server = xds_server(config).await;
    let mesh = mesh(server.local_addr()).await;
    let mut client = GreeterClient::new(mesh.channel("xds:///greeter").unwrap());

    let counts = tally(&mut client, 1000).await;

    // 20% of 1000 has a standard deviation of about 13 calls: 150..250 is almost four of them.
    let to_v2 = counts.get("v2").copied().unwrap_or(0);
    assert!(
        (150..=250).contains(&to_v2),
        "v2 got {to_v2} of 1000: {counts:?}"
    );
    server.shutdown().await.unwrap();
    v1.shutdown().await.unwrap();
    v2.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn priority_failover_loses_no_call_and_traffic_returns() {
    let east = [
        backend([127, 0, 5, 1], "east-1").await,
        backend([127, 0, 5, 2], "east-2").await,
    ];
    let west = [
        backend([127, 0, 6, 1], "west-1").await,
        backend([127, 0, 6, 2], "west-2").await,
    ];
    let east_addresses: Vec<_> = east.iter().map(|b| b.address()).collect();
    let server = xds_server(single_cluster(vec![
        locality("east", 0, &east.iter().collect::<Vec<_>>()),
        locality("west", 1, &west.iter().collect::<Vec<_>>()),
    ]))
    .await;
    let counts = Arc::new(RetryCounts::default());
    let mesh = Mesh::builder()
        .xds_server(server.local_addr().to_string())
        .node_id(NODE)
        .mesh_options(options().with_metrics(Arc::clone(&counts) as Arc<dyn Metrics>))
        .build()
        .await
        .unwrap();
    let channel = mesh.channel("xds:///greeter").unwrap();
    let load = Load::start(&channel, 4);
    load.wait_for(100).await;
    let before = load.replicas(0);
    assert!(
        before.keys().all(|r| r.starts_with("east")),
        "priority 0 takes the traffic: {before:?}"
    );

    // Every priority-0 replica stops.
    let stopping: Vec<_> = east
        .into_iter()
        .map(|b| tokio::spawn(b.shutdown()))
        .collect();
    for stop in stopping {
        stop.await.unwrap().unwrap();
    }
    load.wait_for(100).await;
    let settled = load.len();
    load.wait_for(200).await;
    let after = load.replicas(settled);
    assert!(
        after.keys().all(|r| r.starts_with("west")),
        "priority 1 takes over: {after:?}"
    );

    // They come back on the same addresses; traffic returns.
    let east = [
        mesh_tonic::testing::GreeterBackend::start(east_addresses[0], "east-1")
            .await
            .unwrap(),
        mesh_tonic::testing::GreeterBackend::start(east_addresses[1], "east-2")
            .await
            .unwrap(),
    ];
    let mut probe = GreeterClient::new(channel.clone());
    call_until(&mut probe, |replica| replica.starts_with("east")).await;
    load.wait_for(100).await;
    let returned = load.len();
    load.wait_for(200).await;
    let back = load.replicas(returned);
    assert!(
        back.keys().all(|r| r.starts_with("east")),
        "priority 0 takes the traffic back: {back:?}"
    );

    let failures = load.failures(0);
    let total = load.len();
    load.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {total} calls failed ({counts:?}): {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    server.shutdown().await.unwrap();
    for replica in east.into_iter().chain(west) {
        replica.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_update_moves_traffic() {
    let (blue, green) = (
        backend([127, 0, 7, 1], "blue").await,
        backend([127, 0, 7, 2], "green").await,
    );
    let config = |cluster: &str| {
        MeshConfig::new()
            .with_service(greeter_to(cluster))
            .with_cluster(Cluster::new("blue").with_locality(locality("east", 0, &[&blue])))
            .with_cluster(Cluster::new("green").with_locality(locality("east", 0, &[&green])))
    };
    let server = xds_server(config("blue")).await;
    let mesh = mesh(server.local_addr()).await;
    let channel = mesh.channel("xds:///greeter").unwrap();
    let mut client = GreeterClient::new(channel.clone());
    assert_eq!(
        tally(&mut client, 20).await.keys().collect::<Vec<_>>(),
        ["blue"]
    );
    let first_version = channel.config_version().unwrap();

    let version = server.set_config(None, &config("green")).unwrap();
    wait_for_routes(&server, &version).await;
    call_until(&mut client, |replica| replica == "green").await;

    assert_eq!(
        tally(&mut client, 50).await.keys().collect::<Vec<_>>(),
        ["green"]
    );
    assert!(channel.config_version().unwrap() > first_version);
    server.shutdown().await.unwrap();
    blue.shutdown().await.unwrap();
    green.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_made_before_the_target_exists_waits_and_succeeds() {
    let replica = backend([127, 0, 8, 1], "late").await;
    let server = xds_server(MeshConfig::new()).await;
    let mesh = mesh(server.local_addr()).await;
    let mut client = GreeterClient::new(mesh.channel("xds:///greeter").unwrap());

    let started = Instant::now();
    let pending = tokio::spawn(async move { call(&mut client).await });
    // The call is waiting: the control plane has not got the target yet.
    tokio::time::timeout(
        support::PATIENCE,
        server.wait_for_clients(|clients| !clients.is_empty()),
    )
    .await
    .unwrap();
    assert!(!pending.is_finished());
    server
        .set_config(
            None,
            &single_cluster(vec![locality("east", 0, &[&replica])]),
        )
        .unwrap();

    assert_eq!(pending.await.unwrap().unwrap(), "late");
    assert!(started.elapsed() < Duration::from_secs(5));
    server.shutdown().await.unwrap();
    replica.shutdown().await.unwrap();
}

/// `tower::ServiceExt::oneshot` hands the channel to the call and drops it once the call is issued: the call, still
/// waiting for the target's first configuration, must keep the target's watch alive until it is answered; once the
/// call and the channel are gone, the watch is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_outlives_its_channel_still_gets_the_configuration_then_the_watch_ends() {
    use http_body_util::BodyExt;
    use prost::Message;
    use tower::ServiceExt;

    let replica = backend([127, 0, 8, 3], "oneshot").await;
    let server = xds_server(MeshConfig::new()).await;
    let mesh = mesh(server.local_addr()).await;
    let subscribed = |server: &XdsServer| {
        server.clients().iter().any(|client| {
            client
                .type_status(type_url::LISTENER)
                .is_some_and(|status| status.subscribed.contains("greeter"))
        })
    };

    let message = HelloRequest {
        name: "test".into(),
    }
    .encode_to_vec();
    let mut body = vec![0];
    body.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&message);
    let request = http::Request::post("http://greeter/helloworld.Greeter/SayHello")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let pending = tokio::spawn(mesh.channel("xds:///greeter").unwrap().oneshot(request));
    tokio::time::timeout(
        support::PATIENCE,
        server.wait_for_clients(|_| subscribed(&server)),
    )
    .await
    .unwrap();
    assert!(!pending.is_finished());
    server
        .set_config(
            None,
            &single_cluster(vec![locality("east", 0, &[&replica])]),
        )
        .unwrap();

    let response = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("the call got no configuration after its channel was dropped")
        .unwrap()
        .unwrap();
    assert_eq!(response.headers()["hostname"], "oneshot");
    let collected = response.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");

    // Nothing holds the target now: its xDS subscription goes.
    tokio::time::timeout(
        support::PATIENCE,
        server.wait_for_clients(|_| !subscribed(&server)),
    )
    .await
    .expect("the listener watch outlived every channel and call");
    server.shutdown().await.unwrap();
    replica.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_made_while_the_control_plane_starts_waits_for_it() {
    let replica = backend([127, 0, 8, 2], "early").await;
    // A free port for a control plane that is not running yet.
    let address = {
        let probe = xds_server(MeshConfig::new()).await;
        let address = probe.local_addr();
        probe.shutdown().await.unwrap();
        address
    };
    let mesh = mesh(address).await;
    let mut client = GreeterClient::new(mesh.channel("xds:///greeter").unwrap());
    let pending = tokio::spawn(async move { call(&mut client).await });

    // The xDS client reports that the control plane is unreachable; the call keeps waiting.
    let watcher = mesh
        .xds_client()
        .unwrap()
        .watch_target("greeter", "greeter");
    let mut watch = watcher.receiver();
    let unreachable = tokio::time::timeout(
        support::PATIENCE,
        watch.wait_for(|update| matches!(update, Some(Err(_)))),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    assert!(
        format!("{unreachable:?}").contains("stream failed"),
        "{unreachable:?}"
    );
    assert!(!pending.is_finished(), "the call failed instead of waiting");
    let server = XdsServer::builder()
        .config(single_cluster(vec![locality("east", 0, &[&replica])]))
        .bind(address)
        .await
        .unwrap();

    assert_eq!(pending.await.unwrap().unwrap(), "early");
    server.shutdown().await.unwrap();
    replica.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_does_not_exist_fails_with_unavailable_and_the_reason() {
    let server = xds_server(MeshConfig::new()).await;
    let mesh = Mesh::builder()
        .xds_server(server.local_addr().to_string())
        .node_id(NODE)
        .mesh_options(options())
        .resource_timeout(Duration::from_millis(200))
        .wait_for_ready(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let mut client = GreeterClient::new(mesh.channel("xds:///nowhere").unwrap());

    let started = Instant::now();
    let first = call(&mut client).await.unwrap_err();
    let waited = started.elapsed();
    let started = Instant::now();
    let second = call(&mut client).await.unwrap_err();
    let second_took = started.elapsed();

    for status in [&first, &second] {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains("xds:///nowhere")
                && status.message().contains("does not exist"),
            "the reason is named: {:?}",
            status.message()
        );
    }
    assert!(
        waited >= Duration::from_millis(900),
        "the first call waits for the wait-for-ready period (waited {waited:?})"
    );
    assert!(
        second_took < Duration::from_millis(200),
        "later calls fail at once (took {second_took:?})"
    );
    server.shutdown().await.unwrap();
}
