//! The `xds-dump` tool as an operator runs it: against a live management server, with a bootstrap file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use mesh_xds_server::XdsServer;
use mesh_xds_server::mesh::{Cluster, Endpoint, Locality, MeshConfig, Route, Service};

fn write_bootstrap(dir: &std::path::Path, server: std::net::SocketAddr) -> std::path::PathBuf {
    let path = dir.join("bootstrap.json");
    let json = format!(
        r#"{{"xds_servers":[{{"server_uri":"{server}","channel_creds":[{{"type":"insecure"}}]}}],"node":{{"id":"xds-dump-test"}}}}"#
    );
    std::fs::write(&path, json).unwrap();
    path
}

async fn xds_dump(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_xds-dump"))
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_complete_target_prints_its_resources_and_exits_zero_and_a_missing_one_exits_one() {
    let mesh = MeshConfig::new()
        .with_service(Service::new("greeter").with_route(Route::to_cluster("greeter")))
        .with_cluster(
            Cluster::new("greeter").with_locality(
                Locality::new("us-east", "us-east-1a", "")
                    .with_endpoint(Endpoint::new("127.0.0.1:50051")),
            ),
        );
    let server = XdsServer::builder()
        .config(mesh)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = write_bootstrap(dir.path(), server.local_addr());
    let bootstrap = bootstrap.to_str().unwrap().to_owned();

    let out = xds_dump(vec![
        "--bootstrap".into(),
        bootstrap.clone(),
        "--target".into(),
        "xds:///greeter".into(),
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "complete");
    let resources = report["resources"].as_array().unwrap();
    let kinds: Vec<&str> = resources
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "Listener",
            "RouteConfiguration",
            "Cluster",
            "ClusterLoadAssignment"
        ]
    );
    assert!(
        resources.iter().all(|r| r["status"] == "ACKED"),
        "{resources:?}"
    );

    let out = xds_dump(vec![
        "--bootstrap".into(),
        bootstrap,
        "--target".into(),
        "xds:///missing".into(),
        "--wait-secs".into(),
        "1".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did not become complete"), "{stderr}");

    let out = xds_dump(vec!["--target".into(), "xds:///greeter".into()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bootstrap is required"));
    server.shutdown().await.unwrap();
}
