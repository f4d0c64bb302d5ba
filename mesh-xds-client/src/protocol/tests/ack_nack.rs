//! ACK and NACK (Envoy xDS protocol; gRFC A46, A88).

use super::support::*;
use crate::protocol::ResourceStatus;

fn connected_with(kind: crate::resource::ResourceKind, names: &[&str]) -> Harness {
    let mut h = Harness::single();
    for name in names {
        h.subscribe(kind, name);
    }
    h.connect(0);
    h
}

#[test]
fn ack_comes_after_watcher_events_and_echoes_version_and_nonce() {
    let mut h = connected_with(CDS, &["b", "a"]);
    let out = h.respond(0, CDS, "1", "n1", vec![ok("a", "A1"), ok("b", "B1")]);
    assert_eq!(
        out,
        vec![
            changed(CDS, "a", "A1"),
            changed(CDS, "b", "B1"),
            send(h.stream(0), request(CDS, &["a", "b"], "1", "n1", None)),
        ]
    );
}

#[test]
fn nack_carries_last_accepted_version_and_valid_resources_still_apply() {
    let mut h = connected_with(CDS, &["a", "b"]);
    h.respond(0, CDS, "1", "n1", vec![ok("a", "A1"), ok("b", "B1")]);

    let out = h.respond(
        0,
        CDS,
        "2",
        "n2",
        vec![
            ok("a", "A2"),
            bad(CDS, "b", "lb_policy: MAGLEV is not supported"),
        ],
    );

    assert_eq!(
        out,
        vec![
            changed(CDS, "a", "A2"),
            error(
                CDS,
                "b",
                rejected(CDS, "b", "lb_policy: MAGLEV is not supported"),
                true
            ),
            send(
                h.stream(0),
                request(
                    CDS,
                    &["a", "b"],
                    "1",
                    "n2",
                    Some(
                        "xDS response validation errors: [Cluster \"b\": lb_policy: MAGLEV is not supported]"
                    ),
                ),
            ),
        ]
    );
    // gRFC A88: the last good value of the rejected resource keeps serving.
    let b = h.xds.resource(CDS, "b").unwrap();
    assert_eq!(b.value.map(String::as_str), Some("B1"));
    assert_eq!(b.status, ResourceStatus::Nacked);
    assert_eq!(b.version, Some("1"));
    let a = h.xds.resource(CDS, "a").unwrap();
    assert_eq!(a.value.map(String::as_str), Some("A2"));
    assert_eq!(a.version, Some("2"));
}

#[test]
fn nack_of_a_resource_without_cached_value_is_a_data_error() {
    let mut h = connected_with(CDS, &["a"]);
    let out = h.respond(0, CDS, "1", "n1", vec![bad(CDS, "a", "type: unknown")]);
    assert_eq!(
        events(&out),
        vec![error(CDS, "a", rejected(CDS, "a", "type: unknown"), false)]
    );
    let (_, nack) = sends(&out).pop().unwrap();
    assert_eq!(
        (nack.version_info.as_str(), nack.response_nonce.as_str()),
        ("", "n1")
    );
    assert!(nack.is_nack());
}

#[test]
fn nack_detail_lists_every_problem_including_unreadable_resources() {
    let mut h = connected_with(EDS, &["a", "b"]);
    let out = h.respond(
        0,
        EDS,
        "1",
        "n1",
        vec![
            bad(EDS, "a", "endpoints[0]: no address"),
            unnamed(EDS, "does not decode"),
            ok("b", "B"),
        ],
    );
    let (_, nack) = sends(&out).pop().unwrap();
    assert_eq!(
        nack.error_detail.as_deref(),
        Some(
            "xDS response validation errors: [ClusterLoadAssignment \"a\": endpoints[0]: no address; \
             ClusterLoadAssignment (name unreadable): does not decode]"
        )
    );
    assert!(events(&out).contains(&changed(EDS, "b", "B")));
}

#[test]
fn resource_sent_again_unchanged_wakes_no_watcher() {
    let mut h = connected_with(CDS, &["a"]);
    h.respond(0, CDS, "1", "n1", vec![ok("a", "A")]);
    let out = h.respond(0, CDS, "2", "n2", vec![ok("a", "A")]);
    assert_eq!(
        out,
        vec![send(h.stream(0), request(CDS, &["a"], "2", "n2", None))]
    );
    assert_eq!(h.xds.resource(CDS, "a").unwrap().version, Some("2"));
}

#[test]
fn same_rejection_again_is_reported_once() {
    let mut h = connected_with(CDS, &["a"]);
    h.respond(0, CDS, "1", "n1", vec![ok("a", "A")]);
    let first = h.respond(0, CDS, "2", "n2", vec![bad(CDS, "a", "broken")]);
    let second = h.respond(0, CDS, "3", "n3", vec![bad(CDS, "a", "broken")]);
    assert_eq!(events(&first).len(), 1);
    assert_eq!(events(&second), vec![]);
    let (_, nack) = sends(&second).pop().unwrap();
    assert_eq!(
        (nack.version_info.as_str(), nack.response_nonce.as_str()),
        ("1", "n3")
    );
}

#[test]
fn good_value_after_nack_clears_the_error_without_waking_watchers_for_the_same_value() {
    let mut h = connected_with(CDS, &["a"]);
    h.respond(0, CDS, "1", "n1", vec![ok("a", "A")]);
    h.respond(0, CDS, "2", "n2", vec![bad(CDS, "a", "broken")]);
    let out = h.respond(0, CDS, "3", "n3", vec![ok("a", "A")]);
    assert_eq!(
        out,
        vec![send(h.stream(0), request(CDS, &["a"], "3", "n3", None))]
    );
    let a = h.xds.resource(CDS, "a").unwrap();
    assert_eq!(a.status, ResourceStatus::Acked);
    assert!(a.last_error.is_none());
}

#[test]
fn duplicate_name_in_one_response_is_nacked_and_the_first_copy_wins() {
    let mut h = connected_with(CDS, &["a"]);
    let out = h.respond(0, CDS, "1", "n1", vec![ok("a", "A1"), ok("a", "A2")]);
    assert_eq!(events(&out), vec![changed(CDS, "a", "A1")]);
    let (_, nack) = sends(&out).pop().unwrap();
    assert_eq!(nack.version_info, "");
    assert!(
        nack.error_detail
            .unwrap()
            .contains("duplicate resource name")
    );
}

#[test]
fn response_for_a_type_never_requested_is_ignored() {
    let mut h = connected_with(CDS, &["a"]);
    let out = h.respond(0, EDS, "1", "n1", vec![ok("a", "A")]);
    assert_eq!(out, vec![]);
    assert!(h.xds.type_states().all(|state| state.kind != EDS));
}

#[test]
fn resources_nobody_subscribed_are_ignored_but_acked() {
    let mut h = connected_with(CDS, &["a"]);
    let out = h.respond(0, CDS, "1", "n1", vec![ok("a", "A"), ok("z", "Z")]);
    assert_eq!(
        out,
        vec![
            changed(CDS, "a", "A"),
            send(h.stream(0), request(CDS, &["a"], "1", "n1", None))
        ]
    );
    assert!(h.xds.resource(CDS, "z").is_none());
}
