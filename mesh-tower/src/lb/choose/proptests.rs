use std::cell::RefCell;

use mesh_core::ring_hash::Ring;
use mesh_core::rng::FastRng;
use proptest::prelude::*;

use super::*;

/// Candidate endpoint indices (duplicates allowed: the functions must not care) and a cost per index.
fn arb_candidates() -> impl Strategy<Value = (Vec<usize>, Vec<f64>)> {
    prop::collection::vec(0_usize..32, 1..16).prop_flat_map(|candidates| {
        let costs = prop::collection::vec(
            prop_oneof![8 => 0.0_f64..1e9, 1 => Just(f64::NAN), 1 => Just(f64::INFINITY)],
            32,
        );
        (Just(candidates), costs)
    })
}

proptest! {
    #[test]
    fn every_policy_returns_one_of_the_candidates(
        (candidates, costs) in arb_candidates(),
        loads in prop::collection::vec(0_u32..50, 32),
        choice_count in 0_u32..20,
        seed in any::<u64>(),
    ) {
        let mut rng = FastRng::from_seed(seed);
        let chosen = p2c(&candidates, |e| costs[e], &mut rng).unwrap();
        prop_assert!(candidates.contains(&chosen));
        let chosen = least_request(&candidates, choice_count, |e| loads[e], &mut rng).unwrap();
        prop_assert!(candidates.contains(&chosen));
        let rr = RoundRobin::with_random_start(&mut rng);
        for _ in 0..candidates.len() + 1 {
            prop_assert!(candidates.contains(&rr.pick(&candidates).unwrap()));
        }
    }

    #[test]
    fn p2c_never_returns_a_unique_maximum(
        costs in prop::collection::vec(0.0_f64..1e6, 2..20),
        seed in any::<u64>(),
    ) {
        let worst = (0..costs.len()).max_by(|&a, &b| costs[a].total_cmp(&costs[b])).unwrap();
        let unique = costs.iter().filter(|&&c| c >= costs[worst]).count() == 1;
        prop_assume!(unique);
        let candidates: Vec<usize> = (0..costs.len()).collect();
        let mut rng = FastRng::from_seed(seed);
        for _ in 0..50 {
            prop_assert_ne!(p2c(&candidates, |e| costs[e], &mut rng), Some(worst));
        }
    }

    #[test]
    fn least_request_returns_the_first_least_loaded_sample(
        candidates in prop::collection::vec(0_usize..32, 2..16),
        loads in prop::collection::vec(0_u32..5, 32),
        choice_count in 2_u32..=10,
        seed in any::<u64>(),
    ) {
        let sampled = RefCell::new(Vec::new());
        let mut rng = FastRng::from_seed(seed);
        let chosen = least_request(
            &candidates,
            choice_count,
            |e| {
                sampled.borrow_mut().push(e);
                loads[e]
            },
            &mut rng,
        )
        .unwrap();
        let sampled = sampled.into_inner();
        prop_assert_eq!(sampled.len(), choice_count as usize);
        let fewest = sampled.iter().map(|&e| loads[e]).min().unwrap();
        let first_fewest = sampled.iter().copied().find(|&e| loads[e] == fewest).unwrap();
        prop_assert_eq!(chosen, first_fewest);
    }

    #[test]
    fn ring_hash_pick_is_the_first_usable_successor(
        endpoints in 1_usize..12,
        usable in prop::collection::vec(any::<bool>(), 12),
        hash in any::<u64>(),
    ) {
        let ring = Ring::build((0..endpoints).map(|e| (format!("10.1.0.{e}:80"), 1)), 64, 1024).unwrap();
        let expected = ring.successors(hash).find(|&e| usable[e]);
        prop_assert_eq!(ring_hash_pick(&ring, hash, |e| usable[e]), expected);
    }
}
