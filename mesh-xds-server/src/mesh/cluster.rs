//! Clusters: their load balancing, limits and TLS, and their endpoints grouped by locality and priority.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;
use super::matcher::StringMatch;

/// A cluster, served as an EDS Cluster plus its ClusterLoadAssignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Cluster {
    /// The Cluster name, referenced by routes.
    pub name: String,
    /// The ClusterLoadAssignment name (`eds_cluster_config.service_name`); default: `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eds_service_name: Option<String>,
    /// The load-balancing policy; default `round_robin`.
    #[serde(default)]
    pub lb_policy: LbPolicy,
    /// Ring sizes for `ring_hash` (gRFC A42).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_hash: Option<RingHashConfig>,
    /// Settings for `least_request` (gRFC A48).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub least_request: Option<LeastRequestConfig>,
    /// Connection timeout (Envoy; gRPC ignores it). Default: Envoy's 5 s.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub connect_timeout: Option<Duration>,
    /// Circuit breaking (gRFC A32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breakers: Option<CircuitBreakers>,
    /// Outlier detection (gRFC A50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Upstream TLS from xDS certificate providers (gRFC A29).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
    /// Whether to tell Envoy to speak HTTP/2 upstream (`typed_extension_protocol_options` with explicit
    /// `http2_protocol_options`); default `true`, as gRPC backends need. gRPC clients always speak HTTP/2.
    #[serde(default = "default_true")]
    pub http2: bool,
    /// Whether clients report this cluster's load to this server (the Cluster's `lrs_server: {self: {}}`, gRFC A27
    /// LRS); default `false`. The reports are in [`XdsServer::load_reports`](crate::XdsServer::load_reports).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub load_reporting: bool,
    /// Endpoints by locality and priority.
    #[serde(default)]
    pub localities: Vec<Locality>,
}

impl Cluster {
    /// A round-robin cluster named `name` with no endpoints yet.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            eds_service_name: None,
            lb_policy: LbPolicy::default(),
            ring_hash: None,
            least_request: None,
            connect_timeout: None,
            circuit_breakers: None,
            outlier_detection: None,
            tls: None,
            http2: true,
            load_reporting: false,
            localities: Vec::new(),
        }
    }

    /// Appends a locality.
    #[must_use]
    pub fn with_locality(mut self, locality: Locality) -> Self {
        self.localities.push(locality);
        self
    }

    /// Sets the load-balancing policy.
    #[must_use]
    pub fn with_lb_policy(mut self, policy: LbPolicy) -> Self {
        self.lb_policy = policy;
        self
    }

    /// Sets `circuit_breakers.max_requests`.
    #[must_use]
    pub fn with_max_requests(mut self, max_requests: u32) -> Self {
        self.circuit_breakers = Some(CircuitBreakers {
            max_requests: Some(max_requests),
        });
        self
    }

    /// Sets outlier detection.
    #[must_use]
    pub fn with_outlier_detection(mut self, outlier_detection: OutlierDetection) -> Self {
        self.outlier_detection = Some(outlier_detection);
        self
    }

    /// Sets upstream TLS.
    #[must_use]
    pub fn with_tls(mut self, tls: UpstreamTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Asks clients to report this cluster's load to this server (LRS, gRFC A27).
    #[must_use]
    pub fn with_load_reporting(mut self, enabled: bool) -> Self {
        self.load_reporting = enabled;
        self
    }

    /// Names the ClusterLoadAssignment.
    #[must_use]
    pub fn with_eds_service_name(mut self, name: impl Into<String>) -> Self {
        self.eds_service_name = Some(name.into());
        self
    }

    /// The ClusterLoadAssignment name.
    #[must_use]
    pub fn eds_service_name(&self) -> &str {
        self.eds_service_name.as_deref().unwrap_or(&self.name)
    }
}

/// Load-balancing policies proxyless gRPC supports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LbPolicy {
    /// Round robin within a locality, localities by weight (gRFC A27).
    #[default]
    RoundRobin,
    /// Least request with power-of-`choice_count` choices (gRFC A48).
    LeastRequest,
    /// Consistent hashing on the route's hash policy (gRFC A42).
    RingHash,
    /// Pick first, sent as the `load_balancing_policy` extension (gRFC A62).
    PickFirst,
}

/// `ring_hash_lb_config` (gRFC A42: sizes at most 8,388,608).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RingHashConfig {
    /// Default 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
    /// Default 8,388,608.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_ring_size: Option<u64>,
}

/// `least_request_lb_config` (gRFC A48).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LeastRequestConfig {
    /// Candidates per pick, at least 2; default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice_count: Option<u32>,
}

/// Circuit breakers for the default routing priority (gRFC A32).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CircuitBreakers {
    /// Concurrent requests to the cluster; default 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
}

