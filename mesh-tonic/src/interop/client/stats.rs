//! What the interop client counts: the peers of the next N RPCs for each `GetClientStats` call, and totals per RPC
//! type for `GetClientAccumulatedStats` (gRPC `doc/xds-test-descriptions.md`, "LoadBalancerStatsService").
//!
//! Each RPC takes a number when it is sent; a `GetClientStats` call watches the numbers from the next one on, so it
//! counts a block of consecutive *sent* RPCs whatever order they complete in, as the test description requires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tonic::Code;

use super::messages::{
    LoadBalancerAccumulatedStatsResponse, LoadBalancerStatsResponse, MetadataEntry, MetadataType,
    MethodStats, RpcMetadata, RpcType,
};

/// A response metadata entry as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// Headers or trailers.
    pub kind: MetadataType,
}

/// Which response metadata a `GetClientStats` call wants.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Keys {
    None,
    All,
    /// Lower-cased.
    These(Vec<String>),
}

impl Keys {
    fn new(requested: &[String]) -> Self {
        if requested.iter().any(|key| key == "*") {
            Self::All
        } else if requested.is_empty() {
            Self::None
        } else {
            Self::These(
                requested
                    .iter()
                    .map(|key| key.to_ascii_lowercase())
                    .collect(),
            )
        }
    }

    fn wants(&self, key: &str) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::These(keys) => keys.iter().any(|wanted| wanted.eq_ignore_ascii_case(key)),
        }
    }
}

/// Counts for one `GetClientStats` call.
#[derive(Debug)]
struct Watcher {
    /// RPC numbers `start..end` are counted.
    start: u64,
    end: u64,
    keys: Keys,
    counts: Mutex<LoadBalancerStatsResponse>,
    /// RPCs still to complete.
    remaining: watch::Sender<u64>,
}

impl Watcher {
    fn record(&self, rpc: RpcType, peer: Option<&str>, metadata: &[Received]) {
        {
            let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            match peer {
                Some(peer) => {
                    if self.keys != Keys::None {
                        let entries = metadata
                            .iter()
                            .filter(|entry| self.keys.wants(&entry.key))
                            .map(|entry| MetadataEntry {
                                key: entry.key.clone(),
                                value: entry.value.clone(),
                                r#type: entry.kind as i32,
                            })
                            .collect();
                        counts
                            .metadatas_by_peer
                            .entry(peer.to_owned())
                            .or_default()
                            .rpc_metadata
                            .push(RpcMetadata { metadata: entries });
                    }
                    *counts.rpcs_by_peer.entry(peer.to_owned()).or_insert(0) += 1;
                    *counts
                        .rpcs_by_method
                        .entry(rpc.method().to_owned())
                        .or_default()
                        .rpcs_by_peer
                        .entry(peer.to_owned())
                        .or_insert(0) += 1;
                }
                None => counts.num_failures += 1,
            }
        }
        self.remaining
            .send_modify(|remaining| *remaining = remaining.saturating_sub(1));
    }
}

/// Per-type totals.
#[derive(Debug, Default)]
struct Totals {
    started: HashMap<RpcType, i32>,
    results: HashMap<RpcType, HashMap<i32, i32>>,
}

#[derive(Debug, Default)]
struct Registry {
    next_rpc: u64,
    watchers: Vec<Arc<Watcher>>,
}

/// The client's statistics, shared by the senders and the stats service.
#[derive(Debug, Default)]
pub struct Stats {
    registry: Mutex<Registry>,
    totals: Mutex<Totals>,
}

/// A sent RPC: the watchers that count it.
#[derive(Debug)]
pub struct Ticket {
    rpc: RpcType,
    watchers: Vec<Arc<Watcher>>,
}

impl Ticket {
    /// Whether a watcher wants the RPC's response metadata.
    #[must_use]
    pub fn wants_metadata(&self) -> bool {
        self.watchers
            .iter()
            .any(|watcher| watcher.keys != Keys::None)
    }
}

impl Stats {
    /// A new, empty set of statistics.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Numbers an RPC of type `rpc` about to be sent.
    pub fn start(&self, rpc: RpcType) -> Ticket {
        let watchers = {
            let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
            let number = registry.next_rpc;
            registry.next_rpc += 1;
            registry
                .watchers
                .iter()
                .filter(|watcher| (watcher.start..watcher.end).contains(&number))
                .cloned()
                .collect()
        };
        *self
            .totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .started
            .entry(rpc)
            .or_insert(0) += 1;
        Ticket { rpc, watchers }
    }

    /// Records how `ticket`'s RPC ended: its status code and, when it succeeded, the peer that answered (`None`
    /// when the answer named none, which counts as a failure to record a peer) and its response `metadata` (needed
    /// only when [`Ticket::wants_metadata`]).
    pub fn finish(&self, ticket: Ticket, code: Code, peer: Option<&str>, metadata: &[Received]) {
        let peer = if code == Code::Ok { peer } else { None };
        let rpc = ticket.rpc;
        for watcher in ticket.watchers {
            watcher.record(rpc, peer, metadata);
        }
        *self
            .totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .results
            .entry(rpc)
            .or_default()
            .entry(code as i32)
            .or_insert(0) += 1;
    }

