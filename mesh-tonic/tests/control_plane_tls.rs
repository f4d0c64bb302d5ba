//! TLS to the control plane (gRFC A65): a bootstrap whose `channel_creds` is `tls` reaches the xDS server over
//! mutual TLS (the server sees our certificate), and a server whose certificate does not name the `server_uri`
//! host is refused.
// The fixtures below are test code too, outside `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use mesh_tonic::Mesh;
use mesh_tonic::testing::GreeterClient;
use mesh_xds_client::bootstrap::Bootstrap;
use rcgen::SanType;
use support::tls::{CLIENT_ID, Front, Pki};
use support::{NODE, backend, call, locality, options, single_cluster, xds_server};

/// Writes the client's files and returns a bootstrap reaching `front` with `tls` credentials.
fn bootstrap(pki: &Pki, dir: &std::path::Path, front: SocketAddr) -> Bootstrap {
    let (chain, key) = pki.client();
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
