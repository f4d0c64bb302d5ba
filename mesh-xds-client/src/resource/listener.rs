//! Listener validation (in progress).
use mesh_core::listener::Listener;

use super::{ResourceError, ResourceKind, ValidationContext};

/// Decodes and validates a `Listener`.
///
/// # Errors
/// Always, for now: listener validation is being written.
pub fn validate_listener(
    _bytes: &[u8],
    _ctx: &ValidationContext,
) -> Result<(String, Listener), ResourceError> {
    Err(ResourceError::new(
        ResourceKind::Listener,
        None,
        "not implemented",
    ))
}
