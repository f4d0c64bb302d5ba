//! The xDS-enabled server (gRFC A36) over real sockets: an in-process mesh-xds-server serving hand-built server
//! Listeners (or the mesh file's `servers:`), `mesh.server()` serving a greeter, and plain tonic clients.

// Fixtures fail the test that uses them by panicking, as assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, CidrRange, ConfigSource, SocketAddress,
};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as FilterConfig;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener,
};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    NonForwardingAction, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;
use hyper::body::Incoming;
use mesh_core::peer::ConnectionInfo;
use mesh_tonic::testing::{GreeterClient, GreeterServer, HelloReply, HelloRequest};
use mesh_tonic::{Mesh, ServingState, XdsServer};
use mesh_xds_client::bootstrap::{
    Bootstrap, CertificateProviderConfig, ChannelCreds, FileWatcherConfig,
};
use mesh_xds_server::mesh::{
    DEFAULT_SERVER_LISTENER_NAME_TEMPLATE, DownstreamTls, MeshConfig, Rbac, RbacAction,
    ServerListener,
};
use mesh_xds_server::{Snapshot, XdsServer as ControlPlane, type_url};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

const NODE: &str = "xds-server-test";
const PATIENCE: Duration = Duration::from_secs(10);
const CERTIFICATES: &str = "certs";

// ---------------------------------------------------------------------------------------------------------------
// The application: a greeter that records who called, can hold a call open, and checks `ConnectionInfo`.

#[derive(Clone)]
struct App {
    greeter: GreeterServer,
    /// The peer address of every request that reached the application.
    seen: Arc<Mutex<Vec<SocketAddr>>>,
    /// Calls with an `x-hold` header wait until this is true.
    gate: watch::Receiver<bool>,
    /// How many calls are being held.
    held: Arc<watch::Sender<usize>>,
}

struct AppControl {
    seen: Arc<Mutex<Vec<SocketAddr>>>,
    gate: watch::Sender<bool>,
    held: watch::Receiver<usize>,
}

fn app() -> (App, AppControl) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (gate, gate_rx) = watch::channel(false);
    let (held, held_rx) = watch::channel(0);
    (
        App {
            greeter: GreeterServer::new("xds"),
            seen: Arc::clone(&seen),
            gate: gate_rx,
            held: Arc::new(held),
        },
        AppControl {
            seen,
            gate,
            held: held_rx,
        },
    )
}

impl AppControl {
    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower_service::Service<http::Request<Incoming>> for App {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Incoming>) -> Self::Future {
        let app = self.clone();
        Box::pin(async move {
            let Some(info) = request.extensions().get::<Arc<ConnectionInfo>>().cloned() else {
                return Ok(
                    Status::internal("no ConnectionInfo in the request extensions").into_http(),
                );
            };
            app.seen.lock().unwrap().push(info.remote_addr);
            if request.headers().contains_key("x-hold") {
                app.held.send_modify(|held| *held += 1);
                let mut gate = app.gate.clone();
                let _ = gate.wait_for(|open| *open).await;
            }
            let mut greeter = app.greeter.clone();
            let mut response = tower_service::Service::call(&mut greeter, request).await?;
            response
                .headers_mut()
                .insert("x-remote", info.remote_addr.to_string().parse().unwrap());
            Ok(response)
        })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The control plane and the mesh.

async fn control_plane() -> ControlPlane {
    ControlPlane::builder()
        .snapshot(Snapshot::empty())
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

async fn mesh(control_plane: &ControlPlane) -> Mesh {
    let bootstrap = Bootstrap::builder()
        .server(
            control_plane.local_addr().to_string(),
            ChannelCreds::Insecure,
        )
        .node_id(NODE)
        .server_listener_resource_name_template(DEFAULT_SERVER_LISTENER_NAME_TEMPLATE)
        .certificate_provider(
            CERTIFICATES,
            CertificateProviderConfig::file_watcher(
                FileWatcherConfig::new()
                    .with_identity("/nonexistent/cert.pem", "/nonexistent/key.pem"),
            ),
        )
        .build()
        .unwrap();
    Mesh::builder().bootstrap(bootstrap).build().await.unwrap()
}

/// A socket on a free port of `ip`, and the Listener name for it.
async fn socket(ip: [u8; 4]) -> (TcpListener, String) {
    let listener = TcpListener::bind(SocketAddr::from((ip, 0))).await.unwrap();
    let name = DEFAULT_SERVER_LISTENER_NAME_TEMPLATE
        .replace("%s", &listener.local_addr().unwrap().to_string());
    (listener, name)
}

/// Serves the test app under `mesh`'s control plane on `socket`.
async fn serve(mesh: &Mesh, socket: TcpListener, app: App) -> XdsServer {
    mesh.server()
        .serve_with_listener(socket, app)
        .await
        .unwrap()
}

async fn wait_for_state(server: &XdsServer, serving: bool) -> ServingState {
    let mut state = server.watch_serving_state();
    tokio::time::timeout(PATIENCE, state.wait_for(|s| s.is_serving() == serving))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the server did not become serving={serving}: {}",
                server.serving_state()
            )
        })
        .unwrap()
        .clone()
}

