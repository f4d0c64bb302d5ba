//! The xDS-enabled server (gRFC A36) over real sockets: an in-process mesh-xds-server serving hand-built server
//! Listeners (or the mesh file's `servers:`), `mesh.server()` serving a greeter, and plain tonic clients.

// Fixtures fail the test that uses them by panicking, as assertions do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod server_support;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mesh_core::peer::ConnectionInfo;
use mesh_tonic::server::RequestBody;
use mesh_tonic::{Mesh, ServingState};
use mesh_xds_client::bootstrap::{Bootstrap, ChannelCreds};
use mesh_xds_server::mesh::{
    Authenticated, DEFAULT_SERVER_LISTENER_NAME_TEMPLATE, DownstreamTls, MeshConfig, Permission,
    Principal, Rbac, RbacAction, RbacPolicy, ServerListener, StringMatch,
};
use server_support::*;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_only_while_its_listener_exists_and_health_follows() {
    let control_plane = control_plane().await;
    let mesh = mesh(&control_plane).await;
    let (socket, name) = socket([127, 0, 50, 1]).await;
    let address = socket.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    let (app, control) = app();
    let server = mesh
        .server()
        .health_reporter(reporter)
        .serve_with_listener(socket, app)
        .await
        .unwrap();
    assert_eq!(server.listener_name(), name);
    let maintenance = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maintenance_address = maintenance.local_addr().unwrap();
    let maintenance_task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(maintenance)),
    );
    let mut health =
        tonic_health::pb::health_client::HealthClient::new(channel(maintenance_address, None))
            .watch(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
    let mut next_health = async move || {
        tokio::time::timeout(PATIENCE, health.message())
            .await
            .expect("no health update")
            .unwrap()
            .unwrap()
            .status()
    };
    use tonic_health::pb::health_check_response::ServingStatus as Health;

    // No Listener yet: connections are closed, the application sees nothing, health says NOT_SERVING.
    let client = channel(address, None);
    assert!(!server.serving_state().is_serving());
    assert_eq!(next_health().await, Health::NotServing);
    assert_refused(hello(&client, false).await);
    assert_eq!(control.requests(), 0);

    // Still not serving, for another reason (a Listener for another address): health watchers hear nothing, as the
    // status did not change (grpc.health.v1 Watch sends a message per change).
    let elsewhere = SocketAddr::from(([127, 0, 50, 2], address.port()));
    publish(
        &control_plane,
        "1",
        vec![serve_all(&name, elsewhere, "v1")],
        vec![],
    )
    .await;
    let mut state = server.watch_serving_state();
    tokio::time::timeout(
        PATIENCE,
        state.wait_for(|state| state.to_string().contains("127.0.50.2")),
    )
    .await
    .expect("the reason names the other address")
    .unwrap();

    publish(
        &control_plane,
        "2",
        vec![serve_all(&name, address, "v1")],
        vec![],
    )
    .await;
    wait_for_state(&server, true).await;
    assert_eq!(next_health().await, Health::Serving);
    hello(&client, false).await.unwrap();

    // The Listener goes away: not serving, with the reason; calls fail; health follows.
    publish(&control_plane, "3", vec![], vec![]).await;
    let ServingState::NotServing { reason } = wait_for_state(&server, false).await else {
        unreachable!()
    };
    assert!(reason.contains("does not exist"), "{reason}");
    assert_eq!(next_health().await, Health::NotServing);
    // New connections are closed at once; nothing reaches the application through them.
    let before = control.requests();
    assert_refused(hello(&channel(address, None), false).await);
    assert_eq!(
        control.requests(),
        before,
        "a new connection is refused while not serving"
    );
    // The open connection was sent GOAWAY (A36 lets a call that raced it finish under the old configuration): once
    // the client has left it, its calls fail too.
    tokio::time::timeout(PATIENCE, async {
        while hello(&client, false).await.is_ok() {}
    })
    .await
    .expect("the open connection is drained");
    assert_refused(hello(&client, false).await);

    // It comes back: serving again.
    publish(
        &control_plane,
        "4",
        vec![serve_all(&name, address, "v1")],
        vec![],
    )
    .await;
    wait_for_state(&server, true).await;
    assert_eq!(next_health().await, Health::Serving);
    tokio::time::timeout(PATIENCE, async {
        while hello(&client, false).await.is_err() {}
    })
    .await
    .expect("calls succeed again");

    server.shutdown().await;
    maintenance_task.abort();
    control_plane.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_for_another_address_is_not_served_and_the_callback_says_why() {
    let control_plane = control_plane().await;
    let mesh = mesh(&control_plane).await;
    let (socket, name) = socket([127, 0, 51, 1]).await;
    let address = socket.local_addr().unwrap();
    let (app, control) = app();
    let (told, mut told_rx) = watch::channel(Vec::<String>::new());
    let server = mesh
        .server()
        .on_serving_state(move |state| told.send_modify(|states| states.push(state.to_string())))
        .serve_with_listener(socket, app)
        .await
        .unwrap();
    let elsewhere = SocketAddr::from(([127, 0, 51, 2], address.port()));
    publish(
        &control_plane,
        "1",
        vec![serve_all(&name, elsewhere, "v1")],
        vec![],
    )
    .await;
    let states = tokio::time::timeout(PATIENCE, told_rx.wait_for(|states| !states.is_empty()))
        .await
        .expect("the callback is told")
        .unwrap()
        .clone();
    assert_eq!(states.len(), 1, "{states:?}");
    assert!(
        states[0].starts_with("not serving")
            && states[0].contains("127.0.51.2")
            && states[0].contains(&name),
        "the reason names the Listener and its address: {states:?}"
    );
    assert!(
        states[0].contains(&address.to_string()),
        "and the serving address: {states:?}"
    );
    assert_eq!(
        server.serving_state().to_string(),
        states[0],
        "the handle agrees"
    );
    assert_refused(hello(&channel(address, None), false).await);
    assert_eq!(control.requests(), 0);

    // Fixed: serving, and the callback is told.
    publish(
        &control_plane,
        "2",
        vec![serve_all(&name, address, "v1")],
        vec![],
    )
    .await;
    tokio::time::timeout(PATIENCE, told_rx.wait_for(|states| states.len() == 2))
        .await
        .expect("the callback is told")
        .unwrap();
    assert_eq!(told_rx.borrow()[1], "serving");
    hello(&channel(address, None), false).await.unwrap();
    server.shutdown().await;
    control_plane.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_need_a_non_forwarding_route_and_rds_updates_apply_in_place() {
    let control_plane = control_plane().await;
    let mesh = mesh(&control_plane).await;
    let (socket, name) = socket([127, 0, 52, 1]).await;
    let address = socket.local_addr().unwrap();
    let (app, control) = app();
    let server = serve(&mesh, socket, app).await;
    let inbound = listener(
        &name,
        address,
        vec![chain("rds", None, Routes::Rds("inbound-routes"))],
        None,
    );
    let greeter_only = routes(
        "inbound-routes",
        "inbound",
        vec![
            route_to("/helloworld.Greeter/SayHello", None),
            route_to("/forwarded.", Some("elsewhere")),
        ],
    );
    publish(
        &control_plane,
        "1",
        vec![inbound.clone()],
        vec![greeter_only],
    )
    .await;
    wait_for_state(&server, true).await;

    let client = channel(address, None);
    let first = hello(&client, false).await.unwrap();
    assert_unavailable(
        call_path(&client, "/helloworld.Greeter/Other").await,
        "no route matches /helloworld.Greeter/Other",
    );
    assert_unavailable(
        call_path(&client, "/forwarded.Service/Call").await,
        "non_forwarding_action",
    );
    assert_eq!(
        control.requests(),
        1,
        "rejected calls never reach the application"
    );

    // An RDS update applies to the open connection without draining it.
    let forward_everything = routes(
        "inbound-routes",
        "inbound",
        vec![route_to("", Some("elsewhere"))],
    );
    publish(&control_plane, "2", vec![inbound], vec![forward_everything]).await;
    tokio::time::timeout(PATIENCE, async {
        while hello(&client, false).await.is_ok() {}
    })
    .await
    .expect("the new routes apply");
    assert_unavailable(hello(&client, false).await, "inbound-routes");
    let seen = control.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|peer| *peer == remote_of(&first)),
        "one connection throughout: {seen:?}"
    );
    server.shutdown().await;
    control_plane.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filter_chain_is_chosen_by_source_address() {
    let control_plane = control_plane().await;
    let mesh = mesh(&control_plane).await;
    // A wildcard listening address (IPv4): clients come from several loopback addresses.
    let (socket, name) = socket([0, 0, 0, 0]).await;
    let address = socket.local_addr().unwrap();
    let (app, control) = app();
    let server = serve(&mesh, socket, app).await;
    let trusted = chain(
        "trusted",
        Some(from_source([127, 0, 53, 1], 32)),
        Routes::Inline(routes("trusted-routes", "t", vec![route_to("", None)])),
    );
    let others = chain(
        "others",
        Some(from_source([127, 0, 53, 0], 24)),
        Routes::Inline(routes(
            "others-routes",
            "o",
            vec![route_to("", Some("elsewhere"))],
        )),
    );
    publish(
        &control_plane,
        "1",
        vec![listener(&name, address, vec![others, trusted], None)],
        vec![],
    )
    .await;
    wait_for_state(&server, true).await;
    let target = SocketAddr::from(([127, 0, 0, 1], address.port()));

    // The most specific chain (/32) for its one address; the /24 for its neighbours; nothing (and no default chain)
    // for an address outside both: the connection is closed.
    let reply = hello(&channel(target, Some([127, 0, 53, 1])), false)
        .await
        .unwrap();
    assert_eq!(
        remote_of(&reply).ip(),
        IpAddr::from([127, 0, 53, 1]),
        "ConnectionInfo has the peer address"
    );
    assert_unavailable(
        hello(&channel(target, Some([127, 0, 53, 2])), false).await,
        "others-routes",
    );
    assert_refused(hello(&channel(target, Some([127, 0, 54, 1])), false).await);
    assert_eq!(control.requests(), 1);

    // With a default chain, the outsider is served by it.
    let default = chain(
        "default",
        None,
        Routes::Inline(routes("default-routes", "d", vec![route_to("", None)])),
    );
    let trusted = chain(
        "trusted",
        Some(from_source([127, 0, 53, 1], 32)),
        Routes::Inline(routes("trusted-routes", "t", vec![route_to("", None)])),
    );
    publish(
        &control_plane,
        "2",
        vec![listener(&name, address, vec![trusted], Some(default))],
        vec![],
    )
    .await;
    tokio::time::timeout(PATIENCE, async {
        while hello(&channel(target, Some([127, 0, 54, 1])), false)
            .await
            .is_err()
        {}
    })
    .await
    .expect("the default chain serves the outsider");
    server.shutdown().await;
    control_plane.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_update_drains_old_connections_while_calls_in_flight_finish() {
    let control_plane = control_plane().await;
    let mesh = mesh(&control_plane).await;
    let (socket, name) = socket([127, 0, 55, 1]).await;
    let address = socket.local_addr().unwrap();
    let (app, mut control) = app();
    let server = serve(&mesh, socket, app).await;
    publish(
        &control_plane,
        "1",
        vec![serve_all(&name, address, "v1")],
        vec![],
    )
    .await;
    wait_for_state(&server, true).await;

    let client = channel(address, None);
    let old = remote_of(&hello(&client, false).await.unwrap());
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { hello(&client, true).await }
    });
    tokio::time::timeout(PATIENCE, control.held.wait_for(|held| *held == 1))
        .await
        .expect("the call reached the application")
        .unwrap();

    publish(
        &control_plane,
        "2",
        vec![serve_all(&name, address, "v2")],
        vec![],
    )
    .await;
    // New calls move to a new connection (the old one got GOAWAY) ...
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(reply) = hello(&client, false).await
                && remote_of(&reply) != old
            {
                return;
            }
        }
    })
    .await
    .expect("calls move to a new connection");
    // ... while the call in flight on the old one finishes normally.
    assert!(!in_flight.is_finished());
    control.gate.send_replace(true);
    let reply = in_flight
        .await
        .unwrap()
        .expect("the call in flight finishes");
    assert_eq!(remote_of(&reply), old);
    server.shutdown().await;
    control_plane.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_connection_is_closed_after_the_drain_grace_time() {
    let control_plane = control_plane().await;
    let mesh = mesh(&control_plane).await;
    let (socket, name) = socket([127, 0, 56, 1]).await;
    let address = socket.local_addr().unwrap();
    let (app, mut control) = app();
    let server = mesh
        .server()
        .drain_grace(Duration::from_millis(200))
        .serve_with_listener(socket, app)
        .await
        .unwrap();
    publish(
        &control_plane,
        "1",
        vec![serve_all(&name, address, "v1")],
        vec![],
    )
    .await;
    wait_for_state(&server, true).await;
    let client = channel(address, None);
    let stuck = tokio::spawn({
        let client = client.clone();
        async move { hello(&client, true).await }
    });
    tokio::time::timeout(PATIENCE, control.held.wait_for(|held| *held == 1))
        .await
        .unwrap()
        .unwrap();
    publish(&control_plane, "2", vec![], vec![]).await;
    let outcome = tokio::time::timeout(PATIENCE, stuck)
        .await
        .expect("the held call ends with its connection")
        .unwrap();
    assert!(outcome.is_err(), "{outcome:?}");
    server.shutdown().await;
    control_plane.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_requiring_tls_never_serves_plaintext() {
    let control_plane = control_plane().await;
    let mesh = mesh(&control_plane).await;
    let (socket, _) = socket([127, 0, 57, 1]).await;
    let address = socket.local_addr().unwrap();
    let (app, control) = app();
    let server = serve(&mesh, socket, app).await;
    let config = MeshConfig::new().with_server(
        ServerListener::new(address.to_string()).with_tls(DownstreamTls::new(CERTIFICATES)),
    );
    control_plane.set_config(None, &config).unwrap();
    wait_for_state(&server, true).await;
    assert_refused(hello(&channel(address, None), false).await);
    assert_eq!(control.requests(), 0);
    assert!(server.serving_state().is_serving());
    server.shutdown().await;
    control_plane.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_from_the_listener_decides_each_call_and_follows_updates() {
    let control_plane = control_plane().await;
    let mesh = mesh(&control_plane).await;
    let (socket, _) = socket([127, 0, 58, 1]).await;
    let address = socket.local_addr().unwrap();
    let (app, control) = app();
    let server = serve(&mesh, socket, app).await;
    let channel = channel(address, None);

    // ALLOW only SayHello on this port; plaintext peers are not authenticated, so a policy naming a principal
    // never admits them.
    let allow = Rbac::new(RbacAction::Allow)
        .with_policy(RbacPolicy::new(
            "say-hello",
            vec![Permission::Path(StringMatch::exact(
                "/helloworld.Greeter/SayHello",
            ))],
            vec![Principal::Any],
        ))
        .with_policy(RbacPolicy::new(
            "admins-only",
            vec![Permission::Any],
            vec![Principal::Authenticated(Authenticated::default())],
        ));
    let config = MeshConfig::new()
        .with_server(ServerListener::new(address.to_string()).with_rbac(allow.clone()));
    control_plane.set_config(None, &config).unwrap();
    wait_for_state(&server, true).await;
    hello(&channel, false).await.expect("SayHello is allowed");
    let other = call_path(&channel, "/helloworld.Greeter/Other")
        .await
        .expect_err("a path no policy admits is denied");
    assert_eq!(other.code(), Code::PermissionDenied, "{other:?}");
    assert_eq!(
        control.requests(),
        1,
        "the denied call never reached the handler"
    );

    // An update to DENY the same path applies to new calls.
    let deny = Rbac::new(RbacAction::Deny).with_policy(RbacPolicy::new(
        "no-hello",
        vec![Permission::Path(StringMatch::prefix(
            "/helloworld.Greeter/Say",
        ))],
        vec![Principal::Any],
    ));
    let config =
        MeshConfig::new().with_server(ServerListener::new(address.to_string()).with_rbac(deny));
    control_plane.set_config(None, &config).unwrap();
    let denied = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match hello(&channel, false).await {
                Err(status) if status.code() == Code::PermissionDenied => break status,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .expect("the DENY policy takes over");
    assert_eq!(denied.message(), mesh_tower::authz::DENIED_MESSAGE);
    let before = control.requests();
    assert!(hello(&channel, false).await.is_err());
    assert_eq!(control.requests(), before);
    server.shutdown().await;
    control_plane.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_mesh_without_a_server_listener_template_cannot_serve() {
    let control_plane = control_plane().await;
    let bootstrap = Bootstrap::builder()
        .server(
            control_plane.local_addr().to_string(),
            ChannelCreds::Insecure,
        )
        .node_id(NODE)
        .build()
        .unwrap();
    let mesh = Mesh::builder().bootstrap(bootstrap).build().await.unwrap();
    let (app, _) = app();
    let error = mesh
        .server()
        .serve("127.0.0.1:0".parse().unwrap(), app)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("server_listener_resource_name_template"),
        "{error}"
    );
    let without = Mesh::builder().without_xds().build().await.unwrap();
    let (second, _) = self::app();
    let error = without
        .server()
        .serve("127.0.0.1:0".parse().unwrap(), second)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("without xDS"), "{error}");
    control_plane.shutdown().await.unwrap();
}

/// `xds-interop-server`, killed when dropped.
struct InteropServer(std::process::Child);

impl Drop for InteropServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interop_server_in_secure_mode_serves_its_test_port_under_the_listener() {
    use std::io::BufRead;

    use mesh_tonic::interop::TestServiceClient;
    use mesh_tonic::interop::messages::{Empty, SimpleRequest};

    let control_plane = control_plane().await;
    let bootstrap = format!(
        r#"{{"xds_servers": [{{"server_uri": "{}", "channel_creds": [{{"type": "insecure"}}],
            "server_features": ["xds_v3"]}}],
          "node": {{"id": "{NODE}"}},
          "server_listener_resource_name_template": "{DEFAULT_SERVER_LISTENER_NAME_TEMPLATE}"}}"#,
        control_plane.local_addr()
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xds-interop-server"))
        .args([
            "--secure_mode=true",
            "--port=0",
            "--maintenance_port=0",
            "--bind_address=127.0.0.1",
            "--server_id=secure-1",
        ])
        .env("GRPC_XDS_BOOTSTRAP_CONFIG", bootstrap)
        .env_remove("GRPC_XDS_BOOTSTRAP")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start xds-interop-server");
    let stdout = child.stdout.take().unwrap();
    let _child = InteropServer(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    let address = |key: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
            .parse()
            .unwrap()
    };
    let (test, maintenance) = (address("test="), address("maintenance="));
    assert_ne!(test, maintenance);

    // No Listener yet: the test port refuses calls; the maintenance port is plain and answers.
    let mut client = TestServiceClient::new(channel(test, None));
    assert_refused(client.empty_call(Empty {}).await);
    let health = tonic_health::pb::health_client::HealthClient::new(channel(maintenance, None))
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("the maintenance port serves without xDS");
    assert_eq!(
        health.get_ref().status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    let config = MeshConfig::new().with_server(ServerListener::new(test.to_string()));
    control_plane.set_config(None, &config).unwrap();
    let reply = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(reply) = client.unary_call(SimpleRequest::default()).await {
                return reply;
            }
        }
    })
    .await
    .expect("the test port serves once the Listener arrives");
    assert_eq!(reply.get_ref().server_id, "secure-1");
    control_plane.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_route_configuration_still_lets_the_server_serve_and_fails_its_rpcs() {
    let control_plane = control_plane().await;
    let bootstrap = Bootstrap::builder()
        .server(
            control_plane.local_addr().to_string(),
            ChannelCreds::Insecure,
        )
        .node_id(NODE)
        .server_listener_resource_name_template(DEFAULT_SERVER_LISTENER_NAME_TEMPLATE)
        .build()
        .unwrap();
    // A short does-not-exist timer (gRFC A57), so the missing resource is reported quickly.
    let mesh = Mesh::builder()
        .bootstrap(bootstrap)
        .resource_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let (socket, name) = socket([127, 0, 59, 1]).await;
    let address = socket.local_addr().unwrap();
    let (app, control) = app();
    let server = serve(&mesh, socket, app).await;
    let inbound = listener(
        &name,
        address,
        vec![chain("rds", None, Routes::Rds("never-sent"))],
        None,
    );
    publish(&control_plane, "1", vec![inbound], vec![]).await;
    // gRFC A36: the server waits until every RDS watch has heard something, errors included, then serves; RPCs on
    // the chain fail with UNAVAILABLE naming the resource.
    wait_for_state(&server, true).await;
    assert_unavailable(
        hello(&channel(address, None), false).await,
        "\"never-sent\": does not exist",
    );
    assert_eq!(control.requests(), 0);
    server.shutdown().await;
    control_plane.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_tower_http_service_can_be_served() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let control_plane = control_plane().await;
    let mesh = mesh(&control_plane).await;
    let (socket, name) = socket([127, 0, 60, 1]).await;
    let address = socket.local_addr().unwrap();
    let service = tower::service_fn(|request: http::Request<RequestBody>| async move {
        let peer = request
            .extensions()
            .get::<Arc<ConnectionInfo>>()
            .map_or_else(
                || "no ConnectionInfo".to_owned(),
                |info| info.remote_addr.ip().to_string(),
            );
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(peer))))
    });
    let server = mesh
        .server()
        .serve_with_listener(socket, service)
        .await
        .unwrap();
    publish(
        &control_plane,
        "1",
        vec![serve_all(&name, address, "v1")],
        vec![],
    )
    .await;
    wait_for_state(&server, true).await;

    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("http://{address}/items/42"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "127.0.0.1");
    connection.abort();
    server.shutdown().await;
    control_plane.shutdown().await.unwrap();
}
