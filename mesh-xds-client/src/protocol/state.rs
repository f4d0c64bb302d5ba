//! [`XdsState`]: the data, construction, subscriptions and timers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;
use std::time::{Duration, Instant};

use mesh_core::rng::{FastRng, RandomSource};
use tracing::{debug, info};

use crate::resource::ResourceKind;

use super::backoff::Backoff;
use super::config::{BackoffConfig, ConfigError, ProtocolConfig, ServerConfig, ServerId, resolve};
use super::name::{AuthorityKey, authority_of, normalize_name};
use super::types::{Output, ResourceStatus, StreamId, WatchError};

/// The ADS protocol for every xDS server of one client, as a state machine without I/O.
///
/// `R` is the validated resource value ([`crate::resource::Resource`] in production). `G` supplies the randomness of
/// the reconnect jitter. Feed it inputs ([`subscribe`](Self::subscribe), [`stream_connected`](Self::stream_connected),
/// [`response`](Self::response), [`tick`](Self::tick), ...), then drain [`poll_output`](Self::poll_output) after each
/// one, in order.
#[derive(Debug)]
pub struct XdsState<R, G = FastRng> {
    pub(super) servers: Vec<ServerState>,
    pub(super) authorities: BTreeMap<AuthorityKey, AuthorityState>,
    pub(super) resources: BTreeMap<(ResourceKind, String), Entry<R>>,
    pub(super) resource_timeout: Duration,
    pub(super) backoff: BackoffConfig,
    pub(super) rng: G,
    pub(super) outputs: VecDeque<Output<R>>,
    next_generation: u64,
}

/// The servers of one authority and the names subscribed through it.
#[derive(Debug)]
pub(super) struct AuthorityState {
    /// Every server of the authority, in fallback order.
    pub(super) servers: Vec<ServerId>,
    /// How many of `servers` are in use: the primary and the fallbacks opened so far (gRFC A71). Subscriptions go to
    /// each of them; `0` while nothing is subscribed.
    pub(super) in_use: usize,
    /// Subscribed names by type.
    pub(super) names: BTreeMap<ResourceKind, BTreeSet<String>>,
}

impl AuthorityState {
    /// The servers in use, primary first.
    pub(super) fn active(&self) -> &[ServerId] {
        self.servers.get(..self.in_use).unwrap_or(&self.servers)
    }

    /// The lowest-priority server in use: the one expected to answer.
    pub(super) fn back(&self) -> Option<ServerId> {
        self.active().last().copied()
    }
}

/// One subscribed resource: the cache entry and its protocol state.
#[derive(Debug)]
pub(super) struct Entry<R> {
    /// `None` when the name cannot be routed to any server.
    pub(super) authority: Option<AuthorityKey>,
    pub(super) value: Option<R>,
    pub(super) status: ResourceStatus,
    pub(super) version: Option<String>,
    pub(super) last_updated: Option<Instant>,
    pub(super) last_error: Option<WatchError>,
    /// Does-not-exist deadline, running only while a connected stream has been asked for the resource.
    pub(super) timer: Option<Instant>,
    /// gRFC A53: a deletion of this resource was ignored and not yet cleared.
    pub(super) deletion_ignored: bool,
}

/// One xDS server's stream and per-type protocol state.
#[derive(Debug)]
pub(super) struct ServerState {
    pub(super) config: ServerConfig,
    pub(super) stream: Stream,
    /// gRFC A57 connectivity error: a stream failed before any response, and no response has come since.
    pub(super) unreachable: bool,
    pub(super) last_failure: Option<String>,
    pub(super) backoff: Backoff,
    pub(super) types: BTreeMap<ResourceKind, TypeState>,
}

/// The stream to one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    /// No stream, none wanted.
    Idle,
    /// Asked the worker to open it.
    Connecting(StreamId),
    /// Open; `responded` once a response arrived on it.
    Connected { id: StreamId, responded: bool },
    /// Failed before any response; reconnect at `until`.
    Backoff { until: Instant },
}

/// Per server and type: what the server was told.
#[derive(Debug, Default)]
pub(super) struct TypeState {
    /// Last accepted `version_info` from this server; survives stream loss (gRFC A57, Envoy xDS protocol).
    pub(super) version: String,
    /// Nonce of the last response on the current stream; empty on a new stream.
    pub(super) nonce: String,
    /// Names in the last request on the current stream; `None` before the first request for this type.
    pub(super) sent: Option<BTreeSet<String>>,
}

