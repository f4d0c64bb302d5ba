//! The `node` the client identifies itself as to the management server (Envoy's `config.core.v3.Node`, gRFC A27).

use mesh_core::locality::Locality;
use serde::Serialize;

/// The `user_agent_name` sent in the Node unless the caller sets another.
pub const DEFAULT_USER_AGENT_NAME: &str = env!("CARGO_PKG_NAME");

/// The `user_agent_version` sent in the Node unless the caller sets another.
pub const DEFAULT_USER_AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Who this client is. All fields are optional in the bootstrap (C-core does not require `node` at all; note that
/// grpc-js does require `node.id` and `node.locality`).
///
/// gRFC A27: `user_agent_name`, `user_agent_version`, `build_version` and `client_features` are not read from the
/// bootstrap; the client fills them in. The two user-agent fields live here so the ADS request can be built from a
/// `Node` alone; the protocol layer adds its client features.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Node {
    /// `node.id`.
    pub id: String,
    /// `node.cluster`.
    pub cluster: String,
    /// `node.locality`; its parts are empty when unset.
    pub locality: Locality,
    /// `node.metadata`, a JSON object sent as a `google.protobuf.Struct`.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `user_agent_name` (default [`DEFAULT_USER_AGENT_NAME`]).
    pub user_agent_name: String,
    /// `user_agent_version` (default [`DEFAULT_USER_AGENT_VERSION`]).
    pub user_agent_version: String,
}

impl Default for Node {
    fn default() -> Self {
        Self {
            id: String::new(),
            cluster: String::new(),
            locality: Locality::default(),
            metadata: serde_json::Map::new(),
            user_agent_name: DEFAULT_USER_AGENT_NAME.to_owned(),
            user_agent_version: DEFAULT_USER_AGENT_VERSION.to_owned(),
        }
    }
}

impl Node {
    /// A node with id `id` and every other field at its default.
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }

    /// Sets `cluster`.
    #[must_use]
    pub fn with_cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = cluster.into();
        self
    }

    /// Sets `locality`.
    #[must_use]
    pub fn with_locality(mut self, locality: Locality) -> Self {
        self.locality = locality;
        self
    }

    /// Sets `metadata`.
    #[must_use]
    pub fn with_metadata(mut self, metadata: serde_json::Map<String, serde_json::Value>) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the user agent reported to the management server.
    #[must_use]
    pub fn with_user_agent(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.user_agent_name = name.into();
        self.user_agent_version = version.into();
        self
    }
}
