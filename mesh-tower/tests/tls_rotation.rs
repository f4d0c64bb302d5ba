//! Certificate rotation with the `file_watcher` provider (gRFC A29) over real sockets: files swapped the way a
//! Kubernetes secret volume swaps them (a `..data` symlink), during steady traffic; a bad file keeps the previous
//! material and is reported.
// The fixtures below are test code too, outside `#[test]` functions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use mesh_core::cluster::LbPolicy;
use mesh_core::tls::{
    CertificateProviderInstance, CertificateValidation, DownstreamTls, UpstreamTls,
};
use mesh_tower::MeshService;
use mesh_tower::tls::{
    CertificateProvider, CertificateProviders, FileWatcherConfig, LoadError, ProviderStatus,
    ServerTls, TrustRoots,
};
use support::config::{cluster, leaf, loc, snapshot, to, vhost};
use support::pki::{Ca, Issued, Leaf, bundle_map};
use support::tls_backend::TlsBackend;
use support::{grpc, options};

const PATH: &str = "/helloworld.Greeter/SayHello";
const V1: &str = "spiffe://a.example/ns/default/sa/client";
const V2: &str = "spiffe://a.example/ns/default/sa/client-v2";

/// A directory laid out like a Kubernetes secret volume: `tls.crt`, `tls.key` and `bundle.json` are symlinks into
/// `..data`, itself a symlink to the current version's directory.
struct SecretVolume {
    dir: tempfile::TempDir,
    version: usize,
}

impl SecretVolume {
    fn new(files: &[(&str, &[u8])]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut volume = Self { dir, version: 0 };
        volume.publish(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(Path::new("..data").join(name), volume.path(name)).unwrap();
        }
        volume
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a new version and swaps `..data` to it atomically, as the kubelet does.
    fn publish(&mut self, files: &[(&str, &[u8])]) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        std::fs::create_dir(self.path(&version)).unwrap();
        for (name, content) in files {
            std::fs::write(self.path(&version).join(name), content).unwrap();
        }
        let staging = self.path("..data_tmp");
        std::os::unix::fs::symlink(&version, &staging).unwrap();
        std::fs::rename(&staging, self.path("..data")).unwrap();
    }
}

fn identity_files<'a>(issued: &'a Issued, bundles: &'a str) -> [(&'static str, &'a [u8]); 3] {
    [
        ("tls.crt", issued.chain_pem.as_bytes()),
        ("tls.key", issued.key_pem.as_bytes()),
        ("bundle.json", bundles.as_bytes()),
    ]
}

