//! Endpoints: where a cluster's traffic can go, grouped by locality and priority.
//!
//! [`EndpointSet`] is the model of Envoy's `ClusterLoadAssignment` (EDS): localities with a priority and a weight,
//! each holding endpoints with an address, a health status and a weight, plus drop overloads and the
//! overprovisioning factor. Picking among them lives in [`crate::picker`].
//!
//! Not here: connections, health checking or outlier state; the request path tracks those and hands the picker the
//! resulting usability of each endpoint.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::fraction::FractionalPercent;
use crate::locality::Locality;
use crate::macros::setters;

/// Where to connect: a resolved socket address, or a host name and port resolved by DNS at connect time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EndpointAddress {
    /// An IP address and port.
    Socket(SocketAddr),
    /// A DNS name and port.
    HostPort {
        /// The host name.
        host: Arc<str>,
        /// The port.
        port: u16,
    },
}

impl fmt::Display for EndpointAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Socket(addr) => write!(f, "{addr}"),
            Self::HostPort { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl From<SocketAddr> for EndpointAddress {
    fn from(addr: SocketAddr) -> Self {
        Self::Socket(addr)
    }
}

/// Envoy's `HealthStatus` as the control plane reports it.
///
/// gRFC A27: only `Healthy` and `Unknown` endpoints are used; every other status excludes the endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum HealthStatus {
    /// Not known (the default; treated as healthy).
    #[default]
    Unknown,
    /// Healthy.
    Healthy,
    /// Unhealthy.
    Unhealthy,
    /// Draining: finish what is in flight, start nothing new.
    Draining,
    /// A health check timed out.
    Timeout,
    /// Degraded (Envoy can use degraded hosts as a last resort; gRPC does not, and neither do we).
    Degraded,
}

impl HealthStatus {
    /// Whether an endpoint with this status may receive new requests (gRFC A27: `HEALTHY` or `UNKNOWN`).
    #[must_use]
    pub const fn is_usable(self) -> bool {
        matches!(self, Self::Healthy | Self::Unknown)
    }
}

/// A value in endpoint or cluster metadata (the JSON-like `google.protobuf.Value`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum MetadataValue {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    String(Arc<str>),
    /// A list.
    List(Arc<[MetadataValue]>),
    /// A struct.
    Struct(MetadataStruct),
}

impl From<Vec<MetadataValue>> for MetadataValue {
    fn from(items: Vec<MetadataValue>) -> Self {
        Self::List(items.into())
    }
}

/// The fields of a metadata struct, sorted by name in one shared allocation (none when empty).
///
/// Compact on purpose: an EDS update can carry tens of thousands of endpoints, each with metadata, and a map per
/// struct would cost several times the memory (the issue's budget is 1 KiB per endpoint, metadata included).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataStruct(Option<Arc<[MetadataField]>>);

/// One field of a [`MetadataStruct`]: its name and value.
pub type MetadataField = (Arc<str>, MetadataValue);

impl MetadataStruct {
    /// The value of field `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&MetadataValue> {
        let fields = self.0.as_deref()?;
        let at = fields.binary_search_by(|(key, _)| (**key).cmp(name)).ok()?;
        fields.get(at).map(|(_, value)| value)
    }

    /// The fields, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.0
            .iter()
            .flat_map(|fields| fields.iter().map(|(k, v)| (&**k, v)))
    }

    /// How many fields there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.as_deref().map_or(0, <[_]>::len)
    }

    /// Whether there are no fields.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FromIterator<(Arc<str>, MetadataValue)> for MetadataStruct {
    /// Sorts the fields by name; of duplicate names the last wins (as when decoding a JSON object).
    fn from_iter<I: IntoIterator<Item = (Arc<str>, MetadataValue)>>(iter: I) -> Self {
        let mut fields: Vec<(Arc<str>, MetadataValue)> = iter.into_iter().collect();
        if fields.is_empty() {
            return Self(None);
        }
        // Stable, so among equal names the last one ends up last; keep it.
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        let mut deduped: Vec<(Arc<str>, MetadataValue)> = Vec::with_capacity(fields.len());
        for field in fields {
            match deduped.last_mut() {
                Some(last) if last.0 == field.0 => *last = field,
                _ => deduped.push(field),
            }
        }
        Self(Some(deduped.into()))
    }
}

