//! A leaf cluster's picker table: the endpoint list plus which endpoints are usable now, rebuilt whenever
//! reachability or ejections change (off the request path) and read by requests with one atomic load.
//!
//! A pick: drop overloads (gRFC A27), then priority and locality by [`EndpointPicker`] (gRFC A27/A56, usable =
//! reachable and not ejected), then the endpoint by the cluster's policy within the locality:
//! - `PeakEwma` (default): [`p2c`] over each endpoint's latency × (outstanding + 1) ÷ endpoint weight, so an
//!   endpoint of weight 2 is as attractive as one of weight 1 carrying half its load.
//! - `RoundRobin`: a cursor per locality ([`RoundRobin`]), carried over rebuilds; endpoint weights ignored, as in
//!   gRPC.
//! - `LeastRequest`: gRFC A48 over outstanding requests; endpoint weights ignored, as in gRPC.
//! - `RingHash`: gRFC A42 over the active priority's ring (localities folded into the weights), walking past
//!   unusable endpoints; a request without a hash gets a random one.
//! - `PickFirst`: the first usable endpoint of the active priority in (optionally shuffled) order (gRFC A62).
//! - `WeightedRoundRobin`: without load reports there are no weights to learn, so endpoints are picked at random
//!   by their configured weights.
//!
//! A retry asks to avoid the endpoints already tried: the pick is redrawn a few times (Envoy's
//! `host_selection_retry_max_attempts` with the previous-hosts predicate) and the last draw stands if nothing
//! else is usable.

use std::sync::Arc;

use mesh_core::cluster::LbPolicy;
use mesh_core::picker::EndpointPicker;
use mesh_core::rng::RandomSource;

use super::endpoints::EndpointList;
use crate::endpoint::{Endpoint, Reachability};
use crate::error::{EndpointCounts, SharedError};
use crate::lb::{RoundRobin, least_request, p2c, ring_hash_pick};

/// How often a pick is redrawn to avoid an endpoint already tried.
const AVOID_REDRAWS: usize = 3;

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct PickerTable {
    pub(crate) list: Arc<EndpointList>,
    picker: Option<EndpointPicker>,
    usable: Box<[bool]>,
    pub(crate) counts: EndpointCounts,
    round_robin: Box<[RoundRobin]>,
}

/// What a pick needs from the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PickContext<'a> {
    /// The request hash, for ring hash.
    pub(crate) hash: Option<u64>,
    /// Endpoints already tried by this request.
    pub(crate) avoid: &'a [Arc<Endpoint>],
    /// Now, for latency estimates.
    pub(crate) now: std::time::Instant,
}

/// Why a pick found no endpoint.
#[derive(Debug, Clone)]
pub(crate) enum PickError {
    /// A drop overload hit, with its category.
    Dropped(Arc<str>),
    /// The cluster has no endpoint set.
    NoEndpoints(Option<Arc<str>>),
    /// No endpoint is usable: the counts, and an unreachable endpoint's connection error.
    NoHealthy(EndpointCounts, Option<SharedError>),
}

/// A picked endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Picked {
    pub(crate) slot: usize,
    pub(crate) locality: usize,
}

impl PickerTable {
    /// Builds the table for `list` from each endpoint's current reachability and ejection; round-robin cursors
    /// carry over from `previous` for localities at the same index.
    pub(crate) fn build(
        list: Arc<EndpointList>,
        previous: Option<&Self>,
        rng: &mut impl RandomSource,
    ) -> Self {
        let mut counts = EndpointCounts {
            total: list.slots.len(),
            ..EndpointCounts::default()
        };
        let mut usable = vec![false; list.slots.len()];
        let picker = list.set.as_ref().map(|set| {
            for (index, locality) in set.localities.iter().enumerate() {
                for (position, endpoint) in locality.endpoints.iter().enumerate() {
                    let Some(slot) = list.slot(index, position) else {
                        continue;
                    };
                    if !endpoint.health.is_usable() || endpoint.weight == 0 || locality.weight == 0
                    {
                        counts.unhealthy += 1;
                    } else if list.detector.as_ref().is_some_and(|d| d.is_ejected(slot)) {
                        counts.ejected += 1;
                    } else if list
                        .endpoint(slot)
                        .is_some_and(|e| e.reachability() == Reachability::Unreachable)
                    {
                        counts.unreachable += 1;
                    } else if let Some(flag) = usable.get_mut(slot) {
                        *flag = true;
                    }
                }
            }
            EndpointPicker::build(set, |at| {
                list.slot(at.locality, at.endpoint)
                    .and_then(|slot| usable.get(slot))
                    .copied()
                    .unwrap_or(false)
            })
        });
        let localities = list.offsets.len();
        let round_robin = (0..localities)
            .map(|index| {
                previous
                    .and_then(|p| p.round_robin.get(index))
                    .cloned()
                    .unwrap_or_else(|| RoundRobin::with_random_start(&mut *rng))
            })
            .collect();
        Self {
            list,
            picker,
            usable: usable.into_boxed_slice(),
            counts,
            round_robin,
        }
    }

    /// The priority requests go to now (gRFC A27/A56), `None` when no priority has a usable endpoint.
    pub(crate) fn active_priority(&self) -> Option<u32> {
        self.picker
            .as_ref()
            .and_then(EndpointPicker::active_priority)
    }

    /// Whether some endpoint can take a request (aggregate clusters fail over on this, gRFC A37/A75).
    pub(crate) fn has_usable(&self) -> bool {
        self.picker
            .as_ref()
            .is_some_and(|p| p.active_priority().is_some())
    }

