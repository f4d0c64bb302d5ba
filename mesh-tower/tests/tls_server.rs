//! The server side of TLS on its own: `accept` over real sockets with rustls clients, the peer certificate it hands
//! back, TLS 1.2 and 1.3, ALPN, and the listener settings that must be refused.
// The fixtures below are test code too, outside `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use mesh_core::endpoint::EndpointAddress;
use mesh_core::tls::{
    CertificateProviderInstance, CertificateValidation, DownstreamTls, UpstreamTls,
};
use mesh_tower::tls::{
    AcceptError, CertificateProvider, CertificateProviders, ClientTls, TlsConfigError, TrustRoots,
    accept,
};
use support::pki::{Ca, Leaf, bundle_map, dns, uri};
use tokio::net::{TcpListener, TcpStream};

const CLIENT_ID: &str = "spiffe://a.example/ns/default/sa/client";
const SERVER_ID: &str = "spiffe://a.example/ns/default/sa/server";

struct Setup {
    ca: Ca,
    providers: CertificateProviders,
    client_der: Vec<u8>,
}

/// Instance "server" holds the server's identity, "client" the client's; both trust the domain's bundle.
fn setup(client_leaf: &Leaf) -> Setup {
    let ca = Ca::new("a.example");
    let roots = || TrustRoots::spiffe_from_json(bundle_map(&[&ca]).as_bytes()).unwrap();
    let server = ca.issue(&Leaf::svid(SERVER_ID)).identity();
    let client = ca.issue(client_leaf);
    let providers = CertificateProviders::new()
        .with(CertificateProvider::with_material(
            "server",
            Some(server),
            Some(roots()),
        ))
        .with(CertificateProvider::with_material(
            "client",
            Some(client.identity()),
            Some(roots()),
        ));
    Setup {
        ca,
        providers,
        client_der: client.der.to_vec(),
    }
}

fn mutual(require: bool) -> DownstreamTls {
    DownstreamTls::new(CertificateProviderInstance::new("server"))
        .with_validation(Some(
            CertificateValidation::default()
                .with_ca(Some(CertificateProviderInstance::new("server"))),
        ))
        .with_require_client_certificate(require)
}

fn client(providers: &CertificateProviders, with_identity: bool) -> ClientTls {
    let instance = CertificateProviderInstance::new("client");
    let tls = UpstreamTls::new(CertificateValidation::default().with_ca(Some(instance.clone())))
        .with_identity(with_identity.then_some(instance));
    ClientTls::new(&tls, providers).unwrap()
}

/// Accepts one connection on 127.0.0.1 with `tls` while `connect` runs the client side.
async fn exchange<C, F>(
    tls: &DownstreamTls,
    providers: &CertificateProviders,
    connect: C,
) -> (
    Result<Option<mesh_core::peer::PeerCertificate>, AcceptError>,
    std::io::Result<()>,
)
where
    C: FnOnce(TcpStream) -> F,
    F: Future<Output = std::io::Result<()>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (server, client) = tokio::join!(
        async {
            let (stream, _) = listener.accept().await.unwrap();
            accept(stream, tls, providers).await.map(|(stream, peer)| {
                assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
                peer
            })
        },
        async { connect(TcpStream::connect(addr).await.unwrap()).await }
    );
    (server, client)
}

#[tokio::test]
async fn accept_returns_the_verified_client_certificate() {
    let leaf = Leaf::svid(CLIENT_ID).with_sans(vec![uri(CLIENT_ID), dns("client.a.example")]);
    let setup = setup(&leaf);
    let connector = client(&setup.providers, true);
    let address = EndpointAddress::Socket("127.0.0.1:1".parse().unwrap());
    let (server, client) = exchange(&mutual(true), &setup.providers, |stream| async move {
        connector.connect(&address, stream).await.map(drop)
    })
    .await;
    client.unwrap();
    let peer = server.unwrap().unwrap();
    assert_eq!(
        peer.spiffe_id.as_ref().map(ToString::to_string).as_deref(),
        Some(CLIENT_ID)
    );
    assert_eq!(peer.uri_sans, [Arc::from(CLIENT_ID)]);
    assert_eq!(peer.dns_sans, [Arc::from("client.a.example")]);
    assert_eq!(&*peer.subject, "CN=client");
    assert_eq!(&*peer.der, &setup.client_der[..]);
}

#[tokio::test]
async fn optional_client_certificates_and_server_only_tls() {
    let setup = setup(&Leaf::svid(CLIENT_ID));
    let address = || EndpointAddress::Socket("127.0.0.1:1".parse().unwrap());
    // Asked for but not required: a client without one is accepted, unauthenticated.
    let anonymous = client(&setup.providers, false);
    let (server, client_result) = exchange(&mutual(false), &setup.providers, |stream| async move {
        anonymous.connect(&address(), stream).await.map(drop)
    })
    .await;
    client_result.unwrap();
    assert!(server.unwrap().is_none());

    // Required: the same client is refused.
    let anonymous = client(&setup.providers, false);
    let (server, _) = exchange(&mutual(true), &setup.providers, |stream| async move {
        anonymous.connect(&address(), stream).await.map(drop)
    })
    .await;
    assert!(matches!(server, Err(AcceptError::Handshake(_))));

    // Server-only TLS: a client certificate is not even asked for.
    let plain = DownstreamTls::new(CertificateProviderInstance::new("server"));
    let with_identity = client(&setup.providers, true);
    let (server, client_result) = exchange(&plain, &setup.providers, |stream| async move {
        with_identity.connect(&address(), stream).await.map(drop)
    })
    .await;
    client_result.unwrap();
    assert!(server.unwrap().is_none());
}

#[tokio::test]
async fn tls_1_2_clients_are_served_too() {
    let setup = setup(&Leaf::svid(CLIENT_ID));
    // A plain rustls client limited to TLS 1.2, presenting a certificate of the domain.
    use rustls::pki_types::pem::PemObject;
    let identity = setup.ca.issue(&Leaf::svid(CLIENT_ID));
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_client_auth_cert(vec![identity.der.clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let (server, client_result) = exchange(&mutual(true), &setup.providers, |stream| async move {
        let name = rustls::pki_types::ServerName::try_from("server.a.example").unwrap();
        let stream = connector.connect(name, stream).await?;
        assert_eq!(
            stream.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );
        Ok(())
    })
    .await;
    client_result.unwrap();
    assert!(server.unwrap().is_some());
}

#[tokio::test]
async fn listener_settings_that_cannot_be_honoured_are_refused() {
    let setup = setup(&Leaf::svid(CLIENT_ID));
    let no_validation = DownstreamTls::new(CertificateProviderInstance::new("server"))
        .with_require_client_certificate(true);
    let unknown = DownstreamTls::new(CertificateProviderInstance::new("nope"));
    for (tls, expected) in [
        (
            no_validation,
            TlsConfigError::ClientCertificateWithoutValidation,
        ),
        (unknown, TlsConfigError::UnknownProvider("nope".into())),
    ] {
        let (server, _) = exchange(&tls, &setup.providers, |stream| async move {
            drop(stream);
            Ok(())
        })
        .await;
        match server {
            Err(AcceptError::Config(error)) => assert_eq!(error, expected),
            other => panic!("{other:?}"),
        }
    }
}

/// The TLS 1.2 client above checks nothing itself: the test is about the server.
#[derive(Debug)]
struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        vec![rustls::SignatureScheme::ECDSA_NISTP256_SHA256]
    }
}
