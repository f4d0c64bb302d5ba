//! Reloading the mesh file: a valid change is pushed, a broken file keeps the old snapshot, Kubernetes-style
//! symlink swaps are seen.

// Test helpers outside #[test] functions may fail loudly too: a panic is how a test reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::time::Duration;

use mesh_xds_server::{ReloadOutcome, ReloadStatus, ServerError, XdsServer, type_url};
use support::{AdsClient, cluster_names, within};
use tokio::sync::watch;

const CDS: &str = type_url::CLUSTER;
const EDS: &str = type_url::CLUSTER_LOAD_ASSIGNMENT;

fn mesh(clusters: &[&str]) -> String {
    let mut text = String::from("clusters:\n");
    for (index, name) in clusters.iter().enumerate() {
        text.push_str(&format!(
            "  - name: {name}\n    localities:\n      - endpoints: [ {{ address: \"127.0.0.1:{}\" }} ]\n",
            50_000 + index
        ));
    }
    text
}

/// Replaces `path` atomically, as editors and config tools do.
fn write_atomically(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

async fn wait_for_status<F>(
    status: &mut watch::Receiver<ReloadStatus>,
    condition: F,
) -> ReloadStatus
where
    F: FnMut(&ReloadStatus) -> bool,
{
    within("a reload", status.wait_for(condition))
        .await
        .unwrap()
        .clone()
}

async fn start(path: &Path) -> XdsServer {
    XdsServer::builder()
        .config_file(path)
        .reload_debounce(Duration::from_millis(20))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

#[tokio::test]
async fn a_changed_file_is_pushed_and_a_broken_one_keeps_the_old_snapshot() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("mesh.yaml");
    std::fs::write(&path, mesh(&["a"])).unwrap();
    let server = start(&path).await;
    let mut status = server.reload_status().unwrap();
    let mut client = AdsClient::connect(server.local_addr(), "watcher").await;
    client.subscribe(CDS, &[]).await;
    let first = client.recv_type(CDS).await;
    assert_eq!(
        (first.version_info.as_str(), cluster_names(&first)),
        ("1", vec!["a".to_owned()])
    );
    client.ack(&first, &[]).await;

    write_atomically(&path, &mesh(&["a", "b"]));
    let pushed = client.recv_type(CDS).await;
    assert_eq!(pushed.version_info, "2");
    assert_eq!(cluster_names(&pushed), ["a", "b"]);
    client.ack(&pushed, &[]).await;
    let applied = wait_for_status(&mut status, |s| s.version == "2").await;
    assert_eq!(
        applied.last,
        Some(ReloadOutcome::Applied {
            version: "2".into()
        })
    );

    write_atomically(
        &path,
        "clusters:\n  - name: a\n    localities:\n      - endpoints: [ { address: nowhere } ]\n",
    );
    let failed = wait_for_status(&mut status, |s| {
        matches!(s.last, Some(ReloadOutcome::Failed { .. }))
    })
    .await;
    let Some(ReloadOutcome::Failed { error }) = &failed.last else {
        panic!("{failed:?}")
    };
    assert!(
        error.contains("clusters[0].localities[0].endpoints[0]: invalid address \"nowhere\""),
        "{error}"
    );
    assert_eq!(failed.version, "2", "the old version keeps serving");
    assert_eq!(server.cache().snapshot(None).version(CDS), "2");
    assert_eq!(
        server.cache().snapshot(None).resources(CDS).unwrap().len(),
        2
    );
    // Nothing was pushed: the next response answers this new subscription.
    client.subscribe(EDS, &["a"]).await;
    assert_eq!(client.recv().await.type_url, EDS);

    write_atomically(&path, &mesh(&["c"]));
    let fixed = client.recv_type(CDS).await;
    assert_eq!(fixed.version_info, "3");
    assert_eq!(cluster_names(&fixed), ["c"]);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_in_place_rewrite_is_seen() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("mesh.yaml");
    std::fs::write(&path, mesh(&["a"])).unwrap();
    let server = start(&path).await;
    let mut status = server.reload_status().unwrap();
    std::fs::write(&path, mesh(&["a", "b"])).unwrap();
    let reloaded = wait_for_status(&mut status, |s| s.version == "2").await;
    assert!(matches!(reloaded.last, Some(ReloadOutcome::Applied { .. })));
    assert_eq!(
        server.cache().snapshot(None).resources(CDS).unwrap().len(),
        2
    );
    server.shutdown().await.unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn a_kubernetes_style_data_symlink_swap_is_seen() {
    use std::os::unix::fs::symlink;

    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    // The layout of a ConfigMap volume: mesh.yaml -> ..data/mesh.yaml, ..data -> ..<timestamp>/.
    std::fs::create_dir(root.join("..2024_01_01")).unwrap();
    std::fs::write(root.join("..2024_01_01/mesh.yaml"), mesh(&["old"])).unwrap();
    symlink("..2024_01_01", root.join("..data")).unwrap();
    symlink("..data/mesh.yaml", root.join("mesh.yaml")).unwrap();
    let server = start(&root.join("mesh.yaml")).await;
    let mut client = AdsClient::connect(server.local_addr(), "kube").await;
    client.subscribe(CDS, &[]).await;
    let first = client.recv_type(CDS).await;
    assert_eq!(cluster_names(&first), ["old"]);
    client.ack(&first, &[]).await;

    std::fs::create_dir(root.join("..2024_01_02")).unwrap();
    std::fs::write(root.join("..2024_01_02/mesh.yaml"), mesh(&["new"])).unwrap();
    symlink("..2024_01_02", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..2024_01_01")).unwrap();

    let pushed = client.recv_type(CDS).await;
    assert_eq!(cluster_names(&pushed), ["new"]);
    assert_eq!(pushed.version_info, "2");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_invalid_initial_file_fails_to_start() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("mesh.yaml");
    std::fs::write(&path, "clusters: [ { name: a, lb_policy: maglev } ]\n").unwrap();
    let error = XdsServer::builder()
        .config_file(&path)
        .bind("127.0.0.1:0")
        .await
        .unwrap_err();
    assert!(matches!(error, ServerError::Config(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("clusters[0].lb_policy: unknown variant `maglev`"),
        "{error}"
    );
    let missing = XdsServer::builder()
        .config_file(directory.path().join("absent.yaml"))
        .bind("127.0.0.1:0")
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("absent.yaml"), "{missing}");
}
