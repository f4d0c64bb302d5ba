//! The cost of mutual TLS on loopback: a full mTLS handshake with SPIFFE verification on both sides (against a TCP
//! connect alone), and steady-state throughput of `MeshService` over an mTLS connection against the same over
//! plaintext (one reused HTTP/2 connection each, concurrency 64, rounds alternating). Run with
//! `cargo bench -p mesh-benches --bench tls`.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    missing_docs
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::cluster::Cluster;
use mesh_core::endpoint::{Endpoint, EndpointAddress, EndpointSet, LocalityEndpoints};
use mesh_core::listener::{HttpConnectionManager, Listener, RouteSource};
use mesh_core::locality::Locality;
use mesh_core::route::{Route, RouteAction, RouteConfig, RouteMatch, VirtualHost};
use mesh_core::snapshot::{ClusterConfig, ConfigSnapshot};
use mesh_core::tls::{
    CertificateProviderInstance, CertificateValidation, DownstreamTls, UpstreamTls,
};
use mesh_tower::tls::{
    CertificateProvider, CertificateProviders, ClientTls, Identity, ServerTls, TrustRoots,
};
use mesh_tower::{MeshOptions, MeshService};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType,
};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

const PATH: &str = "/helloworld.Greeter/SayHello";
const HANDSHAKES: usize = 300;
const WINDOW: Duration = Duration::from_secs(2);
const CONCURRENCY: usize = 64;
const ROUNDS: usize = 3;

/// One trust domain; both ends hold an SVID of it and the domain's bundle.
fn providers() -> CertificateProviders {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_der = ca.self_signed(&ca_key).unwrap().der().clone();
    let issuer = Issuer::new(ca, ca_key);
    let svid = |id: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![SanType::URI(id.try_into().unwrap())];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let certificate = params.signed_by(&key, &issuer).unwrap();
        Identity::from_pem(certificate.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap()
    };
    let roots = || {
        TrustRoots::spiffe(
            [(
                "bench.example".parse().unwrap(),
                mesh_tower::tls::RootSet::from_der(std::slice::from_ref(&ca_der)).unwrap(),
            )]
            .into(),
        )
    };
    CertificateProviders::new()
        .with(CertificateProvider::with_material(
            "server",
            Some(svid("spiffe://bench.example/server")),
            Some(roots()),
        ))
        .with(CertificateProvider::with_material(
            "client",
            Some(svid("spiffe://bench.example/client")),
            Some(roots()),
        ))
}

fn server_tls(providers: &CertificateProviders) -> ServerTls {
    let instance = CertificateProviderInstance::new("server");
    let tls = DownstreamTls::new(instance.clone())
        .with_validation(Some(
            CertificateValidation::default().with_ca(Some(instance)),
        ))
        .with_require_client_certificate(true);
    ServerTls::new(&tls, providers).unwrap()
}

fn upstream() -> UpstreamTls {
    let instance = CertificateProviderInstance::new("client");
    UpstreamTls::new(CertificateValidation::default().with_ca(Some(instance.clone())))
        .with_identity(Some(instance))
}

