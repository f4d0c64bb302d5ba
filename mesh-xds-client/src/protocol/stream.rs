//! Streams: connection events, subscription requests, backoff and fallback between servers (gRFC A57, A71).

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::Instant;

use mesh_core::rng::RandomSource;
use tracing::{debug, info, warn};

use crate::resource::ResourceKind;

use super::config::{DEFAULT_BACKOFF_MAX, ServerId};
use super::name::AuthorityKey;
use super::state::{AuthorityState, Stream, XdsState};
use super::types::{Output, Request, ResourceStatus, StreamId};

impl<R: Clone + PartialEq + Debug, G: RandomSource> XdsState<R, G> {
    /// The stream is open and requests can be written: every subscribed type is requested with its last accepted
    /// version and an empty nonce (gRFC A57; Envoy xDS protocol), and does-not-exist timers start for resources not
    /// yet received.
    ///
    /// How "open" is detected is the worker's choice; gRFC A57 prefers the first completed write, and accepts the
    /// channel turning READY.
    pub fn stream_connected(&mut self, stream: StreamId, now: Instant) {
        let server = stream.server();
        let Some(state) = self.servers.get_mut(server.0) else {
            return;
        };
        if state.stream != Stream::Connecting(stream) {
            debug!(%stream, "connected event for a stream no longer wanted; ignoring");
            return;
        }
        state.stream = Stream::Connected {
            id: stream,
            responded: false,
        };
        self.refresh_server(server);
        self.reconcile_timers(now);
    }

    /// The stream ended, for any reason; `detail` says why (it reaches watchers in a connectivity error).
    ///
    /// gRFC A57: a stream that had a response is replaced at once and the backoff resets, with nothing reported to
    /// watchers (servers close streams in normal operation). A stream that failed before any response is a
    /// connectivity error: it is retried after exponential backoff, the authorities using this server fall back to
    /// their next server when they wait for a resource not cached (gRFC A71), and otherwise their watchers get the
    /// error once (ambient for those holding a value, gRFC A88). The cache is kept either way.
    pub fn stream_failed(&mut self, stream: StreamId, detail: &str, now: Instant) {
        let server = stream.server();
        let Some(state) = self.servers.get_mut(server.0) else {
            return;
        };
        let responded = match state.stream {
            Stream::Connecting(id) if id == stream => false,
            Stream::Connected { id, responded } if id == stream => responded,
            _ => {
                debug!(%stream, "failure of a stream no longer wanted; ignoring");
                return;
            }
        };
        for types in state.types.values_mut() {
            types.nonce.clear();
            types.sent = None;
        }
        if responded {
            info!(%stream, detail, "ADS stream closed after a response; reconnecting now");
            state.backoff.reset(&self.backoff);
            self.connect(server);
            self.reconcile_timers(now);
            return;
        }
        let delay = state.backoff.next_delay(&self.backoff, &mut self.rng);
        let newly_unreachable = !state.unreachable;
        state.stream = Stream::Backoff {
            until: now
                .checked_add(delay)
                .or_else(|| now.checked_add(DEFAULT_BACKOFF_MAX))
                .unwrap_or(now),
        };
        state.unreachable = true;
        state.last_failure = Some(detail.to_owned());
        warn!(%stream, uri = state.config.uri, detail, ?delay, "ADS stream failed before any response");
        let affected: Vec<AuthorityKey> = self
            .authorities
            .iter()
            .filter(|(_, authority)| authority.back() == Some(server))
            .map(|(key, _)| key.clone())
            .collect();
        for key in affected {
            if !self.maybe_fallback(&key) && newly_unreachable {
                self.report_unreachable(&key, server);
            }
        }
        self.reconcile_timers(now);
    }

    /// gRFC A71: when the last server in use by `key` is unreachable and some subscribed resource of the authority is
    /// not cached (received, NACKed and does-not-exist all count as cached), start using the next server, skipping
    /// servers already known unreachable. Servers in use before keep retrying. Returns whether a server not known to
    /// be unreachable is now in use.
    pub(super) fn maybe_fallback(&mut self, key: &AuthorityKey) -> bool {
        let Some(back) = self.authorities.get(key).and_then(AuthorityState::back) else {
            return false;
        };
        if !self.is_unreachable(back) || !self.has_uncached(key) {
            return false;
        }
        loop {
            let Some(authority) = self.authorities.get_mut(key) else {
                return false;
            };
            let Some(&next) = authority.servers.get(authority.in_use) else {
                return false;
            };
            authority.in_use += 1;
            info!(authority = ?key.as_str(), server = next.0, "xDS fallback: using the next server");
            self.refresh_server(next);
            if !self.is_unreachable(next) {
                return true;
            }
        }
    }

