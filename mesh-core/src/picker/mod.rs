//! Priority, locality and endpoint selection: which endpoint of an [`EndpointSet`] gets the next request.
//!
//! What it solves: an [`EndpointPicker`] is built from an endpoint set and the request path's view of which endpoints
//! it may use, once per change of either, off the request path. Per request it applies the cluster's drop overloads,
//! then picks a locality of the active priority and an endpoint in it, in O(1), without allocating or locking. It
//! holds no interior mutability, so one picker behind an `Arc` (or an `ArcSwap`) serves every task.
//!
//! The rules, in the order a pick applies them:
//! 1. **Drop overloads.** gRFC A27 (and Envoy's `ClusterLoadAssignment.Policy.drop_overloads`): each category is
//!    sampled in order with its own percentage, before any endpoint is considered; the first hit drops the request
//!    under that category (for load reports). Drops apply even when no endpoint is usable.
//! 2. **Eligible endpoints.** An endpoint can receive traffic only if its health is `HEALTHY` or `UNKNOWN` (gRFC A27),
//!    the caller's `usable` predicate accepts it, its weight is above zero, and its locality's weight is above zero
//!    (gRFC A27: a locality without a weight gets no traffic).
//! 3. **Priority.** gRFC A27/A56: the active priority is the lowest priority number with at least one eligible
//!    endpoint; every other priority gets no traffic. This is gRPC's strict failover, not Envoy's gradual priority
//!    spill-over ("Priority levels"): nothing is shared with the next priority while the active one has an eligible
//!    endpoint. When a lower priority heals, the caller rebuilds and traffic returns to it at once.
//! 4. **Locality.** Envoy "Locality weighted load balancing": a locality of the active priority with eligible
//!    endpoints is picked with probability proportional to its effective weight,
//!    `weight × min(1, overprovisioning_factor / 100 × usable / total)`, where `total` counts the locality's
//!    endpoints with a weight above zero and `usable` its eligible ones. gRFC A27 leaves this scaling out (gRPC
//!    relies on the control plane instead); we follow Envoy, and a factor large enough makes the two agree. The
//!    integer precision of this step is documented in `locality_weight.rs`: exact when the effective weights fit
//!    `u32` as integers over a common denominator, otherwise each locality's share is within `(n + 1) / u32::MAX` of
//!    the exact share (`n` localities).
//! 5. **Endpoint.** Within the locality, an eligible endpoint is picked in proportion to its weight (Envoy
//!    `LbEndpoint.load_balancing_weight`). gRPC's round robin ignores endpoint weights; we honour them. Policies that
//!    choose the endpoint themselves (power of two choices, round robin) call [`EndpointPicker::pick_locality`] and
//!    [`EndpointPicker::usable_endpoints`] instead.
//!
//! What it does not do: it keeps no connection state, runs no health checks and no outlier detection, and has no
//! failover timer (gRFC A56's priority policy waits for a connecting priority; here the caller's `usable` predicate
//! says what is reachable now). The request path owns that state, passes it as `usable`, and rebuilds the picker
//! when it changes.
//!
//! ```
//! use std::net::SocketAddr;
//!
//! use mesh_core::endpoint::{Endpoint, EndpointSet, HealthStatus, LocalityEndpoints};
//! use mesh_core::locality::Locality;
//! use mesh_core::picker::{EndpointPicker, EndpointRef, Pick};
//! use mesh_core::rng::FastRng;
//!
//! let primary = SocketAddr::from(([10, 0, 0, 1], 8080));
//! let backup = SocketAddr::from(([10, 0, 1, 1], 8080));
//! let set = EndpointSet::new(
//!     "backend",
//!     vec![
//!         LocalityEndpoints::new(Locality::new("eu", "eu-1a", ""), 0, 1, vec![Endpoint::new(primary)]),
//!         LocalityEndpoints::new(Locality::new("eu", "eu-1b", ""), 1, 1, vec![Endpoint::new(backup)]),
//!     ],
//! );
//! let mut rng = FastRng::from_seed(1);
//!
//! let picker = EndpointPicker::build_from_health(&set);
//! assert_eq!(picker.active_priority(), Some(0));
//! assert_eq!(picker.pick(&mut rng), Pick::Endpoint(EndpointRef { locality: 0, endpoint: 0 }));
//!
//! // The primary is ejected: rebuild with the request path's view, and traffic fails over to priority 1.
//! let picker = EndpointPicker::build(&set, |at| at.locality != 0);
//! assert_eq!(picker.pick(&mut rng), Pick::Endpoint(EndpointRef { locality: 1, endpoint: 0 }));
//! ```

