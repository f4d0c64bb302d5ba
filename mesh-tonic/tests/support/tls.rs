//! A test PKI and a TLS front: a relay that terminates (mutual) TLS with `ServerTls` and forwards the bytes to a
//! plaintext server, recording the client identity of every accepted connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use mesh_core::tls::{CertificateProviderInstance, CertificateValidation, DownstreamTls};
use mesh_tower::tls::{CertificateProvider, CertificateProviders, Identity, ServerTls, TrustRoots};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use tokio::net::{TcpListener, TcpStream};

/// The URI SAN of client certificates made by [`Pki::client`].
pub const CLIENT_ID: &str = "spiffe://client.example/xds-client";

pub struct Pki {
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = params.self_signed(&key).unwrap().pem();
        Self {
            ca_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A client leaf with URI SAN [`CLIENT_ID`]: (chain PEM, key PEM).
    pub fn client(&self) -> (String, String) {
        self.leaf(vec![SanType::URI(CLIENT_ID.try_into().unwrap())])
    }

    /// A leaf with `sans`: (chain PEM, key PEM).
    pub fn leaf(&self, sans: Vec<SanType>) -> (String, String) {
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
pub struct Front {
    pub addr: SocketAddr,
    peers: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Front {
    pub async fn start(pki: &Pki, server_sans: Vec<SanType>, upstream: SocketAddr) -> Self {
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

    pub fn peers(&self) -> Vec<String> {
        self.peers.lock().unwrap().clone()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}
