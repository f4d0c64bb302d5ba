//! Property tests of the picker table: whatever the endpoint set and policy, a pick is an eligible endpoint of the
//! active priority, and ring hash and pick first honour the retry's request to avoid an endpoint.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use mesh_core::cluster::{Cluster, LbPolicy};
use mesh_core::endpoint::{
    Endpoint as EndpointConfig, EndpointSet, HealthStatus, LocalityEndpoints,
};
use mesh_core::locality::Locality;
use mesh_core::rng::FastRng;
use proptest::prelude::*;

use super::{PickContext, PickError};
use crate::cluster::LeafCluster;
use crate::options::MeshOptions;
use crate::runtime::Runtime;

/// One locality: priority, weight, endpoints as (healthy, weight).
type LocalityShape = (u32, u32, Vec<(bool, u32)>);

#[derive(Debug, Clone)]
struct Shape {
    localities: Vec<LocalityShape>,
}

fn shape() -> impl Strategy<Value = Shape> {
    let endpoint = (prop::bool::weighted(0.7), 0_u32..3);
    let locality = (0_u32..3, 0_u32..3, prop::collection::vec(endpoint, 1..5));
    prop::collection::vec(locality, 1..5).prop_map(|localities| Shape { localities })
}

fn policy() -> impl Strategy<Value = LbPolicy> {
    prop_oneof![
        Just(LbPolicy::peak_ewma()),
        Just(LbPolicy::RoundRobin),
        Just(LbPolicy::LeastRequest { choice_count: 2 }),
        Just(LbPolicy::RingHash {
            min_ring_size: 64,
            max_ring_size: 256
        }),
        Just(LbPolicy::PickFirst {
            shuffle_address_list: true
        }),
    ]
}

fn build(shape: &Shape) -> EndpointSet {
    let mut host = 0_u16;
    let localities = shape
        .localities
        .iter()
        .enumerate()
        .map(|(index, (priority, weight, endpoints))| {
            let endpoints = endpoints
                .iter()
                .map(|(healthy, weight)| {
                    host += 1;
                    let address = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), host));
                    let health = if *healthy {
                        HealthStatus::Healthy
                    } else {
                        HealthStatus::Unhealthy
                    };
                    EndpointConfig::new(address)
                        .with_health(health)
                        .with_weight(*weight)
                })
                .collect();
            LocalityEndpoints::new(
                Locality::new("r", &format!("z{index}"), ""),
                *priority,
                *weight,
                endpoints,
            )
        })
        .collect();
    EndpointSet::new("c", localities)
}

