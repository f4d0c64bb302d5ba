//! xDS resources: their kinds, and validation of Envoy's protos into `mesh-core` values.
//!
//! Each resource arrives as a `google.protobuf.Any`. [`decode`] checks its type URL, decodes it and validates it
//! against the rules gRPC's gRFCs and Envoy's API docs set, producing a `mesh-core` value or a [`ResourceError`]
//! that names the resource and the field at fault, so a NACK's `error_detail` tells an operator exactly what to fix
//! (gRFC A46/A88: the other resources of the same response are still accepted).
//!
//! Not here: the protocol (versions, nonces, subscriptions), which lives in `crate::protocol`, and I/O.

use std::fmt;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use mesh_core::cluster::Cluster;
use mesh_core::endpoint::EndpointSet;
use mesh_core::listener::Listener;
use mesh_core::route::RouteConfig;
use serde::Serialize;

mod cluster;
mod common;
mod endpoint;
mod listener;
mod route;

pub use cluster::validate_cluster;
pub use endpoint::validate_cluster_load_assignment;
pub use listener::validate_listener;
pub use route::validate_route_configuration;

/// The resource types this client subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub enum ResourceKind {
    /// `envoy.config.listener.v3.Listener` (LDS).
    Listener,
    /// `envoy.config.route.v3.RouteConfiguration` (RDS).
    RouteConfiguration,
    /// `envoy.config.cluster.v3.Cluster` (CDS).
    Cluster,
    /// `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
    ClusterLoadAssignment,
}

impl ResourceKind {
    /// Every kind, in dependency order (LDS -> RDS -> CDS -> EDS).
    pub const ALL: [Self; 4] = [
        Self::Listener,
        Self::RouteConfiguration,
        Self::Cluster,
        Self::ClusterLoadAssignment,
    ];

    /// The type URL used on the wire.
    #[must_use]
    pub const fn type_url(self) -> &'static str {
        match self {
            Self::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            Self::RouteConfiguration => {
                "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
            }
            Self::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            Self::ClusterLoadAssignment => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
        }
    }

    /// The kind for a type URL.
    #[must_use]
    pub fn from_type_url(type_url: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.type_url() == type_url)
    }

    /// The resource type's short name as used in `xdstp://` names (gRFC A47), e.g.
    /// `envoy.config.listener.v3.Listener`.
    #[must_use]
    pub fn xdstp_type(self) -> &'static str {
        self.type_url()
            .strip_prefix("type.googleapis.com/")
            .unwrap_or(self.type_url())
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Listener => "Listener",
            Self::RouteConfiguration => "RouteConfiguration",
            Self::Cluster => "Cluster",
            Self::ClusterLoadAssignment => "ClusterLoadAssignment",
        })
    }
}

/// A validated resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Resource {
    /// A listener.
    Listener(Arc<Listener>),
    /// A route configuration.
    RouteConfiguration(Arc<RouteConfig>),
    /// A cluster.
    Cluster(Arc<Cluster>),
    /// A cluster's endpoints.
    ClusterLoadAssignment(Arc<EndpointSet>),
}

impl Resource {
    /// The resource's kind.
    #[must_use]
    pub fn kind(&self) -> ResourceKind {
        match self {
            Self::Listener(_) => ResourceKind::Listener,
            Self::RouteConfiguration(_) => ResourceKind::RouteConfiguration,
            Self::Cluster(_) => ResourceKind::Cluster,
            Self::ClusterLoadAssignment(_) => ResourceKind::ClusterLoadAssignment,
        }
    }
}

/// Settings that change what validation accepts.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ValidationContext {
    /// Certificate provider instance names from the bootstrap; a TLS context naming another instance is rejected
    /// (gRFC A29).
    pub certificate_providers: Vec<String>,
}

/// A rejected resource: which one (when its name could be read) and why, field by field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct ResourceError {
    /// The resource's kind.
    pub kind: ResourceKind,
    /// The resource's name, when the resource decoded far enough to have one.
    pub name: Option<String>,
    /// Each problem found, as `field.path: what is wrong`.
    pub problems: Vec<String>,
}

impl ResourceError {
    /// An error for resource `name` of `kind` with one problem.
    #[must_use]
    pub fn new(kind: ResourceKind, name: Option<&str>, problem: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.map(str::to_owned),
            problems: vec![problem.into()],
        }
    }
}

impl fmt::Display for ResourceError {
    /// `Cluster "name": field: problem; field: problem` — the form used in NACK `error_detail`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{} {name:?}: ", self.kind)?,
            None => write!(f, "{} (name unreadable): ", self.kind)?,
        }
        f.write_str(&self.problems.join("; "))
    }
}

/// Decodes and validates one resource of `kind`.
///
/// # Errors
/// [`ResourceError`] when the type URL is not `kind`'s, the bytes do not decode, or the resource breaks a rule.
pub fn decode(
    kind: ResourceKind,
    any: &Any,
    ctx: &ValidationContext,
) -> Result<(String, Resource), ResourceError> {
    if any.type_url != kind.type_url() {
        return Err(ResourceError::new(
            kind,
            None,
            format!("type_url {:?} is not {:?}", any.type_url, kind.type_url()),
        ));
    }
    match kind {
        ResourceKind::Listener => validate_listener(&any.value, ctx)
            .map(|(name, l)| (name, Resource::Listener(Arc::new(l)))),
        ResourceKind::RouteConfiguration => validate_route_configuration(&any.value, ctx)
            .map(|(name, r)| (name, Resource::RouteConfiguration(Arc::new(r)))),
        ResourceKind::Cluster => validate_cluster(&any.value, ctx)
            .map(|(name, c)| (name, Resource::Cluster(Arc::new(c)))),
        ResourceKind::ClusterLoadAssignment => validate_cluster_load_assignment(&any.value, ctx)
            .map(|(name, e)| (name, Resource::ClusterLoadAssignment(Arc::new(e)))),
    }
}
