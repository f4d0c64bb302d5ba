//! One attempt: pick an endpoint, pass the circuit breaker, send on the endpoint's connection, classify the result.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use mesh_core::load::LocalityCounters;
use mesh_core::rng::RandomSource;
use mesh_core::route::RetryOn;
use tokio::time::Instant;
use tracing::Instrument;

use super::issued::IssuedAttempt;
use crate::body::{PendingAttempt, UpstreamBody, record_status};
use crate::cluster::{LeafCluster, OutcomeRecorder, PickContext, PickError, PickerTable};
use crate::endpoint::{Endpoint, Outstanding, ResponseStream, SendError, Sender};
use crate::error::{MeshError, SharedError, TransportFailure};
use crate::lb::{Outcome as OutlierOutcome, Permit};
use crate::load_report;
use crate::metrics::{
    AttemptEnd, AttemptLabels, AttemptSpanStart, AttemptStart, CallSpan, GrpcMessageBytes,
    MessageBytesTotal, Metrics, Outcome, SpanEnd, split_grpc_path,
};
use crate::retry;
use crate::status::{self, Code};

/// What an attempt needs from the request.
pub(super) struct AttemptSpec<'a> {
    pub(super) number: u32,
    pub(super) grpc: bool,
    pub(super) hash: Option<u64>,
    pub(super) avoid: &'a [Arc<Endpoint>],
    pub(super) retry_on: RetryOn,
    pub(super) per_try_timeout: Option<Duration>,
    pub(super) metrics: &'a dyn Metrics,
    /// The request's path.
    pub(super) method: &'a str,
    /// The call's deadline, for an attempt cut by it.
    pub(super) deadline: Option<Instant>,
    /// The tracer's span of the call.
    pub(super) call_span: Option<&'a dyn CallSpan>,
}

/// What an attempt holds until its response stream ends.
#[derive(Debug, Default)]
pub(super) struct Held {
    pub(super) permit: Option<Permit>,
    pub(super) outstanding: Option<Outstanding>,
    /// Set when the gRPC status is still to come (in trailers) and outlier detection wants it.
    pub(super) recorder: Option<OutcomeRecorder>,
    /// Set when the gRPC status is still to come: the attempt's metrics and span end with the call.
    pub(super) attempt: Option<Box<PendingAttempt>>,
    /// Set when the gRPC status is still to come and the cluster reports its load (gRFC A27).
    pub(super) load: Option<LocalityCounters>,
}

/// An attempt's result.
pub(super) struct AttemptResult {
    pub(super) result: Result<Response<ResponseStream>, MeshError>,
    /// The gRPC status in the response headers (trailers-only responses), read once.
    pub(super) header_code: Option<Code>,
    /// The endpoint of a failed exchange (a successful one's is in `held`).
    failed_endpoint: Option<Arc<Endpoint>>,
    pub(super) held: Held,
    pub(super) retryable: bool,
}

impl AttemptResult {
    fn failed(error: MeshError) -> Self {
        Self {
            result: Err(error),
            header_code: None,
            failed_endpoint: None,
            held: Held::default(),
            retryable: false,
        }
    }

    /// The endpoint the attempt went to, if it got that far (for retries to avoid).
    pub(super) fn endpoint(&self) -> Option<Arc<Endpoint>> {
        self.failed_endpoint.clone().or_else(|| {
            self.held
                .outstanding
                .as_ref()
                .map(|outstanding| Arc::clone(outstanding.endpoint()))
        })
    }
}

