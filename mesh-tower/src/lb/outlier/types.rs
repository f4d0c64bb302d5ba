//! The values that go in and out of an [`OutlierDetector`](super::OutlierDetector).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How a request to an endpoint ended, as outlier detection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The endpoint answered successfully.
    Success,
    /// The request failed because of the endpoint.
    Failure {
        /// A gateway error (Envoy `consecutive_gateway_failure`: HTTP 502, 503 or 504, or a connect failure, reset
        /// or timeout the request path maps to one). Gateway failures also count as failures for every other
        /// detector.
        gateway: bool,
    },
}

impl Outcome {
    /// A failure that is not a gateway error.
    pub const FAILURE: Self = Self::Failure { gateway: false };
    /// A gateway error.
    pub const GATEWAY_FAILURE: Self = Self::Failure { gateway: true };

    /// Envoy's classification of an HTTP status: 5xx is a failure, 502/503/504 a gateway failure, anything else a
    /// success (`putHttpResponseCode`).
    #[must_use]
    pub const fn from_http_status(status: u16) -> Self {
        match status {
            502..=504 => Self::GATEWAY_FAILURE,
            500..=599 => Self::FAILURE,
            _ => Self::Success,
        }
    }

    /// A gRPC status code, for calls that got HTTP 200: `OK` is a success and any other status a failure (gRPC's
    /// outlier detection counts every non-OK call as failed); `UNAVAILABLE` (14), which gRPC maps from HTTP
    /// 502/503/504, is a gateway failure.
    #[must_use]
    pub const fn from_grpc_code(code: u32) -> Self {
        match code {
            0 => Self::Success,
            14 => Self::GATEWAY_FAILURE,
            _ => Self::FAILURE,
        }
    }

    /// A connection that could not be made or was reset: a gateway failure (Envoy maps it to 503).
    #[must_use]
    pub const fn connect_failure() -> Self {
        Self::GATEWAY_FAILURE
    }
}

/// Which detector ejected an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EjectionReason {
    /// gRFC A50 success-rate ejection.
    SuccessRate,
    /// gRFC A50 failure-percentage ejection.
    FailurePercentage,
    /// Envoy `consecutive_5xx`.
    Consecutive5xx,
    /// Envoy `consecutive_gateway_failure`.
    ConsecutiveGatewayFailure,
}

impl EjectionReason {
    /// The snake_case name, for logs and metrics labels.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SuccessRate => "success_rate",
            Self::FailurePercentage => "failure_percentage",
            Self::Consecutive5xx => "consecutive_5xx",
            Self::ConsecutiveGatewayFailure => "consecutive_gateway_failure",
        }
    }
}

impl fmt::Display for EjectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An endpoint was just ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ejection {
    /// The endpoint's index.
    pub endpoint: usize,
    /// The detector that ejected it.
    pub reason: EjectionReason,
    /// Its ejection time multiplier, this ejection included.
    pub multiplier: u32,
    /// How long it stays out: gRFC A50's ejection time for `multiplier`. Un-ejection happens at the first evaluation
    /// after that.
    pub duration: Duration,
}

/// What one [`evaluate`](super::OutlierDetector::evaluate) changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EvaluationResult {
    /// Endpoints ejected by this evaluation.
    pub ejected: Vec<Ejection>,
    /// Endpoints returned to service, their ejection time being over.
    pub unejected: Vec<usize>,
    /// Outliers found but spared by the enforcement percentage (Envoy's `ejections_detected_*` minus enforced).
    pub not_enforced: Vec<(usize, EjectionReason)>,
    /// An algorithm stopped early because `max_ejection_percent` was reached.
    pub stopped_at_max_ejection_percent: bool,
}

impl EvaluationResult {
    /// Whether the set of ejected endpoints changed, so that the caller should rebuild its picker.
    #[must_use]
    pub fn changed(&self) -> bool {
        !self.ejected.is_empty() || !self.unejected.is_empty()
    }
}

/// One endpoint's outlier-detection state, for telemetry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointOutlierState {
    /// The endpoint's key.
    pub key: Arc<str>,
    /// Whether it is ejected.
    pub ejected: bool,
    /// When ejected, how long until its ejection time is over (it returns at the next evaluation after that).
    pub remaining_ejection: Option<Duration>,
    /// Its ejection time multiplier.
    pub multiplier: u32,
    /// Successful requests in the last evaluated interval.
    pub last_interval_successes: u64,
    /// Failed requests in the last evaluated interval.
    pub last_interval_failures: u64,
    /// The running streak of failures (when `consecutive_5xx` is on).
    pub consecutive_5xx: u32,
    /// The running streak of gateway failures (when `consecutive_gateway_failure` is on).
    pub consecutive_gateway_failures: u32,
}

/// A cluster's outlier-detection state, for telemetry and config dumps.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutlierSnapshot {
    /// Per endpoint, in index order.
    pub endpoints: Vec<EndpointOutlierState>,
    /// Endpoints ejected now.
    pub ejected: usize,
    /// The configured maximum share of ejected endpoints, in percent.
    pub max_ejection_percent: u32,
}
