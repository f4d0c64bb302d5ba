use super::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn parses_every_unit_and_rejects_malformed_values() {
    assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_grpc_timeout(b"2M"), Some(Duration::from_secs(120)));
    assert_eq!(parse_grpc_timeout(b"3S"), Some(Duration::from_secs(3)));
    assert_eq!(parse_grpc_timeout(b"250m"), Some(250 * MS));
    assert_eq!(parse_grpc_timeout(b"7u"), Some(Duration::from_micros(7)));
    assert_eq!(
        parse_grpc_timeout(b"99999999n"),
        Some(Duration::from_nanos(99_999_999))
    );
    for bad in [&b""[..], b"S", b"123456789S", b"12x", b"-1S", b"1.5S"] {
        assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
    }
}

#[test]
fn formatting_round_trips_within_one_unit() {
    for timeout in [
        MS,
        250 * MS,
        Duration::from_secs(90),
        Duration::from_nanos(1),
        Duration::from_secs(400_000),
    ] {
        let value = format_grpc_timeout(timeout);
        let parsed = parse_grpc_timeout(value.as_bytes()).unwrap();
        assert!(parsed >= timeout, "{timeout:?} -> {value:?}");
    }
    assert_eq!(format_grpc_timeout(50 * MS), "50000000n");
    assert_eq!(format_grpc_timeout(250 * MS), "250000u");
    assert_eq!(format_grpc_timeout(Duration::from_secs(1000)), "1000000m");
}

fn action(max: Option<Duration>, header_max: Option<Duration>) -> RouteAction {
    RouteAction::cluster("c")
        .with_max_stream_duration(max)
        .with_grpc_timeout_header_max(header_max)
}

#[test]
fn the_smaller_of_the_route_limit_and_the_header_applies() {
    let route = action(Some(100 * MS), None);
    assert_eq!(
        request_timeout(&route, None, Some(50 * MS), true),
        Some(50 * MS)
    );
    assert_eq!(
        request_timeout(&route, None, Some(500 * MS), true),
        Some(100 * MS)
    );
    assert_eq!(request_timeout(&route, None, None, true), Some(100 * MS));
}

#[test]
fn the_listener_limit_applies_when_the_route_sets_none() {
    let route = action(None, None);
    assert_eq!(
        request_timeout(&route, Some(70 * MS), None, false),
        Some(70 * MS)
    );
    assert_eq!(request_timeout(&route, None, None, false), None);
    assert_eq!(
        request_timeout(&route, None, Some(5 * MS), true),
        Some(5 * MS)
    );
}

#[test]
fn grpc_timeout_header_max_stands_in_for_max_stream_duration_for_grpc() {
    let route = action(Some(100 * MS), Some(20 * MS));
    assert_eq!(
        request_timeout(&route, None, Some(50 * MS), true),
        Some(20 * MS)
    );
    assert_eq!(
        request_timeout(&route, None, Some(10 * MS), true),
        Some(10 * MS)
    );
    // Plain HTTP ignores the header cap.
    assert_eq!(request_timeout(&route, None, None, false), Some(100 * MS));
}

#[test]
fn zero_means_no_limit() {
    let route = action(Some(100 * MS), Some(Duration::ZERO));
    assert_eq!(
        request_timeout(&route, None, Some(500 * MS), true),
        Some(500 * MS)
    );
    assert_eq!(request_timeout(&route, None, None, true), None);
    let route = action(Some(Duration::ZERO), None);
    assert_eq!(request_timeout(&route, Some(70 * MS), None, false), None);
}
