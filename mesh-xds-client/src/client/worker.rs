//! The worker task: performs the protocol state machine's outputs, feeds it stream events and decoded responses,
//! fires its timers, and fans resource events out to watchers and dependency managers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::Node as PbNode;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use hickory_resolver::TokioResolver;
use mesh_core::rng::FastRng;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::transport::{StreamEvent, node_proto, run_stream, to_discovery_request};
use super::{ClientError, Command, Key, TargetUpdate, WatchState, dns, dump};
use crate::bootstrap::{Bootstrap, XdsServer};
use crate::deps::{Action, DependencyManager, ResourceEvent};
use crate::protocol::{
    DecodedResponse, Output, ProtocolConfig, ResourceCounts, ServerConfig, StreamId, WatchError,
    XdsState, normalize_name,
};
use crate::resource::{self, Resource, ResourceKind, ValidationContext};

/// The type URL of `envoy.service.discovery.v3.Resource`, which may wrap resources in state-of-the-world responses
/// (gRPC client feature `xds.config.resource-in-sotw`).
const RESOURCE_WRAPPER_TYPE_URL: &str = "type.googleapis.com/envoy.service.discovery.v3.Resource";

/// The valid resources of a response as received, by name.
type RawResources = Vec<(String, Any)>;

/// Events from stream and DNS tasks.
#[derive(Debug)]
pub(super) enum Event {
    Stream(StreamEvent),
    Dns {
        target: u64,
        cluster: String,
        result: Result<Vec<SocketAddr>, String>,
    },
}

struct StreamHandle {
    requests: mpsc::UnboundedSender<DiscoveryRequest>,
    task: JoinHandle<()>,
    node_sent: bool,
    /// A response arrived on this stream (gRFC A57: a stream that fails before one marks its server unhealthy).
    responded: bool,
}

#[derive(Default)]
struct Subscription {
    /// Live external watches (one per `WatchShare`).
    external: usize,
    /// Dependency managers watching it.
    internal: usize,
    senders: Vec<watch::Sender<WatchState>>,
    state: WatchState,
    /// Whether anything was heard yet (`state` is meaningful).
    known: bool,
}

struct Target {
    deps: DependencyManager,
    tx: watch::Sender<Option<TargetUpdate>>,
    dns: HashMap<String, JoinHandle<()>>,
}

pub(super) struct Worker {
    bootstrap: Arc<Bootstrap>,
    state: XdsState<Resource, FastRng>,
    server_uris: Vec<String>,
    /// Connectors for servers with TLS credentials, by server URI (gRFC A65).
    connectors: HashMap<String, super::Connector>,
    validation: ValidationContext,
    node: PbNode,
    commands: mpsc::UnboundedReceiver<Command>,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    streams: HashMap<StreamId, StreamHandle>,
    subscriptions: HashMap<Key, Subscription>,
    targets: BTreeMap<u64, Target>,
    /// Resource events waiting to be delivered to dependency managers: `(target, kind, name, event)`.
    pending: VecDeque<(u64, ResourceKind, String, ResourceEvent)>,
    resolver: Option<Arc<TokioResolver>>,
    /// The resources of the response being applied, as received, until the state machine says which it accepted.
    incoming_raw: HashMap<Key, Any>,
    /// Every accepted resource as received (for CSDS, gRFC A40).
    raw: HashMap<Key, Any>,
    metrics: Arc<dyn super::XdsClientMetrics>,
    /// Per server (bootstrap order): whether it is unhealthy, so each healthy-to-unhealthy change counts once.
    unhealthy: Vec<bool>,
    /// The resource counts last reported (gRFC A78 `grpc.xds_client.resources`).
    reported_counts: ResourceCounts,
    /// The clusters whose load is reported, and their LRS streams (gRFC A27).
    lrs: crate::lrs::LoadReporting,
}

