//! Per-route policies: retries (gRFC A44), hash policies (gRFC A42) and fault injection (gRFC A33).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::fraction::FractionalPercent;
use crate::macros::setters;
use crate::matcher::SafeRegex;

/// The conditions under which a request is retried: gRPC status codes and HTTP-level failures.
///
/// Parsed from Envoy's comma-separated `retry_on` string. gRFC A44 honours the gRPC conditions (`cancelled`,
/// `deadline-exceeded`, `internal`, `resource-exhausted`, `unavailable`); we also honour Envoy's HTTP conditions
/// (`5xx`, `gateway-error`, `reset`, `connect-failure`, `refused-stream`, `retriable-4xx`), so the same route can
/// retry plain HTTP services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct RetryOn {
    /// Bit `n` set: retry on gRPC status code `n` (0..=16).
    grpc_codes: u32,
    /// HTTP conditions, one bit each (see the `HTTP_*` constants).
    http: u8,
}

/// A `retry_on` string named a condition we cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("retry_on: unsupported condition {condition:?}")]
pub struct RetryOnError {
    /// The condition as written.
    pub condition: String,
}

impl RetryOn {
    const HTTP_5XX: u8 = 1;
    const HTTP_GATEWAY_ERROR: u8 = 1 << 1;
    const HTTP_RESET: u8 = 1 << 2;
    const HTTP_CONNECT_FAILURE: u8 = 1 << 3;
    const HTTP_REFUSED_STREAM: u8 = 1 << 4;
    const HTTP_RETRIABLE_4XX: u8 = 1 << 5;

    /// No conditions: never retry.
    pub const NONE: Self = Self {
        grpc_codes: 0,
        http: 0,
    };

    /// Parses Envoy's comma-separated `retry_on`, keeping what we support and returning the rest as errors.
    ///
    /// gRFC A44 says unsupported conditions are ignored, so a caller following gRPC keeps the value and logs the
    /// errors; a stricter caller can reject the route.
    #[must_use]
    pub fn parse(spec: &str) -> (Self, Vec<RetryOnError>) {
        let mut on = Self::NONE;
        let mut unsupported = Vec::new();
        for condition in spec.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            match condition {
                "cancelled" => on.grpc_codes |= 1 << 1,
                "deadline-exceeded" => on.grpc_codes |= 1 << 4,
                "resource-exhausted" => on.grpc_codes |= 1 << 8,
                "internal" => on.grpc_codes |= 1 << 13,
                "unavailable" => on.grpc_codes |= 1 << 14,
                "5xx" => on.http |= Self::HTTP_5XX,
                "gateway-error" => on.http |= Self::HTTP_GATEWAY_ERROR,
                "reset" => on.http |= Self::HTTP_RESET,
                "connect-failure" => on.http |= Self::HTTP_CONNECT_FAILURE,
                "refused-stream" => on.http |= Self::HTTP_REFUSED_STREAM,
                "retriable-4xx" => on.http |= Self::HTTP_RETRIABLE_4XX,
                other => unsupported.push(RetryOnError {
                    condition: other.to_owned(),
                }),
            }
        }
        (on, unsupported)
    }

    /// Adds gRPC status code `code` (ignored when above 16).
    #[must_use]
    pub fn with_grpc_code(mut self, code: u32) -> Self {
        if code <= 16 {
            self.grpc_codes |= 1 << code;
        }
        self
    }

    /// Whether a response with gRPC status `code` is retried.
    #[must_use]
    pub fn retries_grpc_code(self, code: u32) -> bool {
        code <= 16 && self.grpc_codes & (1 << code) != 0
    }

    /// Whether a response with HTTP status `status` is retried (`5xx`, `gateway-error` for 502/503/504, and
    /// `retriable-4xx` for 409, as Envoy defines them).
    #[must_use]
    pub fn retries_http_status(self, status: u16) -> bool {
        (self.http & Self::HTTP_5XX != 0 && (500..600).contains(&status))
            || (self.http & Self::HTTP_GATEWAY_ERROR != 0 && matches!(status, 502..=504))
            || (self.http & Self::HTTP_RETRIABLE_4XX != 0 && status == 409)
    }

    /// Whether a stream reset by the peer before a response is retried (`reset`, also implied by `5xx`).
    #[must_use]
    pub fn retries_reset(self) -> bool {
        self.http & (Self::HTTP_RESET | Self::HTTP_5XX) != 0
    }

    /// Whether a failure to connect is retried (`connect-failure`, also implied by `5xx` and `gateway-error`).
    #[must_use]
    pub fn retries_connect_failure(self) -> bool {
        self.http & (Self::HTTP_CONNECT_FAILURE | Self::HTTP_5XX | Self::HTTP_GATEWAY_ERROR) != 0
    }

    /// Whether an HTTP/2 `REFUSED_STREAM` is retried (`refused-stream`, also implied by `5xx`).
    #[must_use]
    pub fn retries_refused_stream(self) -> bool {
        self.http & (Self::HTTP_REFUSED_STREAM | Self::HTTP_5XX) != 0
    }

    /// Whether no condition is set.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.grpc_codes == 0 && self.http == 0
    }
}

