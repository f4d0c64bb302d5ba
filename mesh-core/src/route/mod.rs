//! Route configuration: Envoy's `RouteConfiguration` as the request path needs it.
//!
//! A [`RouteConfig`] holds [`VirtualHost`]s chosen by the request's authority; each holds ordered [`Route`]s, the
//! first whose [`RouteMatch`] accepts the request wins (gRFC A28), and its [`RouteAction`] says which cluster gets the
//! request and with which timeout, retry, hash and fault settings.
//!
//! Selection and matching live in [`matching`]. Not here: running the request (mesh-tower) or translating Envoy's
//! protos (mesh-xds-client).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::fraction::FractionalPercent;
use crate::macros::setters;
use crate::matcher::{SafeRegex, StringMatcher};
use crate::weighted::{WeightedError, WeightedIndex};

pub mod matching;
mod policy;

pub use policy::{
    FaultAbort, FaultAbortKind, FaultDelay, FaultInjection, HashPolicy, HashPolicyKind,
    RetryBackoff, RetryBudget, RetryOn, RetryOnError, RetryPolicy,
};

/// A route configuration: virtual hosts selected by authority.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RouteConfig {
    /// The resource name (the RDS name, or the listener's name for an inline configuration).
    pub name: Arc<str>,
    /// Virtual hosts, in configuration order.
    pub virtual_hosts: Vec<VirtualHost>,
}

impl RouteConfig {
    /// A route configuration named `name` with the given virtual hosts.
    #[must_use]
    pub fn new(name: &str, virtual_hosts: Vec<VirtualHost>) -> Self {
        Self {
            name: name.into(),
            virtual_hosts,
        }
    }
}

/// A virtual host: the routes for a set of domains.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct VirtualHost {
    /// The virtual host's name (for logs and config dumps).
    pub name: Arc<str>,
    /// Domains served: exact names, `*.suffix`, `prefix.*`, or `*` (Envoy's forms; matched case-insensitively).
    pub domains: Vec<Arc<str>>,
    /// Routes, first match wins.
    pub routes: Vec<Route>,
    /// Retry policy for routes that set none (gRFC A44: the route's policy overrides the virtual host's).
    pub retry_policy: Option<RetryPolicy>,
    /// Fault-injection override for routes that set none (gRFC A39 per-filter config).
    pub fault_override: Option<FaultInjection>,
}

impl VirtualHost {
    /// A virtual host serving `domains` with `routes`.
    #[must_use]
    pub fn new(name: &str, domains: &[&str], routes: Vec<Route>) -> Self {
        Self {
            name: name.into(),
            domains: domains.iter().map(|d| Arc::from(*d)).collect(),
            routes,
            retry_policy: None,
            fault_override: None,
        }
    }
}

setters!(VirtualHost {
    /// Sets the virtual host's default retry policy.
    with_retry_policy => retry_policy: Option<RetryPolicy>,
    /// Sets the virtual host's fault-injection override.
    with_fault_override => fault_override: Option<FaultInjection>,
});

/// One route: a match and what to do with matching requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Route {
    /// The route's name, when configured (for logs and telemetry).
    pub name: Option<Arc<str>>,
    /// Which requests this route takes.
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    /// What happens to them.
    pub action: Action,
    /// Fault-injection override for this route (gRFC A39 per-filter config).
    pub fault_override: Option<FaultInjection>,
}

impl Route {
    /// A route sending requests that match `matcher` to `action`.
    #[must_use]
    pub fn new(matcher: RouteMatch, action: RouteAction) -> Self {
        Self {
            name: None,
            matcher,
            action: Action::Route(action),
            fault_override: None,
        }
    }

    /// A route whose matching requests are not forwarded (a server-side route; gRFC A36 fails them with
    /// UNAVAILABLE on a client).
    #[must_use]
    pub fn non_forwarding(matcher: RouteMatch) -> Self {
        Self {
            name: None,
            matcher,
            action: Action::NonForwarding,
            fault_override: None,
        }
    }

    /// The route action, when this route forwards.
    #[must_use]
    pub fn route_action(&self) -> Option<&RouteAction> {
        match &self.action {
            Action::Route(action) => Some(action),
            Action::NonForwarding => None,
        }
    }
}

setters!(Route {
    /// Names the route.
    with_name => name: Option<Arc<str>>,
    /// Sets the route's fault-injection override.
    with_fault_override => fault_override: Option<FaultInjection>,
});

/// What a route does with a matching request.
// Most routes forward; boxing the common variant would add a pointer chase per request to shrink the rare one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Forward to a cluster.
    Route(RouteAction),
    /// Handled locally (server side, gRFC A36); a client treats it as a configuration error for this request.
    NonForwarding,
}

/// The path part of a route match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PathMatch {
    /// The path starts with this prefix (an empty prefix matches every path).
    Prefix(Arc<str>),
    /// The path equals this value.
    Exact(Arc<str>),
    /// The whole path matches this regex (case sensitivity does not apply).
    SafeRegex(SafeRegex),
}

