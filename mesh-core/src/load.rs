//! Load-report counters (gRFC A27 "LRS"): per cluster and locality, the requests issued, succeeded, failed and in
//! progress, and the requests dropped by drop overloads, per category.
//!
//! A [`LoadStore`] holds the counters of the clusters whose load is reported (those with an `lrs_server` that are in
//! use). The request path records into it without locks or allocation once a cluster's locality has been seen:
//! a lookup reads an [`ArcSwap`]'d map and bumps atomics; only the first request to a new locality or drop
//! category takes a mutex to add it. The reporter takes the counts with [`LoadStore::take`], which resets them;
//! in-progress is a gauge and is not reset. Counts not yet taken stay in the store whatever happens to the stream
//! that reports them, so a reconnect loses nothing.
//!
//! Not here: time (the reporter measures each report's interval), protos and streams (mesh-xds-client).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::locality::Locality;

/// A read-mostly map: lock-free lookups, new keys added under a mutex.
#[derive(Debug)]
struct Interned<K, V> {
    map: ArcSwap<HashMap<K, Arc<V>>>,
    write: Mutex<()>,
}

impl<K: Hash + Eq + Clone, V: Default> Interned<K, V> {
    fn new() -> Self {
        Self {
            map: ArcSwap::from_pointee(HashMap::new()),
            write: Mutex::new(()),
        }
    }

    fn with<Q, R>(&self, key: &Q, make_key: impl FnOnce(&Q) -> K, f: impl FnOnce(&V) -> R) -> R
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(value) = self.map.load().get(key) {
            return f(value);
        }
        let _write = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if let Some(value) = current.get(key) {
            return f(value);
        }
        let mut next = HashMap::clone(&current);
        let value = Arc::new(V::default());
        next.insert(make_key(key), Arc::clone(&value));
        self.map.store(Arc::new(next));
        f(&value)
    }

    fn snapshot(&self) -> Arc<HashMap<K, Arc<V>>> {
        self.map.load_full()
    }
}

/// The counters of one locality of one cluster.
#[derive(Debug, Default)]
struct LocalityLoad {
    issued: AtomicU64,
    succeeded: AtomicU64,
    errored: AtomicU64,
    in_progress: AtomicI64,
}

/// The counters of one cluster.
#[derive(Debug)]
struct ClusterLoad {
    eds_service_name: Option<Arc<str>>,
    localities: Interned<Locality, LocalityLoad>,
    drops: Interned<Arc<str>, AtomicU64>,
}

/// What one cluster did since its previous report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterLoadReport {
    /// The cluster's name.
    pub cluster: Arc<str>,
    /// Its EDS service name, when it has one that differs from its name.
    pub eds_service_name: Option<Arc<str>>,
    /// Per locality, in locality order; localities with nothing to report are left out.
    pub localities: Vec<LocalityLoadReport>,
    /// Dropped requests per drop category, in category order (zero counts left out).
    pub dropped: Vec<(Arc<str>, u64)>,
}

impl ClusterLoadReport {
    /// All dropped requests.
    #[must_use]
    pub fn total_dropped(&self) -> u64 {
        self.dropped.iter().map(|(_, count)| count).sum()
    }
}

/// What one locality did since its previous report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalityLoadReport {
    /// The locality.
    pub locality: Locality,
    /// Requests that finished successfully.
    pub succeeded: u64,
    /// Requests that finished with an error.
    pub errored: u64,
    /// Requests sent.
    pub issued: u64,
    /// Requests in flight now (a gauge).
    pub in_progress: u64,
}

/// The load counters of the clusters whose load is reported. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct LoadStore {
    clusters: Arc<ArcSwap<HashMap<Arc<str>, Arc<ClusterLoad>>>>,
}

impl Default for LoadStore {
    fn default() -> Self {
        Self::new()
    }
}

impl LoadStore {
    /// An empty store: nothing is recorded until clusters are set.
    #[must_use]
    pub fn new() -> Self {
        Self {
            clusters: Arc::new(ArcSwap::from_pointee(HashMap::new())),
        }
    }

    /// Sets the clusters whose load is recorded, by name with their EDS service names. Clusters kept keep their
    /// counts; counts of clusters removed are discarded.
    pub fn set_clusters(&self, clusters: impl IntoIterator<Item = (Arc<str>, Option<Arc<str>>)>) {
        let current = self.clusters.load_full();
        let next: HashMap<Arc<str>, Arc<ClusterLoad>> = clusters
            .into_iter()
            .map(|(name, eds_service_name)| {
                let load = match current.get(&name) {
                    Some(load) if load.eds_service_name == eds_service_name => Arc::clone(load),
                    _ => Arc::new(ClusterLoad {
                        eds_service_name,
                        localities: Interned::new(),
                        drops: Interned::new(),
                    }),
                };
                (name, load)
            })
            .collect();
        self.clusters.store(Arc::new(next));
    }

