//! The LoadReportingService (gRFC A27 LRS; Envoy `envoy/service/load_stats/v3/lrs.proto`): on each stream, after
//! the client's first request (its node), the server asks for every cluster (`send_all_clusters`) at its interval,
//! then records each report in [`LoadReports`] and logs it.

use std::time::Duration;

use envoy_types::pb::envoy::service::load_stats::v3::load_reporting_service_server::LoadReportingService;
use envoy_types::pb::envoy::service::load_stats::v3::{LoadStatsRequest, LoadStatsResponse};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use crate::loads::LoadReports;
use crate::translate::proto_duration;

pub(crate) struct LrsService {
    pub(crate) reports: LoadReports,
    pub(crate) interval: Duration,
    pub(crate) shutdown: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl LoadReportingService for LrsService {
    type StreamLoadStatsStream = ReceiverStream<Result<LoadStatsResponse, Status>>;

    async fn stream_load_stats(
        &self,
        request: Request<Streaming<LoadStatsRequest>>,
    ) -> Result<Response<Self::StreamLoadStatsStream>, Status> {
        let peer = request.remote_addr();
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let reports = self.reports.clone();
        let interval = self.interval;
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut node = None::<String>;
            loop {
                let message = tokio::select! {
                    message = inbound.message() => message,
                    () = stopping(&mut shutdown) => {
                        let _ = tx.send(Err(Status::unavailable("xDS server shutting down"))).await;
                        return;
                    }
                };
                let request = match message {
                    Ok(Some(request)) => request,
                    Ok(None) => return,
                    Err(status) => {
                        debug!(?peer, %status, "LRS stream ended");
                        return;
                    }
                };
                let id = match (&node, &request.node) {
                    (Some(id), _) => id.clone(),
                    (None, Some(first)) => {
                        // lrs.proto: the first request identifies the node; the server answers with what it wants.
                        let id = first.id.clone();
                        info!(node = %id, ?peer, "LRS stream opened");
                        node = Some(id.clone());
                        let response = LoadStatsResponse {
                            send_all_clusters: true,
                            load_reporting_interval: Some(proto_duration(interval)),
                            ..Default::default()
                        };
                        if tx.send(Ok(response)).await.is_err() {
                            return;
                        }
                        id
                    }
                    (None, None) => {
                        let _ = tx
                            .send(Err(Status::invalid_argument(
                                "the first LoadStatsRequest must carry the node",
                            )))
                            .await;
                        return;
                    }
                };
                for cluster in &request.cluster_stats {
                    let localities: Vec<String> = cluster
                        .upstream_locality_stats
                        .iter()
                        .map(|l| {
                            let name = l.locality.as_ref().map_or_else(String::new, |l| {
                                format!("{}/{}/{}", l.region, l.zone, l.sub_zone)
                            });
                            format!(
                                "{name}: ok={} err={} issued={} in_progress={}",
                                l.total_successful_requests,
                                l.total_error_requests,
                                l.total_issued_requests,
                                l.total_requests_in_progress
                            )
                        })
                        .collect();
                    info!(
                        node = %id,
                        cluster = %cluster.cluster_name,
                        service = %cluster.cluster_service_name,
                        dropped = cluster.total_dropped_requests,
                        localities = ?localities,
                        "load report"
                    );
                }
                reports.record(&id, &request.cluster_stats);
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Resolves once the server is shutting down (or its handle is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here rather than hold it across the select.
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}
