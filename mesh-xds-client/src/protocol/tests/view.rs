//! The read-only view for the config dump (gRFC A40).

use std::time::Duration;

use super::support::*;
use crate::protocol::{ResourceStatus, ServerId, TypeView};

#[test]
fn view_reports_status_value_version_and_update_time() {
    let mut h = Harness::single();
    h.subscribe(CDS, "a");
    h.subscribe(CDS, "b");
    h.subscribe(CDS, "gone");
    h.connect(0);
    let first = h.now;
    h.respond(0, CDS, "1", "n1", vec![ok("a", "A"), ok("b", "B")]);
    h.advance(Duration::from_secs(15));
    let second = h.now;
    h.respond(
        0,
        CDS,
        "2",
        "n2",
        vec![ok("a", "A"), bad(CDS, "b", "broken")],
    );

    let views: Vec<_> = h.xds.resources().collect();
    assert_eq!(views.len(), 3);
    let a = &views[0];
    assert_eq!(
        (a.name, a.status, a.version),
        ("a", ResourceStatus::Acked, Some("2"))
    );
    assert_eq!(a.last_updated, Some(second));
    let b = &views[1];
    assert_eq!(
        (b.name, b.status, b.version),
        ("b", ResourceStatus::Nacked, Some("1"))
    );
    assert_eq!(b.value.map(String::as_str), Some("B"));
    assert_eq!(b.last_updated, Some(first));
    assert_eq!(
        b.last_error.map(ToString::to_string).as_deref(),
        Some("Cluster \"b\": broken")
    );
    let gone = &views[2];
    assert_eq!(
        (gone.name, gone.status),
        ("gone", ResourceStatus::DoesNotExist)
    );
    assert!(gone.value.is_none());
}

#[test]
fn view_reports_per_server_type_version_and_nonce() {
    let mut h = Harness::single();
    h.subscribe(LDS, "l");
    h.subscribe(CDS, "c");
    h.connect(0);
    h.respond(0, LDS, "l1", "n1", vec![ok("l", "L")]);
    h.respond(0, CDS, "c1", "n2", vec![ok("c", "C")]);
    h.respond(0, CDS, "c2", "n3", vec![bad(CDS, "c", "broken")]);
    let states: Vec<TypeView<'_>> = h.xds.type_states().collect();
    let summary: Vec<_> = states
        .iter()
        .map(|state| (state.server, state.kind, state.version_info, state.nonce))
        .collect();
    assert_eq!(
        summary,
        vec![
            (ServerId(0), LDS, "l1", "n1"),
            (ServerId(0), CDS, "c1", "n3")
        ]
    );
}
