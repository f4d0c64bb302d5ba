#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]

use super::test_support::*;
use super::*;
use crate::endpoint::{DropOverload, HealthStatus};
use crate::fraction::FractionalPercent;
use crate::rng::FastRng;

#[test]
fn lowest_usable_priority_is_active() {
    // Listed out of order: the priority number decides, not the position.
    let set = set(vec![
        locality("p1", 1, 1, healthy(2)),
        locality("p0", 0, 1, healthy(2)),
        locality("p2", 2, 1, healthy(2)),
    ]);
    let picker = EndpointPicker::build_from_health(&set);
    assert_eq!(picker.active_priority(), Some(0));
    assert_eq!(picker.active_localities().collect::<Vec<_>>(), vec![1]);
    assert_eq!(localities_picked(&tally(&picker, 1)), vec![1]);
    assert_eq!(picker.usable_count(), 2);
}

#[test]
fn fails_over_when_every_p0_endpoint_is_unhealthy() {
    let set = set(vec![
        locality(
            "p0",
            0,
            1,
            vec![
                endpoint(HealthStatus::Unhealthy, 1),
                endpoint(HealthStatus::Draining, 1),
            ],
        ),
        locality("p1", 1, 1, healthy(2)),
    ]);
    let picker = EndpointPicker::build_from_health(&set);
    assert_eq!(picker.active_priority(), Some(1));
    assert_eq!(localities_picked(&tally(&picker, 2)), vec![1]);
}

#[test]
fn fails_over_when_usable_excludes_every_p0_endpoint() {
    let set = set(vec![
        locality("p0", 0, 1, healthy(3)),
        locality("p1", 1, 1, healthy(2)),
    ]);
    let picker = EndpointPicker::build(&set, |at| at.locality != 0);
    assert_eq!(picker.active_priority(), Some(1));
    assert!(picker.usable_endpoints(0).is_empty());
    assert_eq!(picker.usable_endpoints(1), &[0, 1]);
    assert_eq!(localities_picked(&tally(&picker, 3)), vec![1]);
}

#[test]
fn fails_over_when_p0_has_only_zero_weights() {
    let zero_weight_locality = set(vec![
        locality("p0", 0, 0, healthy(3)),
        locality("p1", 1, 1, healthy(1)),
    ]);
    let zero_weight_endpoints = set(vec![
        locality("p0", 0, 5, vec![endpoint(HealthStatus::Healthy, 0)]),
        locality("p1", 1, 1, healthy(1)),
    ]);
    for set in [zero_weight_locality, zero_weight_endpoints] {
        let picker = EndpointPicker::build_from_health(&set);
        assert_eq!(picker.active_priority(), Some(1));
        assert_eq!(localities_picked(&tally(&picker, 4)), vec![1]);
    }
}

#[test]
fn traffic_returns_to_p0_when_it_heals() {
    let mut set = set(vec![
        locality("p0", 0, 1, vec![endpoint(HealthStatus::Unhealthy, 1)]),
        locality("p1", 1, 1, healthy(1)),
    ]);
    assert_eq!(
        EndpointPicker::build_from_health(&set).active_priority(),
        Some(1)
    );
    set.localities[0].endpoints[0].health = HealthStatus::Healthy;
    let healed = EndpointPicker::build_from_health(&set);
    assert_eq!(healed.active_priority(), Some(0));
    assert_eq!(localities_picked(&tally(&healed, 5)), vec![0]);
}