/// Runs one attempt of `request` on `leaf`.
pub(super) async fn run(
    leaf: &Arc<LeafCluster>,
    table: &PickerTable,
    spec: &AttemptSpec<'_>,
    mut request: Request<UpstreamBody>,
    rng: &mut impl RandomSource,
) -> AttemptResult {
    spec.metrics.attempt_started(&AttemptStart {
        cluster: leaf.name(),
        method: spec.method,
        grpc: spec.grpc,
        attempt: spec.number,
    });
    // One clock read serves the pick's latency estimates and the attempt's duration.
    let started = Instant::now();
    let context = PickContext {
        hash: spec.hash,
        avoid: spec.avoid,
        now: started.into_std(),
    };
    let picked = match table.pick(&context, rng) {
        Ok(picked) => picked,
        Err(error) => {
            if let PickError::Dropped(category) = &error {
                spec.metrics.dropped(leaf.name(), category);
                if let Some(load) = &table.list.load {
                    load.cluster.dropped(category);
                }
            }
            return AttemptResult::failed(pick_error(leaf.name(), error));
        }
    };
    let Some(endpoint) = table.list.endpoint(picked.slot) else {
        return AttemptResult::failed(pick_error(leaf.name(), table.no_healthy()));
    };
    // gRFC A32: every attempt counts against max_requests while it is in flight.
    let permit = match leaf.circuit().try_acquire() {
        Ok(permit) => permit,
        Err(overloaded) => {
            spec.metrics.circuit_breaker_rejected(leaf.name());
            return AttemptResult::failed(MeshError::Overloaded {
                cluster: Arc::clone(leaf.name()),
                overloaded,
            });
        }
    };
    // Made only when needed: an empty `Locality` is three reference counts on one static, which every thread
    // would share.
    let default_locality;
    let locality = match table
        .list
        .set
        .as_ref()
        .and_then(|set| set.localities.get(picked.locality))
    {
        Some(l) => &l.locality,
        None => {
            default_locality = mesh_core::locality::Locality::default();
            &default_locality
        }
    };
    let span = attempt_span(&request, spec, leaf.name(), locality, endpoint.label());
    // A request that must wait for a connection is pending (Envoy's max_pending_requests).
    let ready = endpoint.ready_sender();
    let pending = if ready.is_some() {
        None
    } else {
        match leaf.circuit().try_acquire_pending() {
            Ok(pending) => Some(pending),
            Err(overloaded) => {
                spec.metrics.circuit_breaker_rejected(leaf.name());
                return AttemptResult::failed(MeshError::Overloaded {
                    cluster: Arc::clone(leaf.name()),
                    overloaded,
                });
            }
        }
    };
    // The tracer writes its attempt span's context; without one, the propagator writes the `tracing` span's.
    let mut attempt_span = None;
    if let Some(call_span) = spec.call_span {
        // Standard methods clone without allocating.
        let http_method = request.method().clone();
        attempt_span = Some(call_span.start_attempt(
            &AttemptSpanStart {
                cluster: leaf.name(),
                locality,
                endpoint: endpoint.label(),
                attempt: spec.number,
                path: spec.method,
                http_method: &http_method,
                grpc: spec.grpc,
                started: started.into_std(),
            },
            request.headers_mut(),
        ));
    } else if let Some(propagator) = &leaf.runtime().options.propagator {
        propagator.inject(&span, request.headers_mut());
    }
    // gRFC A66: the request's message bytes are counted as the connection sends them.
    let sent_bytes = (spec.grpc && spec.metrics.records_message_sizes())
        .then(|| request.body_mut().count_sent());
    spec.metrics.attempt_issued(leaf.name(), locality);
    // gRFC A27: the attempt is issued (and in progress) now that it has an endpoint and passed the circuit breaker.
    let load = table.list.locality_load(picked.locality);
    if let Some(load) = load {
        load.issued();
    }
    let outstanding = Arc::clone(endpoint).start_request();
    let endpoint = outstanding.endpoint();
    let issued = IssuedAttempt::new(
        spec.metrics,
        AttemptLabels {
            cluster: leaf.name(),
            locality,
            endpoint: endpoint.label(),
            attempt: spec.number,
            method: spec.method,
            grpc: spec.grpc,
        },
        started,
        spec.deadline,
        sent_bytes,
        load,
    );
    // As for the request's span: no wrapper when nothing listens. Each arm makes the send future where it is
    // awaited: one first held in a variable keeps that variable's space in this state machine as well.
    let traced = !span.is_disabled();
    let timed_out = |timeout| MeshError::AttemptTimeout {
        cluster: Arc::clone(leaf.name()),
        timeout,
    };
    let result = match (spec.per_try_timeout, traced) {
        (Some(timeout), true) => tokio::time::timeout(
            timeout,
            send(endpoint, leaf.name(), request, ready, pending),
        )
        .instrument(span.clone())
        .await
        .unwrap_or_else(|_| Err(timed_out(timeout))),
        (Some(timeout), false) => tokio::time::timeout(
            timeout,
            send(endpoint, leaf.name(), request, ready, pending),
        )
        .await
        .unwrap_or_else(|_| Err(timed_out(timeout))),
        (None, true) => {
            send(endpoint, leaf.name(), request, ready, pending)
                .instrument(span.clone())
                .await
        }
        (None, false) => send(endpoint, leaf.name(), request, ready, pending).await,
    };
    let (labels, sent_bytes) = issued.sent();
    let finished = Instant::now();
    let elapsed = finished.saturating_duration_since(started);
    let record = |outcome| OutcomeRecorder::record_now(leaf, &table.list, picked.slot, outcome);
    // Sizes of an attempt that ends here: what was sent so far, nothing received (no response body was read).
    let sent = sent_bytes.as_ref().map(MessageBytesTotal::get);
    let ended =
        |outcome| AttemptEnd::new(outcome, elapsed).with_message_bytes(sent, sent.map(|_| 0));
    let mut held = Held {
        permit: Some(permit),
        outstanding: None,
        recorder: None,
        attempt: None,
        load: None,
    };
    let mut header_code = None;
    let retryable = match &result {
        Ok(response) => {
            let code = status::grpc_status(response.headers());
            header_code = code;
            let http_status = response.status().as_u16();
            endpoint.observe(
                elapsed,
                http_status >= 500 || code == Some(Code::Unavailable),
                finished.into_std(),
            );
            span.record(
                "status",
                tracing::field::display(StatusLabel(http_status, code)),
            );
            record_status(&span, code);
            if http_status >= 400 {
                span.record("otel.status_code", "error");
            }
            if spec.grpc && http_status == 200 && code.is_none() {
                // The status comes in trailers: metrics and span are completed with the call (gRFC A66), unless
                // nothing would take them (metrics without attempt events, no subscriber for the span).
                if spec.metrics.records_attempts() || traced || attempt_span.is_some() {
                    held.attempt = Some(Box::new(PendingAttempt {
                        cluster: Arc::clone(leaf.name()),
                        locality: locality.clone(),
                        endpoint: Arc::clone(endpoint.label()),
                        number: spec.number,
                        started,
                        span: span.clone(),
                        received: sent_bytes.is_some().then(GrpcMessageBytes::default),
                        sent: sent_bytes,
                        trace: attempt_span.take(),
                    }));
                }
                held.load = load.cloned();
            } else {
                if let Some(attempt_span) = attempt_span.take() {
                    attempt_span.end(
                        SpanEnd::Response {
                            http_status,
                            grpc_status: code,
                        },
                        finished.into_std(),
                    );
                }
                let outcome = Outcome::new(http_status, code);
                spec.metrics.attempt_ended(&labels, &ended(Some(outcome)));
                if let Some(load) = load {
                    load.finished(load_report::succeeded(Some(outcome)));
                }
            }
            // gRFC A50 / Envoy: the outcome is known now unless a gRPC status is still to come in trailers.
            match (spec.grpc, http_status, code) {
                (true, 200, None) => {
                    held.recorder = OutcomeRecorder::new(leaf, table, picked.slot);
                }
                (true, 200, Some(code)) => {
                    record(OutlierOutcome::from_grpc_code(code.as_u32()));
                }
                _ => record(OutlierOutcome::from_http_status(http_status)),
            }
            let code = code.or_else(|| {
                (spec.grpc && http_status != 200).then(|| Code::from_http_status(http_status))
            });
            retry::retries_response(spec.retry_on, spec.grpc, http_status, code)
        }
        Err(error) => {
            endpoint.observe(elapsed, true, finished.into_std());
            span.record("status", tracing::field::display(error));
            span.record("otel.status_code", "error");
            if let Some(attempt_span) = attempt_span.take() {
                attempt_span.end(
                    SpanEnd::Failed {
                        error,
                        grpc_status: None,
                    },
                    finished.into_std(),
                );
            }
            spec.metrics.attempt_ended(&labels, &ended(None));
            if let Some(load) = load {
                load.finished(false);
            }
            record(OutlierOutcome::connect_failure());
            match error {
                MeshError::AttemptTimeout { .. } => {
                    retry::retries_timeout(spec.retry_on, spec.grpc)
                }
                MeshError::Transport { failure, .. } => {
                    retry::retries_failure(spec.retry_on, spec.grpc, *failure)
                }
                _ => false,
            }
        }
    };
    let failed_endpoint = if result.is_err() {
        held = Held::default();
        Some(Arc::clone(endpoint))
    } else {
        held.outstanding = Some(outstanding);
        None
    };
    AttemptResult {
        result,
        header_code,
        failed_endpoint,
        held,
        retryable,
    }
}