/// Publishes `listeners` and `routes` as version `version` and waits until the server's xDS client ACKed the
/// Listeners or, when only routes changed, the routes.
async fn publish(
    control_plane: &ControlPlane,
    version: &str,
    listeners: Vec<Listener>,
    routes: Vec<RouteConfiguration>,
) {
    let mut snapshot = Snapshot::builder().version(version);
    for listener in listeners {
        snapshot = snapshot.listener(listener);
    }
    for route in routes {
        snapshot = snapshot.route_configuration(route);
    }
    control_plane.set_snapshot(None, snapshot.build());
    tokio::time::timeout(
        PATIENCE,
        control_plane.wait_for_clients(|clients| {
            clients.iter().any(|c| {
                // The control plane sends a type only when its resources changed.
                c.acked_version(type_url::LISTENER) == Some(version)
                    || c.acked_version(type_url::ROUTE_CONFIGURATION) == Some(version)
            })
        }),
    )
    .await
    .expect("the server's xDS client did not ACK the Listener");
}

// ---------------------------------------------------------------------------------------------------------------
// Envoy resources.

fn socket_address(address: SocketAddr) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: address.ip().to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(address.port()))),
            ..Default::default()
        })),
    }
}

fn router() -> HttpFilter {
    HttpFilter {
        name: "router".to_owned(),
        config_type: Some(ConfigType::TypedConfig(pack_any(Router::default()))),
        ..Default::default()
    }
}

fn route_to(prefix: &str, forward_to: Option<&str>) -> Route {
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix(prefix.to_owned())),
            ..Default::default()
        }),
        action: Some(match forward_to {
            None => Action::NonForwardingAction(NonForwardingAction {}),
            Some(cluster) => Action::Route(RouteAction {
                cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.to_owned())),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

fn routes(name: &str, vhost: &str, routes: Vec<Route>) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts: vec![VirtualHost {
            name: vhost.to_owned(),
            domains: vec!["*".to_owned()],
            routes,
            ..Default::default()
        }],
        ..Default::default()
    }
}