use std::collections::BTreeMap;

use serde::Serialize;

use crate::endpoint::{DropOverload, EndpointSet};
use crate::rng::RandomSource;
use crate::weighted::WeightedIndex;

mod locality_weight;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use locality_weight::LocalityLoad;

/// An endpoint's position in an [`EndpointSet`]: indices into `set.localities` and that locality's `endpoints`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EndpointRef {
    /// Index into [`EndpointSet::localities`].
    pub locality: usize,
    /// Index into that locality's `endpoints`.
    pub endpoint: usize,
}

impl EndpointRef {
    /// The endpoint at `endpoint` in locality `locality`.
    #[must_use]
    pub const fn new(locality: usize, endpoint: usize) -> Self {
        Self { locality, endpoint }
    }
}

/// The outcome of [`EndpointPicker::pick`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick<'a> {
    /// Send the request to this endpoint.
    Endpoint(EndpointRef),
    /// Drop the request: a drop overload hit (gRFC A27). Report it under `category`.
    Drop {
        /// The drop overload's category, as the control plane named it.
        category: &'a str,
    },
    /// No endpoint in any priority can take traffic: fail the request (gRPC: `UNAVAILABLE`).
    NoUsableEndpoint,
}

/// Endpoint counts of one priority, for telemetry and config dumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PrioritySummary {
    /// The priority (0 is the highest).
    pub priority: u32,
    /// Localities at this priority, zero-weight ones included.
    pub localities: usize,
    /// Endpoints at this priority, whatever their health or weight.
    pub endpoints: usize,
    /// Endpoints that could take traffic (healthy or unknown, accepted by `usable`, non-zero endpoint and locality
    /// weight). The active priority is the first with a non-zero count.
    pub usable_endpoints: usize,
    /// Whether this is the active priority.
    pub active: bool,
}

/// The per-locality part of a picker. Empty outside the active priority.
#[derive(Debug, Clone, Default)]
struct LocalityPicks {
    /// Eligible endpoint indices, ascending.
    usable: Box<[usize]>,
    /// Endpoint weights, aligned with `usable`; `None` when `usable` is empty.
    endpoints: Option<WeightedIndex>,
    /// The slot of this locality in [`Active::weights`], when it is pickable.
    slot: Option<usize>,
}

/// The active priority's locality table.
#[derive(Debug, Clone)]
struct Active {
    priority: u32,
    /// Pickable localities (set indices, ascending), aligned with `weights`.
    localities: Box<[usize]>,
    /// Effective locality weights.
    weights: WeightedIndex,
}

/// Priority, locality and endpoint selection for one [`EndpointSet`]; see the [module docs](self).
///
/// Build it off the request path ([`EndpointPicker::build`]); pick per request ([`EndpointPicker::pick`]).
#[derive(Debug, Clone)]
pub struct EndpointPicker {
    drops: Box<[DropOverload]>,
    localities: Box<[LocalityPicks]>,
    active: Option<Active>,
    priorities: Box<[PrioritySummary]>,
    usable_count: usize,
}

