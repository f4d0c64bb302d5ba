//! Weighted random choice in constant time: an exact, integer Vose alias table.
//!
//! What it solves: picking index `i` with probability `w_i / sum(w)` on the request path, for weighted clusters
//! (gRFC A28, Envoy `RouteAction.weighted_clusters`), locality weights (gRFC A27 `weighted_target`) and endpoint
//! weights (Envoy `LbEndpoint.load_balancing_weight`). A pick costs one or two draws, a table read and a comparison,
//! whatever the number of entries, and never allocates. Building the table is O(n) and belongs off the request path,
//! next to the config conversion that produced the weights.
//!
//! The table is built with integers only (Vose's alias method, with every column scaled to `sum(w)` instead of 1), so
//! the probability it implies for each index is exactly `w_i / sum(w)`: no float rounding, no drift for very skewed or
//! very many weights. The only inexactness left is the generator's own (see [`RandomSource::below`]).
//!
//! What it does not solve: load-aware picking (least request, EWMA), consistent hashing ([`crate::ring_hash`]),
//! priorities ([`crate::picker`]), or deciding what a zero weight means upstream. Zero weights are accepted so indices
//! stay aligned with the caller's list, and such entries are never picked. Weights cannot change in place: build a new
//! table and swap it in.
//!
//! ```
//! use mesh_core::rng::FastRng;
//! use mesh_core::weighted::WeightedIndex;
//!
//! let clusters = WeightedIndex::new([90, 10, 0])?;
//! let mut rng = FastRng::from_seed(7);
//! let picked = clusters.pick(&mut rng);
//! assert!(picked < 2, "a zero-weight entry is never picked");
//! # Ok::<(), mesh_core::weighted::WeightedError>(())
//! ```

use crate::rng::RandomSource;

/// Why a [`WeightedIndex`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WeightedError {
    /// No weights were given.
    #[error("weighted choice: no entries to choose from")]
    Empty,
    /// Every weight is zero, so nothing can be picked.
    #[error("weighted choice: all weights are zero")]
    AllZero,
    /// More entries than a table can index (`u32::MAX`); the bound keeps every product of a weight and the entry
    /// count inside a `u64`.
    #[error("weighted choice: more than {} entries", u32::MAX)]
    TooMany,
}

/// One column of the alias table. Every column has a height of `total` (the sum of the weights); the first `keep`
/// units belong to the column's own index, the rest to `alias`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Column {
    keep: u64,
    alias: usize,
}

/// A table for picking an index with probability proportional to its weight, in O(1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedIndex {
    weights: Vec<u32>,
    columns: Vec<Column>,
    /// Sum of the weights: the height of every column. Never zero.
    total: u64,
    /// Number of entries, kept as the bound for the column draw.
    count: u64,
    /// First index with a non-zero weight: returned should a lookup that cannot fail ever fail, so even then a
    /// zero-weight entry is never picked.
    fallback: usize,
}

impl WeightedIndex {
    /// Builds the alias table for `weights`, in O(n) time and memory.
    ///
    /// # Errors
    ///
    /// [`WeightedError::Empty`] for no weights, [`WeightedError::AllZero`] when they sum to zero and
    /// [`WeightedError::TooMany`] for more than `u32::MAX` entries.
    pub fn new(weights: impl IntoIterator<Item = u32>) -> Result<Self, WeightedError> {
        let weights: Vec<u32> = weights.into_iter().collect();
        if weights.is_empty() {
            return Err(WeightedError::Empty);
        }
        let count = u32::try_from(weights.len()).map_err(|_| WeightedError::TooMany)?;
        let count = u64::from(count);
        // At most u32::MAX weights of at most u32::MAX each: the sum, and each weight times the count, fit in a u64.
        let total: u64 = weights.iter().map(|&weight| u64::from(weight)).sum();
        if total == 0 {
            return Err(WeightedError::AllZero);
        }

        // Vose's alias method over integers: scale weight i to `w_i * n`, so the columns' average height is exactly
        // `total`. Pair a short column (below `total`) with a tall one, fill the short one up from the tall one, and
        // repeat. Each step removes `total` from the remaining sum and one column from the count, so once the short
        // columns run out the remaining tall ones are exactly `total` high: nothing is rounded anywhere.
        let mut scaled: Vec<u64> = weights
            .iter()
            .map(|&weight| u64::from(weight) * count)
            .collect();
        let mut columns: Vec<Column> = (0..weights.len())
            .map(|index| Column {
                keep: total,
                alias: index,
            })
            .collect();
        let (mut short, mut tall): (Vec<usize>, Vec<usize>) = (0..weights.len())
            .partition(|&index| scaled.get(index).is_some_and(|&height| height < total));

        while let (Some(&short_index), Some(&tall_index)) = (short.last(), tall.last()) {
            short.pop();
            tall.pop();
            let short_height = scaled.get(short_index).copied().unwrap_or(0);
            if let Some(column) = columns.get_mut(short_index) {
                *column = Column {
                    keep: short_height,
                    alias: tall_index,
                };
            }
            if let Some(tall_height) = scaled.get_mut(tall_index) {
                // `short_height < total <= *tall_height`, so this neither underflows nor leaves the tall column
                // lower than the short one was.
                *tall_height -= total - short_height;
                if *tall_height < total {
                    short.push(tall_index);
                } else {
                    tall.push(tall_index);
                }
            }
        }
        // Whatever remains (only tall columns, by the argument above) keeps its full height and its own index.

        let fallback = weights.iter().position(|&weight| weight > 0).unwrap_or(0);
        Ok(Self {
            weights,
            columns,
            total,
            count,
            fallback,
        })
    }