    /// The "no healthy endpoint" failure: the counts and the first connection error among unreachable endpoints.
    /// Built only when a pick fails, so the scan stays off the successful path.
    pub(crate) fn no_healthy(&self) -> PickError {
        PickError::NoHealthy(self.counts, self.last_connect_error())
    }

    /// The connection error of the first unreachable endpoint, if any.
    pub(crate) fn last_connect_error(&self) -> Option<SharedError> {
        if self.counts.unreachable == 0 {
            return None;
        }
        self.list
            .slots
            .iter()
            .find_map(|endpoint| endpoint.last_connect_error())
    }

    /// Picks an endpoint; see the [module docs](self).
    pub(crate) fn pick(
        &self,
        context: &PickContext<'_>,
        rng: &mut impl RandomSource,
    ) -> Result<Picked, PickError> {
        let (Some(set), Some(picker)) = (&self.list.set, &self.picker) else {
            return Err(PickError::NoEndpoints(self.list.note.clone()));
        };
        // gRFC A27: drop categories first, each with its own draw, even with no usable endpoint.
        for drop in &set.drop_overloads {
            if drop.percentage.sample(rng) {
                return Err(PickError::Dropped(Arc::clone(&drop.category)));
            }
        }
        let Some(active) = picker.active_priority() else {
            return Err(self.no_healthy());
        };
        let slot = match &self.list.lb_policy {
            LbPolicy::RingHash { .. } => self.pick_ring(active, context, rng),
            LbPolicy::PickFirst { .. } => self.pick_first(active, context),
            _ => self.pick_in_locality(picker, context, rng),
        };
        let slot = slot.ok_or_else(|| self.no_healthy())?;
        let locality = self.list.slot_locality.get(slot).copied().unwrap_or(0);
        Ok(Picked { slot, locality })
    }

    fn avoided(&self, slot: usize, context: &PickContext<'_>) -> bool {
        !context.avoid.is_empty()
            && self
                .list
                .endpoint(slot)
                .is_some_and(|e| context.avoid.iter().any(|tried| Arc::ptr_eq(tried, e)))
    }

    fn is_usable(&self, slot: usize) -> bool {
        self.usable.get(slot).copied().unwrap_or(false)
    }

    fn pick_in_locality(
        &self,
        picker: &EndpointPicker,
        context: &PickContext<'_>,
        rng: &mut impl RandomSource,
    ) -> Option<usize> {
        let mut last = None;
        for _ in 0..=AVOID_REDRAWS {
            let locality = picker.pick_locality(rng)?;
            let candidates = picker.usable_endpoints(locality);
            let endpoint = |index: usize| {
                self.list
                    .slot(locality, index)
                    .and_then(|slot| self.list.endpoint(slot))
            };
            let chosen = match &self.list.lb_policy {
                LbPolicy::PeakEwma { .. } => p2c(
                    candidates,
                    |index| {
                        let slot = self.list.slot(locality, index);
                        let weight = slot
                            .and_then(|s| self.list.weights.get(s))
                            .copied()
                            .unwrap_or(1);
                        endpoint(index)
                            .map_or(f64::INFINITY, |e| e.cost(context.now) / f64::from(weight))
                    },
                    rng,
                ),
                LbPolicy::RoundRobin => self
                    .round_robin
                    .get(locality)
                    .and_then(|rr| rr.pick(candidates)),
                LbPolicy::LeastRequest { choice_count } => least_request(
                    candidates,
                    *choice_count,
                    |index| endpoint(index).map_or(u32::MAX, |e| e.outstanding()),
                    rng,
                ),
                _ => picker.pick_in_locality(locality, rng).map(|at| at.endpoint),
            };
            let slot = chosen.and_then(|index| self.list.slot(locality, index))?;
            if !self.avoided(slot, context) {
                return Some(slot);
            }
            last = Some(slot);
        }
        last
    }

    fn pick_ring(
        &self,
        active: u32,
        context: &PickContext<'_>,
        rng: &mut impl RandomSource,
    ) -> Option<usize> {
        let ring = self
            .list
            .rings
            .iter()
            .find(|ring| ring.priority == active)?;
        // gRFC A42: a request without a hash gets a random one.
        let hash = context.hash.unwrap_or_else(|| rng.next_u64());
        let slot_of = |index: usize| ring.slots.get(index).copied();
        let preferred = ring_hash_pick(&ring.ring, hash, |index| {
            slot_of(index).is_some_and(|slot| self.is_usable(slot) && !self.avoided(slot, context))
        });
        preferred
            .or_else(|| {
                ring_hash_pick(&ring.ring, hash, |index| {
                    slot_of(index).is_some_and(|s| self.is_usable(s))
                })
            })
            .and_then(slot_of)
    }

    fn pick_first(&self, active: u32, context: &PickContext<'_>) -> Option<usize> {
        let set = self.list.set.as_ref()?;
        let in_active = |slot: usize| {
            self.is_usable(slot)
                && self
                    .list
                    .slot_locality
                    .get(slot)
                    .and_then(|&locality| set.localities.get(locality))
                    .is_some_and(|locality| locality.priority == active)
        };
        let order = &self.list.pick_first_order;
        order
            .iter()
            .copied()
            .find(|&slot| in_active(slot) && !self.avoided(slot, context))
            .or_else(|| order.iter().copied().find(|&slot| in_active(slot)))
    }
}

#[cfg(test)]
mod tests;
