use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::HealthStatus as PbHealth;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::cluster_load_assignment::Policy;
use envoy_types::pb::envoy::config::endpoint::v3::cluster_load_assignment::policy::DropOverload as PbDrop;
use envoy_types::pb::envoy::config::endpoint::v3::endpoint::AdditionalAddress;
use envoy_types::pb::envoy::r#type::v3::FractionalPercent as PbFraction;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value};
use mesh_core::endpoint::{
    DropOverload, Endpoint, EndpointSet, HealthStatus, LocalityEndpoints, Metadata, MetadataValue,
};
use mesh_core::fraction::{Denominator, FractionalPercent};
use prost::Message as _;

use super::test_support::*;
use super::validate_cluster_load_assignment;
use crate::resource::ValidationContext;

pub(super) fn validate(
    cla: &ClusterLoadAssignment,
) -> Result<EndpointSet, crate::resource::ResourceError> {
    validate_cluster_load_assignment(&cla.encode_to_vec(), &ValidationContext::default()).map(
        |(name, set)| {
            assert_eq!(name, cla.cluster_name);
            set
        },
    )
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(super) fn drop_overload(category: &str, numerator: u32, denominator: i32) -> PbDrop {
    PbDrop {
        category: category.to_owned(),
        drop_percentage: Some(PbFraction {
            numerator,
            denominator,
        }),
    }
}

#[test]
fn two_priorities_three_localities_convert_to_the_expected_endpoint_set() {
    let mut with_metadata = lb_endpoint("10.0.0.1", 8080);
    with_metadata.metadata = Some(string_metadata("envoy.lb", "canary", "true"));
    inner(&mut with_metadata).hostname = "pod-a.greeter".to_owned();
    let mut assignment = cla(
        "greeter",
        vec![
            locality(
                "us-east1",
                "us-east1-b",
                0,
                Some(3),
                vec![
                    with_health(weighted(with_metadata, 10), PbHealth::Healthy),
                    with_health(lb_endpoint("10.0.0.2", 8080), PbHealth::Unhealthy),
                ],
            ),
            locality(
                "us-east1",
                "us-east1-c",
                0,
                Some(1),
                vec![with_health(
                    lb_endpoint("10.0.1.1", 8080),
                    PbHealth::Draining,
                )],
            ),
            locality(
                "us-west1",
                "us-west1-a",
                1,
                Some(5),
                vec![
                    with_health(lb_endpoint("2001:db8::1", 9090), PbHealth::Degraded),
                    weighted(lb_endpoint("10.1.0.1", 9090), 2),
                ],
            ),
        ],
    );
    assignment.policy = Some(Policy {
        drop_overloads: vec![drop_overload("throttle", 5, 0), drop_overload("lb", 250, 2)],
        overprovisioning_factor: Some(u32v(150)),
        ..Default::default()
    });

    let expected = EndpointSet::new(
        "greeter",
        vec![
            LocalityEndpoints::new(
                core_locality("us-east1", "us-east1-b"),
                0,
                3,
                vec![
                    Endpoint::new(addr("10.0.0.1:8080"))
                        .with_health(HealthStatus::Healthy)
                        .with_weight(10_u32)
                        .with_hostname(Arc::<str>::from("pod-a.greeter"))
                        .with_metadata(Metadata::new(BTreeMap::from([(
                            Arc::<str>::from("envoy.lb"),
                            MetadataValue::Struct(
                                BTreeMap::from([(
                                    Arc::<str>::from("canary"),
                                    MetadataValue::String("true".into()),
                                )])
                                .into(),
                            ),
                        )]))),
                    Endpoint::new(addr("10.0.0.2:8080")).with_health(HealthStatus::Unhealthy),
                ],
            ),
            LocalityEndpoints::new(
                core_locality("us-east1", "us-east1-c"),
                0,
                1,
                vec![Endpoint::new(addr("10.0.1.1:8080")).with_health(HealthStatus::Draining)],
            ),
            LocalityEndpoints::new(
                core_locality("us-west1", "us-west1-a"),
                1,
                5,
                vec![
                    Endpoint::new(addr("[2001:db8::1]:9090")).with_health(HealthStatus::Degraded),
                    Endpoint::new(addr("10.1.0.1:9090")).with_weight(2_u32),
                ],
            ),
        ],
    )
    .with_drop_overloads(vec![
        DropOverload::new("throttle", FractionalPercent::new(5, Denominator::Hundred)),
        DropOverload::new("lb", FractionalPercent::new(250, Denominator::Million)),
    ])
    .with_overprovisioning_factor(150_u32);

    assert_eq!(validate(&assignment).unwrap(), expected);
}

#[test]
fn empty_assignment_is_valid_and_has_no_endpoints() {
    let set = validate(&cla("empty", vec![])).unwrap();
    assert_eq!(set.endpoint_count(), 0);
    assert_eq!(
        set.overprovisioning_factor,
        EndpointSet::DEFAULT_OVERPROVISIONING_FACTOR
    );
}

#[test]
fn locality_without_weight_or_with_weight_zero_is_dropped_not_rejected() {
    let assignment = cla(
        "c",
        vec![
            locality(
                "r",
                "unweighted",
                0,
                None,
                vec![lb_endpoint("10.0.0.1", 80)],
            ),
            locality("r", "zero", 0, Some(0), vec![lb_endpoint("10.0.0.2", 80)]),
            locality("r", "kept", 0, Some(1), vec![lb_endpoint("10.0.0.3", 80)]),
        ],
    );
    let set = validate(&assignment).unwrap();
    assert_eq!(set.localities.len(), 1);
    assert_eq!(set.localities[0].locality, core_locality("r", "kept"));
}

#[test]
fn endpoint_weight_defaults_to_one() {
    let set = validate(&cla(
        "c",
        vec![locality(
            "r",
            "z",
            0,
            Some(1),
            vec![lb_endpoint("10.0.0.1", 80)],
        )],
    ))
    .unwrap();
    assert_eq!(set.localities[0].endpoints[0].weight, 1);
}

#[test]
fn unknown_health_status_value_is_unusable() {
    let mut endpoint = lb_endpoint("10.0.0.1", 80);
    endpoint.health_status = 42;
    let set = validate(&cla(
        "c",
        vec![locality("r", "z", 0, Some(1), vec![endpoint])],
    ))
    .unwrap();
    assert!(!set.localities[0].endpoints[0].health.is_usable());
}

#[test]
fn additional_addresses_are_validated_but_only_the_primary_is_kept() {
    let mut endpoint = lb_endpoint("10.0.0.1", 80);
    inner(&mut endpoint).additional_addresses = vec![AdditionalAddress {
        address: Some(socket_address("2001:db8::1", 80)),
    }];
    let set = validate(&cla(
        "c",
        vec![locality("r", "z", 0, Some(1), vec![endpoint])],
    ))
    .unwrap();
    assert_eq!(
        set.localities[0].endpoints[0].address,
        addr("10.0.0.1:80").into()
    );
}

#[test]
fn metadata_values_of_every_kind_are_converted() {
    let value = |kind| Value { kind: Some(kind) };
    let nested = Struct {
        fields: [("n".to_owned(), value(Kind::NumberValue(1.5)))]
            .into_iter()
            .collect(),
    };
    let fields = [
        ("null".to_owned(), value(Kind::NullValue(0))),
        ("unset".to_owned(), Value { kind: None }),
        ("flag".to_owned(), value(Kind::BoolValue(true))),
        (
            "list".to_owned(),
            value(Kind::ListValue(ListValue {
                values: vec![string_value("a")],
            })),
        ),
        ("nested".to_owned(), value(Kind::StructValue(nested))),
    ];
    let pb = envoy_types::pb::envoy::config::core::v3::Metadata {
        filter_metadata: [(
            "f".to_owned(),
            Struct {
                fields: fields.into_iter().collect(),
            },
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let metadata = super::metadata(Some(&pb));
    let Some(MetadataValue::Struct(f)) = metadata.get("f") else {
        panic!("filter f missing: {metadata:?}");
    };
    assert_eq!(f.get("null"), Some(&MetadataValue::Null));
    assert_eq!(f.get("unset"), Some(&MetadataValue::Null));
    assert_eq!(f.get("flag"), Some(&MetadataValue::Bool(true)));
    assert_eq!(
        f.get("list"),
        Some(&MetadataValue::from(vec![MetadataValue::String(
            "a".into()
        )]))
    );
    assert_eq!(
        f.get("nested"),
        Some(&MetadataValue::Struct(
            BTreeMap::from([(Arc::<str>::from("n"), MetadataValue::Number(1.5))]).into()
        ))
    );
}
