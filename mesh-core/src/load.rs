//! Load-report counters (gRFC A27 "LRS"): per cluster and locality, the requests issued, succeeded, failed and in
//! progress, and the requests dropped by drop overloads, per category.
//!
//! A [`LoadStore`] holds the counters of the clusters whose load is reported (those with an `lrs_server` that are in
//! use). The request path resolves its counters once per cluster and locality, when it builds the cluster's endpoint
//! list ([`LoadStore::cluster`], [`ClusterCounters::locality`]), and then records with atomic increments alone, no
//! lookup; the name-based [`LoadStore::issued`] and friends look the cluster up on each call (an [`ArcSwap`]'d map)
//! and take a mutex only for the first request to a new locality or drop category. The reporter takes the counts with [`LoadStore::take`], which resets them;
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

    fn with<Q, R>(&self, key: &Q, make_key: impl FnOnce(&Q) -> K, f: impl FnOnce(&Arc<V>) -> R) -> R
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

    /// The value for `key`, added when missing.
    fn get_or_insert<Q>(&self, key: &Q, make_key: impl FnOnce(&Q) -> K) -> Arc<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.with(key, make_key, Arc::clone)
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

impl LocalityLoad {
    fn issued(&self) {
        self.issued.fetch_add(1, Ordering::Relaxed);
        self.in_progress.fetch_add(1, Ordering::Relaxed);
    }

    fn finished(&self, success: bool) {
        self.in_progress.fetch_sub(1, Ordering::Relaxed);
        let counter = if success {
            &self.succeeded
        } else {
            &self.errored
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl ClusterLoad {
    fn new(eds_service_name: Option<Arc<str>>) -> Self {
        Self {
            eds_service_name,
            localities: Interned::new(),
            drops: Interned::new(),
        }
    }

    fn dropped(&self, category: &str) {
        self.drops.with(
            category,
            |c: &str| Arc::from(c),
            |count| {
                count.fetch_add(1, Ordering::Relaxed);
            },
        );
    }
}

/// The counters of one cluster, held by the request path while the cluster's load is reported (see
/// [`LoadStore::cluster`]): drops are counted here, and each locality's counters are resolved once, with
/// [`locality`](Self::locality), when the request path builds the cluster's endpoint list.
#[derive(Debug, Clone)]
pub struct ClusterCounters(Arc<ClusterLoad>);

impl ClusterCounters {
    /// The counters of `locality`.
    #[must_use]
    pub fn locality(&self, locality: &Locality) -> LocalityCounters {
        LocalityCounters(self.0.localities.get_or_insert(locality, Locality::clone))
    }

    /// A request was dropped by the drop overload `category` (gRFC A27).
    pub fn dropped(&self, category: &str) {
        self.0.dropped(category);
    }
}

/// The counters of one locality of one cluster: two atomic increments per request, no lookup.
#[derive(Debug, Clone)]
pub struct LocalityCounters(Arc<LocalityLoad>);

impl LocalityCounters {
    /// A request was sent (issued and now in progress).
    pub fn issued(&self) {
        self.0.issued();
    }

    /// A request issued here finished, successfully or not.
    pub fn finished(&self, success: bool) {
        self.0.finished(success);
    }
}

/// The load counters of the clusters whose load is reported. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct LoadStore {
    clusters: Arc<ArcSwap<HashMap<Arc<str>, Arc<ClusterLoad>>>>,
    /// Serialises changes of the set of clusters (the reporter's and the request path's), never taken per request.
    write: Arc<Mutex<()>>,
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
            write: Arc::new(Mutex::new(())),
        }
    }

    /// Sets the clusters whose load is recorded, by name with their EDS service names. Clusters kept keep their
    /// counts; counts of clusters removed are discarded, unless the request path still holds them (see
    /// [`cluster`](Self::cluster)): the reporter and the request path learn of a cluster's `lrs_server` from the same
    /// snapshot in either order, and counts recorded in between must not be lost.
    pub fn set_clusters(&self, clusters: impl IntoIterator<Item = (Arc<str>, Option<Arc<str>>)>) {
        let _write = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.clusters.load_full();
        let mut next: HashMap<Arc<str>, Arc<ClusterLoad>> = clusters
            .into_iter()
            .map(|(name, eds_service_name)| {
                let load = match current.get(&name) {
                    Some(load) if load.eds_service_name == eds_service_name => Arc::clone(load),
                    _ => Arc::new(ClusterLoad::new(eds_service_name)),
                };
                (name, load)
            })
            .collect();
        for (name, load) in current.iter() {
            // Held by the request path: this map's reference and at least one other.
            if Arc::strong_count(load) > 1 + usize::from(next.contains_key(name)) {
                next.entry(Arc::clone(name))
                    .or_insert_with(|| Arc::clone(load));
            }
        }
        self.clusters.store(Arc::new(next));
    }

