//! One test per rejection rule, each asserting the exact problem text with its field path.

use envoy_types::pb::envoy::config::core::v3::address::Address as PbAddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, Pipe, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::cluster_load_assignment::Policy;
use envoy_types::pb::envoy::config::endpoint::v3::cluster_load_assignment::policy::DropOverload as PbDrop;
use envoy_types::pb::envoy::config::endpoint::v3::endpoint::AdditionalAddress;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::locality_lb_endpoints::LbConfig;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, LbEndpoint, LedsClusterLocalityConfig,
};

use super::test_support::*;
use super::tests::{drop_overload, validate};
use super::validate_cluster_load_assignment;
use crate::resource::{ResourceKind, ValidationContext};

/// Asserts `cla` is rejected with exactly `problems`, in order.
#[track_caller]
fn assert_rejected(cla: &ClusterLoadAssignment, problems: &[&str]) {
    let err = validate(cla).expect_err("the assignment should be rejected");
    assert_eq!(err.kind, ResourceKind::ClusterLoadAssignment);
    assert_eq!(err.problems, problems);
}

#[test]
fn priority_gap_is_rejected_naming_the_missing_priority() {
    let assignment = cla(
        "x",
        vec![
            locality("r", "a", 0, Some(1), vec![lb_endpoint("10.0.0.1", 80)]),
            locality("r", "b", 0, Some(1), vec![lb_endpoint("10.0.0.2", 80)]),
            locality("r", "c", 2, Some(1), vec![lb_endpoint("10.0.0.3", 80)]),
        ],
    );
    let err = validate(&assignment).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"ClusterLoadAssignment "x": endpoints[2].priority: priorities must be contiguous from 0, missing 1"#
    );
}

#[test]
fn several_priority_gaps_are_listed_as_ranges() {
    let assignment = cla(
        "x",
        vec![
            locality("r", "a", 5, Some(1), vec![lb_endpoint("10.0.0.1", 80)]),
            locality("r", "b", 3, Some(1), vec![lb_endpoint("10.0.0.2", 80)]),
            locality("r", "c", 0, Some(1), vec![lb_endpoint("10.0.0.3", 80)]),
        ],
    );
    assert_rejected(
        &assignment,
        &["endpoints[1].priority: priorities must be contiguous from 0, missing 1-2, 4"],
    );
}

#[test]
fn priority_gap_left_by_a_dropped_locality_is_rejected() {
    let assignment = cla(
        "x",
        vec![
            locality("r", "a", 0, Some(1), vec![lb_endpoint("10.0.0.1", 80)]),
            locality("r", "b", 1, None, vec![lb_endpoint("10.0.0.2", 80)]),
            locality("r", "c", 2, Some(1), vec![lb_endpoint("10.0.0.3", 80)]),
        ],
    );
    assert_rejected(
        &assignment,
        &["endpoints[2].priority: priorities must be contiguous from 0, missing 1"],
    );
}

#[test]
fn duplicate_locality_within_a_priority_is_rejected() {
    let assignment = cla(
        "x",
        vec![
            locality("r", "a", 0, Some(1), vec![lb_endpoint("10.0.0.1", 80)]),
            locality("r", "a", 1, Some(1), vec![lb_endpoint("10.0.0.2", 80)]),
            locality("r", "a", 0, Some(1), vec![lb_endpoint("10.0.0.3", 80)]),
        ],
    );
    assert_rejected(
        &assignment,
        &[
            r#"endpoints[2].locality: duplicate locality {region="r", zone="a", sub_zone=""} in priority 0 (also at endpoints[0])"#,
        ],
    );
}

#[test]
fn duplicate_address_across_priorities_is_rejected() {
    let assignment = cla(
        "x",
        vec![
            locality("r", "a", 0, Some(1), vec![lb_endpoint("10.0.0.1", 80)]),
            locality("r", "b", 1, Some(1), vec![lb_endpoint("10.0.0.1", 80)]),
        ],
    );
    assert_rejected(
        &assignment,
        &[
            "endpoints[1].lb_endpoints[0].endpoint.address: duplicate endpoint address 10.0.0.1:80 \
           (also at endpoints[0].lb_endpoints[0].endpoint.address)",
        ],
    );
}

#[test]
fn duplicate_additional_address_is_rejected() {
    let mut endpoint = lb_endpoint("10.0.0.1", 80);
    inner(&mut endpoint).additional_addresses = vec![AdditionalAddress {
        address: Some(socket_address("10.0.0.2", 80)),
    }];
    let assignment = cla(
        "x",
        vec![locality(
            "r",
            "a",
            0,
            Some(1),
            vec![endpoint, lb_endpoint("10.0.0.2", 80)],
        )],
    );
    assert_rejected(
        &assignment,
        &[
            "endpoints[0].lb_endpoints[1].endpoint.address: duplicate endpoint address 10.0.0.2:80 \
           (also at endpoints[0].lb_endpoints[0].endpoint.additional_addresses[0].address)",
        ],
    );
}