impl From<BTreeMap<Arc<str>, MetadataValue>> for MetadataStruct {
    fn from(map: BTreeMap<Arc<str>, MetadataValue>) -> Self {
        map.into_iter().collect()
    }
}

impl Serialize for MetadataStruct {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// Metadata by filter name (Envoy's `filter_metadata`), shared cheaply between snapshots; empty metadata allocates
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metadata(MetadataStruct);

impl Metadata {
    /// Metadata from `(filter, value)` pairs.
    #[must_use]
    pub fn new(entries: impl IntoIterator<Item = (Arc<str>, MetadataValue)>) -> Self {
        Self(entries.into_iter().collect())
    }

    /// The value stored under `filter`.
    #[must_use]
    pub fn get(&self, filter: &str) -> Option<&MetadataValue> {
        self.0.get(filter)
    }

    /// Whether there is no metadata.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One endpoint of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Endpoint {
    /// Where to connect.
    pub address: EndpointAddress,
    /// The health status from the control plane.
    pub health: HealthStatus,
    /// The load-balancing weight within its locality (Envoy: at least 1; gRPC ignores it, we honour it).
    pub weight: u32,
    /// The endpoint's host name, when the control plane sends one (used for TLS and logs).
    pub hostname: Option<Arc<str>>,
    /// Endpoint metadata.
    pub metadata: Metadata,
}

impl Endpoint {
    /// The default weight of an endpoint that sets none.
    pub const DEFAULT_WEIGHT: u32 = 1;

    /// A healthy-unknown endpoint at `address` with weight 1.
    #[must_use]
    pub fn new(address: impl Into<EndpointAddress>) -> Self {
        Self {
            address: address.into(),
            health: HealthStatus::Unknown,
            weight: Self::DEFAULT_WEIGHT,
            hostname: None,
            metadata: Metadata::default(),
        }
    }
}

setters!(Endpoint {
    /// Sets the health status.
    with_health => health: HealthStatus,
    /// Sets the weight.
    with_weight => weight: u32,
    /// Sets the host name.
    with_hostname => hostname: Option<Arc<str>>,
    /// Sets the metadata.
    with_metadata => metadata: Metadata,
});

/// The endpoints of one locality at one priority (Envoy's `LocalityLbEndpoints`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LocalityEndpoints {
    /// The locality.
    pub locality: Locality,
    /// Its priority: 0 is the highest; traffic fails over to higher numbers (gRFC A27/A56).
    pub priority: u32,
    /// Its weight among the localities of the same priority. gRFC A27: a locality without a weight is dropped,
    /// which the validator does; zero here means "no traffic".
    pub weight: u32,
    /// Its endpoints.
    pub endpoints: Vec<Endpoint>,
}

impl LocalityEndpoints {
    /// Endpoints of `locality` at `priority` with `weight`.
    #[must_use]
    pub fn new(locality: Locality, priority: u32, weight: u32, endpoints: Vec<Endpoint>) -> Self {
        Self {
            locality,
            priority,
            weight,
            endpoints,
        }
    }
}

/// A category of requests the control plane asks the client to drop (Envoy's `DropOverload`, gRFC A27).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DropOverload {
    /// The category, reported in load reports.
    pub category: Arc<str>,
    /// The share of requests to drop.
    pub percentage: FractionalPercent,
}

impl DropOverload {
    /// Drops `percentage` of requests under `category`.
    #[must_use]
    pub fn new(category: &str, percentage: FractionalPercent) -> Self {
        Self {
            category: category.into(),
            percentage,
        }
    }
}

