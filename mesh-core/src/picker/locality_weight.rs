//! Effective locality weights: each locality's weight scaled by its availability, as Envoy does, turned into the
//! `u32` weights a [`crate::weighted::WeightedIndex`] takes.
//!
//! Envoy (locality weighted load balancing, overprovisioning factor):
//! `effective_weight = locality_weight × min(1, overprovisioning_factor / 100 × usable / total)`.
//!
//! Precision. Everything is integer arithmetic on exact rationals; no floats.
//! - Each availability `min(100 × total, factor × usable) / (100 × total)` is an exact, reduced fraction, so each
//!   effective weight `weight × availability` is an exact rational.
//! - Exact path: when the effective weights, brought to their least common denominator, are integers that fit `u32`
//!   (as given, or once divided by their greatest common divisor), those integers are the table weights. The shares
//!   are then exactly the rational shares. This covers every fully available priority (the weights are the configured
//!   ones, unchanged) and the usual partial cases (1 of 10 usable at factor 140 is exactly `7/50` of the weight).
//! - Scaled path, otherwise: the largest effective weight becomes `u32::MAX` and every other one
//!   `floor(u32::MAX × weight / largest)`, computed exactly in `u128`, and never less than 1 (a locality with a usable
//!   endpoint keeps some traffic). Each table weight is within 1 of its exact scaled value and the table sums to at
//!   least `u32::MAX`, so every locality's share is within `(n + 1) / u32::MAX` (≈ `(n + 1) × 2.3e-10`) absolute of
//!   the exact share for `n` localities: below 1e-4 for anything up to 400,000 localities in one priority.
//! - Localities larger than 2^24 endpoints have their availability rounded to a multiple of 2^-24 first, so that
//!   every product above provably fits in a `u128`.

/// What the effective weight of one locality depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LocalityLoad {
    /// The configured locality weight.
    pub(super) weight: u32,
    /// Endpoints that can take traffic now.
    pub(super) usable: usize,
    /// Endpoints that could take traffic if all were usable (the denominator of the availability).
    pub(super) total: usize,
}

/// The largest endpoint count for which availability is exact (2^24); see the module docs.
const MAX_EXACT_ENDPOINTS: u128 = 1 << 24;

/// `a` and `b`'s greatest common divisor; `gcd(0, b) == b`.
fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Widens a count; `usize` is at most 64 bits on every supported target.
fn widen(count: usize) -> u128 {
    u64::try_from(count).map_or(u128::from(u64::MAX), u128::from)
}

/// The availability `min(1, factor / 100 × usable / total)` as a reduced fraction `(numerator, denominator)`, with
/// `numerator <= denominator < 2^31`.
fn availability(load: LocalityLoad, overprovisioning_factor: u32) -> (u128, u128) {
    // Envoy rejects a factor of 0; treat it as the smallest valid one rather than starving every locality.
    let factor = u128::from(overprovisioning_factor.max(1));
    let mut total = widen(load.total).max(1);
    let mut usable = widen(load.usable).min(total);
    if total > MAX_EXACT_ENDPOINTS {
        usable = (usable * MAX_EXACT_ENDPOINTS / total).max(u128::from(usable > 0));
        total = MAX_EXACT_ENDPOINTS;
    }
    // Envoy: a locality counts as fully available until `usable / total × factor` drops below 100%.
    let denominator = 100 * total;
    let numerator = (factor * usable).min(denominator);
    let divisor = gcd(numerator, denominator).max(1);
    (numerator / divisor, denominator / divisor)
}

/// The effective weights of `loads`, aligned with them, as table weights (see the module docs for the precision).
/// A load with a positive weight and at least one usable endpoint always gets a positive table weight.
pub(super) fn effective_weights(loads: &[LocalityLoad], overprovisioning_factor: u32) -> Vec<u32> {
    // Effective weight i is exactly `numerator / denominator`, with numerator < 2^32 × 2^31 and denominator < 2^31.
    let fractions: Vec<(u128, u128)> = loads
        .iter()
        .map(|&load| {
            let (numerator, denominator) = availability(load, overprovisioning_factor);
            (u128::from(load.weight) * numerator, denominator)
        })
        .collect();
    exact_weights(&fractions).unwrap_or_else(|| scaled_weights(&fractions))
}

/// The effective weights as integers over their least common denominator, if they fit `u32`.
fn exact_weights(fractions: &[(u128, u128)]) -> Option<Vec<u32>> {
    let mut common_denominator: u128 = 1;
    for &(_, denominator) in fractions {
        let divisor = gcd(common_denominator, denominator).max(1);
        common_denominator = common_denominator.checked_mul(denominator / divisor)?;
    }
    let integers: Vec<u128> = fractions
        .iter()
        .map(|&(numerator, denominator)| {
            numerator.checked_mul(common_denominator / denominator.max(1))
        })
        .collect::<Option<_>>()?;
    let fit = |divisor: u128| -> Option<Vec<u32>> {
        integers
            .iter()
            .map(|&integer| u32::try_from(integer / divisor).ok())
            .collect()
    };
    // Keep the configured numbers when they fit (readable config dumps); reduce only when that makes them fit.
    fit(1).or_else(|| {
        fit(integers
            .iter()
            .fold(0, |acc, &integer| gcd(acc, integer))
            .max(1))
    })
}

