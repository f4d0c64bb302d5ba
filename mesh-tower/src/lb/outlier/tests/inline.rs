//! Envoy's consecutive-error detectors, rebuilds, timers and classification.

use super::*;

#[test]
fn consecutive_5xx_ejects_at_exactly_the_threshold() {
    let start = Instant::now();
    let od = OutlierDetection::default()
        .with_max_ejection_percent(100_u32)
        .with_consecutive_5xx(consecutive(5, 100));
    let detector = OutlierDetector::new(od, keys(3), start);
    let mut rng = FastRng::from_seed(12);
    for _ in 0..4 {
        assert_eq!(detector.record(1, Outcome::FAILURE, start, &mut rng), None);
    }
    assert!(!detector.is_ejected(1));
    let ejection = detector
        .record(1, Outcome::FAILURE, start, &mut rng)
        .unwrap();
    assert_eq!(ejection.endpoint, 1);
    assert_eq!(ejection.reason, EjectionReason::Consecutive5xx);
    assert_eq!(ejection.multiplier, 1);
    assert!(detector.is_ejected(1));
    assert_eq!(detector.ejected_count(), 1);
    // Un-ejected by the interval timer like any other ejection.
    assert_eq!(
        detector.evaluate(start + 31 * SECOND, &mut rng).unejected,
        [1]
    );
}

#[test]
fn a_success_ends_the_streak() {
    let start = Instant::now();
    let od = OutlierDetection::default()
        .with_max_ejection_percent(100_u32)
        .with_consecutive_5xx(consecutive(5, 100));
    let detector = OutlierDetector::new(od, keys(1), start);
    let mut rng = FastRng::from_seed(13);
    for _ in 0..4 {
        assert!(
            detector
                .record(0, Outcome::FAILURE, start, &mut rng)
                .is_none()
        );
    }
    detector.record(0, Outcome::Success, start, &mut rng);
    assert_eq!(detector.snapshot(start).endpoints[0].consecutive_5xx, 0);
    for _ in 0..4 {
        assert!(
            detector
                .record(0, Outcome::FAILURE, start, &mut rng)
                .is_none()
        );
    }
    assert!(
        detector
            .record(0, Outcome::GATEWAY_FAILURE, start, &mut rng)
            .is_some()
    );
}

#[test]
fn gateway_failures_have_their_own_streak() {
    let start = Instant::now();
    let od = OutlierDetection::default()
        .with_max_ejection_percent(100_u32)
        .with_consecutive_5xx(consecutive(10, 100))
        .with_consecutive_gateway_failure(consecutive(3, 100));
    let detector = OutlierDetector::new(od, keys(1), start);
    let mut rng = FastRng::from_seed(14);
    let gateway = Outcome::from_http_status(503);
    let internal = Outcome::from_http_status(500);
    for outcome in [gateway, gateway, internal, gateway, gateway] {
        // A 500 breaks the gateway streak but extends the 5xx streak.
        assert!(detector.record(0, outcome, start, &mut rng).is_none());
    }
    let state = &detector.snapshot(start).endpoints[0];
    assert_eq!(
        (state.consecutive_gateway_failures, state.consecutive_5xx),
        (2, 5)
    );
    let ejection = detector
        .record(0, Outcome::connect_failure(), start, &mut rng)
        .unwrap();
    assert_eq!(ejection.reason, EjectionReason::ConsecutiveGatewayFailure);
}

#[test]
fn gateway_failures_also_count_as_5xx() {
    let start = Instant::now();
    let od = OutlierDetection::default()
        .with_max_ejection_percent(100_u32)
        .with_consecutive_5xx(consecutive(3, 100));
    let detector = OutlierDetector::new(od, keys(1), start);
    let mut rng = FastRng::from_seed(15);
    detector.record(0, Outcome::GATEWAY_FAILURE, start, &mut rng);
    detector.record(0, Outcome::from_grpc_code(13), start, &mut rng);
    let ejection = detector
        .record(0, Outcome::from_grpc_code(14), start, &mut rng)
        .unwrap();
    assert_eq!(ejection.reason, EjectionReason::Consecutive5xx);
}

#[test]
fn a_streak_restarts_after_it_triggers_even_when_not_enforced() {
    let start = Instant::now();
    let od = OutlierDetection::default()
        .with_max_ejection_percent(100_u32)
        .with_consecutive_5xx(consecutive(3, 0));
    let detector = OutlierDetector::new(od, keys(1), start);
    let mut rng = FastRng::from_seed(16);
    for _ in 0..3 {
        assert!(
            detector
                .record(0, Outcome::FAILURE, start, &mut rng)
                .is_none()
        );
    }
    assert_eq!(detector.snapshot(start).endpoints[0].consecutive_5xx, 0);
    assert!(!detector.is_ejected(0));
}

