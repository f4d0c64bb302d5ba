//! Envoy's `type.v3.FractionalPercent`: a share expressed as a numerator over 100, 10,000 or 1,000,000.
//!
//! Used by runtime-fraction route matching, fault injection percentages and drop overloads. Evaluated with integers
//! and an injectable [`RandomSource`], so a seeded test sees exactly the same decisions every run.

use serde::Serialize;

use crate::rng::RandomSource;

/// The denominator of a [`FractionalPercent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum Denominator {
    /// Per hundred.
    Hundred,
    /// Per ten thousand.
    TenThousand,
    /// Per million.
    Million,
}

impl Denominator {
    /// The denominator's value.
    #[must_use]
    pub const fn value(self) -> u32 {
        match self {
            Self::Hundred => 100,
            Self::TenThousand => 10_000,
            Self::Million => 1_000_000,
        }
    }
}

/// `numerator / denominator`. A numerator above the denominator means "always" (Envoy clamps it the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct FractionalPercent {
    /// The numerator.
    pub numerator: u32,
    /// The denominator.
    pub denominator: Denominator,
}

impl FractionalPercent {
    /// `numerator / denominator`.
    #[must_use]
    pub const fn new(numerator: u32, denominator: Denominator) -> Self {
        Self {
            numerator,
            denominator,
        }
    }

    /// `percent / 100`.
    #[must_use]
    pub const fn percent(percent: u32) -> Self {
        Self::new(percent, Denominator::Hundred)
    }

    /// Always true.
    pub const ALWAYS: Self = Self::percent(100);
    /// Never true.
    pub const NEVER: Self = Self::percent(0);

    /// The numerator clamped to the denominator, as a share per million (exact for every denominator).
    #[must_use]
    pub const fn per_million(self) -> u32 {
        let numerator = if self.numerator > self.denominator.value() {
            self.denominator.value()
        } else {
            self.numerator
        };
        numerator * (1_000_000 / self.denominator.value())
    }

    /// Whether a uniformly drawn value `0..denominator` falls below the numerator.
    pub fn sample(self, rng: &mut impl RandomSource) -> bool {
        let per_million = self.per_million();
        if per_million == 0 {
            return false;
        }
        if per_million >= 1_000_000 {
            return true;
        }
        rng.below(1_000_000) < u64::from(per_million)
    }

    /// Whether an already drawn `value` (uniform over `0..denominator`, as gRPC's `runtime_fraction` uses)
    /// falls under this fraction.
    #[must_use]
    pub fn contains_draw(self, value: u32) -> bool {
        value < self.numerator.min(self.denominator.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::FastRng;

    #[test]
    fn per_million_is_exact_and_clamped() {
        assert_eq!(FractionalPercent::percent(10).per_million(), 100_000);
        assert_eq!(
            FractionalPercent::new(5, Denominator::TenThousand).per_million(),
            500
        );
        assert_eq!(
            FractionalPercent::new(7, Denominator::Million).per_million(),
            7
        );
        assert_eq!(FractionalPercent::percent(250).per_million(), 1_000_000);
    }

    #[test]
    fn sample_rate_follows_the_fraction() {
        let mut rng = FastRng::from_seed(3);
        let f = FractionalPercent::percent(25);
        let hits = (0..100_000).filter(|_| f.sample(&mut rng)).count();
        assert!((24_000..26_000).contains(&hits), "{hits}");
        assert!((0..1000).all(|_| FractionalPercent::ALWAYS.sample(&mut rng)));
        assert!((0..1000).all(|_| !FractionalPercent::NEVER.sample(&mut rng)));
    }
}