/// Outlier detection (gRFC A50). Unset fields take Envoy's defaults, except that success-rate ejection is on only
/// when `success_rate` is given (its enforcement is written as 0 otherwise, which gRFC A50 reads as "off"), and the
/// Envoy-only consecutive-error ejections are on only when given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OutlierDetection {
    /// Time between ejection sweeps; default 10 s.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// Base ejection time, multiplied by the number of ejections; default 30 s.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub base_ejection_time: Option<Duration>,
    /// The longest ejection; default max(300 s, base).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_ejection_time: Option<Duration>,
    /// At most this percentage of endpoints ejected, 0–100; default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
    /// Success-rate ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<SuccessRateEjection>,
    /// Failure-percentage ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_percentage: Option<FailurePercentageEjection>,
    /// Eject after this many consecutive 5xx (Envoy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx: Option<u32>,
    /// Eject after this many consecutive gateway errors (Envoy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_failure: Option<u32>,
}

/// Success-rate ejection: endpoints below mean − stdev × `stdev_factor`/1000.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SuccessRateEjection {
    /// Default 1900 (1.9 standard deviations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdev_factor: Option<u32>,
    /// Chance, 0–100, that a detected outlier is ejected; default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement_percentage: Option<u32>,
    /// Endpoints with enough requests needed to run; default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_hosts: Option<u32>,
    /// Requests an endpoint needs in an interval to count; default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_volume: Option<u32>,
}

/// Failure-percentage ejection: endpoints whose failure percentage is at least `threshold`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FailurePercentageEjection {
    /// 0–100; default 85.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// Chance, 0–100, that a detected outlier is ejected; default 100 here (Envoy's default, 0, would make a
    /// configured `failure_percentage` do nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement_percentage: Option<u32>,
    /// Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_hosts: Option<u32>,
    /// Default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_volume: Option<u32>,
}

/// Upstream TLS from certificate-provider instances named in the client's bootstrap (gRFC A29).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct UpstreamTls {
    /// The provider instance of the CA bundle that validates the server (`ca_certificate_provider_instance`).
    pub ca_certificate_provider: String,
    /// The certificate name within that instance; default `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_name: Option<String>,
    /// The provider instance of the client's own certificate, for mTLS (`tls_certificate_provider_instance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_provider: Option<String>,
    /// The certificate name within that instance; default `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_name: Option<String>,
    /// The server's SAN must match one of these (e.g. `exact: spiffe://example.org/ns/default/sa/greeter`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub san_matchers: Vec<StringMatch>,
    /// SNI to send (Envoy; gRPC ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
}

impl UpstreamTls {
    /// Validate servers with the CA of provider instance `ca_certificate_provider`.
    #[must_use]
    pub fn new(ca_certificate_provider: impl Into<String>) -> Self {
        Self {
            ca_certificate_provider: ca_certificate_provider.into(),
            ..Self::default()
        }
    }

    /// Present the client certificate of provider instance `provider` (mTLS).
    #[must_use]
    pub fn with_client_certificate(mut self, provider: impl Into<String>) -> Self {
        self.certificate_provider = Some(provider.into());
        self
    }

    /// Require a server SAN to match `matcher`.
    #[must_use]
    pub fn with_san(mut self, matcher: StringMatch) -> Self {
        self.san_matchers.push(matcher);
        self
    }
}

/// A group of endpoints in one locality at one priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Locality {
    /// Region.
    #[serde(default)]
    pub region: String,
    /// Zone.
    #[serde(default)]
    pub zone: String,
    /// Sub-zone.
    #[serde(default)]
    pub sub_zone: String,
    /// 0 is the highest; priorities must be contiguous from 0 (gRFC A27).
    #[serde(default)]
    pub priority: u32,
    /// The locality's weight within its priority, at least 1 (always sent: gRPC drops localities without one).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The endpoints.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

impl Locality {
    /// An empty locality at priority 0 with weight 1.
    #[must_use]
    pub fn new(
        region: impl Into<String>,
        zone: impl Into<String>,
        sub_zone: impl Into<String>,
    ) -> Self {
        Self {
            region: region.into(),
            zone: zone.into(),
            sub_zone: sub_zone.into(),
            priority: 0,
            weight: 1,
            endpoints: Vec::new(),
        }
    }

    /// Sets the priority.
    #[must_use]
    pub fn with_priority(mut self, priority: u32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the weight.
    #[must_use]
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Appends an endpoint.
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }
}

/// One backend address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Endpoint {
    /// `IP:PORT` (`127.0.0.1:50051`, `[::1]:50051`).
    pub address: String,
    /// Health as EDS reports it; default `healthy`. gRPC uses only `healthy` and `unknown` endpoints.
    #[serde(default)]
    pub health: HealthStatus,
    /// Weight within the locality, at least 1; default 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

impl Endpoint {
    /// A healthy endpoint of weight 1.
    #[must_use]
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            health: HealthStatus::Healthy,
            weight: 1,
        }
    }

    /// Sets the health status.
    #[must_use]
    pub fn with_health(mut self, health: HealthStatus) -> Self {
        self.health = health;
        self
    }

    /// Sets the weight.
    #[must_use]
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }
}

/// `config.core.v3.HealthStatus`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HealthStatus {
    /// Unknown; gRPC and Envoy treat it as healthy.
    Unknown,
    /// Healthy.
    #[default]
    Healthy,
    /// Unhealthy.
    Unhealthy,
    /// Draining.
    Draining,
    /// Health check timed out.
    Timeout,
    /// Degraded.
    Degraded,
}

fn default_true() -> bool {
    true
}

fn default_weight() -> u32 {
    1
}
