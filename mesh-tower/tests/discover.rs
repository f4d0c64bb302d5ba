//! A cluster's endpoints as a tower `Discover`: inserts and removes follow configuration updates, and each
//! discovered endpoint answers requests over its own connection.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use mesh_core::cluster::LbPolicy;
use mesh_core::endpoint::EndpointAddress;
use mesh_tower::MeshService;
use mesh_tower::discover::{EndpointDiscover, EndpointService};
use support::backend::always;
use support::config::{cluster, leaf, loc, snapshot, to, vhost};
use support::{Backend, Reply, options};
use tower::ServiceExt;
use tower::discover::Change;

fn update(service: &MeshService, version: u64, backends: &[&Backend]) {
    service.update(Some(Ok(snapshot(
        version,
        vhost(vec![to("c")]),
        vec![leaf(
            cluster("c", LbPolicy::RoundRobin),
            vec![loc("z", 0, backends.iter().map(|b| b.addr).collect())],
        )],
        None,
    ))));
}

async fn next(discover: &mut EndpointDiscover) -> Change<EndpointAddress, EndpointService> {
    tokio::time::timeout(Duration::from_secs(5), discover.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

/// The `x-backend` header of a request sent through `endpoint`.
async fn backend_of(endpoint: EndpointService, authority: std::net::SocketAddr) -> String {
    let request = http::Request::post(format!("http://{authority}/svc/Call"))
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = endpoint.oneshot(request).await.unwrap();
    let backend = response.headers()["x-backend"].to_str().unwrap().to_owned();
    let _ = response.into_body().collect().await;
    backend
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_inserted_and_removed_as_the_configuration_changes() {
    let a = Backend::start(1, always(Reply::Grpc(0))).await;
    let b = Backend::start(2, always(Reply::Grpc(0))).await;
    let service = MeshService::new(options());
    update(&service, 1, &[&a]);
    let mut discover = service.discover("c");
    // The current endpoints first.
    let Change::Insert(address, endpoint) = next(&mut discover).await else {
        panic!("an insert first");
    };
    assert_eq!(address, EndpointAddress::Socket(a.addr));
    assert_eq!(backend_of(endpoint, a.addr).await, a.name);
    // An endpoint joins.
    update(&service, 2, &[&a, &b]);
    let Change::Insert(address, endpoint) = next(&mut discover).await else {
        panic!("b inserted");
    };
    assert_eq!(address, EndpointAddress::Socket(b.addr));
    assert_eq!(backend_of(endpoint, b.addr).await, b.name);
    // An endpoint leaves.
    update(&service, 3, &[&b]);
    let Change::Remove(address) = next(&mut discover).await else {
        panic!("a removed");
    };
    assert_eq!(address, EndpointAddress::Socket(a.addr));
    // An update that changes nothing for the cluster yields nothing; the stream ends with the service.
    update(&service, 4, &[&b]);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), discover.next())
            .await
            .is_err()
    );
    drop(service);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), discover.next())
            .await
            .unwrap()
            .is_none()
    );
}
