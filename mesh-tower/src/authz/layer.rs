//! The [`AuthorizationLayer`].

use std::sync::Arc;

use arc_swap::ArcSwap;
use mesh_core::rbac::RbacChain;
use tower_layer::Layer;

use super::service::Authorization;

/// Wraps services in [`Authorization`], all sharing one set of rules.
#[derive(Debug, Clone)]
pub struct AuthorizationLayer {
    policies: Arc<ArcSwap<RbacChain>>,
}

impl AuthorizationLayer {
    /// Enforces `chain` (an `RbacChain` or an `Arc` of one shared with other layers), fixed unless replaced
    /// through [`AuthorizationLayer::policies`].
    #[must_use]
    pub fn new(chain: impl Into<Arc<RbacChain>>) -> Self {
        Self::from_shared(Arc::new(ArcSwap::new(chain.into())))
    }

    /// Enforces whatever chain `policies` holds when each request arrives; store a new one to change the rules.
    #[must_use]
    pub fn from_shared(policies: Arc<ArcSwap<RbacChain>>) -> Self {
        Self { policies }
    }

    /// The shared rules, for swapping in new ones.
    #[must_use]
    pub fn policies(&self) -> &Arc<ArcSwap<RbacChain>> {
        &self.policies
    }
}

impl<S> Layer<S> for AuthorizationLayer {
    type Service = Authorization<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorization::from_shared(inner, Arc::clone(&self.policies))
    }
}