    /// gRFC A71: a response from `server` means it is reachable again, so every authority using it stops using the
    /// lower-priority servers after it; those no longer needed are disconnected.
    pub(super) fn return_to(&mut self, server: ServerId) {
        let mut dropped: BTreeSet<ServerId> = BTreeSet::new();
        for (key, authority) in &mut self.authorities {
            let Some(position) = authority.active().iter().position(|&s| s == server) else {
                continue;
            };
            if position + 1 < authority.in_use {
                let lower = authority.servers.get(position + 1..authority.in_use);
                dropped.extend(lower.into_iter().flatten().copied());
                authority.in_use = position + 1;
                info!(authority = ?key.as_str(), server = server.0, "xDS fallback: back to a higher-priority server");
            }
        }
        for lower in dropped {
            self.refresh_server(lower);
        }
    }

    /// Brings `server`'s stream in line with the subscriptions: connects when needed and idle, requests changed
    /// name lists when connected, disconnects when no longer needed.
    pub(super) fn refresh_server(&mut self, server: ServerId) {
        let Some(stream) = self.servers.get(server.0).map(|state| state.stream) else {
            return;
        };
        if !self.server_needed(server) {
            self.go_idle(server);
            return;
        }
        match stream {
            Stream::Idle => self.connect(server),
            Stream::Connected { id, .. } => {
                for kind in ResourceKind::ALL {
                    self.send_update(server, id, kind);
                }
            }
            Stream::Connecting(_) | Stream::Backoff { .. } => {}
        }
    }

    /// Requests the current name list of `kind` when it differs from what the stream was last told. A type never
    /// requested on this stream is not requested with an empty list: for LDS and CDS an empty first request means
    /// "everything" (Envoy xDS protocol, wildcard subscriptions).
    fn send_update(&mut self, server: ServerId, stream: StreamId, kind: ResourceKind) {
        let names = self.desired_names(server, kind);
        let Some(state) = self.servers.get_mut(server.0) else {
            return;
        };
        match state.types.get(&kind).and_then(|types| types.sent.as_ref()) {
            None if names.is_empty() => return,
            Some(sent) if *sent == names => return,
            _ => {}
        }
        let types = state.types.entry(kind).or_default();
        let request = Request {
            kind,
            names: names.iter().cloned().collect(),
            version_info: types.version.clone(),
            response_nonce: types.nonce.clone(),
            error_detail: None,
        };
        types.sent = Some(names);
        self.outputs.push_back(Output::Send { stream, request });
    }

    /// Closes `server`'s stream, cancels its reconnect and forgets its protocol state.
    pub(super) fn go_idle(&mut self, server: ServerId) {
        let Some(state) = self.servers.get_mut(server.0) else {
            return;
        };
        match state.stream {
            Stream::Connecting(stream) | Stream::Connected { id: stream, .. } => {
                info!(%stream, "no subscription uses this server any more; disconnecting");
                self.outputs.push_back(Output::Disconnect { stream });
            }
            Stream::Idle | Stream::Backoff { .. } => {}
        }
        state.stream = Stream::Idle;
        state.unreachable = false;
        state.last_failure = None;
        state.backoff.reset(&self.backoff);
        // Versions are per stream lineage: a server dropped and later reused starts from scratch, so it never sees a
        // version for resources this client has since forgotten.
        state.types.clear();
    }

    /// Every connectivity error for the watchers of `key`'s resources.
    fn report_unreachable(&mut self, key: &AuthorityKey, server: ServerId) {
        let Some(error) = self.unreachable_error(server) else {
            return;
        };
        let Some(authority) = self.authorities.get(key) else {
            return;
        };
        for (&kind, names) in &authority.names {
            for name in names {
                let ambient = self
                    .resources
                    .get(&(kind, name.clone()))
                    .is_some_and(|entry| entry.value.is_some());
                self.outputs.push_back(Output::Error {
                    kind,
                    name: name.clone(),
                    error: error.clone(),
                    ambient,
                });
            }
        }
    }

    /// Whether any subscription uses `server`.
    pub(super) fn server_needed(&self, server: ServerId) -> bool {
        self.authorities
            .values()
            .any(|authority| authority.active().contains(&server))
    }

    /// Every name of `kind` that `server` is asked for: the union over the authorities using it (gRFC A47: one
    /// stream for every authority on the same server).
    pub(super) fn desired_names(&self, server: ServerId, kind: ResourceKind) -> BTreeSet<String> {
        self.authorities
            .values()
            .filter(|authority| authority.active().contains(&server))
            .filter_map(|authority| authority.names.get(&kind))
            .flatten()
            .cloned()
            .collect()
    }

    /// The servers `key` uses now.
    pub(super) fn active_servers(&self, key: &AuthorityKey) -> Vec<ServerId> {
        self.authorities
            .get(key)
            .map(|authority| authority.active().to_vec())
            .unwrap_or_default()
    }

    fn has_uncached(&self, key: &AuthorityKey) -> bool {
        self.resources.values().any(|entry| {
            entry.authority.as_ref() == Some(key) && entry.status == ResourceStatus::Requested
        })
    }
}
