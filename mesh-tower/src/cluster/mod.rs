//! Per-cluster state of the request path: endpoints, picker, circuit breaker, retry budget, outlier detection.
//!
//! A [`LeafCluster`] exists for every leaf cluster (EDS, STATIC, LOGICAL_DNS: all arrive as an endpoint set) of the
//! current snapshot. A new snapshot updates it in place ([`LeafCluster::apply`]): endpoints that remain keep their
//! connection, latency estimate and outlier state (keyed by address), and requests in flight hold what they
//! picked, so a removed endpoint or cluster drains. Aggregate clusters are a [`Target`] over leaves, failing over
//! to the first leaf with a usable endpoint (gRFC A37/A75).
//!
//! Requests read the [`PickerTable`] with one atomic load. It is rebuilt off the request path when the endpoint
//! set, the policies, an endpoint's reachability or an ejection changes.

mod endpoints;
mod outlier;
mod picker;
mod target;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use arc_swap::ArcSwap;
use mesh_core::cluster::{Cluster, DiscoveryKind, LbPolicy};
use mesh_core::endpoint::{EndpointAddress, EndpointSet};

pub(crate) use picker::{PickContext, PickError, PickerTable};
pub(crate) use target::Target;

use self::endpoints::{EndpointList, ListLoad, build_rings, pick_first_order};
use crate::endpoint::{ConnectSettings, Endpoint, now};
use crate::lb::{CircuitBreaker, OutlierDetector, RetryBudget};
use crate::runtime::Runtime;
use crate::tls::ClientTls;

/// Off-path state, behind a lock that requests never take.
struct Inner {
    endpoints: HashMap<EndpointAddress, Arc<Endpoint>>,
    list: Arc<EndpointList>,
    outlier_task: Option<outlier::TaskHandle>,
}

/// One leaf cluster; see the [module docs](self).
pub(crate) struct LeafCluster {
    name: Arc<str>,
    config: ArcSwap<Cluster>,
    circuit: CircuitBreaker,
    budget: RetryBudget,
    table: ArcSwap<PickerTable>,
    inner: Mutex<Inner>,
    runtime: Arc<Runtime>,
    tls_changed: std::sync::atomic::AtomicBool,
    this: Weak<LeafCluster>,
}

impl LeafCluster {
    /// A cluster with no endpoints yet; [`apply`](Self::apply) gives it its configuration.
    pub(crate) fn new(cluster: &Arc<Cluster>, runtime: &Arc<Runtime>) -> Arc<Self> {
        let list = Arc::new(EndpointList::empty(None, cluster.lb_policy.clone()));
        let mut rng = runtime.rng();
        let table = PickerTable::build(Arc::clone(&list), None, &mut rng);
        Arc::new_cyclic(|this| Self {
            name: Arc::clone(&cluster.name),
            config: ArcSwap::new(Arc::clone(cluster)),
            circuit: CircuitBreaker::new(&cluster.circuit_breakers),
            budget: RetryBudget::new(&runtime.options.default_retry_budget),
            table: ArcSwap::from_pointee(table),
            inner: Mutex::new(Inner {
                endpoints: HashMap::new(),
                list,
                outlier_task: None,
            }),
            runtime: Arc::clone(runtime),
            tls_changed: std::sync::atomic::AtomicBool::new(false),
            this: Weak::clone(this),
        })
    }

    /// The cluster's name.
    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The circuit breaker (gRFC A32).
    pub(crate) fn circuit(&self) -> &CircuitBreaker {
        &self.circuit
    }

    /// The retry budget.
    pub(crate) fn budget(&self) -> &RetryBudget {
        &self.budget
    }

    /// The current picker table (one atomic load).
    pub(crate) fn table(&self) -> Arc<PickerTable> {
        self.table.load_full()
    }