/// Which requests a route takes: a path match, header matchers (all must match) and an optional runtime fraction.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RouteMatch {
    /// The path condition.
    pub path: PathMatch,
    /// Whether prefix and exact path matching is case-sensitive (Envoy's default: true).
    pub case_sensitive: bool,
    /// Header conditions; all must match.
    pub headers: Vec<HeaderMatcher>,
    /// The share of matching requests this route takes (gRFC A28 `runtime_fraction`); `None` means all.
    pub runtime_fraction: Option<FractionalPercent>,
}

impl RouteMatch {
    /// A match on `path`, case-sensitive, with no header conditions.
    #[must_use]
    pub fn new(path: PathMatch) -> Self {
        Self {
            path,
            case_sensitive: true,
            headers: Vec::new(),
            runtime_fraction: None,
        }
    }

    /// Every path.
    #[must_use]
    pub fn any() -> Self {
        Self::new(PathMatch::Prefix("".into()))
    }

    /// Paths starting with `prefix`.
    #[must_use]
    pub fn prefix(prefix: &str) -> Self {
        Self::new(PathMatch::Prefix(prefix.into()))
    }

    /// Exactly `path`.
    #[must_use]
    pub fn exact(path: &str) -> Self {
        Self::new(PathMatch::Exact(path.into()))
    }

    /// Adds a header condition.
    #[must_use]
    pub fn with_header(mut self, header: HeaderMatcher) -> Self {
        self.headers.push(header);
        self
    }
}

setters!(RouteMatch {
    /// Sets whether prefix and exact path matches are case-sensitive.
    with_case_sensitive => case_sensitive: bool,
    /// Sets the runtime fraction.
    with_runtime_fraction => runtime_fraction: Option<FractionalPercent>,
});

/// The condition a [`HeaderMatcher`] applies to a header's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HeaderMatch {
    /// A string condition: exact, prefix, suffix, contains or regex, optionally ignoring case.
    String(StringMatcher),
    /// The value parses as a signed integer in `start..end` (start inclusive, end exclusive).
    Range {
        /// Inclusive start.
        start: i64,
        /// Exclusive end.
        end: i64,
    },
    /// The header is present (`true`) or absent (`false`).
    Present(bool),
}

/// A condition on one request header (Envoy's `HeaderMatcher`, gRFC A28).
///
/// A header with several values is matched against its values joined with `,`. Headers whose names end in `-bin`
/// are treated as absent (gRFC A28).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HeaderMatcher {
    /// The header name, lowercase.
    pub name: Arc<str>,
    /// The condition.
    pub condition: HeaderMatch,
    /// Inverts the result (Envoy's `invert_match`).
    pub invert: bool,
    /// Treats a missing header as an empty value instead of failing the match.
    pub treat_missing_as_empty: bool,
}

impl HeaderMatcher {
    /// A matcher applying `condition` to header `name` (lowercased here).
    #[must_use]
    pub fn new(name: &str, condition: HeaderMatch) -> Self {
        Self {
            name: name.to_ascii_lowercase().into(),
            condition,
            invert: false,
            treat_missing_as_empty: false,
        }
    }

    /// Header `name` equals `value`.
    #[must_use]
    pub fn exact(name: &str, value: &str) -> Self {
        Self::new(name, HeaderMatch::String(StringMatcher::exact(value)))
    }

    /// Header `name` is present.
    #[must_use]
    pub fn present(name: &str) -> Self {
        Self::new(name, HeaderMatch::Present(true))
    }
}

setters!(HeaderMatcher {
    /// Inverts the match.
    with_invert => invert: bool,
    /// Treats a missing header as present with an empty value.
    with_treat_missing_as_empty => treat_missing_as_empty: bool,
});

/// Which cluster a route sends to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClusterSpecifier {
    /// One named cluster.
    Cluster(Arc<str>),
    /// A weighted split (canary, blue-green).
    Weighted(WeightedClusters),
    /// The cluster named by this request header (Envoy's `cluster_header`); no or an unknown value fails the request.
    Header(Arc<str>),
}

/// A cluster in a weighted split.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct WeightedCluster {
    /// The cluster's name.
    pub name: Arc<str>,
    /// Its weight; zero-weight clusters get no traffic.
    pub weight: u32,
    /// Fault-injection override for traffic sent to this cluster (gRFC A39 per-filter config).
    pub fault_override: Option<FaultInjection>,
}

impl WeightedCluster {
    /// `name` with `weight`.
    #[must_use]
    pub fn new(name: &str, weight: u32) -> Self {
        Self {
            name: name.into(),
            weight,
            fault_override: None,
        }
    }
}

