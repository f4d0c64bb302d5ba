//! Why a request failed, as a typed error that becomes a gRPC status or an HTTP status.
//!
//! Every failure the request path produces itself (no route, no endpoint, circuit breaker open, deadline, connect
//! failure, injected fault) is a [`MeshError`]. The service answers it as a response, never as `Err`: a gRPC request
//! gets a trailers-only response with `grpc-status` and a `grpc-message` a person can act on; a plain HTTP request
//! gets 503, 504 or the injected status with the reason as a text body. The error itself rides along in the
//! response's extensions so callers can classify it by type, never by message text.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::lb::Overloaded;
use crate::status::Code;

/// A shared, type-erased error source (cheap to clone into response extensions).
pub type SharedError = Arc<dyn std::error::Error + Send + Sync>;

/// How an attempt to an endpoint failed below HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportFailure {
    /// No connection could be made (refused, unreachable, connect timeout).
    Connect,
    /// The stream was not processed: refused by the peer (HTTP/2 `REFUSED_STREAM`) or never sent because the
    /// connection closed first; safe to retry.
    RefusedStream,
    /// The stream or connection was reset, or closed before a response.
    Reset,
}

impl fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect failure",
            Self::RefusedStream => "stream refused",
            Self::Reset => "stream reset",
        })
    }
}

/// A cluster's endpoints by state, each counted once (unhealthy before ejected before unreachable): in a "no healthy
/// endpoints" failure and in [`Metrics::endpoints_changed`](crate::metrics::Metrics::endpoints_changed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointCounts {
    /// Endpoints in the cluster.
    pub total: usize,
    /// Endpoints the control plane reports as unhealthy (or with zero weight).
    pub unhealthy: usize,
    /// Endpoints ejected by outlier detection.
    pub ejected: usize,
    /// Endpoints whose connection failed and has not been remade.
    pub unreachable: usize,
}

impl EndpointCounts {
    /// Endpoints that can take requests now.
    #[must_use]
    pub const fn usable(&self) -> usize {
        self.total
            .saturating_sub(self.unhealthy)
            .saturating_sub(self.ejected)
            .saturating_sub(self.unreachable)
    }
}

impl fmt::Display for EndpointCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} endpoints: {} ejected, {} unreachable, {} unhealthy",
            self.total, self.ejected, self.unreachable, self.unhealthy
        )
    }
}

/// A failure of the request path, with enough context for an operator.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// No configuration has arrived for the target (yet).
    #[error("no configuration for the target yet (waited {waited:?})")]
    NoConfig {
        /// How long the request waited for one.
        waited: Duration,
    },
    /// The target's configuration failed (listener missing or invalid).
    #[error("configuration error: {reason}")]
    ConfigFailed {
        /// The control plane's or validator's reason.
        reason: Arc<str>,
    },
    /// No route of the virtual host matched the request (gRFC A28: UNAVAILABLE).
    #[error("no route in virtual host {virtual_host:?} matches path {path:?}")]
    NoRoute {
        /// The virtual host.
        virtual_host: Arc<str>,
        /// The request path.
        path: Box<str>,
    },
    /// The matched route does not forward (gRFC A36: a client fails such requests with UNAVAILABLE).
    #[error("route {route:?} of virtual host {virtual_host:?} is non-forwarding")]
    NonForwarding {
        /// The virtual host.
        virtual_host: Arc<str>,
        /// The route's name, or its index.
        route: Box<str>,
    },
    /// The route takes its cluster from a header the request lacks or that names no known cluster.
    #[error("cluster header {header:?}: {problem}")]
    ClusterHeader {
        /// The header.
        header: Arc<str>,
        /// What was wrong.
        problem: Box<str>,
    },
    /// The cluster has no usable configuration (invalid or missing resource, gRFC A74).
    #[error("cluster {cluster:?}: {reason}")]
    ClusterFailed {
        /// The cluster.
        cluster: Arc<str>,
        /// Why.
        reason: Arc<str>,
    },
    /// Discovery has produced no endpoints for the cluster.
    #[error("cluster {cluster:?} has no endpoints{}", note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default())]
    NoEndpoints {
        /// The cluster.
        cluster: Arc<str>,
        /// Why, when known (EDS missing, DNS failing).
        note: Option<Arc<str>>,
    },
    /// Every endpoint is unhealthy, ejected or unreachable.
    #[error("no healthy endpoints in cluster {cluster:?} ({counts}){}", last_error_note(last_connect_error.as_ref()))]
    NoHealthyEndpoints {
        /// The cluster (for an aggregate cluster, its name; the counts add up its leaves).
        cluster: Arc<str>,
        /// The counts.
        counts: EndpointCounts,
        /// The connection error of an unreachable endpoint, which names the endpoint (as gRPC puts the last
        /// connection error in the status message): a refused connection, a timeout, a rejected certificate.
        last_connect_error: Option<SharedError>,
    },
    /// A drop overload of the cluster dropped the request (gRFC A27).
    #[error("cluster {cluster:?}: request dropped by drop overload category {category:?}")]
    Dropped {
        /// The cluster.
        cluster: Arc<str>,
        /// The drop category.
        category: Arc<str>,
    },
    /// The cluster's circuit breaker is open (gRFC A32).
    #[error("cluster {cluster:?}: {overloaded}")]
    Overloaded {
        /// The cluster.
        cluster: Arc<str>,
        /// The limit that was hit.
        overloaded: Overloaded,
    },
    /// The request's deadline passed (gRFC A31).
    #[error("deadline exceeded after {timeout:?}")]
    DeadlineExceeded {
        /// The deadline that was applied.
        timeout: Duration,
    },
    /// The last attempt's per-try timeout passed.
    #[error("cluster {cluster:?}: attempt timed out after {timeout:?} (per-try timeout)")]
    AttemptTimeout {
        /// The cluster.
        cluster: Arc<str>,
        /// The per-try timeout.
        timeout: Duration,
    },
    /// The connection to an endpoint failed, or the stream was reset.
    #[error("cluster {cluster:?}, endpoint {endpoint}: {failure}: {source}")]
    Transport {
        /// The cluster.
        cluster: Arc<str>,
        /// The endpoint's address.
        endpoint: Arc<str>,
        /// What failed.
        failure: TransportFailure,
        /// The underlying error.
        source: SharedError,
    },
    /// Reading the request body failed.
    #[error("request body: {source}")]
    RequestBody {
        /// The body's error.
        source: SharedError,
    },
    /// The fault-injection filter aborted the request (gRFC A33).
    #[error("fault injected: {}", abort_description(*code, *http_status))]
    FaultAbort {
        /// The gRPC status (for gRPC requests).
        code: Code,
        /// The HTTP status (for plain HTTP requests).
        http_status: u16,
    },
}

