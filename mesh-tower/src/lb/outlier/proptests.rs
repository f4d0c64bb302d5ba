use mesh_core::cluster::{FailurePercentageEjection, OutlierDetection, SuccessRateEjection};
use mesh_core::rng::FastRng;
use proptest::prelude::*;

use super::*;

/// An interval's outcomes per endpoint: (successes, failures, gateway failures).
type Interval = Vec<(u32, u32, u32)>;

fn arb_interval(endpoints: usize) -> impl Strategy<Value = Interval> {
    prop::collection::vec(
        prop_oneof![
            3 => (0_u32..120, 0_u32..20, 0_u32..5),
            1 => (0_u32..20, 0_u32..120, 0_u32..40),
        ],
        endpoints,
    )
}

fn arb_case() -> impl Strategy<Value = (OutlierDetection, usize, Vec<Interval>)> {
    (1_usize..30).prop_flat_map(|endpoints| {
        let config = (
            0_u32..=100,
            0_u32..=100,
            0_u32..6,
            0_u32..60,
            0_u32..=100,
            1_u32..8,
            0_u32..=3000,
        )
            .prop_map(
                |(
                    max_percent,
                    threshold,
                    minimum_hosts,
                    request_volume,
                    enforcement,
                    consecutive,
                    factor,
                )| {
                    let mut sr = SuccessRateEjection::default();
                    sr.minimum_hosts = minimum_hosts;
                    sr.request_volume = request_volume;
                    sr.stdev_factor = factor;
                    sr.enforcement_percentage = enforcement;
                    let mut fp = FailurePercentageEjection::default();
                    fp.threshold = threshold;
                    fp.minimum_hosts = minimum_hosts;
                    fp.request_volume = request_volume;
                    fp.enforcement_percentage = enforcement;
                    let mut streak = mesh_core::cluster::ConsecutiveErrorEjection::default();
                    streak.consecutive = consecutive;
                    OutlierDetection::default()
                        .with_max_ejection_percent(max_percent)
                        .with_success_rate(sr)
                        .with_failure_percentage(fp)
                        .with_consecutive_5xx(streak)
                        .with_consecutive_gateway_failure(streak)
                },
            );
        (
            config,
            Just(endpoints),
            prop::collection::vec(arb_interval(endpoints), 1..6),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn max_ejection_percent_is_never_exceeded(
        (config, endpoints, intervals) in arb_case(),
        seed in any::<u64>(),
    ) {
        let start = Instant::now();
        let max_percent = u128::from(config.max_ejection_percent);
        let detector = OutlierDetector::new(config, (0..endpoints).map(|e| format!("e{e}")), start);
        let mut rng = FastRng::from_seed(seed);
        // gRFC A50: no ejection starts at or above the percentage, so the last one began strictly below it.
        let within = |ejected: usize| ejected == 0 || (ejected as u128 - 1) * 100 < max_percent * endpoints as u128;
        for (round, interval) in intervals.iter().enumerate() {
            let now = start + Duration::from_secs(10 * (round as u64 + 1));
            for (endpoint, &(successes, failures, gateway)) in interval.iter().enumerate() {
                let outcomes = std::iter::repeat_n(Outcome::Success, successes as usize)
                    .chain(std::iter::repeat_n(Outcome::FAILURE, failures as usize))
                    .chain(std::iter::repeat_n(Outcome::GATEWAY_FAILURE, gateway as usize));
                for outcome in outcomes {
                    if let Some(ejection) = detector.record(endpoint, outcome, now, &mut rng) {
                        prop_assert_eq!(ejection.endpoint, endpoint);
                        prop_assert!(detector.is_ejected(endpoint));
                    }
                    prop_assert!(within(detector.ejected_count()));
                }
            }
            let result = detector.evaluate(now, &mut rng);
            let flagged = (0..endpoints).filter(|&e| detector.is_ejected(e)).count();
            prop_assert_eq!(detector.ejected_count(), flagged);
            prop_assert!(within(flagged), "{} of {} ejected at {}%", flagged, endpoints, max_percent);
            for ejection in &result.ejected {
                prop_assert!(detector.is_ejected(ejection.endpoint));
                prop_assert_eq!(ejection.duration, detector.ejection_time(ejection.multiplier));
            }
            for &endpoint in &result.unejected {
                prop_assert!(!detector.is_ejected(endpoint));
            }
        }
    }

    #[test]
    fn failure_percentage_ejects_only_endpoints_above_the_threshold(
        interval in arb_interval(12),
        threshold in 0_u32..=100,
        seed in any::<u64>(),
    ) {
        let start = Instant::now();
        let mut fp = FailurePercentageEjection::default();
        fp.threshold = threshold;
        fp.minimum_hosts = 1;
        fp.request_volume = 10;
        let config = OutlierDetection::default()
            .with_max_ejection_percent(100_u32)
            .with_failure_percentage(fp);
        let detector = OutlierDetector::new(config, (0..12).map(|e| format!("e{e}")), start);
        let mut rng = FastRng::from_seed(seed);
        for (endpoint, &(successes, failures, gateway)) in interval.iter().enumerate() {
            for _ in 0..successes {
                detector.record(endpoint, Outcome::Success, start, &mut rng);
            }
            for _ in 0..failures + gateway {
                detector.record(endpoint, Outcome::FAILURE, start, &mut rng);
            }
        }
        let result = detector.evaluate(start, &mut rng);
        for (endpoint, &(successes, failures, gateway)) in interval.iter().enumerate() {
            let failed = u64::from(failures + gateway);
            let total = u64::from(successes) + failed;
            let outlier = total >= 10 && failed * 100 > u64::from(threshold) * total;
            prop_assert_eq!(
                result.ejected.iter().any(|e| e.endpoint == endpoint),
                outlier,
                "endpoint {} with {}/{} failed", endpoint, failed, total
            );
        }
    }
}