#[test]
fn host_name_address_is_rejected() {
    let assignment = cla(
        "x",
        vec![locality(
            "r",
            "a",
            0,
            Some(1),
            vec![lb_endpoint("backend.local", 80)],
        )],
    );
    assert_rejected(
        &assignment,
        &[
            r#"endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "backend.local" is not an IP address"#,
        ],
    );
}

#[test]
fn empty_address_is_rejected() {
    let assignment = cla(
        "x",
        vec![locality("r", "a", 0, Some(1), vec![lb_endpoint("", 80)])],
    );
    assert_rejected(
        &assignment,
        &[
            "endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: field not present",
        ],
    );
}

#[test]
fn port_above_65535_is_rejected() {
    let assignment = cla(
        "x",
        vec![locality(
            "r",
            "a",
            0,
            Some(1),
            vec![lb_endpoint("10.0.0.1", 65_536)],
        )],
    );
    assert_rejected(
        &assignment,
        &[
            "endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: 65536 is out of range (0-65535)",
        ],
    );
}

fn endpoint_with_socket(socket: SocketAddress) -> LbEndpoint {
    lb_endpoint_at(Address {
        address: Some(PbAddressKind::SocketAddress(socket)),
    })
}

#[test]
fn missing_port_is_rejected() {
    let endpoint = endpoint_with_socket(SocketAddress {
        address: "10.0.0.1".to_owned(),
        ..Default::default()
    });
    assert_rejected(
        &cla("x", vec![locality("r", "a", 0, Some(1), vec![endpoint])]),
        &[
            "endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: field not present",
        ],
    );
}

#[test]
fn named_port_is_rejected() {
    let endpoint = endpoint_with_socket(SocketAddress {
        address: "10.0.0.1".to_owned(),
        port_specifier: Some(PortSpecifier::NamedPort("http".to_owned())),
        ..Default::default()
    });
    assert_rejected(
        &cla("x", vec![locality("r", "a", 0, Some(1), vec![endpoint])]),
        &[
            r#"endpoints[0].lb_endpoints[0].endpoint.address.socket_address.named_port: named port "http" is not supported"#,
        ],
    );
}

#[test]
fn custom_resolver_and_udp_are_rejected() {
    let endpoint = endpoint_with_socket(SocketAddress {
        address: "10.0.0.1".to_owned(),
        port_specifier: Some(PortSpecifier::PortValue(53)),
        resolver_name: "my-resolver".to_owned(),
        protocol: 1,
        ..Default::default()
    });
    assert_rejected(
        &cla("x", vec![locality("r", "a", 0, Some(1), vec![endpoint])]),
        &[
            r#"endpoints[0].lb_endpoints[0].endpoint.address.socket_address.resolver_name: custom resolver "my-resolver" is not supported"#,
            "endpoints[0].lb_endpoints[0].endpoint.address.socket_address.protocol: only TCP is supported",
        ],
    );
}

#[test]
fn pipe_address_is_rejected() {
    let endpoint = lb_endpoint_at(Address {
        address: Some(PbAddressKind::Pipe(Pipe {
            path: "/tmp/sock".to_owned(),
            mode: 0,
        })),
    });
    assert_rejected(
        &cla("x", vec![locality("r", "a", 0, Some(1), vec![endpoint])]),
        &[
            "endpoints[0].lb_endpoints[0].endpoint.address.pipe: unix domain socket endpoints are not supported",
        ],
    );
}

#[test]
fn missing_endpoint_and_address_are_rejected() {
    let no_endpoint = LbEndpoint::default();
    let mut no_address = lb_endpoint("10.0.0.1", 80);
    inner(&mut no_address).address = None;
    let named = LbEndpoint {
        host_identifier: Some(HostIdentifier::EndpointName("e1".to_owned())),
        ..Default::default()
    };
    assert_rejected(
        &cla(
            "x",
            vec![locality(
                "r",
                "a",
                0,
                Some(1),
                vec![no_endpoint, no_address, named],
            )],
        ),
        &[
            "endpoints[0].lb_endpoints[0].endpoint: field not present",
            "endpoints[0].lb_endpoints[1].endpoint.address: field not present",
            "endpoints[0].lb_endpoints[2].endpoint_name: named endpoints are not supported",
        ],
    );
}

#[test]
fn endpoint_weight_zero_is_rejected() {
    let assignment = cla(
        "x",
        vec![locality(
            "r",
            "a",
            0,
            Some(1),
            vec![weighted(lb_endpoint("10.0.0.1", 80), 0)],
        )],
    );
    assert_rejected(
        &assignment,
        &["endpoints[0].lb_endpoints[0].load_balancing_weight: must be at least 1"],
    );
}

