//! Mutual TLS between our client and our xDS-enabled server (gRFC A29, A36, A41, A87), both configured by
//! mesh-xds-server over real sockets: the client's cluster carries an `UpstreamTlsContext`, the server's Listener a
//! `DownstreamTlsContext` requiring client certificates, both naming `file_watcher` certificate providers of their
//! bootstraps. PKIs in two trust domains (clients in `client.example`, the server in `server.example`, each side
//! trusting both through a SPIFFE bundle map) and an outsider domain the server does not trust.
// Fixtures and assertions fail tests by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../mesh-tower/tests/support/pki.rs"]
#[allow(dead_code, unreachable_pub)]
mod pki;
mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mesh_core::endpoint::EndpointAddress;
use mesh_core::peer::ConnectionInfo;
use mesh_core::tls::{CertificateProviderInstance, CertificateValidation};
use mesh_tonic::server::RequestBody;
use mesh_tonic::testing::{GreeterClient, GreeterServer};
use mesh_tonic::{Mesh, XdsServer};
use mesh_tower::tls::{CertificateProviders, ClientTls, describe_certificate};
use mesh_xds_client::bootstrap::{
    Bootstrap, CertificateProviderConfig, ChannelCreds, FileWatcherConfig,
};
use mesh_xds_server::XdsServer as ControlPlane;
use mesh_xds_server::mesh::{
    Authenticated, Cluster, DEFAULT_SERVER_LISTENER_NAME_TEMPLATE, DownstreamTls, Endpoint,
    Locality, MeshConfig, Permission, Principal, Rbac, RbacAction, RbacPolicy, ServerListener,
    StringMatch, UpstreamTls,
};
use pki::{Ca, Issued, Leaf, bundle_map};
use support::{Load, PATIENCE, call, greeter_to, options};
use tonic::Code;

const CLIENT_ID: &str = "spiffe://client.example/ns/default/sa/frontend";
const OTHER_CLIENT_ID: &str = "spiffe://client.example/ns/default/sa/batch";
const OUTSIDER_ID: &str = "spiffe://outsider.example/ns/default/sa/frontend";
const SERVER_ID: &str = "spiffe://server.example/ns/default/sa/greeter";
const ROTATED_SERVER_ID: &str = "spiffe://server.example/ns/default/sa/greeter-v2";

struct Pkis {
    client: Ca,
    server: Ca,
    outsider: Ca,
}

impl Pkis {
    fn new() -> Self {
        Self {
            client: Ca::new("client.example"),
            server: Ca::new("server.example"),
            outsider: Ca::new("outsider.example"),
        }
    }

    /// The bundle map both sides trust: the client and server domains, not the outsider's.
    fn bundles(&self) -> String {
        bundle_map(&[&self.client, &self.server])
    }
}

/// A directory laid out like a Kubernetes secret volume (`tls.crt`, `tls.key`, `bundles.json` as symlinks into
/// `..data`), so a rotation swaps all three at once.
struct Secrets {
    dir: tempfile::TempDir,
    version: usize,
}

impl Secrets {
    fn new(identity: Option<&Issued>, bundles: &str) -> Self {
        let mut secrets = Self {
            dir: tempfile::tempdir().unwrap(),
            version: 0,
        };
        secrets.publish(identity, bundles);
        for name in ["tls.crt", "tls.key", "bundles.json"] {
            std::os::unix::fs::symlink(Path::new("..data").join(name), secrets.path(name)).unwrap();
        }
        secrets
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn publish(&mut self, identity: Option<&Issued>, bundles: &str) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        std::fs::create_dir(self.path(&version)).unwrap();
        if let Some(identity) = identity {
            std::fs::write(self.path(&version).join("tls.crt"), &identity.chain_pem).unwrap();
            std::fs::write(self.path(&version).join("tls.key"), &identity.key_pem).unwrap();
        }
        std::fs::write(self.path(&version).join("bundles.json"), bundles).unwrap();
        let staging = self.path("..data_tmp");
        std::os::unix::fs::symlink(&version, &staging).unwrap();
        std::fs::rename(&staging, self.path("..data")).unwrap();
    }

    /// The bootstrap's `file_watcher` instance over these files.
    fn provider(&self, with_identity: bool) -> CertificateProviderConfig {
        let path = |name: &str| self.path(name).display().to_string();
        let mut files =
            FileWatcherConfig::new().with_spiffe_trust_bundle_map_file(path("bundles.json"));
        if with_identity {
            files = files.with_identity(path("tls.crt"), path("tls.key"));
        }
        CertificateProviderConfig::file_watcher(files)
    }
}

