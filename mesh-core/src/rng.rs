//! Injectable randomness for the pickers.
//!
//! Every random choice in mesh-core (weighted clusters, localities, endpoints, drops, runtime fractions) draws from a
//! [`RandomSource`], so tests can seed it and get the same picks every run. [`FastRng`] is the default: a small,
//! non-cryptographic generator (wyrand) that costs a few instructions per draw and needs no locking when each task or
//! thread holds its own.
//!
//! Not for anything security-relevant: nothing here is a CSPRNG.

/// A source of uniformly distributed 64-bit values.
pub trait RandomSource {
    /// The next uniformly distributed `u64`.
    fn next_u64(&mut self) -> u64;

    /// A uniformly distributed value in `0..bound`; `0` when `bound` is `0`.
    ///
    /// Uses Lemire's multiply-shift reduction: no division, and a bias below `bound / 2^64`, far beneath anything a
    /// load balancer can observe.
    fn below(&mut self, bound: u64) -> u64 {
        let wide = u128::from(self.next_u64()) * u128::from(bound);
        // The high half of a 128-bit product of two u64 always fits in u64.
        #[allow(clippy::cast_possible_truncation)]
        let high = (wide >> 64) as u64;
        high
    }
}

impl<R: RandomSource + ?Sized> RandomSource for &mut R {
    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}

/// wyrand: a fast 64-bit generator with a 64-bit state, good statistical quality for load balancing.
#[derive(Debug, Clone)]
pub struct FastRng {
    state: u64,
}

impl FastRng {
    /// A generator whose sequence is fixed by `seed` (for tests and reproducible runs).
    #[must_use]
    pub const fn from_seed(seed: u64) -> Self {
        Self { state: seed }
    }
}

impl RandomSource for FastRng {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0xa076_1d64_78bd_642f);
        let mixed = u128::from(self.state) * u128::from(self.state ^ 0xe703_7ed1_a0b4_28db);
        #[allow(clippy::cast_possible_truncation)]
        let folded = ((mixed >> 64) as u64) ^ (mixed as u64);
        folded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_different_seeds_differ() {
        let mut a = FastRng::from_seed(7);
        let mut b = FastRng::from_seed(7);
        let mut c = FastRng::from_seed(8);
        let seq_a: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let seq_b: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        let seq_c: Vec<u64> = (0..16).map(|_| c.next_u64()).collect();
        assert_eq!(seq_a, seq_b);
        assert_ne!(seq_a, seq_c);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = FastRng::from_seed(1);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let v = rng.below(10);
            assert!(v < 10);
            if let Some(slot) = usize::try_from(v).ok().and_then(|i| seen.get_mut(i)) {
                *slot += 1;
            }
        }
        // Each bucket expects 1,000 draws; a working generator lands well inside 800..1200.
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        assert_eq!(rng.below(0), 0);
    }
}
