//! Listeners: the entry point of a configuration graph (gRFC A27 client side, gRFC A36 server side).
//!
//! A client [`Listener`] is an `ApiListener` holding an HTTP connection manager: where the routes come from (RDS by
//! name or inline) and the HTTP filter chain. A server listener has an address and filter chains, each selected by
//! match criteria and carrying its TLS mode and HTTP filters (RBAC among them).
//!
//! Filter-chain selection and filter execution belong to the server (mesh-tonic); this is the configuration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::macros::setters;
use crate::rbac::{CidrRange, Rbac};
use crate::route::{FaultInjection, RouteConfig};
use crate::tls::{DownstreamTls, TlsMode};

/// Where an HTTP connection manager's routes come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RouteSource {
    /// Fetched by RDS under this name.
    Rds(Arc<str>),
    /// Given inline in the listener.
    Inline(Arc<RouteConfig>),
}

/// An HTTP filter's configuration (gRFC A39).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HttpFilterConfig {
    /// The router: forwards to the route's cluster. Always last.
    Router,
    /// Fault injection (gRFC A33).
    Fault(FaultInjection),
    /// Authorization (gRFC A41); `None` means the filter is present but has no rules of its own (per-route
    /// overrides only).
    Rbac(Option<Rbac>),
}

/// One HTTP filter in a connection manager's chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HttpFilter {
    /// The filter's instance name (keys per-route overrides).
    pub name: Arc<str>,
    /// Its configuration.
    pub config: HttpFilterConfig,
}

impl HttpFilter {
    /// A filter named `name`.
    #[must_use]
    pub fn new(name: &str, config: HttpFilterConfig) -> Self {
        Self {
            name: name.into(),
            config,
        }
    }

    /// The router filter under its conventional name.
    #[must_use]
    pub fn router() -> Self {
        Self::new("envoy.filters.http.router", HttpFilterConfig::Router)
    }
}

/// Envoy's `HttpConnectionManager` as gRPC uses it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HttpConnectionManager {
    /// Where the routes come from.
    pub route_source: RouteSource,
    /// The HTTP filters, ending with the router.
    pub http_filters: Vec<HttpFilter>,
    /// The default maximum stream duration for routes that set none (gRFC A31).
    pub max_stream_duration: Option<Duration>,
}

impl HttpConnectionManager {
    /// A connection manager with routes from `route_source` and only the router filter.
    #[must_use]
    pub fn new(route_source: RouteSource) -> Self {
        Self {
            route_source,
            http_filters: vec![HttpFilter::router()],
            max_stream_duration: None,
        }
    }

    /// The RDS name to watch, when routes come from RDS.
    #[must_use]
    pub fn rds_name(&self) -> Option<&str> {
        match &self.route_source {
            RouteSource::Rds(name) => Some(name),
            RouteSource::Inline(_) => None,
        }
    }
}

setters!(HttpConnectionManager {
    /// Sets the HTTP filter chain.
    with_http_filters => http_filters: Vec<HttpFilter>,
    /// Sets the default maximum stream duration.
    with_max_stream_duration => max_stream_duration: Option<Duration>,
});

/// Which connections a server filter chain applies to (Envoy's `FilterChainMatch`, the fields gRFC A36 uses).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FilterChainMatch {
    /// The local port; `None` matches any (gRFC A36 rejects chains that set it to something else than the
    /// listener's port).
    pub destination_port: Option<u16>,
    /// Local addresses; empty matches any.
    pub prefix_ranges: Vec<CidrRange>,
    /// Whether the peer is local or remote.
    pub source_type: SourceType,
    /// Peer addresses; empty matches any.
    pub source_prefix_ranges: Vec<CidrRange>,
    /// Peer ports; empty matches any.
    pub source_ports: Vec<u16>,
    /// SNI names; gRFC A36 accepts only chains with none.
    pub server_names: Vec<Arc<str>>,
    /// The transport protocol (`raw_buffer` or `tls`); `None` matches any.
    pub transport_protocol: Option<Arc<str>>,
    /// ALPN protocols; gRFC A36 accepts only chains with none.
    pub application_protocols: Vec<Arc<str>>,
}

/// Envoy's `ConnectionSourceType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum SourceType {
    /// Any peer.
    #[default]
    Any,
    /// A peer on the same host (same IP or loopback).
    SameIpOrLoopback,
    /// A peer on another host.
    External,
}

/// A server filter chain: match criteria, security and HTTP handling.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FilterChain {
    /// The chain's name.
    pub name: Arc<str>,
    /// Which connections it takes.
    pub filter_chain_match: FilterChainMatch,
    /// TLS for those connections; `None` is plaintext.
    pub tls: Option<DownstreamTls>,
    /// HTTP handling.
    pub http: HttpConnectionManager,
}

impl FilterChain {
    /// A chain named `name` matching any connection, plaintext, with `http`.
    #[must_use]
    pub fn new(name: &str, http: HttpConnectionManager) -> Self {
        Self {
            name: name.into(),
            filter_chain_match: FilterChainMatch::default(),
            tls: None,
            http,
        }
    }

    /// The security mode of connections this chain takes.
    #[must_use]
    pub fn tls_mode(&self) -> TlsMode {
        self.tls
            .as_ref()
            .map_or(TlsMode::Plaintext, DownstreamTls::mode)
    }
}

setters!(FilterChain {
    /// Sets the match criteria.
    with_match => filter_chain_match: FilterChainMatch,
    /// Sets TLS.
    with_tls => tls: Option<DownstreamTls>,
});

/// A server listener (gRFC A36).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ServerListener {
    /// The address the listener is for.
    pub address: SocketAddr,
    /// Filter chains, selected by their match criteria.
    pub filter_chains: Vec<FilterChain>,
    /// The chain for connections no other chain matches; without one, such connections are closed.
    pub default_filter_chain: Option<FilterChain>,
}

impl ServerListener {
    /// A server listener at `address` with `filter_chains`.
    #[must_use]
    pub fn new(address: SocketAddr, filter_chains: Vec<FilterChain>) -> Self {
        Self {
            address,
            filter_chains,
            default_filter_chain: None,
        }
    }
}

setters!(ServerListener {
    /// Sets the default filter chain.
    with_default_filter_chain => default_filter_chain: Option<FilterChain>,
});

/// What a listener is for.
// One listener per snapshot: the size difference between the variants costs nothing worth an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ListenerKind {
    /// A client's entry point for a target (`ApiListener`).
    Client(HttpConnectionManager),
    /// A server's listening socket.
    Server(ServerListener),
}

/// A listener resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Listener {
    /// The resource name (for a client, the target's name).
    pub name: Arc<str>,
    /// Client or server.
    pub kind: ListenerKind,
}

impl Listener {
    /// A client listener named `name`.
    #[must_use]
    pub fn client(name: &str, http: HttpConnectionManager) -> Self {
        Self {
            name: name.into(),
            kind: ListenerKind::Client(http),
        }
    }

    /// A server listener named `name`.
    #[must_use]
    pub fn server(name: &str, server: ServerListener) -> Self {
        Self {
            name: name.into(),
            kind: ListenerKind::Server(server),
        }
    }

    /// The client-side connection manager, for client listeners.
    #[must_use]
    pub fn client_http(&self) -> Option<&HttpConnectionManager> {
        match &self.kind {
            ListenerKind::Client(http) => Some(http),
            ListenerKind::Server(_) => None,
        }
    }
}
