//! Client-side targets: what `xds:///NAME` resolves to, and how its requests are routed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;
use super::matcher::HeaderMatch;

/// A target clients dial as `xds:///NAME`: a Listener named `name` whose HttpConnectionManager points (over ADS)
/// at a RouteConfiguration with one virtual host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Service {
    /// The Listener name, i.e. the path of the `xds:///NAME` target (gRFC A27).
    pub name: String,
    /// The RouteConfiguration name; default: `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_config_name: Option<String>,
    /// The virtual host's domains; default `["*"]`. gRPC matches them against the target's authority.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// The routes, first match wins (gRFC A28). At least one.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Default stream timeout for every route: the HttpConnectionManager's
    /// `common_http_protocol_options.max_stream_duration` (gRFC A31).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Default retry policy for every route: the virtual host's `retry_policy` (gRFC A44).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Fault injection for every route: the config of the HTTP fault filter (gRFC A33).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultInjection>,
}

impl Service {
    /// A service named `name` with no routes yet.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            route_config_name: None,
            domains: Vec::new(),
            routes: Vec::new(),
            timeout: None,
            retry: None,
            fault: None,
        }
    }

    /// Appends a route.
    #[must_use]
    pub fn with_route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Sets the virtual host's domains.
    #[must_use]
    pub fn with_domains<I, S>(mut self, domains: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.domains = domains.into_iter().map(Into::into).collect();
        self
    }

    /// Names the RouteConfiguration.
    #[must_use]
    pub fn with_route_config_name(mut self, name: impl Into<String>) -> Self {
        self.route_config_name = Some(name.into());
        self
    }

    /// Sets the default stream timeout (`max_stream_duration`).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the virtual host's retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Sets fault injection for every route.
    #[must_use]
    pub fn with_fault(mut self, fault: FaultInjection) -> Self {
        self.fault = Some(fault);
        self
    }

    /// The RouteConfiguration name.
    #[must_use]
    pub fn route_config_name(&self) -> &str {
        self.route_config_name.as_deref().unwrap_or(&self.name)
    }
}

/// One route: a matcher and an action (one cluster, or weighted clusters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Route {
    /// Optional route name (shown in config dumps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What requests the route takes; default: every request (prefix `""`).
    #[serde(default, rename = "match")]
    pub matcher: RouteMatch,
    /// Send to this cluster. Exactly one of `cluster` and `weighted_clusters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Split between clusters by weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weighted_clusters: Vec<WeightedCluster>,
    /// Stream timeout: the route action's `max_stream_duration.max_stream_duration` (gRFC A31).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Retry policy, overriding the service's (gRFC A44).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Fault injection for this route, overriding the service's (the fault filter's `typed_per_filter_config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultInjection>,
    /// Hash policies for `ring_hash` clusters (gRFC A42).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hash_policy: Vec<HashPolicy>,
}

impl Route {
    fn with_action(cluster: Option<String>, weighted_clusters: Vec<WeightedCluster>) -> Self {
        Self {
            name: None,
            matcher: RouteMatch::default(),
            cluster,
            weighted_clusters,
            timeout: None,
            retry: None,
            fault: None,
            hash_policy: Vec::new(),
        }
    }

    /// Every request goes to `cluster` (narrow it with [`Self::with_prefix`] and friends).
    #[must_use]
    pub fn to_cluster(cluster: impl Into<String>) -> Self {
        Self::with_action(Some(cluster.into()), Vec::new())
    }

    /// Every request is split between `clusters` by weight.
    #[must_use]
    pub fn to_weighted_clusters<I>(clusters: I) -> Self
    where
        I: IntoIterator<Item = WeightedCluster>,
    {
        Self::with_action(None, clusters.into_iter().collect())
    }

    /// Matches paths starting with `prefix`.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.matcher.prefix = Some(prefix.into());
        self
    }

    /// Matches exactly `path` (`/package.Service/Method`).
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.matcher.path = Some(path.into());
        self
    }

    /// Matches paths fully matching the RE2 expression `regex`.
    #[must_use]
    pub fn with_regex(mut self, regex: impl Into<String>) -> Self {
        self.matcher.regex = Some(regex.into());
        self
    }

    /// Compares the path ignoring case.
    #[must_use]
    pub fn case_insensitive(mut self) -> Self {
        self.matcher.case_sensitive = false;
        self
    }

    /// Also requires a header to match.
    #[must_use]
    pub fn with_header(mut self, header: HeaderMatch) -> Self {
        self.matcher.headers.push(header);
        self
    }

    /// Sets the stream timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Sets fault injection.
    #[must_use]
    pub fn with_fault(mut self, fault: FaultInjection) -> Self {
        self.fault = Some(fault);
        self
    }

    /// Appends a hash policy.
    #[must_use]
    pub fn with_hash_policy(mut self, policy: HashPolicy) -> Self {
        self.hash_policy.push(policy);
        self
    }

    /// Names the route.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// What requests a route takes (gRFC A28): at most one of `prefix`, `path`, `regex` (none: every path), and every
