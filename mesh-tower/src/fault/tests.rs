use mesh_core::fraction::FractionalPercent;
use mesh_core::rng::FastRng;
use mesh_core::route::{FaultAbort, FaultAbortKind, FaultDelay, FaultInjection, HeaderMatcher};

use super::*;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, http::HeaderValue::from_static(value));
    }
    map
}

fn share_of(
    config: &FaultInjection,
    headers: &HeaderMap,
    n: u32,
    pick: impl Fn(&FaultPlan) -> bool,
) -> f64 {
    let active = ActiveFaults::default();
    let mut rng = FastRng::from_seed(7);
    let hits = (0..n)
        .filter(|_| pick(&plan(config, headers, true, &active, &mut rng)))
        .count();
    hits as f64 / f64::from(n)
}

#[test]
fn fixed_delay_and_abort_percentages_hold() {
    let config = FaultInjection::default()
        .with_delay(FaultDelay::Fixed {
            delay: Duration::from_millis(5),
            percentage: FractionalPercent::percent(30),
        })
        .with_abort(FaultAbort::new(
            FaultAbortKind::Grpc(14),
            FractionalPercent::percent(60),
        ));
    let empty = HeaderMap::new();
    let delayed = share_of(&config, &empty, 10_000, |p| p.delay.is_some());
    let aborted = share_of(&config, &empty, 10_000, |p| p.abort.is_some());
    assert!((delayed - 0.3).abs() < 0.02, "{delayed}");
    assert!((aborted - 0.6).abs() < 0.02, "{aborted}");
}

#[test]
fn header_faults_need_their_headers_and_percentage_headers_lower_the_share() {
    let config = FaultInjection::default()
        .with_delay(FaultDelay::Header {
            percentage: FractionalPercent::percent(100),
        })
        .with_abort(FaultAbort::new(
            FaultAbortKind::Header,
            FractionalPercent::percent(100),
        ));
    let none = share_of(&config, &HeaderMap::new(), 100, |p| {
        p.delay.is_some() || p.abort.is_some()
    });
    assert!(none.abs() < f64::EPSILON);
    let with = headers(&[
        (DELAY_HEADER, "20"),
        (ABORT_GRPC_HEADER, "8"),
        (ABORT_PERCENTAGE_HEADER, "25"),
    ]);
    let active = ActiveFaults::default();
    let planned = plan(&config, &with, true, &active, &mut FastRng::from_seed(1));
    assert_eq!(planned.delay, Some(Duration::from_millis(20)));
    let aborted = share_of(&config, &with, 10_000, |p| p.abort.is_some());
    assert!((aborted - 0.25).abs() < 0.02, "{aborted}");
    let abort = (0..50)
        .find_map(|seed| plan(&config, &with, true, &active, &mut FastRng::from_seed(seed)).abort)
        .unwrap();
    assert_eq!(abort.code(), Code::ResourceExhausted);
}

#[test]
fn header_matchers_gate_the_fault() {
    let mut config = FaultInjection::default().with_abort(FaultAbort::new(
        FaultAbortKind::Http(503),
        FractionalPercent::percent(100),
    ));
    config.headers.push(HeaderMatcher::exact("x-chaos", "on"));
    let active = ActiveFaults::default();
    let mut rng = FastRng::from_seed(1);
    assert!(
        plan(&config, &HeaderMap::new(), false, &active, &mut rng)
            .abort
            .is_none()
    );
    let abort = plan(
        &config,
        &headers(&[("x-chaos", "on")]),
        false,
        &active,
        &mut rng,
    )
    .abort
    .unwrap();
    assert_eq!(abort.http_status(), 503);
    assert_eq!(abort.code(), Code::Unavailable);
}

#[test]
fn max_active_faults_caps_concurrent_faults() {
    let config = FaultInjection::default()
        .with_delay(FaultDelay::Fixed {
            delay: Duration::from_secs(1),
            percentage: FractionalPercent::percent(100),
        })
        .with_max_active_faults(2);
    let active = ActiveFaults::default();
    let mut rng = FastRng::from_seed(1);
    let first = plan(&config, &HeaderMap::new(), false, &active, &mut rng);
    let second = plan(&config, &HeaderMap::new(), false, &active, &mut rng);
    let third = plan(&config, &HeaderMap::new(), false, &active, &mut rng);
    assert!(first.delay.is_some() && second.delay.is_some());
    assert!(third.delay.is_none());
    drop(first);
    assert!(
        plan(&config, &HeaderMap::new(), false, &active, &mut rng)
            .delay
            .is_some()
    );
}