    /// Counts the next `num_rpcs` RPCs sent, with the response metadata named by `metadata_keys` (`*`: all),
    /// answering when they have all completed or after `timeout` with what was counted by then.
    pub async fn next_rpcs(
        &self,
        num_rpcs: u64,
        timeout: Duration,
        metadata_keys: &[String],
    ) -> LoadBalancerStatsResponse {
        let (remaining, mut done) = watch::channel(num_rpcs);
        let watcher = {
            let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
            let start = registry.next_rpc;
            let watcher = Arc::new(Watcher {
                start,
                end: start.saturating_add(num_rpcs),
                keys: Keys::new(metadata_keys),
                counts: Mutex::new(LoadBalancerStatsResponse::default()),
                remaining,
            });
            registry.watchers.push(Arc::clone(&watcher));
            watcher
        };
        let _ = tokio::time::timeout(timeout, done.wait_for(|remaining| *remaining == 0)).await;
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .watchers
            .retain(|other| !Arc::ptr_eq(other, &watcher));
        watcher
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Totals since the client started, by RPC type.
    #[must_use]
    pub fn accumulated(&self) -> LoadBalancerAccumulatedStatsResponse {
        let totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        let mut response = LoadBalancerAccumulatedStatsResponse::default();
        for rpc in RpcType::ALL {
            let started = totals.started.get(&rpc).copied().unwrap_or(0);
            if started == 0 {
                continue;
            }
            let results = totals.results.get(&rpc).cloned().unwrap_or_default();
            let succeeded = results.get(&(Code::Ok as i32)).copied().unwrap_or(0);
            let completed: i32 = results.values().sum();
            let name = rpc.enum_name().to_owned();
            response
                .num_rpcs_started_by_method
                .insert(name.clone(), started);
            response
                .num_rpcs_succeeded_by_method
                .insert(name.clone(), succeeded);
            response
                .num_rpcs_failed_by_method
                .insert(name.clone(), completed - succeeded);
            response.stats_per_method.insert(
                name,
                MethodStats {
                    rpcs_started: started,
                    result: results,
                },
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_the_next_rpcs_sent_whatever_order_they_complete_in() {
        let stats = Stats::new();
        let before = stats.start(RpcType::UnaryCall);
        let counting = tokio::spawn({
            let stats = Arc::clone(&stats);
            async move { stats.next_rpcs(3, Duration::from_secs(10), &[]).await }
        });
        // Wait until the watcher is registered.
        while stats.registry.lock().unwrap().watchers.is_empty() {
            tokio::task::yield_now().await;
        }
        let first = stats.start(RpcType::UnaryCall);
        let second = stats.start(RpcType::EmptyCall);
        let third = stats.start(RpcType::UnaryCall);
        let after = stats.start(RpcType::UnaryCall);
        stats.finish(before, Code::Ok, Some("early"), &[]);
        stats.finish(third, Code::Unavailable, Some("ignored"), &[]);
        stats.finish(after, Code::Ok, Some("late"), &[]);
        stats.finish(second, Code::Ok, Some("b"), &[]);
        stats.finish(first, Code::Ok, Some("a"), &[]);
        let counted = counting.await.unwrap();
        assert_eq!(
            counted.rpcs_by_peer,
            HashMap::from([("a".to_owned(), 1), ("b".to_owned(), 1)])
        );
        assert_eq!(counted.num_failures, 1);
        assert_eq!(
            counted.rpcs_by_method["EmptyCall"].rpcs_by_peer,
            HashMap::from([("b".to_owned(), 1)])
        );
        let totals = stats.accumulated();
        assert_eq!(totals.stats_per_method["UNARY_CALL"].rpcs_started, 4);
        assert_eq!(
            totals.stats_per_method["UNARY_CALL"].result,
            HashMap::from([(0, 3), (14, 1)])
        );
        assert_eq!(totals.num_rpcs_failed_by_method["UNARY_CALL"], 1);
        assert_eq!(totals.num_rpcs_succeeded_by_method["EMPTY_CALL"], 1);
    }

    #[tokio::test]
    async fn reports_the_requested_metadata_per_peer_and_rpc() {
        let stats = Stats::new();
        let counting = tokio::spawn({
            let stats = Arc::clone(&stats);
            async move {
                stats
                    .next_rpcs(2, Duration::from_secs(10), &["Hostname".to_owned()])
                    .await
            }
        });
        while stats.registry.lock().unwrap().watchers.is_empty() {
            tokio::task::yield_now().await;
        }
        let entry = |key: &str, kind| Received {
            key: key.to_owned(),
            value: "a".to_owned(),
            kind,
        };
        let metadata = [
            entry("hostname", MetadataType::Initial),
            entry("other", MetadataType::Trailing),
        ];
        let (first, second) = (
            stats.start(RpcType::UnaryCall),
            stats.start(RpcType::UnaryCall),
        );
        assert!(first.wants_metadata());
        stats.finish(first, Code::Ok, Some("a"), &metadata);
        stats.finish(second, Code::Ok, Some("a"), &[]);
        let counted = counting.await.unwrap();
        let rpcs = &counted.metadatas_by_peer["a"].rpc_metadata;
        assert_eq!(rpcs.len(), 2);
        assert_eq!(
            rpcs[0].metadata,
            [MetadataEntry {
                key: "hostname".into(),
                value: "a".into(),
                r#type: MetadataType::Initial as i32,
            }]
        );
        assert!(rpcs[1].metadata.is_empty());
        assert!(!stats.start(RpcType::UnaryCall).wants_metadata());
    }

    #[tokio::test(start_paused = true)]
    async fn answers_with_partial_counts_at_the_timeout() {
        let stats = Stats::new();
        let counted = stats.next_rpcs(5, Duration::from_secs(2), &[]).await;
        assert_eq!(counted, LoadBalancerStatsResponse::default());
        assert!(stats.registry.lock().unwrap().watchers.is_empty());
    }
}
