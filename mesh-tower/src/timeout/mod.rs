//! Request deadlines (gRFC A31): which timeout applies to a request, and the `grpc-timeout` header.
//!
//! gRFC A31, as gRPC implements it: the route's limit is `grpc_timeout_header_max` when set, else the route's
//! `max_stream_duration`, else the listener's (the HTTP connection manager's) `max_stream_duration`; zero means no
//! limit. The request's deadline is the smaller of that limit and the caller's `grpc-timeout` header. Envoy applies
//! `max_stream_duration` and the capped header separately; for a gRPC caller the two agree whenever only one is
//! set, and where they differ we follow the gRFC. Plain HTTP requests carry no `grpc-timeout`, so for them only
//! `max_stream_duration` (route, else listener) applies.
//!
//! Not here: enforcing the deadline (the service's future does that, see `crate::mesh`).

use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use mesh_core::route::RouteAction;

/// The `grpc-timeout` request header.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// [`GRPC_TIMEOUT`], parsed once.
pub(crate) const GRPC_TIMEOUT_NAME: http::HeaderName = http::HeaderName::from_static(GRPC_TIMEOUT);

/// The largest value `grpc-timeout` can carry per unit (`PROTOCOL-HTTP2.md`: at most 8 digits).
const MAX_TIMEOUT_VALUE: u64 = 99_999_999;

/// Parses a `grpc-timeout` value (`PROTOCOL-HTTP2.md`: 1 to 8 ASCII digits, then `H`, `M`, `S`, `m`, `u` or `n`).
/// `None` when it is malformed (gRPC then ignores the header).
#[must_use]
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount = digits
        .iter()
        .fold(0_u64, |acc, digit| acc * 10 + u64::from(digit - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(amount.saturating_mul(3600)),
        b'M' => Duration::from_secs(amount.saturating_mul(60)),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Formats `timeout` as a `grpc-timeout` value, in the finest unit that fits 8 digits (rounded up, so a server
/// never sees a shorter deadline than the one we enforce).
#[must_use]
pub fn format_grpc_timeout(timeout: Duration) -> HeaderValue {
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (per_unit, suffix) in units {
        let amount = nanos.div_ceil(per_unit);
        if amount <= u128::from(MAX_TIMEOUT_VALUE) {
            return HeaderValue::from_str(&format!("{amount}{suffix}"))
                .unwrap_or_else(|_| HeaderValue::from_static("99999999H"));
        }
    }
    HeaderValue::from_static("99999999H")
}

/// The `grpc-timeout` a request carries, when present and well-formed.
#[must_use]
pub fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(GRPC_TIMEOUT_NAME)
        .and_then(|value| parse_grpc_timeout(value.as_bytes()))
}

/// The deadline for a request routed by `action` (see the [module docs](self)): `None` means no deadline.
///
/// `listener_max` is the HTTP connection manager's `max_stream_duration`; `header` the request's `grpc-timeout`
/// (gRPC requests only).
#[must_use]
pub fn request_timeout(
    action: &RouteAction,
    listener_max: Option<Duration>,
    header: Option<Duration>,
    grpc: bool,
) -> Option<Duration> {
    // gRFC A31: grpc_timeout_header_max, when present, stands in for max_stream_duration for gRPC callers.
    let header_max = if grpc {
        action.grpc_timeout_header_max
    } else {
        None
    };
    let limit = header_max
        .or(action.max_stream_duration)
        .or(listener_max)
        .filter(|limit| !limit.is_zero());
    match (limit, header) {
        (Some(limit), Some(header)) => Some(limit.min(header)),
        (limit, header) => limit.or(header),
    }
}

#[cfg(test)]
mod tests;
