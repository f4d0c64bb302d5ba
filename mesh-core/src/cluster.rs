//! Clusters: a named group of endpoints with the policies that govern traffic to it (Envoy's `Cluster`, as gRPC
//! supports it and beyond).
//!
//! A [`Cluster`] says how its endpoints are discovered ([`DiscoveryKind`]: EDS, LOGICAL_DNS, AGGREGATE or STATIC),
//! how one is picked ([`LbPolicy`]), and how the cluster protects itself and its callers ([`CircuitBreakers`],
//! [`OutlierDetection`]), plus upstream TLS. Not here: the live state (connections, ejections, counters), which
//! belongs to the request path.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::endpoint::{EndpointSet, Metadata};
use crate::macros::setters;
use crate::tls::UpstreamTls;

/// How a cluster's endpoints are found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum DiscoveryKind {
    /// From EDS, under `service_name` (Envoy's `eds_cluster_config.service_name`) or else the cluster's name.
    Eds {
        /// The EDS resource name, when it differs from the cluster's name.
        service_name: Option<Arc<str>>,
    },
    /// From DNS: one host name whose addresses are the endpoints (gRFC A27 LOGICAL_DNS).
    LogicalDns {
        /// The host name.
        host: Arc<str>,
        /// The port.
        port: u16,
    },
    /// Failover between other clusters, in order (gRFC A37): the first with usable endpoints gets the traffic.
    Aggregate {
        /// The child clusters, highest priority first.
        clusters: Vec<Arc<str>>,
    },
    /// Endpoints given in the cluster itself.
    Static {
        /// The endpoints.
        endpoints: Arc<EndpointSet>,
    },
}

/// How an endpoint is chosen within a locality.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LbPolicy {
    /// Power of two choices over peak-EWMA latency: picks the faster of two random endpoints, steering away from
    /// slow ones. Our default: it needs no configuration and reacts to latency within a few requests.
    PeakEwma {
        /// How quickly old latency observations fade.
        decay: Duration,
        /// The latency assumed for an endpoint before its first response.
        default_rtt: Duration,
    },
    /// Round robin (gRFC A27's default in gRPC).
    RoundRobin,
    /// The endpoint with the fewest outstanding requests among `choice_count` random ones (gRFC A48).
    LeastRequest {
        /// How many endpoints are compared (at least 2).
        choice_count: u32,
    },
    /// Consistent hashing of a request key (gRFC A42), for affinity.
    RingHash {
        /// The smallest ring.
        min_ring_size: u64,
        /// The largest ring.
        max_ring_size: u64,
    },
    /// The first endpoint that connects, with optional shuffling of the list (gRFC A62).
    PickFirst {
        /// Shuffle the endpoint list before connecting.
        shuffle_address_list: bool,
    },
    /// Weighted round robin with weights from backend load reports (gRFC A58).
    WeightedRoundRobin(WrrConfig),
}

impl LbPolicy {
    /// Default decay for [`LbPolicy::PeakEwma`].
    pub const DEFAULT_EWMA_DECAY: Duration = Duration::from_secs(10);
    /// Default initial latency for [`LbPolicy::PeakEwma`].
    pub const DEFAULT_EWMA_RTT: Duration = Duration::from_millis(30);
    /// gRFC A48's default choice count.
    pub const DEFAULT_CHOICE_COUNT: u32 = 2;
    /// gRFC A42's default minimum ring size.
    pub const DEFAULT_MIN_RING_SIZE: u64 = 1024;
    /// gRFC A42's default maximum ring size.
    pub const DEFAULT_MAX_RING_SIZE: u64 = 8_388_608;

    /// P2C peak-EWMA with its defaults.
    #[must_use]
    pub const fn peak_ewma() -> Self {
        Self::PeakEwma {
            decay: Self::DEFAULT_EWMA_DECAY,
            default_rtt: Self::DEFAULT_EWMA_RTT,
        }
    }

    /// Ring hash with gRFC A42's default sizes.
    #[must_use]
    pub const fn ring_hash() -> Self {
        Self::RingHash {
            min_ring_size: Self::DEFAULT_MIN_RING_SIZE,
            max_ring_size: Self::DEFAULT_MAX_RING_SIZE,
        }
    }
}

impl Default for LbPolicy {
    fn default() -> Self {
        Self::peak_ewma()
    }
}

/// Weighted round robin settings (gRFC A58), with its defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct WrrConfig {
    /// Use out-of-band load reports instead of per-call ones.
    pub enable_oob_load_report: bool,
    /// How often out-of-band reports are requested.
    pub oob_reporting_period: Duration,
    /// How long a new endpoint's weight is ignored.
    pub blackout_period: Duration,
    /// How long a weight stays valid without a report.
    pub weight_expiration_period: Duration,
    /// How often the schedule is rebuilt.
    pub weight_update_period: Duration,
    /// How much errors count against a weight.
    pub error_utilization_penalty: f32,
}

