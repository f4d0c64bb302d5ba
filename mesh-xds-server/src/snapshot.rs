//! Versioned sets of Envoy resources, keyed by type URL, as one node sees them.
//!
//! A [`Snapshot`] is what the server answers from: for each resource type (Listener, RouteConfiguration, Cluster,
//! ClusterLoadAssignment, or any other type URL) a version string and the resources by name, already packed as
//! `google.protobuf.Any`. Snapshots are immutable once handed to the [`crate::SnapshotCache`]; a change is a new
//! snapshot.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

/// The type URLs of the four resource types a proxyless client subscribes to (gRFC A27).
pub mod type_url {
    /// LDS: `envoy.config.listener.v3.Listener`.
    pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    /// RDS: `envoy.config.route.v3.RouteConfiguration`.
    pub const ROUTE_CONFIGURATION: &str =
        "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    /// CDS: `envoy.config.cluster.v3.Cluster`.
    pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    /// EDS: `envoy.config.endpoint.v3.ClusterLoadAssignment`.
    pub const CLUSTER_LOAD_ASSIGNMENT: &str =
        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

    /// The four standard types, in the order a client walks them.
    pub const ALL: [&str; 4] = [
        LISTENER,
        ROUTE_CONFIGURATION,
        CLUSTER,
        CLUSTER_LOAD_ASSIGNMENT,
    ];

    /// Whether an empty `resource_names` list on a stream's first request for this type means "all resources"
    /// (the legacy wildcard of the xDS protocol, defined for LDS and CDS only).
    #[must_use]
    pub fn supports_legacy_wildcard(type_url: &str) -> bool {
        type_url == LISTENER || type_url == CLUSTER
    }
}

/// The resources of one type in a snapshot, with the version string the server reports for them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    version: String,
    by_name: BTreeMap<String, Any>,
}

impl Resources {
    /// Empty resources at `version`.
    #[must_use]
    pub fn new(version: impl Into<String>) -> Self {
        Self {
            version: version.into(),
            by_name: BTreeMap::new(),
        }
    }

    /// The version string sent as `version_info` for this type.
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The resource named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Any> {
        self.by_name.get(name)
    }

    /// Resource names and resources, ordered by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Any)> {
        self.by_name.iter().map(|(name, any)| (name.as_str(), any))
    }

    /// The resource names, ordered.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// How many resources there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Envoy resources by type URL, each type with its own version.
///
/// Types absent from a snapshot behave as present and empty with version `""`.
///
/// ```
/// use mesh_xds_server::{Snapshot, type_url};
/// use envoy_types::pb::envoy::config::cluster::v3::Cluster;
///
/// let snapshot = Snapshot::builder()
///     .version("7")
///     .cluster(Cluster { name: "backend".into(), ..Default::default() })
///     .build();
/// assert_eq!(snapshot.version(type_url::CLUSTER), "7");
/// assert!(snapshot.resources(type_url::CLUSTER).unwrap().get("backend").is_some());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    types: BTreeMap<String, Resources>,
}

impl Snapshot {
    /// A snapshot with no resources of any type.
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// A builder for a snapshot of typed resources.
    #[must_use]
    pub fn builder() -> SnapshotBuilder {
        SnapshotBuilder::default()
    }

    /// The resources of `type_url`, if the snapshot has that type.
    #[must_use]
    pub fn resources(&self, type_url: &str) -> Option<&Resources> {
        self.types.get(type_url)
    }

    /// The version of `type_url` (`""` when the type is absent).
    #[must_use]
    pub fn version(&self, type_url: &str) -> &str {
        self.types.get(type_url).map_or("", |r| r.version.as_str())
    }