    /// The runtime.
    pub(crate) fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a new configuration and endpoint set, keeping the state of endpoints that remain.
    pub(crate) fn apply(
        &self,
        cluster: &Arc<Cluster>,
        set: Option<&Arc<EndpointSet>>,
        note: Option<&Arc<str>>,
    ) {
        let mut inner = self.lock();
        let previous = self.config.swap(Arc::clone(cluster));
        self.circuit.set_limits(&cluster.circuit_breakers);
        let same_set = match (set, &inner.list.set) {
            (Some(new), Some(old)) => Arc::ptr_eq(new, old) || new == old,
            (None, None) => inner.list.note.as_ref() == note,
            _ => false,
        };
        if previous.tls != cluster.tls {
            self.tls_changed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let same_policies = previous.lb_policy == cluster.lb_policy
            && previous.outlier_detection == cluster.outlier_detection
            && previous.lrs_server == cluster.lrs_server
            && previous.discovery == cluster.discovery
            && previous.connect_timeout == cluster.connect_timeout
            && previous.tls == cluster.tls;
        if same_set && same_policies && inner.list.lb_policy == cluster.lb_policy {
            return;
        }
        let list = Arc::new(self.build_list(&mut inner, cluster, set, note));
        inner.list = Arc::clone(&list);
        self.rebuild_locked(&inner);
        let wants_timer = list.detector.as_ref().is_some_and(|d| d.needs_timer());
        match (&inner.outlier_task, wants_timer) {
            (None, true) => {
                inner.outlier_task = Some(outlier::spawn(
                    Weak::clone(&self.this),
                    self.runtime.next_seed(),
                ));
            }
            (Some(_), false) => inner.outlier_task = None,
            _ => {}
        }
    }

    fn build_list(
        &self,
        inner: &mut Inner,
        cluster: &Cluster,
        set: Option<&Arc<EndpointSet>>,
        note: Option<&Arc<str>>,
    ) -> EndpointList {
        let Some(set) = set else {
            inner.endpoints.clear();
            return EndpointList::empty(note.cloned(), cluster.lb_policy.clone());
        };
        let mut previous = std::mem::take(&mut inner.endpoints);
        if !inner.list.slots.is_empty()
            && self
                .tls_changed
                .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            // Connections made under the old TLS settings must not serve the new ones.
            previous.clear();
        }
        let mut offsets = Vec::with_capacity(set.localities.len());
        let mut slots = Vec::with_capacity(set.endpoint_count());
        let mut slot_locality = Vec::with_capacity(set.endpoint_count());
        let mut weights = Vec::with_capacity(set.endpoint_count());
        for (index, locality) in set.localities.iter().enumerate() {
            offsets.push(slots.len());
            for endpoint in &locality.endpoints {
                let handle = match inner.endpoints.get(&endpoint.address) {
                    Some(handle) => Arc::clone(handle),
                    None => previous
                        .remove(&endpoint.address)
                        .unwrap_or_else(|| self.new_endpoint(cluster, &endpoint.address)),
                };
                inner
                    .endpoints
                    .insert(endpoint.address.clone(), Arc::clone(&handle));
                slots.push(handle);
                slot_locality.push(index);
                weights.push(endpoint.weight.max(1));
            }
        }
        // Endpoints left in `previous` are gone from the set: dropping them here lets them drain.
        drop(previous);
        let keys: Vec<Arc<str>> = slots.iter().map(|e| Arc::clone(e.label())).collect();
        let detector = cluster.outlier_detection.as_ref().map(|config| {
            let detector = match &inner.list.detector {
                Some(old) => old.reconfigured(config.clone(), keys, now()),
                None => OutlierDetector::new(config.clone(), keys, now()),
            };
            Arc::new(detector)
        });
        let mut rng = self.runtime.rng();
        // gRFC A27: only clusters with an `lrs_server` report their load.
        let load = match (&self.runtime.options.load_store, &cluster.lrs_server) {
            (Some(store), Some(_)) => {
                let eds_service_name = match &cluster.discovery {
                    DiscoveryKind::Eds { service_name } => service_name.clone(),
                    _ => None,
                };
                Some(ListLoad::new(
                    store.cluster(&cluster.name, eds_service_name),
                    set,
                ))
            }
            _ => None,
        };
        EndpointList {
            load,
            set: Some(Arc::clone(set)),
            note: None,
            rings: build_rings(set, &offsets, &cluster.lb_policy),
            pick_first_order: pick_first_order(slots.len(), &cluster.lb_policy, &mut rng),
            slots: slots.into_boxed_slice(),
            offsets: offsets.into_boxed_slice(),
            slot_locality: slot_locality.into_boxed_slice(),
            weights: weights.into_boxed_slice(),
            lb_policy: cluster.lb_policy.clone(),
            detector,
        }
    }

    fn new_endpoint(&self, cluster: &Cluster, address: &EndpointAddress) -> Arc<Endpoint> {
        let options = &self.runtime.options;
        let settings = ConnectSettings {
            connect_timeout: cluster.connect_timeout,
            keep_alive_interval: options.keep_alive_interval,
            keep_alive_timeout: options.keep_alive_timeout,
            backoff: options.reconnect_backoff,
            seed: self.runtime.next_seed(),
            tls: cluster.tls.as_ref().map(|tls| {
                ClientTls::new(tls, &options.certificate_providers)
                    .map(Arc::new)
                    .map_err(|error| Arc::from(format!("cluster {:?}: {error}", cluster.name)))
            }),
        };
        let ewma = match cluster.lb_policy {
            LbPolicy::PeakEwma { decay, default_rtt } => (decay, default_rtt),
            _ => (LbPolicy::DEFAULT_EWMA_DECAY, LbPolicy::DEFAULT_EWMA_RTT),
        };
        let this = Weak::clone(&self.this);
        let on_change = Arc::new(move || {
            if let Some(cluster) = this.upgrade() {
                cluster.rebuild();
            }
        });
        Arc::new(Endpoint::new(address.clone(), settings, ewma, on_change))
    }

