//! Audit events (gRFC A59) as `tracing` events.

use mesh_core::rbac::{RbacDecision, RbacFilter, RbacRequest};
use mesh_core::route::HeaderLookup;

/// The `tracing` target of audit events.
pub const AUDIT_TARGET: &str = "mesh::authz::audit";

/// Writes one audit event for `filter`'s `decision` on `request` when the filter's audit condition asks for it.
pub(crate) fn record<H: HeaderLookup + ?Sized>(
    filter: &RbacFilter,
    decision: RbacDecision<'_>,
    request: &RbacRequest<'_, H>,
) {
    if !filter.rules.audit_condition.applies(decision.allowed) {
        return;
    }
    // gRFC A59: the principal is the peer's identity from its certificate (a SPIFFE ID in a mesh).
    let principal = request.peer_certificate().map_or("", |certificate| {
        certificate.spiffe_id.as_ref().map_or_else(
            || certificate.uri_sans.first().map_or("", |uri| &**uri),
            |id| id.as_str(),
        )
    });
    tracing::info!(
        target: AUDIT_TARGET,
        policy_name = &*filter.name,
        matched_rule = decision.matched_policy_name(),
        principal,
        rpc_method = request.url_path(),
        authorized = decision.allowed,
        "authorization decision",
    );
}
