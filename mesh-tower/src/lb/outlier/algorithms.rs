//! gRFC A50's two statistical detectors as pure functions over one interval's counts.

use mesh_core::cluster::{FailurePercentageEjection, SuccessRateEjection};

use super::stats::IntervalCounts;

/// Whether an endpoint took part in the interval enough to be judged: at least `request_volume` requests (gRFC
/// A50), and at least one whatever the config says, since an endpoint without requests has no rate (with
/// `request_volume: 0` A50 would divide zero by zero).
pub(super) fn has_volume(counts: IntervalCounts, request_volume: u32) -> bool {
    counts.total() >= u64::from(request_volume.max(1))
}

/// gRFC A50 "Success Rate Algorithm", steps 1 and 2: the success rate below which an endpoint is an outlier,
/// `mean − stdev × stdev_factor / 1000`, where mean and (population) standard deviation are taken over the success
/// fractions of the endpoints with enough volume. `None` when fewer than `minimum_hosts` endpoints have it (step 1:
/// "stop").
pub(super) fn success_rate_threshold(
    intervals: &[IntervalCounts],
    config: &SuccessRateEjection,
) -> Option<f64> {
    let rates = || {
        intervals
            .iter()
            .filter(|counts| has_volume(**counts, config.request_volume))
            .map(|counts| success_rate(*counts))
    };
    let hosts = rates().count();
    if hosts == 0 || hosts < usize::try_from(config.minimum_hosts).unwrap_or(usize::MAX) {
        return None;
    }
    let hosts = hosts as f64;
    let mean = rates().sum::<f64>() / hosts;
    let variance = rates().map(|rate| (rate - mean).powi(2)).sum::<f64>() / hosts;
    let stdev = variance.sqrt();
    Some(mean - stdev * (f64::from(config.stdev_factor) / 1000.0))
}

/// The fraction of the interval's requests that succeeded (0 for an endpoint without requests).
pub(super) fn success_rate(counts: IntervalCounts) -> f64 {
    match counts.total() {
        0 => 0.0,
        total => counts.successes as f64 / total as f64,
    }
}

/// gRFC A50 "Failure Percentage Algorithm", step 1: whether enough endpoints have the volume to run it at all.
pub(super) fn failure_percentage_applies(
    intervals: &[IntervalCounts],
    config: &FailurePercentageEjection,
) -> bool {
    let hosts = intervals
        .iter()
        .filter(|counts| has_volume(**counts, config.request_volume))
        .count();
    hosts > 0 && hosts >= usize::try_from(config.minimum_hosts).unwrap_or(usize::MAX)
}

/// gRFC A50 "Failure Percentage Algorithm", step 2.3: "If the address's failure percentage is greater than
/// `failure_percentage_ejection.threshold`". Compared exactly in integers: `100 × failures > threshold × total`.
/// (A50's config comment and Envoy's docs say "greater than or equal"; we follow the algorithm's text, as gRPC does.)
pub(super) fn is_failure_percentage_outlier(counts: IntervalCounts, threshold: u32) -> bool {
    u128::from(counts.failures) * 100 > u128::from(threshold) * u128::from(counts.total())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(successes: u64, failures: u64) -> IntervalCounts {
        IntervalCounts {
            successes,
            failures,
        }
    }

    fn success_config(minimum_hosts: u32, request_volume: u32) -> SuccessRateEjection {
        let mut config = SuccessRateEjection::default();
        config.minimum_hosts = minimum_hosts;
        config.request_volume = request_volume;
        config
    }

    #[test]
    fn threshold_is_mean_minus_factor_times_population_stdev() {
        // Rates 1, 1, 1, 1, 0.5: mean 0.9, variance (4 × 0.01 + 0.16) / 5 = 0.04, stdev 0.2.
        let intervals = [
            counts(100, 0),
            counts(100, 0),
            counts(100, 0),
            counts(100, 0),
            counts(50, 50),
        ];
        let threshold = success_rate_threshold(&intervals, &success_config(5, 100)).unwrap();
        assert!((threshold - (0.9 - 0.2 * 1.9)).abs() < 1e-12, "{threshold}");
    }

    #[test]
    fn endpoints_below_the_request_volume_are_left_out() {
        // The low-volume endpoint (rate 0) would drag the mean down; it does not count, so four hosts remain.
        let intervals = [
            counts(100, 0),
            counts(100, 0),
            counts(100, 0),
            counts(90, 10),
            counts(0, 99),
        ];
        assert_eq!(
            success_rate_threshold(&intervals, &success_config(5, 100)),
            None
        );
        // Rates 1, 1, 1, 0.9: mean 0.975, variance (3 × 0.025² + 0.075²) / 4 = 0.001875.
        let threshold = success_rate_threshold(&intervals, &success_config(4, 100)).unwrap();
        let expected = 0.975 - 1.9 * 0.001_875_f64.sqrt();
        assert!(
            (threshold - expected).abs() < 1e-12,
            "{threshold} vs {expected}"
        );
    }

    #[test]
    fn zero_request_volume_still_needs_one_request() {
        let intervals = [counts(0, 0), counts(5, 0)];
        assert!(!has_volume(intervals[0], 0));
        assert!(has_volume(intervals[1], 0));
        let threshold = success_rate_threshold(&intervals, &success_config(1, 0)).unwrap();
        assert!(threshold.is_finite());
        assert!(success_rate(intervals[0]).abs() < f64::EPSILON);
    }

    #[test]
    fn failure_percentage_is_strictly_greater_than_the_threshold() {
        assert!(!is_failure_percentage_outlier(counts(15, 85), 85));
        assert!(is_failure_percentage_outlier(counts(14, 86), 85));
        assert!(is_failure_percentage_outlier(counts(0, 1), 0));
        assert!(!is_failure_percentage_outlier(counts(0, 0), 0));
        assert!(!is_failure_percentage_outlier(counts(0, u64::MAX), 100));
    }

    #[test]
    fn failure_percentage_needs_minimum_hosts_with_volume() {
        let mut config = FailurePercentageEjection::default();
        config.minimum_hosts = 2;
        config.request_volume = 50;
        assert!(!failure_percentage_applies(
            &[counts(50, 0), counts(49, 0)],
            &config
        ));
        assert!(failure_percentage_applies(
            &[counts(50, 0), counts(0, 50)],
            &config
        ));
        config.minimum_hosts = 0;
        assert!(
            !failure_percentage_applies(&[counts(1, 0)], &config),
            "no host with volume"
        );
    }
}
