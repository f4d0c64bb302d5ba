//! The series the request path records on every call, bound once: per channel and method, the
//! `grpc.client.attempt.started` counter, and the `grpc.client.call.duration` and `grpc.client.attempt.duration`
//! histograms per status (and cluster and locality), as the SDK's bound instruments.
//!
//! Recording through an unbound instrument makes the SDK hash the whole attribute set (strings included, with
//! SipHash) and look it up under a lock, for every instrument touched; three per call. Here a call finds its
//! method's series once, as it starts (`MethodMetrics`, handed to the request path by `Metrics::for_call`), by a
//! short hash of its path in a map read with one atomic load; its attempts and its end then find their bound series
//! by status (and cluster and locality for attempts) in the method's own maps, and record with no attribute set at
//! all. Nothing is allocated once a series exists.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use mesh_core::locality::Locality;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{BoundCounter, BoundHistogram};

/// A short, fixed hash for label values, a word at a time (multiply-rotate, then a final mix). Collisions only
/// share a bucket (entries are compared in full), and what network input can add is bounded (methods past their
/// limit are `other`).
#[derive(Default)]
pub(super) struct LabelHash(u64);

impl LabelHash {
    const SEED: u64 = 0xcbf2_9ce4_8422_2325;
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

    pub(super) fn of(value: &(impl Hash + ?Sized)) -> u64 {
        let mut hasher = Self(Self::SEED);
        value.hash(&mut hasher);
        hasher.finish()
    }

    fn mix(&mut self, word: u64) {
        self.0 = (self.0 ^ word)
            .wrapping_mul(Self::MULTIPLIER)
            .rotate_left(29);
    }
}

impl Hasher for LabelHash {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut buffer = [0_u8; 8];
            buffer.copy_from_slice(word);
            self.mix(u64::from_le_bytes(buffer));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut buffer = [0_u8; 8];
            if let Some(start) = buffer.get_mut(..rest.len()) {
                start.copy_from_slice(rest);
            }
            // The length tells `ab` from `ab\0`.
            self.mix(u64::from_le_bytes(buffer) ^ ((rest.len() as u64) << 59));
        }
    }

    fn finish(&self) -> u64 {
        // The map indexes by the low bits: spread the high ones down (MurmurHash3's finalizer).
        let mut hash = self.0;
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^ (hash >> 33)
    }
}

/// The keys are hashes already.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 << 8) | u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Buckets<K, V> = HashMap<u64, Vec<(K, V)>, BuildHasherDefault<Identity>>;

/// Values by key hash, read with one atomic load; a new key takes a lock once and swaps in a copy.
pub(super) struct SeriesMap<K, V> {
    entries: ArcSwap<(Buckets<K, V>, usize)>,
    adding: Mutex<()>,
}

impl<K: Clone, V: Clone> SeriesMap<K, V> {
    pub(super) fn new() -> Self {
        Self {
            entries: ArcSwap::from_pointee((Buckets::default(), 0)),
            adding: Mutex::new(()),
        }
    }

    /// Calls `with` on the value whose key hashes to `hash` and `is` that key, if there is one.
    pub(super) fn get<R>(
        &self,
        hash: u64,
        is: impl Fn(&K) -> bool,
        with: impl FnOnce(&V) -> R,
    ) -> Option<R> {
        let entries = self.entries.load();
        entries
            .0
            .get(&hash)
            .and_then(|bucket| bucket.iter().find(|(key, _)| is(key)))
            .map(|(_, value)| with(value))
    }

    /// Calls `with` on the value whose key hashes to `hash` and `is` that key, made by `make` the first time;
    /// `None` when it is new and the map holds `limit` values already.
    pub(super) fn with<R>(
        &self,
        hash: u64,
        is: impl Fn(&K) -> bool,
        limit: usize,
        make: impl FnOnce() -> (K, V),
        with: impl FnOnce(&V) -> R,
    ) -> Option<R> {
        let find = |entries: &(Buckets<K, V>, usize)| {
            entries
                .0
                .get(&hash)
                .and_then(|bucket| bucket.iter().find(|(key, _)| is(key)))
                .map(|(_, value)| value.clone())
        };
        {
            let entries = self.entries.load();
            if let Some((_, value)) = entries
                .0
                .get(&hash)
                .and_then(|bucket| bucket.iter().find(|(key, _)| is(key)))
            {
                return Some(with(value));
            }
            if entries.1 >= limit {
                return None;
            }
        }
        let _adding = self.adding.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.entries.load_full();
        let value = match find(&current) {
            Some(value) => value,
            None if current.1 >= limit => return None,
            None => {
                let (key, value) = make();
                let mut next = current.0.clone();
                next.entry(hash).or_default().push((key, value.clone()));
                self.entries.store(Arc::new((next, current.1 + 1)));
                value
            }
        };
        Some(with(&value))
    }
}

