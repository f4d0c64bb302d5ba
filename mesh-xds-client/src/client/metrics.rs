//! [`XdsClientMetrics`]: the xDS client's events for gRFC A78's xDS client metrics, behind one small trait whose
//! methods all have empty defaults ([`NoXdsClientMetrics`] is the default), so this crate knows nothing of
//! OpenTelemetry; `mesh-tonic` implements it over a meter.

use crate::protocol::ResourceCounts;

/// What the xDS client reports. Implementations must be cheap and must not block: they run on the client's task.
pub trait XdsClientMetrics: Send + Sync + 'static {
    /// A response from `server` carried `valid` resources of `resource_type` (e.g.
    /// `envoy.config.listener.v3.Listener`) that passed validation and `invalid` ones that did not (gRFC A46: each
    /// resource on its own). Every resource counts, changed or not (gRFC A78).
    fn resource_updates(&self, server: &str, resource_type: &str, valid: u64, invalid: u64) {
        let _ = (server, resource_type, valid, invalid);
    }

    /// `server` went from healthy to unhealthy: it could not be reached, or its ADS stream failed before a response
    /// arrived (gRFC A57). Counted once per transition, not per reconnection attempt.
    fn server_failure(&self, server: &str) {
        let _ = server;
    }

    /// `server`'s connectivity changed (gRFC A78's `grpc.xds_client.connected`): `true` when the first response
    /// arrives on an ADS stream, `false` when the server fails as for [`server_failure`](Self::server_failure).
    fn server_connected(&self, server: &str, connected: bool) {
        let _ = (server, connected);
    }

    /// The number of subscribed resources per authority, cache state and type changed (gRFC A78's
    /// `grpc.xds_client.resources`); `counts` is the whole new picture, and a group it leaves out now has none.
    /// Reported after the xDS client handled an event (a response, a timer, a watch), only when a count differs
    /// from the last report.
    fn resource_counts(&self, counts: &ResourceCounts) {
        let _ = counts;
    }
}

/// Reports nothing: the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoXdsClientMetrics;

impl XdsClientMetrics for NoXdsClientMetrics {}