/// A weighted split between clusters, with its pick table built once.
#[derive(Debug, Clone, Serialize)]
pub struct WeightedClusters {
    clusters: Vec<WeightedCluster>,
    #[serde(skip)]
    index: WeightedIndex,
}

impl WeightedClusters {
    /// A split between `clusters`.
    ///
    /// # Errors
    /// When there are no clusters or every weight is zero (gRFC A28 rejects a total weight of zero).
    pub fn new(clusters: Vec<WeightedCluster>) -> Result<Self, WeightedError> {
        let index = WeightedIndex::new(clusters.iter().map(|c| c.weight))?;
        Ok(Self { clusters, index })
    }

    /// The clusters of the split.
    #[must_use]
    pub fn clusters(&self) -> &[WeightedCluster] {
        &self.clusters
    }

    /// Picks a cluster with probability proportional to its weight, in constant time.
    pub fn pick(&self, rng: &mut impl crate::rng::RandomSource) -> &WeightedCluster {
        let picked = self.index.pick(rng);
        match self.clusters.get(picked) {
            Some(cluster) => cluster,
            // The index is built from `clusters`, so `picked` is always in range; fall back to the first entry
            // rather than panic. `new` guarantees at least one.
            None => self.first(),
        }
    }

    fn first(&self) -> &WeightedCluster {
        #[allow(clippy::indexing_slicing)]
        // non-empty by construction (WeightedIndex::new rejects empty input)
        &self.clusters[0]
    }
}

impl PartialEq for WeightedClusters {
    fn eq(&self, other: &Self) -> bool {
        self.clusters == other.clusters
    }
}

/// What to do with a matched request: where it goes and under which policies.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RouteAction {
    /// The destination cluster(s).
    pub cluster: ClusterSpecifier,
    /// The route's maximum stream duration (gRFC A31 `max_stream_duration`): the deadline applied to each call,
    /// further capped by the `grpc-timeout` header. `None` leaves the listener's default.
    pub max_stream_duration: Option<Duration>,
    /// Caps the `grpc-timeout` header's value (gRFC A31 `grpc_timeout_header_max`); `Some(ZERO)` means no cap.
    pub grpc_timeout_header_max: Option<Duration>,
    /// Retries for this route; overrides the virtual host's policy.
    pub retry_policy: Option<RetryPolicy>,
    /// How a request is hashed for ring-hash balancing, in order (gRFC A42).
    pub hash_policies: Vec<HashPolicy>,
}

impl RouteAction {
    /// Sends to `cluster` with no extra policy.
    #[must_use]
    pub fn cluster(cluster: &str) -> Self {
        Self::new(ClusterSpecifier::Cluster(cluster.into()))
    }

    /// Sends to `specifier` with no extra policy.
    #[must_use]
    pub fn new(specifier: ClusterSpecifier) -> Self {
        Self {
            cluster: specifier,
            max_stream_duration: None,
            grpc_timeout_header_max: None,
            retry_policy: None,
            hash_policies: Vec::new(),
        }
    }

    /// Splits between weighted clusters.
    ///
    /// # Errors
    /// When there are no clusters or every weight is zero.
    pub fn weighted(clusters: Vec<WeightedCluster>) -> Result<Self, WeightedError> {
        Ok(Self::new(ClusterSpecifier::Weighted(
            WeightedClusters::new(clusters)?,
        )))
    }

    /// Adds a hash policy.
    #[must_use]
    pub fn with_hash_policy(mut self, policy: HashPolicy) -> Self {
        self.hash_policies.push(policy);
        self
    }

    /// Every cluster name this action can send to (none for [`ClusterSpecifier::Header`]).
    pub fn cluster_names(&self) -> impl Iterator<Item = &Arc<str>> {
        let (single, weighted) = match &self.cluster {
            ClusterSpecifier::Cluster(name) => (Some(name), &[][..]),
            ClusterSpecifier::Weighted(split) => (None, split.clusters()),
            ClusterSpecifier::Header(_) => (None, &[][..]),
        };
        single.into_iter().chain(weighted.iter().map(|c| &c.name))
    }
}

setters!(RouteAction {
    /// Sets the route's maximum stream duration (its timeout).
    with_max_stream_duration => max_stream_duration: Option<Duration>,
    /// Sets the cap on the `grpc-timeout` header.
    with_grpc_timeout_header_max => grpc_timeout_header_max: Option<Duration>,
    /// Sets the route's retry policy.
    with_retry_policy => retry_policy: Option<RetryPolicy>,
});

/// Header values as route matching sees them: the request's headers by lowercase name.
///
/// Implemented for [`http::HeaderMap`] and for slices of `(name, value)` pairs (handy in tests).
pub trait HeaderLookup {
    /// Every value of header `name` (lowercase), in order.
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]>;
}

impl HeaderLookup for http::HeaderMap {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.get_all(name).iter().map(http::HeaderValue::as_bytes)
    }
}

impl HeaderLookup for [(&str, &str)] {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_bytes())
    }
}
