//! Stream loss, reconnection and backoff (gRFC A57).

use std::time::Duration;

use mesh_core::rng::FastRng;

use super::support::*;
use crate::protocol::{BackoffConfig, Output, ServerId, StreamStatus, XdsState};

#[test]
fn new_stream_resends_last_accepted_versions_with_empty_nonces() {
    let mut h = Harness::single();
    h.subscribe(LDS, "l");
    h.subscribe(CDS, "c");
    h.connect(0);
    h.respond(0, LDS, "1", "n1", vec![ok("l", "L")]);
    h.respond(0, CDS, "7", "n2", vec![ok("c", "C")]);

    let out = h.fail(0);
    assert_eq!(
        out,
        vec![Output::Connect {
            stream: h.stream(0)
        }]
    );
    let out = h.connect(0);
    assert_eq!(
        out,
        vec![
            send(h.stream(0), request(LDS, &["l"], "1", "", None)),
            send(h.stream(0), request(CDS, &["c"], "7", "", None)),
        ]
    );
}

#[test]
fn nack_state_is_not_resent_on_a_new_stream() {
    let mut h = Harness::single();
    h.subscribe(CDS, "c");
    h.connect(0);
    h.respond(0, CDS, "1", "n1", vec![ok("c", "C")]);
    h.respond(0, CDS, "2", "n2", vec![bad(CDS, "c", "broken")]);
    h.fail(0);
    let out = h.connect(0);
    assert_eq!(
        out,
        vec![send(h.stream(0), request(CDS, &["c"], "1", "", None))]
    );
}

#[test]
fn types_with_no_names_are_not_requested_on_a_new_stream() {
    let mut h = Harness::single();
    h.subscribe(LDS, "l");
    h.subscribe(CDS, "c");
    h.connect(0);
    h.respond(0, LDS, "1", "n1", vec![ok("l", "L")]);
    h.unsubscribe(CDS, "c");
    h.fail(0);
    let out = h.connect(0);
    assert_eq!(
        out,
        vec![send(h.stream(0), request(LDS, &["l"], "1", "", None))]
    );
}

#[test]
fn failures_before_any_response_back_off_exponentially() {
    let mut h = Harness::single();
    h.subscribe(LDS, "l");
    let mut delays = Vec::new();
    for _ in 0..4 {
        h.connect(0);
        assert_eq!(connects(&h.fail(0)), Vec::<usize>::new());
        let delay = h.backoff_delay(0);
        delays.push(delay.as_secs_f64());
        assert_eq!(h.advance(delay - Duration::from_millis(1)), vec![]);
        assert_eq!(connects(&h.advance(Duration::from_millis(1))), vec![0]);
    }
    let expected = [1.0, 1.6, 2.56, 4.096];
    for (delay, expected) in delays.iter().zip(expected) {
        assert!((delay - expected).abs() < 1e-6, "{delays:?}");
    }
}

#[test]
fn backoff_is_capped_and_jittered() {
    let mut config = servers(1);
    config.backoff = BackoffConfig {
        initial: Duration::from_secs(100),
        ..BackoffConfig::default()
    };
    let mut h = Harness::new(config);
    h.subscribe(LDS, "l");
    for attempt in 0..6 {
        h.connect(0);
        h.fail(0);
        let delay = h.backoff_delay(0).as_secs_f64();
        let nominal = if attempt == 0 { 100.0 } else { 120.0 };
        assert!(
            delay >= nominal * 0.8 && delay <= nominal * 1.2,
            "{attempt}: {delay}"
        );
        h.advance(h.backoff_delay(0));
    }
}

#[test]
fn jitter_comes_from_the_injected_rng() {
    let run = |seed| {
        let mut xds: XdsState<String> =
            XdsState::new(servers_with_jitter(), FastRng::from_seed(seed)).unwrap();
        let now = std::time::Instant::now();
        xds.subscribe(LDS, "l", now);
        let stream = xds.current_stream(ServerId(0)).unwrap();
        xds.stream_failed(stream, "refused", now);
        xds.next_deadline().unwrap() - now
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

fn servers_with_jitter() -> crate::protocol::ProtocolConfig {
    let mut config = servers(1);
    config.backoff = BackoffConfig::default();
    config
}

#[test]
fn failure_after_a_response_reconnects_at_once_and_resets_backoff() {
    let mut h = Harness::single();
    h.subscribe(LDS, "l");
    h.connect(0);
    h.fail(0);
    h.advance(h.backoff_delay(0));
    h.connect(0);
    h.fail(0);
    assert_eq!(h.backoff_delay(0), Duration::from_millis(1600));
    h.advance(h.backoff_delay(0));

    h.connect(0);
    h.respond(0, LDS, "1", "n1", vec![ok("l", "L")]);
    let out = h.fail(0);
    assert_eq!(
        out,
        vec![Output::Connect {
            stream: h.stream(0)
        }]
    );
    h.connect(0);
    h.fail(0);
    assert_eq!(h.backoff_delay(0), Duration::from_secs(1));
}

#[test]
fn cache_survives_stream_loss() {
    let mut h = Harness::single();
    h.subscribe(LDS, "l");
    h.connect(0);
    h.respond(0, LDS, "1", "n1", vec![ok("l", "L")]);

    assert_eq!(events(&h.fail(0)), vec![]);
    h.connect(0);
    // A connectivity error reaches the watcher as ambient: it keeps its value (gRFC A57, A88).
    assert_eq!(
        events(&h.fail(0)),
        vec![error(LDS, "l", unreachable(0), true)]
    );
    let out = h.advance(Duration::from_secs(60));
    assert!(events(&out).is_empty(), "{out:?}");
    assert_eq!(
        h.xds.resource(LDS, "l").unwrap().value.map(String::as_str),
        Some("L")
    );
}

#[test]
fn connectivity_error_is_reported_once_per_outage() {
    let mut h = Harness::single();
    h.subscribe(LDS, "l");
    h.connect(0);
    assert_eq!(
        events(&h.fail(0)),
        vec![error(LDS, "l", unreachable(0), false)]
    );
    h.advance(h.backoff_delay(0));
    assert_eq!(events(&h.fail(0)), vec![]);

    h.advance(h.backoff_delay(0));
    h.connect(0);
    h.respond(0, LDS, "1", "n1", vec![ok("l", "L")]);
    h.fail(0);
    h.connect(0);
    assert_eq!(
        events(&h.fail(0)),
        vec![error(LDS, "l", unreachable(0), true)]
    );
}

#[test]
fn subscribing_while_unreachable_reports_the_connectivity_error() {
    let mut h = Harness::single();
    h.subscribe(LDS, "l");
    h.fail(0);
    let out = h.subscribe(CDS, "c");
    assert_eq!(out, vec![error(CDS, "c", unreachable(0), false)]);
}

#[test]
fn events_of_replaced_streams_are_ignored() {
    let mut h = Harness::single();
    h.subscribe(CDS, "c");
    h.connect(0);
    h.respond(0, CDS, "1", "n1", vec![ok("c", "C1")]);
    let old = h.stream(0);
    h.fail(0);
    assert_ne!(h.stream(0), old);

    h.xds.stream_connected(old, h.now);
    h.xds
        .response(old, response(CDS, "2", "n2", vec![ok("c", "C2")]), h.now);
    h.xds.stream_failed(old, "late", h.now);
    assert_eq!(h.drain(), vec![]);
    assert!(matches!(
        h.xds.stream_status(ServerId(0)),
        StreamStatus::Connecting(_)
    ));
}
