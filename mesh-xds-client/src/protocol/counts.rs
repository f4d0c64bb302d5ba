//! How many subscribed resources stand in each cache state, per authority and type: gRFC A78's
//! `grpc.xds_client.resources` gauge, counted from the state machine's cache.
//!
//! Not counted: names that cannot be routed to any server ([`ResourceStatus::Unroutable`]: an unknown authority or
//! a malformed `xdstp://` name). A78 has no cache state for them, and they never reach a server.

use std::collections::BTreeMap;
use std::fmt::{self, Debug};

use mesh_core::rng::RandomSource;

use crate::resource::ResourceKind;

use super::name::AuthorityKey;
use super::state::XdsState;
use super::types::ResourceStatus;

/// gRFC A78's `grpc.xds.cache_state` of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CacheState {
    /// Requested from the server, not received yet.
    Requested,
    /// The server said it does not exist (timer expired, or left out of a Listener/Cluster response).
    DoesNotExist,
    /// Received and valid.
    Acked,
    /// Received but invalid, with no earlier valid version cached.
    Nacked,
    /// An earlier valid version is cached (and serving), but the latest update was invalid (gRFC A88).
    NackedButCached,
}

impl CacheState {
    /// Every state, in A78's order.
    pub const ALL: [Self; 5] = [
        Self::Requested,
        Self::DoesNotExist,
        Self::Acked,
        Self::Nacked,
        Self::NackedButCached,
    ];

    /// The label value A78 gives the state (`requested`, `does_not_exist`, `acked`, `nacked`,
    /// `nacked_but_cached`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::DoesNotExist => "does_not_exist",
            Self::Acked => "acked",
            Self::Nacked => "nacked",
            Self::NackedButCached => "nacked_but_cached",
        }
    }

    /// The state of a resource with `status`, holding a cached value or not; `None` for unroutable names.
    const fn of(status: ResourceStatus, cached: bool) -> Option<Self> {
        match status {
            ResourceStatus::Requested => Some(Self::Requested),
            ResourceStatus::DoesNotExist => Some(Self::DoesNotExist),
            ResourceStatus::Acked => Some(Self::Acked),
            ResourceStatus::Nacked if cached => Some(Self::NackedButCached),
            ResourceStatus::Nacked => Some(Self::Nacked),
            ResourceStatus::Unroutable => None,
        }
    }
}

impl fmt::Display for CacheState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one count is of.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct ResourceGroup {
    /// The `xdstp://` authority (empty for `xdstp:///` names); `None` for old-style names, which A78 labels
    /// `#old`.
    pub authority: Option<String>,
    /// The cache state.
    pub cache_state: CacheState,
    /// The resource type.
    pub kind: ResourceKind,
}

/// The number of subscribed resources per [`ResourceGroup`]. Groups with no resource are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceCounts {
    counts: BTreeMap<ResourceGroup, u64>,
}

impl ResourceCounts {
    /// Every non-zero count, ordered by authority (old-style first), state, then type.
    pub fn iter(&self) -> impl Iterator<Item = (&ResourceGroup, u64)> + '_ {
        self.counts.iter().map(|(group, count)| (group, *count))
    }

    /// The count of one group; `authority` is `None` for old-style names.
    #[must_use]
    pub fn get(&self, authority: Option<&str>, cache_state: CacheState, kind: ResourceKind) -> u64 {
        let group = ResourceGroup {
            authority: authority.map(str::to_owned),
            cache_state,
            kind,
        };
        self.counts.get(&group).copied().unwrap_or(0)
    }

    /// Whether no resource is counted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

impl<R: Clone + PartialEq + Debug, G: RandomSource> XdsState<R, G> {
    /// How many subscribed resources stand in each cache state, per authority and type (gRFC A78). One pass over
    /// the cache: call it when something changed, not per request.
    #[must_use]
    pub fn resource_counts(&self) -> ResourceCounts {
        // Counted with borrowed authorities first, so only the few groups allocate.
        let mut borrowed: BTreeMap<(Option<&str>, CacheState, ResourceKind), u64> = BTreeMap::new();
        for ((kind, _), entry) in &self.resources {
            let Some(authority) = entry.authority.as_ref() else {
                continue;
            };
            let Some(cache_state) = CacheState::of(entry.status, entry.value.is_some()) else {
                continue;
            };
            let authority = match authority {
                AuthorityKey::Default => None,
                AuthorityKey::Named(name) => Some(name.as_str()),
            };
            *borrowed.entry((authority, cache_state, *kind)).or_insert(0) += 1;
        }
        let counts = borrowed
            .into_iter()
            .map(|((authority, cache_state, kind), count)| {
                let group = ResourceGroup {
                    authority: authority.map(str::to_owned),
                    cache_state,
                    kind,
                };
                (group, count)
            })
            .collect();
        ResourceCounts { counts }
    }
}
