//! gRFC A50's interval algorithms, ejection times and un-ejection.

use super::*;

#[test]
fn success_rate_ejects_the_outlier() {
    // Nine endpoints at 100%, one at 50%: mean 0.95, stdev 0.15, threshold 0.95 − 1.9 × 0.15 = 0.665.
    let start = Instant::now();
    let config = OutlierDetection::default()
        .with_max_ejection_percent(50_u32)
        .with_success_rate(success_rate(5, 100));
    let detector = OutlierDetector::new(config, keys(10), start);
    for endpoint in 0..10 {
        let failures = if endpoint == 3 { 100 } else { 0 };
        feed(&detector, endpoint, 200 - failures, failures, start);
    }
    let result = detector.evaluate(start + 10 * SECOND, &mut FastRng::from_seed(1));
    assert_eq!(ejected_endpoints(&result), [3]);
    let ejection = result.ejected[0];
    assert_eq!(ejection.reason, EjectionReason::SuccessRate);
    assert_eq!((ejection.multiplier, ejection.duration), (1, 30 * SECOND));
    assert!(result.changed());
    assert!(detector.is_ejected(3) && !detector.is_ejected(2));
    assert_eq!(detector.ejected_count(), 1);
}

#[test]
fn success_rate_spares_an_outlier_within_the_stdev_factor() {
    // One deviant among n equal peers sits √(n − 1) standard deviations below the mean: for four endpoints that is
    // 1.73, inside the default 1.9 but outside 1.7.
    let start = Instant::now();
    for (stdev_factor, ejected) in [(1900, false), (1700, true)] {
        let mut config = success_rate(4, 100);
        config.stdev_factor = stdev_factor;
        let od = OutlierDetection::default()
            .with_max_ejection_percent(100_u32)
            .with_success_rate(config);
        let detector = OutlierDetector::new(od, keys(4), start);
        for endpoint in 0..4 {
            let failures = if endpoint == 0 { 60 } else { 0 };
            feed(&detector, endpoint, 100 - failures, failures, start);
        }
        let result = detector.evaluate(start, &mut FastRng::from_seed(2));
        assert_eq!(
            detector.is_ejected(0),
            ejected,
            "stdev_factor {stdev_factor}"
        );
        assert_eq!(result.ejected.len(), usize::from(ejected));
    }
}

#[test]
fn success_rate_needs_minimum_hosts_with_request_volume() {
    let start = Instant::now();
    let od = OutlierDetection::default()
        .with_max_ejection_percent(100_u32)
        .with_success_rate(success_rate(6, 100));
    let detector = OutlierDetector::new(od, keys(6), start);
    // Five endpoints with volume, one short of it: fewer than minimum_hosts, so nothing runs.
    for endpoint in 0..5 {
        feed(
            &detector,
            endpoint,
            if endpoint == 0 { 0 } else { 100 },
            if endpoint == 0 { 100 } else { 0 },
            start,
        );
    }
    feed(&detector, 5, 99, 0, start);
    assert!(
        !detector
            .evaluate(start, &mut FastRng::from_seed(3))
            .changed()
    );
    // With volume everywhere it runs and ejects endpoint 0.
    for endpoint in 0..6 {
        feed(
            &detector,
            endpoint,
            if endpoint == 0 { 0 } else { 100 },
            if endpoint == 0 { 100 } else { 0 },
            start,
        );
    }
    assert_eq!(
        ejected_endpoints(&detector.evaluate(start, &mut FastRng::from_seed(3))),
        [0]
    );
}

#[test]
fn endpoints_below_the_request_volume_are_not_ejected() {
    let start = Instant::now();
    let od = OutlierDetection::default()
        .with_max_ejection_percent(100_u32)
        .with_success_rate(success_rate(5, 100))
        .with_failure_percentage(failure_percentage(50));
    let detector = OutlierDetector::new(od, keys(6), start);
    for endpoint in 0..5 {
        feed(&detector, endpoint, 100, 0, start);
    }
    // Endpoint 5 fails everything but sent only 49 requests (failure_percentage's request_volume is 50).
    feed(&detector, 5, 0, 49, start);
    let result = detector.evaluate(start, &mut FastRng::from_seed(4));
    assert!(result.ejected.is_empty(), "{result:?}");
}