/// An HTTP/2 server answering grpc-status 0, over TLS when `tls` is set.
async fn serve(tls: Option<ServerTls>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let _message = req.into_body().collect().await;
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/grpc")
                                .header("grpc-status", "0")
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    },
                );
                let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                match tls {
                    Some(tls) => {
                        let Ok((stream, _)) = tls.accept(stream).await else {
                            return;
                        };
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    addr
}

fn mesh(
    addr: SocketAddr,
    tls: Option<UpstreamTls>,
    providers: &CertificateProviders,
) -> MeshService {
    let endpoints = Arc::new(EndpointSet::new(
        "c",
        vec![LocalityEndpoints::new(
            Locality::new("local", "a", ""),
            0,
            1,
            vec![Endpoint::new(addr)],
        )],
    ));
    let cluster = Arc::new(Cluster::eds("c").with_tls(tls));
    let routes = Arc::new(RouteConfig::new(
        "r",
        vec![VirtualHost::new(
            "vh",
            &["*"],
            vec![Route::new(RouteMatch::any(), RouteAction::cluster("c"))],
        )],
    ));
    let hcm = HttpConnectionManager::new(RouteSource::Rds("r".into()));
    let listener = Arc::new(Listener::client("bench", hcm));
    let snapshot = ConfigSnapshot::builder("bench", listener, routes)
        .cluster(ClusterConfig::with_endpoints(cluster, endpoints))
        .build(1)
        .unwrap();
    let service = MeshService::new(
        MeshOptions::default()
            .with_rng_seed(1)
            .with_certificate_providers(providers.clone()),
    );
    service.update(Some(Ok(Arc::new(snapshot))));
    service
}

async fn call(service: &MeshService) -> bool {
    let request = http::Request::post(PATH)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")))
        .unwrap();
    match service.clone().oneshot(request).await {
        Ok(response) => {
            let ok = response
                .headers()
                .get("grpc-status")
                .is_some_and(|s| s == "0");
            let _ = response.into_body().collect().await;
            ok
        }
        Err(_) => false,
    }
}

/// Completed calls per second over `WINDOW` at `CONCURRENCY`.
async fn throughput(service: &MeshService) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (service, stop, done) = (service.clone(), Arc::clone(&stop), Arc::clone(&done));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    assert!(call(&service).await);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    tokio::time::sleep(WINDOW).await;
    stop.store(true, Ordering::Relaxed);
    let counted = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    for worker in workers {
        worker.await.unwrap();
    }
    counted as f64 / elapsed.as_secs_f64()
}

/// The `per_mille`-th of `sorted` (500 for the median).
fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    let index = sorted.len().saturating_sub(1) * per_mille / 1000;
    sorted.get(index).copied().unwrap_or_default()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let providers = providers();
        let tls_addr = serve(Some(server_tls(&providers))).await;
        let plain_addr = serve(None).await;

        // Handshakes: TCP connect + full mTLS handshake (no resumption), sequential.
        let client = ClientTls::new(&upstream(), &providers).unwrap();
        let address = EndpointAddress::Socket(tls_addr);
        let mut tls_times = Vec::with_capacity(HANDSHAKES);
        let mut tcp_times = Vec::with_capacity(HANDSHAKES);
        for _ in 0..HANDSHAKES {
            let start = Instant::now();
            let stream = TcpStream::connect(plain_addr).await.unwrap();
            tcp_times.push(start.elapsed());
            drop(stream);
            let start = Instant::now();
            let stream = TcpStream::connect(tls_addr).await.unwrap();
            let _stream = client.connect(&address, stream).await.unwrap();
            tls_times.push(start.elapsed());
        }
        tls_times.sort();
        tcp_times.sort();
        println!(
            "handshake: TCP connect p50 {:?}; TCP + mTLS (SPIFFE, ECDSA P-256, TLS 1.3) p50 {:?} p99 {:?}",
            percentile(&tcp_times, 500),
            percentile(&tls_times, 500),
            percentile(&tls_times, 990),
        );

        // Steady state over one reused connection each.
        let secure = mesh(tls_addr, Some(upstream()), &providers);
        let plain = mesh(plain_addr, None, &providers);
        assert!(call(&secure).await && call(&plain).await);
        let (mut secure_rates, mut plain_rates) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            plain_rates.push(throughput(&plain).await);
            secure_rates.push(throughput(&secure).await);
        }
        let best = |rates: &[f64]| rates.iter().copied().fold(0.0, f64::max);
        let (secure_best, plain_best) = (best(&secure_rates), best(&plain_rates));
        println!(
            "throughput at concurrency {CONCURRENCY}: plaintext {plain_best:.0}/s, mTLS {secure_best:.0}/s, ratio {:.3}",
            secure_best / plain_best
        );
    });
}
