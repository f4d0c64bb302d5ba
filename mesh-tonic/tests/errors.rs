//! What building a mesh and making a channel report when something is wrong: each error names the problem.

use mesh_tonic::{Mesh, MeshError};

#[tokio::test]
async fn building_fails_with_a_reason() {
    let message = |result: Result<Mesh, MeshError>| result.unwrap_err().to_string();

    let no_servers = message(Mesh::builder().node_id("client-1").build().await);
    assert!(
        no_servers.starts_with("bootstrap: ")
            && no_servers.contains("xds_servers: must be non-empty"),
        "{no_servers}"
    );
    assert!(
        message(Mesh::builder().build().await).contains("none configured"),
        "no bootstrap at all"
    );
    let both = message(
        Mesh::builder()
            .bootstrap_from_env()
            .xds_server("127.0.0.1:1")
            .build()
            .await,
    );
    assert!(both.contains("use one or the other"), "{both}");
    let xds_off = message(Mesh::builder().without_xds().node_id("x").build().await);
    assert!(xds_off.contains("without_xds"), "{xds_off}");
}

#[tokio::test]
async fn channels_fail_with_a_reason() {
    let mesh = Mesh::builder()
        .xds_server("127.0.0.1:1")
        .node_id("client-1")
        .build()
        .await
        .unwrap();
    let error = |target: &str| mesh.channel(target).unwrap_err().to_string();
    assert_eq!(
        error("xds://unknown.example/greeter"),
        "target \"xds://unknown.example/greeter\": authority not found in xDS bootstrap: \"unknown.example\""
    );
    assert!(error("grpc://x/y").contains("scheme \"grpc\" is not supported"));
    assert!(error("dns:///nohost").contains("the port is missing"));

    let plain = Mesh::builder().without_xds().build().await.unwrap();
    assert_eq!(
        plain.channel("xds:///greeter").unwrap_err().to_string(),
        "target \"xds:///greeter\": this mesh was built without xDS (MeshBuilder::without_xds)"
    );
    assert_eq!(
        Mesh::static_channel([]).unwrap_err().to_string(),
        "static channel: the address list is empty"
    );
}

#[tokio::test]
async fn bootstrap_certificate_providers_start_and_report_unreadable_files() {
    use mesh_tonic::MeshOptions;
    use mesh_tower::tls::{CertificateProvider, CertificateProviders, LoadError};
    use mesh_xds_client::bootstrap::{CertificateProviderConfig, FileWatcherConfig};

    let missing = std::env::temp_dir().join("mesh-tonic-test-no-such-dir/ca.pem");
    let mesh = Mesh::builder()
        .xds_server("127.0.0.1:1")
        .node_id("client-1")
        .certificate_provider(
            "default",
            CertificateProviderConfig::file_watcher(
                FileWatcherConfig::new().with_ca_certificate_file(missing.display().to_string()),
            ),
        )
        .certificate_provider(
            "vault",
            CertificateProviderConfig::new("vault_plugin", serde_json::json!({})),
        )
        .mesh_options(MeshOptions::default().with_certificate_providers(
            CertificateProviders::new().with(CertificateProvider::new("in-code")),
        ))
        .build()
        .await
        .unwrap();
    let providers = mesh.certificate_providers();
    let status = providers.get("default").unwrap().status();
    assert!(
        matches!(&*status.errors[0], LoadError::Read { field: "ca_certificate_file", path, .. } if *path == missing),
        "{status:?}"
    );
    assert!(providers.get("in-code").is_some());
    assert!(
        providers.get("vault").is_none(),
        "unsupported plugins are not started"
    );
}