/// The attempt's span: a client span (OpenTelemetry semantic conventions for RPC), child of the call's span; its
/// context is what the server sees in `traceparent`. Out of line, as the call's span (see `call::request_span`).
#[inline(never)]
fn attempt_span(
    request: &Request<UpstreamBody>,
    spec: &AttemptSpec<'_>,
    cluster: &Arc<str>,
    locality: &mesh_core::locality::Locality,
    endpoint: &Arc<str>,
) -> tracing::Span {
    // Field values are computed only when a subscriber takes the span.
    let rpc = || split_grpc_path(spec.method).filter(|_| spec.grpc);
    tracing::debug_span!(
        "mesh.attempt",
        otel.name = rpc().map_or(request.method().as_str(), |_| spec.method.trim_start_matches('/')),
        otel.kind = "client",
        rpc.system = rpc().map(|_| "grpc"),
        rpc.service = rpc().map(|(service, _)| service),
        rpc.method = rpc().map(|(_, name)| name),
        rpc.grpc.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        attempt = spec.number,
        cluster = %cluster,
        locality = %locality,
        endpoint = %endpoint,
        status = tracing::field::Empty,
    )
}

async fn send(
    endpoint: &Endpoint,
    cluster: &Arc<str>,
    request: Request<UpstreamBody>,
    ready: Option<Sender>,
    pending: Option<Permit>,
) -> Result<Response<ResponseStream>, MeshError> {
    let transport = |failure, source: SharedError| MeshError::Transport {
        cluster: Arc::clone(cluster),
        endpoint: Arc::clone(endpoint.label()),
        failure,
        source,
    };
    let sender = match ready {
        Some(sender) => sender,
        None => wait_for_sender(endpoint)
            .await
            .map_err(|source| transport(TransportFailure::Connect, source))?,
    };
    drop(pending);
    match sender.send(request).await {
        Ok(response) => Ok(response),
        // The connection was going away before the request went out: it goes out as it is on the next one.
        Err(SendError {
            unsent: Some(request),
            ..
        }) => resend(endpoint, *request)
            .await
            .map_err(|(failure, source)| transport(failure, source)),
        Err(error) => Err(transport(error.failure, Arc::new(error.source))),
    }
}

