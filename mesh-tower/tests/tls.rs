//! Mutual TLS on the request path over real sockets: the mesh's client connections (`UpstreamTls` with certificate
//! providers) against a server accepting with `ServerTls`, SPIFFE verification across two trust domains (gRFC
//! A87), SAN matchers (gRFC A29), the certificates that must be rejected, and rotation with the `file_watcher`
//! provider during traffic.
// The fixtures below are test code too, outside `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use mesh_core::cluster::LbPolicy;
use mesh_core::matcher::StringMatcher;
use mesh_core::tls::{
    CertificateProviderInstance, CertificateValidation, DownstreamTls, UpstreamTls,
};
use mesh_tower::MeshService;
use mesh_tower::tls::{CertificateProvider, CertificateProviders, ServerTls, TrustRoots};
use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
use support::config::{cluster, leaf, loc, snapshot, to, vhost};
use support::pki::{Ca, Issued, Leaf, bundle_map, dns, uri};
use support::tls_backend::TlsBackend;
use support::{Answer, grpc, options};

const PATH: &str = "/helloworld.Greeter/SayHello";
const CLIENT_ID: &str = "spiffe://a.example/ns/default/sa/client";
const SERVER_ID: &str = "spiffe://b.example/ns/default/sa/server";

/// Two trust domains: clients live in `a.example`, servers in `b.example`; both trust both.
struct Pkis {
    a: Ca,
    b: Ca,
}

impl Pkis {
    fn new() -> Self {
        Self {
            a: Ca::new("a.example"),
            b: Ca::new("b.example"),
        }
    }

    fn bundles(&self) -> TrustRoots {
        TrustRoots::spiffe_from_json(bundle_map(&[&self.a, &self.b]).as_bytes()).unwrap()
    }
}

/// A server presenting `identity`, requiring a client certificate verified against `roots`.
async fn server(identity: &Issued, roots: TrustRoots) -> TlsBackend {
    let providers = CertificateProviders::new().with(CertificateProvider::with_material(
        "server",
        Some(identity.identity()),
        Some(roots),
    ));
    let instance = CertificateProviderInstance::new("server");
    let tls = DownstreamTls::new(instance.clone())
        .with_validation(Some(
            CertificateValidation::default().with_ca(Some(instance)),
        ))
        .with_require_client_certificate(true);
    TlsBackend::start(1, ServerTls::new(&tls, &providers).unwrap()).await
}

/// The upstream TLS of the test cluster: identity and roots from instance "client", SAN matchers as given.
fn upstream(matchers: Vec<StringMatcher>) -> UpstreamTls {
    let instance = CertificateProviderInstance::new("client");
    UpstreamTls::new(
        CertificateValidation::default()
            .with_ca(Some(instance.clone()))
            .with_san_matchers(matchers),
    )
    .with_identity(Some(instance))
}

/// A mesh whose cluster "c" is `backend` over `tls`, with `providers`.
fn mesh(backend: &TlsBackend, tls: UpstreamTls, providers: CertificateProviders) -> MeshService {
    let service = MeshService::new(options().with_certificate_providers(providers));
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![to("c")]),
        vec![leaf(
            cluster("c", LbPolicy::RoundRobin).with_tls(Some(tls)),
            vec![loc("z", 0, vec![backend.addr])],
        )],
        None,
    ))));
    service
}

fn client_providers(pkis: &Pkis, identity: &Issued) -> CertificateProviders {
    CertificateProviders::new().with(CertificateProvider::with_material(
        "client",
        Some(identity.identity()),
        Some(pkis.bundles()),
    ))
}

fn failure(answer: &Answer) -> String {
    assert!(!answer.ok(), "the call should have failed: {answer:?}");
    answer.grpc_message.clone().unwrap_or_default()
}

#[tokio::test]
async fn mutual_tls_across_two_trust_domains_authenticates_both_ends() {
    let pkis = Pkis::new();
    let backend = server(&pkis.b.issue(&Leaf::svid(SERVER_ID)), pkis.bundles()).await;
    let client = pkis.a.issue(&Leaf::svid(CLIENT_ID));
    let service = mesh(
        &backend,
        upstream(vec![StringMatcher::exact(SERVER_ID)]),
        client_providers(&pkis, &client),
    );

    for _ in 0..3 {
        let answer = grpc(&service, PATH, &[]).await;
        assert!(answer.ok(), "{answer:?}");
        // The server saw the client's SPIFFE ID from the verified certificate.
        assert_eq!(answer.backend.as_deref(), Some(CLIENT_ID));
    }
    assert_eq!(backend.peers(), [CLIENT_ID], "one connection, reused");
}

