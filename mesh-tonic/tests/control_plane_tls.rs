//! TLS to the control plane (gRFC A65): a bootstrap whose `channel_creds` is `tls` reaches the xDS server over
//! mutual TLS (the server sees our certificate), and a server whose certificate does not name the `server_uri`
//! host is refused.
// The fixtures below are test code too, outside `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_core::tls::{CertificateProviderInstance, CertificateValidation, DownstreamTls};
use mesh_tonic::Mesh;
use mesh_tonic::testing::GreeterClient;
use mesh_tower::tls::{CertificateProvider, CertificateProviders, Identity, ServerTls, TrustRoots};
use mesh_xds_client::bootstrap::Bootstrap;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use support::{NODE, backend, call, locality, options, single_cluster, xds_server};
use tokio::net::{TcpListener, TcpStream};

const CLIENT_ID: &str = "spiffe://client.example/xds-client";

struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = params.self_signed(&key).unwrap().pem();
        Self {
            ca_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf with `sans`: (chain PEM, key PEM).
    fn leaf(&self, sans: Vec<SanType>) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans;
        (
            params.signed_by(&key, &self.issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    }
}

/// A TLS front for the plaintext xDS server at `upstream`: requires a client certificate of the PKI, records the
/// client's URI SAN, and relays bytes.
struct Front {
    addr: SocketAddr,
    peers: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Front {
    async fn start(pki: &Pki, server_sans: Vec<SanType>, upstream: SocketAddr) -> Self {
        let (chain, key) = pki.leaf(server_sans);
        let identity = Identity::from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
        let roots = TrustRoots::ca_from_pem(pki.ca_pem.as_bytes()).unwrap();
        let providers = CertificateProviders::new().with(CertificateProvider::with_material(
            "front",
            Some(identity),
            Some(roots),
        ));
        let instance = CertificateProviderInstance::new("front");
        let tls = DownstreamTls::new(instance.clone())
            .with_validation(Some(
                CertificateValidation::default().with_ca(Some(instance)),
            ))
            .with_require_client_certificate(true);
        let tls = ServerTls::new(&tls, &providers).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peers: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = Arc::clone(&peers);
        let task = tokio::spawn(async move {
            let mut relays = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (tls, seen) = (tls.clone(), Arc::clone(&seen));
                relays.spawn(async move {
                    let Ok((mut stream, peer)) = tls.accept(stream).await else {
                        return;
                    };
                    let id = peer
                        .and_then(|p| p.uri_sans.first().map(ToString::to_string))
                        .unwrap_or_default();
                    seen.lock().unwrap().push(id);
                    let mut plain = TcpStream::connect(upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut stream, &mut plain).await;
                });
            }
        });
        Self { addr, peers, task }
    }

    fn peers(&self) -> Vec<String> {
        self.peers.lock().unwrap().clone()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Writes the client's files and returns a bootstrap reaching `front` with `tls` credentials.
fn bootstrap(pki: &Pki, dir: &std::path::Path, front: SocketAddr) -> Bootstrap {
    let (chain, key) = pki.leaf(vec![SanType::URI(CLIENT_ID.try_into().unwrap())]);
    let file = |name: &str, content: &str| {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let json = serde_json::json!({
        "xds_servers": [{
            "server_uri": front.to_string(),
            "channel_creds": [{"type": "tls", "config": {
                "ca_certificate_file": file("ca.pem", &pki.ca_pem),
                "certificate_file": file("client.crt", &chain),
                "private_key_file": file("client.key", &key),
            }}],
        }],
        "node": {"id": NODE},
    });
    Bootstrap::from_json_str(&json.to_string()).unwrap()
}

#[tokio::test]
async fn the_control_plane_is_reached_over_mutual_tls() {
    let replica = backend([127, 0, 0, 1], "a").await;
    let server = xds_server(single_cluster(vec![locality("r", 0, &[&replica])])).await;
    let pki = Pki::new();
    let front = Front::start(
        &pki,
        vec![SanType::IpAddress([127, 0, 0, 1].into())],
        server.local_addr(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mesh = Mesh::builder()
        .bootstrap(bootstrap(&pki, dir.path(), front.addr))
        .mesh_options(options())
        .build()
        .await
        .unwrap();
    let mut client = GreeterClient::new(mesh.channel("xds:///greeter").unwrap());
    assert_eq!(call(&mut client).await.unwrap(), "a");
    assert_eq!(front.peers(), [CLIENT_ID]);
}

#[tokio::test]
async fn a_control_plane_certificate_for_another_host_is_refused() {
    let replica = backend([127, 0, 0, 1], "a").await;
    let server = xds_server(single_cluster(vec![locality("r", 0, &[&replica])])).await;
    let pki = Pki::new();
    let front = Front::start(
        &pki,
        vec![SanType::DnsName("xds.example.com".try_into().unwrap())],
        server.local_addr(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mesh = Mesh::builder()
        .bootstrap(bootstrap(&pki, dir.path(), front.addr))
        .mesh_options(options())
        .wait_for_ready(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let mut client = GreeterClient::new(mesh.channel("xds:///greeter").unwrap());
    let status = call(&mut client).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        front.peers().is_empty(),
        "no TLS session may be established"
    );
}

#[tokio::test]
async fn tls_credentials_without_a_ca_file_fail_the_build() {
    let json = serde_json::json!({
        "xds_servers": [{"server_uri": "127.0.0.1:1", "channel_creds": [{"type": "tls", "config": {}}]}],
        "node": {"id": NODE},
    });
    let error = Mesh::builder()
        .bootstrap(Bootstrap::from_json_str(&json.to_string()).unwrap())
        .build()
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("system root certificates are not supported"),
        "{error}"
    );
}