#[test]
fn failure_percentage_ejects_strictly_above_the_threshold() {
    let start = Instant::now();
    let od = OutlierDetection::default()
        .with_max_ejection_percent(100_u32)
        .with_failure_percentage(failure_percentage(85));
    let detector = OutlierDetector::new(od, keys(6), start);
    feed(&detector, 0, 14, 86, start); // 86%: out
    feed(&detector, 1, 15, 85, start); // 85%: stays
    for endpoint in 2..6 {
        feed(&detector, endpoint, 100, 0, start);
    }
    let result = detector.evaluate(start, &mut FastRng::from_seed(5));
    assert_eq!(ejected_endpoints(&result), [0]);
    assert_eq!(result.ejected[0].reason, EjectionReason::FailurePercentage);
}

#[test]
fn failure_percentage_needs_minimum_hosts() {
    let start = Instant::now();
    let od = OutlierDetection::default()
        .with_max_ejection_percent(100_u32)
        .with_failure_percentage(failure_percentage(50));
    let detector = OutlierDetector::new(od, keys(4), start); // minimum_hosts 5
    for endpoint in 0..4 {
        feed(&detector, endpoint, 0, 100, start);
    }
    assert!(
        detector
            .evaluate(start, &mut FastRng::from_seed(6))
            .ejected
            .is_empty()
    );
}

#[test]
fn zero_enforcement_detects_but_never_ejects() {
    let start = Instant::now();
    let mut sr = success_rate(5, 100);
    sr.enforcement_percentage = 0;
    let mut fp = failure_percentage(50);
    fp.enforcement_percentage = 0;
    let od = OutlierDetection::default()
        .with_max_ejection_percent(100_u32)
        .with_success_rate(sr)
        .with_failure_percentage(fp)
        .with_consecutive_5xx(consecutive(5, 0));
    let detector = OutlierDetector::new(od, keys(10), start);
    for endpoint in 0..10 {
        let failures = if endpoint == 0 { 100 } else { 0 };
        feed(&detector, endpoint, 100 - failures, failures, start);
    }
    let result = detector.evaluate(start, &mut FastRng::from_seed(7));
    assert!(result.ejected.is_empty());
    assert_eq!(
        result.not_enforced,
        [
            (0, EjectionReason::SuccessRate),
            (0, EjectionReason::FailurePercentage)
        ]
    );
    assert_eq!(detector.ejected_count(), 0);
}

#[test]
fn enforcement_percentage_is_a_probability() {
    let start = Instant::now();
    let mut fp = failure_percentage(50);
    fp.enforcement_percentage = 30;
    let od = OutlierDetection::default()
        .with_max_ejection_percent(100_u32)
        .with_failure_percentage(fp);
    let mut rng = FastRng::from_seed(8);
    let mut ejected = 0;
    for _ in 0..1_000 {
        let detector = OutlierDetector::new(od.clone(), keys(5), start);
        feed(&detector, 0, 0, 50, start);
        for endpoint in 1..5 {
            feed(&detector, endpoint, 50, 0, start);
        }
        ejected += detector.evaluate(start, &mut rng).ejected.len();
    }
    assert!((240..360).contains(&ejected), "{ejected} of 1000");
}

#[test]
fn max_ejection_percent_stops_the_sweep() {
    let start = Instant::now();
    for (max_percent, endpoints, expected) in [
        (10_u32, 10, 1),
        (20, 10, 2),
        (10, 5, 1),
        (0, 10, 0),
        (100, 10, 3),
    ] {
        let od = OutlierDetection::default()
            .with_max_ejection_percent(max_percent)
            .with_failure_percentage(failure_percentage(50));
        let detector = OutlierDetector::new(od, keys(endpoints), start);
        for endpoint in 0..endpoints {
            let failures = if endpoint < 3 { 100 } else { 0 };
            feed(&detector, endpoint, 100 - failures, failures, start);
        }
        let result = detector.evaluate(start, &mut FastRng::from_seed(9));
        assert_eq!(
            result.ejected.len(),
            expected,
            "{max_percent}% of {endpoints}"
        );
        assert_eq!(detector.ejected_count(), expected);
        assert_eq!(result.stopped_at_max_ejection_percent, expected < 3);
        assert!(result.ejected.iter().all(|e| e.endpoint < 3));
    }
}