impl<R: Clone + PartialEq + Debug, G: RandomSource> XdsState<R, G> {
    /// A state machine with no subscriptions and no streams.
    ///
    /// # Errors
    /// [`ConfigError`] when `config` has no servers, names a server that does not exist, or has unusable backoff.
    pub fn new(config: ProtocolConfig, rng: G) -> Result<Self, ConfigError> {
        let resolved = resolve(&config)?;
        let mut authorities = BTreeMap::new();
        authorities.insert(
            AuthorityKey::Default,
            AuthorityState::new(resolved.default_servers),
        );
        for (name, servers) in resolved.authorities {
            authorities.insert(AuthorityKey::Named(name), AuthorityState::new(servers));
        }
        let servers = config
            .servers
            .into_iter()
            .map(|server| ServerState {
                config: server,
                stream: Stream::Idle,
                unreachable: false,
                last_failure: None,
                backoff: Backoff::new(&config.backoff),
                types: BTreeMap::new(),
            })
            .collect();
        Ok(Self {
            servers,
            authorities,
            resources: BTreeMap::new(),
            resource_timeout: config.resource_timeout,
            backoff: config.backoff,
            rng,
            outputs: VecDeque::new(),
            next_generation: 0,
        })
    }

    /// The next output, oldest first.
    pub fn poll_output(&mut self) -> Option<Output<R>> {
        self.outputs.pop_front()
    }