    /// The counters of `cluster` (with its EDS service name), for the request path to hold while the cluster has an
    /// `lrs_server`: added to the store now if the reporter has not set it yet, and kept while held. Off the request
    /// path (takes a mutex).
    #[must_use]
    pub fn cluster(
        &self,
        cluster: &Arc<str>,
        eds_service_name: Option<Arc<str>>,
    ) -> ClusterCounters {
        let _write = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.clusters.load_full();
        if let Some(load) = current.get(cluster)
            && load.eds_service_name == eds_service_name
        {
            return ClusterCounters(Arc::clone(load));
        }
        let load = Arc::new(ClusterLoad::new(eds_service_name));
        let mut next = HashMap::clone(&current);
        next.insert(Arc::clone(cluster), Arc::clone(&load));
        self.clusters.store(Arc::new(next));
        ClusterCounters(load)
    }

    /// Whether any cluster's load is recorded (reported, or held by the request path).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.clusters.load().is_empty()
    }

    /// The names of the clusters whose load is recorded (reported, or held by the request path).
    #[must_use]
    pub fn cluster_names(&self) -> Vec<Arc<str>> {
        self.clusters.load().keys().cloned().collect()
    }

    fn with_locality(&self, cluster: &str, locality: &Locality, f: impl FnOnce(&LocalityLoad)) {
        if let Some(load) = self.clusters.load().get(cluster) {
            load.localities
                .with(locality, Locality::clone, |load| f(load));
        }
    }

    /// A request to `locality` of `cluster` was sent (issued and now in progress).
    pub fn issued(&self, cluster: &str, locality: &Locality) {
        self.with_locality(cluster, locality, |load| load.issued());
    }

    /// A request issued to `locality` of `cluster` finished, successfully or not.
    pub fn finished(&self, cluster: &str, locality: &Locality, success: bool) {
        self.with_locality(cluster, locality, |load| load.finished(success));
    }

    /// A request to `cluster` was dropped by the drop overload `category` (gRFC A27).
    pub fn dropped(&self, cluster: &str, category: &str) {
        if let Some(load) = self.clusters.load().get(cluster) {
            load.dropped(category);
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

    #[test]
    fn counters_held_by_the_request_path_count_whichever_learns_of_the_cluster_first() {
        let store = LoadStore::new();
        let east = Locality::new("us", "east", "");
        let name: Arc<str> = Arc::from("a");
        // The request path resolves its counters before the reporter sets the cluster.
        let held = store.cluster(&name, Some(Arc::from("a-eds")));
        let locality = held.locality(&east);
        locality.issued();
        locality.finished(true);
        held.dropped("lb");
        store.set_clusters([(Arc::clone(&name), Some(Arc::from("a-eds")))]);
        let report = store.take("a").unwrap();
        assert_eq!(report.localities[0].succeeded, 1);
        assert_eq!(report.total_dropped(), 1);
        // Another target's update without the cluster: held counters stay in the store.
        locality.issued();
        store.set_clusters([(Arc::from("b"), None)]);
        store.set_clusters([
            (Arc::clone(&name), Some(Arc::from("a-eds"))),
            (Arc::from("b"), None),
        ]);
        locality.finished(false);
        let report = store.take("a").unwrap();
        assert_eq!(
            (report.localities[0].issued, report.localities[0].errored),
            (1, 1)
        );
        // The same counters whoever asks again; released ones go with the next set.
        assert!(Arc::ptr_eq(
            &store.cluster(&name, Some(Arc::from("a-eds"))).0,
            &held.0
        ));
        drop((held, locality));
        store.set_clusters([(Arc::from("b"), None)]);
        assert!(store.take("a").is_none());
    }
}
