//! Following the server's Listener and its RouteConfigurations (gRFC A36 "xDS Protocol"), and deciding whether the
//! server serves.
//!
//! One task watches the Listener named from `server_listener_resource_name_template` and, through one small task
//! each, the RouteConfigurations its filter chains name by RDS. It serves (publishes a [`ListenerConfig`]) when:
//! - the Listener exists, is a server listener, and its address is the one the server listens on (A36: otherwise
//!   "not serving");
//! - every RDS watch has delivered something, a resource or an error (A36: "The server should enter the serving
//!   state only after every RDS watcher has received some kind of notification").
//!
//! A Listener update (inline routes included) publishes a new generation: new connections use it and older ones are
//! drained (A36, like Envoy's LDS). An RDS update changes the routes in place, for old and new connections alike,
//! without draining (A36). A Listener update whose new RDS names have not been heard of yet keeps the previous
//! configuration until they have (A36: "Applying updates to a Listener should be delayed until dependent resources
//! have been attempted to be loaded"). A deleted, missing or unusable Listener makes the server "not serving": no
//! configuration is published, new connections are closed and existing ones drained. Communication failures with
//! the control plane change nothing (the xDS client keeps the last good resources).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arc_swap::{ArcSwap, ArcSwapOption};
use mesh_core::listener::{FilterChain, Listener, ListenerKind, RouteSource, ServerListener};
use mesh_tower::tls::CertificateProviders;
use mesh_xds_client::client::{WatchState, XdsClient};
use mesh_xds_client::resource::{Resource, ResourceKind};
use tokio::sync::{Notify, watch};

use super::ServingState;
use super::rds::{RdsWatch, follow_rds};
use super::route::{ChainConfig, ChainRoutes, RdsState, forwarding_routes};
use super::tls::ChainTls;

/// A serving-state callback.
pub(crate) type StateCallback = Arc<dyn Fn(&ServingState) + Send + Sync>;

/// The Listener as connections use it: one published value per generation.
#[derive(Debug)]
pub(crate) struct ListenerConfig {
    /// Increases with every published Listener; connections of older generations drain.
    pub(crate) generation: u64,
    /// The chains with their match criteria, for selection.
    pub(crate) filter_chains: Vec<FilterChain>,
    /// The same chains, ready for requests (same order).
    pub(crate) chains: Vec<Arc<ChainConfig>>,
    /// The default chain.
    pub(crate) default_chain: Option<Arc<ChainConfig>>,
}

/// The generation published at shutdown: every connection drains, and handshakes in progress stop.
pub(crate) const SHUT_DOWN: u64 = u64::MAX;

/// What the config task shares with the accept loop and the handle.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The configuration to serve with; `None` while not serving. Read once per accepted connection.
    pub(crate) config: ArcSwapOption<ListenerConfig>,
    /// The generation connections must belong to; any other drains.
    pub(crate) generation: watch::Sender<u64>,
    /// The serving state, for the application.
    pub(crate) state: watch::Sender<ServingState>,
    /// TLS handshakes that failed (for [`XdsServer::tls_handshake_failures`](super::XdsServer::tls_handshake_failures)).
    pub(crate) tls_handshake_failures: AtomicU64,
}

/// The config task's state.
pub(crate) struct Follower {
    pub(crate) xds: XdsClient,
    pub(crate) listener_name: Arc<str>,
    pub(crate) address: SocketAddr,
    pub(crate) shared: Arc<Shared>,
    pub(crate) on_state: Option<StateCallback>,
    /// The certificate provider instances chains with TLS name.
    providers: CertificateProviders,
    rds: HashMap<Arc<str>, RdsWatch>,
    serving: Option<Arc<Listener>>,
    generation: u64,
    rds_changed: Arc<Notify>,
    /// Whether the server is not serving because of an error, so that serving again is worth a warning.
    resuming: bool,
    /// Whether the served Listener's inline routes have routes that fail every RPC (A36 configuration error logging).
    inline_errors: bool,
}