#[test]
fn unhealthy_draining_timeout_and_degraded_are_never_picked() {
    let set = set(vec![locality(
        "z",
        0,
        1,
        vec![
            endpoint(HealthStatus::Unhealthy, 100),
            endpoint(HealthStatus::Draining, 100),
            endpoint(HealthStatus::Timeout, 100),
            endpoint(HealthStatus::Degraded, 100),
            endpoint(HealthStatus::Healthy, 1),
        ],
    )]);
    let picker = EndpointPicker::build_from_health(&set);
    let tally = tally(&picker, 6);
    assert_eq!(
        tally.endpoints.keys().copied().collect::<Vec<_>>(),
        vec![EndpointRef::new(0, 4)]
    );
    assert_eq!(picker.usable_endpoints(0), &[4]);

    let only_unusable = crate::endpoint::EndpointSet::new(
        "c",
        vec![locality(
            "z",
            0,
            1,
            vec![
                endpoint(HealthStatus::Degraded, 1),
                endpoint(HealthStatus::Timeout, 1),
            ],
        )],
    );
    assert_eq!(
        EndpointPicker::build_from_health(&only_unusable).active_priority(),
        None
    );
}

#[test]
fn healthy_and_unknown_are_both_picked() {
    let set = set(vec![locality(
        "z",
        0,
        1,
        vec![
            endpoint(HealthStatus::Healthy, 1),
            endpoint(HealthStatus::Unknown, 1),
        ],
    )]);
    let tally = tally(&EndpointPicker::build_from_health(&set), 7);
    for endpoint in 0..2 {
        let count = tally.endpoints[&EndpointRef::new(0, endpoint)];
        assert!(
            (49_000..51_000).contains(&count),
            "endpoint {endpoint}: {count}"
        );
    }
}

#[test]
fn nothing_usable_anywhere_is_no_usable_endpoint() {
    let empty = set(vec![]);
    let unusable = set(vec![
        locality("a", 0, 1, vec![endpoint(HealthStatus::Unhealthy, 1)]),
        locality("b", 1, 0, healthy(2)),
        locality("c", 2, 1, vec![]),
    ]);
    for set in [empty, unusable] {
        let picker = EndpointPicker::build_from_health(&set);
        let mut rng = FastRng::from_seed(8);
        assert_eq!(picker.pick(&mut rng), Pick::NoUsableEndpoint);
        assert_eq!(picker.pick_locality(&mut rng), None);
        assert_eq!(picker.active_priority(), None);
        assert_eq!(picker.active_localities().count(), 0);
        assert_eq!(picker.usable_count(), 0);
    }
}

#[test]
fn full_drop_overload_always_drops_under_its_category() {
    let set = set(vec![locality("z", 0, 1, healthy(2))]).with_drop_overloads(vec![
        DropOverload::new("never", FractionalPercent::NEVER),
        DropOverload::new("throttle", FractionalPercent::ALWAYS),
        DropOverload::new("later", FractionalPercent::ALWAYS),
    ]);
    let tally = tally(&EndpointPicker::build_from_health(&set), 9);
    assert_eq!(tally.drops.get("throttle"), Some(&DRAWS));
    assert_eq!(tally.drops.len(), 1, "{:?}", tally.drops);
}

#[test]
fn drops_apply_even_when_nothing_is_usable() {
    let set =
        set(vec![]).with_drop_overloads(vec![DropOverload::new("lb", FractionalPercent::ALWAYS)]);
    let picker = EndpointPicker::build_from_health(&set);
    assert_eq!(
        picker.pick(&mut FastRng::from_seed(10)),
        Pick::Drop { category: "lb" }
    );
}

#[test]
fn zero_drop_overload_never_drops() {
    let set = set(vec![locality("z", 0, 1, healthy(1))])
        .with_drop_overloads(vec![DropOverload::new("lb", FractionalPercent::NEVER)]);
    let tally = tally(&EndpointPicker::build_from_health(&set), 11);
    assert!(tally.drops.is_empty());
    assert_eq!(tally.endpoints[&EndpointRef::new(0, 0)], DRAWS);
}

