//! gRPC status codes as the request path needs them: reading them from responses, writing them into synthesized
//! ones, and mapping HTTP statuses to them.
//!
//! Not a gRPC implementation: no message framing, no status details. Just the codes of
//! `grpc/doc/statuscodes.md`, the HTTP-to-gRPC mapping of `grpc/doc/http-grpc-status-mapping.md`, and the
//! percent-encoding of `grpc-message` from `grpc/doc/PROTOCOL-HTTP2.md`.

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

/// The `grpc-status` header or trailer.
pub const GRPC_STATUS: &str = "grpc-status";
/// The `grpc-message` header or trailer.
pub const GRPC_MESSAGE: &str = "grpc-message";

/// The same names, parsed once: a lookup by `&str` parses and checks the name on every call.
pub(crate) const GRPC_STATUS_NAME: http::HeaderName = http::HeaderName::from_static(GRPC_STATUS);
pub(crate) const GRPC_MESSAGE_NAME: http::HeaderName = http::HeaderName::from_static(GRPC_MESSAGE);

/// A gRPC status code (`grpc/doc/statuscodes.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Code {
    /// Not an error.
    Ok,
    /// The operation was cancelled, typically by the caller.
    Cancelled,
    /// Unknown error.
    Unknown,
    /// The client specified an invalid argument.
    InvalidArgument,
    /// The deadline expired before the operation could complete.
    DeadlineExceeded,
    /// Some requested entity was not found.
    NotFound,
    /// The entity the client tried to create already exists.
    AlreadyExists,
    /// The caller lacks permission.
    PermissionDenied,
    /// Some resource has been exhausted.
    ResourceExhausted,
    /// The system is not in a state required for the operation.
    FailedPrecondition,
    /// The operation was aborted.
    Aborted,
    /// The operation was attempted past the valid range.
    OutOfRange,
    /// The operation is not implemented.
    Unimplemented,
    /// An internal error.
    Internal,
    /// The service is currently unavailable.
    Unavailable,
    /// Unrecoverable data loss.
    DataLoss,
    /// The request lacks valid credentials.
    Unauthenticated,
}

impl Code {
    const ALL: [Self; 17] = [
        Self::Ok,
        Self::Cancelled,
        Self::Unknown,
        Self::InvalidArgument,
        Self::DeadlineExceeded,
        Self::NotFound,
        Self::AlreadyExists,
        Self::PermissionDenied,
        Self::ResourceExhausted,
        Self::FailedPrecondition,
        Self::Aborted,
        Self::OutOfRange,
        Self::Unimplemented,
        Self::Internal,
        Self::Unavailable,
        Self::DataLoss,
        Self::Unauthenticated,
    ];

    /// The code's number.
    #[must_use]
    pub const fn as_u32(self) -> u32 {
        self as u32
    }

    /// The code numbered `value`; codes above 16 are `Unknown` (statuscodes.md: unknown codes map to UNKNOWN).
    #[must_use]
    pub fn from_u32(value: u32) -> Self {
        usize::try_from(value)
            .ok()
            .and_then(|index| Self::ALL.get(index))
            .copied()
            .unwrap_or(Self::Unknown)
    }

    /// Parses a `grpc-status` value; `None` when it is not a decimal number.
    #[must_use]
    pub fn parse(value: &[u8]) -> Option<Self> {
        if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let number = value
            .iter()
            .try_fold(0_u64, |acc, digit| Some(acc * 10 + u64::from(digit - b'0')))?;
        Some(Self::from_u32(u32::try_from(number).unwrap_or(u32::MAX)))
    }

    /// The gRPC code a response with HTTP status `status` and no `grpc-status` stands for
    /// (`http-grpc-status-mapping.md`).
    #[must_use]
    pub fn from_http_status(status: u16) -> Self {
        match status {
            200 => Self::Unknown,
            400 => Self::Internal,
            401 => Self::Unauthenticated,
            403 => Self::PermissionDenied,
            404 => Self::Unimplemented,
            429 | 502..=504 => Self::Unavailable,
            _ => Self::Unknown,
        }
    }

