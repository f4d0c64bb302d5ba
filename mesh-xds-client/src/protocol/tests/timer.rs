//! The does-not-exist timer (Envoy xDS protocol; gRFC A57).

use std::time::Duration;

use super::support::*;
use crate::protocol::ResourceStatus;

const TIMEOUT: Duration = Duration::from_secs(15);
const MS: Duration = Duration::from_millis(1);

#[test]
fn resource_not_sent_within_the_timeout_does_not_exist() {
    let mut h = Harness::single();
    h.subscribe(CDS, "c");
    h.connect(0);
    assert_eq!(h.xds.next_deadline(), Some(h.now + TIMEOUT));
    assert_eq!(h.advance(TIMEOUT - MS), vec![]);
    assert_eq!(h.advance(MS), vec![does_not_exist(CDS, "c")]);
    assert_eq!(
        h.xds.resource(CDS, "c").unwrap().status,
        ResourceStatus::DoesNotExist
    );
    assert_eq!(h.xds.next_deadline(), None);
}

#[test]
fn timer_does_not_run_before_the_stream_is_connected() {
    let mut h = Harness::single();
    h.subscribe(CDS, "c");
    assert_eq!(h.xds.next_deadline(), None);
    assert_eq!(h.advance(Duration::from_secs(60)), vec![]);
    h.connect(0);
    assert_eq!(h.advance(TIMEOUT - MS), vec![]);
    assert_eq!(h.advance(MS), vec![does_not_exist(CDS, "c")]);
}

#[test]
fn arrival_cancels_the_timer() {
    let mut h = Harness::single();
    h.subscribe(CDS, "c");
    h.connect(0);
    h.advance(Duration::from_secs(10));
    h.respond(0, CDS, "1", "n1", vec![ok("c", "C")]);
    assert_eq!(h.xds.next_deadline(), None);
    assert_eq!(h.advance(Duration::from_secs(10)), vec![]);
}

#[test]
fn stream_loss_stops_the_timer_and_the_next_stream_restarts_it() {
    let mut h = Harness::single();
    h.subscribe(CDS, "c");
    h.connect(0);
    h.advance(Duration::from_secs(10));
    h.fail(0);
    // Only the reconnect is pending while disconnected.
    assert_eq!(h.xds.next_deadline(), Some(h.now + Duration::from_secs(1)));
    h.advance(Duration::from_secs(1));
    h.connect(0);
    // The first timer would have fired at 15 s; the restarted one fires 15 s after the new subscription.
    assert_eq!(h.advance(Duration::from_secs(14)), vec![]);
    assert_eq!(h.elapsed(), Duration::from_secs(25));
    assert_eq!(
        events(&h.advance(Duration::from_secs(1))),
        vec![does_not_exist(CDS, "c")]
    );
}

#[test]
fn cached_resources_get_no_timer_on_reconnect() {
    let mut h = Harness::single();
    h.subscribe(EDS, "a");
    h.subscribe(EDS, "b");
    h.connect(0);
    h.respond(0, EDS, "1", "n1", vec![ok("a", "A")]);
    h.fail(0);
    h.connect(0);
    assert_eq!(h.advance(TIMEOUT), vec![does_not_exist(EDS, "b")]);
}

#[test]
fn resource_known_not_to_exist_is_not_timed_again_but_can_appear_later() {
    let mut h = Harness::single();
    h.subscribe(CDS, "c");
    h.connect(0);
    h.advance(TIMEOUT);
    h.respond(0, CDS, "1", "n1", vec![]);
    h.fail(0);
    h.connect(0);
    assert_eq!(h.xds.next_deadline(), None);
    let out = h.respond(0, CDS, "2", "n2", vec![ok("c", "C")]);
    assert_eq!(events(&out), vec![changed(CDS, "c", "C")]);
}

#[test]
fn nacked_resource_is_not_timed() {
    let mut h = Harness::single();
    h.subscribe(CDS, "c");
    h.connect(0);
    h.respond(0, CDS, "1", "n1", vec![bad(CDS, "c", "broken")]);
    assert_eq!(h.xds.next_deadline(), None);
    assert_eq!(h.advance(Duration::from_secs(60)), vec![]);
}

#[test]
fn unsubscribing_cancels_the_timer() {
    let mut h = Harness::single();
    h.subscribe(CDS, "c");
    h.subscribe(CDS, "d");
    h.connect(0);
    h.unsubscribe(CDS, "c");
    assert_eq!(h.advance(TIMEOUT), vec![does_not_exist(CDS, "d")]);
}