impl EndpointPicker {
    /// Builds a picker for `set`, where `usable` reports whether the request path can use an endpoint (not ejected by
    /// outlier detection, connection not failed, ...). It is asked at most once per endpoint, and only about
    /// endpoints that health and weights leave eligible. O(endpoints) time and memory.
    pub fn build(set: &EndpointSet, mut usable: impl FnMut(EndpointRef) -> bool) -> Self {
        // Pass 1: eligible endpoints of every locality, and per-priority counts.
        let mut eligible: Vec<Vec<usize>> = Vec::with_capacity(set.localities.len());
        let mut summaries: BTreeMap<u32, PrioritySummary> = BTreeMap::new();
        for (locality_index, locality) in set.localities.iter().enumerate() {
            let mut endpoints = Vec::new();
            // gRFC A27: a locality without weight gets no traffic.
            if locality.weight > 0 {
                for (endpoint_index, endpoint) in locality.endpoints.iter().enumerate() {
                    // gRFC A27: only HEALTHY and UNKNOWN endpoints are used.
                    if endpoint.weight > 0
                        && endpoint.health.is_usable()
                        && usable(EndpointRef::new(locality_index, endpoint_index))
                    {
                        endpoints.push(endpoint_index);
                    }
                }
            }
            let summary = summaries
                .entry(locality.priority)
                .or_insert(PrioritySummary {
                    priority: locality.priority,
                    localities: 0,
                    endpoints: 0,
                    usable_endpoints: 0,
                    active: false,
                });
            summary.localities += 1;
            summary.endpoints += locality.endpoints.len();
            summary.usable_endpoints += endpoints.len();
            eligible.push(endpoints);
        }

        // gRFC A27/A56: the lowest priority number that can take traffic is the only one that gets it.
        let active_priority = summaries
            .values()
            .find(|summary| summary.usable_endpoints > 0)
            .map(|summary| summary.priority);

        // Pass 2: the active priority's endpoint tables and effective locality weights.
        let mut localities = vec![LocalityPicks::default(); set.localities.len()];
        let mut pickable = Vec::new();
        let mut loads = Vec::new();
        for ((index, locality), endpoints) in set.localities.iter().enumerate().zip(eligible) {
            if Some(locality.priority) != active_priority {
                continue;
            }
            let weights = endpoints
                .iter()
                .filter_map(|&endpoint| locality.endpoints.get(endpoint))
                .map(|endpoint| endpoint.weight);
            // Fails only when `endpoints` is empty: such a locality gets no traffic.
            let Ok(table) = WeightedIndex::new(weights) else {
                continue;
            };
            loads.push(LocalityLoad {
                weight: locality.weight,
                usable: endpoints.len(),
                // Envoy: availability is usable over all endpoints; a zero-weight endpoint is not capacity.
                total: locality
                    .endpoints
                    .iter()
                    .filter(|endpoint| endpoint.weight > 0)
                    .count(),
            });
            if let Some(picks) = localities.get_mut(index) {
                *picks = LocalityPicks {
                    usable: endpoints.into_boxed_slice(),
                    endpoints: Some(table),
                    slot: Some(pickable.len()),
                };
            }
            pickable.push(index);
        }
        let weights = locality_weight::effective_weights(&loads, set.overprovisioning_factor);
        let active = match (active_priority, WeightedIndex::new(weights)) {
            (Some(priority), Ok(weights)) => Some(Active {
                priority,
                localities: pickable.into_boxed_slice(),
                weights,
            }),
            // Unreachable (an eligible endpoint makes a positive effective weight); stay consistent regardless.
            _ => {
                localities.fill(LocalityPicks::default());
                None
            }
        };
        let active_priority = active.as_ref().map(|active| active.priority);
        let priorities = summaries
            .into_values()
            .map(|summary| PrioritySummary {
                active: Some(summary.priority) == active_priority,
                ..summary
            })
            .collect();
        let usable_count = localities.iter().map(|picks| picks.usable.len()).sum();

        Self {
            drops: set.drop_overloads.clone().into_boxed_slice(),
            localities: localities.into_boxed_slice(),
            active,
            priorities,
            usable_count,
        }
    }

    /// Builds a picker that uses every endpoint health allows (`HEALTHY` or `UNKNOWN`, gRFC A27).
    #[must_use]
    pub fn build_from_health(set: &EndpointSet) -> Self {
        Self::build(set, |_| true)
    }

