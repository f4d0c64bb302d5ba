//! The connection of one endpoint: made lazily, remade when lost, retried with backoff when it fails.
//!
//! States: `Idle` (never used), `Connecting`, `Ready` (a handle to send on), `Failed` (the last attempt failed; the
//! next one waits for the backoff). Requests read the state with one atomic load; the driver task, started on
//! first use, owns every transition and wakes waiting requests. A lost connection is remade at once (the endpoint
//! stays reachable while that attempt runs); only a failed attempt makes the endpoint unreachable, until an
//! attempt succeeds. Each change of reachability is reported to the owner so it can rebuild its picker.
//!
//! The driver holds the endpoint weakly: when the endpoint is dropped the handle it held goes with it, h2 closes
//! the connection once the streams in flight are done, and the driver ends.
//!
//! Keep-alive: with an interval set, the driver sends an HTTP/2 PING each interval and closes the connection when
//! one goes unanswered for the keep-alive timeout (requests in flight on it fail as reset; the endpoint reconnects).
//! When a request finds the connection refusing new streams (the peer sent GOAWAY), the driver leaves the old
//! connection to finish its streams on its own and connects afresh at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use mesh_core::endpoint::EndpointAddress;
use mesh_core::rng::{FastRng, RandomSource};
use tokio::sync::Notify;

use super::OnChange;
use super::connect::{ConnectSettings, Http2Connection, connect};
use super::http2::{Lifeline, Sender};
use crate::error::SharedError;

/// Whether an endpoint can take requests, as its connection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reachability {
    /// Connected, connecting or not tried yet.
    Reachable,
    /// The last connection attempt failed.
    Unreachable,
}

enum State {
    Idle,
    /// Connecting; after a failure, with that failure (the endpoint stays unreachable until it connects: gRPC's
    /// sticky TRANSIENT_FAILURE, gRFC A62, so traffic does not bounce back to it on every reconnect attempt).
    Connecting(Option<SharedError>),
    Ready(Sender),
    Failed(SharedError),
}

impl State {
    fn reachability(&self) -> Reachability {
        match self {
            Self::Failed(_) | Self::Connecting(Some(_)) => Reachability::Unreachable,
            Self::Idle | Self::Connecting(None) | Self::Ready(_) => Reachability::Reachable,
        }
    }
}

struct Shared {
    address: EndpointAddress,
    settings: ConnectSettings,
    state: ArcSwap<State>,
    changed: Notify,
    started: AtomicBool,
    on_change: OnChange,
}

impl Shared {
    /// Moves to `next`, wakes waiting requests and reports a change of reachability.
    fn set(&self, next: State) {
        let reachability = next.reachability();
        let previous = self.state.swap(Arc::new(next));
        self.changed.notify_waiters();
        if previous.reachability() != reachability {
            (self.on_change)();
        }
    }
}

/// An endpoint's connection; see the [module docs](self).
pub(super) struct Connection {
    shared: Arc<Shared>,
}

impl Connection {
    pub(super) fn new(
        address: EndpointAddress,
        settings: ConnectSettings,
        on_change: OnChange,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                address,
                settings,
                state: ArcSwap::from_pointee(State::Idle),
                changed: Notify::new(),
                started: AtomicBool::new(false),
                on_change,
            }),
        }
    }

    /// A handle to send on at once, without waiting for a connection, when connected.
    pub(super) fn ready_sender(&self) -> Option<Sender> {
        match &**self.shared.state.load() {
            State::Ready(sender) if !sender.is_closed() => Some(sender.clone()),
            _ => None,
        }
    }

    pub(super) fn reachability(&self) -> Reachability {
        self.shared.state.load().reachability()
    }

    /// Why the last connection attempt failed, while the endpoint is unreachable because of it.
    pub(super) fn last_error(&self) -> Option<SharedError> {
        match &**self.shared.state.load() {
            State::Failed(error) | State::Connecting(Some(error)) => Some(Arc::clone(error)),
            State::Idle | State::Connecting(None) | State::Ready(_) => None,
        }
    }

    /// A handle to send on: at once when connected, after the connection attempt otherwise.
    pub(super) async fn sender(&self) -> Result<Sender, SharedError> {
        // The common case, connected, without registering a waiter: `Notify::notified().enable()` takes the
        // notifier's lock (twice with the drop), shared by every request to this endpoint.
        if let State::Ready(sender) = &**self.shared.state.load()
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match &**self.shared.state.load() {
                State::Ready(sender) if !sender.is_closed() => return Ok(sender.clone()),
                // A lost connection: the driver is remaking it.
                State::Ready(_) | State::Connecting(None) => {}
                State::Idle => self.start(),
                State::Failed(error) | State::Connecting(Some(error)) => {
                    return Err(Arc::clone(error));
                }
            }
            changed.await;
        }
    }

    fn start(&self) {
        if self.shared.started.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.set(State::Connecting(None));
        tokio::spawn(drive(Arc::downgrade(&self.shared)));
    }
}

