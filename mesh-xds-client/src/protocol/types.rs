//! The state machine's inputs and outputs.

use std::fmt;

use crate::resource::{ResourceError, ResourceKind};

use super::config::ServerId;

/// One ADS stream to one server. A new id is issued on every [`Output::Connect`], so events from a stream the state
/// machine has given up on are recognised and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    server: ServerId,
    generation: u64,
}

impl StreamId {
    pub(super) const fn new(server: ServerId, generation: u64) -> Self {
        Self { server, generation }
    }

    /// The server this stream talks to.
    #[must_use]
    pub const fn server(self) -> ServerId {
        self.server
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server {} stream {}", self.server.0, self.generation)
    }
}

/// A `DiscoveryRequest` to write on a stream (the worker adds the node and the type URL).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Request {
    /// The resource type.
    pub kind: ResourceKind,
    /// Every name subscribed for this type on this server, sorted (SotW: the full list every time).
    pub names: Vec<String>,
    /// The last version of this type accepted from this server (empty before the first ACK).
    pub version_info: String,
    /// The nonce of the response this request answers; empty on a new stream.
    pub response_nonce: String,
    /// Set on a NACK: every problem of the rejected response.
    pub error_detail: Option<String>,
}

impl Request {
    /// The request's type URL.
    #[must_use]
    pub const fn type_url(&self) -> &'static str {
        self.kind.type_url()
    }

    /// Whether this request rejects a response.
    #[must_use]
    pub const fn is_nack(&self) -> bool {
        self.error_detail.is_some()
    }
}

/// One resource of a response after decoding and validation: its name and value, or why it was rejected
/// ([`ResourceError::name`] is `None` when the resource did not decode far enough to have a name).
pub type DecodedResource<R> = Result<(String, R), ResourceError>;

/// A `DiscoveryResponse` after decoding and validation.
///
/// Responses whose type URL is not one of [`ResourceKind`]'s, and responses that do not decode at all, never reach
/// the state machine: the worker logs and drops them, neither ACKing nor NACKing, as gRPC C-core does ("error
/// parsing ADS response -- ignoring"). Such a response does not count as "a response" for backoff or fallback.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedResponse<R> {
    /// The response's type.
    pub kind: ResourceKind,
    /// `version_info`.
    pub version_info: String,
    /// `nonce`.
    pub nonce: String,
    /// Every resource, in order.
    pub resources: Vec<DecodedResource<R>>,
}

/// Something the worker or the watchers must act on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output<R> {
    /// Open a stream to `stream.server()`, then report
    /// [`XdsState::stream_connected`](super::XdsState::stream_connected) or
    /// [`XdsState::stream_failed`](super::XdsState::stream_failed).
    Connect {
        /// The new stream.
        stream: StreamId,
    },
    /// Close this stream; the state machine no longer needs it.
    Disconnect {
        /// The stream to close.
        stream: StreamId,
    },
    /// Write a request on this stream.
    Send {
        /// The stream.
        stream: StreamId,
        /// The request.
        request: Request,
    },
    /// A resource's new value, for its watchers.
    Changed {
        /// The resource's kind.
        kind: ResourceKind,
        /// The resource's (normalized) name.
        name: String,
        /// The new value.
        resource: R,
    },
    /// An error for a resource's watchers.
    Error {
        /// The resource's kind.
        kind: ResourceKind,
        /// The resource's (normalized) name.
        name: String,
        /// What went wrong.
        error: WatchError,
        /// gRFC A88: `true` when the watchers keep using the value they have (an "ambient" error, context only);
        /// `false` when they have no value and must fail (a resource error).
        ambient: bool,
    },
    /// The resource does not exist: watchers must stop using any value they had.
    DoesNotExist {
        /// The resource's kind.
        kind: ResourceKind,
        /// The resource's (normalized) name.
        name: String,
    },
}

/// Why a watcher gets an [`Output::Error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The server sent the resource but it failed validation, so the response was NACKed.
    #[error("{0}")]
    Rejected(ResourceError),
    /// The stream to the server failed before any response (gRFC A57 connectivity error).
    #[error("xDS server {server_uri}: stream failed before any response: {detail}")]
    Unreachable {
        /// The server's URI.
        server_uri: String,
        /// What the worker reported.
        detail: String,
    },
    /// An `xdstp://` name whose authority the bootstrap does not list (gRFC A47: "it is an error if the specified
    /// authority is not present in this map").
    #[error("resource {name:?}: authority {authority:?} is not in the bootstrap's authorities")]
    UnknownAuthority {
        /// The resource name.
        name: String,
        /// The authority.
        authority: String,
    },
    /// An `xdstp://` name that does not parse.
    #[error("resource {name:?}: malformed xdstp name: {problem}")]
    InvalidName {
        /// The resource name.
        name: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// An `xdstp://` name whose resource type is not the subscribed type.
    #[error("resource {name:?}: xdstp resource type is not {expected}")]
    WrongType {
        /// The resource name.
        name: String,
        /// The type the name should carry.
        expected: &'static str,
    },
    /// The server stopped sending a Listener or Cluster, and the server has `ignore_resource_deletion` (gRFC A53), so
    /// the cached value stays in use.
    #[error(
        "xDS server {server_uri} deleted the resource; still using the cached value (ignore_resource_deletion)"
    )]
    DeletionIgnored {
        /// The server's URI.
        server_uri: String,
    },
}

/// Where a subscribed resource stands (the client status of a CSDS config dump, gRFC A40).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResourceStatus {
    /// Subscribed; nothing received yet.
    Requested,
    /// The latest value from the server was accepted.
    Acked,
    /// The latest value from the server was rejected; an older value may still serve.
    Nacked,
    /// The server does not have it (timer expired, or deleted from a Listener/Cluster response).
    DoesNotExist,
    /// The name cannot be requested from any server (unknown authority, malformed name).
    Unroutable,
}
