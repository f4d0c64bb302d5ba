//! The per-request checks of the xDS-enabled server (gRFC A36 "Connection and Request Handling"): the filter
//! chain's routes (inline, or from RDS and read with one atomic load), the virtual host for the request's
//! `:authority`, the first matching route (mesh-core's matchers, the client's rules), its action, then the chain's
//! HTTP filters up to the router.
//!
//! A36: an RDS resource that is missing, NACKed without a previous good version or not yet loaded, no virtual host,
//! no matching route, or a route whose action is not `non_forwarding_action` fail the RPC with UNAVAILABLE. The RBAC
//! filters before the router then decide (gRFC A41, [`super::authz`]); a denial is PERMISSION_DENIED. Not applied: route or connection-manager
//! `max_stream_duration` (A36 does not ask servers to; A31 is client-side).

use std::cell::Cell;
use std::sync::Arc;

use arc_swap::ArcSwap;
use mesh_core::listener::{HttpFilter, HttpFilterConfig};
use mesh_core::peer::ConnectionInfo;
use mesh_core::rbac::RbacChain;
use mesh_core::rng::{FastRng, RandomSource};
use mesh_core::route::matching::GrpcHeaders;
use mesh_core::route::{Action, RouteConfig};
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
    /// TLS, when the chain requires it (built once per Listener).
    pub(crate) tls: Option<super::tls::ChainTls>,
    /// The routes.
    pub(crate) routes: ChainRoutes,
    /// The HTTP filters, in order.
    pub(crate) filters: Vec<HttpFilter>,
    /// The RBAC filters before the router, ready to evaluate.
    pub(crate) rbac: RbacChain,
}

/// How many routes of `routes` forward to a cluster: each fails its RPCs on a server (gRFC A36 "configuration error
/// logging" reports them).
pub(crate) fn forwarding_routes(routes: &RouteConfig) -> usize {
    routes
        .virtual_hosts
        .iter()
        .flat_map(|vhost| &vhost.routes)
        .filter(|route| !matches!(route.action, Action::NonForwarding))
        .count()
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
                HttpFilterConfig::Rbac(_) => {}
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
        authz::check(&self.rbac, request, connection)
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

#[cfg(test)]
mod tests {
    use mesh_core::route::{Route, RouteAction, RouteMatch, VirtualHost};

    use super::*;

    fn chain(routes: ChainRoutes, filters: Vec<HttpFilter>) -> ChainConfig {
        ChainConfig {
            name: "c".into(),
            tls: None,
            routes,
            rbac: authz::chain_of(&filters),
            filters,
        }
    }

    fn inline() -> ChainRoutes {
        ChainRoutes::Inline(Arc::new(RouteConfig::new(
            "inbound",
            vec![
                VirtualHost::new(
                    "api",
                    &["api.example"],
                    vec![Route::non_forwarding(RouteMatch::prefix("/svc/"))],
                ),
                VirtualHost::new(
                    "rest",
                    &["*"],
                    vec![Route::new(
                        RouteMatch::prefix(""),
                        RouteAction::cluster("up"),
                    )],
                ),
            ],
        )))
    }

    fn check(chain: &ChainConfig, uri: &str) -> Result<(), Status> {
        let request = http::Request::builder().uri(uri).body(()).unwrap();
        let connection =
            ConnectionInfo::new(([127, 0, 0, 1], 80).into(), ([127, 0, 0, 2], 9).into());
        chain.check(&request, &connection)
    }

    fn unavailable(result: Result<(), Status>) -> String {
        let status = result.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        status.message().to_owned()
    }

    #[test]
    fn the_virtual_host_is_chosen_by_authority_and_only_non_forwarding_routes_serve() {
        let chain = chain(inline(), vec![HttpFilter::router()]);
        check(&chain, "http://api.example/svc/Call").unwrap();
        let message = unavailable(check(&chain, "http://api.example/other/Call"));
        assert!(
            message.contains("no route matches /other/Call"),
            "{message}"
        );
        let message = unavailable(check(&chain, "http://elsewhere.example/svc/Call"));
        assert!(
            message.contains("\"rest\"") && message.contains("non_forwarding_action"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_virtual_host_or_rds_resource_fails_with_the_reason() {
        let routes = RouteConfig::new(
            "narrow",
            vec![VirtualHost::new("only", &["only.example"], Vec::new())],
        );
        let chain = chain(ChainRoutes::Inline(Arc::new(routes)), Vec::new());
        let message = unavailable(check(&chain, "http://other.example/svc/Call"));
        assert!(
            message.contains("no virtual host matches authority \"other.example\""),
            "{message}"
        );

        let state = Arc::new(ArcSwap::from_pointee(RdsState::Pending));
        let chain = super::tests::chain(
            ChainRoutes::Rds {
                name: "from-rds".into(),
                state: Arc::clone(&state),
            },
            Vec::new(),
        );
        assert!(
            unavailable(check(&chain, "http://a/svc/Call")).contains("has not been received yet")
        );
        state.store(Arc::new(RdsState::Failed("does not exist".into())));
        let message = unavailable(check(&chain, "http://a/svc/Call"));
        assert!(
            message.contains("\"from-rds\": does not exist"),
            "{message}"
        );
        let ChainRoutes::Inline(routes) = inline() else {
            unreachable!()
        };
        state.store(Arc::new(RdsState::Ready(routes)));
        check(&chain, "http://api.example/svc/Call").unwrap();
    }

    #[test]
    fn rbac_before_the_router_denies_and_after_it_is_never_reached() {
        // ALLOW with no policies denies everything.
        let rules = mesh_core::rbac::Rbac::new(mesh_core::rbac::RbacAction::Allow, Vec::new());
        let rbac = HttpFilter::new("authz", HttpFilterConfig::Rbac(Some(rules)));
        let denying = chain(inline(), vec![rbac.clone(), HttpFilter::router()]);
        let status = check(&denying, "http://api.example/svc/Call").unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        // A filter without rules of its own enforces nothing.
        let no_rules = HttpFilter::new("authz", HttpFilterConfig::Rbac(None));
        check(
            &chain(inline(), vec![no_rules, HttpFilter::router()]),
            "http://api.example/svc/Call",
        )
        .unwrap();
        // Routing failures come first: a request without a route is UNAVAILABLE, not PERMISSION_DENIED.
        unavailable(check(&denying, "http://api.example/other/Call"));
        let after_router = chain(inline(), vec![HttpFilter::router(), rbac]);
        check(&after_router, "http://api.example/svc/Call").unwrap();
    }

    #[test]
    fn forwarding_routes_are_counted_for_configuration_error_logging() {
        let ChainRoutes::Inline(routes) = inline() else {
            unreachable!()
        };
        assert_eq!(forwarding_routes(&routes), 1);
    }
}
