//! Shared test fixtures: a raw ADS client over a real socket, and sample meshes.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]
// A panic is how a test helper reports a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DiscoveryRequest, DiscoveryResponse,
    aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use mesh_xds_server::mesh::{
    Cluster, Endpoint, LbPolicy, Locality, MeshConfig, Route, Service, WeightedCluster,
};
use prost::{Message, Name};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

/// Every wait in the tests is bounded by this.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test after [`TIMEOUT`].
pub(crate) async fn within<F: std::future::IntoFuture>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(TIMEOUT, future.into_future())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A raw SotW ADS client: sends exactly the requests a test writes.
pub(crate) struct AdsClient {
    pub(crate) node_id: String,
    client: AggregatedDiscoveryServiceClient<Channel>,
    requests: mpsc::Sender<DiscoveryRequest>,
    responses: Streaming<DiscoveryResponse>,
    sent_node: bool,
}

impl AdsClient {
    pub(crate) async fn connect(address: SocketAddr, node_id: &str) -> Self {
        let mut client = within(
            "connect",
            AggregatedDiscoveryServiceClient::connect(format!("http://{address}")),
        )
        .await
        .unwrap();
        let (requests, rx) = mpsc::channel(16);
        let responses = within(
            "stream",
            client.stream_aggregated_resources(ReceiverStream::new(rx)),
        )
        .await
        .unwrap()
        .into_inner();
        Self {
            node_id: node_id.to_owned(),
            client,
            requests,
            responses,
            sent_node: false,
        }
    }

    /// A second RPC on the same channel.
    pub(crate) fn grpc_client(&self) -> AggregatedDiscoveryServiceClient<Channel> {
        self.client.clone()
    }

    pub(crate) async fn send(&mut self, mut request: DiscoveryRequest) {
        if !self.sent_node {
            request.node = Some(Node {
                id: self.node_id.clone(),
                ..Default::default()
            });
            self.sent_node = true;
        }
        self.requests.send(request).await.unwrap();
    }

    /// A request for `names` of `type_url`, claiming `version` and answering `nonce`.
    pub(crate) async fn request(
        &mut self,
        type_url: &str,
        names: &[&str],
        version: &str,
        nonce: &str,
    ) {
        self.send(DiscoveryRequest {
            type_url: type_url.to_owned(),
            resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
            version_info: version.to_owned(),
            response_nonce: nonce.to_owned(),
            ..Default::default()
        })
        .await;
    }

    /// First subscription to `names`.
    pub(crate) async fn subscribe(&mut self, type_url: &str, names: &[&str]) {
        self.request(type_url, names, "", "").await;
    }

    pub(crate) async fn ack(&mut self, response: &DiscoveryResponse, names: &[&str]) {
        self.request(
            &response.type_url,
            names,
            &response.version_info,
            &response.nonce,
        )
        .await;
    }

    pub(crate) async fn nack(
        &mut self,
        response: &DiscoveryResponse,
        names: &[&str],
        accepted: &str,
        message: &str,
    ) {
        self.send(DiscoveryRequest {
            type_url: response.type_url.clone(),
            resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
            version_info: accepted.to_owned(),
            response_nonce: response.nonce.clone(),
            error_detail: Some(RpcStatus {
                code: 3,
                message: message.to_owned(),
                details: vec![],
            }),
            ..Default::default()
        })
        .await;
    }

    pub(crate) async fn recv(&mut self) -> DiscoveryResponse {
        within("a response", self.responses.message())
            .await
            .unwrap_or_else(|status| panic!("stream failed: {status}"))
            .unwrap_or_else(|| panic!("stream ended"))
    }

    /// Receives the next response and checks its type.
    pub(crate) async fn recv_type(&mut self, type_url: &str) -> DiscoveryResponse {
        let response = self.recv().await;
        assert_eq!(
            response.type_url, type_url,
            "unexpected response type (version {})",
            response.version_info
        );
        response
    }

    /// Waits for the stream to end with an error status.
    pub(crate) async fn recv_error(&mut self) -> tonic::Status {
        match within("the stream to end", self.responses.message()).await {
            Err(status) => status,
            Ok(other) => panic!("expected an error, got {other:?}"),
        }
    }
}

pub(crate) fn unpack<T: Message + Name + Default>(any: &Any) -> T {
    assert_eq!(any.type_url, T::type_url());
    T::decode(any.value.as_slice()).unwrap()
}

/// The names of the resources in a response, decoded by `name_of`.
pub(crate) fn cluster_names(response: &DiscoveryResponse) -> Vec<String> {
    response
        .resources
        .iter()
        .map(|any| unpack::<envoy_types::pb::envoy::config::cluster::v3::Cluster>(any).name)
        .collect()
}

/// A service `greeter` splitting between clusters `main` (two localities, two priorities) and `canary`.
pub(crate) fn sample_mesh() -> MeshConfig {
    MeshConfig::new()
        .with_service(
            Service::new("greeter")
                .with_route(
                    Route::to_weighted_clusters([
                        WeightedCluster::new("main", 80),
                        WeightedCluster::new("canary", 20),
                    ])
                    .with_prefix("/helloworld.Greeter/"),
                )
                .with_route(Route::to_cluster("main")),
        )
        .with_cluster(
            Cluster::new("main")
                .with_locality(
                    Locality::new("us-east", "us-east-1a", "")
                        .with_weight(3)
                        .with_endpoint(Endpoint::new("127.0.0.1:50051"))
                        .with_endpoint(Endpoint::new("127.0.0.1:50052")),
                )
                .with_locality(
                    Locality::new("us-west", "us-west-1b", "")
                        .with_priority(1)
                        .with_endpoint(Endpoint::new("127.0.0.1:50053")),
                ),
        )
        .with_cluster(
            Cluster::new("canary")
                .with_lb_policy(LbPolicy::LeastRequest)
                .with_locality(
                    Locality::new("", "", "").with_endpoint(Endpoint::new("127.0.0.1:50061")),
                ),
        )
}