#[test]
fn thirty_percent_drop_overload_drops_about_thirty_percent() {
    let set =
        set(vec![locality("z", 0, 1, healthy(1))]).with_drop_overloads(vec![DropOverload::new(
            "lb",
            FractionalPercent::percent(30),
        )]);
    let tally = tally(&EndpointPicker::build_from_health(&set), 12);
    let drops = tally.drops["lb"];
    // Expect 30,000 with a standard deviation of about 145.
    assert!((29_000..31_000).contains(&drops), "{drops}");
    assert_eq!(drops + tally.endpoints[&EndpointRef::new(0, 0)], DRAWS);
}

#[test]
fn shares_follow_locality_and_endpoint_weights() {
    let weights = |zone| locality(zone, 0, 1, vec![]);
    let mut one = weights("one");
    let mut three = weights("three");
    three.weight = 3;
    for loc in [&mut one, &mut three] {
        loc.endpoints = [1, 2, 7]
            .iter()
            .map(|&w| endpoint(HealthStatus::Healthy, w))
            .collect();
    }
    let set = set(vec![one, three]);
    let picker = EndpointPicker::build_from_health(&set);
    let tally = tally(&picker, 13);
    for at in all_refs(&set) {
        let locality_share = [0.25, 0.75][at.locality];
        let endpoint_share = [0.1, 0.2, 0.7][at.endpoint];
        let want = locality_share * endpoint_share;
        let got = tally.endpoints.get(&at).copied().unwrap_or(0) as f64 / DRAWS as f64;
        assert!((got - want).abs() < 0.01, "{at:?}: {got} vs {want}");
        assert!((picker.endpoint_share(at) - want).abs() < 1e-12);
        assert!((expected_share(&set, &|_| true, at) - want).abs() < 1e-12);
    }
    assert_eq!(picker.effective_locality_weight(0), 1);
    assert_eq!(picker.effective_locality_weight(1), 3);
}

#[test]
fn availability_scales_a_partially_usable_locality() {
    // One of ten usable at the default factor of 140%: weight × 0.14, exactly 7:50 against a full locality.
    let mut sparse = healthy(10);
    for endpoint in &mut sparse[1..] {
        endpoint.health = HealthStatus::Unhealthy;
    }
    let set = set(vec![
        locality("sparse", 0, 1, sparse),
        locality("full", 0, 1, healthy(10)),
    ]);
    let picker = EndpointPicker::build_from_health(&set);
    assert_eq!(picker.effective_locality_weight(0), 7);
    assert_eq!(picker.effective_locality_weight(1), 50);
    let want = 0.14 / 1.14;
    assert!((picker.locality_share(0) - want).abs() < 1e-12);
    let got = tally(&picker, 14)
        .endpoints
        .get(&EndpointRef::new(0, 0))
        .copied()
        .unwrap_or(0) as f64
        / DRAWS as f64;
    assert!((got - want).abs() < 0.01, "{got} vs {want}");

    // Excluding endpoints with `usable` scales the same way.
    let full = set.localities[1].clone();
    let set = self::set(vec![full.clone(), full]);
    let picker = EndpointPicker::build(&set, |at| at.locality == 1 || at.endpoint == 0);
    assert_eq!(
        (
            picker.effective_locality_weight(0),
            picker.effective_locality_weight(1)
        ),
        (7, 50)
    );
}

#[test]
fn locality_shares_match_envoy_documentation_table() {
    // Envoy "Locality weighted load balancing": X weight 1, Y weight 2 and fully available, factor 1.4.
    for (usable_percent, want_x_percent) in [
        (100, 33.0),
        (70, 33.0),
        (69, 32.0),
        (50, 26.0),
        (25, 15.0),
        (0, 0.0),
    ] {
        let mut x = healthy(100);
        for endpoint in &mut x[usable_percent..] {
            endpoint.health = HealthStatus::Unhealthy;
        }
        let set = set(vec![
            locality("x", 0, 1, x),
            locality("y", 0, 2, healthy(100)),
        ]);
        let picker = EndpointPicker::build_from_health(&set);
        // The table's percentages are rounded loosely (69% usable is 32.57%, listed as 32%): within one point.
        let x_percent = picker.locality_share(0) * 100.0;
        assert!(
            (x_percent - want_x_percent).abs() < 1.0,
            "X at {usable_percent}% usable: {x_percent}"
        );
    }
}

