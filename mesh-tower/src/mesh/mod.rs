//! The service: [`MeshService`] routes, balances and sends requests by the current configuration snapshot.
//!
//! Configuration comes in through [`MeshService::update`] or a [`ConfigSource`] watch channel. Each update builds
//! the routing state off the request path (cluster stacks created, updated in place, or dropped) and swaps it in
//! with one atomic store; a request does one atomic load. Before the first configuration arrives a request waits for
//! it, up to [`MeshOptions::initial_config_timeout`](crate::options::MeshOptions) or its own `grpc-timeout`.
//!
//! Failures are answered as responses (gRPC status or HTTP 503/504, see [`MeshError`](crate::error::MeshError)), so
//! the service's error type is [`Infallible`].

mod attempt;
mod call;
mod issued;
mod request;
mod response;
mod state;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response};
use mesh_core::snapshot::ConfigSnapshot;
use tokio::sync::{Notify, oneshot, watch};
use tower_service::Service;

pub use request::GRPC_PREVIOUS_RPC_ATTEMPTS;
pub(crate) use state::{ConfigState, RoutingState};

use crate::body::{BoxError, CallerBody, ResponseBody};
use crate::fault::ActiveFaults;
use crate::options::MeshOptions;
use crate::runtime::Runtime;

/// A configuration update: `None` while there is none yet, the snapshot, or why the target has none.
pub type ConfigUpdate = Option<Result<Arc<ConfigSnapshot>, Arc<str>>>;

/// A source of configuration updates, as the xDS client (or anything else) publishes them.
pub type ConfigSource = watch::Receiver<ConfigUpdate>;

pub(crate) struct Shared {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) state: ArcSwap<ConfigState>,
    pub(crate) changed: Notify,
    pub(crate) faults: ActiveFaults,
    /// Bumped after each update, for [`MeshService::discover`] (never read by requests).
    pub(crate) versions: watch::Sender<u64>,
    registry: state::Registry,
    updating: Mutex<()>,
    /// Dropped with the last clone of the service and the last request in flight, which stops the task
    /// [`MeshService::from_source`] runs (and so releases the source).
    _source_stop: Option<oneshot::Sender<Infallible>>,
}

/// The request path as a tower service. Cheap to clone: clones share everything.
///
/// Configuration comes in through [`update`](Self::update) or a [`ConfigSource`] ([`from_source`](Self::from_source)):
/// each update builds the routing state off the request path (cluster stacks created, updated in place, or
/// dropped) and swaps it in with one atomic store; a request does one atomic load. Before the first configuration a
/// request waits for it, up to [`MeshOptions::initial_config_timeout`] or its own `grpc-timeout`. Failures are
/// answered as responses (gRPC status, or HTTP 503/504 with the reason, the [`MeshError`](crate::error::MeshError)
/// in the response extensions), so the error type is [`Infallible`].
#[derive(Clone)]
pub struct MeshService {
    pub(crate) shared: Arc<Shared>,
}

impl MeshService {
    /// A service with no configuration yet; feed it with [`update`](Self::update). Must be used within a tokio
    /// runtime (connections and timers are tokio tasks).
    #[must_use]
    pub fn new(options: MeshOptions) -> Self {
        Self::with_source_stop(options, None)
    }

    fn with_source_stop(options: MeshOptions, stop: Option<oneshot::Sender<Infallible>>) -> Self {
        Self {
            shared: Arc::new(Shared {
                runtime: Arc::new(Runtime::new(options)),
                state: ArcSwap::from_pointee(ConfigState::Waiting),
                changed: Notify::new(),
                faults: ActiveFaults::default(),
                versions: watch::Sender::new(0),
                registry: state::Registry::default(),
                updating: Mutex::new(()),
                _source_stop: stop,
            }),
        }
    }

    /// A service fed by `source`: applies its current value, then every change, on a task that ends when the
    /// sender is gone, or as soon as every clone of the service and every request it answers are (dropping the
    /// receiver, which a publisher can await with [`watch::Sender::closed`]). Must be called within a tokio
    /// runtime.
    #[must_use]
    pub fn from_source(mut source: ConfigSource, options: MeshOptions) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let service = Self::with_source_stop(options, Some(stop));
        let current = source.borrow_and_update().clone();
        service.update(current);
        let weak: Weak<Shared> = Arc::downgrade(&service.shared);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = source.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    _ = &mut stopped => return,
                }
                let Some(shared) = weak.upgrade() else {
                    return;
                };
                let update = source.borrow_and_update().clone();
                apply(&shared, update);
            }
        });
        service
    }

    /// Applies a configuration update. Builds the new routing state here, off the request path, then swaps it in.
    pub fn update(&self, update: ConfigUpdate) {
        apply(&self.shared, update);
    }

    /// The snapshot in use, if any (for config dumps).
    #[must_use]
    pub fn snapshot(&self) -> Option<Arc<ConfigSnapshot>> {
        match &**self.shared.state.load() {
            ConfigState::Ready(state) => Some(Arc::clone(&state.snapshot)),
            ConfigState::Waiting | ConfigState::Failed(_) => None,
        }
    }

    /// The version of the snapshot in use, if any.
    #[must_use]
    pub fn version(&self) -> Option<u64> {
        match &**self.shared.state.load() {
            ConfigState::Ready(state) => Some(state.snapshot.version()),
            ConfigState::Waiting | ConfigState::Failed(_) => None,
        }
    }
}

fn apply(shared: &Shared, update: ConfigUpdate) {
    let _serial = shared
        .updating
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let next = match update {
        None => ConfigState::Waiting,
        Some(Err(reason)) => {
            shared.registry.clear();
            ConfigState::Failed(reason)
        }
        Some(Ok(snapshot)) => ConfigState::Ready(shared.registry.build(&snapshot, &shared.runtime)),
    };
    if let ConfigState::Ready(state) = &next {
        tracing::debug!(
            version = state.snapshot.version(),
            clusters = state.targets.len(),
            "configuration applied"
        );
    }
    shared.state.store(Arc::new(next));
    shared.changed.notify_waiters();
    shared.versions.send_modify(|version| *version += 1);
}

impl fmt::Debug for MeshService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshService")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for MeshService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Admission happens per request (circuit breakers fail fast); there is nothing to wait for here.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        let shared = Arc::clone(&self.shared);
        let request = request.map(CallerBody::new);
        ResponseFuture {
            inner: boxed_in_place(move || call::handle(shared, request)),
        }
    }
}

/// Boxes the future `make` makes, allocating first so that the future can be made in its box: boxing a made future
/// copies all of it (kilobytes: the state of a whole request) from the stack.
fn boxed_in_place<F: Future + Send + 'static>(
    make: impl FnOnce() -> F,
) -> Pin<Box<dyn Future<Output = F::Output> + Send>> {
    let slot = Box::<F>::new_uninit();
    let boxed: Box<F> = Box::write(slot, make());
    Box::into_pin(boxed)
}

/// The future of a [`MeshService`] call. One allocation per request: the request's state machine spans routing,
/// faults, retries and the connection, and boxing it keeps this type nameable. (A request body that is not whole in
/// memory is boxed too, once, so that one connection serves callers with any body type.)
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>,
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx).map(Ok)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
