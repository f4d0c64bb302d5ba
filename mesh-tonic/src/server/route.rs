//! The per-request checks of the xDS-enabled server (gRFC A36 "Connection and Request Handling"): the filter
//! chain's routes (inline, or from RDS and read with one atomic load), the virtual host for the request's
//! `:authority`, the first matching route (mesh-core's matchers, the client's rules), its action, then the chain's
//! HTTP filters up to the router.
//!
//! A36: an RDS resource that is missing, NACKed without a previous good version or not yet loaded, no virtual host,
//! no matching route, or a route whose action is not `non_forwarding_action` fail the RPC with UNAVAILABLE. An RBAC
//! filter goes through the [authorization seam](super::authz). Not applied: route or connection-manager
//! `max_stream_duration` (A36 does not ask servers to; A31 is client-side).

use std::cell::Cell;
use std::sync::Arc;

use arc_swap::ArcSwap;
use mesh_core::listener::{HttpFilter, HttpFilterConfig};
use mesh_core::peer::ConnectionInfo;
use mesh_core::rng::{FastRng, RandomSource};
use mesh_core::route::matching::GrpcHeaders;
use mesh_core::route::{Action, RouteConfig};
use mesh_core::tls::DownstreamTls;
use tonic::Status;

use super::authz;

/// What an RDS watch has delivered for one name.
#[derive(Debug)]
pub(crate) enum RdsState {
    /// Nothing yet.
    Pending,
    /// The route configuration in use.
    Ready(Arc<RouteConfig>),
    /// Why there is none (does not exist, NACKed without a good version, ...).
    Failed(Arc<str>),
}

/// Where a chain's routes come from.
#[derive(Debug)]
pub(crate) enum ChainRoutes {
    /// Part of the Listener.
    Inline(Arc<RouteConfig>),
    /// From RDS; updated in place (A36: an RDS update does not drain connections).
    Rds {
        /// The RouteConfiguration's name.
        name: Arc<str>,
        /// Its latest state.
        state: Arc<ArcSwap<RdsState>>,
    },
}

/// One filter chain as connections use it.
#[derive(Debug)]
pub(crate) struct ChainConfig {
    /// The chain's name (for logs and errors).
    pub(crate) name: Arc<str>,
    /// TLS, when the chain requires it.
    pub(crate) tls: Option<DownstreamTls>,
    /// The routes.
    pub(crate) routes: ChainRoutes,
    /// The HTTP filters, in order.
    pub(crate) filters: Vec<HttpFilter>,
}

thread_local! {
    /// Per-thread state of the generator for routes with a runtime fraction: no lock, no shared cache line.
    static RNG_STATE: Cell<u64> = const { Cell::new(0x853c_49e6_748f_ea9b) };
}

/// A generator continuing this thread's sequence.
struct ThreadRng;

impl RandomSource for ThreadRng {
    fn next_u64(&mut self) -> u64 {
        RNG_STATE.with(|state| {
            let mut rng = FastRng::from_seed(state.get());
            let value = rng.next_u64();
            state.set(value);
            value
        })
    }
}

impl ChainConfig {
    /// Whether `request` on `connection` may reach the application.
    ///
    /// # Errors
    /// The status to answer with instead: UNAVAILABLE for routing failures (gRFC A36), PERMISSION_DENIED from an
    /// RBAC filter.
    pub(crate) fn check<B>(
        &self,
        request: &http::Request<B>,
        connection: &ConnectionInfo,
    ) -> Result<(), Status> {
        match &self.routes {
            ChainRoutes::Inline(routes) => self.route(routes, request)?,
            ChainRoutes::Rds { name, state } => match &**state.load() {
                RdsState::Ready(routes) => self.route(routes, request)?,
                RdsState::Failed(reason) => {
                    return Err(Status::unavailable(format!(
                        "filter chain {:?}: RouteConfiguration {name:?}: {reason}",
                        self.name
                    )));
                }
                RdsState::Pending => {
                    return Err(Status::unavailable(format!(
                        "filter chain {:?}: RouteConfiguration {name:?} has not been received yet",
                        self.name
                    )));
                }
            },
        }
        for filter in &self.filters {
            match &filter.config {
                HttpFilterConfig::Rbac(rules) => {
                    authz::check(&filter.name, rules.as_ref(), request, connection)?;
                }
                HttpFilterConfig::Router => break,
                // Validation admits only the router and RBAC on servers (gRFC A39 server-side filters); anything else
                // is not something this server can run, so it must not be skipped silently.
                _ => {
                    return Err(Status::unavailable(format!(
                        "filter chain {:?}: HTTP filter {:?} is not supported on servers",
                        self.name, filter.name
                    )));
                }
            }
        }
        Ok(())
    }

    fn route<B>(&self, routes: &RouteConfig, request: &http::Request<B>) -> Result<(), Status> {
        let authority = request
            .uri()
            .authority()
            .map(http::uri::Authority::as_str)
            .or_else(|| {
                request
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
            })
            .unwrap_or("");
        let Some(vhost) = routes.select_virtual_host(authority) else {
            return Err(Status::unavailable(format!(
                "RouteConfiguration {:?}: no virtual host matches authority {authority:?}",
                routes.name
            )));
        };
        let path = request.uri().path();
        let headers = request.headers();
        let grpc = headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
        let found = if grpc {
            vhost.find_route(path, &GrpcHeaders::new(headers), &mut ThreadRng)
        } else {
            vhost.find_route(path, headers, &mut ThreadRng)
        };
        let Some(route) = found else {
            return Err(Status::unavailable(format!(
                "RouteConfiguration {:?}, virtual host {:?}: no route matches {path}",
                routes.name, vhost.name
            )));
        };
        match route.action {
            Action::NonForwarding => Ok(()),
            // gRFC A36: a server route must carry `non_forwarding_action`.
            _ => Err(Status::unavailable(format!(
                "RouteConfiguration {:?}, virtual host {:?}: the route matching {path} {}forwards to a cluster; \
                 a server route must have non_forwarding_action",
                routes.name,
                vhost.name,
                route
                    .name
                    .as_deref()
                    .map(|name| format!("({name}) "))
                    .unwrap_or_default(),
            ))),
        }
    }
}
