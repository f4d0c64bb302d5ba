//! Routing one request: virtual host and route (mesh-core's matchers), the cluster the route action names, and the
//! policies that apply to this request (timeout, retry, hash, fault).
//!
//! gRPC requests are matched through [`GrpcHeaders`] (gRFC A28: `content-type` reads as `application/grpc`, `-bin`
//! headers are invisible); plain HTTP requests with their headers as they are. The virtual host is the one the
//! snapshot selected for the target's authority. Allocation-free on the common path.
//!
//! Not here: sending the request (see `crate::mesh`).

mod hash;

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use mesh_core::rng::RandomSource;
use mesh_core::route::matching::GrpcHeaders;
use mesh_core::route::{ClusterSpecifier, FaultInjection, HeaderLookup, RetryPolicy, Route};

use crate::cluster::Target;
use crate::error::MeshError;
use crate::mesh::RoutingState;
use crate::timeout;

pub(crate) use hash::request_hash;

/// What routing decided for one request, borrowed from the routing state.
#[derive(Debug)]
pub(crate) struct Decision<'s> {
    /// The matched route.
    pub(crate) route: &'s Route,
    /// Where the request goes.
    pub(crate) target: &'s Target,
    /// The deadline (gRFC A31), if any.
    pub(crate) timeout: Option<Duration>,
    /// The retry policy: the route's, else the virtual host's (gRFC A44).
    pub(crate) retry: Option<&'s RetryPolicy>,
    /// The fault-injection settings that apply, if the listener has a fault filter (gRFC A33/A39).
    pub(crate) fault: Option<&'s FaultInjection>,
    /// The ring-hash key (gRFC A42), if the route's hash policies produced one.
    pub(crate) hash: Option<u64>,
}

/// Routes a request with `path` and `headers` through `state`.
///
/// # Errors
/// No route, a non-forwarding route, or a cluster header that names no cluster.
pub(crate) fn route<'s>(
    state: &'s RoutingState,
    request: RequestFacts<'_>,
    rng: &mut impl RandomSource,
) -> Result<Decision<'s>, MeshError> {
    if request.grpc {
        decide(state, &GrpcHeaders::new(request.headers), request, rng)
    } else {
        decide(state, request.headers, request, rng)
    }
}

/// What routing reads of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestFacts<'a> {
    pub(crate) path: &'a str,
    pub(crate) headers: &'a HeaderMap,
    /// A gRPC request (`content-type: application/grpc…`).
    pub(crate) grpc: bool,
    /// Its `grpc-timeout`, read once by the caller (gRPC requests only).
    pub(crate) header_timeout: Option<std::time::Duration>,
}

fn decide<'s, H: HeaderLookup + ?Sized>(
    state: &'s RoutingState,
    view: &H,
    request: RequestFacts<'_>,
    rng: &mut impl RandomSource,
) -> Result<Decision<'s>, MeshError> {
    let RequestFacts {
        path,
        headers,
        grpc,
        header_timeout,
    } = request;
    let vhost = state.snapshot.virtual_host();
    let Some(index) = vhost.find_route_index(path, view, &mut *rng) else {
        return Err(MeshError::NoRoute {
            virtual_host: Arc::clone(&vhost.name),
            path: path.into(),
        });
    };
    let Some(route) = vhost.routes.get(index) else {
        return Err(MeshError::NoRoute {
            virtual_host: Arc::clone(&vhost.name),
            path: path.into(),
        });
    };
    let Some(action) = route.route_action() else {
        // gRFC A36: a client fails requests matching a non-forwarding route with UNAVAILABLE.
        return Err(MeshError::NonForwarding {
            virtual_host: Arc::clone(&vhost.name),
            route: route
                .name
                .as_deref()
                .map_or_else(|| format!("#{index}").into(), Into::into),
        });
    };
    let (target, weighted_fault) = match &action.cluster {
        ClusterSpecifier::Cluster(name) => (state.target(name)?, None),
        ClusterSpecifier::Weighted(split) => {
            let picked = split.pick(rng);
            (state.target(&picked.name)?, picked.fault_override.as_ref())
        }
        ClusterSpecifier::Header(header) => {
            let problem = |problem: &str| MeshError::ClusterHeader {
                header: Arc::clone(header),
                problem: problem.into(),
            };
            let name = headers
                .get(&**header)
                .ok_or_else(|| problem("missing from the request"))?
                .to_str()
                .map_err(|_| problem("not valid text"))?;
            let target = state
                .targets
                .get(name)
                .ok_or_else(|| problem(&format!("names unknown cluster {name:?}")))?;
            (target, None)
        }
        #[allow(unreachable_patterns)]
        _ => {
            return Err(MeshError::NonForwarding {
                virtual_host: Arc::clone(&vhost.name),
                route: "unsupported cluster specifier".into(),
            });
        }
    };
    // gRFC A33/A39: overrides apply only when the listener runs a fault filter; the most specific wins.
    let fault = state.fault_filter.as_ref().map(|filter| {
        weighted_fault
            .or(route.fault_override.as_ref())
            .or(vhost.fault_override.as_ref())
            .unwrap_or(filter)
    });
    Ok(Decision {
        route,
        target,
        timeout: timeout::request_timeout(action, state.listener_max, header_timeout, grpc),
        retry: action.retry_policy.as_ref().or(vhost.retry_policy.as_ref()),
        fault,
        hash: request_hash(&action.hash_policies, view, state.channel_id),
    })
}