/// Exponential backoff between attempts (gRFC A44).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetryBackoff {
    /// The first backoff (Envoy's and gRPC's default: 25 ms).
    pub base_interval: Duration,
    /// The largest backoff (default: ten times the base).
    pub max_interval: Duration,
}

impl RetryBackoff {
    /// gRFC A44's default base interval.
    pub const DEFAULT_BASE_INTERVAL: Duration = Duration::from_millis(25);

    /// Backoff from `base_interval` up to `max_interval`.
    #[must_use]
    pub const fn new(base_interval: Duration, max_interval: Duration) -> Self {
        Self {
            base_interval,
            max_interval,
        }
    }
}

impl Default for RetryBackoff {
    fn default() -> Self {
        Self::new(
            Self::DEFAULT_BASE_INTERVAL,
            Self::DEFAULT_BASE_INTERVAL * 10,
        )
    }
}

/// Caps retries to a share of requests so that retries cannot multiply an outage (Envoy's `RetryBudget`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RetryBudget {
    /// Retries allowed as a percentage of active requests (Envoy's default: 20%).
    pub budget_percent: f64,
    /// Retries always allowed regardless of the percentage (Envoy's default: 3).
    pub min_retry_concurrency: u32,
}

impl RetryBudget {
    /// The default share of requests that may be retries.
    pub const DEFAULT_BUDGET_PERCENT: f64 = 20.0;
    /// The default floor of concurrent retries.
    pub const DEFAULT_MIN_RETRY_CONCURRENCY: u32 = 3;

    /// No budget: every retry the route's policy allows is made, as in gRPC (gRFC A44 has no budget). For clients
    /// that must behave exactly as gRPC's (the xDS interop client); a service facing a real outage wants the
    /// default, which keeps retries from multiplying it.
    #[must_use]
    pub const fn unlimited() -> Self {
        Self {
            budget_percent: 100.0,
            min_retry_concurrency: u32::MAX,
        }
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            budget_percent: Self::DEFAULT_BUDGET_PERCENT,
            min_retry_concurrency: Self::DEFAULT_MIN_RETRY_CONCURRENCY,
        }
    }
}

/// A route's retry policy (gRFC A44, plus per-try timeouts and budgets).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// When to retry.
    pub retry_on: RetryOn,
    /// Retries after the first attempt. gRPC caps attempts at [`RetryPolicy::MAX_ATTEMPTS`] (so at most 4
    /// retries); the request path applies that cap.
    pub num_retries: u32,
    /// Backoff between attempts.
    pub backoff: RetryBackoff,
    /// A timeout for each attempt; `None` leaves only the overall deadline.
    pub per_try_timeout: Option<Duration>,
    /// The retry budget; `None` uses the request path's default budget.
    pub budget: Option<RetryBudget>,
    /// Request bodies larger than this are not buffered and so not retried.
    pub max_buffered_body_bytes: usize,
}

impl RetryPolicy {
    /// gRPC's cap on attempts, including the first (gRFC A6/A44).
    pub const MAX_ATTEMPTS: u32 = 5;
    /// Envoy's default number of retries when a policy sets none.
    pub const DEFAULT_NUM_RETRIES: u32 = 1;
    /// The default limit on a buffered request body (gRPC's default per-RPC retry buffer is 256 KiB).
    pub const DEFAULT_MAX_BUFFERED_BODY_BYTES: usize = 256 * 1024;

    /// A policy retrying on `retry_on` up to `num_retries` times with default backoff.
    #[must_use]
    pub fn new(retry_on: RetryOn, num_retries: u32) -> Self {
        Self {
            retry_on,
            num_retries,
            backoff: RetryBackoff::default(),
            per_try_timeout: None,
            budget: None,
            max_buffered_body_bytes: Self::DEFAULT_MAX_BUFFERED_BODY_BYTES,
        }
    }

    /// Attempts allowed including the first, capped at [`RetryPolicy::MAX_ATTEMPTS`].
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.num_retries.saturating_add(1).min(Self::MAX_ATTEMPTS)
    }
}

setters!(RetryPolicy {
    /// Sets the backoff.
    with_backoff => backoff: RetryBackoff,
    /// Sets the per-try timeout.
    with_per_try_timeout => per_try_timeout: Option<Duration>,
    /// Sets the retry budget.
    with_budget => budget: Option<RetryBudget>,
    /// Sets the largest request body that is buffered for retries.
    with_max_buffered_body_bytes => max_buffered_body_bytes: usize,
});