impl Default for WrrConfig {
    fn default() -> Self {
        Self {
            enable_oob_load_report: false,
            oob_reporting_period: Duration::from_secs(10),
            blackout_period: Duration::from_secs(10),
            weight_expiration_period: Duration::from_secs(180),
            weight_update_period: Duration::from_secs(1),
            error_utilization_penalty: 1.0,
        }
    }
}

/// Limits that fail requests fast instead of queueing them behind an overloaded cluster (gRFC A32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CircuitBreakers {
    /// Concurrent requests to the cluster (gRFC A32 default 1024).
    pub max_requests: u32,
    /// Requests waiting for a connection or an endpoint.
    pub max_pending_requests: u32,
    /// Concurrent retries.
    pub max_retries: u32,
    /// Connections to the cluster's endpoints.
    pub max_connections: u32,
}

impl CircuitBreakers {
    /// gRFC A32's default for `max_requests`.
    pub const DEFAULT_MAX_REQUESTS: u32 = 1024;
    /// Envoy's default for `max_pending_requests`.
    pub const DEFAULT_MAX_PENDING_REQUESTS: u32 = 1024;
    /// Envoy's default for `max_retries`.
    pub const DEFAULT_MAX_RETRIES: u32 = 3;
    /// Envoy's default for `max_connections`.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
}

impl Default for CircuitBreakers {
    fn default() -> Self {
        Self {
            max_requests: Self::DEFAULT_MAX_REQUESTS,
            max_pending_requests: Self::DEFAULT_MAX_PENDING_REQUESTS,
            max_retries: Self::DEFAULT_MAX_RETRIES,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

setters!(CircuitBreakers {
    /// Sets `max_requests`.
    with_max_requests => max_requests: u32,
    /// Sets `max_pending_requests`.
    with_max_pending_requests => max_pending_requests: u32,
    /// Sets `max_retries`.
    with_max_retries => max_retries: u32,
});

/// Success-rate ejection (gRFC A50): endpoints whose success rate falls below mean − stdev × factor are ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SuccessRateEjection {
    /// The factor, in thousandths (1900 = 1.9 standard deviations).
    pub stdev_factor: u32,
    /// The chance, in percent, that a detected outlier is actually ejected.
    pub enforcement_percentage: u32,
    /// Endpoints with enough requests needed before this runs.
    pub minimum_hosts: u32,
    /// Requests an endpoint needs in an interval to be considered.
    pub request_volume: u32,
}

impl Default for SuccessRateEjection {
    fn default() -> Self {
        Self {
            stdev_factor: 1900,
            enforcement_percentage: 100,
            minimum_hosts: 5,
            request_volume: 100,
        }
    }
}

/// Failure-percentage ejection (gRFC A50): endpoints failing more than `threshold` percent of requests are ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FailurePercentageEjection {
    /// The failure percentage above which an endpoint is an outlier.
    pub threshold: u32,
    /// The chance, in percent, that a detected outlier is actually ejected.
    pub enforcement_percentage: u32,
    /// Endpoints with enough requests needed before this runs.
    pub minimum_hosts: u32,
    /// Requests an endpoint needs in an interval to be considered.
    pub request_volume: u32,
}

impl Default for FailurePercentageEjection {
    fn default() -> Self {
        Self {
            threshold: 85,
            enforcement_percentage: 100,
            minimum_hosts: 5,
            request_volume: 50,
        }
    }
}

/// Consecutive-error ejection (Envoy's `consecutive_5xx` / `consecutive_gateway_failure`; gRPC has neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConsecutiveErrorEjection {
    /// Errors in a row that eject the endpoint (Envoy's default: 5).
    pub consecutive: u32,
    /// The chance, in percent, that the ejection is enforced.
    pub enforcement_percentage: u32,
}

impl Default for ConsecutiveErrorEjection {
    fn default() -> Self {
        Self {
            consecutive: 5,
            enforcement_percentage: 100,
        }
    }
}

/// Passive health checking (gRFC A50 plus Envoy's consecutive-error detectors).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OutlierDetection {
    /// How often ejection is evaluated.
    pub interval: Duration,
    /// The first ejection's length; the n-th lasts n times as long, up to the maximum.
    pub base_ejection_time: Duration,
    /// The longest ejection.
    pub max_ejection_time: Duration,
    /// At most this percentage of endpoints is ejected at once.
    pub max_ejection_percent: u32,
    /// Success-rate ejection, when enabled.
    pub success_rate: Option<SuccessRateEjection>,
    /// Failure-percentage ejection, when enabled.
    pub failure_percentage: Option<FailurePercentageEjection>,
    /// Ejection after consecutive 5xx (or gRPC errors mapped to them), when enabled.
    pub consecutive_5xx: Option<ConsecutiveErrorEjection>,
    /// Ejection after consecutive gateway errors (502, 503, 504, connection failures), when enabled.
    pub consecutive_gateway_failure: Option<ConsecutiveErrorEjection>,
}