type Resend<'a> = Pin<
    Box<
        dyn Future<Output = Result<Response<ResponseStream>, (TransportFailure, SharedError)>>
            + Send
            + 'a,
    >,
>;

/// A request the endpoint's connection refused unsent, on the connection made next (once: a second refusal is
/// the attempt's failure). Boxed and out of line: rare.
#[cold]
#[inline(never)]
fn resend(endpoint: &Endpoint, request: Request<UpstreamBody>) -> Resend<'_> {
    Box::pin(async move {
        let sender = endpoint
            .sender()
            .await
            .map_err(|source| (TransportFailure::Connect, source))?;
        sender
            .send(request)
            .await
            .map_err(|error| (error.failure, Arc::new(error.source) as SharedError))
    })
}

/// Waiting for a connection: boxed, so that the code polling it is not laid out in the middle of the request's hot
/// path (see `call::wait_for_state`).
#[cold]
#[inline(never)]
fn wait_for_sender(
    endpoint: &Endpoint,
) -> Pin<Box<dyn Future<Output = Result<Sender, SharedError>> + Send + '_>> {
    Box::pin(endpoint.sender())
}

fn pick_error(cluster: &Arc<str>, error: PickError) -> MeshError {
    let cluster = Arc::clone(cluster);
    match error {
        PickError::Dropped(category) => MeshError::Dropped { cluster, category },
        PickError::NoEndpoints(note) => MeshError::NoEndpoints { cluster, note },
        PickError::NoHealthy(counts, last_connect_error) => MeshError::NoHealthyEndpoints {
            cluster,
            counts,
            last_connect_error,
        },
    }
}

/// `200/OK`-style label for spans.
struct StatusLabel(u16, Option<Code>);

impl std::fmt::Display for StatusLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(code) => write!(f, "{}/{code}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}
