//! Consistent hashing: the ring of gRFC A42's `ring_hash` policy, built the way gRPC and Envoy build it.
//!
//! What it solves: given endpoints, each with a hash key and a weight, [`Ring::build`] places points on a ring of
//! 64-bit xxHash values (the Ketama construction Envoy's `RING_HASH` and gRPC's `ring_hash_experimental` share), and
//! [`Ring::lookup`] maps a request hash to the endpoint owning the first point at or after it, by binary search and
//! without allocating. [`Ring::successors`] walks the ring onwards from the same place, yielding each endpoint once,
//! which is the order the A42 picker tries when the first endpoint is in `TRANSIENT_FAILURE`. [`hash_key`] hashes
//! request bytes (a header value, say) the same way.
//!
//! The point counts use the same floating-point arithmetic as gRPC and Envoy, and each point is `xxh64("<key>_<i>")`
//! with seed 0 as there, so with the same keys (both use the endpoint address, `ip:port`) a request hash lands on the
//! same endpoint here as in an Envoy or gRPC client.
//!
//! What it does not solve: computing a request's hash from the route's hash policies, subchannel connectivity and the
//! picker's queue-or-fail rules (gRFC A42 "Picker Behavior"), Maglev, and bounded loads (Envoy's
//! `hash_balance_factor`). It is also consistent, not perfectly stable: a rebuild after the endpoint set changes
//! re-derives every endpoint's point count from the new normalised weights (so the ring keeps at least
//! `min_ring_size` points), so besides the removed endpoint's keys a share of keys (on the order of 1/N) moves to
//! points that surviving endpoints gained.
//!
//! ```
//! use mesh_core::ring_hash::{hash_key, Ring, DEFAULT_MAX_RING_SIZE, DEFAULT_MIN_RING_SIZE};
//!
//! let endpoints = [("10.0.0.1:443", 1), ("10.0.0.2:443", 1), ("10.0.0.3:443", 2)];
//! let ring = Ring::build(endpoints, DEFAULT_MIN_RING_SIZE, DEFAULT_MAX_RING_SIZE)?;
//! let request_hash = hash_key(b"user-1234");
//! let first = ring.lookup(request_hash);
//! let failover: Vec<usize> = ring.successors(request_hash).collect();
//! assert_eq!(failover.first().copied(), first);
//! assert_eq!(failover.len(), 3);
//! # Ok::<(), mesh_core::ring_hash::RingError>(())
//! ```

use std::fmt;
use std::iter::FusedIterator;

use xxhash_rust::xxh64::xxh64;

/// Default `min_ring_size` (Envoy `RingHashLbConfig.minimum_ring_size`; gRFC A42 `min_ring_size` defaults to 1024).
pub const DEFAULT_MIN_RING_SIZE: u64 = 1024;

/// Default `max_ring_size` (Envoy `RingHashLbConfig.maximum_ring_size`; gRFC A42 `max_ring_size` defaults to 8M).
pub const DEFAULT_MAX_RING_SIZE: u64 = 8_388_608;

/// Hard limit on the ring size, applied to both `min_ring_size` and `max_ring_size` whatever the config says, to
/// bound memory (16 bytes a point, so 128 MiB at most). Envoy documents both sizes as "limited to 8M entries".
pub const MAX_RING_SIZE_CAP: u64 = 8_388_608;

/// The ring size gRPC clients cap `min_ring_size` and `max_ring_size` at by default (gRFC A42 as updated by
/// grpc/proposal#338: a client-side `ring_size_cap` defaulting to 4096 entries, because a ring of 8M points costs
/// every client channel far more memory than load balancing needs). Pass it as `max_ring_size` to build the ring a
/// default gRPC client would; [`Ring::build`] does not apply it on its own.
pub const GRPC_DEFAULT_MAX_RING_SIZE: u64 = 4096;

/// The xxHash64 (seed 0) of `bytes`, the hash gRFC A42 specifies (`XXH64()` with seed 0) and Envoy's default
/// `XX_HASH`. Use it for request hash keys so they share the ring's hash space.
#[must_use]
pub fn hash_key(bytes: &[u8]) -> u64 {
    xxh64(bytes, 0)
}