/// The mesh: service `greeter` to cluster `main`, whose one endpoint is the server at `address`, called over mTLS
/// presenting the `client` instance's certificate and expecting a server of `server.example`; the server's Listener
/// requires client certificates checked against the `server` instance's bundles, and applies `rbac`.
fn config(address: SocketAddr, rbac: Option<Rbac>) -> MeshConfig {
    let upstream = UpstreamTls::new("client")
        .with_client_certificate("client")
        .with_san(StringMatch::prefix("spiffe://server.example/"));
    let cluster = Cluster::new("main")
        .with_locality(
            Locality::new("r", "r-a", "").with_endpoint(Endpoint::new(address.to_string())),
        )
        .with_tls(upstream);
    let mut server = ServerListener::new(address.to_string())
        .with_tls(DownstreamTls::new("server").requiring_client_certificate("server"));
    if let Some(rbac) = rbac {
        server = server.with_rbac(rbac);
    }
    MeshConfig::new()
        .with_service(greeter_to("main"))
        .with_cluster(cluster)
        .with_server(server)
}

/// The application: a greeter that records the SPIFFE ID of every caller it sees in `ConnectionInfo`.
fn app(
    seen: Arc<Mutex<Vec<String>>>,
) -> impl tower_service::Service<
    http::Request<RequestBody>,
    Response = http::Response<tonic::body::Body>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    let greeter = GreeterServer::new("tls");
    tower::service_fn(move |request: http::Request<RequestBody>| {
        let (mut greeter, seen) = (greeter.clone(), Arc::clone(&seen));
        async move {
            let info = request.extensions().get::<Arc<ConnectionInfo>>().cloned();
            let id = info
                .as_ref()
                .filter(|info| info.is_authenticated())
                .and_then(|info| info.peer_certificate.as_ref())
                .and_then(|peer| peer.spiffe_id.as_ref())
                .map_or_else(|| "(none)".to_owned(), ToString::to_string);
            seen.lock().unwrap().push(id);
            tower_service::Service::call(&mut greeter, request).await
        }
    })
}

/// Our xDS-enabled server on a free port, with the `server` provider over `secrets`.
async fn server(
    control_plane: &ControlPlane,
    secrets: &Secrets,
    seen: Arc<Mutex<Vec<String>>>,
) -> (XdsServer, Mesh) {
    let bootstrap = Bootstrap::builder()
        .server(
            control_plane.local_addr().to_string(),
            ChannelCreds::Insecure,
        )
        .node_id("tls-server")
        .server_listener_resource_name_template(DEFAULT_SERVER_LISTENER_NAME_TEMPLATE)
        .certificate_provider("server", secrets.provider(true))
        .build()
        .unwrap();
    let mesh = Mesh::builder().bootstrap(bootstrap).build().await.unwrap();
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = mesh
        .server()
        .serve_with_listener(socket, app(seen))
        .await
        .unwrap();
    (server, mesh)
}

/// A client mesh whose `client` provider holds `identity` (none: roots only) and the trusted bundles.
async fn client(control_plane: &ControlPlane, secrets: &Secrets, with_identity: bool) -> Mesh {
    Mesh::builder()
        .xds_server(control_plane.local_addr().to_string())
        .node_id("tls-client")
        .certificate_provider("client", secrets.provider(with_identity))
        .mesh_options(options())
        .build()
        .await
        .unwrap()
}

/// Waits until `server` serves (its Listener arrived).
async fn serving(server: &XdsServer) {
    let mut state = server.watch_serving_state();
    tokio::time::timeout(
        PATIENCE,
        state.wait_for(mesh_tonic::ServingState::is_serving),
    )
    .await
    .expect("the server did not start serving")
    .unwrap();
}

