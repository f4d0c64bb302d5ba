//! Endpoints: one address of a cluster, its HTTP/2 connection and its live load figures.
//!
//! An [`Endpoint`] is created when an address enters a cluster's endpoint set and lives as long as it stays there;
//! the next set reuses it by address, so its connection, latency estimate and outstanding count carry over. Its
//! [`connection`] is made on first use, remade at once when it is lost, and retried with backoff when it fails;
//! while it has failed the endpoint is unreachable and the cluster's picker leaves it out (its owner is told through
//! a callback and rebuilds the picker off the request path).
//!
//! When an endpoint leaves the set it is dropped once no request holds it; its connection then closes gracefully,
//! after the streams in flight finish.

mod connect;
mod connection;
mod hpack;
mod http2;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mesh_core::endpoint::EndpointAddress;

pub(crate) use connect::ConnectSettings;
use connection::Connection;
pub(crate) use connection::Reachability;
pub use http2::ResponseStream;
pub(crate) use http2::{SendError, Sender};

use crate::error::SharedError;
use crate::lb::PeakEwma;

/// A failed exchange counts as this many times the default latency, at least.
pub(crate) const FAILURE_PENALTY_FACTOR: u32 = 10;

/// A function the endpoint calls when its reachability changes.
pub(crate) type OnChange = Arc<dyn Fn() + Send + Sync>;

/// One endpoint of a cluster; see the [module docs](self).
pub(crate) struct Endpoint {
    label: Arc<str>,
    ewma: PeakEwma,
    failure_penalty: Duration,
    outstanding: AtomicU32,
    connection: Connection,
}

impl Endpoint {
    /// An endpoint at `address` whose connection is made on first use with `settings`.
    pub(crate) fn new(
        address: EndpointAddress,
        settings: ConnectSettings,
        ewma: (Duration, Duration),
        on_change: OnChange,
    ) -> Self {
        Self {
            label: address.to_string().into(),
            ewma: PeakEwma::new(ewma.0, ewma.1, now()),
            failure_penalty: ewma.1.saturating_mul(FAILURE_PENALTY_FACTOR),
            outstanding: AtomicU32::new(0),
            connection: Connection::new(address, settings, on_change),
        }
    }

    /// The address, as text (for logs, errors and outlier keys).
    pub(crate) fn label(&self) -> &Arc<str> {
        &self.label
    }

    /// Records how long an exchange took. A failed exchange counts as at least [`FAILURE_PENALTY_FACTOR`] times the
    /// cluster's default latency, so that an endpoint failing fast does not look fast and draw more traffic to P2C
    /// (the "black hole" of latency-based balancing); outlier detection, when configured, ejects it outright.
    /// `now` is when the exchange ended, as the caller read the clock for it already.
    pub(crate) fn observe(&self, elapsed: Duration, failed: bool, now: std::time::Instant) {
        let rtt = if failed {
            elapsed.max(self.failure_penalty)
        } else {
            elapsed
        };
        self.ewma.observe(rtt, now);
    }

    /// Requests in flight to this endpoint.
    pub(crate) fn outstanding(&self) -> u32 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// The P2C cost as of `now`.
    pub(crate) fn cost(&self, now: std::time::Instant) -> f64 {
        self.ewma.cost(now, self.outstanding())
    }

    /// Whether the connection is usable or may become so without waiting for a backoff.
    pub(crate) fn reachability(&self) -> Reachability {
        self.connection.reachability()
    }

    /// Why the endpoint is unreachable: its last connection error (for "no healthy endpoints" messages; read only
    /// when a pick has failed).
    pub(crate) fn last_connect_error(&self) -> Option<SharedError> {
        self.connection.last_error()
    }

    /// A handle to send on at once, when connected (one atomic load).
    pub(crate) fn ready_sender(&self) -> Option<Sender> {
        self.connection.ready_sender()
    }

    /// Counts a request in flight until the guard drops. The guard holds the endpoint for the request, so the
    /// request path takes one reference to it per attempt.
    pub(crate) fn start_request(self: Arc<Self>) -> Outstanding {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        Outstanding { endpoint: self }
    }

    /// A handle to send requests on, connecting first if need be.
    ///
    /// # Errors
    /// The connection error when the endpoint cannot be reached.
    pub(crate) async fn sender(&self) -> Result<Sender, SharedError> {
        self.connection.sender().await
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("address", &self.label)
            .field("outstanding", &self.outstanding())
            .field("reachability", &self.reachability())
            .finish_non_exhaustive()
    }
}

/// A request in flight to an endpoint.
#[derive(Debug)]
pub(crate) struct Outstanding {
    endpoint: Arc<Endpoint>,
}

impl Outstanding {
    /// The endpoint the request went to.
    pub(crate) fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.endpoint.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The current time as the algorithms take it: tokio's clock, so paused-time tests drive it.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