/// A cluster's endpoints: the model of Envoy's `ClusterLoadAssignment`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct EndpointSet {
    /// The cluster (or EDS service) name.
    pub cluster_name: Arc<str>,
    /// Localities with their priorities, weights and endpoints.
    pub localities: Vec<LocalityEndpoints>,
    /// Drop overloads, applied in order before picking.
    pub drop_overloads: Vec<DropOverload>,
    /// Envoy's overprovisioning factor, in percent (default 140): a priority or locality with at least
    /// `100 / factor` of its endpoints usable counts as fully available.
    pub overprovisioning_factor: u32,
}

impl EndpointSet {
    /// Envoy's default overprovisioning factor (1.4, in percent).
    pub const DEFAULT_OVERPROVISIONING_FACTOR: u32 = 140;

    /// An endpoint set for `cluster_name`.
    #[must_use]
    pub fn new(cluster_name: &str, localities: Vec<LocalityEndpoints>) -> Self {
        Self {
            cluster_name: cluster_name.into(),
            localities,
            drop_overloads: Vec::new(),
            overprovisioning_factor: Self::DEFAULT_OVERPROVISIONING_FACTOR,
        }
    }

    /// The number of endpoints across every locality and priority.
    #[must_use]
    pub fn endpoint_count(&self) -> usize {
        self.localities.iter().map(|l| l.endpoints.len()).sum()
    }

    /// Every endpoint with its locality, in order (locality by locality).
    pub fn endpoints(&self) -> impl Iterator<Item = (&LocalityEndpoints, &Endpoint)> {
        self.localities
            .iter()
            .flat_map(|l| l.endpoints.iter().map(move |e| (l, e)))
    }
}

setters!(EndpointSet {
    /// Sets the drop overloads.
    with_drop_overloads => drop_overloads: Vec<DropOverload>,
    /// Sets the overprovisioning factor (percent).
    with_overprovisioning_factor => overprovisioning_factor: u32,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_fields_are_sorted_deduplicated_and_found() {
        let fields: MetadataStruct = [
            (Arc::from("b"), MetadataValue::Bool(true)),
            (Arc::from("a"), MetadataValue::Number(1.0)),
            (Arc::from("b"), MetadataValue::Null),
        ]
        .into_iter()
        .collect();
        assert_eq!(fields.len(), 2);
        assert_eq!(fields.get("a"), Some(&MetadataValue::Number(1.0)));
        assert_eq!(
            fields.get("b"),
            Some(&MetadataValue::Null),
            "the last duplicate wins"
        );
        assert_eq!(fields.get("c"), None);
        let json = serde_json::to_string(&MetadataValue::Struct(fields)).unwrap_or_default();
        assert_eq!(json, r#"{"a":1.0,"b":null}"#);
        assert!(Metadata::default().is_empty());
    }

    #[test]
    fn only_healthy_and_unknown_are_usable() {
        use HealthStatus::*;
        let usable: Vec<_> = [Unknown, Healthy, Unhealthy, Draining, Timeout, Degraded]
            .into_iter()
            .filter(|h| h.is_usable())
            .collect();
        assert_eq!(usable, vec![Unknown, Healthy]);
    }

    #[test]
    fn endpoint_set_counts_and_iterates_in_order() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable!());
        let b: SocketAddr = "127.0.0.2:1".parse().unwrap_or_else(|_| unreachable!());
        let set = EndpointSet::new(
            "c",
            vec![
                LocalityEndpoints::new(Locality::new("r", "z1", ""), 0, 1, vec![Endpoint::new(a)]),
                LocalityEndpoints::new(Locality::new("r", "z2", ""), 1, 1, vec![Endpoint::new(b)]),
            ],
        );
        assert_eq!(set.endpoint_count(), 2);
        let order: Vec<String> = set
            .endpoints()
            .map(|(_, e)| e.address.to_string())
            .collect();
        assert_eq!(order, vec!["127.0.0.1:1", "127.0.0.2:1"]);
    }
}
