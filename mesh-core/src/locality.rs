//! Where an endpoint runs: Envoy's `config.core.v3.Locality` (`region`, `zone`, `sub_zone`).
//!
//! Localities key the weighted and prioritised groups of endpoints in [`crate::endpoint::EndpointSet`] and label
//! telemetry (`grpc.lb.locality`, gRFC A78). Empty strings mean "unspecified", as in Envoy.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// A locality. Two localities are the same when all three parts are equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub struct Locality {
    /// The region, e.g. `us-east1`.
    pub region: Arc<str>,
    /// The zone within the region, e.g. `us-east1-b`.
    pub zone: Arc<str>,
    /// A finer division within the zone (a rack, a Kubernetes node pool).
    pub sub_zone: Arc<str>,
}

impl Locality {
    /// A locality from its three parts (empty for unspecified).
    #[must_use]
    pub fn new(region: &str, zone: &str, sub_zone: &str) -> Self {
        Self {
            region: region.into(),
            zone: zone.into(),
            sub_zone: sub_zone.into(),
        }
    }

    /// Whether no part is set.
    #[must_use]
    pub fn is_unspecified(&self) -> bool {
        self.region.is_empty() && self.zone.is_empty() && self.sub_zone.is_empty()
    }
}

impl fmt::Display for Locality {
    /// The form gRPC uses for the `grpc.lb.locality` label (gRFC A78): `{region="..", zone="..", sub_zone=".."}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{region=\"{}\", zone=\"{}\", sub_zone=\"{}\"}}",
            self.region, self.zone, self.sub_zone
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_grpc_locality_label() {
        let l = Locality::new("us-east", "us-east-1a", "");
        assert_eq!(
            l.to_string(),
            "{region=\"us-east\", zone=\"us-east-1a\", sub_zone=\"\"}"
        );
        assert!(!l.is_unspecified());
        assert!(Locality::default().is_unspecified());
    }
}