impl Follower {
    pub(crate) fn new(
        xds: XdsClient,
        listener_name: Arc<str>,
        address: SocketAddr,
        shared: Arc<Shared>,
        on_state: Option<StateCallback>,
        providers: CertificateProviders,
    ) -> Self {
        Self {
            xds,
            listener_name,
            address,
            shared,
            on_state,
            providers,
            rds: HashMap::new(),
            serving: None,
            generation: 0,
            rds_changed: Arc::new(Notify::new()),
            inline_errors: false,
            resuming: false,
        }
    }

    /// Follows the Listener until the xDS client stops.
    pub(crate) async fn run(mut self) {
        let mut listener = self.xds.watch(ResourceKind::Listener, &self.listener_name);
        loop {
            self.step(&listener.current());
            tokio::select! {
                changed = listener.changed() => {
                    if changed.is_none() {
                        return;
                    }
                }
                () = self.rds_changed.notified() => {}
            }
        }
    }

    fn step(&mut self, watched: &WatchState) {
        let name = &Arc::clone(&self.listener_name);
        let listener = match &watched.resource {
            Some(Resource::Listener(listener)) => Arc::clone(listener),
            Some(_) => {
                return self.not_serving(format!("Listener {name:?}: not a Listener resource"));
            }
            None if watched.does_not_exist => {
                return self.not_serving(format!("Listener {name:?} does not exist"));
            }
            None => match &watched.error {
                Some(error) => return self.not_serving(format!("Listener {name:?}: {error}")),
                // Nothing heard yet.
                None => return,
            },
        };
        let ListenerKind::Server(server) = &listener.kind else {
            return self.not_serving(format!(
                "Listener {name:?} is a client listener (api_listener), not a server listener"
            ));
        };
        // gRFC A36: "The XdsServer must be \"not serving\" if the address does not match."
        if server.address != self.address {
            return self.not_serving(format!(
                "Listener {name:?} is for address {}, but this server listens on {}",
                server.address, self.address
            ));
        }
        let names = rds_names(server);
        for rds_name in &names {
            self.subscribe(rds_name);
        }
        if let Some(waiting) = names.iter().find(|n| self.rds_pending(n)) {
            tracing::debug!(listener = %name, route_configuration = %waiting, "waiting for the RouteConfiguration");
            if self.serving.is_none() {
                let reason =
                    format!("Listener {name:?}: waiting for RouteConfiguration {waiting:?}");
                self.set_state(
                    ServingState::NotServing {
                        reason: reason.into(),
                    },
                    false,
                );
            }
            return;
        }
        if self
            .serving
            .as_ref()
            .is_none_or(|current| **current != *listener)
        {
            self.publish(&listener, server);
        }
        // Subscriptions no chain names any more.
        self.rds.retain(|rds_name, _| names.contains(rds_name));
    }

    fn subscribe(&mut self, rds_name: &Arc<str>) {
        if self.rds.contains_key(rds_name) {
            return;
        }
        let state = Arc::new(ArcSwap::from_pointee(RdsState::Pending));
        let watcher = self.xds.watch(ResourceKind::RouteConfiguration, rds_name);
        let task = tokio::spawn(follow_rds(
            watcher,
            Arc::clone(rds_name),
            Arc::clone(&state),
            Arc::clone(&self.rds_changed),
        ));
        self.rds
            .insert(Arc::clone(rds_name), RdsWatch { state, task });
    }

    fn rds_pending(&self, rds_name: &str) -> bool {
        self.rds
            .get(rds_name)
            .is_none_or(|watch| matches!(**watch.state.load(), RdsState::Pending))
    }

    fn chain(&self, chain: &FilterChain) -> Arc<ChainConfig> {
        let routes = match &chain.http.route_source {
            RouteSource::Inline(routes) => ChainRoutes::Inline(Arc::clone(routes)),
            RouteSource::Rds(name) => ChainRoutes::Rds {
                name: Arc::clone(name),
                state: self.rds.get(name).map_or_else(
                    || Arc::new(ArcSwap::from_pointee(RdsState::Pending)),
                    |watch| Arc::clone(&watch.state),
                ),
            },
            // A route source this server does not know: every request on the chain fails with the reason.
            #[allow(unreachable_patterns)]
            _ => ChainRoutes::Rds {
                name: "(unsupported route source)".into(),
                state: Arc::new(ArcSwap::from_pointee(RdsState::Failed(
                    "the connection manager's route source is not supported".into(),
                ))),
            },
        };
        Arc::new(ChainConfig {
            name: Arc::clone(&chain.name),
            // gRFC A29: TLS set up once per Listener; provider material is read at each handshake (rotation).
            tls: chain
                .tls
                .as_ref()
                .map(|tls| ChainTls::new(&chain.name, tls, &self.providers)),
            routes,
            rbac: super::authz::chain_of(&chain.http.http_filters),
            filters: chain.http.http_filters.clone(),
        })
    }