    /// Whether any cluster's load is recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.clusters.load().is_empty()
    }

    /// The names of the clusters whose load is recorded.
    #[must_use]
    pub fn cluster_names(&self) -> Vec<Arc<str>> {
        self.clusters.load().keys().cloned().collect()
    }

    fn with_locality(&self, cluster: &str, locality: &Locality, f: impl FnOnce(&LocalityLoad)) {
        if let Some(load) = self.clusters.load().get(cluster) {
            load.localities.with(locality, Locality::clone, f);
        }
    }

    /// A request to `locality` of `cluster` was sent (issued and now in progress).
    pub fn issued(&self, cluster: &str, locality: &Locality) {
        self.with_locality(cluster, locality, |load| {
            load.issued.fetch_add(1, Ordering::Relaxed);
            load.in_progress.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// A request issued to `locality` of `cluster` finished, successfully or not.
    pub fn finished(&self, cluster: &str, locality: &Locality, success: bool) {
        self.with_locality(cluster, locality, |load| {
            load.in_progress.fetch_sub(1, Ordering::Relaxed);
            let counter = if success {
                &load.succeeded
            } else {
                &load.errored
            };
            counter.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// A request to `cluster` was dropped by the drop overload `category` (gRFC A27).
    pub fn dropped(&self, cluster: &str, category: &str) {
        if let Some(load) = self.clusters.load().get(cluster) {
            load.drops.with(
                category,
                |c: &str| Arc::from(c),
                |count| {
                    count.fetch_add(1, Ordering::Relaxed);
                },
            );
        }
    }

    /// Takes `cluster`'s counts since the previous take (resetting them); `None` when its load is not recorded.
    #[must_use]
    pub fn take(&self, cluster: &str) -> Option<ClusterLoadReport> {
        let clusters = self.clusters.load();
        let (name, load) = clusters.get_key_value(cluster)?;
        let mut localities: Vec<LocalityLoadReport> = load
            .localities
            .snapshot()
            .iter()
            .map(|(locality, load)| LocalityLoadReport {
                locality: locality.clone(),
                succeeded: load.succeeded.swap(0, Ordering::Relaxed),
                errored: load.errored.swap(0, Ordering::Relaxed),
                issued: load.issued.swap(0, Ordering::Relaxed),
                in_progress: u64::try_from(load.in_progress.load(Ordering::Relaxed)).unwrap_or(0),
            })
            .filter(|l| l.succeeded + l.errored + l.issued + l.in_progress > 0)
            .collect();
        localities.sort_by(|a, b| a.locality.cmp(&b.locality));
        let mut dropped: Vec<(Arc<str>, u64)> = load
            .drops
            .snapshot()
            .iter()
            .map(|(category, count)| (Arc::clone(category), count.swap(0, Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
            .collect();
        dropped.sort();
        Some(ClusterLoadReport {
            cluster: Arc::clone(name),
            eds_service_name: load.eds_service_name.clone(),
            localities,
            dropped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_taken_and_reset_while_in_progress_stays() {
        let store = LoadStore::new();
        let east = Locality::new("us", "east", "");
        let west = Locality::new("us", "west", "");
        store.issued("a", &east);
        assert!(store.take("a").is_none(), "not recorded before set");
        store.set_clusters([(Arc::from("a"), Some(Arc::from("a-eds")))]);
        for _ in 0..3 {
            store.issued("a", &east);
        }
        store.finished("a", &east, true);
        store.finished("a", &east, false);
        store.issued("a", &west);
        store.finished("a", &west, true);
        store.dropped("a", "lb");
        store.dropped("a", "lb");
        store.issued("other", &east);
        let report = store.take("a").unwrap();
        assert_eq!(report.eds_service_name.as_deref(), Some("a-eds"));
        assert_eq!(report.total_dropped(), 2);
        assert_eq!(
            report.localities,
            vec![
                LocalityLoadReport {
                    locality: east.clone(),
                    succeeded: 1,
                    errored: 1,
                    issued: 3,
                    in_progress: 1
                },
                LocalityLoadReport {
                    locality: west,
                    succeeded: 1,
                    errored: 0,
                    issued: 1,
                    in_progress: 0
                },
            ]
        );
        let again = store.take("a").unwrap();
        assert_eq!(
            again.localities.len(),
            1,
            "only the in-progress locality remains"
        );
        assert_eq!(again.localities[0].in_progress, 1);
        assert_eq!(again.localities[0].issued, 0);
        assert!(again.dropped.is_empty());
        // Keeping a cluster keeps its counts.
        store.finished("a", &east, true);
        store.set_clusters([
            (Arc::from("a"), Some(Arc::from("a-eds"))),
            (Arc::from("b"), None),
        ]);
        assert_eq!(store.take("a").unwrap().localities[0].succeeded, 1);
        assert!(store.take("other").is_none());
    }
}
