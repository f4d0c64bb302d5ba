//! The `grpc.testing` messages the interop server and its tests use, written by hand with gRPC's field numbers
//! (grpc/grpc `src/proto/grpc/testing/empty.proto` and `messages.proto`).

/// `grpc.testing.Empty`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Empty {}

/// `grpc.testing.PayloadType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PayloadType {
    /// Compressable text format.
    Compressable = 0,
}

/// `grpc.testing.BoolValue`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct BoolValue {
    /// The bool value.
    #[prost(bool, tag = "1")]
    pub value: bool,
}

/// `grpc.testing.Payload`: a block of data, to increase a message's size.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Payload {
    /// The type of data in `body`.
    #[prost(enumeration = "PayloadType", tag = "1")]
    pub r#type: i32,
    /// The contents.
    #[prost(bytes = "vec", tag = "2")]
    pub body: Vec<u8>,
}

/// `grpc.testing.EchoStatus`: a status the client asks the server to answer with.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct EchoStatus {
    /// The status code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The status message.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `grpc.testing.GrpclbRouteType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum GrpclbRouteType {
    /// The server did not detect the route.
    Unknown = 0,
    /// Reached through gRPCLB fallback.
    Fallback = 1,
    /// Reached as a gRPCLB-given backend.
    Backend = 2,
}

/// `grpc.testing.SimpleRequest` (field 11, `orca_per_query_report`, is not modelled: it is skipped when received).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct SimpleRequest {
    /// Desired payload type in the response.
    #[prost(enumeration = "PayloadType", tag = "1")]
    pub response_type: i32,
    /// Desired payload size in the response.
    #[prost(int32, tag = "2")]
    pub response_size: i32,
    /// Optional input payload.
    #[prost(message, optional, tag = "3")]
    pub payload: Option<Payload>,
    /// Whether the response should include the username.
    #[prost(bool, tag = "4")]
    pub fill_username: bool,
    /// Whether the response should include the OAuth scope.
    #[prost(bool, tag = "5")]
    pub fill_oauth_scope: bool,
    /// Whether the server should compress the response.
    #[prost(message, optional, tag = "6")]
    pub response_compressed: Option<BoolValue>,
    /// A status the server should answer with.
    #[prost(message, optional, tag = "7")]
    pub response_status: Option<EchoStatus>,
    /// Whether the server should expect this request to be compressed.
    #[prost(message, optional, tag = "8")]
    pub expect_compressed: Option<BoolValue>,
    /// Whether the response should include `server_id`.
    #[prost(bool, tag = "9")]
    pub fill_server_id: bool,
    /// Whether the response should include `grpclb_route_type`.
    #[prost(bool, tag = "10")]
    pub fill_grpclb_route_type: bool,
}

/// `grpc.testing.SimpleResponse`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct SimpleResponse {
    /// Payload to increase the message's size.
    #[prost(message, optional, tag = "1")]
    pub payload: Option<Payload>,
    /// The user the request came from.
    #[prost(string, tag = "2")]
    pub username: String,
    /// OAuth scope.
    #[prost(string, tag = "3")]
    pub oauth_scope: String,
    /// The server's id: unique among servers, the same for every call to one server.
    #[prost(string, tag = "4")]
    pub server_id: String,
    /// gRPCLB path.
    #[prost(enumeration = "GrpclbRouteType", tag = "5")]
    pub grpclb_route_type: i32,
    /// The server's hostname.
    #[prost(string, tag = "6")]
    pub hostname: String,
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn simple_response_uses_grpc_field_numbers() {
        let response = SimpleResponse {
            server_id: "s".into(),
            hostname: "h".into(),
            ..SimpleResponse::default()
        };
        // Field 4 (server_id) then field 6 (hostname), both length-delimited.
        assert_eq!(response.encode_to_vec(), [0x22, 1, b's', 0x32, 1, b'h']);
    }

    #[test]
    fn simple_request_uses_grpc_field_numbers() {
        let request = SimpleRequest {
            response_size: 3,
            fill_server_id: true,
            ..SimpleRequest::default()
        };
        assert_eq!(request.encode_to_vec(), [0x10, 3, 0x48, 1]);
    }
}