/// What a [`HashPolicy`] hashes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HashPolicyKind {
    /// A request header's value, optionally rewritten by a regex first.
    Header {
        /// The header name, lowercase.
        name: Arc<str>,
        /// An optional `(pattern, substitution)` applied before hashing.
        rewrite: Option<(SafeRegex, Arc<str>)>,
    },
    /// The channel's identity (gRFC A42 `filter_state` key `io.grpc.channel_id`): one hash per client channel.
    ChannelId,
    /// The client's source IP address (server-side or proxy use).
    SourceIp,
}

/// One hash policy of a route (gRFC A42): policies are tried in order; a `terminal` one that produced a hash stops
/// the evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HashPolicy {
    /// What to hash.
    pub kind: HashPolicyKind,
    /// Stop at this policy when it produced a hash.
    pub terminal: bool,
}

impl HashPolicy {
    /// Hashes request header `name`.
    #[must_use]
    pub fn header(name: &str) -> Self {
        Self {
            kind: HashPolicyKind::Header {
                name: name.to_ascii_lowercase().into(),
                rewrite: None,
            },
            terminal: false,
        }
    }

    /// Hashes the channel identity.
    #[must_use]
    pub fn channel_id() -> Self {
        Self {
            kind: HashPolicyKind::ChannelId,
            terminal: false,
        }
    }
}

setters!(HashPolicy {
    /// Makes the policy terminal.
    with_terminal => terminal: bool,
});

/// The delay part of a fault (gRFC A33).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FaultDelay {
    /// A fixed delay for the given share of requests.
    Fixed {
        /// How long.
        delay: Duration,
        /// How many requests.
        percentage: FractionalPercent,
    },
    /// The delay in milliseconds comes from the `x-envoy-fault-delay-request` header, for the given share of the
    /// requests that carry it.
    Header {
        /// How many of the requests carrying the header.
        percentage: FractionalPercent,
    },
}

/// How an aborted request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FaultAbortKind {
    /// With this HTTP status (mapped to a gRPC status for gRPC calls, per gRPC's HTTP-to-gRPC mapping).
    Http(u16),
    /// With this gRPC status code.
    Grpc(u32),
    /// With the status from the `x-envoy-fault-abort-request` (HTTP) or `x-envoy-fault-abort-grpc-request` (gRPC)
    /// header.
    Header,
}

/// The abort part of a fault (gRFC A33).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FaultAbort {
    /// How it fails.
    pub kind: FaultAbortKind,
    /// How many requests (of those carrying the header, for [`FaultAbortKind::Header`]).
    pub percentage: FractionalPercent,
}

impl FaultAbort {
    /// Aborts `percentage` of requests as `kind`.
    #[must_use]
    pub fn new(kind: FaultAbortKind, percentage: FractionalPercent) -> Self {
        Self { kind, percentage }
    }
}

/// The fault-injection filter's configuration (gRFC A33, Envoy's `HTTPFault`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FaultInjection {
    /// Delay injection.
    pub delay: Option<FaultDelay>,
    /// Abort injection.
    pub abort: Option<FaultAbort>,
    /// At most this many faults active at once; `None` means unlimited.
    pub max_active_faults: Option<u32>,
    /// Only requests carrying all these headers are faulted.
    pub headers: Vec<super::HeaderMatcher>,
}

setters!(FaultInjection {
    /// Sets the delay.
    with_delay => delay: Option<FaultDelay>,
    /// Sets the abort.
    with_abort => abort: Option<FaultAbort>,
    /// Sets the limit on concurrent faults.
    with_max_active_faults => max_active_faults: Option<u32>,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_on_parses_grpc_and_http_conditions() {
        let (on, bad) = RetryOn::parse("cancelled, unavailable,5xx,bogus");
        assert!(on.retries_grpc_code(1));
        assert!(on.retries_grpc_code(14));
        assert!(!on.retries_grpc_code(13));
        assert!(on.retries_http_status(503));
        assert!(!on.retries_http_status(404));
        assert!(on.retries_reset() && on.retries_connect_failure());
        assert_eq!(
            bad,
            vec![RetryOnError {
                condition: "bogus".into()
            }]
        );
    }

    #[test]
    fn gateway_error_is_narrower_than_5xx() {
        let (on, _) = RetryOn::parse("gateway-error");
        assert!(on.retries_http_status(502) && on.retries_http_status(504));
        assert!(!on.retries_http_status(500));
        assert!(!on.retries_reset());
        assert!(on.retries_connect_failure());
    }

    #[test]
    fn attempts_are_capped_at_five() {
        assert_eq!(RetryPolicy::new(RetryOn::NONE, 10).max_attempts(), 5);
        assert_eq!(RetryPolicy::new(RetryOn::NONE, 2).max_attempts(), 3);
        assert_eq!(RetryPolicy::new(RetryOn::NONE, u32::MAX).max_attempts(), 5);
    }

    #[test]
    fn out_of_range_grpc_codes_are_ignored() {
        let on = RetryOn::NONE.with_grpc_code(17).with_grpc_code(99);
        assert!(on.is_empty());
        assert!(!on.retries_grpc_code(40));
    }
}
