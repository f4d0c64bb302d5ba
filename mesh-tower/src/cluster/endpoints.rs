//! A leaf cluster's endpoint list: the endpoints of one endpoint set in picker order, with what depends only on the
//! set and the cluster's policies (outlier detector, hash rings, pick-first order). Rebuilt when the set or the
//! policies change, never per request and never on a mere change of reachability.

use std::sync::Arc;

use mesh_core::cluster::LbPolicy;
use mesh_core::endpoint::EndpointSet;
use mesh_core::load::{ClusterCounters, LocalityCounters};
use mesh_core::ring_hash::Ring;
use mesh_core::rng::RandomSource;

use crate::endpoint::Endpoint;
use crate::lb::OutlierDetector;

/// A ring of one priority (gRFC A42 under A56's priority policy: ring_hash runs per priority).
#[derive(Debug)]
pub(crate) struct PriorityRing {
    pub(crate) priority: u32,
    pub(crate) ring: Ring,
    /// Ring endpoint index -> flat slot.
    pub(crate) slots: Box<[usize]>,
}

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct EndpointList {
    /// The set, when discovery produced one.
    pub(crate) set: Option<Arc<EndpointSet>>,
    /// Why there is no set.
    pub(crate) note: Option<Arc<str>>,
    /// The endpoints, flat, in `set.endpoints()` order.
    pub(crate) slots: Box<[Arc<Endpoint>]>,
    /// Per locality, its first flat slot.
    pub(crate) offsets: Box<[usize]>,
    /// Per flat slot, its locality.
    pub(crate) slot_locality: Box<[usize]>,
    /// Per flat slot, its endpoint weight (at least 1).
    pub(crate) weights: Box<[u32]>,
    /// The cluster's policy.
    pub(crate) lb_policy: LbPolicy,
    /// Outlier detection, keyed by flat slot.
    pub(crate) detector: Option<Arc<OutlierDetector>>,
    /// Hash rings, for ring hash.
    pub(crate) rings: Box<[PriorityRing]>,
    /// Flat slots in pick-first order.
    pub(crate) pick_first_order: Box<[usize]>,
    /// Load-report counters, when the cluster's load is reported (gRFC A27).
    pub(crate) load: Option<ListLoad>,
}

/// A cluster's load-report counters, resolved when its endpoint list is built: requests count with atomic
/// increments, no lookup by name.
#[derive(Debug)]
pub(crate) struct ListLoad {
    pub(crate) cluster: ClusterCounters,
    /// Per locality of the set, in set order.
    pub(crate) localities: Box<[LocalityCounters]>,
}

impl ListLoad {
    pub(crate) fn new(cluster: ClusterCounters, set: &EndpointSet) -> Self {
        let localities = set
            .localities
            .iter()
            .map(|l| cluster.locality(&l.locality))
            .collect();
        Self {
            cluster,
            localities,
        }
    }
}

impl EndpointList {
    /// A list with no endpoints.
    pub(crate) fn empty(note: Option<Arc<str>>, lb_policy: LbPolicy) -> Self {
        Self {
            set: None,
            note,
            slots: Box::new([]),
            offsets: Box::new([]),
            slot_locality: Box::new([]),
            weights: Box::new([]),
            lb_policy,
            detector: None,
            rings: Box::new([]),
            pick_first_order: Box::new([]),
            load: None,
        }
    }

    /// The flat slot of endpoint `endpoint` of locality `locality`.
    pub(crate) fn slot(&self, locality: usize, endpoint: usize) -> Option<usize> {
        self.offsets.get(locality).map(|offset| offset + endpoint)
    }

    /// The load-report counters of locality `locality`, when the cluster's load is reported.
    pub(crate) fn locality_load(&self, locality: usize) -> Option<&LocalityCounters> {
        self.load.as_ref()?.localities.get(locality)
    }

    /// The endpoint in `slot`.
    pub(crate) fn endpoint(&self, slot: usize) -> Option<&Arc<Endpoint>> {
        self.slots.get(slot)
    }
}

/// Builds the rings of every priority: each endpoint weighted by locality weight × endpoint weight (gRFC A42),
/// keyed by its address as gRPC and Envoy key them.
pub(crate) fn build_rings(
    set: &EndpointSet,
    offsets: &[usize],
    lb_policy: &LbPolicy,
) -> Box<[PriorityRing]> {
    let LbPolicy::RingHash {
        min_ring_size,
        max_ring_size,
    } = lb_policy
    else {
        return Box::new([]);
    };
    let mut priorities: Vec<u32> = set.localities.iter().map(|l| l.priority).collect();
    priorities.sort_unstable();
    priorities.dedup();
    let mut rings = Vec::with_capacity(priorities.len());
    for priority in priorities {
        let mut entries: Vec<(String, u32)> = Vec::new();
        let mut slots = Vec::new();
        for (index, locality) in set.localities.iter().enumerate() {
            if locality.priority != priority || locality.weight == 0 {
                continue;
            }
            let offset = offsets.get(index).copied().unwrap_or(0);
            for (position, endpoint) in locality.endpoints.iter().enumerate() {
                // gRFC A27: only HEALTHY and UNKNOWN endpoints take part.
                if !endpoint.health.is_usable() || endpoint.weight == 0 {
                    continue;
                }
                entries.push((
                    endpoint.address.to_string(),
                    locality.weight.saturating_mul(endpoint.weight),
                ));
                slots.push(offset + position);
            }
        }
        if let Ok(ring) = Ring::build(entries, *min_ring_size, *max_ring_size) {
            rings.push(PriorityRing {
                priority,
                ring,
                slots: slots.into_boxed_slice(),
            });
        }
    }
    rings.into_boxed_slice()
}

/// The pick-first order: the set's order, shuffled when asked (gRFC A62 `shuffle_address_list`).
pub(crate) fn pick_first_order(
    count: usize,
    lb_policy: &LbPolicy,
    rng: &mut impl RandomSource,
) -> Box<[usize]> {
    let mut order: Vec<usize> = (0..count).collect();
    if matches!(
        lb_policy,
        LbPolicy::PickFirst {
            shuffle_address_list: true
        }
    ) {
        // Fisher-Yates.
        for i in (1..order.len()).rev() {
            let j =
                usize::try_from(rng.below(u64::try_from(i + 1).unwrap_or(u64::MAX))).unwrap_or(0);
            order.swap(i, j);
        }
    }
    order.into_boxed_slice()
}
