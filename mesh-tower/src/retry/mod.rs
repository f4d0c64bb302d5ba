//! Retry decisions (gRFC A44 and beyond): which attempt results are retried under a route's `retry_on`.
//!
//! - **gRPC status**: only when the response is trailers-only or its headers already carry a non-OK `grpc-status`.
//!   A response whose headers came without a status has committed the call (gRFC A6: "once response headers are
//!   received, the RPC is committed"); a status arriving later in trailers is final and not retried.
//! - **HTTP status**: `5xx`, `gateway-error` and `retriable-4xx` as Envoy defines them.
//! - **Transport**: `connect-failure`, `refused-stream` and `reset`. For gRPC requests these failures are
//!   UNAVAILABLE, so `unavailable` retries them too; a connect failure or refused stream never reached the server,
//!   so it is also retried whenever the policy allows any retry (gRFC A6's transparent retry, counted as an
//!   attempt here).
//! - **Per-try timeout**: retried when `retry_on` retries gRPC DEADLINE_EXCEEDED, HTTP 504 (`5xx`,
//!   `gateway-error`) or resets, as Envoy retries its per-try timeouts under `5xx`/`gateway-error`/`reset`.
//!
//! The rest (attempt cap of 5, budget, backoff, replayable body) is applied by the attempt loop in `crate::mesh`.

use mesh_core::route::RetryOn;

use crate::error::TransportFailure;
use crate::status::Code;

/// Whether a response is retried: `status` the HTTP status, `code` the gRPC status its headers carry (gRPC only).
pub(crate) fn retries_response(
    retry_on: RetryOn,
    grpc: bool,
    status: u16,
    code: Option<Code>,
) -> bool {
    if retry_on.retries_http_status(status) {
        return true;
    }
    grpc && code.is_some_and(|code| code != Code::Ok && retry_on.retries_grpc_code(code.as_u32()))
}

/// Whether a transport failure is retried.
pub(crate) fn retries_failure(retry_on: RetryOn, grpc: bool, failure: TransportFailure) -> bool {
    if retry_on.is_empty() {
        return false;
    }
    let as_unavailable = grpc && retry_on.retries_grpc_code(Code::Unavailable.as_u32());
    match failure {
        // Never reached the server.
        TransportFailure::Connect | TransportFailure::RefusedStream => true,
        TransportFailure::Reset => retry_on.retries_reset() || as_unavailable,
    }
}

/// Whether a per-try timeout is retried.
pub(crate) fn retries_timeout(retry_on: RetryOn, grpc: bool) -> bool {
    retry_on.retries_http_status(504)
        || retry_on.retries_reset()
        || (grpc && retry_on.retries_grpc_code(Code::DeadlineExceeded.as_u32()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_statuses_in_headers_are_retried_by_their_condition() {
        let (on, _) = RetryOn::parse("unavailable");
        assert!(retries_response(on, true, 200, Some(Code::Unavailable)));
        assert!(!retries_response(on, true, 200, Some(Code::Internal)));
        assert!(
            !retries_response(on, true, 200, None),
            "committed without a status"
        );
        assert!(
            !retries_response(on, false, 200, Some(Code::Unavailable)),
            "plain HTTP has no gRPC status"
        );
    }

    #[test]
    fn http_statuses_follow_envoy() {
        let (on, _) = RetryOn::parse("5xx");
        assert!(retries_response(on, false, 503, None));
        assert!(!retries_response(on, false, 404, None));
    }

    #[test]
    fn transport_failures_follow_their_conditions() {
        let (unavailable, _) = RetryOn::parse("unavailable");
        let (reset, _) = RetryOn::parse("reset");
        assert!(retries_failure(
            unavailable,
            true,
            TransportFailure::Connect
        ));
        assert!(retries_failure(unavailable, true, TransportFailure::Reset));
        assert!(!retries_failure(
            unavailable,
            false,
            TransportFailure::Reset
        ));
        assert!(retries_failure(reset, false, TransportFailure::Reset));
        assert!(!retries_failure(
            RetryOn::NONE,
            true,
            TransportFailure::Connect
        ));
        assert!(retries_timeout(RetryOn::parse("deadline-exceeded").0, true));
        assert!(!retries_timeout(unavailable, true));
    }
}