fn last_error_note(error: Option<&SharedError>) -> String {
    error.map_or_else(String::new, |error| {
        format!("; last connection error: {error}")
    })
}

fn abort_description(code: Code, http_status: u16) -> String {
    format!("abort with {code} (HTTP {http_status})")
}

impl MeshError {
    /// The gRPC status a gRPC caller sees.
    #[must_use]
    pub fn code(&self) -> Code {
        match self {
            Self::DeadlineExceeded { .. } | Self::AttemptTimeout { .. } => Code::DeadlineExceeded,
            Self::RequestBody { .. } => Code::Internal,
            Self::FaultAbort { code, .. } => *code,
            Self::NoConfig { .. }
            | Self::ConfigFailed { .. }
            | Self::NoRoute { .. }
            | Self::NonForwarding { .. }
            | Self::ClusterHeader { .. }
            | Self::ClusterFailed { .. }
            | Self::NoEndpoints { .. }
            | Self::NoHealthyEndpoints { .. }
            | Self::Dropped { .. }
            | Self::Overloaded { .. }
            | Self::Transport { .. } => Code::Unavailable,
        }
    }

    /// The HTTP status a plain HTTP caller sees (Envoy's choices: 504 for timeouts, 503 for everything
    /// unavailable, 404 for no route).
    #[must_use]
    pub fn http_status(&self) -> http::StatusCode {
        let code = match self {
            Self::NoRoute { .. } => 404,
            Self::DeadlineExceeded { .. } | Self::AttemptTimeout { .. } => 504,
            Self::RequestBody { .. } => 400,
            Self::FaultAbort { http_status, .. } => *http_status,
            Self::NoConfig { .. }
            | Self::ConfigFailed { .. }
            | Self::NonForwarding { .. }
            | Self::ClusterHeader { .. }
            | Self::ClusterFailed { .. }
            | Self::NoEndpoints { .. }
            | Self::NoHealthyEndpoints { .. }
            | Self::Dropped { .. }
            | Self::Overloaded { .. }
            | Self::Transport { .. } => 503,
        };
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE)
    }

    /// The transport failure, when this is one.
    #[must_use]
    pub fn transport_failure(&self) -> Option<TransportFailure> {
        match self {
            Self::Transport { failure, .. } => Some(*failure),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_healthy_endpoints_says_why_and_is_unavailable() {
        let error = MeshError::NoHealthyEndpoints {
            cluster: "x".into(),
            counts: EndpointCounts {
                total: 6,
                unhealthy: 1,
                ejected: 3,
                unreachable: 2,
            },
            last_connect_error: None,
        };
        assert_eq!(
            error.to_string(),
            "no healthy endpoints in cluster \"x\" (6 endpoints: 3 ejected, 2 unreachable, 1 unhealthy)"
        );
        assert_eq!(error.code(), Code::Unavailable);
        assert_eq!(error.http_status(), http::StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn deadlines_are_deadline_exceeded_and_504() {
        let error = MeshError::DeadlineExceeded {
            timeout: Duration::from_millis(250),
        };
        assert_eq!(error.code(), Code::DeadlineExceeded);
        assert_eq!(error.http_status(), http::StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(error.to_string(), "deadline exceeded after 250ms");
    }

    #[test]
    fn a_fault_abort_answers_its_own_statuses() {
        let error = MeshError::FaultAbort {
            code: Code::ResourceExhausted,
            http_status: 429,
        };
        assert_eq!(error.code(), Code::ResourceExhausted);
        assert_eq!(error.http_status().as_u16(), 429);
        let bad = MeshError::FaultAbort {
            code: Code::Internal,
            http_status: 1000,
        };
        assert_eq!(bad.http_status(), http::StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn no_endpoints_carries_the_discovery_note() {
        let error = MeshError::NoEndpoints {
            cluster: "dns".into(),
            note: Some("DNS resolution of \"svc.example\" failed".into()),
        };
        assert_eq!(
            error.to_string(),
            "cluster \"dns\" has no endpoints (DNS resolution of \"svc.example\" failed)"
        );
    }
}
