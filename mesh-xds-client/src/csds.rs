//! The Client Status Discovery Service (gRFC A40): the client's view of every subscribed resource, served over gRPC
//! as `envoy.service.status.v3.ClientStatusDiscoveryService` so `grpcdebug` and other CSDS tools can read it.
//!
//! [`CsdsService`] answers `FetchClientStatus` and `StreamClientStatus` from [`XdsClient::config_dump`]; mount it
//! on an admin server with [`CsdsService::into_server`]. Not here: an HTTP/JSON admin endpoint (see
//! [`crate::client::ConfigDump::to_json`]).

use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::admin::v3::{ClientResourceStatus, UpdateFailureState};
use envoy_types::pb::envoy::service::status::v3::client_config::GenericXdsConfig;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_server::{
    ClientStatusDiscoveryService, ClientStatusDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::status::v3::{
    ClientConfig, ClientStatusRequest, ClientStatusResponse,
};
use envoy_types::pb::google::protobuf::Timestamp;
use tokio_stream::{Stream, StreamExt};

use crate::client::{ConfigDump, XdsClient};
use crate::protocol::ResourceStatus;

/// The CSDS service over one [`XdsClient`].
#[derive(Debug, Clone)]
pub struct CsdsService {
    client: XdsClient,
}

impl CsdsService {
    /// A CSDS service reporting `client`'s resources.
    #[must_use]
    pub fn new(client: XdsClient) -> Self {
        Self { client }
    }

    /// The tonic server for this service, ready to add to a `tonic::transport::Server`.
    #[must_use]
    pub fn into_server(self) -> ClientStatusDiscoveryServiceServer<Self> {
        ClientStatusDiscoveryServiceServer::new(self)
    }

    async fn status(&self) -> Result<ClientStatusResponse, tonic::Status> {
        let dump = self
            .client
            .config_dump()
            .await
            .ok_or_else(|| tonic::Status::unavailable("the xDS client has stopped"))?;
        Ok(client_status(&self.client, &dump))
    }
}

/// Builds the CSDS response for a config dump.
#[must_use]
pub fn client_status(client: &XdsClient, dump: &ConfigDump) -> ClientStatusResponse {
    let generic_xds_configs = dump
        .resources
        .iter()
        .map(|r| {
            let client_status = match r.resource_status {
                ResourceStatus::Requested => ClientResourceStatus::Requested,
                ResourceStatus::Acked => ClientResourceStatus::Acked,
                ResourceStatus::Nacked => ClientResourceStatus::Nacked,
                ResourceStatus::DoesNotExist => ClientResourceStatus::DoesNotExist,
                _ => ClientResourceStatus::Unknown,
            };
            GenericXdsConfig {
                type_url: r.kind.type_url().to_owned(),
                name: r.name.clone(),
                version_info: r.version.clone().unwrap_or_default(),
                xds_config: r.raw.clone(),
                last_updated: r.last_updated_unix_ms.map(timestamp),
                client_status: client_status as i32,
                error_state: match (r.resource_status, &r.error) {
                    (ResourceStatus::Nacked, Some(details)) => Some(UpdateFailureState {
                        details: details.clone(),
                        last_update_attempt: Some(now()),
                        ..Default::default()
                    }),
                    _ => None,
                },
                ..Default::default()
            }
        })
        .collect();
    ClientStatusResponse {
        config: vec![ClientConfig {
            node: Some(crate::client::node_proto(&client.bootstrap().node)),
            generic_xds_configs,
            ..Default::default()
        }],
    }
}

fn timestamp(unix_ms: u128) -> Timestamp {
    Timestamp {
        seconds: i64::try_from(unix_ms / 1000).unwrap_or(i64::MAX),
        nanos: i32::try_from((unix_ms % 1000) * 1_000_000).unwrap_or(0),
    }
}

fn now() -> Timestamp {
    timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
    )
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<ClientStatusResponse, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl ClientStatusDiscoveryService for CsdsService {
    type StreamClientStatusStream = StatusStream;

    async fn stream_client_status(
        &self,
        request: tonic::Request<tonic::Streaming<ClientStatusRequest>>,
    ) -> Result<tonic::Response<Self::StreamClientStatusStream>, tonic::Status> {
        let service = self.clone();
        let requests = request.into_inner();
        let responses = requests.then(move |request| {
            let service = service.clone();
            async move {
                request?;
                service.status().await
            }
        });
        Ok(tonic::Response::new(Box::pin(responses)))
    }

    async fn fetch_client_status(
        &self,
        _request: tonic::Request<ClientStatusRequest>,
    ) -> Result<tonic::Response<ClientStatusResponse>, tonic::Status> {
        self.status().await.map(tonic::Response::new)
    }
}
