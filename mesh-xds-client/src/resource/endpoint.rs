//! ClusterLoadAssignment validation (in progress).
use mesh_core::endpoint::EndpointSet;

use super::{ResourceError, ResourceKind, ValidationContext};

/// Decodes and validates a `ClusterLoadAssignment`.
///
/// # Errors
/// Always, for now: endpoint validation is being written.
pub fn validate_cluster_load_assignment(
    _bytes: &[u8],
    _ctx: &ValidationContext,
) -> Result<(String, EndpointSet), ResourceError> {
    Err(ResourceError::new(
        ResourceKind::ClusterLoadAssignment,
        None,
        "not implemented",
    ))
}
