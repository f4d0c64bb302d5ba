//! Fallback between the servers of an authority (gRFC A71).

use std::time::Duration;

use super::support::*;
use crate::protocol::{Output, ServerId};

#[test]
fn unreachable_primary_with_an_uncached_resource_falls_back() {
    let mut h = Harness::new(servers(2));
    h.subscribe(LDS, "l");
    let out = h.fail(0);
    // The fallback is reachable as far as we know, so watchers are not told of the primary's failure.
    assert_eq!(
        out,
        vec![Output::Connect {
            stream: h.stream(1)
        }]
    );
    assert_eq!(h.xds.servers_in_use(None), vec![ServerId(0), ServerId(1)]);
    let out = h.connect(1);
    assert_eq!(
        out,
        vec![send(h.stream(1), request(LDS, &["l"], "", "", None))]
    );
    let out = h.respond(1, LDS, "f1", "n1", vec![ok("l", "from-fallback")]);
    assert_eq!(events(&out), vec![changed(LDS, "l", "from-fallback")]);
}

#[test]
fn no_fallback_while_everything_is_cached() {
    let mut h = Harness::new(servers(2));
    h.subscribe(LDS, "l");
    h.connect(0);
    h.respond(0, LDS, "1", "n1", vec![ok("l", "L")]);
    h.fail(0);
    h.connect(0);
    let out = h.fail(0);
    assert_eq!(out, vec![error(LDS, "l", unreachable(0), true)]);
    assert_eq!(h.xds.servers_in_use(None), vec![ServerId(0)]);
}

#[test]
fn new_uncached_subscription_while_primary_is_unreachable_falls_back() {
    let mut h = Harness::new(servers(2));
    h.subscribe(LDS, "l");
    h.connect(0);
    h.respond(0, LDS, "1", "n1", vec![ok("l", "L")]);
    h.fail(0);
    h.connect(0);
    h.fail(0);
    let out = h.subscribe(CDS, "c");
    assert_eq!(connects(&out), vec![1]);
    assert_eq!(events(&out), vec![]);
    let out = h.connect(1);
    assert_eq!(
        sends(&out),
        vec![
            (1, request(LDS, &["l"], "", "", None)),
            (1, request(CDS, &["c"], "", "", None))
        ]
    );
}

#[test]
fn primary_keeps_retrying_during_fallback() {
    let mut h = Harness::new(servers(2));
    h.subscribe(LDS, "l");
    h.fail(0);
    h.connect(1);
    assert_eq!(connects(&h.advance(Duration::from_secs(1))), vec![0]);
    let out = h.connect(0);
    assert_eq!(
        out,
        vec![send(h.stream(0), request(LDS, &["l"], "", "", None))]
    );
}

#[test]
fn primary_answering_again_takes_over_and_the_fallback_is_closed() {
    let mut h = Harness::new(servers(2));
    h.subscribe(LDS, "l");
    h.fail(0);
    h.connect(1);
    h.respond(1, LDS, "f1", "m1", vec![ok("l", "from-fallback")]);
    let fallback = h.stream(1);
    h.advance(Duration::from_secs(1));
    h.connect(0);

    let out = h.respond(0, LDS, "p1", "n1", vec![ok("l", "from-primary")]);
    assert_eq!(
        out,
        vec![
            Output::Disconnect { stream: fallback },
            changed(LDS, "l", "from-primary"),
            send(h.stream(0), request(LDS, &["l"], "p1", "n1", None)),
        ]
    );
    assert_eq!(h.xds.servers_in_use(None), vec![ServerId(0)]);
    // Cached data kept serving throughout: no DoesNotExist or resource error along the way.
    assert_eq!(
        h.xds.resource(LDS, "l").unwrap().value.map(String::as_str),
        Some("from-primary")
    );
}

#[test]
fn fallback_skips_unreachable_servers_and_reports_when_all_fail() {
    let mut h = Harness::new(servers(3));
    h.subscribe(LDS, "l");
    assert_eq!(connects(&h.fail(0)), vec![1]);
    assert_eq!(connects(&h.fail(1)), vec![2]);
    let out = h.fail(2);
    assert_eq!(out, vec![error(LDS, "l", unreachable(2), false)]);
    assert_eq!(
        h.xds.servers_in_use(None),
        vec![ServerId(0), ServerId(1), ServerId(2)]
    );

    // Everything retries; the middle server answering drops only the one after it.
    assert_eq!(connects(&h.advance(Duration::from_secs(1))), vec![0, 1, 2]);
    h.connect(1);
    let third = h.stream(2);
    let out = h.respond(1, LDS, "1", "n1", vec![ok("l", "L")]);
    assert_eq!(out.first(), Some(&Output::Disconnect { stream: third }));
    assert_eq!(events(&out), vec![changed(LDS, "l", "L")]);
    assert_eq!(h.xds.servers_in_use(None), vec![ServerId(0), ServerId(1)]);
}

#[test]
fn failing_fallback_with_a_reachable_next_moves_on() {
    let mut h = Harness::new(servers(3));
    h.subscribe(LDS, "l");
    h.fail(0);
    h.connect(1);
    let out = h.fail(1);
    assert_eq!(connects(&out), vec![2]);
    assert_eq!(events(&out), vec![]);
}
