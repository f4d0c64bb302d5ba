//! The mesh file: a small YAML description of services, clusters and server listeners, and the same model as Rust
//! values for tests and demos.
//!
//! The format is documented with a full example in the crate's `README.md`. [`MeshConfig::from_yaml`] parses and
//! validates; every error names the YAML path of the offending value
//! (`clusters[1].localities[0].endpoints[2]: invalid address "x"`). [`MeshConfig::translate`] turns a valid config
//! into the Envoy resources real clients need (see [`crate::translate`]).
//!
//! Not covered: LOGICAL_DNS and aggregate clusters, header-based fault selection, RDS-less inline routes, xDS-TP
//! resource names. Build a [`crate::Snapshot`] by hand for those.
//!
//! ```
//! use mesh_xds_server::mesh::{Cluster, Endpoint, Locality, MeshConfig, Route, Service};
//!
//! let mesh = MeshConfig::new()
//!     .with_service(Service::new("greeter").with_route(Route::to_cluster("greeter-main")))
//!     .with_cluster(
//!         Cluster::new("greeter-main")
//!             .with_locality(Locality::new("us-east", "us-east-1a", "").with_endpoint(Endpoint::new("127.0.0.1:50051"))),
//!     );
//! mesh.validate().unwrap();
//! let snapshot = mesh.to_snapshot("1").unwrap();
//! # let _ = snapshot;
//! ```

mod cluster;
pub(crate) mod duration;
mod error;
mod matcher;
mod server;
mod service;
mod validate;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use cluster::{
    CircuitBreakers, Cluster, Endpoint, FailurePercentageEjection, HealthStatus, LbPolicy,
    LeastRequestConfig, Locality, OutlierDetection, RingHashConfig, SuccessRateEjection,
    UpstreamTls,
};
pub use error::{FieldError, MeshError};
pub use matcher::{HeaderMatch, Int64Range, StringMatch};
pub use server::{
    Authenticated, DEFAULT_SERVER_LISTENER_NAME_TEMPLATE, DownstreamTls, Permission, Principal,
    Rbac, RbacAction, RbacPolicy, ServerListener,
};
pub use service::{
    FaultAbort, FaultDelay, FaultInjection, HashPolicy, RetryBackoff, RetryPolicy, Route,
    RouteMatch, Service, WeightedCluster,
};

use crate::snapshot::Snapshot;
use crate::translate::EnvoyResources;

/// A whole mesh: the root of the mesh file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MeshConfig {
    /// How server Listener names are formed (gRFC A36); must match the servers' bootstrap. `%s` is replaced by the
    /// listening address. Default [`DEFAULT_SERVER_LISTENER_NAME_TEMPLATE`].
    #[serde(default = "default_template")]
    pub server_listener_resource_name_template: String,
    /// Client-side targets (`xds:///NAME`).
    #[serde(default)]
    pub services: Vec<Service>,
    /// Clusters and their endpoints.
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    /// Listeners for xDS-enabled servers.
    #[serde(default)]
    pub servers: Vec<ServerListener>,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl MeshConfig {
    /// An empty mesh.
    #[must_use]
    pub fn new() -> Self {
        Self {
            server_listener_resource_name_template: default_template(),
            services: Vec::new(),
            clusters: Vec::new(),
            servers: Vec::new(),
        }
    }

    /// Appends a service.
    #[must_use]
    pub fn with_service(mut self, service: Service) -> Self {
        self.services.push(service);
        self
    }

    /// Appends a cluster.
    #[must_use]
    pub fn with_cluster(mut self, cluster: Cluster) -> Self {
        self.clusters.push(cluster);
        self
    }

    /// Appends a server listener.
    #[must_use]
    pub fn with_server(mut self, server: ServerListener) -> Self {
        self.servers.push(server);
        self
    }

    /// Sets the server Listener name template.
    #[must_use]
    pub fn with_server_listener_name_template(mut self, template: impl Into<String>) -> Self {
        self.server_listener_resource_name_template = template.into();
        self
    }

    /// Parses and validates a mesh file.
    ///
    /// # Errors
    /// [`MeshError::Parse`] for malformed YAML or a value of the wrong shape, [`MeshError::Invalid`] listing every
    /// inconsistent or out-of-range value; both name YAML paths.
    pub fn from_yaml(text: &str) -> Result<Self, MeshError> {
        // An empty document would parse as an empty mesh and, on reload, withdraw every resource: a half-written
        // file must not do that.
        if text.lines().all(|line| {
            let line = line.trim();
            line.is_empty() || line.starts_with('#') || line == "---"
        }) {
            return Err(MeshError::Parse {
                message: "the mesh file is empty".to_owned(),
            });
        }
        let mesh: Self = serde_norway::from_str(text).map_err(|error| MeshError::Parse {
            message: error.to_string(),
        })?;
        mesh.validate()?;
        Ok(mesh)
    }

    /// Reads, parses and validates a mesh file.
    ///
    /// # Errors
    /// [`MeshError::Read`] when the file cannot be read, else as [`Self::from_yaml`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, MeshError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| MeshError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// Checks references, ranges and uniqueness.
    ///
    /// # Errors
    /// [`MeshError::Invalid`] listing every problem with its YAML path.
    pub fn validate(&self) -> Result<(), MeshError> {
        let errors = validate::validate(self);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(MeshError::Invalid { errors })
        }
    }

    /// Validates and translates into Envoy resources.
    ///
    /// # Errors
    /// As [`Self::validate`].
    pub fn translate(&self) -> Result<EnvoyResources, MeshError> {
        self.validate()?;
        crate::translate::translate(self)
    }

    /// Validates and translates into a snapshot whose every type has `version`.
    ///
    /// # Errors
    /// As [`Self::validate`].
    pub fn to_snapshot(&self, version: &str) -> Result<Snapshot, MeshError> {
        Ok(self.translate()?.into_snapshot(version))
    }
}

fn default_template() -> String {
    DEFAULT_SERVER_LISTENER_NAME_TEMPLATE.to_owned()
}