impl Default for OutlierDetection {
    /// gRFC A50's defaults: 10 s interval, 30 s base and 300 s maximum ejection, 10% at most; no detector enabled.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            success_rate: None,
            failure_percentage: None,
            consecutive_5xx: None,
            consecutive_gateway_failure: None,
        }
    }
}

setters!(OutlierDetection {
    /// Sets the evaluation interval.
    with_interval => interval: Duration,
    /// Sets the base ejection time.
    with_base_ejection_time => base_ejection_time: Duration,
    /// Sets the maximum ejection time.
    with_max_ejection_time => max_ejection_time: Duration,
    /// Sets the maximum ejection percentage.
    with_max_ejection_percent => max_ejection_percent: u32,
    /// Enables success-rate ejection.
    with_success_rate => success_rate: Option<SuccessRateEjection>,
    /// Enables failure-percentage ejection.
    with_failure_percentage => failure_percentage: Option<FailurePercentageEjection>,
    /// Enables consecutive-5xx ejection.
    with_consecutive_5xx => consecutive_5xx: Option<ConsecutiveErrorEjection>,
    /// Enables consecutive-gateway-failure ejection.
    with_consecutive_gateway_failure => consecutive_gateway_failure: Option<ConsecutiveErrorEjection>,
});

/// Where load reports for a cluster go (gRFC A27 LRS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LoadReportServer {
    /// The management server this cluster came from (`lrs_server: {self: {}}`).
    SameAsXds,
}

/// A cluster: its discovery, balancing and protection settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Cluster {
    /// The cluster's name.
    pub name: Arc<str>,
    /// How endpoints are found.
    pub discovery: DiscoveryKind,
    /// How an endpoint is picked within a locality.
    pub lb_policy: LbPolicy,
    /// Limits on concurrency.
    pub circuit_breakers: CircuitBreakers,
    /// Passive health checking, when enabled.
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS to the endpoints; `None` is plaintext (gRFC A29 fallback).
    pub tls: Option<UpstreamTls>,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// Where load reports go, when the control plane wants them.
    pub lrs_server: Option<LoadReportServer>,
    /// Cluster metadata.
    pub metadata: Metadata,
}

impl Cluster {
    /// Envoy's default connect timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// A cluster named `name` discovered by `discovery`, with default policies (P2C peak-EWMA, default circuit
    /// breakers, no outlier detection, plaintext).
    #[must_use]
    pub fn new(name: &str, discovery: DiscoveryKind) -> Self {
        Self {
            name: name.into(),
            discovery,
            lb_policy: LbPolicy::default(),
            circuit_breakers: CircuitBreakers::default(),
            outlier_detection: None,
            tls: None,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            lrs_server: None,
            metadata: Metadata::default(),
        }
    }

    /// An EDS cluster whose EDS resource has the cluster's own name.
    #[must_use]
    pub fn eds(name: &str) -> Self {
        Self::new(name, DiscoveryKind::Eds { service_name: None })
    }

    /// The EDS resource name to watch, for EDS clusters.
    #[must_use]
    pub fn eds_service_name(&self) -> Option<&str> {
        match &self.discovery {
            DiscoveryKind::Eds { service_name } => {
                Some(service_name.as_deref().unwrap_or(&self.name))
            }
            _ => None,
        }
    }
}

setters!(Cluster {
    /// Sets the load-balancing policy.
    with_lb_policy => lb_policy: LbPolicy,
    /// Sets the circuit breakers.
    with_circuit_breakers => circuit_breakers: CircuitBreakers,
    /// Enables outlier detection.
    with_outlier_detection => outlier_detection: Option<OutlierDetection>,
    /// Sets upstream TLS.
    with_tls => tls: Option<UpstreamTls>,
    /// Sets the connect timeout.
    with_connect_timeout => connect_timeout: Duration,
    /// Sets where load reports go.
    with_lrs_server => lrs_server: Option<LoadReportServer>,
    /// Sets the metadata.
    with_metadata => metadata: Metadata,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eds_service_name_defaults_to_the_cluster_name() {
        assert_eq!(Cluster::eds("greeter").eds_service_name(), Some("greeter"));
        let named = Cluster::new(
            "greeter",
            DiscoveryKind::Eds {
                service_name: Some("greeter-eds".into()),
            },
        );
        assert_eq!(named.eds_service_name(), Some("greeter-eds"));
        let dns = Cluster::new(
            "dns",
            DiscoveryKind::LogicalDns {
                host: "example.com".into(),
                port: 443,
            },
        );
        assert_eq!(dns.eds_service_name(), None);
    }

    #[test]
    fn defaults_follow_the_grfcs() {
        let c = Cluster::eds("x");
        assert_eq!(c.circuit_breakers.max_requests, 1024);
        assert!(matches!(c.lb_policy, LbPolicy::PeakEwma { .. }));
        assert!(c.tls.is_none());
        let od = OutlierDetection::default();
        assert_eq!(od.max_ejection_percent, 10);
        assert_eq!(od.base_ejection_time, Duration::from_secs(30));
    }
}