    /// Rebuilds the picker table from the current reachability and ejections.
    pub(crate) fn rebuild(&self) {
        let inner = self.lock();
        self.rebuild_locked(&inner);
    }

    fn rebuild_locked(&self, inner: &Inner) {
        let previous = self.table.load();
        let mut rng = self.runtime.rng();
        let table = PickerTable::build(Arc::clone(&inner.list), Some(&previous), &mut rng);
        tracing::debug!(cluster = %self.name, counts = ?table.counts, usable = table.has_usable(), "picker rebuilt");
        let metrics = &self.runtime.options.metrics;
        if table.counts != previous.counts {
            metrics.endpoints_changed(&self.name, &table.counts);
        }
        let (from, to) = (previous.active_priority(), table.active_priority());
        if from != to {
            // An operator wants to see a failover (or the return from one) without turning on debug logs.
            if inner.list.set.is_some() {
                tracing::info!(cluster = %self.name, ?from, ?to, counts = %table.counts, "active priority changed");
            }
            metrics.priority_changed(&self.name, from, to);
        }
        self.table.store(Arc::new(table));
    }

    /// Rebuilds the picker table on a task of its own (for callers on the request path).
    pub(crate) fn rebuild_soon(&self) {
        if let Some(this) = self.this.upgrade() {
            tokio::spawn(async move { this.rebuild() });
        }
    }
}

impl std::fmt::Debug for LeafCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafCluster")
            .field("name", &self.name)
            .field("in_flight", &self.circuit.in_flight())
            .finish_non_exhaustive()
    }
}

/// Reports a finished call's outcome to the cluster's outlier detection (gRFC A50).
#[derive(Debug)]
pub(crate) struct OutcomeRecorder {
    cluster: Arc<LeafCluster>,
    list: Arc<EndpointList>,
    slot: usize,
}

impl OutcomeRecorder {
    /// A recorder for the endpoint in `slot`, when the cluster runs outlier detection.
    pub(crate) fn new(
        cluster: &Arc<LeafCluster>,
        table: &PickerTable,
        slot: usize,
    ) -> Option<Self> {
        table.list.detector.as_ref()?;
        Some(Self {
            cluster: Arc::clone(cluster),
            list: Arc::clone(&table.list),
            slot,
        })
    }

    /// Records `outcome`; an ejection it causes takes effect at once (the picker is rebuilt).
    pub(crate) fn record(self, outcome: crate::lb::Outcome) {
        Self::record_now(&self.cluster, &self.list, self.slot, outcome);
    }

    /// Records the outcome of the endpoint in `slot` of `list` (from `cluster`'s picker table) now, without a
    /// recorder: an outcome known when the response headers arrive takes no references.
    pub(crate) fn record_now(
        cluster: &LeafCluster,
        list: &EndpointList,
        slot: usize,
        outcome: crate::lb::Outcome,
    ) {
        let Some(detector) = &list.detector else {
            return;
        };
        // A success ejects nothing: it needs neither the clock nor a random draw.
        if outcome == crate::lb::Outcome::Success {
            detector.record_success(slot);
            return;
        }
        let mut rng = LazyRng {
            runtime: &cluster.runtime,
            rng: None,
        };
        if let Some(ejection) = detector.record(slot, outcome, now(), &mut rng) {
            let endpoint = list
                .endpoint(ejection.endpoint)
                .map_or("?", |e| &**e.label());
            tracing::info!(cluster = %cluster.name, endpoint, reason = %ejection.reason, "endpoint ejected");
            cluster
                .runtime
                .options
                .metrics
                .ejection(&cluster.name, endpoint, true);
            cluster.rebuild_soon();
        }
    }
}

/// The runtime's generator, seeded on first use: most outcomes (successes) draw nothing, and seeding bumps a
/// counter every request of the service shares.
struct LazyRng<'a> {
    runtime: &'a Runtime,
    rng: Option<mesh_core::rng::FastRng>,
}

impl mesh_core::rng::RandomSource for LazyRng<'_> {
    fn next_u64(&mut self) -> u64 {
        self.rng
            .get_or_insert_with(|| self.runtime.rng())
            .next_u64()
    }
}