    /// Every pending output, oldest first.
    pub fn drain_outputs(&mut self) -> impl Iterator<Item = Output<R>> + '_ {
        self.outputs.drain(..)
    }

    /// Subscribes to `name` of `kind`. Subscribing an already subscribed name does nothing (reference counting of
    /// watchers is the caller's).
    ///
    /// Old-style names go to the default servers, `xdstp://` names to their authority's servers (gRFC A47). A name
    /// that cannot be routed gets an [`Output::Error`] and stays subscribed (and silent) until unsubscribed.
    pub fn subscribe(&mut self, kind: ResourceKind, name: &str, now: Instant) {
        let name = normalize_name(name).into_owned();
        if self.resources.contains_key(&(kind, name.clone())) {
            debug!(%kind, name, "already subscribed");
            return;
        }
        let route = authority_of(kind, &name).and_then(|authority| match authority {
            AuthorityKey::Named(ref authority_name)
                if !self.authorities.contains_key(&authority) =>
            {
                Err(WatchError::UnknownAuthority {
                    name: name.clone(),
                    authority: authority_name.clone(),
                })
            }
            known => Ok(known),
        });
        let authority = match route {
            Ok(authority) => authority,
            Err(error) => {
                info!(%kind, name, %error, "cannot subscribe");
                let mut entry = Entry::new(None);
                entry.status = ResourceStatus::Unroutable;
                entry.last_error = Some(error.clone());
                self.resources.insert((kind, name.clone()), entry);
                self.outputs.push_back(Output::Error {
                    kind,
                    name,
                    error,
                    ambient: false,
                });
                return;
            }
        };
        self.resources
            .insert((kind, name.clone()), Entry::new(Some(authority.clone())));
        if let Some(state) = self.authorities.get_mut(&authority) {
            state.names.entry(kind).or_default().insert(name.clone());
            state.in_use = state.in_use.max(1);
        }
        // gRFC A71: fall back when the server in use is unreachable and a watched resource is not cached; this new
        // name is not.
        let moved = self.maybe_fallback(&authority);
        for server in self.active_servers(&authority) {
            self.refresh_server(server);
        }
        if !moved {
            // gRFC A57/A88: a watcher subscribing while its server is unreachable learns it now, as a resource error
            // since it has no value yet.
            let back = self
                .authorities
                .get(&authority)
                .and_then(AuthorityState::back);
            if let Some(error) = back.and_then(|server| self.unreachable_error(server)) {
                self.outputs.push_back(Output::Error {
                    kind,
                    name,
                    error,
                    ambient: false,
                });
            }
        }
        self.reconcile_timers(now);
    }

    /// Unsubscribes `name` of `kind` and drops its cached value. The servers asked for it get the shorter list; a
    /// server no longer needed by any subscription is disconnected.
    pub fn unsubscribe(&mut self, kind: ResourceKind, name: &str, now: Instant) {
        let name = normalize_name(name).into_owned();
        let Some(entry) = self.resources.remove(&(kind, name.clone())) else {
            return;
        };
        if entry.deletion_ignored {
            // gRFC A53: log when the ignored-deletion condition clears, including by unsubscribing.
            info!(%kind, name, "unsubscribed from a resource whose deletion was being ignored");
        }
        let Some(authority) = entry.authority else {
            return;
        };
        let mut servers = Vec::new();
        if let Some(state) = self.authorities.get_mut(&authority) {
            if let Some(names) = state.names.get_mut(&kind) {
                names.remove(&name);
            }
            servers = state.active().to_vec();
            if state.names.values().all(BTreeSet::is_empty) {
                state.names.clear();
                state.in_use = 0;
            }
        }
        for server in servers {
            self.refresh_server(server);
        }
        self.reconcile_timers(now);
    }

    /// Fires what is due at `now`: reconnects after backoff, and does-not-exist timers.
    pub fn tick(&mut self, now: Instant) {
        for index in 0..self.servers.len() {
            let server = ServerId(index);
            let due = self.servers.get(index).is_some_and(
                |state| matches!(state.stream, Stream::Backoff { until } if until <= now),
            );
            if !due {
                continue;
            }
            if self.server_needed(server) {
                self.connect(server);
            } else {
                self.go_idle(server);
            }
        }
        let expired: Vec<(ResourceKind, String)> = self
            .resources
            .iter()
            .filter(|(_, entry)| entry.timer.is_some_and(|deadline| deadline <= now))
            .map(|(key, _)| key.clone())
            .collect();
        for (kind, name) in expired {
            if let Some(entry) = self.resources.get_mut(&(kind, name.clone())) {
                // Envoy xDS protocol, "Knowing when a requested resource does not exist"; gRFC A57.
                info!(%kind, name, "no response for the resource before the timeout: does not exist");
                entry.timer = None;
                entry.status = ResourceStatus::DoesNotExist;
                entry.value = None;
                entry.version = None;
                entry.last_updated = Some(now);
                self.outputs.push_back(Output::DoesNotExist { kind, name });
            }
        }
        self.reconcile_timers(now);
    }

    /// When [`tick`](Self::tick) next has something to do.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        let reconnects = self.servers.iter().filter_map(|state| match state.stream {
            Stream::Backoff { until } => Some(until),
            _ => None,
        });
        let timers = self.resources.values().filter_map(|entry| entry.timer);
        reconnects.chain(timers).min()
    }

    /// Starts a does-not-exist timer for every never-answered resource that a connected stream has been asked for,
    /// and stops every other timer.
    ///
    /// gRFC A57: the timer runs only once the subscription was sent on a connected stream, stops when the stream
    /// fails, and starts afresh on the next stream; resources already received, NACKed or known not to exist get
    /// none.
    pub(super) fn reconcile_timers(&mut self, now: Instant) {
        // A timeout too large to represent never fires.
        let deadline = now.checked_add(self.resource_timeout);
        for ((kind, name), entry) in &mut self.resources {
            if entry.status != ResourceStatus::Requested {
                entry.timer = None;
                continue;
            }
            let awaited = self.servers.iter().any(|server| {
                matches!(server.stream, Stream::Connected { .. })
                    && server
                        .types
                        .get(kind)
                        .and_then(|state| state.sent.as_ref())
                        .is_some_and(|sent| sent.contains(name))
            });
            match (awaited, entry.timer) {
                (true, None) => entry.timer = deadline,
                (false, Some(_)) => entry.timer = None,
                _ => {}
            }
        }
    }

    /// Opens a new stream to `server`.
    pub(super) fn connect(&mut self, server: ServerId) {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let stream = StreamId::new(server, generation);
        if let Some(state) = self.servers.get_mut(server.0) {
            state.stream = Stream::Connecting(stream);
            for types in state.types.values_mut() {
                // gRFC A57 / Envoy xDS protocol: a new stream resumes with the last versions and empty nonces.
                types.nonce.clear();
                types.sent = None;
            }
            self.outputs.push_back(Output::Connect { stream });
        }
    }

    /// The error for watchers of `server`'s resources, when it is unreachable.
    pub(super) fn unreachable_error(&self, server: ServerId) -> Option<WatchError> {
        let state = self.servers.get(server.0)?;
        state.unreachable.then(|| WatchError::Unreachable {
            server_uri: state.config.uri.clone(),
            detail: state.last_failure.clone().unwrap_or_default(),
        })
    }
}

impl AuthorityState {
    fn new(servers: Vec<ServerId>) -> Self {
        Self {
            servers,
            in_use: 0,
            names: BTreeMap::new(),
        }
    }
}

impl<R> Entry<R> {
    fn new(authority: Option<AuthorityKey>) -> Self {
        Self {
            authority,
            value: None,
            status: ResourceStatus::Requested,
            version: None,
            last_updated: None,
            last_error: None,
            timer: None,
            deletion_ignored: false,
        }
    }
}
