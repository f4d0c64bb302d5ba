//! A cluster's endpoints as a tower [`Discover`](tower::discover::Discover): an insert when an endpoint enters the
//! cluster's endpoint set, a remove when it leaves, each endpoint a service that sends on its own connection.
//!
//! What it is for: callers that balance or watch endpoints with tower's machinery (`tower::balance`, a custom
//! pool) next to the mesh, on the endpoints the mesh's configuration gives a cluster. [`MeshService::discover`]
//! makes one for a leaf cluster; it follows every configuration update, starting with the endpoints of the
//! current one. The endpoints are the mesh's own (shared connection, outstanding count): a request sent through an
//! [`EndpointService`] counts on its endpoint as the mesh's requests do, but goes through none of the mesh's policies
//! (no routing, circuit breaker, retries, outlier detection or metrics).
//!
//! The request path pays nothing for it: an update bumps a `watch` version the discovery waits on, off the request
//! path; requests never touch it.
//!
//! Not here: aggregate clusters (their leaves are discovered one by one), priorities and weights (every endpoint of
//! the set is inserted, usable or not; the mesh's picker, not this view, applies them).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use mesh_core::endpoint::EndpointAddress;
use tokio::sync::watch;
use tower::discover::Change;
use tower_service::Service;

use crate::body::{BoxError, box_body};
use crate::cluster::Target;
use crate::endpoint::{Endpoint, ResponseStream};
use crate::mesh::{ConfigState, MeshService};

/// The wait for the next configuration update: the receiver back, or `None` once the service is gone.
type VersionChange = Pin<Box<dyn Future<Output = Option<watch::Receiver<u64>>> + Send>>;

/// See the [module docs](self). A `Stream` of [`Change`]s, hence a tower `Discover`; it ends when the service is
/// dropped.
pub struct EndpointDiscover {
    service: std::sync::Weak<crate::mesh::Shared>,
    cluster: Arc<str>,
    known: HashMap<EndpointAddress, Arc<Endpoint>>,
    pending: VecDeque<Change<EndpointAddress, EndpointService>>,
    changed: Option<VersionChange>,
    versions: Option<watch::Receiver<u64>>,
}

impl MeshService {
    /// The endpoints of leaf cluster `cluster` as a tower `Discover`; see [`crate::discover`].
    #[must_use]
    pub fn discover(&self, cluster: &str) -> EndpointDiscover {
        let mut versions = self.shared.versions.subscribe();
        versions.mark_changed();
        EndpointDiscover {
            service: Arc::downgrade(&self.shared),
            cluster: cluster.into(),
            known: HashMap::new(),
            pending: VecDeque::new(),
            changed: None,
            versions: Some(versions),
        }
    }
}

impl EndpointDiscover {
    /// Queues the differences between the endpoints known and the cluster's current ones.
    fn refresh(&mut self, shared: &crate::mesh::Shared) {
        let state = shared.state.load();
        let mut current: HashMap<EndpointAddress, Arc<Endpoint>> = HashMap::new();
        if let ConfigState::Ready(routing) = &**state
            && let Some(Target::Leaf(leaf)) = routing.targets.get(&self.cluster)
        {
            let table = leaf.table();
            if let Some(set) = &table.list.set {
                for (address, endpoint) in set
                    .localities
                    .iter()
                    .flat_map(|l| l.endpoints.iter().map(|e| e.address.clone()))
                    .zip(table.list.slots.iter())
                {
                    current.insert(address, Arc::clone(endpoint));
                }
            }
        }
        let gone: Vec<EndpointAddress> = self
            .known
            .iter()
            .filter(|(address, endpoint)| {
                current
                    .get(*address)
                    .is_none_or(|now| !Arc::ptr_eq(now, endpoint))
            })
            .map(|(address, _)| address.clone())
            .collect();
        for address in gone {
            self.known.remove(&address);
            self.pending.push_back(Change::Remove(address));
        }
        for (address, endpoint) in current {
            if !self.known.contains_key(&address) {
                self.known.insert(address.clone(), Arc::clone(&endpoint));
                self.pending
                    .push_back(Change::Insert(address, EndpointService { endpoint }));
            }
        }
    }
}

impl futures_core::Stream for EndpointDiscover {
    type Item = Result<Change<EndpointAddress, EndpointService>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(change) = self.pending.pop_front() {
                return Poll::Ready(Some(Ok(change)));
            }
            if let Some(mut versions) = self.versions.take() {
                if versions.has_changed().unwrap_or(false) {
                    versions.borrow_and_update();
                    let Some(shared) = self.service.upgrade() else {
                        return Poll::Ready(None);
                    };
                    self.refresh(&shared);
                    self.versions = Some(versions);
                    continue;
                }
                self.changed = Some(Box::pin(async move {
                    versions.changed().await.ok()?;
                    Some(versions)
                }));
            }
            let Some(changed) = self.changed.as_mut() else {
                return Poll::Ready(None);
            };
            match changed.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.changed = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(versions)) => {
                    self.changed = None;
                    self.versions = Some(versions);
                }
            }
        }
    }
}

impl std::fmt::Debug for EndpointDiscover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointDiscover")
            .field("cluster", &self.cluster)
            .field("known", &self.known.len())
            .finish_non_exhaustive()
    }
}

/// One endpoint of a discovered cluster: sends each request on the endpoint's HTTP/2 connection (made on first use,
/// shared with the mesh), counting it as outstanding on the endpoint while the exchange lasts.
#[derive(Clone)]
pub struct EndpointService {
    endpoint: Arc<Endpoint>,
}

impl std::fmt::Debug for EndpointService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointService")
            .field("endpoint", self.endpoint.label())
            .finish()
    }
}

impl<B> Service<Request<B>> for EndpointService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseStream>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let outstanding = Arc::clone(&self.endpoint).start_request();
        let request = request.map(|body| crate::body::UpstreamBody::direct(box_body(body)));
        Box::pin(async move {
            let endpoint = outstanding.endpoint();
            let sender = endpoint.sender().await.map_err(|error| {
                BoxError::from(format!("endpoint {}: {error}", endpoint.label()))
            })?;
            let response = sender.send(request).await.map_err(|error| error.source)?;
            drop(outstanding);
            Ok(response)
        })
    }
}
