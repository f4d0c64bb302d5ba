//! What the server knows about each connected ADS stream: node, subscriptions, versions sent and ACKed, NACKs.
//!
//! The registry is for inspection (tests, debugging): [`ClientRegistry::wait_until`] lets a test wait for "client X
//! ACKed version V" as an event instead of sleeping.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// A NACK: the client rejected a response (xDS protocol: a request whose `response_nonce` is the response's nonce
/// and whose `error_detail` is set).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Nack {
    /// The version the client rejected (the `version_info` of the response it NACKed).
    pub rejected_version: String,
    /// The nonce of the rejected response.
    pub nonce: String,
    /// The version the client still uses (the NACK's own `version_info`: its last accepted version).
    pub accepted_version: String,
    /// `error_detail.code` (a `google.rpc.Code`; gRPC clients send 3, INVALID_ARGUMENT).
    pub code: i32,
    /// `error_detail.message`: the client's reason, naming the bad resource and field.
    pub message: String,
}

/// One resource type on one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TypeStatus {
    /// Whether the client subscribed to every resource of the type (legacy empty list on LDS/CDS, or `*`).
    pub wildcard: bool,
    /// The explicit names subscribed to.
    pub subscribed: BTreeSet<String>,
    /// The version of the last response sent, if any.
    pub sent_version: Option<String>,
    /// The nonce of the last response sent, if any.
    pub sent_nonce: Option<String>,
    /// The names of the resources in the last response sent.
    pub sent_resources: Vec<String>,
    /// The version the client last ACKed.
    pub acked_version: Option<String>,
    /// How many ACKs the client sent.
    pub ack_count: u64,
    /// The last NACK, kept after later ACKs for inspection.
    pub last_nack: Option<Nack>,
    /// How many NACKs the client sent.
    pub nack_count: u64,
    /// How many requests were ignored because their nonce was stale.
    pub stale_requests: u64,
}

/// One connected ADS stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The server's id for the stream, unique for the server's lifetime.
    pub stream_id: u64,
    /// `node.id` from the stream's requests (`None` until a request carries a non-empty one).
    pub node_id: Option<String>,
    /// The client's address, when known.
    pub peer: Option<SocketAddr>,
    /// Per resource type URL.
    pub types: BTreeMap<String, TypeStatus>,
}

impl ClientInfo {
    /// The state of `type_url` on this stream.
    #[must_use]
    pub fn type_status(&self, type_url: &str) -> Option<&TypeStatus> {
        self.types.get(type_url)
    }

    /// The version of `type_url` the client last ACKed.
    #[must_use]
    pub fn acked_version(&self, type_url: &str) -> Option<&str> {
        self.types.get(type_url)?.acked_version.as_deref()
    }

    /// The last NACK of `type_url`.
    #[must_use]
    pub fn last_nack(&self, type_url: &str) -> Option<&Nack> {
        self.types.get(type_url)?.last_nack.as_ref()
    }

    /// Whether the stream's node id is `node_id`.
    #[must_use]
    pub fn is_node(&self, node_id: &str) -> bool {
        self.node_id.as_deref() == Some(node_id)
    }
}

/// The connected streams. Cheap to clone: clones share the registry.
#[derive(Debug, Clone)]
pub struct ClientRegistry {
    inner: Arc<RegistryInner>,
}

#[derive(Debug)]
struct RegistryInner {
    clients: Mutex<BTreeMap<u64, ClientInfo>>,
    changed: watch::Sender<u64>,
}

impl Default for ClientRegistry {
    fn default() -> Self {
        let (changed, _) = watch::channel(0);
        Self {
            inner: Arc::new(RegistryInner {
                clients: Mutex::new(BTreeMap::new()),
                changed,
            }),
        }
    }
}

impl ClientRegistry {
    /// The connected streams, by stream id.
    #[must_use]
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.lock().values().cloned().collect()
    }

    /// Waits until `condition` holds for the connected streams and returns them. Checks at once, then after every
    /// change. Never returns if the condition never holds: wrap it in `tokio::time::timeout`.
    pub async fn wait_until<F>(&self, mut condition: F) -> Vec<ClientInfo>
    where
        F: FnMut(&[ClientInfo]) -> bool,
    {
        let mut changes = self.inner.changed.subscribe();
        loop {
            // Mark seen before reading, so a change between the read and the wait is not lost.
            changes.borrow_and_update();
            let clients = self.clients();
            if condition(&clients) {
                return clients;
            }
            if changes.changed().await.is_err() {
                // Unreachable while `self` holds the sender; keep waiting forever rather than spin.
                std::future::pending::<()>().await;
            }
        }
    }

    pub(crate) fn upsert(&self, info: ClientInfo) {
        let changed = {
            let mut clients = self.lock();
            if clients.get(&info.stream_id) == Some(&info) {
                false
            } else {
                clients.insert(info.stream_id, info);
                true
            }
        };
        if changed {
            self.inner
                .changed
                .send_modify(|generation| *generation += 1);
        }
    }

    pub(crate) fn remove(&self, stream_id: u64) {
        let removed = self.lock().remove(&stream_id).is_some();
        if removed {
            self.inner
                .changed
                .send_modify(|generation| *generation += 1);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, ClientInfo>> {
        self.inner
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(stream_id: u64, node: &str) -> ClientInfo {
        ClientInfo {
            stream_id,
            node_id: Some(node.to_owned()),
            peer: None,
            types: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn wait_until_wakes_on_change() {
        let registry = ClientRegistry::default();
        let waiter = {
            let registry = registry.clone();
            tokio::spawn(async move {
                registry
                    .wait_until(|c| c.iter().any(|c| c.is_node("b")))
                    .await
            })
        };
        registry.upsert(client(1, "a"));
        registry.upsert(client(2, "b"));
        let clients = waiter.await.unwrap();
        assert_eq!(clients.len(), 2);
        registry.remove(1);
        assert_eq!(registry.clients().len(), 1);
    }
}