#[test]
fn accessors_describe_the_active_priority() {
    let set = set(vec![
        locality(
            "a",
            0,
            2,
            vec![
                endpoint(HealthStatus::Healthy, 1),
                endpoint(HealthStatus::Unhealthy, 1),
            ],
        ),
        locality("b", 0, 0, healthy(4)),
        locality("c", 1, 1, healthy(3)),
        locality("d", 0, 1, healthy(2)),
    ]);
    let picker = EndpointPicker::build(&set, |at| at != EndpointRef::new(3, 1));
    assert_eq!(picker.active_localities().collect::<Vec<_>>(), vec![0, 3]);
    assert_eq!(picker.usable_endpoints(0), &[0]);
    assert!(
        picker.usable_endpoints(1).is_empty(),
        "zero-weight locality"
    );
    assert!(picker.usable_endpoints(2).is_empty(), "other priority");
    assert_eq!(picker.usable_endpoints(3), &[0]);
    assert!(picker.usable_endpoints(99).is_empty());
    assert_eq!(picker.usable_count(), 2);
    assert_eq!(picker.pick_in_locality(2, &mut FastRng::from_seed(1)), None);

    let mut rng = FastRng::from_seed(15);
    let mut counts = [0usize; 4];
    for _ in 0..DRAWS {
        counts[picker.pick_locality(&mut rng).unwrap()] += 1;
    }
    // Both at half availability (1.4 × 1/2 = 0.7): shares 2:1.
    assert!(
        (counts[0] as f64 / DRAWS as f64 - 2.0 / 3.0).abs() < 0.01,
        "{counts:?}"
    );
    assert_eq!(counts[1] + counts[2], 0);

    assert_eq!(
        picker.priorities(),
        &[
            PrioritySummary {
                priority: 0,
                localities: 3,
                endpoints: 8,
                usable_endpoints: 2,
                active: true
            },
            PrioritySummary {
                priority: 1,
                localities: 1,
                endpoints: 3,
                usable_endpoints: 3,
                active: false
            },
        ]
    );
    let json = serde_json::to_value(picker.priorities()).unwrap();
    assert_eq!(json[1]["usable_endpoints"], 3);
    assert_eq!(
        serde_json::to_value(Pick::Drop { category: "lb" }).unwrap()["drop"]["category"],
        "lb"
    );
}

#[test]
fn build_from_health_is_build_with_everything_usable() {
    let set = set(vec![
        locality("a", 0, 1, healthy(3)),
        locality("b", 1, 1, healthy(1)),
    ]);
    let (a, b) = (
        EndpointPicker::build_from_health(&set),
        EndpointPicker::build(&set, |_| true),
    );
    assert_eq!(a.priorities(), b.priorities());
    let (mut rng_a, mut rng_b) = (FastRng::from_seed(16), FastRng::from_seed(16));
    for _ in 0..1_000 {
        assert_eq!(a.pick(&mut rng_a), b.pick(&mut rng_b));
    }
}

#[test]
fn usable_is_asked_once_per_eligible_endpoint() {
    let set = set(vec![
        locality(
            "a",
            0,
            1,
            vec![
                endpoint(HealthStatus::Healthy, 1),
                endpoint(HealthStatus::Unhealthy, 1),
            ],
        ),
        locality("b", 1, 0, healthy(2)),
        locality("c", 1, 1, healthy(2)),
    ]);
    let mut asked = Vec::new();
    let _ = EndpointPicker::build(&set, |at| {
        asked.push(at);
        true
    });
    assert_eq!(
        asked,
        vec![
            EndpointRef::new(0, 0),
            EndpointRef::new(2, 0),
            EndpointRef::new(2, 1)
        ]
    );
}