/// Flat slots of eligible endpoints (healthy, non-zero endpoint and locality weight) and the active priority.
fn eligible(set: &EndpointSet) -> (Vec<usize>, Option<u32>) {
    let mut slots = Vec::new();
    let mut active: Option<u32> = None;
    let mut slot = 0;
    for locality in &set.localities {
        for endpoint in &locality.endpoints {
            if locality.weight > 0 && endpoint.weight > 0 && endpoint.health.is_usable() {
                slots.push(slot);
                active = Some(active.map_or(locality.priority, |p| p.min(locality.priority)));
            }
            slot += 1;
        }
    }
    (slots, active)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn picks_are_eligible_and_in_the_active_priority(shape in shape(), policy in policy(), seed in any::<u64>()) {
        let set = Arc::new(build(&shape));
        let (eligible, active) = eligible(&set);
        let runtime = Arc::new(Runtime::new(MeshOptions::default().with_rng_seed(seed)));
        let cluster = Arc::new(Cluster::eds("c").with_lb_policy(policy.clone()));
        let leaf = LeafCluster::new(&cluster, &runtime);
        leaf.apply(&cluster, Some(&set), None);
        let table = leaf.table();
        let mut rng = FastRng::from_seed(seed);
        let priority_of = |slot: usize| {
            let locality = table.list.slot_locality[slot];
            set.localities[locality].priority
        };
        for round in 0..20_u64 {
            let context = PickContext { hash: Some(round.wrapping_mul(0x9e37_79b9)), avoid: &[], now: crate::endpoint::now() };
            match table.pick(&context, &mut rng) {
                Ok(picked) => {
                    prop_assert!(eligible.contains(&picked.slot), "{policy:?} picked ineligible slot {}", picked.slot);
                    prop_assert_eq!(Some(priority_of(picked.slot)), active);
                }
                Err(PickError::NoHealthy(counts, _)) => {
                    prop_assert!(active.is_none(), "{policy:?} found nothing though {eligible:?} are eligible");
                    prop_assert_eq!(counts.total, set.endpoint_count());
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn ring_hash_and_pick_first_avoid_an_endpoint_already_tried(shape in shape(), ring in any::<bool>(), seed in any::<u64>()) {
        let policy = if ring {
            LbPolicy::RingHash { min_ring_size: 64, max_ring_size: 256 }
        } else {
            LbPolicy::PickFirst { shuffle_address_list: false }
        };
        let set = Arc::new(build(&shape));
        let (eligible, active) = eligible(&set);
        let runtime = Arc::new(Runtime::new(MeshOptions::default().with_rng_seed(seed)));
        let cluster = Arc::new(Cluster::eds("c").with_lb_policy(policy));
        let leaf = LeafCluster::new(&cluster, &runtime);
        leaf.apply(&cluster, Some(&set), None);
        let table = leaf.table();
        let in_active: Vec<usize> = eligible
            .iter()
            .copied()
            .filter(|&slot| Some(set.localities[table.list.slot_locality[slot]].priority) == active)
            .collect();
        prop_assume!(in_active.len() >= 2);
        let mut rng = FastRng::from_seed(seed);
        let first = table
            .pick(&PickContext { hash: Some(seed), avoid: &[], now: crate::endpoint::now() }, &mut rng)
            .unwrap();
        let tried = [Arc::clone(table.list.endpoint(first.slot).unwrap())];
        let again = table
            .pick(&PickContext { hash: Some(seed), avoid: &tried, now: crate::endpoint::now() }, &mut rng)
            .unwrap();
        prop_assert_ne!(again.slot, first.slot);
        prop_assert!(in_active.contains(&again.slot));
    }
}

#[test]
fn endpoints_that_remain_keep_their_state_across_updates() {
    let runtime = Arc::new(Runtime::new(MeshOptions::default().with_rng_seed(1)));
    let cluster = Arc::new(Cluster::eds("c").with_lb_policy(LbPolicy::RoundRobin));
    let leaf = LeafCluster::new(&cluster, &runtime);
    let a = SocketAddr::from(([10, 0, 0, 1], 1));
    let b = SocketAddr::from(([10, 0, 0, 2], 1));
    let c = SocketAddr::from(([10, 0, 0, 3], 1));
    let set = |addresses: &[SocketAddr]| {
        Arc::new(EndpointSet::new(
            "c",
            vec![LocalityEndpoints::new(
                Locality::default(),
                0,
                1,
                addresses.iter().copied().map(EndpointConfig::new).collect(),
            )],
        ))
    };
    leaf.apply(&cluster, Some(&set(&[a, b])), None);
    let before = leaf.table();
    let kept = Arc::clone(before.list.endpoint(1).unwrap());
    let removed = Arc::downgrade(before.list.endpoint(0).unwrap());
    drop(before);
    leaf.apply(&cluster, Some(&set(&[b, c])), None);
    let after = leaf.table();
    assert!(
        Arc::ptr_eq(&kept, after.list.endpoint(0).unwrap()),
        "b kept its endpoint state"
    );
    assert_eq!(
        after.list.endpoint(1).unwrap().label().as_ref(),
        "10.0.0.3:1"
    );
    drop(kept);
    assert!(
        removed.upgrade().is_none(),
        "a was dropped once nothing held it"
    );
}