    /// The header value for this code, without allocating.
    #[must_use]
    pub fn header_value(self) -> HeaderValue {
        const VALUES: [&str; 17] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
            "16",
        ];
        let text = usize::try_from(self.as_u32())
            .ok()
            .and_then(|index| VALUES.get(index))
            .copied()
            .unwrap_or("2");
        HeaderValue::from_static(text)
    }

    /// The canonical upper-case name (`UNAVAILABLE`), for logs.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Cancelled => "CANCELLED",
            Self::Unknown => "UNKNOWN",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::Aborted => "ABORTED",
            Self::OutOfRange => "OUT_OF_RANGE",
            Self::Unimplemented => "UNIMPLEMENTED",
            Self::Internal => "INTERNAL",
            Self::Unavailable => "UNAVAILABLE",
            Self::DataLoss => "DATA_LOSS",
            Self::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `grpc-status` in `headers`, when present and well-formed.
#[must_use]
pub fn grpc_status(headers: &HeaderMap) -> Option<Code> {
    headers
        .get(GRPC_STATUS_NAME)
        .and_then(|value| Code::parse(value.as_bytes()))
}

/// Whether a request is gRPC: its `content-type` is `application/grpc` or starts with `application/grpc+` or
/// `application/grpc;` (`PROTOCOL-HTTP2.md`).
#[must_use]
pub fn is_grpc_request(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|value| is_grpc_content_type(value.as_bytes()))
}

fn is_grpc_content_type(value: &[u8]) -> bool {
    const PREFIX: &[u8] = b"application/grpc";
    match value.get(..PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(PREFIX) => {
            matches!(value.get(PREFIX.len()), None | Some(b'+' | b';'))
        }
        _ => false,
    }
}

/// Percent-encodes a `grpc-message` (`PROTOCOL-HTTP2.md`: bytes outside printable ASCII, and `%`, are encoded).
#[must_use]
pub fn encode_grpc_message(message: &str) -> HeaderValue {
    let needs_encoding = message
        .bytes()
        .any(|b| !(0x20..=0x7e).contains(&b) || b == b'%');
    if !needs_encoding && let Ok(value) = HeaderValue::from_str(message) {
        return value;
    }
    let mut encoded = String::with_capacity(message.len() + 16);
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push('%');
            encoded.push(hex_digit(byte >> 4));
            encoded.push(hex_digit(byte & 0x0f));
        }
    }
    HeaderValue::from_maybe_shared(Bytes::from(encoded))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn hex_digit(nibble: u8) -> char {
    char::from(if nibble < 10 {
        b'0' + nibble
    } else {
        b'A' + nibble - 10
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_numbers_are_unknown() {
        for code in Code::ALL {
            assert_eq!(Code::from_u32(code.as_u32()), code);
            assert_eq!(Code::parse(code.header_value().as_bytes()), Some(code));
        }
        assert_eq!(Code::from_u32(17), Code::Unknown);
        assert_eq!(Code::parse(b"99999999999"), None);
        assert_eq!(Code::parse(b"1x"), None);
        assert_eq!(Code::parse(b""), None);
    }

    #[test]
    fn http_statuses_map_to_grpc_codes() {
        assert_eq!(Code::from_http_status(503), Code::Unavailable);
        assert_eq!(Code::from_http_status(404), Code::Unimplemented);
        assert_eq!(Code::from_http_status(500), Code::Unknown);
    }

    #[test]
    fn grpc_content_types_are_recognised() {
        assert!(is_grpc_content_type(b"application/grpc"));
        assert!(is_grpc_content_type(b"application/grpc+proto"));
        assert!(is_grpc_content_type(b"Application/GRPC;charset=x"));
        assert!(!is_grpc_content_type(b"application/grpc-web"));
        assert!(!is_grpc_content_type(b"application/json"));
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(encode_grpc_message("plain text"), "plain text");
        assert_eq!(encode_grpc_message("100% é"), "100%25 %C3%A9");
        assert_eq!(encode_grpc_message("a\nb"), "a%0Ab");
    }
}
