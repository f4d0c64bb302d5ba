//! Authorization on the server side (gRFC A41): a tower middleware that evaluates RBAC rules against every request
//! and answers denied calls itself, with audit logging through `tracing` (gRFC A59).
//!
//! What it solves:
//! - [`Authorization`] / [`AuthorizationLayer`] over `http::Request<B>`: evaluates a mesh-core
//!   [`RbacChain`](mesh_core::rbac::RbacChain) (one or several RBAC filters, in order, each ALLOW or DENY) against the
//!   request's method, `:authority` (the `Host` header when the URI has none), path, headers and the connection facts
//!   the server put in the request's extensions as `Arc<`[`ConnectionInfo`](mesh_core::peer::ConnectionInfo)`>`.
//! - A denied gRPC call is answered with `PERMISSION_DENIED` as a trailers-only response (HTTP 200,
//!   `content-type: application/grpc`, `grpc-status: 7`, `grpc-message`), and a denied plain HTTP request with 403;
//!   the inner service is not called.
//! - Rules set in code or swapped at runtime: the layer reads them from an `Arc<ArcSwap<RbacChain>>` with one atomic
//!   load per request ([`AuthorizationLayer::from_shared`]); conversion from xDS happens before the swap.
//! - Audit logging (gRFC A59): for each filter whose audit condition matches its decision, one `tracing` event at
//!   INFO on target [`AUDIT_TARGET`] with `policy_name` (the filter's name), `matched_rule` (the matched policy, empty
//!   when none), `principal` (the peer's SPIFFE ID, else its first URI SAN, else empty), `rpc_method` (the path) and
//!   `authorized`. Route them to an audit sink with a `tracing` subscriber filtering on that target.
//!
//! On an xDS-enabled server (gRFC A36) each filter chain has its own HTTP filters, and a connection keeps the filter
//! chain it was accepted with until it drains: build the chain once per filter chain with
//! [`RbacChain::from_http_filters`](mesh_core::rbac::RbacChain::from_http_filters), share it as an `Arc`, and wrap
//! each connection's service with [`Authorization::new`].
//!
//! Without `ConnectionInfo` in the extensions (a server that does not supply it), the peer is treated as
//! unauthenticated and its addresses as unknown: `authenticated` and address rules do not match (their negations do).
//!
//! Not here: the rule semantics (mesh-core's [`rbac`](mesh_core::rbac) module documents them), `RBACPerRoute` overrides,
//! custom audit logger types (gRFC A59's registry; `tracing` subscribers play that role), and A41's rejection of
//! requests with several `Host` or `:authority` headers (left to the HTTP/2 server; with several `Host` headers and
//! no `:authority`, RBAC sees no authority).
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use arc_swap::ArcSwap;
//! use mesh_core::matcher::StringMatcher;
//! use mesh_core::rbac::{AuditCondition, Permission, Principal, Rbac, RbacAction, RbacChain, RbacPolicy};
//! use mesh_tower::authz::AuthorizationLayer;
//! use tower_layer::Layer;
//!
//! # fn run<S>(handler: S) {
//! let only_frontend = Rbac::new(
//!     RbacAction::Allow,
//!     vec![RbacPolicy::new(
//!         "frontend-may-greet",
//!         vec![Permission::UrlPath(StringMatcher::prefix("/helloworld.Greeter/"))],
//!         vec![Principal::Authenticated(Some(StringMatcher::exact(
//!             "spiffe://example.org/ns/web/sa/frontend",
//!         )))],
//!     )],
//! )
//! .with_audit_condition(AuditCondition::OnDeny);
//! let policies = Arc::new(ArcSwap::from_pointee(RbacChain::single("authz", only_frontend)));
//! let service = AuthorizationLayer::from_shared(Arc::clone(&policies)).layer(handler);
//! // Later, e.g. on an xDS update: policies.store(Arc::new(new_chain));
//! # let _ = service;
//! # }
//! ```

mod audit;
mod body;
mod future;
mod layer;
mod service;

pub use audit::AUDIT_TARGET;
pub use body::AuthorizationBody;
pub use future::ResponseFuture;
pub use layer::AuthorizationLayer;
pub use service::{Authorization, DENIED_MESSAGE, authorize};

#[cfg(test)]
mod tests;