    /// The type URLs present, ordered.
    pub fn type_urls(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// Sets the version of `type_url`, creating the type (empty) when absent.
    pub fn set_version(&mut self, type_url: &str, version: impl Into<String>) {
        self.types.entry(type_url.to_owned()).or_default().version = version.into();
    }

    /// Inserts or replaces the resource `name` of `type_url` (any type URL: the server is type-agnostic).
    pub fn insert(&mut self, type_url: &str, name: impl Into<String>, resource: Any) {
        self.types
            .entry(type_url.to_owned())
            .or_default()
            .by_name
            .insert(name.into(), resource);
    }

    /// Removes the resource `name` of `type_url`, returning it.
    pub fn remove(&mut self, type_url: &str, name: &str) -> Option<Any> {
        self.types.get_mut(type_url)?.by_name.remove(name)
    }
}

/// Builds a [`Snapshot`] from typed Envoy resources. See [`Snapshot::builder`].
#[derive(Debug, Clone, Default)]
pub struct SnapshotBuilder {
    version: String,
    type_versions: BTreeMap<String, String>,
    resources: Vec<(String, String, Any)>,
}

impl SnapshotBuilder {
    /// The version of every type (the four standard types are always present, empty if need be).
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// A version for one type, overriding [`Self::version`].
    #[must_use]
    pub fn type_version(mut self, type_url: &str, version: impl Into<String>) -> Self {
        self.type_versions
            .insert(type_url.to_owned(), version.into());
        self
    }

    /// Adds a Listener (LDS), named by its `name`.
    #[must_use]
    pub fn listener(self, listener: Listener) -> Self {
        let name = listener.name.clone();
        self.resource(type_url::LISTENER, name, pack_any(listener))
    }

    /// Adds a RouteConfiguration (RDS), named by its `name`.
    #[must_use]
    pub fn route_configuration(self, route: RouteConfiguration) -> Self {
        let name = route.name.clone();
        self.resource(type_url::ROUTE_CONFIGURATION, name, pack_any(route))
    }

    /// Adds a Cluster (CDS), named by its `name`.
    #[must_use]
    pub fn cluster(self, cluster: Cluster) -> Self {
        let name = cluster.name.clone();
        self.resource(type_url::CLUSTER, name, pack_any(cluster))
    }

    /// Adds a ClusterLoadAssignment (EDS), named by its `cluster_name`.
    #[must_use]
    pub fn cluster_load_assignment(self, assignment: ClusterLoadAssignment) -> Self {
        let name = assignment.cluster_name.clone();
        self.resource(
            type_url::CLUSTER_LOAD_ASSIGNMENT,
            name,
            pack_any(assignment),
        )
    }

    /// Adds a resource of any type, already packed.
    #[must_use]
    pub fn resource(mut self, type_url: &str, name: impl Into<String>, resource: Any) -> Self {
        self.resources
            .push((type_url.to_owned(), name.into(), resource));
        self
    }

    /// The snapshot.
    #[must_use]
    pub fn build(self) -> Snapshot {
        let mut snapshot = Snapshot::empty();
        for type_url in type_url::ALL {
            snapshot.set_version(type_url, self.version.clone());
        }
        for (type_url, name, resource) in self.resources {
            if snapshot.resources(&type_url).is_none() {
                snapshot.set_version(&type_url, self.version.clone());
            }
            snapshot.insert(&type_url, name, resource);
        }
        for (type_url, version) in self.type_versions {
            snapshot.set_version(&type_url, version);
        }
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_sets_versions_for_standard_types_and_overrides() {
        let snapshot = Snapshot::builder()
            .version("3")
            .type_version(type_url::CLUSTER, "c9")
            .cluster(Cluster {
                name: "a".into(),
                ..Default::default()
            })
            .build();
        assert_eq!(snapshot.version(type_url::LISTENER), "3");
        assert_eq!(snapshot.version(type_url::CLUSTER), "c9");
        assert_eq!(
            snapshot.resources(type_url::CLUSTER).map(Resources::len),
            Some(1)
        );
        assert!(
            snapshot
                .resources(type_url::LISTENER)
                .is_some_and(Resources::is_empty)
        );
        assert_eq!(snapshot.version("type.googleapis.com/unknown"), "");
    }

    #[test]
    fn insert_and_remove_by_name() {
        let mut snapshot = Snapshot::empty();
        snapshot.insert(type_url::CLUSTER, "a", Any::default());
        assert!(snapshot.remove(type_url::CLUSTER, "a").is_some());
        assert!(snapshot.remove(type_url::CLUSTER, "a").is_none());
        assert!(snapshot.remove(type_url::LISTENER, "a").is_none());
    }
}
