//! The authorization seam of the xDS-enabled server: the HTTP RBAC filter (gRFC A41) in a filter chain's
//! `HttpConnectionManager`.
//!
//! Not solved yet: this build has no RBAC engine, so [`check`] denies every request that reaches an RBAC filter
//! with PERMISSION_DENIED and a message saying so: an authorization policy the server cannot evaluate never lets a
//! request through. When the engine lands, [`check`] evaluates `rules` against the request's headers and path and the
//! connection's [`ConnectionInfo`] (addresses, peer certificate); its callers do not change.

use mesh_core::peer::ConnectionInfo;
use mesh_core::rbac::Rbac;

/// Whether the RBAC filter named `filter`, with `rules` (`None`: the filter has no rules of its own), lets the
/// request through.
///
/// # Errors
/// The status to answer with: PERMISSION_DENIED in this build, always.
pub(crate) fn check<B>(
    filter: &str,
    rules: Option<&Rbac>,
    request: &http::Request<B>,
    connection: &ConnectionInfo,
) -> Result<(), tonic::Status> {
    let _ = (rules, request, connection);
    Err(tonic::Status::permission_denied(format!(
        "RBAC filter {filter:?}: RBAC evaluation is not available in this build of mesh-tonic, so the request is \
         denied (fail closed)"
    )))
}
