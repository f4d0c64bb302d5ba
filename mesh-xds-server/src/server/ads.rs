//! The tonic `AggregatedDiscoveryService` and the thin async worker that drives one stream's [`StreamState`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
    aggregated_discovery_service_server::AggregatedDiscoveryService,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::cache::SnapshotCache;
use crate::clients::{ClientInfo, ClientRegistry};
use crate::protocol::{RequestKind, StreamState};
use crate::snapshot::Snapshot;

/// Responses buffered per stream before the worker waits for the client to read.
const RESPONSE_BUFFER: usize = 16;

/// The ADS service. One worker task per stream; all share the cache and the registry.
#[derive(Debug)]
pub(crate) struct AdsService {
    pub(crate) cache: SnapshotCache,
    pub(crate) clients: ClientRegistry,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) next_stream_id: AtomicU64,
}

type ResponseStream = ReceiverStream<Result<DiscoveryResponse, Status>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ResponseStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let stream_id = self.next_stream_id.fetch_add(1, Ordering::Relaxed);
        let peer = request.remote_addr();
        let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
        let worker = StreamWorker {
            stream_id,
            peer,
            cache: self.cache.clone(),
            clients: self.clients.clone(),
            shutdown: self.shutdown.clone(),
            tx,
            state: StreamState::new(),
        };
        tokio::spawn(worker.run(request.into_inner()));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "mesh-xds-server serves state-of-the-world ADS only; delta xDS is not implemented",
        ))
    }
}

/// Resolves once the server is shutting down (or its handle is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // The guard returned by `wait_for` is not `Send`; drop it here rather than hold it across the select.
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

struct StreamWorker {
    stream_id: u64,
    peer: Option<SocketAddr>,
    cache: SnapshotCache,
    clients: ClientRegistry,
    shutdown: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    state: StreamState,
}

/// Why a stream ended.
enum End {
    ClientClosed,
    ClientError(Status),
    ResponsesDropped,
    Protocol(Status),
    Shutdown,
}

impl StreamWorker {
    async fn run(mut self, mut inbound: Streaming<DiscoveryRequest>) {
        let mut changes = self.cache.subscribe();
        changes.borrow_and_update();
        let mut shutdown = self.shutdown.clone();
        let mut served: Arc<Snapshot> = self.cache.snapshot(None);
        self.publish();
        info!(stream = self.stream_id, peer = ?self.peer, "ADS stream opened");
        let end = loop {
            tokio::select! {
                biased;
                () = stopping(&mut shutdown) => break End::Shutdown,
                message = inbound.message() => {
                    let request = match message {
                        Ok(Some(request)) => request,
                        Ok(None) => break End::ClientClosed,
                        Err(status) => break End::ClientError(status),
                    };
                    // A snapshot set before this request arrived is applied first, so a request always sees
                    // every earlier `set_snapshot` (tests rely on this ordering).
                    let node_changed = self.state.observe_node(&request);
                    if node_changed || changes.has_changed().unwrap_or(false) {
                        changes.borrow_and_update();
                        if let Err(end) = self.push_snapshot(&mut served).await {
                            break end;
                        }
                    }
                    if let Err(end) = self.handle_request(&request, &served).await {
                        break end;
                    }
                }
                changed = changes.changed() => {
                    if changed.is_err() {
                        break End::Shutdown;
                    }
                    if let Err(end) = self.push_snapshot(&mut served).await {
                        break end;
                    }
                }
            }
        };
        self.finish(end).await;
    }

    async fn handle_request(
        &mut self,
        request: &DiscoveryRequest,
        snapshot: &Snapshot,
    ) -> Result<(), End> {
        let handled = match self.state.handle_request(request, snapshot) {
            Ok(handled) => handled,
            Err(error) => return Err(End::Protocol(Status::invalid_argument(error.to_string()))),
        };
        let node = self.state.node_id().unwrap_or("");
        match &handled.kind {
            RequestKind::Initial => debug!(
                stream = self.stream_id, node, type_url = %request.type_url,
                names = ?request.resource_names, version = %request.version_info,
                "subscription request"
            ),
            RequestKind::Ack { version } => debug!(
                stream = self.stream_id, node, type_url = %request.type_url, version = %version,
                names = ?request.resource_names, "ACK"
            ),
            RequestKind::Nack(nack) => warn!(
                stream = self.stream_id, node, type_url = %request.type_url,
                rejected_version = %nack.rejected_version, nonce = %nack.nonce,
                accepted_version = %nack.accepted_version, code = nack.code, error = %nack.message,
                "NACK: the client rejected a response"
            ),
            RequestKind::Stale { nonce } => debug!(
                stream = self.stream_id, node, type_url = %request.type_url, nonce = %nonce,
                "ignoring request with a stale nonce"
            ),
        }
        if let Some(response) = handled.response {
            self.send(response).await?;
        }
        self.publish();
        Ok(())
    }

    async fn push_snapshot(&mut self, served: &mut Arc<Snapshot>) -> Result<(), End> {
        let current = self.cache.snapshot(self.state.node_id());
        if Arc::ptr_eq(&current, served) {
            return Ok(());
        }
        *served = current;
        let responses = self.state.handle_snapshot(served);
        for response in responses {
            self.send(response).await?;
        }
        self.publish();
        Ok(())
    }

    async fn send(&mut self, response: DiscoveryResponse) -> Result<(), End> {
        debug!(
            stream = self.stream_id,
            node = self.state.node_id().unwrap_or(""),
            type_url = %response.type_url,
            version = %response.version_info,
            nonce = %response.nonce,
            resources = response.resources.len(),
            "sending response"
        );
        // A client that stops reading must not keep the worker from noticing shutdown.
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            sent = self.tx.send(Ok(response)) => sent.map_err(|_| End::ResponsesDropped),
            () = stopping(&mut shutdown) => Err(End::Shutdown),
        }
    }

    fn publish(&self) {
        self.clients.upsert(ClientInfo {
            stream_id: self.stream_id,
            node_id: self.state.node_id().map(str::to_owned),
            peer: self.peer,
            types: self.state.type_statuses(),
        });
    }

    async fn finish(self, end: End) {
        let node = self.state.node_id().unwrap_or("");
        match end {
            End::ClientClosed => info!(
                stream = self.stream_id,
                node, "ADS stream closed by the client"
            ),
            End::ClientError(status) => {
                info!(stream = self.stream_id, node, %status, "ADS stream ended by the client");
            }
            End::ResponsesDropped => info!(stream = self.stream_id, node, "ADS stream dropped"),
            End::Protocol(status) => {
                warn!(stream = self.stream_id, node, %status, "ending ADS stream: protocol error");
                // Best effort: the client may already be gone.
                let _ = self.tx.try_send(Err(status));
            }
            End::Shutdown => {
                info!(
                    stream = self.stream_id,
                    node, "ending ADS stream: server shutting down"
                );
                let _ = self
                    .tx
                    .try_send(Err(Status::unavailable("mesh-xds-server is shutting down")));
            }
        }
        self.clients.remove(self.stream_id);
    }
}