async fn server(ca: &Ca, bundles: &str) -> TlsBackend {
    let identity = ca
        .issue(&Leaf::svid("spiffe://a.example/ns/default/sa/server"))
        .identity();
    let roots = TrustRoots::spiffe_from_json(bundles.as_bytes()).unwrap();
    let providers = CertificateProviders::new().with(CertificateProvider::with_material(
        "server",
        Some(identity),
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

fn mesh(backend: &TlsBackend, providers: &CertificateProviders) -> MeshService {
    let instance = CertificateProviderInstance::new("client");
    let tls = UpstreamTls::new(CertificateValidation::default().with_ca(Some(instance.clone())))
        .with_identity(Some(instance));
    let service = MeshService::new(options().with_certificate_providers(providers.clone()));
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

/// Waits (bounded) until the provider's status satisfies `done`.
async fn status_until(
    provider: &CertificateProvider,
    done: impl Fn(&ProviderStatus) -> bool,
) -> ProviderStatus {
    let mut status = provider.subscribe();
    let seen = tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| done(s))).await;
    seen.expect("the provider did not reload in time")
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_during_steady_traffic_fails_no_request_and_a_bad_file_keeps_the_old_certificate()
{
    let ca = Ca::new("a.example");
    let bundles = bundle_map(&[&ca]);
    let backend = server(&ca, &bundles).await;
    let mut volume = SecretVolume::new(&identity_files(&ca.issue(&Leaf::svid(V1)), &bundles));
    let provider = CertificateProvider::file_watcher(
        "client",
        FileWatcherConfig::default()
            .with_identity(volume.path("tls.crt"), volume.path("tls.key"))
            .with_spiffe_trust_bundle_map_file(volume.path("bundle.json")),
    )
    .unwrap();
    assert!(
        provider.status().errors.is_empty(),
        "{:?}",
        provider.status()
    );
    let providers = CertificateProviders::new().with(provider.clone());
    let service = mesh(&backend, &providers);
    assert_eq!(grpc(&service, PATH, &[]).await.backend.as_deref(), Some(V1));

    // Steady traffic on the established connection while the files rotate.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic = {
        let (service, stop, sent, failed) = (
            service.clone(),
            Arc::clone(&stop),
            Arc::clone(&sent),
            Arc::clone(&failed),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let answer = grpc(&service, PATH, &[]).await;
                sent.fetch_add(1, Ordering::SeqCst);
                if !answer.ok() {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let before = provider.status().updates;
    volume.publish(&identity_files(&ca.issue(&Leaf::svid(V2)), &bundles));
    status_until(&provider, |s| s.updates > before).await;
    let sent_at_rotation = sent.load(Ordering::SeqCst);
    support::eventually(Duration::from_secs(5), async || {
        sent.load(Ordering::SeqCst) > sent_at_rotation + 50
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    traffic.await.unwrap();
    assert!(sent.load(Ordering::SeqCst) > sent_at_rotation + 50);
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "no request may fail during rotation"
    );
    // The established connection stayed up; a new handshake presents the new certificate.
    assert_eq!(backend.peers(), [V1]);
    assert_eq!(
        grpc(&mesh(&backend, &providers), PATH, &[])
            .await
            .backend
            .as_deref(),
        Some(V2)
    );

    // A bad certificate file: reported with the field and path, and the previous identity stays in use.
    volume.publish(&[
        (
            "tls.crt",
            b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        ),
        ("tls.key", b"garbage"),
        ("bundle.json", bundles.as_bytes()),
    ]);
    let status = status_until(&provider, |s| !s.errors.is_empty()).await;
    let message = status.errors[0].to_string();
    assert!(
        matches!(
            &*status.errors[0],
            LoadError::Material {
                field: "certificate_file",
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("tls.crt"), "{message}");
    assert!(grpc(&service, PATH, &[]).await.ok());
    assert_eq!(
        grpc(&mesh(&backend, &providers), PATH, &[])
            .await
            .backend
            .as_deref(),
        Some(V2)
    );
}

#[tokio::test]
async fn a_mismatched_key_is_reported_and_a_missing_file_loads_when_it_appears() {
    let ca = Ca::new("a.example");
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (ca.issue(&Leaf::svid(V1)), ca.issue(&Leaf::svid(V2)));
    let (crt, key, roots) = (
        dir.path().join("tls.crt"),
        dir.path().join("tls.key"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&crt, &first.chain_pem).unwrap();
    std::fs::write(&key, &second.key_pem).unwrap();
    let provider = CertificateProvider::file_watcher(
        "files",
        FileWatcherConfig::default()
            .with_identity(&crt, &key)
            .with_ca_certificate_file(&roots),
    )
    .unwrap();
    let status = provider.status();
    let messages: Vec<String> = status.errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].contains("private_key_file") && messages[0].contains("does not match"),
        "{messages:?}"
    );
    assert!(
        messages[1].contains("ca_certificate_file") && messages[1].contains("ca.pem"),
        "{messages:?}"
    );
    let material = provider.material();
    assert!(material.identity.is_none() && material.roots.is_none());

    // Fixing the files is picked up from the directory's events.
    std::fs::write(&key, &first.key_pem).unwrap();
    std::fs::write(&roots, &ca.pem).unwrap();
    let status = status_until(&provider, |s| s.errors.is_empty()).await;
    assert!(status.updates >= 1);
    let material = provider.material();
    assert!(material.identity.is_some());
    assert!(matches!(material.roots, Some(TrustRoots::Ca(_))));
}

#[tokio::test]
async fn a_bundle_map_takes_precedence_over_ca_certificates() {
    let ca = Ca::new("a.example");
    let dir = tempfile::tempdir().unwrap();
    let (bundle, roots) = (dir.path().join("bundle.json"), dir.path().join("ca.pem"));
    std::fs::write(&bundle, bundle_map(&[&ca])).unwrap();
    std::fs::write(&roots, "not PEM").unwrap();
    // gRFC A87: with both set, `ca_certificate_file` is ignored.
    let provider = CertificateProvider::file_watcher(
        "files",
        FileWatcherConfig::default()
            .with_ca_certificate_file(&roots)
            .with_spiffe_trust_bundle_map_file(&bundle),
    )
    .unwrap();
    assert!(provider.status().errors.is_empty());
    assert!(matches!(
        provider.material().roots,
        Some(TrustRoots::Spiffe(_))
    ));

    assert!(CertificateProvider::file_watcher("bad", FileWatcherConfig::default()).is_err());
    let mut half = FileWatcherConfig::default().with_identity(&roots, &roots);
    half.private_key_file = None;
    assert!(CertificateProvider::file_watcher("half", half).is_err());
}
