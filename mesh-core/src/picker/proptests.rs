#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]

use proptest::prelude::*;

use super::test_support::*;
use super::*;
use crate::endpoint::{DropOverload, HealthStatus};
use crate::fraction::FractionalPercent;
use crate::rng::FastRng;

// Arbitrary endpoint sets and usable masks.

fn arb_health() -> impl Strategy<Value = HealthStatus> {
    prop::sample::select(vec![
        HealthStatus::Unknown,
        HealthStatus::Healthy,
        HealthStatus::Unhealthy,
        HealthStatus::Draining,
        HealthStatus::Timeout,
        HealthStatus::Degraded,
    ])
}

/// A weight in `0..=max`, zero often enough to matter.
fn arb_weight(max: u32) -> impl Strategy<Value = u32> {
    prop_oneof![1 => Just(0), 4 => 0..=max]
}

/// An endpoint set with, per endpoint, whether the caller's `usable` predicate accepts it.
fn arb_case() -> impl Strategy<Value = (EndpointSet, Vec<Vec<bool>>)> {
    let arb_locality = (
        0u32..=3,
        arb_weight(1_000),
        prop::collection::vec((arb_health(), arb_weight(100), any::<bool>()), 0..=10),
    );
    let arb_drops = prop::collection::vec(0u32..=120, 0..=2);
    (
        prop::collection::vec(arb_locality, 0..=6),
        prop_oneof![
            Just(EndpointSet::DEFAULT_OVERPROVISIONING_FACTOR),
            0u32..=400
        ],
        arb_drops,
    )
        .prop_map(|(localities, factor, drops)| {
            let mut masks = Vec::new();
            let localities = localities
                .into_iter()
                .enumerate()
                .map(|(index, (priority, weight, endpoints))| {
                    masks.push(endpoints.iter().map(|&(_, _, usable)| usable).collect());
                    let endpoints = endpoints
                        .into_iter()
                        .map(|(h, w, _)| endpoint(h, w))
                        .collect();
                    locality(&format!("z{index}"), priority, weight, endpoints)
                })
                .collect();
            let drops = drops
                .into_iter()
                .enumerate()
                .map(|(i, percent)| {
                    DropOverload::new(&format!("drop{i}"), FractionalPercent::percent(percent))
                })
                .collect::<Vec<_>>();
            let set = set(localities)
                .with_overprovisioning_factor(factor)
                .with_drop_overloads(drops);
            (set, masks)
        })
}

proptest! {
    #[test]
    fn picks_respect_every_rule((set, masks) in arb_case(), seed in any::<u64>()) {
        let mask = |at: EndpointRef| masks[at.locality][at.endpoint];
        let picker = EndpointPicker::build(&set, mask);
        let eligible_refs: Vec<EndpointRef> =
            all_refs(&set).into_iter().filter(|&at| eligible(&set, &mask, at)).collect();
        let min_priority = eligible_refs.iter().map(|at| set.localities[at.locality].priority).min();
        prop_assert_eq!(picker.active_priority(), min_priority);
        let active_refs: Vec<EndpointRef> = eligible_refs
            .iter()
            .copied()
            .filter(|at| Some(set.localities[at.locality].priority) == min_priority)
            .collect();
        prop_assert_eq!(picker.usable_count(), active_refs.len());
        for l in 0..set.localities.len() {
            let want: Vec<usize> = active_refs.iter().filter(|at| at.locality == l).map(|at| at.endpoint).collect();
            prop_assert_eq!(picker.usable_endpoints(l), want.as_slice());
        }
        let summary_usable: usize = picker.priorities().iter().map(|p| p.usable_endpoints).sum();
        prop_assert_eq!(summary_usable, eligible_refs.len());
        let summary_total: usize = picker.priorities().iter().map(|p| p.endpoints).sum();
        prop_assert_eq!(summary_total, set.endpoint_count());

        let share_sum: f64 = all_refs(&set).into_iter().map(|at| picker.endpoint_share(at)).sum();
        for at in all_refs(&set) {
            prop_assert!((picker.endpoint_share(at) - expected_share(&set, &mask, at)).abs() < 1e-6);
        }
        if !eligible_refs.is_empty() {
            prop_assert!((share_sum - 1.0).abs() < 1e-9, "{}", share_sum);
        }

        let mut rng = FastRng::from_seed(seed);
        let no_drops = set.drop_overloads.iter().all(|d| d.percentage.per_million() == 0);
        for _ in 0..200 {
            match picker.pick(&mut rng) {
                Pick::Endpoint(at) => {
                    let loc = &set.localities[at.locality];
                    prop_assert!(eligible(&set, &mask, at), "{:?} is not eligible", at);
                    prop_assert!(loc.weight > 0 && loc.endpoints[at.endpoint].weight > 0);
                    prop_assert_eq!(Some(loc.priority), min_priority);
                }
                Pick::Drop { category } => {
                    prop_assert!(set.drop_overloads.iter().any(|d| &*d.category == category));
                }
                Pick::NoUsableEndpoint => prop_assert!(eligible_refs.is_empty()),
            }
            if let Some(l) = picker.pick_locality(&mut rng) {
                prop_assert!(!picker.usable_endpoints(l).is_empty());
            } else {
                prop_assert!(eligible_refs.is_empty());
            }
        }
        if eligible_refs.is_empty() && no_drops {
            prop_assert_eq!(picker.pick(&mut rng), Pick::NoUsableEndpoint);
        }
    }
}
