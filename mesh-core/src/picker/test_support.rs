//! Fixtures shared by the picker's unit and property tests, including an independent model of the selection rules.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]

use std::collections::HashMap;
use std::net::SocketAddr;

use super::{EndpointPicker, EndpointRef, Pick};
use crate::endpoint::{Endpoint, EndpointSet, HealthStatus, LocalityEndpoints};
use crate::locality::Locality;
use crate::rng::FastRng;

pub(super) const DRAWS: usize = 100_000;

pub(super) fn endpoint(health: HealthStatus, weight: u32) -> Endpoint {
    Endpoint::new(SocketAddr::from(([10, 0, 0, 1], 8080)))
        .with_health(health)
        .with_weight(weight)
}

pub(super) fn healthy(count: usize) -> Vec<Endpoint> {
    (0..count)
        .map(|_| endpoint(HealthStatus::Healthy, 1))
        .collect()
}

pub(super) fn locality(
    zone: &str,
    priority: u32,
    weight: u32,
    endpoints: Vec<Endpoint>,
) -> LocalityEndpoints {
    LocalityEndpoints::new(
        Locality::new("region", zone, ""),
        priority,
        weight,
        endpoints,
    )
}

pub(super) fn set(localities: Vec<LocalityEndpoints>) -> EndpointSet {
    EndpointSet::new("cluster", localities)
}

/// Counts `DRAWS` picks: endpoints, drops by category, and `NoUsableEndpoint`.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) endpoints: HashMap<EndpointRef, usize>,
    pub(super) drops: HashMap<String, usize>,
    pub(super) none: usize,
}

pub(super) fn tally(picker: &EndpointPicker, seed: u64) -> Tally {
    let mut rng = FastRng::from_seed(seed);
    let mut tally = Tally::default();
    for _ in 0..DRAWS {
        match picker.pick(&mut rng) {
            Pick::Endpoint(at) => *tally.endpoints.entry(at).or_default() += 1,
            Pick::Drop { category } => *tally.drops.entry(category.to_owned()).or_default() += 1,
            Pick::NoUsableEndpoint => tally.none += 1,
        }
    }
    tally
}

pub(super) fn localities_picked(tally: &Tally) -> Vec<usize> {
    let mut picked: Vec<usize> = tally.endpoints.keys().map(|at| at.locality).collect();
    picked.sort_unstable();
    picked.dedup();
    picked
}

/// The rules of the module docs, written independently of the picker: whether `at` may receive traffic at all.
pub(super) fn eligible(
    set: &EndpointSet,
    mask: &dyn Fn(EndpointRef) -> bool,
    at: EndpointRef,
) -> bool {
    let locality = &set.localities[at.locality];
    let endpoint = &locality.endpoints[at.endpoint];
    locality.weight > 0 && endpoint.weight > 0 && endpoint.health.is_usable() && mask(at)
}

pub(super) fn all_refs(set: &EndpointSet) -> Vec<EndpointRef> {
    set.localities
        .iter()
        .enumerate()
        .flat_map(|(l, loc)| (0..loc.endpoints.len()).map(move |e| EndpointRef::new(l, e)))
        .collect()
}

/// Envoy's formula in floating point: the expected share of `at` among non-dropped picks.
pub(super) fn expected_share(
    set: &EndpointSet,
    mask: &dyn Fn(EndpointRef) -> bool,
    at: EndpointRef,
) -> f64 {
    let refs = all_refs(set);
    let Some(active) = refs
        .iter()
        .filter(|&&r| eligible(set, mask, r))
        .map(|r| set.localities[r.locality].priority)
        .min()
    else {
        return 0.0;
    };
    let factor = f64::from(set.overprovisioning_factor.max(1)) / 100.0;
    let effective = |l: usize| -> f64 {
        let loc = &set.localities[l];
        let usable = (0..loc.endpoints.len())
            .filter(|&e| eligible(set, mask, EndpointRef::new(l, e)))
            .count();
        let total = loc.endpoints.iter().filter(|e| e.weight > 0).count();
        if loc.priority != active || usable == 0 {
            return 0.0;
        }
        f64::from(loc.weight) * (factor * usable as f64 / total as f64).min(1.0)
    };
    let locality_sum: f64 = (0..set.localities.len()).map(effective).sum();
    let endpoint_weight = |r: EndpointRef| {
        if eligible(set, mask, r) {
            f64::from(set.localities[r.locality].endpoints[r.endpoint].weight)
        } else {
            0.0
        }
    };
    let endpoint_sum: f64 = refs
        .iter()
        .filter(|r| r.locality == at.locality)
        .map(|&r| endpoint_weight(r))
        .sum();
    if endpoint_sum == 0.0 {
        return 0.0;
    }
    effective(at.locality) / locality_sum * endpoint_weight(at) / endpoint_sum
}
