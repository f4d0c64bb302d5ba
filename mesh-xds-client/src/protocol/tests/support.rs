//! A synchronous driver for [`XdsState`] with `String` resources.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mesh_core::rng::FastRng;

use crate::protocol::{
    BackoffConfig, DecodedResource, DecodedResponse, Output, ProtocolConfig, Request, ServerConfig,
    ServerId, StreamId, StreamStatus, WatchError, XdsState,
};
use crate::resource::{ResourceError, ResourceKind};

pub(super) const LDS: ResourceKind = ResourceKind::Listener;
pub(super) const RDS: ResourceKind = ResourceKind::RouteConfiguration;
pub(super) const CDS: ResourceKind = ResourceKind::Cluster;
pub(super) const EDS: ResourceKind = ResourceKind::ClusterLoadAssignment;

pub(super) type Out = Output<String>;

/// Backoff without jitter, so delays are exact.
pub(super) fn exact_backoff() -> BackoffConfig {
    BackoffConfig {
        jitter: 0.0,
        ..BackoffConfig::default()
    }
}

/// `count` default servers `server-0`, `server-1`, ... tried in order, with exact backoff.
pub(super) fn servers(count: usize) -> ProtocolConfig {
    let mut config = ProtocolConfig::new(
        (0..count)
            .map(|index| ServerConfig::new(format!("server-{index}")))
            .collect(),
    );
    config.backoff = exact_backoff();
    config
}

pub(super) struct Harness {
    pub(super) xds: XdsState<String>,
    pub(super) now: Instant,
    pub(super) start: Instant,
}

impl Harness {
    pub(super) fn new(config: ProtocolConfig) -> Self {
        let now = Instant::now();
        Self {
            xds: XdsState::new(config, FastRng::from_seed(7)).unwrap(),
            now,
            start: now,
        }
    }

    /// One default server.
    pub(super) fn single() -> Self {
        Self::new(servers(1))
    }

    pub(super) fn drain(&mut self) -> Vec<Out> {
        self.xds.drain_outputs().collect()
    }

    pub(super) fn subscribe(&mut self, kind: ResourceKind, name: &str) -> Vec<Out> {
        self.xds.subscribe(kind, name, self.now);
        self.drain()
    }

    pub(super) fn unsubscribe(&mut self, kind: ResourceKind, name: &str) -> Vec<Out> {
        self.xds.unsubscribe(kind, name, self.now);
        self.drain()
    }

    /// Moves the clock forward and fires what is due.
    pub(super) fn advance(&mut self, by: Duration) -> Vec<Out> {
        self.now += by;
        self.xds.tick(self.now);
        self.drain()
    }

    /// Time since the harness started.
    pub(super) fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The opening or open stream to `server`.
    pub(super) fn stream(&self, server: usize) -> StreamId {
        self.xds
            .current_stream(ServerId(server))
            .unwrap_or_else(|| panic!("no stream to server {server}"))
    }

    pub(super) fn connect(&mut self, server: usize) -> Vec<Out> {
        let stream = self.stream(server);
        self.xds.stream_connected(stream, self.now);
        self.drain()
    }

    pub(super) fn fail(&mut self, server: usize) -> Vec<Out> {
        let stream = self.stream(server);
        self.xds
            .stream_failed(stream, "connection refused", self.now);
        self.drain()
    }

    pub(super) fn respond(
        &mut self,
        server: usize,
        kind: ResourceKind,
        version: &str,
        nonce: &str,
        resources: Vec<DecodedResource<String>>,
    ) -> Vec<Out> {
        let stream = self.stream(server);
        self.xds
            .response(stream, response(kind, version, nonce, resources), self.now);
        self.drain()
    }

    /// When the server's stream reconnects after backoff, relative to now.
    pub(super) fn backoff_delay(&self, server: usize) -> Duration {
        match self.xds.stream_status(ServerId(server)) {
            StreamStatus::Backoff { until } => until - self.now,
            other => panic!("server {server} is not in backoff: {other:?}"),
        }
    }
}

pub(super) fn response(
    kind: ResourceKind,
    version: &str,
    nonce: &str,
    resources: Vec<DecodedResource<String>>,
) -> DecodedResponse<String> {
    DecodedResponse {
        kind,
        version_info: version.to_owned(),
        nonce: nonce.to_owned(),
        resources,
    }
}

pub(super) fn ok(name: &str, value: &str) -> DecodedResource<String> {
    Ok((name.to_owned(), value.to_owned()))
}

pub(super) fn bad(kind: ResourceKind, name: &str, problem: &str) -> DecodedResource<String> {
    Err(ResourceError::new(kind, Some(name), problem))
}

pub(super) fn unnamed(kind: ResourceKind, problem: &str) -> DecodedResource<String> {
    Err(ResourceError::new(kind, None, problem))
}

pub(super) fn request(
    kind: ResourceKind,
    names: &[&str],
    version: &str,
    nonce: &str,
    error_detail: Option<&str>,
) -> Request {
    Request {
        kind,
        names: names.iter().map(|&name| name.to_owned()).collect(),
        version_info: version.to_owned(),
        response_nonce: nonce.to_owned(),
        error_detail: error_detail.map(str::to_owned),
    }
}

pub(super) fn send(stream: StreamId, request: Request) -> Out {
    Output::Send { stream, request }
}

pub(super) fn changed(kind: ResourceKind, name: &str, value: &str) -> Out {
    Output::Changed {
        kind,
        name: name.to_owned(),
        resource: value.to_owned(),
    }
}

pub(super) fn does_not_exist(kind: ResourceKind, name: &str) -> Out {
    Output::DoesNotExist {
        kind,
        name: name.to_owned(),
    }
}

pub(super) fn error(kind: ResourceKind, name: &str, error: WatchError, ambient: bool) -> Out {
    Output::Error {
        kind,
        name: name.to_owned(),
        error,
        ambient,
    }
}

pub(super) fn rejected(kind: ResourceKind, name: &str, problem: &str) -> WatchError {
    WatchError::Rejected(ResourceError::new(kind, Some(name), problem))
}

pub(super) fn unreachable(server: usize) -> WatchError {
    WatchError::Unreachable {
        server_uri: format!("server-{server}"),
        detail: "connection refused".to_owned(),
    }
}

/// The requests among `outputs`, with the server each goes to.
pub(super) fn sends(outputs: &[Out]) -> Vec<(usize, Request)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Send { stream, request } => Some((stream.server().0, request.clone())),
            _ => None,
        })
        .collect()
}

/// The servers among `outputs` asked to connect.
pub(super) fn connects(outputs: &[Out]) -> Vec<usize> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Connect { stream } => Some(stream.server().0),
            _ => None,
        })
        .collect()
}

/// The watcher events among `outputs`.
pub(super) fn events(outputs: &[Out]) -> Vec<Out> {
    outputs
        .iter()
        .filter(|output| {
            matches!(
                output,
                Output::Changed { .. } | Output::Error { .. } | Output::DoesNotExist { .. }
            )
        })
        .cloned()
        .collect()
}

/// A configuration with `servers` and the given authorities.
pub(super) fn federated(server_uris: &[&str], authorities: &[(&str, &[usize])]) -> ProtocolConfig {
    let mut config = ProtocolConfig::new(
        server_uris
            .iter()
            .map(|&uri| ServerConfig::new(uri))
            .collect(),
    );
    config.default_servers = vec![0];
    config.authorities = authorities
        .iter()
        .map(|&(name, list)| (name.to_owned(), list.to_vec()))
        .collect::<BTreeMap<_, _>>();
    config.backoff = exact_backoff();
    config
}
