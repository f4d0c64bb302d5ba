//! The `grpc.testing` messages of the interop client's stats port, written by hand with gRPC's field numbers
//! (grpc/grpc `src/proto/grpc/testing/messages.proto`): `LoadBalancerStatsService` and
//! `XdsUpdateClientConfigureService`.

use std::collections::HashMap;

/// `grpc.testing.LoadBalancerStatsRequest`: count the next `num_rpcs` RPCs the client sends.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LoadBalancerStatsRequest {
    /// How many RPCs to count, from the next one sent.
    #[prost(int32, tag = "1")]
    pub num_rpcs: i32,
    /// Answer with what was counted after this many seconds, even if fewer RPCs completed.
    #[prost(int32, tag = "2")]
    pub timeout_sec: i32,
    /// Response metadata (header and trailer) keys to report per RPC, matched without regard to case; `*` for
    /// every entry.
    #[prost(string, repeated, tag = "3")]
    pub metadata_keys: Vec<String>,
}

/// `grpc.testing.LoadBalancerStatsResponse.RpcsByPeer`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RpcsByPeer {
    /// Completed RPCs by peer hostname.
    #[prost(map = "string, int32", tag = "1")]
    pub rpcs_by_peer: HashMap<String, i32>,
}

/// `grpc.testing.LoadBalancerStatsResponse.MetadataType`: where a response metadata entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetadataType {
    /// Not known.
    Unknown = 0,
    /// The response headers.
    Initial = 1,
    /// The trailers.
    Trailing = 2,
}

/// `grpc.testing.LoadBalancerStatsResponse.MetadataEntry`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MetadataEntry {
    /// The key, as received.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value, as received.
    #[prost(string, tag = "2")]
    pub value: String,
    /// Headers or trailers.
    #[prost(enumeration = "MetadataType", tag = "3")]
    pub r#type: i32,
}

/// `grpc.testing.LoadBalancerStatsResponse.RpcMetadata`: the requested entries of one RPC.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RpcMetadata {
    /// The entries.
    #[prost(message, repeated, tag = "1")]
    pub metadata: Vec<MetadataEntry>,
}

/// `grpc.testing.LoadBalancerStatsResponse.MetadataByPeer`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MetadataByPeer {
    /// One entry per RPC the peer answered.
    #[prost(message, repeated, tag = "1")]
    pub rpc_metadata: Vec<RpcMetadata>,
}

/// `grpc.testing.LoadBalancerStatsResponse`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LoadBalancerStatsResponse {
    /// Completed RPCs by peer hostname.
    #[prost(map = "string, int32", tag = "1")]
    pub rpcs_by_peer: HashMap<String, i32>,
    /// RPCs that failed (or completed without naming a peer).
    #[prost(int32, tag = "2")]
    pub num_failures: i32,
    /// Completed RPCs by method (`UnaryCall`, `EmptyCall`), then by peer.
    #[prost(map = "string, message", tag = "3")]
    pub rpcs_by_method: HashMap<String, RpcsByPeer>,
    /// The response metadata named by `metadata_keys`, per peer and RPC.
    #[prost(map = "string, message", tag = "4")]
    pub metadatas_by_peer: HashMap<String, MetadataByPeer>,
}

/// `grpc.testing.LoadBalancerAccumulatedStatsRequest`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct LoadBalancerAccumulatedStatsRequest {}

/// `grpc.testing.LoadBalancerAccumulatedStatsResponse.MethodStats`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MethodStats {
    /// RPCs started.
    #[prost(int32, tag = "1")]
    pub rpcs_started: i32,
    /// Completed RPCs by status code.
    #[prost(map = "int32, int32", tag = "2")]
    pub result: HashMap<i32, i32>,
}

/// `grpc.testing.LoadBalancerAccumulatedStatsResponse`: totals since the client started. Keys are the RPC types
/// in `ClientConfigureRequest.RpcType` form (`UNARY_CALL`, `EMPTY_CALL`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LoadBalancerAccumulatedStatsResponse {
    /// RPCs started by type (deprecated in gRPC in favour of `stats_per_method`, still filled).
    #[prost(map = "string, int32", tag = "1")]
    pub num_rpcs_started_by_method: HashMap<String, i32>,
    /// RPCs succeeded by type (deprecated, still filled).
    #[prost(map = "string, int32", tag = "2")]
    pub num_rpcs_succeeded_by_method: HashMap<String, i32>,
    /// RPCs failed by type (deprecated, still filled).
    #[prost(map = "string, int32", tag = "3")]
    pub num_rpcs_failed_by_method: HashMap<String, i32>,
    /// Started RPCs and results by type.
    #[prost(map = "string, message", tag = "4")]
    pub stats_per_method: HashMap<String, MethodStats>,
}