/// header matcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouteMatch {
    /// The path starts with this (`/package.Service/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The path equals this (`/package.Service/Method`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The path fully matches this RE2 expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Whether `prefix` and `path` compare case-sensitively; default `true`.
    #[serde(default = "default_true")]
    pub case_sensitive: bool,
    /// Headers that must all match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
}

impl Default for RouteMatch {
    fn default() -> Self {
        Self {
            prefix: None,
            path: None,
            regex: None,
            case_sensitive: true,
            headers: Vec::new(),
        }
    }
}

/// One cluster of a weighted split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WeightedCluster {
    /// The cluster.
    pub name: String,
    /// Its share; the shares need not sum to 100.
    pub weight: u32,
}

impl WeightedCluster {
    /// `name` with `weight`.
    #[must_use]
    pub fn new(name: impl Into<String>, weight: u32) -> Self {
        Self {
            name: name.into(),
            weight,
        }
    }
}

/// The retry policy (gRFC A44): which gRPC status codes to retry, how many times, with what backoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Conditions: `cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`, `unavailable` (the ones gRPC
    /// honours), or Envoy's HTTP conditions (`5xx`, `gateway-error`, `reset`, `connect-failure`, `retriable-4xx`,
    /// `refused-stream`, `retriable-status-codes`, `retriable-headers`, `reset-before-request`,
    /// `envoy-ratelimited`, `http3-post-connect-failure`).
    pub retry_on: Vec<String>,
    /// Retries after the first attempt; default 1 (Envoy's default). gRPC caps attempts at 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_retries: Option<u32>,
    /// Exponential backoff; default base 25 ms, max 10 × base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<RetryBackoff>,
}

impl RetryPolicy {
    /// Retry on `retry_on` conditions up to `num_retries` times.
    #[must_use]
    pub fn new<I, S>(retry_on: I, num_retries: u32) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            retry_on: retry_on.into_iter().map(Into::into).collect(),
            num_retries: Some(num_retries),
            backoff: None,
        }
    }

    /// Sets the backoff.
    #[must_use]
    pub fn with_backoff(mut self, base_interval: Duration, max_interval: Option<Duration>) -> Self {
        self.backoff = Some(RetryBackoff {
            base_interval,
            max_interval,
        });
        self
    }
}

/// Retry backoff (`retry_back_off`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryBackoff {
    /// The first backoff; must be positive.
    #[serde(with = "duration::required")]
    pub base_interval: Duration,
    /// The largest backoff; at least `base_interval`. Default: 10 × base.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_interval: Option<Duration>,
}

/// HTTP fault injection (gRFC A33): delay and/or abort a percentage of requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FaultInjection {
    /// Delay requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    /// Fail requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
    /// At most this many requests faulted at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_faults: Option<u32>,
}

impl FaultInjection {
    /// Delays `percent` % of requests by `delay`.
    #[must_use]
    pub fn with_delay(mut self, delay: Duration, percent: f64) -> Self {
        self.delay = Some(FaultDelay {
            fixed: delay,
            percent,
        });
        self
    }

    /// Fails `percent` % of requests with gRPC status `code`.
    #[must_use]
    pub fn with_grpc_abort(mut self, code: u32, percent: f64) -> Self {
        self.abort = Some(FaultAbort {
            grpc_status: Some(code),
            http_status: None,
            percent,
        });
        self
    }
}

/// A fixed delay for a percentage of requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FaultDelay {
    /// How long.
    #[serde(with = "duration::required")]
    pub fixed: Duration,
    /// Which share of requests, 0–100 (resolution 0.0001 %).
    pub percent: f64,
}

/// An abort for a percentage of requests: exactly one of `grpc_status` and `http_status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FaultAbort {
    /// The gRPC status code, 0–16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<u32>,
    /// The HTTP status, 200–599 (gRPC maps it to a status code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u32>,
    /// Which share of requests, 0–100 (resolution 0.0001 %).
    pub percent: f64,
}

/// A ring-hash request hash (gRFC A42): exactly one of `header` and `channel_id: true`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HashPolicy {
    /// Hash this request header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Hash the channel (filter state `io.grpc.channel_id`): one backend per channel.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub channel_id: bool,
    /// Stop at this policy when it produced a hash.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminal: bool,
}

impl HashPolicy {
    /// Hash the header `name`.
    #[must_use]
    pub fn header(name: impl Into<String>) -> Self {
        Self {
            header: Some(name.into()),
            ..Self::default()
        }
    }

    /// Hash the channel id.
    #[must_use]
    pub fn channel_id() -> Self {
        Self {
            channel_id: true,
            ..Self::default()
        }
    }
}

fn default_true() -> bool {
    true
}
