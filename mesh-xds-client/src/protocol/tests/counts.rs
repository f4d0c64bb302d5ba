//! Resource counts per authority, cache state and type (gRFC A78 `grpc.xds_client.resources`).

use std::time::Duration;

use super::support::*;
use crate::protocol::{CacheState, ResourceCounts};
use crate::resource::ResourceKind;

const TIMEOUT: Duration = Duration::from_secs(15);

/// Every non-zero count as `(authority, state, kind, count)`.
fn all(counts: &ResourceCounts) -> Vec<(Option<&str>, CacheState, ResourceKind, u64)> {
    counts
        .iter()
        .map(|(group, count)| {
            (
                group.authority.as_deref(),
                group.cache_state,
                group.kind,
                count,
            )
        })
        .collect()
}

#[test]
fn every_cache_state_is_counted_as_resources_move_through_it() {
    let mut h = Harness::single();
    assert!(h.xds.resource_counts().is_empty());
    for name in ["a", "b", "c", "gone"] {
        h.subscribe(CDS, name);
    }
    h.subscribe(LDS, "l");
    assert_eq!(
        all(&h.xds.resource_counts()),
        vec![
            (None, CacheState::Requested, LDS, 1),
            (None, CacheState::Requested, CDS, 4),
        ],
        "subscribed, nothing received yet"
    );

    h.connect(0);
    h.respond(0, LDS, "1", "n1", vec![ok("l", "L")]);
    h.respond(
        0,
        CDS,
        "1",
        "n2",
        vec![ok("a", "A"), ok("b", "B"), bad(CDS, "c", "broken")],
    );
    assert_eq!(
        all(&h.xds.resource_counts()),
        vec![
            (None, CacheState::Requested, CDS, 1),
            (None, CacheState::Acked, LDS, 1),
            (None, CacheState::Acked, CDS, 2),
            (None, CacheState::Nacked, CDS, 1),
        ],
        "\"c\" was never valid: nacked; \"gone\" still awaited"
    );

    h.respond(
        0,
        CDS,
        "2",
        "n3",
        vec![
            ok("a", "A"),
            bad(CDS, "b", "broken"),
            bad(CDS, "c", "broken"),
        ],
    );
    let counts = h.xds.resource_counts();
    assert_eq!(counts.get(None, CacheState::NackedButCached, CDS), 1);
    assert_eq!(counts.get(None, CacheState::Nacked, CDS), 1);
    assert_eq!(counts.get(None, CacheState::Acked, CDS), 1);

    // The timer started when the stream was connected.
    h.advance(TIMEOUT);
    assert_eq!(
        all(&h.xds.resource_counts()),
        vec![
            (None, CacheState::DoesNotExist, CDS, 1),
            (None, CacheState::Acked, LDS, 1),
            (None, CacheState::Acked, CDS, 1),
            (None, CacheState::Nacked, CDS, 1),
            (None, CacheState::NackedButCached, CDS, 1),
        ]
    );

    // A valid update clears the NACKed states.
    h.respond(
        0,
        CDS,
        "3",
        "n4",
        vec![ok("a", "A"), ok("b", "B2"), ok("c", "C")],
    );
    let counts = h.xds.resource_counts();
    assert_eq!(counts.get(None, CacheState::Acked, CDS), 3);
    assert_eq!(counts.get(None, CacheState::Nacked, CDS), 0);
    assert_eq!(counts.get(None, CacheState::NackedButCached, CDS), 0);

    // Unsubscribed resources leave the counts.
    for name in ["a", "b", "c", "gone"] {
        h.unsubscribe(CDS, name);
    }
    assert_eq!(
        all(&h.xds.resource_counts()),
        vec![(None, CacheState::Acked, LDS, 1)]
    );
}

#[test]
fn a_cluster_deleted_by_the_server_counts_as_does_not_exist() {
    let mut h = Harness::single();
    h.subscribe(CDS, "a");
    h.subscribe(CDS, "b");
    h.connect(0);
    h.respond(0, CDS, "1", "n1", vec![ok("a", "A"), ok("b", "B")]);
    h.respond(0, CDS, "2", "n2", vec![ok("a", "A")]);
    let counts = h.xds.resource_counts();
    assert_eq!(counts.get(None, CacheState::Acked, CDS), 1);
    assert_eq!(counts.get(None, CacheState::DoesNotExist, CDS), 1);
}

#[test]
fn counts_are_per_authority_and_unroutable_names_are_not_counted() {
    let mut h = Harness::new(federated(
        &["default-server", "authority-server"],
        &[("a", &[1])],
    ));
    h.subscribe(LDS, "old-style");
    h.subscribe(LDS, "xdstp://a/envoy.config.listener.v3.Listener/x");
    h.subscribe(LDS, "xdstp://nowhere/envoy.config.listener.v3.Listener/y");
    h.subscribe(
        CDS,
        "xdstp://a/envoy.config.listener.v3.Listener/wrong-type",
    );
    h.connect(1);
    h.respond(
        1,
        LDS,
        "1",
        "n1",
        vec![ok("xdstp://a/envoy.config.listener.v3.Listener/x", "X")],
    );
    assert_eq!(
        all(&h.xds.resource_counts()),
        vec![
            (None, CacheState::Requested, LDS, 1),
            (Some("a"), CacheState::Acked, LDS, 1),
        ]
    );
}

#[test]
fn cache_states_are_labelled_as_a78_names_them() {
    let labels: Vec<&str> = CacheState::ALL.iter().map(|state| state.as_str()).collect();
    assert_eq!(
        labels,
        [
            "requested",
            "does_not_exist",
            "acked",
            "nacked",
            "nacked_but_cached"
        ]
    );
}
