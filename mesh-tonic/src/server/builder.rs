//! [`ServerBuilder`]: settings of an xDS-enabled server, and starting it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::RequestBody;
use arc_swap::ArcSwapOption;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use super::accept::Accepting;
use super::config::{Follower, SHUT_DOWN, Shared, StateCallback};
use super::{DEFAULT_DRAIN_GRACE, ServerError, ServingState, XdsServer};
use crate::Mesh;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Builds an xDS-enabled server; start with [`Mesh::server`]. See the [module docs](crate::server).
#[must_use]
pub struct ServerBuilder {
    mesh: Mesh,
    drain_grace: Duration,
    on_state: Option<StateCallback>,
    health: Option<HealthReporter>,
}

impl ServerBuilder {
    pub(crate) fn new(mesh: Mesh) -> Self {
        Self {
            mesh,
            drain_grace: DEFAULT_DRAIN_GRACE,
            on_state: None,
            health: None,
        }
    }

    /// The "drain grace time" (gRFC A36): how long a connection drained by a Listener update or by not-serving may
    /// keep calls in flight before it is closed (default [`DEFAULT_DRAIN_GRACE`]).
    pub fn drain_grace(mut self, grace: Duration) -> Self {
        self.drain_grace = grace;
        self
    }

    /// Calls `callback` on every change of the serving state (gRFC A36's "serving state" callback), from the task
    /// that follows the Listener: keep it short. Without one, not-serving and each return to serving are logged at
    /// WARN.
    pub fn on_serving_state(
        mut self,
        callback: impl Fn(&ServingState) + Send + Sync + 'static,
    ) -> Self {
        self.on_state = Some(Arc::new(callback));
        self
    }

    /// Makes `grpc.health.v1.Health`'s overall status (service `""`) follow the serving state: SERVING while
    /// serving, NOT_SERVING otherwise (and from the start until the Listener arrives). Mount the health service that
    /// came with `reporter` (`tonic_health::server::health_reporter()`), typically on a maintenance port that is not
    /// under the control plane; per-service statuses stay the application's.
    pub fn health_reporter(mut self, reporter: HealthReporter) -> Self {
        self.health = Some(reporter);
        self
    }

    /// Listens on `address` and serves `service` (a `tonic::service::Routes`, a tonic-generated server, or any
    /// tower HTTP service, e.g. an axum `Router`) under the control plane's server Listener. Returns once the
    /// socket is bound and the Listener subscribed; serving starts when the configuration arrives (see
    /// [`XdsServer::watch_serving_state`]).
    ///
    /// # Errors
    /// [`ServerError`]: no xDS client, no `server_listener_resource_name_template`, the address cannot be bound.
    pub async fn serve<S, B>(
        self,
        address: SocketAddr,
        service: S,
    ) -> Result<XdsServer, ServerError>
    where
        S: tower_service::Service<http::Request<RequestBody>, Response = http::Response<B>>
            + Clone
            + Send
            + 'static,
        S::Error: Into<BoxError> + Send + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ServerError::Bind { address, source })?;
        self.serve_with_listener(listener, service).await
    }

    /// [`serve`](Self::serve) on a socket already bound; the Listener name uses its local address. The server's
    /// tasks run on the runtime the mesh was built in.
    ///
    /// # Errors
    /// As [`serve`](Self::serve), except binding.
    pub async fn serve_with_listener<S, B>(
        self,
        listener: TcpListener,
        service: S,
    ) -> Result<XdsServer, ServerError>
    where
        S: tower_service::Service<http::Request<RequestBody>, Response = http::Response<B>>
            + Clone
            + Send
            + 'static,
        S::Error: Into<BoxError> + Send + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let runtime = self.mesh.inner.runtime.clone();
        let xds = self
            .mesh
            .xds_client()
            .cloned()
            .ok_or(ServerError::XdsDisabled)?;
        let local_addr = listener.local_addr().map_err(ServerError::LocalAddress)?;
        let listener_name: Arc<str> = xds
            .bootstrap()
            .server_listener_name(local_addr)
            .ok_or(ServerError::NoListenerTemplate)?
            .into();
        let (state, state_rx) = watch::channel(ServingState::NotServing {
            reason: format!("waiting for Listener {listener_name:?}").into(),
        });
        let shared = Arc::new(Shared {
            config: ArcSwapOption::empty(),
            generation: watch::Sender::new(0),
            state,
            tls_handshake_failures: AtomicU64::new(0),
        });
        if let Some(reporter) = self.health {
            // tonic-health starts the overall status at SERVING: correct it before anyone can ask.
            reporter
                .set_service_status("", ServingStatus::NotServing)
                .await;
            runtime.spawn(report_health(reporter, state_rx.clone()));
        }
        let follower = Follower::new(
            xds,
            Arc::clone(&listener_name),
            local_addr,
            Arc::clone(&shared),
            self.on_state,
            self.mesh.certificate_providers().clone(),
        );
        let following = runtime.spawn(follower.run());
        let (stop, stop_rx) = watch::channel(false);
        let accepting = Accepting {
            shared: Arc::clone(&shared),
            service,
            drain_grace: self.drain_grace,
            telemetry: self
                .mesh
                .telemetry()
                .map(crate::telemetry::Telemetry::server),
        };
        let handle_shared = Arc::clone(&shared);
        let task = runtime.spawn(async move {
            let (alive, mut all_done) = mpsc::channel::<()>(1);
            accepting.run(listener, stop_rx, alive).await;
            following.abort();
            shared.config.store(None);
            shared.generation.send_replace(SHUT_DOWN);
            shared.state.send_replace(ServingState::NotServing {
                reason: "the server was shut down".into(),
            });
            // Every connection task holds a sender; `None` once the last one has ended.
            let _ = all_done.recv().await;
        });
        Ok(XdsServer {
            shared: handle_shared,
            local_addr,
            listener_name,
            state: state_rx,
            stop,
            task: Some(task),
        })
    }
}

/// Sets the overall health status from the serving state until the server is gone. The caller has already set
/// NOT_SERVING.
///
/// Only a change of status is reported: `Watch` (grpc.health.v1) sends a message whenever the status is set, even to
/// the same value, and its contract is one message per change. The serving state changes more often than the
/// status (a new not-serving reason, or the update of a served Listener), and a watcher that saw SERVING twice, or
/// NOT_SERVING again while nothing changed, would act on a change that did not happen.
async fn report_health(reporter: HealthReporter, mut state: watch::Receiver<ServingState>) {
    let mut reported = ServingStatus::NotServing;
    loop {
        let status = if state.borrow_and_update().is_serving() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if status != reported {
            reporter.set_service_status("", status).await;
            reported = status;
        }
        if state.changed().await.is_err() {
            if reported != ServingStatus::NotServing {
                reporter
                    .set_service_status("", ServingStatus::NotServing)
                    .await;
            }
            return;
        }
    }
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("drain_grace", &self.drain_grace)
            .field("on_serving_state", &self.on_state.is_some())
            .field("health_reporter", &self.health.is_some())
            .finish_non_exhaustive()
    }
}