/// Why a [`Ring`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// No endpoints were given.
    #[error("ring_hash: no endpoints to place on the ring")]
    Empty,
    /// Endpoints were given but every weight is zero.
    #[error("ring_hash: all {count} endpoint weights are zero")]
    AllWeightsZero {
        /// How many endpoints were given.
        count: usize,
    },
    /// `min_ring_size` is zero.
    #[error("ring_hash: min_ring_size must be at least 1")]
    ZeroMinRingSize,
    /// `min_ring_size` is above `max_ring_size`.
    #[error("ring_hash: min_ring_size {min} is greater than max_ring_size {max}")]
    MinAboveMax {
        /// The configured `min_ring_size`.
        min: u64,
        /// The configured `max_ring_size`.
        max: u64,
    },
}

/// One point on the ring: its hash and the index of the endpoint owning it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RingEntry {
    hash: u64,
    endpoint: usize,
}

/// A consistent-hashing ring over a list of endpoints, identified by their index in that list.
///
/// Immutable once built: when the endpoint list changes, build a new ring and swap it in.
#[derive(Clone, PartialEq, Eq)]
pub struct Ring {
    /// Sorted by hash (then endpoint, so equal input always gives an equal ring). Never empty.
    entries: Vec<RingEntry>,
    /// Length of the input list, zero-weight endpoints included.
    endpoint_count: usize,
    /// Endpoints with at least one point.
    endpoints_on_ring: usize,
}

impl fmt::Debug for Ring {
    // A ring can hold millions of points: show its shape, not its contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("points", &self.entries.len())
            .field("endpoint_count", &self.endpoint_count)
            .field("endpoints_on_ring", &self.endpoints_on_ring)
            .finish()
    }
}

impl Ring {
    /// Builds the ring for `endpoints`, given as `(hash key, weight)` pairs; lookups return indices into this
    /// sequence.
    ///
    /// Follows gRPC's and Envoy's construction: weights are normalised to sum to 1, the ring gets
    /// `scale = min(ceil(min_normalized_weight * min_ring_size) / min_normalized_weight, max_ring_size)` points (so
    /// the lightest endpoint gets a whole number of them, unless that exceeds `max_ring_size`), handed out in
    /// proportion to the normalised weights through running sums, and point `i` of an endpoint hashes
    /// `"<key>_<i>"`. Both sizes are first capped at [`MAX_RING_SIZE_CAP`].
    ///
    /// An endpoint with weight 0 gets no points and is never returned. (xDS validation rejects such weights
    /// before they get here; gRPC would count them as 1.) A very light endpoint can likewise get no point when
    /// `max_ring_size` is too small to represent its weight.
    ///
    /// # Errors
    ///
    /// [`RingError::ZeroMinRingSize`], [`RingError::MinAboveMax`] (checked on the sizes as given),
    /// [`RingError::Empty`] and [`RingError::AllWeightsZero`].
    pub fn build<K, I>(
        endpoints: I,
        min_ring_size: u64,
        max_ring_size: u64,
    ) -> Result<Self, RingError>
    where
        I: IntoIterator<Item = (K, u32)>,
        K: AsRef<[u8]>,
    {
        if min_ring_size == 0 {
            return Err(RingError::ZeroMinRingSize);
        }
        if min_ring_size > max_ring_size {
            // Envoy rejects a cluster whose minimum_ring_size exceeds its maximum_ring_size.
            return Err(RingError::MinAboveMax {
                min: min_ring_size,
                max: max_ring_size,
            });
        }
        let endpoints: Vec<(K, u32)> = endpoints.into_iter().collect();
        if endpoints.is_empty() {
            return Err(RingError::Empty);
        }
        let total: u128 = endpoints
            .iter()
            .map(|(_, weight)| u128::from(*weight))
            .sum();
        if total == 0 {
            return Err(RingError::AllWeightsZero {
                count: endpoints.len(),
            });
        }

        // gRFC A42 / gRPC: normalised weights and the scale are doubles, as in Envoy; matching their arithmetic
        // is what puts the same points on the ring.
        let total = total as f64;
        let min_normalized_weight = endpoints
            .iter()
            .filter(|(_, weight)| *weight > 0)
            .map(|(_, weight)| f64::from(*weight) / total)
            .fold(1.0, f64::min);
        let scale = ring_scale(min_normalized_weight, min_ring_size, max_ring_size);

        let mut entries = Vec::with_capacity(point_capacity(scale));
        let mut key_buffer = Vec::new();
        let mut endpoints_on_ring = 0;
        // Running sums (Envoy's current_hashes / target_hashes) spread the fractional point counts so the total
        // stays at the scale and every endpoint gets its share rounded either way.
        let mut current_hashes = 0.0_f64;
        let mut target_hashes = 0.0_f64;
        for (endpoint, (key, weight)) in endpoints.iter().enumerate() {
            target_hashes += scale * (f64::from(*weight) / total);
            key_buffer.clear();
            key_buffer.extend_from_slice(key.as_ref());
            key_buffer.push(b'_');
            let prefix_len = key_buffer.len();
            let mut point: u64 = 0;
            while current_hashes < target_hashes {
                key_buffer.truncate(prefix_len);
                push_decimal(&mut key_buffer, point);
                entries.push(RingEntry {
                    hash: xxh64(&key_buffer, 0),
                    endpoint,
                });
                point += 1;
                current_hashes += 1.0;
            }
            if point > 0 {
                endpoints_on_ring += 1;
            }
        }
        entries.sort_unstable_by_key(|entry| (entry.hash, entry.endpoint));

        Ok(Self {
            entries,
            endpoint_count: endpoints.len(),
            endpoints_on_ring,
        })
    }

