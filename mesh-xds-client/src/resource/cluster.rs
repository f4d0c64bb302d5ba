//! Cluster validation (in progress).
use mesh_core::cluster::Cluster;

use super::{ResourceError, ResourceKind, ValidationContext};

/// Decodes and validates a `Cluster`.
///
/// # Errors
/// Always, for now: cluster validation is being written.
pub fn validate_cluster(
    _bytes: &[u8],
    _ctx: &ValidationContext,
) -> Result<(String, Cluster), ResourceError> {
    Err(ResourceError::new(
        ResourceKind::Cluster,
        None,
        "not implemented",
    ))
}
