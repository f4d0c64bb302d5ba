use std::sync::Barrier;
use std::sync::atomic::AtomicUsize;

use super::*;

fn config(budget_percent: f64, min_retry_concurrency: u32) -> RetryBudgetConfig {
    RetryBudgetConfig {
        budget_percent,
        min_retry_concurrency,
    }
}

#[test]
fn the_floor_applies_while_few_requests_are_active() {
    let budget = RetryBudget::new(&RetryBudgetConfig::default()); // 20%, floor 3
    let _requests: Vec<RequestGuard> = (0..5).map(|_| budget.start_request()).collect();
    assert_eq!(budget.retry_limit(), 3);
    let retries: Vec<RetryGuard> = (0..3).map(|_| budget.try_start_retry().unwrap()).collect();
    assert!(budget.try_start_retry().is_none());
    drop(retries);
    assert_eq!(budget.active_retries(), 0);
    assert!(budget.try_start_retry().is_some());
}

#[test]
fn the_share_applies_once_it_exceeds_the_floor() {
    let budget = RetryBudget::new(&config(20.0, 3));
    let _requests: Vec<RequestGuard> = (0..100).map(|_| budget.start_request()).collect();
    assert_eq!(budget.retry_limit(), 20);
    let _retries: Vec<RetryGuard> = (0..20).map(|_| budget.try_start_retry().unwrap()).collect();
    assert!(budget.try_start_retry().is_none());
}

#[test]
fn the_share_is_rounded_down() {
    let budget = RetryBudget::new(&config(20.0, 0));
    let _requests: Vec<RequestGuard> = (0..14).map(|_| budget.start_request()).collect();
    assert_eq!(budget.retry_limit(), 2); // 2.8
    let budget = RetryBudget::new(&config(0.0, 0));
    let _request = budget.start_request();
    assert!(
        budget.try_start_retry().is_none(),
        "no share and no floor: no retry"
    );
}

#[test]
fn guards_give_their_count_back_when_dropped() {
    let budget = RetryBudget::new(&RetryBudgetConfig::default());
    let request = budget.start_request();
    let retry = budget.try_start_retry().unwrap();
    assert_eq!((budget.active_requests(), budget.active_retries()), (1, 1));
    drop(retry);
    drop(request);
    assert_eq!((budget.active_requests(), budget.active_retries()), (0, 0));
}

#[test]
fn new_config_keeps_the_counts_in_flight() {
    let budget = RetryBudget::new(&config(50.0, 0));
    let _requests: Vec<RequestGuard> = (0..10).map(|_| budget.start_request()).collect();
    let _retries: Vec<RetryGuard> = (0..5).map(|_| budget.try_start_retry().unwrap()).collect();
    budget.set_config(&config(20.0, 0));
    assert_eq!(budget.active_retries(), 5);
    assert_eq!(budget.retry_limit(), 2);
    assert!(
        budget.try_start_retry().is_none(),
        "already over the lowered limit"
    );
}

#[test]
fn out_of_range_percentages_are_clamped() {
    assert_eq!(percent_to_ppm(f64::NAN), 0);
    assert_eq!(percent_to_ppm(-5.0), 0);
    assert_eq!(percent_to_ppm(150.0), 1_000_000);
    assert_eq!(percent_to_ppm(f64::INFINITY), 1_000_000);
    assert_eq!(percent_to_ppm(12.5), 125_000);
}

#[test]
fn a_retry_storm_never_exceeds_the_budget() {
    // 50 requests fail at once and all try to retry, over and over: at most max(3, 20% of 50) = 10 retries may run
    // at a time.
    const REQUESTS: usize = 50;
    let budget = RetryBudget::new(&RetryBudgetConfig::default());
    let running = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let admitted = AtomicUsize::new(0);
    let all_started = Barrier::new(REQUESTS);
    let all_done = Barrier::new(REQUESTS);
    std::thread::scope(|scope| {
        for _ in 0..REQUESTS {
            scope.spawn(|| {
                let _request = budget.start_request();
                all_started.wait();
                for _ in 0..200 {
                    if let Some(_retry) = budget.try_start_retry() {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        admitted.fetch_add(1, Ordering::Relaxed);
                        std::thread::yield_now();
                        running.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                all_done.wait();
            });
        }
    });
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 10, "{peak} concurrent retries");
    assert!(admitted.load(Ordering::Relaxed) > 0);
    assert_eq!((budget.active_requests(), budget.active_retries()), (0, 0));
}

mod proptests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        StartRequest,
        EndRequest,
        StartRetry,
        EndRetry,
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::StartRequest),
            1 => Just(Op::EndRequest),
            3 => Just(Op::StartRetry),
            2 => Just(Op::EndRetry),
        ]
    }

    proptest! {
        #[test]
        fn retries_are_admitted_exactly_while_under_the_limit(
            budget_percent in 0.0_f64..=100.0,
            floor in 0_u32..5,
            ops in prop::collection::vec(arb_op(), 0..200),
        ) {
            let budget = RetryBudget::new(&config(budget_percent, floor));
            let mut requests = Vec::new();
            let mut retries = Vec::new();
            for op in ops {
                match op {
                    Op::StartRequest => requests.push(budget.start_request()),
                    Op::EndRequest => drop(requests.pop()),
                    Op::StartRetry => {
                        let limit = budget.retry_limit();
                        let expected = (requests.len() as f64 * budget_percent / 100.0).floor().max(f64::from(floor));
                        // The integer limit agrees with the real-valued formula up to rounding of the share.
                        prop_assert!((limit as f64 - expected).abs() <= 1.0, "{limit} vs {expected}");
                        let before = retries.len();
                        match budget.try_start_retry() {
                            Some(retry) => {
                                prop_assert!(before < limit);
                                retries.push(retry);
                            }
                            None => prop_assert!(before >= limit),
                        }
                    }
                    Op::EndRetry => drop(retries.pop()),
                }
                prop_assert_eq!(budget.active_requests(), requests.len());
                prop_assert_eq!(budget.active_retries(), retries.len());
            }
        }
    }
}

#[test]
fn an_unlimited_budget_admits_a_retry_for_every_request_in_flight() {
    let budget = RetryBudget::new(&RetryBudgetConfig::unlimited());
    let _requests: Vec<RequestGuard> = (0..50).map(|_| budget.start_request()).collect();
    let retries: Vec<RetryGuard> = (0..50).filter_map(|_| budget.try_start_retry()).collect();
    assert_eq!(retries.len(), 50);
}