#[test]
fn locality_weight_sum_above_u32_is_rejected() {
    let assignment = cla(
        "x",
        vec![
            locality(
                "r",
                "a",
                0,
                Some(u32::MAX),
                vec![lb_endpoint("10.0.0.1", 80)],
            ),
            locality("r", "b", 0, Some(1), vec![lb_endpoint("10.0.0.2", 80)]),
            locality(
                "r",
                "c",
                1,
                Some(u32::MAX),
                vec![lb_endpoint("10.0.0.3", 80)],
            ),
        ],
    );
    assert_rejected(
        &assignment,
        &[
            "endpoints[1].load_balancing_weight: sum of locality weights in priority 0 exceeds 4294967295",
        ],
    );
}

#[test]
fn endpoint_weight_sum_above_u32_is_rejected() {
    let assignment = cla(
        "x",
        vec![locality(
            "r",
            "a",
            0,
            Some(1),
            vec![
                weighted(lb_endpoint("10.0.0.1", 80), u32::MAX),
                weighted(lb_endpoint("10.0.0.2", 80), 1),
                weighted(lb_endpoint("10.0.0.3", 80), 1),
            ],
        )],
    );
    assert_rejected(
        &assignment,
        &[
            "endpoints[0].lb_endpoints[1].load_balancing_weight: sum of endpoint weights in the locality exceeds 4294967295",
        ],
    );
}

#[test]
fn leds_is_rejected() {
    let mut leds = locality("r", "a", 0, Some(1), vec![]);
    leds.lb_config = Some(LbConfig::LedsClusterLocalityConfig(
        LedsClusterLocalityConfig::default(),
    ));
    assert_rejected(
        &cla("x", vec![leds]),
        &["endpoints[0].leds_cluster_locality_config: LEDS is not supported"],
    );
}

#[test]
fn invalid_drop_overloads_are_rejected() {
    let mut assignment = cla("x", vec![]);
    assignment.policy = Some(Policy {
        drop_overloads: vec![
            drop_overload("", 1, 0),
            PbDrop {
                category: "lb".to_owned(),
                drop_percentage: None,
            },
            drop_overload("lb", 1, 7),
        ],
        ..Default::default()
    });
    assert_rejected(
        &assignment,
        &[
            "policy.drop_overloads[0].category: must not be empty",
            "policy.drop_overloads[1].drop_percentage: field not present",
            "policy.drop_overloads[2].drop_percentage: unknown denominator 7",
        ],
    );
}

#[test]
fn overprovisioning_factor_zero_is_rejected() {
    let mut assignment = cla("x", vec![]);
    assignment.policy = Some(Policy {
        overprovisioning_factor: Some(u32v(0)),
        ..Default::default()
    });
    assert_rejected(
        &assignment,
        &["policy.overprovisioning_factor: must be greater than 0"],
    );
}

#[test]
fn empty_cluster_name_is_rejected_without_a_name() {
    let err = validate(&cla("", vec![])).unwrap_err();
    assert_eq!(err.name, None);
    assert_eq!(
        err.to_string(),
        "ClusterLoadAssignment (name unreadable): cluster_name: must not be empty"
    );
}

#[test]
fn all_problems_are_reported_together() {
    let assignment = cla(
        "x",
        vec![
            locality(
                "r",
                "a",
                0,
                Some(1),
                vec![
                    lb_endpoint("not-an-ip", 80),
                    lb_endpoint("10.0.0.1", 70_000),
                ],
            ),
            locality(
                "r",
                "b",
                2,
                Some(1),
                vec![weighted(lb_endpoint("10.0.0.2", 80), 0)],
            ),
        ],
    );
    let err = validate(&assignment).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ClusterLoadAssignment \"x\": \
         endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: \"not-an-ip\" is not an IP address; \
         endpoints[0].lb_endpoints[1].endpoint.address.socket_address.port_value: 70000 is out of range (0-65535); \
         endpoints[1].lb_endpoints[0].load_balancing_weight: must be at least 1; \
         endpoints[1].priority: priorities must be contiguous from 0, missing 1"
    );
}

#[test]
fn garbage_bytes_are_a_decode_error() {
    let err =
        validate_cluster_load_assignment(&[0xff, 0xff, 0xff, 0x0f], &ValidationContext::default())
            .unwrap_err();
    assert_eq!(err.kind, ResourceKind::ClusterLoadAssignment);
    assert_eq!(err.name, None);
    assert!(
        err.problems[0].starts_with("cannot decode ClusterLoadAssignment: "),
        "{err}"
    );
}
