//! One ADS stream over tonic: connect, write the worker's requests, hand responses back.

use envoy_types::pb::envoy::config::core::v3::{Locality as PbLocality, Node as PbNode};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};
use envoy_types::pb::google::rpc::Status;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::bootstrap::Node;
use crate::protocol::{Request, StreamId};

/// What a stream task reports to the worker.
#[derive(Debug)]
pub(super) enum StreamEvent {
    /// The HTTP/2 connection is up and the stream is open for requests.
    Connected(StreamId),
    /// The stream ended or could not start.
    Failed(StreamId, String),
    /// A response arrived.
    Response(StreamId, Box<DiscoveryResponse>),
}

/// gRPC's client feature for `envoy.service.discovery.v3.Resource` wrappers in state-of-the-world responses.
const CLIENT_FEATURE_RESOURCE_IN_SOTW: &str = "xds.config.resource-in-sotw";

/// Turns a bootstrap `server_uri` (`host:port`, `dns:///host:port`, or a URL) into a URL tonic can dial.
pub(super) fn dial_url(server_uri: &str) -> String {
    let bare = server_uri.strip_prefix("dns:///").unwrap_or(server_uri);
    if bare.contains("://") {
        bare.to_owned()
    } else {
        format!("http://{bare}")
    }
}

/// Dials `server_uri` (through `connector` when its credentials need one, gRFC A65): the channel for ADS and LRS.
pub(crate) async fn connect(
    server_uri: &str,
    connector: Option<super::Connector>,
) -> Result<tonic::transport::Channel, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(dial_url(server_uri))
        .map_err(|e| format!("invalid server_uri {server_uri:?}: {e}"))?
        // As grpc-go's xDS client: a ping every 5 minutes, which gRPC servers' default policy accepts (more
        // frequent pings on a quiet ADS stream get the connection closed with `ENHANCE_YOUR_CALM`).
        .http2_keep_alive_interval(std::time::Duration::from_secs(300))
        .keep_alive_while_idle(true)
        .connect_timeout(std::time::Duration::from_secs(20));
    let connected = match connector {
        // gRFC A65: credentials other than plaintext go through the connector registered for this server.
        Some(connector) => endpoint.connect_with_connector(connector).await,
        None => endpoint.connect().await,
    };
    connected.map_err(|e| format!("connecting to {server_uri}: {}", error_chain(&e)))
}

/// Runs one stream until it fails or the worker drops it (by aborting this task).
pub(super) async fn run_stream(
    server_uri: String,
    connector: Option<super::Connector>,
    id: StreamId,
    requests: mpsc::UnboundedReceiver<DiscoveryRequest>,
    events: mpsc::UnboundedSender<super::worker::Event>,
) {
    let report = |event: StreamEvent| {
        let _ = events.send(super::worker::Event::Stream(event));
    };
    let channel = match connect(&server_uri, connector).await {
        Ok(channel) => channel,
        Err(error) => {
            report(StreamEvent::Failed(id, error));
            return;
        }
    };
    // Reported before the call returns: servers such as grpc-go send response headers only with the first
    // response, which comes only after our first request.
    report(StreamEvent::Connected(id));
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(usize::MAX);
    let mut inbound = match client
        .stream_aggregated_resources(UnboundedReceiverStream::new(requests))
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => {
            report(StreamEvent::Failed(
                id,
                format!("ADS call failed: {status}"),
            ));
            return;
        }
    };
    loop {
        match inbound.message().await {
            Ok(Some(response)) => report(StreamEvent::Response(id, Box::new(response))),
            Ok(None) => {
                report(StreamEvent::Failed(
                    id,
                    "the server closed the stream".to_owned(),
                ));
                return;
            }
            Err(status) => {
                report(StreamEvent::Failed(id, format!("stream error: {status}")));
                return;
            }
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The wire form of a state-machine request. The node goes only on a stream's first request (Envoy xDS protocol:
/// "only needs to be specified in the first request on a stream").
pub(super) fn to_discovery_request(request: Request, node: Option<PbNode>) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: request.version_info.clone(),
        node,
        resource_names: request.names.clone(),
        type_url: request.type_url().to_owned(),
        response_nonce: request.response_nonce.clone(),
        // google.rpc.Code.INVALID_ARGUMENT, as gRPC clients NACK.
        error_detail: request.error_detail.map(|message| Status {
            code: 3,
            message,
            details: Vec::new(),
        }),
        ..Default::default()
    }
}

/// The bootstrap's node as Envoy's `Node`, with this client's user agent and features.
pub(crate) fn node_proto(node: &Node) -> PbNode {
    PbNode {
        id: node.id.clone(),
        cluster: node.cluster.clone(),
        metadata: if node.metadata.is_empty() {
            None
        } else {
            Some(json_struct(&node.metadata))
        },
        locality: if node.locality.is_unspecified() {
            None
        } else {
            Some(PbLocality {
                region: node.locality.region.to_string(),
                zone: node.locality.zone.to_string(),
                sub_zone: node.locality.sub_zone.to_string(),
            })
        },
        user_agent_name: node.user_agent_name.clone(),
        user_agent_version_type: Some(
            envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType::UserAgentVersion(
                node.user_agent_version.clone(),
            ),
        ),
        client_features: vec![CLIENT_FEATURE_RESOURCE_IN_SOTW.to_owned()],
        ..Default::default()
    }
}

fn json_struct(map: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_value(v)))
            .collect(),
    }
}

fn json_value(value: &serde_json::Value) -> Value {
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(json_struct(map)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_uris_become_dialable_urls() {
        assert_eq!(dial_url("localhost:18000"), "http://localhost:18000");
        assert_eq!(
            dial_url("dns:///xds.example.com:443"),
            "http://xds.example.com:443"
        );
        assert_eq!(
            dial_url("https://xds.example.com"),
            "https://xds.example.com"
        );
    }

    #[test]
    fn node_carries_locality_metadata_and_features() {
        let mut metadata = serde_json::Map::new();
        metadata.insert(
            "TRAFFICDIRECTOR_NETWORK_NAME".into(),
            serde_json::json!("default"),
        );
        metadata.insert("nested".into(), serde_json::json!({"a": [1, true, null]}));
        let node = Node::new("node-1")
            .with_cluster("c")
            .with_locality(mesh_core::locality::Locality::new(
                "us-east",
                "us-east-1a",
                "",
            ))
            .with_metadata(metadata);
        let proto = node_proto(&node);
        assert_eq!(proto.id, "node-1");
        assert_eq!(
            proto.locality.as_ref().map(|l| l.zone.as_str()),
            Some("us-east-1a")
        );
        let fields = &proto.metadata.as_ref().unwrap().fields;
        assert_eq!(
            fields["TRAFFICDIRECTOR_NETWORK_NAME"].kind,
            Some(Kind::StringValue("default".into()))
        );
        assert!(matches!(fields["nested"].kind, Some(Kind::StructValue(_))));
        assert_eq!(
            proto.client_features,
            vec![CLIENT_FEATURE_RESOURCE_IN_SOTW.to_owned()]
        );
    }
}