/// `grpc.testing.ClientConfigureRequest.RpcType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum RpcType {
    /// `EmptyCall`.
    EmptyCall = 0,
    /// `UnaryCall`.
    UnaryCall = 1,
}

impl RpcType {
    /// Both types, in the order the client sends them.
    pub const ALL: [Self; 2] = [Self::UnaryCall, Self::EmptyCall];

    /// The method name (`UnaryCall`), as in `--rpc`, `--metadata` and `rpcs_by_method`.
    #[must_use]
    pub fn method(self) -> &'static str {
        match self {
            Self::EmptyCall => "EmptyCall",
            Self::UnaryCall => "UnaryCall",
        }
    }

    /// The enum name (`UNARY_CALL`), as in the accumulated stats.
    #[must_use]
    pub fn enum_name(self) -> &'static str {
        match self {
            Self::EmptyCall => "EMPTY_CALL",
            Self::UnaryCall => "UNARY_CALL",
        }
    }

    /// The type whose method name is `method`.
    #[must_use]
    pub fn from_method(method: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|rpc| rpc.method() == method)
    }
}

/// `grpc.testing.ClientConfigureRequest.Metadata`: a header to send with one type of RPC.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ConfigureMetadata {
    /// The RPC type.
    #[prost(enumeration = "RpcType", tag = "1")]
    pub r#type: i32,
    /// Header name.
    #[prost(string, tag = "2")]
    pub key: String,
    /// Header value.
    #[prost(string, tag = "3")]
    pub value: String,
}

/// `grpc.testing.ClientConfigureRequest`: what the client sends from now on.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ClientConfigureRequest {
    /// The RPC types to send.
    #[prost(enumeration = "RpcType", repeated, tag = "1")]
    pub types: Vec<i32>,
    /// Headers to send, per RPC type.
    #[prost(message, repeated, tag = "2")]
    pub metadata: Vec<ConfigureMetadata>,
    /// The deadline of every RPC in seconds; 0 means `--rpc_timeout_sec`.
    #[prost(int32, tag = "3")]
    pub timeout_sec: i32,
}

/// `grpc.testing.ClientConfigureResponse`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct ClientConfigureResponse {}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn configure_request_uses_grpc_field_numbers() {
        let request = ClientConfigureRequest {
            types: vec![RpcType::UnaryCall as i32],
            metadata: vec![ConfigureMetadata {
                r#type: RpcType::EmptyCall as i32,
                key: "k".into(),
                value: "v".into(),
            }],
            timeout_sec: 2,
        };
        // types packed (field 1), metadata (field 2: type 0 omitted, key, value), timeout_sec (field 3).
        assert_eq!(
            request.encode_to_vec(),
            [0x0a, 1, 1, 0x12, 6, 0x12, 1, b'k', 0x1a, 1, b'v', 0x18, 2]
        );
    }

    #[test]
    fn stats_response_uses_grpc_field_numbers() {
        let response = LoadBalancerStatsResponse {
            rpcs_by_peer: HashMap::from([("a".to_owned(), 3)]),
            num_failures: 1,
            ..LoadBalancerStatsResponse::default()
        };
        // map entry (field 1: key 1, value 2), num_failures (field 2).
        assert_eq!(
            response.encode_to_vec(),
            [0x0a, 5, 0x0a, 1, b'a', 0x10, 3, 0x10, 1]
        );
        let accumulated = LoadBalancerAccumulatedStatsResponse {
            stats_per_method: HashMap::from([(
                "E".to_owned(),
                MethodStats {
                    rpcs_started: 1,
                    result: HashMap::new(),
                },
            )]),
            ..LoadBalancerAccumulatedStatsResponse::default()
        };
        assert_eq!(
            accumulated.encode_to_vec(),
            [0x22, 7, 0x0a, 1, b'E', 0x12, 2, 0x08, 1]
        );
    }
}