impl Worker {
    pub(super) fn new(
        bootstrap: Arc<Bootstrap>,
        options: super::ClientOptions,
        commands: mpsc::UnboundedReceiver<Command>,
        load_store: mesh_core::load::LoadStore,
    ) -> Result<Self, ClientError> {
        let mut config = protocol_config(&bootstrap);
        config.resource_timeout = options.resource_timeout;
        let server_uris: Vec<String> = config.servers.iter().map(|s| s.uri.clone()).collect();
        let unhealthy = vec![false; server_uris.len()];
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x5eed, |d| d.as_secs() ^ u64::from(d.subsec_nanos()));
        let state = XdsState::new(config, FastRng::from_seed(seed))?;
        let validation = ValidationContext {
            certificate_providers: bootstrap.certificate_providers.keys().cloned().collect(),
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let lrs = crate::lrs::LoadReporting::new(
            load_store,
            Arc::clone(&bootstrap),
            options.connectors.clone(),
            node_proto(&bootstrap.node),
        );
        Ok(Self {
            lrs,
            node: node_proto(&bootstrap.node),
            bootstrap,
            state,
            server_uris,
            connectors: options.connectors,
            validation,
            commands,
            events_tx,
            events_rx,
            streams: HashMap::new(),
            subscriptions: HashMap::new(),
            targets: BTreeMap::new(),
            pending: VecDeque::new(),
            resolver: None,
            incoming_raw: HashMap::new(),
            raw: HashMap::new(),
            metrics: options.metrics,
            unhealthy,
            reported_counts: ResourceCounts::default(),
        })
    }

