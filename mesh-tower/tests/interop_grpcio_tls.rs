//! Our client against a gRPC server nobody on the team wrote: gRPC C-core (Python grpcio 1.85) serving TLS and
//! requiring a client certificate. The mesh's upstream mTLS presents our SPIFFE certificate (C-core authenticates
//! us and reports the identity back), verifies C-core's certificate with the cluster's SAN matchers, and refuses a
//! server whose SAN does not match. See `../shared/PEERS.md`.
// A panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use mesh_core::cluster::LbPolicy;
use mesh_core::matcher::StringMatcher;
use mesh_core::tls::{CertificateProviderInstance, CertificateValidation, UpstreamTls};
use mesh_test_support::{ChildGuard, python, script, spawn_ready};
use mesh_tower::MeshService;
use mesh_tower::tls::{CertificateProvider, CertificateProviders, TrustRoots};
use support::config::{cluster, leaf, loc, snapshot, to, vhost};
use support::pki::{Ca, Leaf, uri};
use support::{options, send};

const PATH: &str = "/helloworld.Greeter/SayHello";
const CLIENT_ID: &str = "spiffe://a.example/ns/default/sa/client";
const SERVER_ID: &str = "spiffe://a.example/ns/default/sa/greeter";

/// Starts the grpcio server with a certificate carrying `server_id`, trusting `ca` for client certificates.
fn grpcio_server(ca: &Ca, server_id: &str, dir: &std::path::Path) -> (ChildGuard, u16) {
    let server = ca.issue(&Leaf::svid(server_id).with_sans(vec![uri(server_id)]));
    let file = |name: &str, content: &str| {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    };
    let (cert, key, roots) = (
        file("server.crt", &server.chain_pem),
        file("server.key", &server.key_pem),
        file("ca.pem", &ca.pem),
    );
    let mut command = Command::new(python().expect("the interop venv"));
    command
        .arg(script("tls_greeter_server.py"))
        .args(["--address", "127.0.0.1:0", "--cert"])
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg("--ca")
        .arg(roots);
    let (guard, ready, _lines) =
        spawn_ready("grpcio TLS greeter", &mut command, Duration::from_secs(60))
            .expect("grpcio server");
    let port = ready.trim_start_matches("READY ").trim().parse().unwrap();
    (guard, port)
}

fn mesh(port: u16, ca: &Ca, san: &str) -> MeshService {
    let client = ca.issue(&Leaf::svid(CLIENT_ID));
    let roots = TrustRoots::ca_from_pem(ca.pem.as_bytes()).unwrap();
    let providers = CertificateProviders::new().with(CertificateProvider::with_material(
        "default",
        Some(client.identity()),
        Some(roots),
    ));
    let instance = CertificateProviderInstance::new("default");
    let tls = UpstreamTls::new(
        CertificateValidation::default()
            .with_ca(Some(instance.clone()))
            .with_san_matchers(vec![StringMatcher::exact(san)]),
    )
    .with_identity(Some(instance));
    let service = MeshService::new(options().with_certificate_providers(providers));
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![to("c")]),
        vec![leaf(
            cluster("c", LbPolicy::RoundRobin).with_tls(Some(tls)),
            vec![loc("z", 0, vec![([127, 0, 0, 1], port).into()])],
        )],
        None,
    ))));
    service
}

const HEADERS: &[(&str, &str)] = &[("content-type", "application/grpc"), ("te", "trailers")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_core_requiring_client_certificates_authenticates_our_spiffe_identity() {
    let ca = Ca::new("a.example");
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = grpcio_server(&ca, SERVER_ID, dir.path());

    let service = mesh(port, &ca, SERVER_ID);
    let answer = send(&service, PATH, HEADERS, Bytes::from_static(b"\0\0\0\0\0")).await;
    assert!(answer.ok(), "{answer:?}");
    // The reply is C-core's view of who we are: our certificate's SAN.
    let reply = String::from_utf8_lossy(answer.body.get(5..).unwrap_or_default()).into_owned();
    assert_eq!(reply, CLIENT_ID);

    // A server SAN other than the one the cluster expects is refused before any request is sent.
    let wrong = mesh(port, &ca, "spiffe://a.example/ns/default/sa/other");
    let answer = send(&wrong, PATH, HEADERS, Bytes::from_static(b"\0\0\0\0\0")).await;
    assert!(!answer.ok());
    let message = answer.grpc_message.unwrap_or_default();
    assert!(message.contains("subject alternative name"), "{message}");
}