struct Setup {
    pkis: Pkis,
    control_plane: ControlPlane,
    server: XdsServer,
    server_mesh: Mesh,
    server_secrets: Secrets,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Setup {
    async fn start(rbac: Option<Rbac>) -> Self {
        let pkis = Pkis::new();
        let control_plane = mesh_xds_server::XdsServer::builder()
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let server_secrets = Secrets::new(
            Some(&pkis.server.issue(&Leaf::svid(SERVER_ID))),
            &pkis.bundles(),
        );
        let seen = Arc::default();
        let (server, server_mesh) =
            server(&control_plane, &server_secrets, Arc::clone(&seen)).await;
        control_plane
            .set_config(None, &config(server.local_addr(), rbac))
            .unwrap();
        serving(&server).await;
        Self {
            pkis,
            control_plane,
            server,
            server_mesh,
            server_secrets,
            seen,
        }
    }

    /// A client presenting a certificate for `id` issued by `ca` (none: no certificate).
    async fn client(&self, identity: Option<(&Ca, &str)>) -> (Mesh, Secrets) {
        let issued = identity.map(|(ca, id)| ca.issue(&Leaf::svid(id)));
        let secrets = Secrets::new(issued.as_ref(), &self.pkis.bundles());
        let mesh = client(&self.control_plane, &secrets, issued.is_some()).await;
        (mesh, secrets)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn greeter(mesh: &Mesh) -> GreeterClient<mesh_tonic::Channel> {
    GreeterClient::new(mesh.channel("xds:///greeter").unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_configured_by_the_control_plane_hands_the_client_identity_to_the_handler() {
    let setup = Setup::start(None).await;
    let (mesh, _secrets) = setup.client(Some((&setup.pkis.client, CLIENT_ID))).await;
    let mut client = greeter(&mesh);
    for _ in 0..3 {
        assert_eq!(call(&mut client).await.unwrap(), "tls");
    }
    assert_eq!(setup.seen(), [CLIENT_ID; 3]);
    assert_eq!(setup.server.tls_handshake_failures(), 0);

    // A plaintext client is never served: its connection fails the handshake.
    let plain =
        tonic::transport::Endpoint::from_shared(format!("http://{}", setup.server.local_addr()))
            .unwrap()
            .connect_lazy();
    let mut request = tonic::Request::new(mesh_tonic::testing::HelloRequest { name: "x".into() });
    request.set_timeout(PATIENCE);
    assert!(GreeterClient::new(plain).say_hello(request).await.is_err());
    assert_eq!(
        setup.seen().len(),
        3,
        "the plaintext call never reached the handler"
    );
    wait_for_failures(&setup.server, 1).await;
}

/// Waits until the server has counted `count` failed handshakes (the count is bumped as the server closes).
async fn wait_for_failures(server: &XdsServer, count: u64) {
    tokio::time::timeout(PATIENCE, async {
        while server.tls_handshake_failures() < count {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{} handshake failures, not {count}",
            server.tls_handshake_failures()
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_certificate_or_from_an_unknown_trust_domain_are_refused() {
    let setup = Setup::start(None).await;
    let (without, _a) = setup.client(None).await;
    let status = call(&mut greeter(&without)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    wait_for_failures(&setup.server, 1).await;

    let (outsider, _b) = setup
        .client(Some((&setup.pkis.outsider, OUTSIDER_ID)))
        .await;
    let status = call(&mut greeter(&outsider)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    wait_for_failures(&setup.server, 2).await;
    assert!(
        setup.seen().is_empty(),
        "no refused client reached the handler"
    );

    // The same server serves a client of a trusted domain.
    let (trusted, _c) = setup.client(Some((&setup.pkis.client, CLIENT_ID))).await;
    assert_eq!(call(&mut greeter(&trusted)).await.unwrap(), "tls");
    assert_eq!(setup.seen(), [CLIENT_ID]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_on_the_exact_spiffe_id_allows_one_identity_and_denies_another() {
    let rbac = Rbac::new(RbacAction::Allow).with_policy(RbacPolicy::new(
        "frontend-only",
        vec![Permission::Any],
        vec![Principal::Authenticated(Authenticated::new(
            StringMatch::exact(CLIENT_ID),
        ))],
    ));
    let setup = Setup::start(Some(rbac)).await;
    let (allowed, _a) = setup.client(Some((&setup.pkis.client, CLIENT_ID))).await;
    assert_eq!(call(&mut greeter(&allowed)).await.unwrap(), "tls");

    let (denied, _b) = setup
        .client(Some((&setup.pkis.client, OTHER_CLIENT_ID)))
        .await;
    let status = call(&mut greeter(&denied)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(
        setup.seen(),
        [CLIENT_ID],
        "the denied call never reached the handler"
    );
    assert_eq!(
        setup.server.tls_handshake_failures(),
        0,
        "both clients were authenticated"
    );
}

/// The URI SAN of the certificate the server at `address` presents to a new handshake.
async fn presented_identity(address: SocketAddr, pkis: &Pkis) -> String {
    let roots = mesh_tower::tls::TrustRoots::spiffe_from_json(pkis.bundles().as_bytes()).unwrap();
    let identity = pkis.client.issue(&Leaf::svid(CLIENT_ID)).identity();
    let providers = CertificateProviders::new().with(
        mesh_tower::tls::CertificateProvider::with_material("probe", Some(identity), Some(roots)),
    );
    let instance = CertificateProviderInstance::new("probe");
    let tls = mesh_core::tls::UpstreamTls::new(
        CertificateValidation::default().with_ca(Some(instance.clone())),
    )
    .with_identity(Some(instance));
    let tls = ClientTls::new(&tls, &providers).unwrap();
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let stream = tls
        .connect(&EndpointAddress::Socket(address), stream)
        .await
        .unwrap();
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    describe_certificate(&leaf).unwrap().uri_sans[0].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_rotated_during_steady_traffic_fails_no_call_and_serves_new_handshakes()
 {
    let mut setup = Setup::start(None).await;
    assert_eq!(
        presented_identity(setup.server.local_addr(), &setup.pkis).await,
        SERVER_ID
    );
    let (mesh, _secrets) = setup.client(Some((&setup.pkis.client, CLIENT_ID))).await;
    let channel = mesh.channel("xds:///greeter").unwrap();
    let load = Load::start(&channel, 4);
    load.wait_for(50).await;

    let provider = setup
        .server_mesh
        .certificate_providers()
        .get("server")
        .unwrap()
        .clone();
    let mut status = provider.subscribe();
    let before = status.borrow_and_update().updates;
    let rotated = setup.pkis.server.issue(&Leaf::svid(ROTATED_SERVER_ID));
    let bundles = setup.pkis.bundles();
    setup.server_secrets.publish(Some(&rotated), &bundles);
    tokio::time::timeout(
        PATIENCE,
        status.wait_for(|s| s.updates > before && s.errors.is_empty()),
    )
    .await
    .expect("the server's provider did not reload")
    .unwrap();
    load.wait_for(50).await;
    let total = load.len();
    let failures = load.failures(0);
    load.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {total} calls failed: {failures:?}",
        failures.len()
    );
    assert_eq!(
        presented_identity(setup.server.local_addr(), &setup.pkis).await,
        ROTATED_SERVER_ID,
        "new handshakes present the rotated certificate"
    );
    // New connections from our client see it too: a fresh mesh succeeds against the rotated server.
    let (fresh, _fresh_secrets) = setup.client(Some((&setup.pkis.client, CLIENT_ID))).await;
    assert_eq!(call(&mut greeter(&fresh)).await.unwrap(), "tls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_naming_a_provider_plugin_this_build_cannot_run_refuses_every_connection() {
    let control_plane = mesh_xds_server::XdsServer::builder()
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    // The bootstrap names instance "server", so the Listener is accepted (ACKed), but its plugin is not one this
    // library runs: the mesh has no provider of that name.
    let bootstrap = Bootstrap::builder()
        .server(
            control_plane.local_addr().to_string(),
            ChannelCreds::Insecure,
        )
        .node_id("tls-server")
        .server_listener_resource_name_template(DEFAULT_SERVER_LISTENER_NAME_TEMPLATE)
        .certificate_provider(
            "server",
            CertificateProviderConfig::new("spire_agent", serde_json::json!({})),
        )
        .build()
        .unwrap();
    let mesh = Mesh::builder().bootstrap(bootstrap).build().await.unwrap();
    assert!(mesh.certificate_providers().get("server").is_none());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = mesh
        .server()
        .serve_with_listener(socket, app(Arc::clone(&seen)))
        .await
        .unwrap();
    control_plane
        .set_config(None, &config(server.local_addr(), None))
        .unwrap();
    serving(&server).await;

    let plain = tonic::transport::Endpoint::from_shared(format!("http://{}", server.local_addr()))
        .unwrap()
        .connect_lazy();
    let mut request = tonic::Request::new(mesh_tonic::testing::HelloRequest { name: "x".into() });
    request.set_timeout(PATIENCE);
    assert!(GreeterClient::new(plain).say_hello(request).await.is_err());
    assert!(seen.lock().unwrap().is_empty(), "never served in plaintext");
    assert_eq!(
        server.tls_handshake_failures(),
        0,
        "refused before any handshake: the chain has no TLS to offer"
    );
    assert!(server.serving_state().is_serving());
}
