//! Mutual TLS configured by xDS (gRFC A29): the control plane sends a cluster with an `UpstreamTlsContext` naming
//! the bootstrap's `file_watcher` certificate provider, and calls reach the backend over mTLS, the server's SAN
//! checked; a SAN the server does not have fails the calls.
// The fixtures below are test code too, outside `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod support;

use mesh_tonic::Mesh;
use mesh_tonic::testing::GreeterClient;
use mesh_xds_client::bootstrap::{CertificateProviderConfig, FileWatcherConfig};
use mesh_xds_server::mesh::{Cluster, Endpoint, Locality, MeshConfig, StringMatch, UpstreamTls};
use rcgen::SanType;
use support::tls::{CLIENT_ID, Front, Pki};
use support::{NODE, backend, call, greeter_to, options, xds_server};

const SERVER_ID: &str = "spiffe://server.example/ns/default/sa/greeter";

/// The greeter service over cluster "main", whose one endpoint is `front`, with mTLS expecting `san`.
fn config(front: &Front, san: &str) -> MeshConfig {
    let tls = UpstreamTls::new("default")
        .with_client_certificate("default")
        .with_san(StringMatch::exact(san));
    let cluster = Cluster::new("main")
        .with_locality(
            Locality::new("r", "r-a", "").with_endpoint(Endpoint::new(front.addr.to_string())),
        )
        .with_tls(tls);
    MeshConfig::new()
        .with_service(greeter_to("main"))
        .with_cluster(cluster)
}

async fn mesh(pki: &Pki, dir: &std::path::Path, xds: std::net::SocketAddr) -> Mesh {
    let (chain, key) = pki.client();
    let file = |name: &str, content: &str| {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let files = FileWatcherConfig::new()
        .with_identity(file("client.crt", &chain), file("client.key", &key))
        .with_ca_certificate_file(file("ca.pem", &pki.ca_pem));
    Mesh::builder()
        .xds_server(xds.to_string())
        .node_id(NODE)
        .certificate_provider("default", CertificateProviderConfig::file_watcher(files))
        .mesh_options(options())
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_cluster_with_upstream_tls_from_xds_is_called_over_mutual_tls() {
    let replica = backend([127, 0, 0, 1], "a").await;
    let pki = Pki::new();
    let front = Front::start(
        &pki,
        vec![SanType::URI(SERVER_ID.try_into().unwrap())],
        replica.address(),
    )
    .await;
    let server = xds_server(config(&front, SERVER_ID)).await;
    let dir = tempfile::tempdir().unwrap();
    let mesh = mesh(&pki, dir.path(), server.local_addr()).await;
    let mut client = GreeterClient::new(mesh.channel("xds:///greeter").unwrap());
    for _ in 0..3 {
        assert_eq!(call(&mut client).await.unwrap(), "a");
    }
    assert_eq!(
        front.peers(),
        [CLIENT_ID],
        "one mTLS connection, our identity"
    );
}

#[tokio::test]
async fn a_server_without_the_expected_san_is_refused() {
    let replica = backend([127, 0, 0, 1], "a").await;
    let pki = Pki::new();
    let front = Front::start(
        &pki,
        vec![SanType::URI(SERVER_ID.try_into().unwrap())],
        replica.address(),
    )
    .await;
    let server = xds_server(config(
        &front,
        "spiffe://server.example/ns/default/sa/other",
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mesh = mesh(&pki, dir.path(), server.local_addr()).await;
    let mut client = GreeterClient::new(mesh.channel("xds:///greeter").unwrap());
    let status = call(&mut client).await.unwrap_err();
    // The endpoint is unreachable: its handshakes fail on the SAN. With retries on, the last attempt reports "no
    // healthy endpoints", which carries the endpoint's last connection error: the TLS reason.
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .contains("no subject alternative name matches"),
        "{status:?}"
    );
    assert!(
        front.peers().is_empty(),
        "no TLS session may be established"
    );
}
