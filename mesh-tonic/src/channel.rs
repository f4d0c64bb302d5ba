//! [`Channel`]: the mesh's request path for one target, as a tower service that tonic clients accept.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use mesh_tower::{BoxError, MeshService, ResponseBody, ResponseFuture};
use tower_service::Service;

/// A channel to one target: routing, balancing, retries and connections by the target's configuration (from xDS,
/// DNS or a static list), through [`mesh_tower::MeshService`].
///
/// Cheap to clone; clones, and every channel the same [`Mesh`](crate::Mesh) made for the same target, share one
/// request path (connections, balancer state, circuit breakers). When the last of them is dropped and the last of
/// their calls has ended, the target's configuration source (its xDS watch or DNS resolver) stops.
///
/// It is a `tower::Service<http::Request<B>>` for any body `B` whose data is [`Bytes`], so it serves both tonic
/// clients (`GreeterClient::new(channel)`, `B = tonic::body::Body`) and plain HTTP callers (see
/// [`Mesh::http_client`](crate::Mesh::http_client)). Failures are answered, never returned as `Err`: a gRPC call
/// gets a gRPC status (UNAVAILABLE with the reason when the target has no usable configuration or no reachable
/// endpoint, DEADLINE_EXCEEDED after its timeout), a plain HTTP call a 503 or 504 with the reason as the body.
#[derive(Clone)]
pub struct Channel {
    service: MeshService,
    shared: Arc<ChannelShared>,
}

/// What every clone of a channel shares.
pub(crate) struct ChannelShared {
    pub(crate) service: MeshService,
    pub(crate) target: Arc<str>,
}

impl Channel {
    pub(crate) fn from_shared(shared: Arc<ChannelShared>) -> Self {
        Self {
            service: shared.service.clone(),
            shared,
        }
    }

    /// The target, in canonical form (`xds:///greeter`, `dns:///localhost:50051`, `static:///127.0.0.1:50051`).
    #[must_use]
    pub fn target(&self) -> &str {
        &self.shared.target
    }

    /// The version of the configuration snapshot in use, `None` before the first one (or while the target has
    /// none). It grows with every configuration the channel applies.
    #[must_use]
    pub fn config_version(&self) -> Option<u64> {
        self.service.version()
    }

    /// Whether `self` and `other` share one request path.
    #[must_use]
    pub fn shares_path_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("target", &self.shared.target)
            .field("config_version", &self.config_version())
            .finish_non_exhaustive()
    }
}

impl<B> Service<http::Request<B>> for Channel
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<http::Request<B>>::poll_ready(&mut self.service, cx)
    }

    fn call(&mut self, request: http::Request<B>) -> ResponseFuture {
        self.service.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn channels_and_meshes_can_be_cloned_into_any_task() {
        shareable::<Channel>();
        shareable::<crate::Mesh>();
    }
}