/// The driver: connect, serve until the connection ends, reconnect; back off after failures.
async fn drive(shared: Weak<Shared>) {
    let mut failures: u32 = 0;
    let mut rng = match shared.upgrade() {
        Some(strong) => FastRng::from_seed(strong.settings.seed),
        None => return,
    };
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let (address, settings) = (strong.address.clone(), strong.settings.clone());
        let next = match &**strong.state.load() {
            State::Failed(error) | State::Connecting(Some(error)) => {
                Some(State::Connecting(Some(Arc::clone(error))))
            }
            State::Connecting(None) => None,
            State::Idle | State::Ready(_) => Some(State::Connecting(None)),
        };
        if let Some(next) = next {
            strong.set(next);
        }
        drop(strong);
        let result = connect(&address, &settings).await;
        let Some(strong) = shared.upgrade() else {
            return;
        };
        match result {
            Ok((sender, connection)) => {
                failures = 0;
                let lifeline = Arc::new(Lifeline::default());
                strong.set(State::Ready(Sender::new(sender, Arc::clone(&lifeline))));
                drop(strong);
                tracing::debug!(endpoint = %address, "connected");
                serve(connection, &lifeline, &settings, &address).await;
                lifeline.close();
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                tracing::debug!(endpoint = %address, %error, failures, "connection failed");
                let wait = settings.backoff.wait(failures, unit(&mut rng));
                strong.set(State::Failed(Arc::new(error)));
                drop(strong);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Serves `connection` until the peer closes it, it fails, a keep-alive ping goes unanswered, or every handle is
/// gone and the streams in flight are done; or, when a request found it refusing new streams, hands it to a task
/// of its own to finish its streams.
async fn serve(
    mut connection: Http2Connection,
    lifeline: &Lifeline,
    settings: &ConnectSettings,
    address: &EndpointAddress,
) {
    let pings = settings
        .keep_alive_interval
        .zip(connection.ping_pong())
        .map(|(interval, pings)| keep_alive(pings, interval, settings.keep_alive_timeout));
    let keep_alive = async {
        match pings {
            Some(pings) => pings.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = &mut connection => {
            if let Err(error) = result {
                tracing::debug!(endpoint = %address, %error, "connection ended");
            }
        }
        () = keep_alive => {
            tracing::debug!(endpoint = %address, "keep-alive ping unanswered; closing the connection");
        }
        () = lifeline.closed() => {
            tracing::debug!(endpoint = %address, "connection going away; reconnecting");
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    }
}

/// Pings every `interval`; returns when a ping goes unanswered for `timeout` (or cannot be sent).
async fn keep_alive(
    mut pings: h2::PingPong,
    interval: std::time::Duration,
    timeout: std::time::Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        match tokio::time::timeout(timeout, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// A uniform draw in `0.0..1.0`.
fn unit(rng: &mut impl RandomSource) -> f64 {
    // 53 random bits make an exactly representable fraction.
    #[allow(clippy::cast_precision_loss)]
    let fraction = (rng.next_u64() >> 11) as f64 / (1_u64 << 53) as f64;
    fraction
}
