//! Our client against a gRPC server nobody on the team wrote: gRPC C-core (Python grpcio 1.85) serving TLS and
//! requiring a client certificate. The mesh's upstream mTLS presents our SPIFFE certificate (C-core authenticates
//! us and reports the identity back), verifies C-core's certificate with the cluster's SAN matchers, and refuses a
//! server whose SAN does not match. And C-core as a TLS client of our acceptor: refused without a client certificate,
//! identified by its SPIFFE ID with one. See `../shared/PEERS.md`.
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

/// Serves one greeter over our `ServerTls` on 127.0.0.1: replies (gRPC-framed) with the client's SPIFFE ID.
async fn our_server(tls: mesh_tower::tls::ServerTls) -> std::net::SocketAddr {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok((stream, peer)) = tls.accept(stream).await else {
                    return;
                };
                let id = peer
                    .and_then(|p| p.spiffe_id.map(|id| id.to_string()))
                    .unwrap_or_default();
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let id = id.clone();
                        async move {
                            let _ = request.into_body().collect().await;
                            let mut message = vec![0, 0, 0, 0, u8::try_from(id.len()).unwrap()];
                            message.extend_from_slice(id.as_bytes());
                            let mut trailers = http::HeaderMap::new();
                            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                            let frames = vec![
                                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(
                                    Bytes::from(message),
                                )),
                                Ok(hyper::body::Frame::trailers(trailers)),
                            ];
                            let body =
                                http_body_util::StreamBody::new(futures_util::stream::iter(frames));
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .header("content-type", "application/grpc")
                                    .body(body)
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    addr
}

/// Runs the grpcio client against `addr` and returns its one output line.
fn grpcio_client(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    identity: Option<&support::pki::Issued>,
    dir: &std::path::Path,
) -> String {
    let file = |name: &str, content: &str| {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    };
    let mut command = Command::new(python().expect("the interop venv"));
    command
        .arg(script("tls_client.py"))
        .args([
            "--target",
            &addr.to_string(),
            "--name",
            "greeter.a.example",
            "--ca",
        ])
        .arg(file("client-ca.pem", ca_pem));
    if let Some(identity) = identity {
        command
            .arg("--cert")
            .arg(file("client.crt", &identity.chain_pem))
            .arg("--key")
            .arg(file("client.key", &identity.key_pem));
    }
    let output = command.output().expect("run the grpcio client");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_core_as_a_client_is_verified_as_a_spiffe_identity_by_our_acceptor() {
    let ca = Ca::new("a.example");
    let bundles =
        TrustRoots::spiffe_from_json(support::pki::bundle_map(&[&ca]).as_bytes()).unwrap();
    // C-core checks the server name, so our server's certificate carries a DNS SAN besides its SPIFFE ID.
    let server = ca.issue(
        &Leaf::svid(SERVER_ID)
            .with_sans(vec![uri(SERVER_ID), support::pki::dns("greeter.a.example")]),
    );
    let providers = CertificateProviders::new().with(CertificateProvider::with_material(
        "server",
        Some(server.identity()),
        Some(bundles),
    ));
    let instance = CertificateProviderInstance::new("server");
    let tls = mesh_core::tls::DownstreamTls::new(instance.clone())
        .with_validation(Some(
            CertificateValidation::default().with_ca(Some(instance)),
        ))
        .with_require_client_certificate(true);
    let addr = our_server(mesh_tower::tls::ServerTls::new(&tls, &providers).unwrap()).await;
    let dir = tempfile::tempdir().unwrap();

    let client = ca.issue(&Leaf::svid(CLIENT_ID));
    let (ca_pem, path) = (ca.pem.clone(), dir.path().to_owned());
    let (without, with) = tokio::task::spawn_blocking(move || {
        (
            grpcio_client(addr, &ca_pem, None, &path),
            grpcio_client(addr, &ca_pem, Some(&client), &path),
        )
    })
    .await
    .unwrap();
    // Without a client certificate C-core is refused; with one, our acceptor hands the verified SPIFFE ID to the
    // handler.
    assert!(without.starts_with("ERROR UNAVAILABLE"), "{without}");
    let reply = with;
    assert_eq!(reply, format!("OK {CLIENT_ID}"));
}
