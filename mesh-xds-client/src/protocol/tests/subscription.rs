//! Subscription requests (gRFC A27; Envoy xDS protocol, SotW).

use super::support::*;
use crate::protocol::{Output, ResourceStatus, ServerId, StreamStatus};

#[test]
fn first_subscription_connects_and_requests_once_connected() {
    let mut h = Harness::single();
    let out = h.subscribe(LDS, "listener");
    assert_eq!(
        out,
        vec![Output::Connect {
            stream: h.stream(0)
        }]
    );
    h.subscribe(CDS, "cluster");
    let out = h.connect(0);
    assert_eq!(
        out,
        vec![
            send(h.stream(0), request(LDS, &["listener"], "", "", None)),
            send(h.stream(0), request(CDS, &["cluster"], "", "", None)),
        ]
    );
}

#[test]
fn subscribing_sends_the_full_sorted_list_with_current_version_and_nonce() {
    let mut h = Harness::single();
    h.subscribe(CDS, "b");
    h.connect(0);
    h.respond(0, CDS, "1", "n1", vec![ok("b", "B")]);
    let out = h.subscribe(CDS, "a");
    assert_eq!(
        out,
        vec![send(
            h.stream(0),
            request(CDS, &["a", "b"], "1", "n1", None)
        )]
    );
}

#[test]
fn subscribing_twice_does_nothing() {
    let mut h = Harness::single();
    h.subscribe(CDS, "a");
    h.connect(0);
    assert_eq!(h.subscribe(CDS, "a"), vec![]);
}

#[test]
fn unsubscribing_sends_the_list_without_the_name_and_drops_the_cache() {
    let mut h = Harness::single();
    h.subscribe(CDS, "a");
    h.subscribe(CDS, "b");
    h.connect(0);
    h.respond(0, CDS, "1", "n1", vec![ok("a", "A"), ok("b", "B")]);

    let out = h.unsubscribe(CDS, "b");
    assert_eq!(
        out,
        vec![send(h.stream(0), request(CDS, &["a"], "1", "n1", None))]
    );
    assert!(h.xds.resource(CDS, "b").is_none());

    // Subscribing again starts from nothing: no stale value is replayed.
    let out = h.subscribe(CDS, "b");
    assert_eq!(events(&out), vec![]);
    assert_eq!(
        h.xds.resource(CDS, "b").unwrap().status,
        ResourceStatus::Requested
    );
}

#[test]
fn unsubscribing_the_last_name_of_a_type_sends_an_empty_list() {
    let mut h = Harness::single();
    h.subscribe(LDS, "l");
    h.subscribe(CDS, "c");
    h.connect(0);
    let out = h.unsubscribe(CDS, "c");
    assert_eq!(
        out,
        vec![send(h.stream(0), request(CDS, &[], "", "", None))]
    );
}

#[test]
fn unsubscribing_everything_disconnects_and_forgets_the_server_state() {
    let mut h = Harness::single();
    h.subscribe(CDS, "c");
    h.connect(0);
    h.respond(0, CDS, "1", "n1", vec![ok("c", "C")]);
    let stream = h.stream(0);
    assert_eq!(h.unsubscribe(CDS, "c"), vec![Output::Disconnect { stream }]);
    assert_eq!(h.xds.stream_status(ServerId(0)), StreamStatus::Idle);

    h.subscribe(CDS, "c");
    assert_ne!(h.stream(0), stream);
    let out = h.connect(0);
    assert_eq!(
        out,
        vec![send(h.stream(0), request(CDS, &["c"], "", "", None))]
    );
}

#[test]
fn resource_arriving_after_unsubscribe_produces_no_watcher_event() {
    let mut h = Harness::single();
    h.subscribe(LDS, "l");
    h.subscribe(CDS, "c");
    h.connect(0);
    h.unsubscribe(CDS, "c");
    let out = h.respond(0, CDS, "1", "n1", vec![ok("c", "C")]);
    assert_eq!(
        out,
        vec![send(h.stream(0), request(CDS, &[], "1", "n1", None))]
    );
}

#[test]
fn type_emptied_before_it_was_ever_requested_sends_nothing() {
    let mut h = Harness::single();
    h.subscribe(LDS, "l");
    h.subscribe(CDS, "c");
    h.unsubscribe(CDS, "c");
    // An empty first CDS request would be a wildcard subscription.
    let out = h.connect(0);
    assert_eq!(
        out,
        vec![send(h.stream(0), request(LDS, &["l"], "", "", None))]
    );
}