#[tokio::test]
async fn san_matchers_apply_to_every_kind_of_san_with_ignore_case() {
    let pkis = Pkis::new();
    let server_leaf =
        Leaf::svid(SERVER_ID).with_sans(vec![uri(SERVER_ID), dns("Server.B.Example")]);
    // With CA roots (no bundle map) a leaf may carry several SANs of any kind.
    let ca_roots =
        || TrustRoots::ca_from_pem(format!("{}{}", pkis.a.pem, pkis.b.pem).as_bytes()).unwrap();
    let backend = server(&pkis.b.issue(&server_leaf), ca_roots()).await;
    let client = pkis.a.issue(&Leaf::svid(CLIENT_ID));
    let providers = CertificateProviders::new().with(CertificateProvider::with_material(
        "client",
        Some(client.identity()),
        Some(ca_roots()),
    ));
    let dns_ignoring_case = StringMatcher::new(
        mesh_core::matcher::StringMatch::Exact("server.b.example".into()),
        true,
    );
    let service = mesh(
        &backend,
        upstream(vec![StringMatcher::exact("nope"), dns_ignoring_case]),
        providers.clone(),
    );
    assert!(grpc(&service, PATH, &[]).await.ok());

    let case_sensitive = mesh(
        &backend,
        upstream(vec![StringMatcher::exact("server.b.example")]),
        providers.clone(),
    );
    let message = failure(&grpc(&case_sensitive, PATH, &[]).await);
    assert!(message.contains("subject alternative name"), "{message}");

    let by_suffix = mesh(
        &backend,
        upstream(vec![StringMatcher::suffix("/sa/server")]),
        providers.clone(),
    );
    assert!(grpc(&by_suffix, PATH, &[]).await.ok());
    let by_regex = mesh(
        &backend,
        upstream(vec![
            StringMatcher::regex("spiffe://b\\.example/.*").unwrap(),
        ]),
        providers,
    );
    assert!(grpc(&by_regex, PATH, &[]).await.ok());
}

/// Each server certificate here must fail the client's verification, with the reason in the call's error.
#[tokio::test]
async fn the_client_rejects_bad_server_certificates() {
    let pkis = Pkis::new();
    let stranger = Ca::new("c.example");
    let svid = Leaf::svid(SERVER_ID);
    let cases: Vec<(&str, Issued, &str)> = vec![
        (
            "wrong SAN",
            pkis.b
                .issue(&Leaf::svid("spiffe://b.example/ns/default/sa/other")),
            "subject alternative name",
        ),
        (
            "unknown trust domain",
            stranger.issue(&Leaf::svid("spiffe://c.example/sa/server")),
            "no trust bundle for trust domain \"c.example\"",
        ),
        (
            "signed by another domain's CA",
            pkis.a.issue(&svid),
            "issuer is not a trusted root",
        ),
        (
            "expired",
            pkis.b.issue(&Leaf {
                validity: Some(((2000, 1, 1), (2001, 1, 1))),
                ..svid.clone()
            }),
            "expired",
        ),
        (
            "not yet valid",
            pkis.b.issue(&Leaf {
                validity: Some(((2090, 1, 1), (2091, 1, 1))),
                ..svid.clone()
            }),
            "not valid yet",
        ),
        (
            "CA certificate as leaf",
            pkis.b.as_identity(),
            "CA certificate was presented as the leaf",
        ),
        (
            "two URI SANs",
            pkis.b.issue(
                &svid
                    .clone()
                    .with_sans(vec![uri(SERVER_ID), uri("spiffe://b.example/x")]),
            ),
            "exactly one URI SAN, found 2",
        ),
        (
            "no URI SAN",
            pkis.b
                .issue(&svid.clone().with_sans(vec![dns("server.b.example")])),
            "exactly one URI SAN, found 0",
        ),
        (
            "malformed SPIFFE ID",
            pkis.b.issue(
                &svid
                    .clone()
                    .with_sans(vec![uri("spiffe://b.example/a/../b")]),
            ),
            "not a valid SPIFFE ID",
        ),
        (
            "not a SPIFFE URI",
            pkis.b.issue(
                &svid
                    .clone()
                    .with_sans(vec![uri("https://b.example/server")]),
            ),
            "not a valid SPIFFE ID",
        ),
        (
            "client-only extended key usage",
            pkis.b.issue(&Leaf {
                extended_key_usages: vec![ExtendedKeyUsagePurpose::ClientAuth],
                ..svid.clone()
            }),
            "extended key usage",
        ),
        (
            "keyCertSign on a leaf",
            pkis.b.issue(&Leaf {
                key_usages: vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyCertSign,
                ],
                ..svid.clone()
            }),
            "keyCertSign",
        ),
        (
            "no digitalSignature",
            pkis.b.issue(&Leaf {
                key_usages: vec![KeyUsagePurpose::KeyEncipherment],
                ..svid.clone()
            }),
            "digitalSignature",
        ),
    ];
    let client = pkis.a.issue(&Leaf::svid(CLIENT_ID));
    for (case, identity, reason) in cases {
        let backend = server(&identity, pkis.bundles()).await;
        let service = mesh(
            &backend,
            upstream(vec![StringMatcher::exact(SERVER_ID)]),
            client_providers(&pkis, &client),
        );
        let message = failure(&grpc(&service, PATH, &[]).await);
        assert!(
            message.contains(reason),
            "{case}: {message:?} should say {reason:?}"
        );
        assert!(
            backend.peers().is_empty(),
            "{case}: no connection may be established"
        );
    }
}

