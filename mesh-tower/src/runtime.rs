//! What every part of one service shares: its options and its source of seeds.
//!
//! Each request, connection and background task draws its own [`FastRng`] from here, seeded from one counter: no
//! generator is shared, so no lock, and with [`MeshOptions::rng_seed`] set a test sees the same choices every run
//! (given the same order of requests).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use mesh_core::rng::{FastRng, RandomSource};

use crate::options::MeshOptions;

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) options: MeshOptions,
    seed: u64,
    counter: AtomicU64,
    requests: AtomicU64,
    /// The hash of this service's "channel" (gRFC A42 `io.grpc.channel_id` hash policy).
    pub(crate) channel_id: u64,
}

impl Runtime {
    pub(crate) fn new(options: MeshOptions) -> Self {
        let seed = options.rng_seed.unwrap_or_else(|| {
            std::collections::hash_map::RandomState::new().hash_one(0x6d65_7368_u64)
        });
        Self {
            options,
            seed,
            counter: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            channel_id: splitmix64(seed ^ 0x0063_6861_6e6e_656c),
        }
    }

    /// A fresh seed, different for every call.
    pub(crate) fn next_seed(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        splitmix64(
            self.seed
                .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        )
    }

    /// A generator of its own.
    pub(crate) fn rng(&self) -> FastRng {
        FastRng::from_seed(self.next_seed())
    }

    /// The generator of one request; see [`RequestRng`].
    pub(crate) fn request_rng(&self) -> RequestRng {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        RequestRng {
            first: Some(self.seed.wrapping_add(n.wrapping_mul(GOLDEN_GAMMA))),
            rest: FastRng::from_seed(splitmix64(
                self.seed ^ n.wrapping_mul(0xd1b5_4a32_d192_ed03),
            )),
        }
    }
}

/// 2^64 / φ: successive multiples are spread as evenly as any sequence can be (a Weyl sequence).
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// A request's random source. Its first draw comes from a golden-ratio (Weyl) sequence over the service's requests,
/// the rest from a generator seeded for the request. The first draw is the request's first random choice (usually
/// the weighted-cluster pick, else the locality or endpoint pick), so over `n` requests those choices match their
/// weights to within O(log n / n) instead of the O(1/√n) of independent draws: a 20/80 split of 1,000 requests is
/// 200/800 give or take a request or two. The sequence is not predictable by a caller without the seed.
#[derive(Debug, Clone)]
pub(crate) struct RequestRng {
    first: Option<u64>,
    rest: FastRng,
}

impl RandomSource for RequestRng {
    fn next_u64(&mut self) -> u64 {
        match self.first.take() {
            Some(first) => first,
            None => self.rest.next_u64(),
        }
    }
}

/// SplitMix64's finaliser: spreads consecutive inputs over the whole range.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
