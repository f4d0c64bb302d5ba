//! Our xDS-enabled server over mutual TLS against clients nobody on the team wrote, everything configured through
//! mesh-xds-server (gRFC A29, A36): gRPC C-core (Python grpcio 1.85) with xDS credentials calls our server, whose
//! certificate is SPIFFE-only (a URI SAN, no DNS SAN), and our handler sees C-core's SPIFFE ID; and gRPC's `mtls`
//! xDS interop case: `xds-interop-server --secure_mode=true` and `xds-interop-client --secure_mode=true`, each with
//! `file_watcher` certificate providers in its bootstrap. See `../shared/PEERS.md`, "xDS-driven mTLS reference".
// Fixtures and assertions fail tests by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod interop_driver;
#[path = "../../mesh-tower/tests/support/pki.rs"]
#[allow(dead_code, unreachable_pub)]
mod pki;

use std::convert::Infallible;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use interop_driver::Client;
use mesh_core::peer::ConnectionInfo;
use mesh_test_support::{ChildGuard, python, script};
use mesh_tonic::Mesh;
use mesh_tonic::server::RequestBody;
use mesh_tonic::testing::GreeterServer;
use mesh_xds_client::bootstrap::{
    Bootstrap, CertificateProviderConfig, ChannelCreds, FileWatcherConfig,
};
use mesh_xds_server::XdsServer as ControlPlane;
use mesh_xds_server::mesh::{
    Cluster, DEFAULT_SERVER_LISTENER_NAME_TEMPLATE, DownstreamTls, Endpoint, Locality, MeshConfig,
    Route, ServerListener, Service, StringMatch, UpstreamTls,
};
use pki::{Ca, Leaf, bundle_map};

const CLIENT_ID: &str = "spiffe://client.example/ns/default/sa/grpc-core";
const SERVER_ID: &str = "spiffe://server.example/ns/default/sa/greeter";

