//! The [`Authorization`] service.

use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use mesh_core::peer::ConnectionInfo;
use mesh_core::rbac::{RbacChain, RbacRequest};
use tower_service::Service;

use super::audit;
use super::future::ResponseFuture;
use crate::status::{self, Code};

/// The `grpc-message` of a denied call (Envoy answers denied HTTP requests with the same text).
pub const DENIED_MESSAGE: &str = "RBAC: access denied";

/// Authorizes each request against RBAC rules before the inner service sees it (see the [module docs](super)).
#[derive(Debug, Clone)]
pub struct Authorization<S> {
    inner: S,
    policies: Arc<ArcSwap<RbacChain>>,
}

impl<S> Authorization<S> {
    /// Enforces `chain` (an `RbacChain` or a shared `Arc` of one) in front of `inner`.
    #[must_use]
    pub fn new(inner: S, chain: impl Into<Arc<RbacChain>>) -> Self {
        Self::from_shared(inner, Arc::new(ArcSwap::new(chain.into())))
    }

    /// Enforces whatever chain `policies` holds when each request arrives.
    #[must_use]
    pub fn from_shared(inner: S, policies: Arc<ArcSwap<RbacChain>>) -> Self {
        Self { inner, policies }
    }

    /// The shared rules, for swapping in new ones.
    #[must_use]
    pub fn policies(&self) -> &Arc<ArcSwap<RbacChain>> {
        &self.policies
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResBody> Service<Request<B>> for Authorization<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<super::AuthorizationBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let connection = request
            .extensions()
            .get::<Arc<ConnectionInfo>>()
            .map(|info| &**info);
        if authorize(&self.policies.load(), &request, connection) {
            ResponseFuture::allowed(self.inner.call(request))
        } else {
            ResponseFuture::denied(status::is_grpc_request(request.headers()))
        }
    }
}

/// Evaluates `chain` on `request` from `connection` (`None`: unknown, so unauthenticated with unknown addresses),
/// writing audit events (gRFC A59) as the filters decide; whether the request may go on. This is what
/// [`Authorization`] runs per request, for servers that hold the connection facts themselves.
pub fn authorize<B>(
    chain: &RbacChain,
    request: &Request<B>,
    connection: Option<&ConnectionInfo>,
) -> bool {
    if chain.is_empty() {
        return true;
    }
    let uri = request.uri();
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let authority = uri
        .authority()
        .map(http::uri::Authority::as_str)
        .or_else(|| single_host(request.headers()));
    let view = RbacRequest::new(request.method().as_str(), path_and_query, request.headers())
        .with_authority(authority)
        .with_connection(connection);
    chain
        .evaluate(&view, |filter, decision| {
            audit::record(filter, decision, &view);
        })
        .allowed
}

/// The `Host` header, when there is exactly one (gRFC A41: it stands in for a missing `:authority`; several make the
/// authority ambiguous, so RBAC sees none).
fn single_host(headers: &HeaderMap) -> Option<&str> {
    let mut hosts = headers.get_all(http::header::HOST).iter();
    let host = hosts.next()?;
    if hosts.next().is_some() {
        return None;
    }
    host.to_str().ok()
}

/// The answer to a denied request: a trailers-only `PERMISSION_DENIED` for gRPC, 403 otherwise.
pub(crate) fn denied_response(grpc: bool) -> Response<()> {
    let mut response = Response::new(());
    if grpc {
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(status::GRPC_STATUS, Code::PermissionDenied.header_value());
        headers.insert(
            status::GRPC_MESSAGE,
            HeaderValue::from_static(DENIED_MESSAGE),
        );
    } else {
        *response.status_mut() = StatusCode::FORBIDDEN;
    }
    response
}
