//! SotW deletion (Envoy xDS protocol) and `ignore_resource_deletion` (gRFC A53).

use super::support::*;
use crate::protocol::{ResourceStatus, ServerConfig, WatchError};
use crate::resource::ResourceKind;

fn received(kind: ResourceKind, h: &mut Harness) {
    h.subscribe(kind, "x");
    h.subscribe(kind, "y");
    h.connect(0);
    h.respond(0, kind, "1", "n1", vec![ok("x", "X"), ok("y", "Y")]);
}

#[test]
fn listener_left_out_of_a_response_is_deleted() {
    let mut h = Harness::single();
    received(LDS, &mut h);
    let out = h.respond(0, LDS, "2", "n2", vec![ok("x", "X")]);
    assert_eq!(
        out,
        vec![
            does_not_exist(LDS, "y"),
            send(h.stream(0), request(LDS, &["x", "y"], "2", "n2", None)),
        ]
    );
    let y = h.xds.resource(LDS, "y").unwrap();
    assert_eq!(y.status, ResourceStatus::DoesNotExist);
    assert!(y.value.is_none());
}

#[test]
fn cluster_left_out_of_a_response_is_deleted() {
    let mut h = Harness::single();
    received(CDS, &mut h);
    let out = h.respond(0, CDS, "2", "n2", vec![]);
    assert_eq!(
        events(&out),
        vec![does_not_exist(CDS, "x"), does_not_exist(CDS, "y")]
    );
}

#[test]
fn routes_and_endpoints_left_out_mean_nothing() {
    for kind in [RDS, EDS] {
        let mut h = Harness::single();
        received(kind, &mut h);
        let out = h.respond(0, kind, "2", "n2", vec![ok("x", "X")]);
        assert_eq!(events(&out), vec![], "{kind}");
        assert_eq!(
            h.xds.resource(kind, "y").unwrap().value.map(String::as_str),
            Some("Y")
        );
    }
}

#[test]
fn deleted_resource_coming_back_is_a_change() {
    let mut h = Harness::single();
    received(LDS, &mut h);
    h.respond(0, LDS, "2", "n2", vec![ok("x", "X")]);
    let out = h.respond(0, LDS, "3", "n3", vec![ok("x", "X"), ok("y", "Y")]);
    assert_eq!(events(&out), vec![changed(LDS, "y", "Y")]);
}

#[test]
fn resource_never_received_is_not_deleted_by_omission() {
    let mut h = Harness::single();
    h.subscribe(LDS, "x");
    h.subscribe(LDS, "y");
    h.connect(0);
    let out = h.respond(0, LDS, "1", "n1", vec![ok("x", "X")]);
    assert_eq!(events(&out), vec![changed(LDS, "x", "X")]);
    assert_eq!(
        h.xds.resource(LDS, "y").unwrap().status,
        ResourceStatus::Requested
    );
}

#[test]
fn unreadable_resource_prevents_deletion() {
    let mut h = Harness::single();
    received(CDS, &mut h);
    let out = h.respond(
        0,
        CDS,
        "2",
        "n2",
        vec![ok("x", "X"), unnamed(CDS, "bad bytes")],
    );
    assert_eq!(events(&out), vec![]);
    assert!(sends(&out).pop().unwrap().1.is_nack());
}

#[test]
fn ignore_resource_deletion_keeps_serving_and_reports_once() {
    let mut config = servers(1);
    config.servers = vec![ServerConfig {
        ignore_resource_deletion: true,
        ..ServerConfig::new("server-0")
    }];
    let mut h = Harness::new(config);
    received(LDS, &mut h);

    let ignored = WatchError::DeletionIgnored {
        server_uri: "server-0".to_owned(),
    };
    let out = h.respond(0, LDS, "2", "n2", vec![ok("x", "X")]);
    assert_eq!(events(&out), vec![error(LDS, "y", ignored, true)]);
    let out = h.respond(0, LDS, "3", "n3", vec![ok("x", "X")]);
    assert_eq!(events(&out), vec![]);
    let y = h.xds.resource(LDS, "y").unwrap();
    assert_eq!(y.value.map(String::as_str), Some("Y"));
    assert!(y.deletion_ignored);

    // Back with the same value: nothing to tell watchers, and the condition clears.
    let out = h.respond(0, LDS, "4", "n4", vec![ok("x", "X"), ok("y", "Y")]);
    assert_eq!(events(&out), vec![]);
    assert!(!h.xds.resource(LDS, "y").unwrap().deletion_ignored);
}