#[test]
fn ejection_time_grows_with_the_multiplier_up_to_the_maximum() {
    let od = OutlierDetection::default()
        .with_base_ejection_time(30 * SECOND)
        .with_max_ejection_time(100 * SECOND);
    let detector = OutlierDetector::new(od, keys(1), Instant::now());
    let times: Vec<Duration> = [0, 1, 2, 3, 4, 1_000, u32::MAX]
        .into_iter()
        .map(|m| detector.ejection_time(m))
        .collect();
    assert_eq!(times, [0, 30, 60, 90, 100, 100, 100].map(|s| s * SECOND));
    // A50: the cap is max(base, max_ejection_time), so a base above the maximum wins.
    let od = OutlierDetection::default()
        .with_base_ejection_time(30 * SECOND)
        .with_max_ejection_time(10 * SECOND);
    let detector = OutlierDetector::new(od, keys(1), Instant::now());
    assert_eq!(detector.ejection_time(3), 30 * SECOND);
}

/// A detector over 5 endpoints where endpoint 0 fails every request and failure-percentage ejection is on.
fn failing_endpoint_detector(start: Instant) -> OutlierDetector {
    let od = OutlierDetection::default()
        .with_max_ejection_percent(100_u32)
        .with_base_ejection_time(30 * SECOND)
        .with_max_ejection_time(300 * SECOND)
        .with_failure_percentage(failure_percentage(50));
    OutlierDetector::new(od, keys(5), start)
}

fn fail_endpoint_zero(detector: &OutlierDetector, now: Instant) {
    feed(detector, 0, 0, 100, now);
    for endpoint in 1..5 {
        feed(detector, endpoint, 100, 0, now);
    }
}

#[test]
fn ejected_endpoints_return_after_their_time() {
    let start = Instant::now();
    let detector = failing_endpoint_detector(start);
    let mut rng = FastRng::from_seed(10);
    fail_endpoint_zero(&detector, start);
    assert_eq!(ejected_endpoints(&detector.evaluate(start, &mut rng)), [0]);
    // A50: un-eject when the current time is *after* the ejection time; exactly at it the endpoint stays out.
    assert!(!detector.evaluate(start + 30 * SECOND, &mut rng).changed());
    assert_eq!(
        detector.snapshot(start + 20 * SECOND).endpoints[0].remaining_ejection,
        Some(10 * SECOND)
    );
    let result = detector.evaluate(start + 31 * SECOND, &mut rng);
    assert_eq!(result.unejected, [0]);
    assert!(!detector.is_ejected(0));
    assert_eq!(detector.ejected_count(), 0);
}

#[test]
fn repeated_ejections_last_longer_and_the_multiplier_decays() {
    let start = Instant::now();
    let detector = failing_endpoint_detector(start);
    let mut rng = FastRng::from_seed(11);
    fail_endpoint_zero(&detector, start);
    detector.evaluate(start, &mut rng);
    detector.evaluate(start + 40 * SECOND, &mut rng); // back after 30 s
    // It fails again straight away: the second ejection lasts 60 s.
    let second = start + 50 * SECOND;
    fail_endpoint_zero(&detector, second);
    let result = detector.evaluate(second, &mut rng);
    assert_eq!(result.ejected[0].multiplier, 2);
    assert_eq!(result.ejected[0].duration, 60 * SECOND);
    assert!(!detector.evaluate(second + 60 * SECOND, &mut rng).changed());
    assert_eq!(
        detector.evaluate(second + 61 * SECOND, &mut rng).unejected,
        [0]
    );
    // Healthy from now on: each interval takes one off the multiplier, never below zero.
    let mut now = second + 61 * SECOND;
    assert_eq!(
        multiplier(&detector, 0, now),
        2,
        "not decremented in the sweep that un-ejects"
    );
    for expected in [1, 0, 0] {
        now += 10 * SECOND;
        detector.evaluate(now, &mut rng);
        assert_eq!(multiplier(&detector, 0, now), expected);
    }
}
