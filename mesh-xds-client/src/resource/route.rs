//! RouteConfiguration validation (in progress).
use mesh_core::route::RouteConfig;

use super::{ResourceError, ResourceKind, ValidationContext};

/// Decodes and validates a `RouteConfiguration`.
///
/// # Errors
/// Always, for now: route validation is being written.
pub fn validate_route_configuration(
    _bytes: &[u8],
    _ctx: &ValidationContext,
) -> Result<(String, RouteConfig), ResourceError> {
    Err(ResourceError::new(
        ResourceKind::RouteConfiguration,
        None,
        "not implemented",
    ))
}
