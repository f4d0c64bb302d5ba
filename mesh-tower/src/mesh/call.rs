//! One request, end to end: wait for configuration if there is none yet, route, inject faults, then attempts with
//! retries (gRFC A44) under the request's deadline (gRFC A31).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Request, Response};
use http_body::Body;
use mesh_core::route::RetryPolicy;
use tokio::time::Instant;
use tracing::Instrument;

use super::attempt::{self, AttemptResult, AttemptSpec};
use super::request::attempt_request;
use super::response::error_response;
use super::{ConfigState, RoutingState, Shared};

use crate::body::{
    CallGuard, CallerBody, Peeked, ReplayBody, ResponseBody, Retryable, UpstreamBody, peek_whole,
};
use crate::endpoint::Endpoint;
use crate::error::{MeshError, TransportFailure};
use crate::fault;
use crate::lb::{RequestGuard, RetryGuard, retry_backoff};
use crate::metrics::{
    CallLabels, CallSpan, CallSpanStart, Metrics, Outcome, SpanEnd, split_grpc_path,
};
use crate::router::{self, Decision, RequestFacts};
use crate::runtime::RequestRng;
use crate::status;
use crate::timeout;

/// Serves one request; failures become responses.
pub(super) async fn handle(
    shared: Arc<Shared>,
    request: Request<CallerBody>,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let grpc = status::is_grpc_request(request.headers());
    let header_timeout = if grpc {
        timeout::grpc_timeout(request.headers())
    } else {
        None
    };
    let state = match ready_state(&shared, header_timeout, started) {
        Ok(state) => state,
        Err(wait) => match wait.await {
            Ok(state) => state,
            Err(error) => return error_response(error, grpc),
        },
    };
    let ConfigState::Ready(routing) = &*state else {
        return error_response(
            MeshError::NoConfig {
                waited: started.elapsed(),
            },
            grpc,
        );
    };
    let mut rng = shared.runtime.request_rng();
    let facts = RequestFacts {
        path: request.uri().path(),
        headers: request.headers(),
        grpc,
        header_timeout,
    };
    let decision = match router::route(routing, facts, &mut rng) {
        Ok(decision) => decision,
        Err(error) => return error_response(error, grpc),
    };
    let cluster = decision.target.name();
    let metrics = &shared.runtime.options.metrics;
    // A refcount bump at most (tonic's paths are static): the request itself moves on.
    let path = request.uri().path_and_query().cloned();
    let method = path.as_ref().map_or("/", PathAndQuery::path);
    let labels = CallLabels::new(cluster, method, grpc);
    // The call's own metrics when the implementation resolves any (its method's series), for all its events.
    let call_metrics = metrics.for_call(&labels);
    let metrics = call_metrics.as_ref().unwrap_or(metrics);
    metrics.call_started(&labels);
    // The tracer's span (OpenTelemetry's): sampled or not, it is the parent of the attempts' trace context.
    let call_span = shared.runtime.options.tracer.as_ref().map(|tracer| {
        tracer.start_call(&CallSpanStart {
            cluster,
            route: decision.route.name.as_deref().unwrap_or(""),
            path: method,
            http_method: request.method(),
            grpc,
            started: started.into_std(),
        })
    });
    let span = request_span(&request, method, cluster, &decision, grpc);
    let deadline = decision.timeout.map(|timeout| (started + timeout, timeout));
    let exchange = Exchange {
        shared: &shared,
        metrics,
        routing,
        decision: &decision,
        grpc,
        span: &span,
        call_span: call_span.as_deref(),
        path: path.as_ref(),
        method,
        deadline,
        started,
    };
    // Without a subscriber for the span, the request's state is not wrapped to enter it: each wrapper moves the
    // whole state (kilobytes) once more. Each arm makes the exchange's future in place, in the expression it is
    // awaited by: a future first held in a variable keeps that variable's space in this state machine as well.
    let traced = !span.is_disabled();
    let result = match deadline {
        Some((at, timeout)) if traced => {
            tokio::time::timeout_at(at, exchange.run(request, &mut rng))
                .instrument(span.clone())
                .await
                .unwrap_or(Err(MeshError::DeadlineExceeded { timeout }))
        }
        Some((at, timeout)) => tokio::time::timeout_at(at, exchange.run(request, &mut rng))
            .await
            .unwrap_or(Err(MeshError::DeadlineExceeded { timeout })),
        None if traced => {
            exchange
                .run(request, &mut rng)
                .instrument(span.clone())
                .await
        }
        None => exchange.run(request, &mut rng).await,
    };
    // The response (with the call's bookkeeping, some hundreds of bytes) is made here, at the last level of the
    // request's futures: each level it would cross moves it once more.
    match result.and_then(|exchanged| exchange.finish(exchanged)) {
        Ok(mut response) => {
            span.record("status", response.status().as_u16());
            if let Some(call_span) = call_span {
                response.body_mut().attach_call_span(call_span);
            }
            response
        }
        Err(error) => {
            let ended = Instant::now();
            if let Some(call_span) = call_span {
                call_span.end(
                    SpanEnd::Failed {
                        error: &error,
                        grpc_status: grpc.then(|| error.code()),
                    },
                    ended.into_std(),
                );
            }
            let duration = ended.saturating_duration_since(started);
            failed(error, &span, &labels, metrics.as_ref(), duration, grpc)
        }
    }
}