    /// The index of the endpoint owning `hash`: the owner of the first point whose hash is `>= hash`, wrapping to the
    /// first point past the last. O(log points), no allocation. `None` only if the ring were empty, which
    /// [`Ring::build`] never produces.
    #[inline]
    #[must_use]
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        self.entries
            .get(self.first_at_or_after(hash))
            .map(|entry| entry.endpoint)
    }

    /// The distinct endpoints in ring order starting from the owner of `hash` (so the first item is
    /// [`Ring::lookup`]'s answer), each once, for failing over to the next endpoint on the ring (gRFC A42 picker:
    /// "look at the next unique subchannel in the ring").
    ///
    /// The first two endpoints come without allocating; a third or later one allocates a bitset of
    /// `endpoint_count() / 8` bytes once.
    #[must_use]
    pub fn successors(&self, hash: u64) -> Successors<'_> {
        Successors {
            entries: &self.entries,
            start: self.first_at_or_after(hash),
            visited: 0,
            remaining: self.endpoints_on_ring,
            first: None,
            second: None,
            seen: Vec::new(),
            endpoint_count: self.endpoint_count,
        }
    }

    /// Number of points on the ring.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always `false`: an empty ring cannot be built. Present for the usual `len`/`is_empty` pair.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of endpoints the ring was built from, zero-weight ones included.
    #[must_use]
    pub fn endpoint_count(&self) -> usize {
        self.endpoint_count
    }

    /// Number of endpoints that own at least one point (and so can be returned by a lookup).
    #[must_use]
    pub fn endpoints_on_ring(&self) -> usize {
        self.endpoints_on_ring
    }

    /// The points in ring order, as `(point hash, endpoint index)`: for admin pages and debugging.
    pub fn points(&self) -> impl ExactSizeIterator<Item = (u64, usize)> + '_ {
        self.entries
            .iter()
            .map(|entry| (entry.hash, entry.endpoint))
    }

    /// Position of the first point with a hash `>= hash`, wrapping to 0 past the last point.
    fn first_at_or_after(&self, hash: u64) -> usize {
        let position = self.entries.partition_point(|entry| entry.hash < hash);
        if position == self.entries.len() {
            0
        } else {
            position
        }
    }
}

