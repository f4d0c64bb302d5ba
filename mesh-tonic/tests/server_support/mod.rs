//! Fixtures for the xDS-enabled server tests: an application that records its callers, an in-process control
//! plane and a mesh pointed at it, hand-built server Listeners, and plain tonic clients.
// Fixtures fail the test that uses them by panicking, as assertions do.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

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
use mesh_tonic::server::RequestBody;
use mesh_core::peer::ConnectionInfo;
use mesh_tonic::testing::{GreeterClient, GreeterServer, HelloReply, HelloRequest};
use mesh_tonic::{Mesh, ServingState, XdsServer};
use mesh_xds_client::bootstrap::{
    Bootstrap, CertificateProviderConfig, ChannelCreds, FileWatcherConfig,
};
use mesh_xds_server::mesh::DEFAULT_SERVER_LISTENER_NAME_TEMPLATE;
use mesh_xds_server::{Snapshot, XdsServer as ControlPlane, type_url};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

pub const NODE: &str = "xds-server-test";
pub const PATIENCE: Duration = Duration::from_secs(10);
pub const CERTIFICATES: &str = "certs";

// ---------------------------------------------------------------------------------------------------------------
// The application: a greeter that records who called, can hold a call open, and checks `ConnectionInfo`.

#[derive(Clone)]
pub struct App {
    greeter: GreeterServer,
    /// The peer address of every request that reached the application.
    seen: Arc<Mutex<Vec<SocketAddr>>>,
    /// Calls with an `x-hold` header wait until this is true.
    gate: watch::Receiver<bool>,
    /// How many calls are being held.
    held: Arc<watch::Sender<usize>>,
}

pub struct AppControl {
    pub seen: Arc<Mutex<Vec<SocketAddr>>>,
    pub gate: watch::Sender<bool>,
    pub held: watch::Receiver<usize>,
}

pub fn app() -> (App, AppControl) {
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
    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower_service::Service<http::Request<RequestBody>> for App {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
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

pub async fn control_plane() -> ControlPlane {
    ControlPlane::builder()
        .snapshot(Snapshot::empty())
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

pub async fn mesh(control_plane: &ControlPlane) -> Mesh {
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
pub async fn socket(ip: [u8; 4]) -> (TcpListener, String) {
    let listener = TcpListener::bind(SocketAddr::from((ip, 0))).await.unwrap();
    let name = DEFAULT_SERVER_LISTENER_NAME_TEMPLATE
        .replace("%s", &listener.local_addr().unwrap().to_string());
    (listener, name)
}

/// Serves the test app under `mesh`'s control plane on `socket`.
pub async fn serve(mesh: &Mesh, socket: TcpListener, app: App) -> XdsServer {
    mesh.server()
        .serve_with_listener(socket, app)
        .await
        .unwrap()
}

pub async fn wait_for_state(server: &XdsServer, serving: bool) -> ServingState {
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
pub async fn publish(
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

pub fn socket_address(address: SocketAddr) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: address.ip().to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(address.port()))),
            ..Default::default()
        })),
    }
}

pub fn router() -> HttpFilter {
    HttpFilter {
        name: "router".to_owned(),
        config_type: Some(ConfigType::TypedConfig(pack_any(Router::default()))),
        ..Default::default()
    }
}

pub fn route_to(prefix: &str, forward_to: Option<&str>) -> Route {
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

pub fn routes(name: &str, vhost: &str, routes: Vec<Route>) -> RouteConfiguration {
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
pub enum Routes {
    Inline(RouteConfiguration),
    Rds(&'static str),
}

pub fn chain(
    name: &str,
    filter_chain_match: Option<FilterChainMatch>,
    routes: Routes,
) -> FilterChain {
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

pub fn from_source(prefix: [u8; 4], len: u32) -> FilterChainMatch {
    FilterChainMatch {
        source_prefix_ranges: vec![CidrRange {
            address_prefix: IpAddr::from(prefix).to_string(),
            prefix_len: Some(UInt32Value { value: len }),
        }],
        ..Default::default()
    }
}

/// A Listener at `address` with one chain serving everything (its routes inline, virtual host `vhost`).
pub fn serve_all(name: &str, address: SocketAddr, vhost: &str) -> Listener {
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

pub fn listener(
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

pub fn channel(address: SocketAddr, source: Option<[u8; 4]>) -> Channel {
    Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .local_address(source.map(IpAddr::from))
        .connect_lazy()
}

pub async fn hello(channel: &Channel, hold: bool) -> Result<tonic::Response<HelloReply>, Status> {
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
pub fn remote_of(response: &tonic::Response<HelloReply>) -> SocketAddr {
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
pub async fn call_path(channel: &Channel, path: &'static str) -> Result<HelloReply, Status> {
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
pub fn assert_refused<T: std::fmt::Debug>(result: Result<T, Status>) {
    let status = result.expect_err("the connection should be closed");
    assert!(
        status.code() == Code::Unavailable
            || std::error::Error::source(&status)
                .is_some_and(|source| source.is::<tonic::transport::Error>()),
        "{status:?}"
    );
}

pub fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, Status>, mentions: &str) {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains(mentions),
        "{mentions:?} not in {status:?}"
    );
}
