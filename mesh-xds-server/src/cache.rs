//! The snapshot cache: one [`Snapshot`] per node id, and a default for every other node.
//!
//! Setting a snapshot wakes every ADS stream; each stream compares the snapshot for its own node with what it last
//! sent and pushes only the resource types whose subscribed resources changed. The cache holds no per-stream state.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::watch;

use crate::snapshot::Snapshot;

/// Snapshots by node id, with a default. Cheap to clone: clones share the same cache.
#[derive(Debug, Clone)]
pub struct SnapshotCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: RwLock<State>,
    /// Bumped after every change; streams wait on it.
    generation: watch::Sender<u64>,
}

#[derive(Debug)]
struct State {
    default: Arc<Snapshot>,
    by_node: HashMap<String, Arc<Snapshot>>,
}

impl Default for SnapshotCache {
    fn default() -> Self {
        Self::new(Snapshot::empty())
    }
}

impl SnapshotCache {
    /// A cache serving `default` to every node.
    #[must_use]
    pub fn new(default: Snapshot) -> Self {
        let (generation, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                state: RwLock::new(State {
                    default: Arc::new(default),
                    by_node: HashMap::new(),
                }),
                generation,
            }),
        }
    }

    /// Replaces the snapshot of `node` (or the default snapshot when `node` is `None`) and pushes the changes to
    /// every connected stream of the nodes it applies to.
    pub fn set_snapshot(&self, node: Option<&str>, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        {
            let mut state = self
                .inner
                .state
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            match node {
                Some(node) => {
                    state.by_node.insert(node.to_owned(), snapshot);
                }
                None => state.default = snapshot,
            }
        }
        self.inner
            .generation
            .send_modify(|generation| *generation += 1);
    }

    /// Forgets the snapshot of `node`, which falls back to the default snapshot. Returns whether it had one.
    pub fn clear_snapshot(&self, node: &str) -> bool {
        let removed = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .by_node
            .remove(node)
            .is_some();
        if removed {
            self.inner
                .generation
                .send_modify(|generation| *generation += 1);
        }
        removed
    }

    /// The snapshot served to `node`: its own, else the default. `None` (a client that sent no node) gets the
    /// default.
    #[must_use]
    pub fn snapshot(&self, node: Option<&str>) -> Arc<Snapshot> {
        let state = self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            node.and_then(|node| state.by_node.get(node))
                .unwrap_or(&state.default),
        )
    }

    /// A receiver that changes after every [`Self::set_snapshot`] or [`Self::clear_snapshot`].
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::type_url;

    #[test]
    fn node_snapshot_overrides_default_and_clears_back() {
        let cache = SnapshotCache::new(Snapshot::builder().version("d").build());
        let mut changes = cache.subscribe();
        cache.set_snapshot(Some("n1"), Snapshot::builder().version("n").build());
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        assert_eq!(cache.snapshot(Some("n1")).version(type_url::CLUSTER), "n");
        assert_eq!(cache.snapshot(Some("n2")).version(type_url::CLUSTER), "d");
        assert_eq!(cache.snapshot(None).version(type_url::CLUSTER), "d");
        assert!(cache.clear_snapshot("n1"));
        assert!(changes.has_changed().unwrap());
        assert!(!cache.clear_snapshot("n1"));
        assert_eq!(cache.snapshot(Some("n1")).version(type_url::CLUSTER), "d");
    }
}
