//! One LRS stream to one server, kept open (reconnecting with backoff) while the worker runs: a thin loop around
//! [`LrsState`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::load_stats::v3::load_reporting_service_client::LoadReportingServiceClient;
use mesh_core::load::LoadStore;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::state::LrsState;
use crate::client::Connector;

/// The first reconnection delay; it doubles up to [`MAX_BACKOFF`] and resets once a stream got a response.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs the LRS stream to `server_uri` for the clusters in `ours` until aborted.
pub(super) async fn run(
    server_uri: String,
    connector: Option<Connector>,
    mut state: LrsState,
    store: LoadStore,
    ours: watch::Receiver<BTreeSet<Arc<str>>>,
) {
    let mut backoff = INITIAL_BACKOFF;
    loop {
        match stream(&server_uri, connector.clone(), &mut state, &store, &ours).await {
            Ok(()) => backoff = INITIAL_BACKOFF,
            Err(error) => tracing::debug!(server = %server_uri, %error, "LRS stream failed"),
        }
        state.disconnected();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One stream; `Ok` when it ended after the server had answered (so backoff starts over).
async fn stream(
    server_uri: &str,
    connector: Option<Connector>,
    state: &mut LrsState,
    store: &LoadStore,
    ours: &watch::Receiver<BTreeSet<Arc<str>>>,
) -> Result<(), String> {
    let channel = crate::client::connect(server_uri, connector).await?;
    let mut client = LoadReportingServiceClient::new(channel);
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(state.connected())
        .map_err(|_| "LRS request channel closed".to_owned())?;
    let mut inbound = client
        .stream_load_stats(UnboundedReceiverStream::new(rx))
        .await
        .map_err(|status| format!("LRS call failed: {status}"))?
        .into_inner();
    let mut answered = false;
    loop {
        let deadline = state.next_deadline();
        tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(response)) => {
                    answered = true;
                    tracing::debug!(
                        server = %server_uri,
                        send_all_clusters = response.send_all_clusters,
                        clusters = ?response.clusters,
                        "LRS: the server asked for load reports"
                    );
                    state.response(&response, Instant::now());
                }
                Ok(None) if answered => return Ok(()),
                Ok(None) => return Err("the server closed the LRS stream".to_owned()),
                Err(status) if answered => {
                    tracing::debug!(server = %server_uri, %status, "LRS stream ended");
                    return Ok(());
                }
                Err(status) => return Err(format!("LRS stream error: {status}")),
            },
            () = sleep_until(deadline) => {
                let mine = ours.borrow().clone();
                if let Some(report) = state.tick(Instant::now(), store, &mine) {
                    tracing::trace!(server = %server_uri, clusters = report.cluster_stats.len(), "LRS report");
                    if tx.send(report).is_err() {
                        return Err("LRS request channel closed".to_owned());
                    }
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