/// The number of points to aim for (gRPC `RingHash::Ring::Ring`, after Envoy's `RingHashLoadBalancer::Ring`):
/// enough for the lightest endpoint to get `ceil(min_normalized_weight * min_ring_size)` whole points, at most
/// `max_ring_size`, with both sizes first capped at [`MAX_RING_SIZE_CAP`]. The result lies in
/// `1..=MAX_RING_SIZE_CAP` for a `min_normalized_weight` in `(0, 1]` and sizes of at least 1.
fn ring_scale(min_normalized_weight: f64, min_ring_size: u64, max_ring_size: u64) -> f64 {
    let min_ring_size = min_ring_size.min(MAX_RING_SIZE_CAP) as f64;
    let max_ring_size = max_ring_size.min(MAX_RING_SIZE_CAP) as f64;
    ((min_normalized_weight * min_ring_size).ceil() / min_normalized_weight).min(max_ring_size)
}

/// How many points to reserve for a ring of `scale`: the running sums land within one point of it.
fn point_capacity(scale: f64) -> usize {
    // `scale` is finite and within 1..=MAX_RING_SIZE_CAP (see `ring_scale`), so it fits a usize without loss of
    // sign or truncation; the clamp keeps that true even if the arithmetic above ever changed.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let points = scale.clamp(0.0, MAX_RING_SIZE_CAP as f64).ceil() as usize;
    points + 1
}

/// Appends the decimal digits of `value` (the `<i>` of a point's `"<key>_<i>"`) without allocating a string.
fn push_decimal(buffer: &mut Vec<u8>, mut value: u64) {
    let start = buffer.len();
    loop {
        buffer.push(b'0' + u8::try_from(value % 10).unwrap_or(0));
        value /= 10;
        if value == 0 {
            break;
        }
    }
    if let Some(digits) = buffer.get_mut(start..) {
        digits.reverse();
    }
}

/// The distinct endpoints of a [`Ring`] in ring order from a hash; see [`Ring::successors`].
#[derive(Debug, Clone)]
pub struct Successors<'a> {
    entries: &'a [RingEntry],
    /// Position of the first point to visit.
    start: usize,
    /// Points visited so far.
    visited: usize,
    /// Endpoints on the ring not yet yielded.
    remaining: usize,
    first: Option<usize>,
    second: Option<usize>,
    /// One bit per endpoint, allocated when a third endpoint is yielded.
    seen: Vec<u64>,
    endpoint_count: usize,
}

impl Successors<'_> {
    /// Records `endpoint` as yielded; `false` if it already was.
    fn mark_seen(&mut self, endpoint: usize) -> bool {
        if self.first == Some(endpoint) || self.second == Some(endpoint) {
            return false;
        }
        if self.first.is_none() {
            self.first = Some(endpoint);
            return true;
        }
        if self.second.is_none() {
            self.second = Some(endpoint);
            return true;
        }
        if self.seen.is_empty() {
            self.seen = vec![0; self.endpoint_count.div_ceil(64)];
            for earlier in [self.first, self.second].into_iter().flatten() {
                set_bit(&mut self.seen, earlier);
            }
        }
        set_bit(&mut self.seen, endpoint)
    }
}

/// Sets bit `index`; `true` if it was clear.
fn set_bit(bits: &mut [u64], index: usize) -> bool {
    let mask = 1u64 << (index % 64);
    match bits.get_mut(index / 64) {
        Some(word) if *word & mask == 0 => {
            *word |= mask;
            true
        }
        _ => false,
    }
}

impl Iterator for Successors<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let len = self.entries.len();
        while self.remaining > 0 && self.visited < len {
            let position = (self.start + self.visited) % len;
            self.visited += 1;
            let endpoint = self.entries.get(position)?.endpoint;
            if self.mark_seen(endpoint) {
                self.remaining -= 1;
                return Some(endpoint);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // A full turn of the ring meets every endpoint on it, so exactly `remaining` are still to come.
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Successors<'_> {}

impl FusedIterator for Successors<'_> {}

#[cfg(test)]
mod tests;