#[tokio::test]
async fn the_server_requires_and_verifies_client_certificates() {
    let pkis = Pkis::new();
    let backend = server(&pkis.b.issue(&Leaf::svid(SERVER_ID)), pkis.bundles()).await;

    // No client certificate.
    let no_identity = upstream(vec![]).with_identity(None);
    let service = mesh(
        &backend,
        no_identity,
        client_providers(&pkis, &pkis.a.issue(&Leaf::svid(CLIENT_ID))),
    );
    let _ = failure(&grpc(&service, PATH, &[]).await);

    // A client certificate from a trust domain the server does not know, and a server-only one.
    let stranger = Ca::new("c.example");
    let server_only = Leaf {
        extended_key_usages: vec![ExtendedKeyUsagePurpose::ServerAuth],
        ..Leaf::svid(CLIENT_ID)
    };
    for client in [
        stranger.issue(&Leaf::svid("spiffe://c.example/client")),
        pkis.a.issue(&server_only),
    ] {
        let service = mesh(&backend, upstream(vec![]), client_providers(&pkis, &client));
        let _ = failure(&grpc(&service, PATH, &[]).await);
    }
    assert!(backend.peers().is_empty());
    let failures = backend.failures().join("\n");
    assert!(
        failures.contains("no trust bundle for trust domain \"c.example\""),
        "{failures}"
    );
    assert!(failures.contains("extended key usage"), "{failures}");
}

#[tokio::test]
async fn misconfigured_tls_fails_calls_with_the_reason_and_never_falls_back_to_plaintext() {
    let pkis = Pkis::new();
    let backend = server(&pkis.b.issue(&Leaf::svid(SERVER_ID)), pkis.bundles()).await;
    let unknown = UpstreamTls::new(
        CertificateValidation::default().with_ca(Some(CertificateProviderInstance::new("missing"))),
    );
    let service = mesh(&backend, unknown, CertificateProviders::new());
    let message = failure(&grpc(&service, PATH, &[]).await);
    assert!(
        message.contains("certificate provider instance \"missing\" is not configured"),
        "{message}"
    );

    let system = UpstreamTls::new(CertificateValidation::default().with_system_root_certs(true));
    let message = failure(
        &grpc(
            &mesh(&backend, system, CertificateProviders::new()),
            PATH,
            &[],
        )
        .await,
    );
    assert!(
        message.contains("system root certificates are not supported"),
        "{message}"
    );
    assert!(
        backend.peers().is_empty() && backend.failures().is_empty(),
        "nothing reached the server"
    );
}

#[tokio::test]
async fn rotation_reaches_new_handshakes_and_keeps_existing_connections() {
    let pkis = Pkis::new();
    let backend = server(&pkis.b.issue(&Leaf::svid(SERVER_ID)), pkis.bundles()).await;
    let first = pkis.a.issue(&Leaf::svid(CLIENT_ID));
    let provider =
        CertificateProvider::with_material("client", Some(first.identity()), Some(pkis.bundles()));
    let providers = CertificateProviders::new().with(provider.clone());
    let service = mesh(&backend, upstream(vec![]), providers.clone());
    assert_eq!(
        grpc(&service, PATH, &[]).await.backend.as_deref(),
        Some(CLIENT_ID)
    );

    let rotated_id = "spiffe://a.example/ns/default/sa/client-v2";
    provider.set_identity(Some(pkis.a.issue(&Leaf::svid(rotated_id)).identity()));
    // The established connection keeps its handshake; a new one uses the new certificate at once.
    assert_eq!(
        grpc(&service, PATH, &[]).await.backend.as_deref(),
        Some(CLIENT_ID)
    );
    let fresh = mesh(&backend, upstream(vec![]), providers);
    assert_eq!(
        grpc(&fresh, PATH, &[]).await.backend.as_deref(),
        Some(rotated_id)
    );
}

#[tokio::test]
async fn a_reconnect_after_rotation_presents_the_new_certificate_without_resuming_the_old_session()
{
    let pkis = Pkis::new();
    let mut backend = server(&pkis.b.issue(&Leaf::svid(SERVER_ID)), pkis.bundles()).await;
    let provider = CertificateProvider::with_material(
        "client",
        Some(pkis.a.issue(&Leaf::svid(CLIENT_ID)).identity()),
        Some(pkis.bundles()),
    );
    let service = mesh(
        &backend,
        upstream(vec![]),
        CertificateProviders::new().with(provider.clone()),
    );
    assert_eq!(
        grpc(&service, PATH, &[]).await.backend.as_deref(),
        Some(CLIENT_ID)
    );

    let rotated_id = "spiffe://a.example/ns/default/sa/client-v2";
    provider.set_identity(Some(pkis.a.issue(&Leaf::svid(rotated_id)).identity()));
    backend.restart().await;
    // The same service reconnects; a resumed TLS session would carry the old identity instead.
    let reconnected = support::eventually(Duration::from_secs(5), async || {
        grpc(&service, PATH, &[]).await.ok()
    })
    .await;
    assert!(reconnected);
    assert_eq!(
        grpc(&service, PATH, &[]).await.backend.as_deref(),
        Some(rotated_id)
    );
    assert_eq!(backend.peers(), [CLIENT_ID, rotated_id]);
}