impl<V: Clone> SeriesMap<u32, V> {
    /// The series of status `status` (its key), made by `make` the first time.
    pub(super) fn of_status(&self, status: u32, make: impl FnOnce() -> V) -> Option<V> {
        self.with(
            u64::from(status),
            |known| *known == status,
            usize::MAX,
            || (status, make()),
            Clone::clone,
        )
    }
}

/// One method's series on one channel.
#[derive(Clone)]
pub(super) struct MethodSeries {
    pub(super) attempt_started: BoundCounter<u64>,
    /// `grpc.client.call.duration` by status.
    pub(super) calls: Arc<SeriesMap<u32, BoundHistogram<f64>>>,
    /// `grpc.client.attempt.duration` and the attempt's message sizes by status, cluster and locality.
    pub(super) attempts: Arc<SeriesMap<AttemptKey, AttemptSeries>>,
    /// `grpc.method` and `grpc.target`, the labels every series starts with.
    pub(super) labels: [KeyValue; 2],
}

impl MethodSeries {
    pub(super) fn new(attempt_started: BoundCounter<u64>, labels: [KeyValue; 2]) -> Self {
        Self {
            attempt_started,
            calls: Arc::new(SeriesMap::new()),
            attempts: Arc::new(SeriesMap::new()),
            labels,
        }
    }
}

/// The histograms of one attempt series, or of one xDS-enabled server's call series (gRFC A66: the sizes carry
/// the duration's labels).
#[derive(Clone)]
pub(super) struct AttemptSeries {
    pub(super) duration: BoundHistogram<f64>,
    pub(super) sent: BoundHistogram<u64>,
    pub(super) received: BoundHistogram<u64>,
}

/// An attempt series' labels beyond the method's: status, cluster, locality.
#[derive(Clone)]
pub(super) struct AttemptKey {
    pub(super) status: u32,
    pub(super) cluster: Arc<str>,
    pub(super) locality: Locality,
}

impl AttemptKey {
    pub(super) fn hash(status: u32, cluster: &str, locality: &Locality) -> u64 {
        LabelHash::of(&(status, cluster, locality))
    }

    pub(super) fn is(&self, status: u32, cluster: &str, locality: &Locality) -> bool {
        self.status == status && *self.cluster == *cluster && self.locality == *locality
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sharing_a_hash_are_kept_apart_and_new_keys_stop_at_the_limit() {
        let map: SeriesMap<&'static str, u32> = SeriesMap::new();
        assert_eq!(map.with(7, |k| *k == "a", 2, || ("a", 1), |v| *v), Some(1));
        assert_eq!(map.with(7, |k| *k == "b", 2, || ("b", 2), |v| *v), Some(2));
        assert_eq!(map.get(7, |k| *k == "a", |v| *v), Some(1));
        assert_eq!(map.get(7, |k| *k == "b", |v| *v), Some(2));
        assert_eq!(
            map.with(8, |k| *k == "c", 2, || ("c", 3), |v| *v),
            None,
            "full"
        );
        assert_eq!(map.get(8, |k| *k == "c", |v| *v), None);
        assert_eq!(
            map.with(7, |k| *k == "a", 2, || ("a", 9), |v| *v),
            Some(1),
            "known keys stay, made once"
        );
    }

    #[test]
    fn label_hashes_tell_apart_values_that_differ_in_length_or_in_any_byte() {
        assert_ne!(LabelHash::of("ab"), LabelHash::of("ab\0"));
        assert_ne!(
            LabelHash::of("helloworld.Greeter/SayHello"),
            LabelHash::of("helloworld.Greeter/SayHellp")
        );
        assert_ne!(LabelHash::of("abcdefgh"), LabelHash::of("bbcdefgh"));
        assert_eq!(LabelHash::of("same"), LabelHash::of("same"));
    }
}