// Built once per chain in tests; boxing would only add noise.
#[allow(clippy::large_enum_variant)]
enum Routes {
    Inline(RouteConfiguration),
    Rds(&'static str),
}

fn chain(name: &str, filter_chain_match: Option<FilterChainMatch>, routes: Routes) -> FilterChain {
    let route_specifier = match routes {
        Routes::Inline(config) => RouteSpecifier::RouteConfig(config),
        Routes::Rds(name) => RouteSpecifier::Rds(Rds {
            config_source: Some(ConfigSource {
                resource_api_version: ApiVersion::V3.into(),
                config_source_specifier: Some(ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                ..Default::default()
            }),
            route_config_name: name.to_owned(),
        }),
    };
    let manager = HttpConnectionManager {
        stat_prefix: name.to_owned(),
        route_specifier: Some(route_specifier),
        http_filters: vec![router()],
        ..Default::default()
    };
    FilterChain {
        name: name.to_owned(),
        filter_chain_match,
        filters: vec![Filter {
            name: "hcm".to_owned(),
            config_type: Some(FilterConfig::TypedConfig(pack_any(manager))),
        }],
        ..Default::default()
    }
}

fn from_source(prefix: [u8; 4], len: u32) -> FilterChainMatch {
    FilterChainMatch {
        source_prefix_ranges: vec![CidrRange {
            address_prefix: IpAddr::from(prefix).to_string(),
            prefix_len: Some(UInt32Value { value: len }),
        }],
        ..Default::default()
    }
}

/// A Listener at `address` with one chain serving everything (its routes inline, virtual host `vhost`).
fn serve_all(name: &str, address: SocketAddr, vhost: &str) -> Listener {
    listener(
        name,
        address,
        vec![chain(
            "all",
            None,
            Routes::Inline(routes("inline", vhost, vec![route_to("", None)])),
        )],
        None,
    )
}

fn listener(
    name: &str,
    address: SocketAddr,
    filter_chains: Vec<FilterChain>,
    default_filter_chain: Option<FilterChain>,
) -> Listener {
    Listener {
        name: name.to_owned(),
        address: Some(socket_address(address)),
        filter_chains,
        default_filter_chain,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Clients.

fn channel(address: SocketAddr, source: Option<[u8; 4]>) -> Channel {
    Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .local_address(source.map(IpAddr::from))
        .connect_lazy()
}

async fn hello(channel: &Channel, hold: bool) -> Result<tonic::Response<HelloReply>, Status> {
    let mut request = tonic::Request::new(HelloRequest {
        name: "test".into(),
    });
    request.set_timeout(PATIENCE);
    if hold {
        request
            .metadata_mut()
            .insert("x-hold", "1".parse().unwrap());
    }
    GreeterClient::new(channel.clone()).say_hello(request).await
}

/// The peer address the application saw for a successful call.
fn remote_of(response: &tonic::Response<HelloReply>) -> SocketAddr {
    response
        .metadata()
        .get("x-remote")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A unary call to `path` with the greeter's messages.
async fn call_path(channel: &Channel, path: &'static str) -> Result<HelloReply, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|error| Status::unavailable(error.to_string()))?;
    grpc.unary(
        tonic::Request::new(HelloRequest {
            name: "test".into(),
        }),
        http::uri::PathAndQuery::from_static(path),
        tonic_prost::ProstCodec::<HelloRequest, HelloReply>::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

/// A call the server refused at the connection level: the connection was closed (tonic reports UNAVAILABLE, or
/// CANCELLED or UNKNOWN carrying the transport error, depending on when it noticed).
fn assert_refused<T: std::fmt::Debug>(result: Result<T, Status>) {
    let status = result.expect_err("the connection should be closed");
    assert!(
        status.code() == Code::Unavailable
            || std::error::Error::source(&status)
                .is_some_and(|source| source.is::<tonic::transport::Error>()),
        "{status:?}"
    );
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, Status>, mentions: &str) {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains(mentions),
        "{mentions:?} not in {status:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Tests.

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

    publish(
        &control_plane,
        "1",
        vec![serve_all(&name, address, "v1")],
        vec![],
    )
    .await;
    wait_for_state(&server, true).await;
    assert_eq!(next_health().await, Health::Serving);
    hello(&client, false).await.unwrap();

    // The Listener goes away: not serving, with the reason; calls fail; health follows.
    publish(&control_plane, "2", vec![], vec![]).await;
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
        "3",
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
async fn an_rbac_filter_fails_closed_until_rbac_evaluation_is_available() {
    let control_plane = control_plane().await;
    let mesh = mesh(&control_plane).await;
    let (socket, _) = socket([127, 0, 58, 1]).await;
    let address = socket.local_addr().unwrap();
    let (app, control) = app();
    let server = serve(&mesh, socket, app).await;
    // DENY with no policies would let everything through, were it evaluated.
    let config = MeshConfig::new().with_server(
        ServerListener::new(address.to_string()).with_rbac(Rbac::new(RbacAction::Deny)),
    );
    control_plane.set_config(None, &config).unwrap();
    wait_for_state(&server, true).await;
    let denied = hello(&channel(address, None), false)
        .await
        .expect_err("denied");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(
        denied
            .message()
            .contains("RBAC evaluation is not available"),
        "{denied:?}"
    );
    assert_eq!(control.requests(), 0);
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
    let service = tower::service_fn(|request: http::Request<Incoming>| async move {
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