    pub(super) async fn run(mut self) {
        loop {
            self.flush();
            self.report_counts();
            let deadline = self.state.next_deadline();
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                Some(event) = self.events_rx.recv() => self.event(event),
                () = sleep_until(deadline) => self.state.tick(Instant::now()),
            }
        }
        for (_, handle) in self.streams.drain() {
            handle.task.abort();
        }
        for (_, target) in std::mem::take(&mut self.targets) {
            for (_, task) in target.dns {
                task.abort();
            }
        }
        tracing::debug!(
            bootstrap_servers = self.bootstrap.xds_servers.len(),
            "xDS client stopped"
        );
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Watch(key, tx) => {
                let sub = self.subscriptions.entry(key.clone()).or_default();
                if sub.known {
                    tx.send_replace(sub.state.clone());
                }
                sub.senders.push(tx);
                sub.external += 1;
                if sub.external + sub.internal == 1 {
                    self.state.subscribe(key.0, &key.1, now);
                }
            }
            Command::Unwatch(key) => {
                if let Some(sub) = self.subscriptions.get_mut(&key) {
                    sub.external = sub.external.saturating_sub(1);
                    sub.senders.retain(|tx| !tx.is_closed());
                    self.release_if_unused(&key, now);
                }
            }
            Command::WatchTarget {
                id,
                listener,
                authority,
                tx,
            } => {
                let deps = DependencyManager::new(&listener, &authority);
                self.targets.insert(
                    id,
                    Target {
                        deps,
                        tx,
                        dns: HashMap::new(),
                    },
                );
                self.drive_target(id);
            }
            Command::UnwatchTarget(id) => {
                self.lrs.target_removed(id);
                if let Some(mut target) = self.targets.remove(&id) {
                    for (_, task) in target.dns.drain() {
                        task.abort();
                    }
                    for (kind, name) in target.deps.watched() {
                        self.release_internal(&(kind, name), now);
                    }
                }
            }
            Command::Dump(reply) => {
                let _ = reply.send(dump::build(&self.state, &self.raw));
            }
        }
    }

    fn release_internal(&mut self, key: &Key, now: Instant) {
        if let Some(sub) = self.subscriptions.get_mut(key) {
            sub.internal = sub.internal.saturating_sub(1);
            self.release_if_unused(key, now);
        }
    }

    fn release_if_unused(&mut self, key: &Key, now: Instant) {
        if self
            .subscriptions
            .get(key)
            .is_some_and(|sub| sub.external + sub.internal == 0)
        {
            self.subscriptions.remove(key);
            self.raw.remove(key);
            self.state.unsubscribe(key.0, &key.1, now);
        }
    }

    fn event(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::Stream(StreamEvent::Connected(id)) => {
                if self.streams.contains_key(&id) {
                    self.state.stream_connected(id, now);
                }
            }
            Event::Stream(StreamEvent::Failed(id, detail)) => {
                if let Some(handle) = self.streams.remove(&id) {
                    handle.task.abort();
                    tracing::info!(stream = %id, %detail, "xDS stream failed");
                    // gRFC A78/A57: the server turns unhealthy when its stream fails before any response.
                    let server = id.server().0;
                    if !handle.responded
                        && let Some(unhealthy) = self.unhealthy.get_mut(server)
                        && !*unhealthy
                    {
                        *unhealthy = true;
                        let uri = self.server_uris.get(server).map_or("", String::as_str);
                        self.metrics.server_failure(uri);
                        self.metrics.server_connected(uri, false);
                    }
                    self.state.stream_failed(id, &detail, now);
                }
            }
            Event::Stream(StreamEvent::Response(id, response)) => {
                if let Some(handle) = self.streams.get_mut(&id) {
                    let server = id.server().0;
                    if !handle.responded {
                        handle.responded = true;
                        if let Some(unhealthy) = self.unhealthy.get_mut(server) {
                            *unhealthy = false;
                        }
                        self.metrics.server_connected(
                            self.server_uris.get(server).map_or("", String::as_str),
                            true,
                        );
                    }
                    match self.decode(&response) {
                        Some(decoded) => {
                            let valid = decoded.0.resources.iter().filter(|r| r.is_ok()).count();
                            let invalid = decoded.0.resources.len() - valid;
                            self.metrics.resource_updates(
                                self.server_uris.get(server).map_or("", String::as_str),
                                response.type_url.trim_start_matches("type.googleapis.com/"),
                                u64::try_from(valid).unwrap_or(u64::MAX),
                                u64::try_from(invalid).unwrap_or(u64::MAX),
                            );
                            for (name, any) in decoded.1 {
                                self.incoming_raw.insert((decoded.0.kind, name), any);
                            }
                            self.state.response(id, decoded.0, now);
                        }
                        None => tracing::warn!(
                            stream = %id,
                            type_url = %response.type_url,
                            "ignoring ADS response of an unknown resource type"
                        ),
                    }
                }
            }
            Event::Dns {
                target,
                cluster,
                result,
            } => {
                if let Some(t) = self.targets.get_mut(&target) {
                    t.deps.on_dns(&cluster, result);
                    self.drive_target(target);
                }
            }
        }
    }

    /// Decodes and validates every resource of a response (gRFC A46: each on its own), keeping the raw form of
    /// each valid one for CSDS.
    fn decode(
        &self,
        response: &DiscoveryResponse,
    ) -> Option<(DecodedResponse<Resource>, RawResources)> {
        let kind = ResourceKind::from_type_url(&response.type_url)?;
        let mut raw = Vec::new();
        let resources = response
            .resources
            .iter()
            .map(|any| {
                let any = if any.type_url == RESOURCE_WRAPPER_TYPE_URL {
                    unwrap_resource(kind, any)?
                } else {
                    any.clone()
                };
                let decoded = resource::decode(kind, &any, &self.validation)?;
                raw.push((normalize_name(&decoded.0).into_owned(), any));
                Ok(decoded)
            })
            .collect();
        let decoded = DecodedResponse {
            kind,
            version_info: response.version_info.clone(),
            nonce: response.nonce.clone(),
            resources,
        };
        Some((decoded, raw))
    }

    /// Reports the resource counts when they differ from the last report (gRFC A78): one pass over the cache per
    /// handled event, never per request.
    fn report_counts(&mut self) {
        let counts = self.state.resource_counts();
        if counts != self.reported_counts {
            self.metrics.resource_counts(&counts);
            self.reported_counts = counts;
        }
    }

    /// Performs every pending output of the state machine, then delivers queued events to dependency managers.
    fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(output) = self.state.poll_output() {
                progressed = true;
                self.output(output);
            }
            while let Some((target, kind, name, event)) = self.pending.pop_front() {
                progressed = true;
                if let Some(t) = self.targets.get_mut(&target) {
                    t.deps.on_resource(kind, &name, event);
                    self.drive_target(target);
                }
            }
            if !progressed {
                break;
            }
        }
        self.incoming_raw.clear();
    }

    fn output(&mut self, output: Output<Resource>) {
        match output {
            Output::Connect { stream } => {
                let uri = self
                    .server_uris
                    .get(stream.server().0)
                    .cloned()
                    .unwrap_or_default();
                let (requests, rx) = mpsc::unbounded_channel();
                let connector = self.connectors.get(&uri).cloned();
                let task = tokio::spawn(run_stream(
                    uri,
                    connector,
                    stream,
                    rx,
                    self.events_tx.clone(),
                ));
                if let Some(old) = self.streams.insert(
                    stream,
                    StreamHandle {
                        requests,
                        task,
                        node_sent: false,
                        responded: false,
                    },
                ) {
                    old.task.abort();
                }
            }
            Output::Disconnect { stream } => {
                if let Some(handle) = self.streams.remove(&stream) {
                    handle.task.abort();
                }
            }
            Output::Send { stream, request } => {
                if let Some(handle) = self.streams.get_mut(&stream) {
                    let node = (!handle.node_sent).then(|| self.node.clone());
                    handle.node_sent = true;
                    if request.is_nack() {
                        tracing::warn!(
                            stream = %stream,
                            type_url = request.type_url(),
                            detail = request.error_detail.as_deref().unwrap_or_default(),
                            "NACKing xDS response"
                        );
                    }
                    let _ = handle.requests.send(to_discovery_request(request, node));
                }
            }
            Output::Changed {
                kind,
                name,
                resource,
            } => {
                let key = (kind, name.clone());
                if let Some(any) = self.incoming_raw.remove(&key) {
                    self.raw.insert(key, any);
                }
                self.deliver(
                    kind,
                    name,
                    |state| {
                        state.resource = Some(resource.clone());
                        state.error = None;
                        state.does_not_exist = false;
                    },
                    &ResourceEvent::Changed(resource.clone()),
                );
            }
            Output::Error {
                kind,
                name,
                error,
                ambient,
            } => {
                let text: Arc<str> = error.to_string().into();
                let keep = ambient || matches!(error, WatchError::DeletionIgnored { .. });
                let event_text = Arc::clone(&text);
                self.deliver(
                    kind,
                    name,
                    |state| {
                        if !keep {
                            state.resource = None;
                        }
                        state.error = Some(Arc::clone(&text));
                    },
                    &ResourceEvent::Error {
                        error: event_text,
                        ambient: keep,
                    },
                );
            }
            Output::DoesNotExist { kind, name } => {
                self.raw.remove(&(kind, name.clone()));
                self.deliver(
                    kind,
                    name,
                    |state| {
                        state.resource = None;
                        state.error = None;
                        state.does_not_exist = true;
                    },
                    &ResourceEvent::DoesNotExist,
                );
            }
        }
    }

    fn deliver(
        &mut self,
        kind: ResourceKind,
        name: String,
        update: impl FnOnce(&mut WatchState),
        event: &ResourceEvent,
    ) {
        let key = (kind, name);
        let Some(sub) = self.subscriptions.get_mut(&key) else {
            return;
        };
        update(&mut sub.state);
        sub.known = true;
        sub.senders.retain(|tx| !tx.is_closed());
        for tx in &sub.senders {
            tx.send_replace(sub.state.clone());
        }
        if sub.internal > 0 {
            for (id, target) in &self.targets {
                if target.deps.watched().contains(&key) {
                    self.pending
                        .push_back((*id, kind, key.1.clone(), event.clone()));
                }
            }
        }
    }

    /// Performs a dependency manager's actions.
    fn drive_target(&mut self, id: u64) {
        let now = Instant::now();
        let Some(target) = self.targets.get_mut(&id) else {
            return;
        };
        let actions = target.deps.take_actions();
        for action in actions {
            match action {
                Action::Subscribe(kind, name) => {
                    let key = (kind, name);
                    let sub = self.subscriptions.entry(key.clone()).or_default();
                    sub.internal += 1;
                    if sub.external + sub.internal == 1 {
                        self.state.subscribe(kind, &key.1, now);
                    } else if sub.known {
                        // Already known from another watcher: this manager needs the current value now.
                        let event = if let Some(resource) = &sub.state.resource {
                            ResourceEvent::Changed(resource.clone())
                        } else if sub.state.does_not_exist {
                            ResourceEvent::DoesNotExist
                        } else {
                            ResourceEvent::Error {
                                error: sub
                                    .state
                                    .error
                                    .clone()
                                    .unwrap_or_else(|| "unknown error".into()),
                                ambient: false,
                            }
                        };
                        self.pending.push_back((id, kind, key.1, event));
                    }
                }
                Action::Unsubscribe(kind, name) => self.release_internal(&(kind, name), now),
                Action::ResolveDns {
                    cluster,
                    host,
                    port,
                } => {
                    let resolver = match self.resolver() {
                        Ok(resolver) => resolver,
                        Err(error) => {
                            let _ = self.events_tx.send(Event::Dns {
                                target: id,
                                cluster,
                                result: Err(error),
                            });
                            continue;
                        }
                    };
                    let events = self.events_tx.clone();
                    let name = cluster.clone();
                    let task = dns::spawn(
                        resolver,
                        host,
                        port,
                        dns::reporter(events, move |result| Event::Dns {
                            target: id,
                            cluster: name.clone(),
                            result,
                        }),
                    );
                    if let Some(target) = self.targets.get_mut(&id)
                        && let Some(old) = target.dns.insert(cluster, task)
                    {
                        old.abort();
                    }
                }
                Action::StopDns { cluster } => {
                    if let Some(task) = self
                        .targets
                        .get_mut(&id)
                        .and_then(|t| t.dns.remove(&cluster))
                    {
                        task.abort();
                    }
                }
                Action::Publish(update) => {
                    if let Ok(snapshot) = &update {
                        self.lrs.target_updated(id, snapshot);
                    }
                    if let Some(target) = self.targets.get(&id) {
                        target.tx.send_replace(Some(update));
                    }
                }
            }
        }
    }

    fn resolver(&mut self) -> Result<Arc<TokioResolver>, String> {
        if let Some(resolver) = &self.resolver {
            return Ok(Arc::clone(resolver));
        }
        let built = match TokioResolver::builder_tokio() {
            Ok(builder) => builder.build(),
            // No usable /etc/resolv.conf: fall back to hickory's defaults rather than fail every DNS cluster.
            Err(e) => {
                tracing::warn!(error = %e, "reading the system DNS configuration failed; using defaults");
                TokioResolver::builder_with_config(
                    hickory_resolver::config::ResolverConfig::default(),
                    hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
                )
                .build()
            }
        };
        let resolver = Arc::new(built.map_err(|e| format!("creating the DNS resolver: {e}"))?);
        self.resolver = Some(Arc::clone(&resolver));
        Ok(resolver)
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Unwraps an `envoy.service.discovery.v3.Resource` wrapper.
fn unwrap_resource(kind: ResourceKind, any: &Any) -> Result<Any, resource::ResourceError> {
    use envoy_types::pb::envoy::service::discovery::v3::Resource as Wrapper;
    let wrapper = Wrapper::decode(any.value.as_slice())
        .map_err(|e| resource::ResourceError::new(kind, None, format!("resource wrapper: {e}")))?;
    wrapper.resource.ok_or_else(|| {
        resource::ResourceError::new(kind, Some(&wrapper.name), "resource wrapper: no resource")
    })
}

/// The protocol configuration for a bootstrap: every server, top-level ones as the default list, and each
/// authority's own servers (gRFC A47).
fn protocol_config(bootstrap: &Bootstrap) -> ProtocolConfig {
    let mut servers: Vec<ServerConfig> = Vec::new();
    let index_of = |server: &XdsServer, servers: &mut Vec<ServerConfig>| {
        let mut config = ServerConfig::new(server.server_uri.clone());
        config.ignore_resource_deletion = server.ignore_resource_deletion();
        servers.push(config);
        servers.len() - 1
    };
    let default_servers: Vec<usize> = bootstrap
        .xds_servers
        .iter()
        .map(|s| index_of(s, &mut servers))
        .collect();
    let authorities = bootstrap
        .authorities
        .iter()
        .map(|(name, authority)| {
            let list = authority
                .xds_servers
                .iter()
                .map(|s| index_of(s, &mut servers))
                .collect();
            (name.clone(), list)
        })
        .collect();
    let mut config = ProtocolConfig::new(servers);
    config.default_servers = default_servers;
    config.authorities = authorities;
    config
}