/// A failed call: its span and metrics, and the failure as a response.
#[inline(never)]
fn failed(
    error: MeshError,
    span: &tracing::Span,
    labels: &CallLabels<'_>,
    metrics: &dyn crate::metrics::Metrics,
    duration: Duration,
    grpc: bool,
) -> Response<ResponseBody> {
    span.record("status", tracing::field::display(&error));
    span.record("otel.status_code", "error");
    if grpc {
        span.record("rpc.grpc.status_code", error.code().as_u32());
    }
    tracing::debug!(parent: span, %error, "request failed");
    let grpc_status = grpc.then(|| error.code());
    metrics.call_finished(
        labels,
        Outcome::new(error.http_status().as_u16(), grpc_status),
        duration,
    );
    error_response(error, grpc)
}

/// What an exchange ends with: its last attempt, and the request's hold on the retry budget.
struct Exchanged {
    attempt: AttemptResult,
    budget: Option<RequestGuard>,
}

/// The call's `tracing` span (OpenTelemetry semantic conventions for RPC spans: named `service/method`, `rpc.*`
/// attributes), at DEBUG: OpenTelemetry's spans come from the tracer, so a subscriber at INFO builds nothing per
/// call. Out of line: the code that fills a span's fields is large, and inline it would spread the request's hot
/// path over more instruction-cache lines even when no subscriber takes the span.
#[inline(never)]
fn request_span(
    request: &Request<CallerBody>,
    method: &str,
    cluster: &Arc<str>,
    decision: &Decision<'_>,
    grpc: bool,
) -> tracing::Span {
    // Field values are computed only when a subscriber takes the span.
    let rpc = || split_grpc_path(method).filter(|_| grpc);
    tracing::debug_span!(
        "mesh.request",
        otel.name = rpc().map_or(request.method().as_str(), |_| method.trim_start_matches('/')),
        rpc.system = rpc().map(|_| "grpc"),
        rpc.service = rpc().map(|(service, _)| service),
        rpc.method = rpc().map(|(_, name)| name),
        cluster = %cluster,
        route = decision.route.name.as_deref().unwrap_or(""),
        grpc,
        status = tracing::field::Empty,
        rpc.grpc.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// The routing state: the current one when the service is configured (one atomic load), else the wait for the
/// first configuration.
fn ready_state(
    shared: &Arc<Shared>,
    header_timeout: Option<Duration>,
    started: Instant,
) -> Result<Arc<ConfigState>, WaitForState> {
    // The common case, configured, without registering a waiter: `Notify::notified().enable()` takes the
    // notifier's lock (twice with the drop), shared by every request of the service.
    let state = shared.state.load_full();
    if let ConfigState::Ready(_) = &*state {
        return Ok(state);
    }
    Err(wait_for_state(Arc::clone(shared), header_timeout, started))
}

/// Waiting for the first configuration: boxed, out of the request's state machine, so that the code polling it is
/// not laid out in the middle of the request's hot path.
type WaitForState = Pin<Box<dyn Future<Output = Result<Arc<ConfigState>, MeshError>> + Send>>;

#[cold]
#[inline(never)]
fn wait_for_state(
    shared: Arc<Shared>,
    header_timeout: Option<Duration>,
    started: Instant,
) -> WaitForState {
    Box::pin(async move {
        let wait = shared.runtime.options.initial_config_timeout;
        let wait = match header_timeout {
            Some(header) => wait.min(header),
            None => wait,
        };
        let give_up = started + wait;
        loop {
            let changed = shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let state = shared.state.load_full();
            match &*state {
                ConfigState::Ready(_) => return Ok(state),
                ConfigState::Failed(reason) => {
                    return Err(MeshError::ConfigFailed {
                        reason: Arc::clone(reason),
                    });
                }
                ConfigState::Waiting => {}
            }
            if tokio::time::timeout_at(give_up, changed).await.is_err() {
                return Err(MeshError::NoConfig {
                    waited: started.elapsed(),
                });
            }
        }
    })
}

/// A sleep on the rare paths (an injected delay, a retry's backoff), boxed for the same reason as
/// [`wait_for_state`].
#[cold]
#[inline(never)]
fn cold_sleep(duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(tokio::time::sleep(duration))
}

/// The caller's body, as each attempt gets it.
enum Source {
    /// Sent once.
    Once(Option<UpstreamBody>),
    /// Replayable.
    Replay(ReplayBody),
    /// Whole before the first attempt: each attempt sends the same bytes.
    Complete(Bytes),
}

impl Source {
    fn next(&mut self) -> UpstreamBody {
        match self {
            Self::Once(body) => body.take().unwrap_or(UpstreamBody::complete(None)),
            Self::Replay(body) => UpstreamBody::replay(body.replay()),
            Self::Complete(data) => {
                UpstreamBody::complete(Some(data.clone()).filter(|data| !data.is_empty()))
            }
        }
    }

    fn is_replayable(&self) -> bool {
        match self {
            Self::Once(body) => body.is_some(),
            Self::Replay(body) => body.is_replayable(),
            Self::Complete(_) => true,
        }
    }
}

struct Exchange<'a> {
    shared: &'a Shared,
    /// The call's metrics.
    metrics: &'a Arc<dyn Metrics>,
    routing: &'a RoutingState,
    decision: &'a Decision<'a>,
    grpc: bool,
    /// The call's span, kept open by the response stream.
    span: &'a tracing::Span,
    /// The tracer's span of the call, the attempts' parent.
    call_span: Option<&'a dyn CallSpan>,
    /// The request's path, kept for the end-of-call metrics.
    path: Option<&'a PathAndQuery>,
    /// The request's path.
    method: &'a str,
    deadline: Option<(Instant, Duration)>,
    started: Instant,
}

impl Exchange<'_> {
    async fn run(
        &self,
        request: Request<CallerBody>,
        rng: &mut RequestRng,
    ) -> Result<Exchanged, MeshError> {
        let cluster = self.decision.target.name();
        let metrics = &**self.metrics;
        let (mut parts, body) = request.into_parts();
        // gRFC A33: delay, then abort, before anything is sent.
        if let Some(config) = self.decision.fault {
            let plan = fault::plan(config, &parts.headers, self.grpc, &self.shared.faults, rng);
            if let Some(delay) = plan.delay {
                metrics.fault_injected(cluster, false);
                cold_sleep(delay).await;
            }
            if let Some(abort) = plan.abort {
                metrics.fault_injected(cluster, true);
                return Err(abort);
            }
        }
        let policy = self
            .decision
            .retry
            .filter(|policy| policy.max_attempts() > 1 && !policy.retry_on.is_empty());
        let max_attempts = policy.map_or(1, RetryPolicy::max_attempts);
        let limit = policy.map(|policy| policy.max_buffered_body_bytes);
        let mut source = match (body, limit) {
            (CallerBody::Whole(data), Some(limit)) if data.len() <= limit => Source::Complete(data),
            (CallerBody::Streaming(body), Some(limit))
                if body.size_hint().lower() <= u64::try_from(limit).unwrap_or(u64::MAX) =>
            {
                match Retryable::new(body, limit) {
                    Retryable::Complete(data) => Source::Complete(data),
                    Retryable::Replay(body) => Source::Replay(body),
                }
            }
            // Not retried (no policy, or more than the policy buffers): sent once.
            (CallerBody::Whole(data), _) => Source::Once(Some(UpstreamBody::complete(
                Some(data).filter(|data| !data.is_empty()),
            ))),
            // A body whole at hand goes out with the request's headers, in the caller's task.
            (CallerBody::Streaming(body), _) => Source::Once(Some(match peek_whole(body) {
                Peeked::Whole(data) => {
                    UpstreamBody::complete(Some(data).filter(|data| !data.is_empty()))
                }
                Peeked::Streaming(body) => UpstreamBody::direct(body),
            })),
        };
        let mut tried: Vec<Arc<Endpoint>> = Vec::new();
        let mut budget: Option<RequestGuard> = None;
        let mut _retrying: Option<RetryGuard> = None;
        let mut number: u32 = 0;
        loop {
            let (leaf, table) = self.decision.target.select()?;
            if budget.is_none() {
                budget = Some(leaf.budget().start_request());
            }
            let last = number + 1 >= max_attempts;
            let remaining = self
                .deadline
                .map(|(at, _)| at.saturating_duration_since(Instant::now()));
            let request = attempt_request(
                &mut parts,
                last,
                number,
                self.routing.authority.as_ref(),
                remaining,
                self.grpc,
                source.next(),
            );
            let spec = AttemptSpec {
                number,
                grpc: self.grpc,
                hash: self.decision.hash,
                avoid: &tried,
                retry_on: policy.map_or(mesh_core::route::RetryOn::NONE, |p| p.retry_on),
                per_try_timeout: policy.and_then(|p| p.per_try_timeout),
                metrics,
                method: self.method,
                deadline: self.deadline.map(|(at, _)| at),
                call_span: self.call_span,
            };
            let attempt = attempt::run(leaf, &table, &spec, request, rng).await;
            if let Some(policy) =
                policy.filter(|_| attempt.retryable && !last && source.is_replayable())
            {
                leaf.budget().set_config(
                    policy
                        .budget
                        .as_ref()
                        .unwrap_or(&self.shared.runtime.options.default_retry_budget),
                );
                // The previous retry's slot is released first, so one call never holds two.
                _retrying = None;
                // The request never reached a server (connect failure, refused stream): retrying it costs the
                // backends nothing, so, like gRPC's transparent retries, it does not draw on the retry budget.
                let unsent = matches!(
                    &attempt.result,
                    Err(MeshError::Transport {
                        failure: TransportFailure::Connect | TransportFailure::RefusedStream,
                        ..
                    })
                );
                let slot = if unsent {
                    Some(None)
                } else {
                    leaf.budget().try_start_retry().map(Some)
                };
                if let Some(guard) = slot {
                    _retrying = guard;
                    metrics.retry(leaf.name());
                    if let Some(endpoint) = attempt.endpoint() {
                        tried.push(endpoint);
                    }
                    // Release the failed attempt (its permit and stream) before waiting.
                    drop(attempt.result);
                    drop(attempt.held);
                    number += 1;
                    cold_sleep(retry_backoff(number, &policy.backoff, rng)).await;
                    continue;
                }
                metrics.retry_budget_exhausted(leaf.name());
                tracing::debug!(cluster = %leaf.name(), "retry budget exhausted");
            }
            return Ok(Exchanged { attempt, budget });
        }
    }

    /// The last attempt's result as the caller's response.
    fn finish(&self, exchanged: Exchanged) -> Result<Response<ResponseBody>, MeshError> {
        let Exchanged { attempt, budget } = exchanged;
        let header_code = attempt.header_code;
        let response = attempt.result?;
        let (parts, body) = response.into_parts();
        let guard = CallGuard {
            grpc: self.grpc,
            cluster: Arc::clone(self.decision.target.name()),
            path: self.path.cloned(),
            metrics: Arc::clone(self.metrics),
            started: self.started,
            http_status: parts.status.as_u16(),
            header_code,
            recorder: attempt.held.recorder,
            permit: attempt.held.permit,
            outstanding: attempt.held.outstanding,
            budget,
            attempt: attempt.held.attempt,
            load: attempt.held.load,
            span: self.span.clone(),
            call_span: None,
            final_code: None,
            finished: None,
        };
        let body = ResponseBody::upstream(body, self.deadline, Some(guard));
        Ok(Response::from_parts(parts, body))
    }
}
