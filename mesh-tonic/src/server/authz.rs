//! Authorization on the xDS-enabled server: the HTTP RBAC filters (gRFC A41) of a filter chain's
//! `HttpConnectionManager`, evaluated by mesh-core's engine through mesh-tower's [`authorize`], which also writes the
//! audit events (gRFC A59, `tracing` target [`mesh_tower::authz::AUDIT_TARGET`]).
//!
//! The RBAC filters before the router form one [`RbacChain`], built once per filter chain when the Listener arrives;
//! filters after the router are never reached (Envoy). A filter with no rules of its own enforces nothing. Not
//! applied: `RBACPerRoute` overrides (the xDS client rejects those that are not optional).

use mesh_core::listener::{HttpFilter, HttpFilterConfig};
use mesh_core::peer::ConnectionInfo;
use mesh_core::rbac::RbacChain;
use mesh_tower::authz::{DENIED_MESSAGE, authorize};

/// The RBAC chain of `filters`: their RBAC filters up to the router.
pub(crate) fn chain_of(filters: &[HttpFilter]) -> RbacChain {
    let end = filters
        .iter()
        .position(|filter| matches!(filter.config, HttpFilterConfig::Router))
        .unwrap_or(filters.len());
    RbacChain::from_http_filters(filters.get(..end).unwrap_or(filters))
}

/// Whether `chain` lets `request` from `connection` through.
///
/// # Errors
/// PERMISSION_DENIED when a filter denies it.
pub(crate) fn check<B>(
    chain: &RbacChain,
    request: &http::Request<B>,
    connection: &ConnectionInfo,
) -> Result<(), tonic::Status> {
    if authorize(chain, request, Some(connection)) {
        Ok(())
    } else {
        Err(tonic::Status::permission_denied(DENIED_MESSAGE))
    }
}