/// Writes `content` to `dir/name` and returns the path as text.
fn file(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

/// Service `service` to cluster `main` at `address` over mTLS (the `client` instance's certificate, a server SAN of
/// exactly [`SERVER_ID`]), and the server Listener for `address` requiring client certificates (`server` instance).
fn config(service: &str, address: SocketAddr) -> MeshConfig {
    let upstream = UpstreamTls::new("client")
        .with_client_certificate("client")
        .with_san(StringMatch::exact(SERVER_ID));
    MeshConfig::new()
        .with_service(Service::new(service).with_route(Route::to_cluster("main")))
        .with_cluster(
            Cluster::new("main")
                .with_locality(
                    Locality::new("r", "r-a", "").with_endpoint(Endpoint::new(address.to_string())),
                )
                .with_tls(upstream),
        )
        .with_server(
            ServerListener::new(address.to_string())
                .with_tls(DownstreamTls::new("server").requiring_client_certificate("server")),
        )
}

async fn control_plane() -> ControlPlane {
    ControlPlane::builder().bind("127.0.0.1:0").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_core_with_xds_credentials_calls_our_server_over_mutual_tls() {
    let python = tokio::task::spawn_blocking(python)
        .await
        .unwrap()
        .expect("the interop venv");
    let (client_ca, server_ca) = (Ca::new("client.example"), Ca::new("server.example"));
    let dir = tempfile::tempdir().unwrap();
    let control_plane = control_plane().await;

    // Our server: a SPIFFE-only certificate, clients verified against the client domain's bundle.
    let server_leaf = server_ca.issue(&Leaf::svid(SERVER_ID));
    let files = FileWatcherConfig::new()
        .with_identity(
            file(dir.path(), "server.crt", &server_leaf.chain_pem),
            file(dir.path(), "server.key", &server_leaf.key_pem),
        )
        .with_spiffe_trust_bundle_map_file(file(
            dir.path(),
            "bundles.json",
            &bundle_map(&[&client_ca, &server_ca]),
        ));
    let bootstrap = Bootstrap::builder()
        .server(
            control_plane.local_addr().to_string(),
            ChannelCreds::Insecure,
        )
        .node_id("our-server")
        .server_listener_resource_name_template(DEFAULT_SERVER_LISTENER_NAME_TEMPLATE)
        .certificate_provider("server", CertificateProviderConfig::file_watcher(files))
        .build()
        .unwrap();
    let mesh = Mesh::builder().bootstrap(bootstrap).build().await.unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorded = Arc::clone(&seen);
    let greeter = GreeterServer::new("ours");
    let app = tower::service_fn(move |request: http::Request<RequestBody>| {
        let (mut greeter, recorded) = (greeter.clone(), Arc::clone(&recorded));
        async move {
            let id = request
                .extensions()
                .get::<Arc<ConnectionInfo>>()
                .and_then(|info| info.peer_certificate.clone())
                .and_then(|peer| peer.spiffe_id.as_ref().map(ToString::to_string))
                .unwrap_or_default();
            recorded.lock().unwrap().push(id);
            let response: Result<_, Infallible> =
                tower_service::Service::call(&mut greeter, request).await;
            response
        }
    });
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = mesh
        .server()
        .serve_with_listener(socket, app)
        .await
        .unwrap();
    control_plane
        .set_config(None, &config("greeter", server.local_addr()))
        .unwrap();

    // C-core: its own certificate, and the server domain's CA (C-core's file_watcher, CA mode).
    let client_leaf = client_ca.issue(&Leaf::svid(CLIENT_ID));
    let bootstrap = serde_json::json!({
        "xds_servers": [{
            "server_uri": control_plane.local_addr().to_string(),
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }],
        "node": {"id": "grpc-core-client", "locality": {}},
        "certificate_providers": {"client": {"plugin_name": "file_watcher", "config": {
            "certificate_file": file(dir.path(), "client.crt", &client_leaf.chain_pem),
            "private_key_file": file(dir.path(), "client.key", &client_leaf.key_pem),
            "ca_certificate_file": file(dir.path(), "server-ca.pem", &server_ca.pem),
            "refresh_interval": "600s",
        }}},
    });
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script("xds_client.py"))
            .args([
                "--target",
                "xds:///greeter",
                "--calls",
                "20",
                "--xds-credentials",
            ])
            .env_remove("GRPC_XDS_BOOTSTRAP")
            .env("GRPC_XDS_BOOTSTRAP_CONFIG", bootstrap.to_string())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "grpcio failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let counts: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(counts["errors"], serde_json::json!({}), "{counts}");
    let answered: u64 = counts["by_server"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(answered, 20, "{counts}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 20);
    assert!(seen.iter().all(|id| id == CLIENT_ID), "{seen:?}");
    assert_eq!(server.tls_handshake_failures(), 0);
    server.shutdown().await;
    control_plane.shutdown().await.unwrap();
}

/// `xds-interop-server --secure_mode=true`, killed when dropped, and its test port.
fn secure_interop_server(bootstrap: &str, hostname: &str) -> (ChildGuard, SocketAddr) {
    let mut child = Command::new(interop_driver::SERVER_BINARY)
        .args([
            "--secure_mode=true",
            "--port=0",
            "--maintenance_port=0",
            "--bind_address=127.0.0.1",
        ])
        .arg(format!("--hostname={hostname}"))
        .env("GRPC_XDS_BOOTSTRAP_CONFIG", bootstrap)
        .env_remove("GRPC_XDS_BOOTSTRAP")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start xds-interop-server");
    let stdout = child.stdout.take().unwrap();
    let guard = ChildGuard::new("xds-interop-server", child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let test = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("test="))
        .unwrap_or_else(|| panic!("no test address in {line:?}"))
        .parse()
        .unwrap();
    (guard, test)
}

/// A bootstrap for the interop binaries: the control plane, and one `file_watcher` instance `instance` with the
/// given identity and bundle map.
fn interop_bootstrap(
    control_plane: &ControlPlane,
    node: &str,
    instance: &str,
    files: [&str; 3],
) -> String {
    serde_json::json!({
        "xds_servers": [{
            "server_uri": control_plane.local_addr().to_string(),
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }],
        "node": {"id": node, "locality": {"region": interop_driver::REGION, "zone": interop_driver::ZONE}},
        "server_listener_resource_name_template": DEFAULT_SERVER_LISTENER_NAME_TEMPLATE,
        "certificate_providers": {instance: {"plugin_name": "file_watcher", "config": {
            "certificate_file": files[0],
            "private_key_file": files[1],
            "spiffe_trust_bundle_map_file": files[2],
            "refresh_interval": "600s",
        }}},
    })
    .to_string()
}

/// gRPC's `mtls` security case: server and client in secure mode, the Listener requiring client certificates and
/// the cluster presenting one; every RPC succeeds, and a plaintext client is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interop_server_and_client_in_secure_mode_pass_the_mtls_case() {
    let (client_ca, server_ca) = (Ca::new("client.example"), Ca::new("server.example"));
    let dir = tempfile::tempdir().unwrap();
    let bundles = file(
        dir.path(),
        "bundles.json",
        &bundle_map(&[&client_ca, &server_ca]),
    );
    let control_plane = control_plane().await;

    let server_leaf = server_ca.issue(&Leaf::svid(SERVER_ID));
    let server_bootstrap = interop_bootstrap(
        &control_plane,
        "interop-server",
        "server",
        [
            &file(dir.path(), "server.crt", &server_leaf.chain_pem),
            &file(dir.path(), "server.key", &server_leaf.key_pem),
            &bundles,
        ],
    );
    let (_server, test) =
        tokio::task::spawn_blocking(move || secure_interop_server(&server_bootstrap, "secure-0"))
            .await
            .unwrap();
    control_plane
        .set_config(None, &config(interop_driver::SERVICE, test))
        .unwrap();

    let client_leaf = client_ca.issue(&Leaf::svid(CLIENT_ID));
    let client_bootstrap = interop_bootstrap(
        &control_plane,
        interop_driver::NODE,
        "client",
        [
            &file(dir.path(), "client.crt", &client_leaf.chain_pem),
            &file(dir.path(), "client.key", &client_leaf.key_pem),
            &bundles,
        ],
    );
    let mut client = Client::start(
        &client_bootstrap,
        &[
            "--secure_mode=true",
            "--qps=50",
            "--fail_on_failed_rpcs=true",
        ],
    )
    .await;
    client
        .until_peers(50, &["secure-0".to_owned()], false)
        .await;
    assert!(client.is_running(), "the client exited on a failed RPC");

    // The test port speaks only mTLS.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{test}"))
        .unwrap()
        .connect_lazy();
    let refused = mesh_tonic::interop::TestServiceClient::new(plain)
        .empty_call(mesh_tonic::interop::messages::Empty {})
        .await;
    assert!(refused.is_err(), "{refused:?}");
    control_plane.shutdown().await.unwrap();
}