    /// Picks an index with probability `weight(i) / total_weight()`.
    ///
    /// Draws once for the column and, unless the column belongs wholly to its own index, once more for the split
    /// within it. A single-entry table draws nothing. Never allocates; zero-weight entries are never returned.
    #[inline]
    #[must_use]
    pub fn pick(&self, rng: &mut impl RandomSource) -> usize {
        if self.count == 1 {
            return self.fallback;
        }
        let drawn = rng.below(self.count);
        let Some((index, column)) = usize::try_from(drawn)
            .ok()
            .and_then(|index| self.columns.get(index).map(|column| (index, column)))
        else {
            return self.fallback;
        };
        if column.keep == self.total || rng.below(self.total) < column.keep {
            index
        } else {
            column.alias
        }
    }

    /// Number of entries, zero-weight ones included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Always `false`: an empty table cannot be built. Present for the usual `len`/`is_empty` pair.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Sum of all weights.
    #[must_use]
    pub fn total_weight(&self) -> u64 {
        self.total
    }

    /// The weight of entry `index`, or `None` past the end.
    #[must_use]
    pub fn weight(&self, index: usize) -> Option<u32> {
        self.weights.get(index).copied()
    }

    /// For each index, the number of the `len() * total_weight()` equally likely (column, split) outcomes of a pick
    /// that return it. The table is exact when entry `i` gets `len() * weight(i)` of them.
    #[cfg(test)]
    fn outcome_counts(&self) -> Vec<u128> {
        let mut counts = vec![0u128; self.columns.len()];
        for (index, column) in self.columns.iter().enumerate() {
            if let Some(own) = counts.get_mut(index) {
                *own += u128::from(column.keep);
            }
            if let Some(alias) = counts.get_mut(column.alias) {
                *alias += u128::from(self.total - column.keep);
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]

    use proptest::prelude::*;

    use super::*;
    use crate::rng::FastRng;

    /// Hands out pre-chosen results for `below`, so a test can enumerate every outcome of a pick.
    struct Scripted {
        draws: Vec<u64>,
        used: usize,
    }

    impl Scripted {
        fn new(draws: &[u64]) -> Self {
            Self {
                draws: draws.to_vec(),
                used: 0,
            }
        }
    }

    impl RandomSource for Scripted {
        fn next_u64(&mut self) -> u64 {
            unreachable!("the alias table only draws through `below`")
        }

        fn below(&mut self, bound: u64) -> u64 {
            let value = self.draws[self.used];
            self.used += 1;
            assert!(value < bound, "scripted draw {value} out of 0..{bound}");
            value
        }
    }

    /// Runs `pick` once for every (column, split) pair and counts the results: with uniform draws every pair is
    /// equally likely, so the counts are the exact probabilities times `len * total`.
    fn enumerate_picks(table: &WeightedIndex) -> Vec<u64> {
        let mut counts = vec![0u64; table.len()];
        for column in 0..table.count {
            for split in 0..table.total {
                let mut rng = Scripted::new(&[column, split]);
                counts[table.pick(&mut rng)] += 1;
            }
        }
        counts
    }

    fn assert_exact(weights: &[u32]) {
        let table = WeightedIndex::new(weights.iter().copied()).unwrap();
        let n = weights.len() as u128;
        let expected: Vec<u128> = weights.iter().map(|&w| u128::from(w) * n).collect();
        assert_eq!(
            table.outcome_counts(),
            expected,
            "implied table for {weights:?}"
        );
        let enumerated: Vec<u128> = enumerate_picks(&table)
            .into_iter()
            .map(u128::from)
            .collect();
        assert_eq!(enumerated, expected, "enumerated picks for {weights:?}");
    }

    fn assert_shares_close(weights: &[u32], seed: u64) {
        const DRAWS: usize = 100_000;
        let table = WeightedIndex::new(weights.iter().copied()).unwrap();
        let mut rng = FastRng::from_seed(seed);
        let mut counts = vec![0usize; weights.len()];
        for _ in 0..DRAWS {
            counts[table.pick(&mut rng)] += 1;
        }
        let total = table.total_weight() as f64;
        for (index, (&weight, &count)) in weights.iter().zip(&counts).enumerate() {
            let expected = f64::from(weight) / total;
            let observed = count as f64 / DRAWS as f64;
            assert!(
                (observed - expected).abs() < 0.01,
                "index {index}: observed {observed:.4}, expected {expected:.4} for {weights:?}"
            );
            if weight == 0 {
                assert_eq!(count, 0, "zero-weight index {index} was picked");
            }
        }
    }

    #[test]
    fn small_tables_imply_exactly_the_weight_shares() {
        for weights in [
            &[7][..],
            &[1, 1],
            &[1, 2, 3],
            &[3, 3, 3],
            &[5, 0, 1],
            &[0, 0, 7],
            &[1, 1000, 10, 0, 5000],
            &[2, 9, 4, 4, 1, 0, 6],
        ] {
            assert_exact(weights);
        }
    }

    #[test]
    fn single_entry_picks_without_drawing_and_full_columns_draw_once() {
        let single = WeightedIndex::new([42]).unwrap();
        let mut rng = Scripted::new(&[]);
        assert_eq!(single.pick(&mut rng), 0);
        assert_eq!(rng.used, 0);

        let uniform = WeightedIndex::new([5, 5, 5, 5]).unwrap();
        let mut rng = Scripted::new(&[2]);
        assert_eq!(uniform.pick(&mut rng), 2);
        assert_eq!(rng.used, 1);

        let skewed = WeightedIndex::new([1, 3]).unwrap();
        let mut rng = Scripted::new(&[0, 0]);
        assert_eq!(skewed.pick(&mut rng), 0);
        assert_eq!(rng.used, 2);
    }

    #[test]
    fn zero_weights_are_never_picked() {
        let table = WeightedIndex::new([0, 3, 0, 0, 1, 0]).unwrap();
        let mut rng = FastRng::from_seed(11);
        for _ in 0..10_000 {
            let picked = table.pick(&mut rng);
            assert!(
                picked == 1 || picked == 4,
                "picked zero-weight index {picked}"
            );
        }
    }

    #[test]
    fn shares_match_weights_within_one_percent() {
        assert_shares_close(&[1, 1, 1, 1], 1);
        assert_shares_close(&[90, 10], 2);
        assert_shares_close(&[1, 1000, 10, 0, 5000], 3);
        assert_shares_close(&[u32::MAX, 1, u32::MAX / 2, 0], 4);

        let mut weight_rng = FastRng::from_seed(5);
        let random: Vec<u32> = (0..100).map(|_| weight_rng.below(1_000) as u32).collect();
        assert_shares_close(&random, 6);
    }

    #[test]
    fn accessors_report_the_input() {
        let table = WeightedIndex::new([3, 0, 4]).unwrap();
        assert_eq!(table.len(), 3);
        assert!(!table.is_empty());
        assert_eq!(table.total_weight(), 7);
        assert_eq!(table.weight(0), Some(3));
        assert_eq!(table.weight(1), Some(0));
        assert_eq!(table.weight(3), None);
    }

    #[test]
    fn invalid_inputs_are_rejected() {
        assert_eq!(WeightedIndex::new([]), Err(WeightedError::Empty));
        assert_eq!(WeightedIndex::new([0, 0, 0]), Err(WeightedError::AllZero));
        assert_eq!(
            WeightedError::AllZero.to_string(),
            "weighted choice: all weights are zero"
        );
    }

    fn weight_strategy() -> impl Strategy<Value = u32> {
        prop_oneof![Just(0u32), 1u32..20, any::<u32>()]
    }

    proptest! {
        #[test]
        fn any_positive_weights_build_an_exact_table(
            weights in proptest::collection::vec(weight_strategy(), 1..64),
            seed in any::<u64>(),
        ) {
            prop_assume!(weights.iter().any(|&w| w > 0));
            let table = WeightedIndex::new(weights.iter().copied()).unwrap();
            prop_assert_eq!(table.len(), weights.len());

            // Exact: P(i) = count_i / (n * total) must equal w_i / total, checked by cross-multiplying.
            let n = weights.len() as u128;
            let total = u128::from(table.total_weight());
            for (index, (&count, &weight)) in table.outcome_counts().iter().zip(&weights).enumerate() {
                prop_assert_eq!(
                    count * total,
                    u128::from(weight) * n * total,
                    "index {} of {:?}", index, weights
                );
            }

            let mut rng = FastRng::from_seed(seed);
            for _ in 0..256 {
                let picked = table.pick(&mut rng);
                prop_assert!(picked < weights.len());
                prop_assert!(weights[picked] > 0, "picked zero-weight index {}", picked);
            }
        }
    }
}