    fn publish(&mut self, listener: &Arc<Listener>, server: &ServerListener) {
        self.generation += 1;
        let config = ListenerConfig {
            generation: self.generation,
            filter_chains: server.filter_chains.clone(),
            chains: server.filter_chains.iter().map(|c| self.chain(c)).collect(),
            default_chain: server.default_filter_chain.as_ref().map(|c| self.chain(c)),
        };
        self.shared.config.store(Some(Arc::new(config)));
        self.shared.generation.send_replace(self.generation);
        if self.serving.is_some() {
            tracing::info!(listener = %self.listener_name, generation = self.generation,
                "Listener updated: new connections use it, older ones drain");
        }
        self.serving = Some(Arc::clone(listener));
        self.log_inline_errors(server);
        self.set_state(ServingState::Serving, false);
    }

    /// gRFC A36 "configuration error logging": a warning for every update with routes that fail their RPCs, and
    /// one when there are none any more.
    fn log_inline_errors(&mut self, server: &ServerListener) {
        let forwarding: usize = server
            .filter_chains
            .iter()
            .chain(server.default_filter_chain.as_ref())
            .filter_map(|chain| match &chain.http.route_source {
                RouteSource::Inline(routes) => Some(forwarding_routes(routes)),
                _ => None,
            })
            .sum();
        if forwarding > 0 {
            tracing::warn!(listener = %self.listener_name, forwarding,
                "inline routes without non_forwarding_action: RPCs matching them fail with UNAVAILABLE");
        } else if self.inline_errors {
            tracing::warn!(listener = %self.listener_name, "the inline routes have no configuration errors any more");
        }
        self.inline_errors = forwarding > 0;
    }

    fn not_serving(&mut self, reason: String) {
        self.rds.clear();
        if self.serving.take().is_some() || self.shared.config.load().is_some() {
            self.shared.config.store(None);
            self.generation += 1;
            self.shared.generation.send_replace(self.generation);
        }
        self.set_state(
            ServingState::NotServing {
                reason: reason.into(),
            },
            true,
        );
    }

    /// Publishes `state`, telling the callback (or, without one, the log) when it changed. `error`: the state is
    /// not-serving because of a configuration problem (not merely waiting for a first resource).
    fn set_state(&mut self, state: ServingState, error: bool) {
        if *self.shared.state.borrow() == state {
            return;
        }
        self.shared.state.send_replace(state);
        // The callback runs after the watch changed, so it sees the same state through the handle.
        let state = self.shared.state.borrow().clone();
        let resuming = self.resuming;
        if error || state.is_serving() {
            self.resuming = error;
        }
        if let Some(callback) = &self.on_state {
            callback(&state);
            return;
        }
        // gRFC A36: without a callback, log errors and each resumption after one at a default-visible level.
        match &state {
            ServingState::NotServing { reason } if error => {
                tracing::warn!(listener = %self.listener_name, %reason, "xDS-enabled server is not serving");
            }
            ServingState::NotServing { reason } => {
                tracing::debug!(listener = %self.listener_name, %reason, "xDS-enabled server is not serving yet");
            }
            _ if resuming => {
                tracing::warn!(listener = %self.listener_name, address = %self.address,
                    "xDS-enabled server is serving again");
            }
            _ => {
                tracing::info!(listener = %self.listener_name, address = %self.address, "xDS-enabled server is serving");
            }
        }
    }
}

/// The RDS names a server listener's chains use.
fn rds_names(server: &ServerListener) -> Vec<Arc<str>> {
    let mut names: Vec<Arc<str>> = server
        .filter_chains
        .iter()
        .chain(server.default_filter_chain.as_ref())
        .filter_map(|chain| match &chain.http.route_source {
            RouteSource::Rds(name) => Some(Arc::clone(name)),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}
