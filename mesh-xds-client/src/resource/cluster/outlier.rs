//! `outlier_detection` (gRFC A50, plus Envoy's consecutive-error detectors, which gRPC ignores and we honour).
//!
//! Which detectors run, read literally:
//! - success rate (A50): on unless `enforcing_success_rate` is 0 (it defaults to 100);
//! - failure percentage (A50): on only when `enforcing_failure_percentage` is set and not 0 (it defaults to 0);
//! - consecutive 5xx (Envoy): on unless `consecutive_5xx` or `enforcing_consecutive_5xx` is 0 (defaults 5 and 100);
//! - consecutive gateway failure (Envoy): on only when `enforcing_consecutive_gateway_failure` is set and not 0
//!   (it defaults to 0) and `consecutive_gateway_failure` is not 0 (default 5).
//!
//! A50's validation applies to every field whether or not its detector runs: durations valid and non-negative,
//! percentages at most 100 (ours too for the two enforcing percentages A50 does not read). Local-origin splitting,
//! `always_eject_one_host`, jitter and the other Envoy-only fields are ignored, as in gRPC.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection as PbOutlierDetection;
use envoy_types::pb::google::protobuf::{Duration as PbDuration, UInt32Value};
use mesh_core::cluster::{
    ConsecutiveErrorEjection, FailurePercentageEjection, OutlierDetection, SuccessRateEjection,
};

use crate::resource::common::{Errors, duration};

/// A50's default maximum ejection time (when it is also at least the base ejection time).
const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

/// Converts `outlier_detection`, recording problems relative to it.
pub(super) fn outlier_detection(pb: &PbOutlierDetection, errors: &mut Errors) -> OutlierDetection {
    let defaults = OutlierDetection::default();
    let interval = time(errors, "interval", pb.interval.as_ref()).unwrap_or(defaults.interval);
    let base_ejection_time = time(errors, "base_ejection_time", pb.base_ejection_time.as_ref())
        .unwrap_or(defaults.base_ejection_time);
    // A50: an address stays ejected at most `max(base_ejection_time, max_ejection_time)`, the maximum defaulting
    // to 300 s. Storing that bound keeps the model's "longest ejection" true without changing behaviour.
    let max_ejection_time = time(errors, "max_ejection_time", pb.max_ejection_time.as_ref())
        .unwrap_or(DEFAULT_MAX_EJECTION_TIME)
        .max(base_ejection_time);
    let max_ejection_percent = percent(
        errors,
        "max_ejection_percent",
        pb.max_ejection_percent,
        defaults.max_ejection_percent,
    );

    let sr_defaults = SuccessRateEjection::default();
    let enforcing_success_rate = percent(
        errors,
        "enforcing_success_rate",
        pb.enforcing_success_rate,
        sr_defaults.enforcement_percentage,
    );
    let success_rate = (enforcing_success_rate != 0).then(|| {
        let mut ejection = sr_defaults;
        ejection.enforcement_percentage = enforcing_success_rate;
        ejection.stdev_factor = value_or(pb.success_rate_stdev_factor, sr_defaults.stdev_factor);
        ejection.minimum_hosts = value_or(pb.success_rate_minimum_hosts, sr_defaults.minimum_hosts);
        ejection.request_volume =
            value_or(pb.success_rate_request_volume, sr_defaults.request_volume);
        ejection
    });

    let fp_defaults = FailurePercentageEjection::default();
    let enforcing_failure_percentage = percent(
        errors,
        "enforcing_failure_percentage",
        pb.enforcing_failure_percentage,
        0,
    );
    let threshold = percent(
        errors,
        "failure_percentage_threshold",
        pb.failure_percentage_threshold,
        fp_defaults.threshold,
    );
    let failure_percentage = (enforcing_failure_percentage != 0).then(|| {
        let mut ejection = fp_defaults;
        ejection.enforcement_percentage = enforcing_failure_percentage;
        ejection.threshold = threshold;
        ejection.minimum_hosts = value_or(
            pb.failure_percentage_minimum_hosts,
            fp_defaults.minimum_hosts,
        );
        ejection.request_volume = value_or(
            pb.failure_percentage_request_volume,
            fp_defaults.request_volume,
        );
        ejection
    });

    let consecutive_5xx = consecutive(
        errors,
        pb.consecutive_5xx,
        (
            "enforcing_consecutive_5xx",
            pb.enforcing_consecutive_5xx,
            100,
        ),
    );
    let consecutive_gateway_failure = consecutive(
        errors,
        pb.consecutive_gateway_failure,
        (
            "enforcing_consecutive_gateway_failure",
            pb.enforcing_consecutive_gateway_failure,
            0,
        ),
    );

    defaults
        .with_interval(interval)
        .with_base_ejection_time(base_ejection_time)
        .with_max_ejection_time(max_ejection_time)
        .with_max_ejection_percent(max_ejection_percent)
        .with_success_rate(success_rate)
        .with_failure_percentage(failure_percentage)
        .with_consecutive_5xx(consecutive_5xx)
        .with_consecutive_gateway_failure(consecutive_gateway_failure)
}

/// An Envoy consecutive-error detector: `count` errors in a row (default 5; 0 disables) with the enforcing
/// percentage `(field, value, default)` (0 disables).
fn consecutive(
    errors: &mut Errors,
    count: Option<UInt32Value>,
    (field, enforcing, default_enforcing): (&str, Option<UInt32Value>, u32),
) -> Option<ConsecutiveErrorEjection> {
    let defaults = ConsecutiveErrorEjection::default();
    let enforcement_percentage = percent(errors, field, enforcing, default_enforcing);
    let count = value_or(count, defaults.consecutive);
    (count != 0 && enforcement_percentage != 0).then(|| {
        let mut ejection = defaults;
        ejection.consecutive = count;
        ejection.enforcement_percentage = enforcement_percentage;
        ejection
    })
}

fn value_or(value: Option<UInt32Value>, default: u32) -> u32 {
    value.map_or(default, |v| v.value)
}

/// gRFC A50: a percentage field must be at most 100.
fn percent(errors: &mut Errors, field: &str, value: Option<UInt32Value>, default: u32) -> u32 {
    match value {
        Some(v) if v.value > 100 => {
            errors.push(field, format!("must be at most 100, got {}", v.value));
            default
        }
        Some(v) => v.value,
        None => default,
    }
}

/// gRFC A50: a duration field must be a valid, non-negative `google.protobuf.Duration`.
fn time(errors: &mut Errors, field: &str, value: Option<&PbDuration>) -> Option<Duration> {
    errors.check(field, duration(value?))
}