#[test]
fn consecutive_ejections_respect_max_ejection_percent() {
    let start = Instant::now();
    let od = OutlierDetection::default().with_consecutive_5xx(consecutive(2, 100)); // 10%
    let detector = OutlierDetector::new(od, keys(10), start);
    let mut rng = FastRng::from_seed(17);
    feed(&detector, 0, 0, 2, start);
    assert!(detector.is_ejected(0));
    feed(&detector, 1, 0, 2, start);
    assert!(!detector.is_ejected(1), "1 of 10 is already 10%");
    // An ejected endpoint is left alone when its streak reaches the threshold again, and the streak is not
    // restarted (Envoy `onConsecutiveErrorWorker` returns early).
    for _ in 0..2 {
        assert!(
            detector
                .record(0, Outcome::FAILURE, start, &mut rng)
                .is_none()
        );
    }
    assert_eq!(detector.snapshot(start).endpoints[0].consecutive_5xx, 2);
    assert_eq!(detector.ejected_count(), 1);
}

#[test]
fn racing_inline_ejections_never_pass_the_maximum() {
    // 20 endpoints, 20%: once 4 are ejected no more may be, however many threads cross their threshold at once.
    let start = Instant::now();
    let od = OutlierDetection::default()
        .with_max_ejection_percent(20_u32)
        .with_consecutive_5xx(consecutive(50, 100));
    let detector = OutlierDetector::new(od, keys(20), start);
    let ejections = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for endpoint in 0..20 {
            let (detector, ejections) = (&detector, &ejections);
            scope.spawn(move || {
                let mut rng = FastRng::from_seed(endpoint as u64);
                for _ in 0..50 {
                    if detector
                        .record(endpoint, Outcome::FAILURE, start, &mut rng)
                        .is_some()
                    {
                        ejections.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(ejections.load(Ordering::Relaxed), 4);
    assert_eq!(detector.ejected_count(), 4);
    assert_eq!((0..20).filter(|&e| detector.is_ejected(e)).count(), 4);
}

#[test]
fn an_ejected_endpoint_is_not_ejected_again_but_counts_in_the_mean() {
    let start = Instant::now();
    let od = OutlierDetection::default()
        .with_max_ejection_percent(100_u32)
        .with_failure_percentage(failure_percentage(50))
        .with_consecutive_5xx(consecutive(5, 100));
    let detector = OutlierDetector::new(od, keys(5), start);
    let mut rng = FastRng::from_seed(18);
    feed(&detector, 0, 0, 100, start); // ejected inline at the fifth failure
    for endpoint in 1..5 {
        feed(&detector, endpoint, 100, 0, start);
    }
    let result = detector.evaluate(start, &mut rng);
    assert!(result.ejected.is_empty());
    assert_eq!(multiplier(&detector, 0, start), 1);
    assert_eq!(
        detector.snapshot(start).endpoints[0].last_interval_failures,
        100
    );
}

#[test]
fn resizing_carries_state_over_for_remaining_keys() {
    let start = Instant::now();
    let od = OutlierDetection::default()
        .with_max_ejection_percent(100_u32)
        .with_consecutive_5xx(consecutive(3, 100))
        .with_failure_percentage(failure_percentage(50));
    let detector = OutlierDetector::new(od, ["a", "b", "c"], start);
    let mut rng = FastRng::from_seed(19);
    feed(&detector, 1, 0, 3, start);
    feed(&detector, 2, 7, 2, start);
    assert!(detector.is_ejected(1));
    let resized = detector.resized(["d", "c", "b"]);
    assert_eq!(&*resized.keys()[2], "b");
    assert!(resized.is_ejected(2) && !resized.is_ejected(0) && !resized.is_ejected(1));
    assert_eq!(resized.ejected_count(), 1);
    // The streak of "c" and its interval counts came along.
    assert_eq!(resized.snapshot(start).endpoints[1].consecutive_5xx, 2);
    resized.evaluate(start, &mut rng);
    let c = &resized.snapshot(start).endpoints[1];
    assert_eq!(
        (c.last_interval_successes, c.last_interval_failures),
        (7, 2)
    );
    // The ejection keeps its timestamp: "b" returns 30 s after it was ejected.
    assert_eq!(
        resized.evaluate(start + 31 * SECOND, &mut rng).unejected,
        [2]
    );
    // Dropping the ejected endpoint drops it from the count.
    assert_eq!(detector.resized(["a"]).ejected_count(), 0);
}

#[test]
fn a_config_without_detectors_unejects_everything() {
    let start = Instant::now();
    let od = OutlierDetection::default()
        .with_max_ejection_percent(100_u32)
        .with_consecutive_5xx(consecutive(1, 100));
    let detector = OutlierDetector::new(od, keys(3), start);
    feed(&detector, 0, 0, 1, start);
    assert!(detector.is_ejected(0) && detector.needs_timer());
    let disabled = detector.reconfigured(OutlierDetection::default(), keys(3), start);
    assert!(!disabled.is_ejected(0));
    assert_eq!(disabled.ejected_count(), 0);
    assert_eq!(multiplier(&disabled, 0, start), 0);
    assert!(!disabled.needs_timer());
}

#[test]
fn calls_are_counted_only_for_the_interval_algorithms() {
    let start = Instant::now();
    let od = OutlierDetection::default().with_consecutive_5xx(consecutive(100, 100));
    let detector = OutlierDetector::new(od, keys(1), start);
    feed(&detector, 0, 10, 10, start);
    detector.evaluate(start, &mut FastRng::from_seed(20));
    let state = &detector.snapshot(start).endpoints[0];
    assert_eq!(
        (state.last_interval_successes, state.last_interval_failures),
        (0, 0)
    );
    assert_eq!(state.consecutive_5xx, 10);
}

#[test]
fn switching_counting_back_on_starts_from_zero() {
    let start = Instant::now();
    let counting = OutlierDetection::default().with_failure_percentage(failure_percentage(50));
    let detector = OutlierDetector::new(counting.clone(), keys(1), start);
    feed(&detector, 0, 0, 30, start);
    let off = detector.reconfigured(OutlierDetection::default(), keys(1), start);
    let on = off.reconfigured(counting, keys(1), start);
    feed(&on, 0, 5, 0, start);
    on.evaluate(start, &mut FastRng::from_seed(23));
    let state = &on.snapshot(start).endpoints[0];
    assert_eq!(
        (state.last_interval_successes, state.last_interval_failures),
        (5, 0)
    );
}

#[test]
fn the_next_evaluation_is_due_an_interval_after_the_last() {
    let start = Instant::now();
    let od = OutlierDetection::default()
        .with_interval(10 * SECOND)
        .with_failure_percentage(failure_percentage(50));
    let detector = OutlierDetector::new(od.clone(), keys(2), start);
    assert_eq!(
        detector.next_evaluation_in(start + 3 * SECOND),
        Some(7 * SECOND)
    );
    detector.evaluate(start + 5 * SECOND, &mut FastRng::from_seed(21));
    assert_eq!(
        detector.next_evaluation_in(start + 8 * SECOND),
        Some(7 * SECOND)
    );
    // A50: a new config restarts the timer for what is left of the interval since it last fired.
    let shorter = detector.reconfigured(
        od.clone().with_interval(4 * SECOND),
        keys(3),
        start + 8 * SECOND,
    );
    assert_eq!(shorter.next_evaluation_in(start + 8 * SECOND), Some(SECOND));
    assert_eq!(
        shorter.next_evaluation_in(start + 20 * SECOND),
        Some(Duration::ZERO)
    );
    // Resizing keeps the timer too.
    assert_eq!(
        detector
            .resized(keys(1))
            .next_evaluation_in(start + 8 * SECOND),
        Some(7 * SECOND)
    );
    // No detector: no timer. Turning one back on starts a whole interval from then.
    let off = shorter.reconfigured(OutlierDetection::default(), keys(3), start + 30 * SECOND);
    assert_eq!(off.next_evaluation_in(start + 30 * SECOND), None);
    let on = off.reconfigured(od, keys(3), start + 40 * SECOND);
    assert_eq!(on.next_evaluation_in(start + 42 * SECOND), Some(8 * SECOND));
}

#[test]
fn out_of_range_endpoints_are_ignored() {
    let start = Instant::now();
    let od = OutlierDetection::default().with_consecutive_5xx(consecutive(1, 100));
    let detector = OutlierDetector::new(od, keys(2), start);
    let mut rng = FastRng::from_seed(22);
    assert!(
        detector
            .record(7, Outcome::FAILURE, start, &mut rng)
            .is_none()
    );
    assert!(!detector.is_ejected(7));
    let empty = OutlierDetector::new(OutlierDetection::default(), Vec::<String>::new(), start);
    assert!(empty.is_empty());
    assert!(!empty.evaluate(start, &mut rng).changed());
}

#[test]
fn outcomes_classify_http_and_grpc_statuses() {
    assert_eq!(Outcome::from_http_status(200), Outcome::Success);
    assert_eq!(Outcome::from_http_status(404), Outcome::Success);
    assert_eq!(Outcome::from_http_status(500), Outcome::FAILURE);
    for status in [502, 503, 504] {
        assert_eq!(Outcome::from_http_status(status), Outcome::GATEWAY_FAILURE);
    }
    assert_eq!(Outcome::from_grpc_code(0), Outcome::Success);
    assert_eq!(Outcome::from_grpc_code(14), Outcome::GATEWAY_FAILURE);
    assert_eq!(Outcome::from_grpc_code(5), Outcome::FAILURE);
    assert_eq!(
        EjectionReason::Consecutive5xx.to_string(),
        "consecutive_5xx"
    );
}
