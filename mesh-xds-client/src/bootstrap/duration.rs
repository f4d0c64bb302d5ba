//! `google.protobuf.Duration` in its JSON form (`"600s"`, `"1.5s"`), as the bootstrap's `refresh_interval` fields
//! carry it (gRFC A29, A65: "the JSON format described for a google.protobuf.Duration message").

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serializer;

/// The largest number of seconds a `google.protobuf.Duration` may hold (10,000 years).
const MAX_SECONDS: u64 = 315_576_000_000;

/// Parses a protobuf-JSON duration. The error texts are C-core's (`LoadDuration` in `json_object_loader.cc`), so an
/// operator who knows gRPC's messages recognises them. Negative durations are refused, as C-core does.
pub(super) fn parse(text: &str) -> Result<Duration, &'static str> {
    let Some(number) = text.strip_suffix('s') else {
        return Err("Not a duration (no s suffix)");
    };
    let number = number.trim_ascii();
    let (seconds, fraction) = match number.split_once('.') {
        Some((seconds, fraction)) => (seconds, Some(fraction)),
        None => (number, None),
    };
    let mut nanos: u32 = 0;
    if let Some(fraction) = fraction {
        if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err("Not a duration (not a number of nanoseconds)");
        }
        if fraction.len() > 9 {
            return Err("Not a duration (too many digits after decimal)");
        }
        for digit in fraction.bytes().chain(std::iter::repeat(b'0')).take(9) {
            nanos = nanos * 10 + u32::from(digit - b'0');
        }
    }
    let Ok(seconds) = seconds.parse::<i64>() else {
        return Err("Not a duration (not a number of seconds)");
    };
    match u64::try_from(seconds) {
        Ok(seconds) if seconds <= MAX_SECONDS => Ok(Duration::new(seconds, nanos)),
        _ => Err("seconds must be in the range [0, 315576000000]"),
    }
}

/// Formats a duration the way protobuf's JSON mapping does: whole seconds, or 3, 6 or 9 fractional digits.
pub(super) fn format(duration: Duration) -> String {
    let mut out = duration.as_secs().to_string();
    let nanos = duration.subsec_nanos();
    if nanos != 0 {
        // Writing to a String cannot fail.
        let _ = if nanos.is_multiple_of(1_000_000) {
            write!(out, ".{:03}", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            write!(out, ".{:06}", nanos / 1_000)
        } else {
            write!(out, ".{nanos:09}")
        };
    }
    out.push('s');
    out
}

/// `serialize_with` helper: a duration as its protobuf-JSON string, so a config dump reads like the bootstrap.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `serialize_with` passes a reference.
pub(super) fn serialize<S: Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*duration))
}
