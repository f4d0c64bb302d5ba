//! The admin endpoint (`MeshBuilder::admin`): over real sockets, `GET /config_dump` (HTTP/1.1, as curl asks) holds
//! the resources the mesh's channel fetched, `GET /healthz` answers, CSDS over gRPC on the same port reports the
//! same resources ACKED, and the endpoint listens on 127.0.0.1 on a port of its own.

// Fixtures fail the test that uses them by panicking, as assertions do.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::net::SocketAddr;

use envoy_types::pb::envoy::admin::v3::ClientResourceStatus;
use envoy_types::pb::envoy::service::status::v3::ClientStatusRequest;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
use mesh_tonic::Mesh;
use mesh_tonic::testing::{GreeterClient, HelloRequest};
use support::{NODE, backend, locality, single_cluster, xds_server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP/1.1 GET of `path`, as curl sends it: the status code and the body.
async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    // The body may be chunked: keep what lies between the chunk sizes.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            out.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        out
    } else {
        body.to_owned()
    };
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_serves_the_config_dump_as_json_and_csds_on_one_local_port() {
    let replica = backend([127, 0, 0, 1], "a").await;
    let xds = xds_server(single_cluster(vec![locality("us-east", 0, &[&replica])])).await;
    let mesh = Mesh::builder()
        .xds_server(xds.local_addr().to_string())
        .node_id(NODE)
        .admin_port(0)
        .build()
        .await
        .unwrap();
    let admin = mesh.admin_addr().unwrap();
    assert_eq!(admin.ip().to_string(), "127.0.0.1");
    assert_ne!(admin.port(), 0);
    let mut client = GreeterClient::new(mesh.channel("xds:///greeter").unwrap());
    client
        .say_hello(HelloRequest { name: "x".into() })
        .await
        .unwrap();

    assert_eq!(get(admin, "/healthz").await, (200, "ok\n".to_owned()));
    let (status, body) = get(admin, "/config_dump").await;
    assert_eq!(status, 200, "{body}");
    let dump: serde_json::Value = serde_json::from_str(&body).unwrap();
    let resources = dump["resources"].as_array().unwrap();
    for (kind, name) in [("Listener", "greeter"), ("Cluster", "main")] {
        let resource = resources
            .iter()
            .find(|r| r["name"] == name && r["kind"].to_string().contains(kind))
            .unwrap_or_else(|| panic!("no {kind} {name:?} in the dump: {body}"));
        assert_eq!(resource["status"], "ACKED", "{resource}");
    }
    let (status, _) = get(admin, "/nothing-here").await;
    assert_eq!(status, 404);

    // CSDS over gRPC (HTTP/2) on the same port.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{admin}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let response = ClientStatusDiscoveryServiceClient::new(channel)
        .fetch_client_status(ClientStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let config = &response.config[0];
    let listener = config
        .generic_xds_configs
        .iter()
        .find(|c| c.type_url.ends_with("Listener") && c.name == "greeter")
        .unwrap();
    assert_eq!(listener.client_status, ClientResourceStatus::Acked as i32);

    // The endpoint stops with the mesh.
    drop(client);
    drop(mesh);
    let refused = tokio::time::timeout(support::PATIENCE, async {
        loop {
            match TcpStream::connect(admin).await {
                Err(_) => return,
                Ok(_) => tokio::task::yield_now().await,
            }
        }
    })
    .await;
    assert!(refused.is_ok(), "the admin endpoint outlived its mesh");
}

#[tokio::test]
async fn an_admin_address_in_use_fails_the_build_naming_it() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = taken.local_addr().unwrap();
    let error = Mesh::builder()
        .without_xds()
        .admin(address)
        .build()
        .await
        .unwrap_err();
    assert!(error.to_string().contains(&address.to_string()), "{error}");
    assert!(error.to_string().contains("admin"), "{error}");
}