    /// Picks where the next request goes: drop overloads first (gRFC A27), then a locality of the active priority by
    /// effective weight, then an endpoint by weight. O(1), no allocation: one draw per drop overload with a
    /// percentage strictly between 0 and 100%, then at most two draws for the locality and two for the endpoint.
    pub fn pick(&self, rng: &mut impl RandomSource) -> Pick<'_> {
        // gRFC A27: drop categories are checked in order, each with its own draw.
        for drop in &self.drops {
            if drop.percentage.sample(rng) {
                return Pick::Drop {
                    category: &drop.category,
                };
            }
        }
        self.pick_locality(rng)
            .and_then(|locality| self.pick_in_locality(locality, rng))
            .map_or(Pick::NoUsableEndpoint, Pick::Endpoint)
    }

    /// Picks a locality of the active priority by effective weight, for policies that choose the endpoint themselves
    /// among [`usable_endpoints`](Self::usable_endpoints). `None` when no endpoint is usable. Applies no drops.
    pub fn pick_locality(&self, rng: &mut impl RandomSource) -> Option<usize> {
        let active = self.active.as_ref()?;
        active.localities.get(active.weights.pick(rng)).copied()
    }

    /// Picks an endpoint of `locality` by endpoint weight. `None` when the locality has no usable endpoint in the
    /// active priority.
    pub fn pick_in_locality(
        &self,
        locality: usize,
        rng: &mut impl RandomSource,
    ) -> Option<EndpointRef> {
        let picks = self.localities.get(locality)?;
        let slot = picks.endpoints.as_ref()?.pick(rng);
        let endpoint = picks.usable.get(slot)?;
        Some(EndpointRef::new(locality, *endpoint))
    }

    /// The usable endpoint indices of `locality`, ascending, if it is in the active priority; empty otherwise.
    #[must_use]
    pub fn usable_endpoints(&self, locality: usize) -> &[usize] {
        self.localities
            .get(locality)
            .map_or(&[], |picks| &picks.usable)
    }

    /// The priority that gets traffic, or `None` when no endpoint is usable.
    #[must_use]
    pub fn active_priority(&self) -> Option<u32> {
        self.active.as_ref().map(|active| active.priority)
    }

    /// The localities that can be picked (active priority, non-zero weight, at least one usable endpoint), ascending.
    pub fn active_localities(&self) -> impl Iterator<Item = usize> + '_ {
        self.active
            .iter()
            .flat_map(|active| active.localities.iter().copied())
    }

    /// The number of usable endpoints in the active priority (0 when nothing is usable).
    #[must_use]
    pub fn usable_count(&self) -> usize {
        self.usable_count
    }

    /// Per-priority endpoint counts, ascending by priority.
    #[must_use]
    pub fn priorities(&self) -> &[PrioritySummary] {
        &self.priorities
    }

    /// The weight `locality` is picked with (its effective weight, possibly rescaled; see the module docs), or 0
    /// when it cannot be picked. Compare it with [`locality_share`](Self::locality_share) for the share itself.
    #[must_use]
    pub fn effective_locality_weight(&self, locality: usize) -> u32 {
        self.active
            .as_ref()
            .zip(self.localities.get(locality).and_then(|picks| picks.slot))
            .and_then(|(active, slot)| active.weights.weight(slot))
            .unwrap_or(0)
    }

    /// The probability that [`pick_locality`](Self::pick_locality) returns `locality`.
    #[must_use]
    pub fn locality_share(&self, locality: usize) -> f64 {
        let Some(active) = &self.active else {
            return 0.0;
        };
        ratio(
            u64::from(self.effective_locality_weight(locality)),
            active.weights.total_weight(),
        )
    }

    /// The probability that a [`pick`](Self::pick) which drops nothing returns `at`: the locality's share times the
    /// endpoint's share of its locality. For config dumps and tests.
    #[must_use]
    pub fn endpoint_share(&self, at: EndpointRef) -> f64 {
        let Some(picks) = self.localities.get(at.locality) else {
            return 0.0;
        };
        let (Ok(slot), Some(table)) = (picks.usable.binary_search(&at.endpoint), &picks.endpoints)
        else {
            return 0.0;
        };
        let endpoint_weight = u64::from(table.weight(slot).unwrap_or(0));
        self.locality_share(at.locality) * ratio(endpoint_weight, table.total_weight())
    }
}

/// `part / whole` as a float, 0 for an empty whole.
#[allow(clippy::cast_precision_loss)] // Shares for telemetry: 2^-53 relative error is fine.
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}