/// The effective weights scaled so the largest is `u32::MAX`.
fn scaled_weights(fractions: &[(u128, u128)]) -> Vec<u32> {
    // Compare `a/b` with `c/d` as `a × d` with `c × b`: below 2^63 × 2^31, no overflow.
    let largest = fractions
        .iter()
        .copied()
        .max_by(|&(a, b), &(c, d)| (a * d).cmp(&(c * b)));
    let Some((largest_numerator, largest_denominator)) =
        largest.filter(|&(numerator, _)| numerator > 0)
    else {
        return vec![0; fractions.len()];
    };
    fractions
        .iter()
        .map(|&(numerator, denominator)| {
            // (numerator / denominator) / (largest_numerator / largest_denominator) × u32::MAX, at most u32::MAX.
            // Products stay below 2^63 × 2^31 × 2^32 = 2^126.
            let scaled = numerator * largest_denominator * u128::from(u32::MAX)
                / (denominator * largest_numerator).max(1);
            let floor = u32::from(numerator > 0);
            u32::try_from(scaled).unwrap_or(u32::MAX).max(floor)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation
    )]

    use proptest::prelude::*;

    use super::*;

    fn load(weight: u32, usable: usize, total: usize) -> LocalityLoad {
        LocalityLoad {
            weight,
            usable,
            total,
        }
    }

    /// Envoy's formula in floating point, as the reference.
    fn reference_shares(loads: &[LocalityLoad], factor: u32) -> Vec<f64> {
        let factor = f64::from(factor.max(1));
        let effective: Vec<f64> = loads
            .iter()
            .map(|l| {
                f64::from(l.weight) * (factor / 100.0 * l.usable as f64 / l.total as f64).min(1.0)
            })
            .collect();
        let sum: f64 = effective.iter().sum();
        effective.iter().map(|e| e / sum).collect()
    }

    fn shares(weights: &[u32]) -> Vec<f64> {
        let sum: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        weights.iter().map(|&w| f64::from(w) / sum).collect()
    }

    #[test]
    fn fully_available_localities_keep_their_configured_weights() {
        assert_eq!(
            effective_weights(&[load(1, 3, 3), load(3, 5, 5)], 140),
            vec![1, 3]
        );
        assert_eq!(
            effective_weights(&[load(2, 1, 1), load(4, 1, 1)], 140),
            vec![2, 4]
        );
    }

    #[test]
    fn one_of_ten_usable_at_factor_140_is_exactly_fourteen_hundredths() {
        // 1.4 × 1/10 = 0.14 = 7/50, against a fully available locality of the same weight.
        assert_eq!(
            effective_weights(&[load(1, 1, 10), load(1, 10, 10)], 140),
            vec![7, 50]
        );
        // Above 100 / 140 ≈ 71.4% usable nothing is scaled.
        assert_eq!(
            effective_weights(&[load(5, 8, 10), load(5, 10, 10)], 140),
            vec![5, 5]
        );
    }

    #[test]
    fn weights_too_large_for_exact_integers_are_scaled_to_the_largest() {
        let weights = effective_weights(
            &[
                load(u32::MAX, 1, 3),
                load(u32::MAX - 1, 2, 7),
                load(1, 1, 1),
            ],
            100,
        );
        assert_eq!(weights[0], u32::MAX);
        assert!(weights.iter().all(|&w| w > 0), "{weights:?}");
    }

    #[test]
    fn factor_zero_is_treated_as_one() {
        assert_eq!(
            effective_weights(&[load(1, 1, 2), load(1, 2, 2)], 0),
            effective_weights(&[load(1, 1, 2), load(1, 2, 2)], 1)
        );
    }

    #[test]
    fn huge_localities_do_not_overflow() {
        let weights = effective_weights(
            &[
                load(u32::MAX, 1, usize::MAX),
                load(u32::MAX, usize::MAX, usize::MAX),
            ],
            140,
        );
        // Availability is rounded to 2^-24 first: one usable endpoint counts as 1 in 2^24.
        let want = 1.4 / f64::from(1u32 << 24);
        let got = f64::from(weights[0]) / f64::from(weights[1]);
        assert!(
            weights[0] > 0 && (got - want).abs() <= want * 1e-9,
            "{weights:?}"
        );
    }

    proptest! {
        #[test]
        fn shares_are_within_the_documented_bound(
            loads in prop::collection::vec(
                (any::<u32>().prop_map(|w| w.max(1)), 1usize..5_000)
                    .prop_flat_map(|(weight, total)| (Just(weight), 1..=total, Just(total)))
                    .prop_map(|(weight, usable, total)| load(weight, usable, total)),
                1..8,
            ),
            factor in 0u32..1_000,
        ) {
            let weights = effective_weights(&loads, factor);
            prop_assert_eq!(weights.len(), loads.len());
            prop_assert!(weights.iter().all(|&w| w > 0));
            let bound = (loads.len() as f64 + 1.0) / f64::from(u32::MAX) + 1e-12;
            for (got, want) in shares(&weights).iter().zip(reference_shares(&loads, factor)) {
                prop_assert!((got - want).abs() <= bound, "{got} vs {want} for {weights:?}");
            }
        }
    }
}
