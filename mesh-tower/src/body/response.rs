//! The response body: an endpoint's stream with the call's bookkeeping attached, or a locally made answer.
//!
//! An upstream response stream keeps the request's deadline (gRFC A31 covers the whole stream, not just the
//! headers) and a [`CallGuard`] that holds the circuit-breaker permit and the endpoint's outstanding-request count
//! until the stream ends, then reports the call's final status to outlier detection and metrics. A gRPC stream cut
//! by its deadline ends with `grpc-status: 4` trailers; a plain HTTP one ends with an error.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use mesh_core::load::LocalityCounters;
use mesh_core::locality::Locality;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::BoxError;
use crate::cluster::OutcomeRecorder;
use crate::endpoint::ResponseStream;
use crate::error::MeshError;
use crate::lb::{Permit, RequestGuard};
use crate::metrics::{
    AttemptEnd, AttemptLabels, AttemptSpan, CallLabels, CallSpan, GrpcMessageBytes,
    MessageBytesTotal, Metrics, Outcome, SpanEnd,
};
use crate::status::{self, Code};

/// The last attempt when its gRPC status is still to come (in trailers): its metrics and span are completed when
/// the call ends, so that they carry the status and cover the whole stream (gRFC A66's attempt duration).
#[derive(Debug)]
pub(crate) struct PendingAttempt {
    pub(crate) cluster: Arc<str>,
    pub(crate) locality: Locality,
    pub(crate) endpoint: Arc<str>,
    pub(crate) number: u32,
    pub(crate) started: Instant,
    pub(crate) span: tracing::Span,
    /// The request's message bytes (gRFC A66), when measured.
    pub(crate) sent: Option<MessageBytesTotal>,
    /// The response's message bytes, counted as the stream passes, when measured.
    pub(crate) received: Option<GrpcMessageBytes>,
    /// The tracer's span of the attempt.
    pub(crate) trace: Option<Box<dyn AttemptSpan>>,
}

/// The end-of-call bookkeeping of one request: released when the response stream ends or is dropped.
pub(crate) struct CallGuard {
    pub(crate) grpc: bool,
    pub(crate) cluster: Arc<str>,
    /// The request's path (gRPC method), for metrics labels.
    pub(crate) path: Option<http::uri::PathAndQuery>,
    pub(crate) metrics: Arc<dyn Metrics>,
    pub(crate) started: Instant,
    pub(crate) http_status: u16,
    /// The gRPC status the response headers carried (trailers-only responses).
    pub(crate) header_code: Option<Code>,
    /// Where the final gRPC status goes for outlier detection (gRPC streams that were not trailers-only).
    pub(crate) recorder: Option<OutcomeRecorder>,
    pub(crate) permit: Option<Permit>,
    pub(crate) outstanding: Option<crate::endpoint::Outstanding>,
    pub(crate) budget: Option<RequestGuard>,
    /// The last attempt, when its status is still to come and metrics or a span take it. Boxed: it is rare (only
    /// with telemetry), and the response that carries this guard is moved several times on its way to the caller.
    pub(crate) attempt: Option<Box<PendingAttempt>>,
    /// The last attempt's load-report counters, when its status is still to come and its cluster reports load.
    pub(crate) load: Option<LocalityCounters>,
    /// The call's span, kept open until the stream ends.
    pub(crate) span: tracing::Span,
    /// The tracer's span of the call, given once the response is made ([`ResponseBody::attach_call_span`]).
    pub(crate) call_span: Option<Box<dyn CallSpan>>,
    /// The gRPC status the call finished with, for a call span given after the end.
    pub(crate) final_code: Option<Code>,
    /// When the call finished (one clock reading: its duration's end and its spans' ends), once it has.
    pub(crate) finished: Option<Instant>,
}

impl CallGuard {
    /// The call ended with `code` (gRPC) or with its HTTP status.
    pub(crate) fn finish(&mut self, code: Option<Code>) {
        if self.finished.is_some() {
            return;
        }
        let now = Instant::now();
        self.finished = Some(now);
        let code = code.or(self.header_code);
        if let Some(recorder) = self.recorder.take() {
            let code = code.unwrap_or(Code::Internal);
            recorder.record(crate::lb::Outcome::from_grpc_code(code.as_u32()));
        }
        let grpc_status = if self.grpc { code } else { None };
        let method = self
            .path
            .as_ref()
            .map_or("/", http::uri::PathAndQuery::path);
        let ended = SpanEnd::Response {
            http_status: self.http_status,
            grpc_status,
        };
        if let Some(attempt) = self.attempt.take() {
            record_status(&attempt.span, grpc_status);
            if let Some(trace) = attempt.trace {
                trace.end(ended, now.into_std());
            }
            let labels = AttemptLabels {
                cluster: &attempt.cluster,
                locality: &attempt.locality,
                endpoint: &attempt.endpoint,
                attempt: attempt.number,
                method,
                grpc: self.grpc,
            };
            let end = AttemptEnd::new(
                Some(Outcome::new(self.http_status, grpc_status)),
                now.saturating_duration_since(attempt.started),
            )
            .with_message_bytes(
                attempt.sent.as_ref().map(MessageBytesTotal::get),
                attempt.received.as_ref().map(GrpcMessageBytes::total),
            );
            self.metrics.attempt_ended(&labels, &end);
        }
        if let Some(load) = self.load.take() {
            load.finished(crate::load_report::succeeded(Some(Outcome::new(
                self.http_status,
                grpc_status,
            ))));
        }
        record_status(&self.span, grpc_status);
        self.span = tracing::Span::none();
        self.final_code = grpc_status;
        if let Some(call_span) = self.call_span.take() {
            call_span.end(ended, now.into_std());
        }
        self.metrics.call_finished(
            &CallLabels::new(&self.cluster, method, self.grpc),
            Outcome::new(self.http_status, grpc_status),
            now.saturating_duration_since(self.started),
        );
        self.permit = None;
        self.outstanding = None;
        self.budget = None;
    }
}

impl CallGuard {
    /// Hands the call's tracer span to the guard, to end with the call; a call already ended ends it now.
    fn attach_call_span(&mut self, call_span: Box<dyn CallSpan>) {
        if let Some(finished) = self.finished {
            call_span.end(
                SpanEnd::Response {
                    http_status: self.http_status,
                    grpc_status: self.final_code,
                },
                finished.into_std(),
            );
        } else {
            self.call_span = Some(call_span);
        }
    }
}

/// Records a final gRPC status on a span (OpenTelemetry semantic conventions: not OK is an error).
pub(crate) fn record_status(span: &tracing::Span, code: Option<Code>) {
    if let Some(code) = code {
        span.record("rpc.grpc.status_code", code.as_u32());
        if code != Code::Ok {
            span.record("otel.status_code", "error");
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.finished.is_none() {
            // The caller dropped the stream before its end: a cancellation, not the endpoint's fault.
            self.recorder = None;
            self.finish(Some(Code::Cancelled));
        }
    }
}

impl fmt::Debug for CallGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallGuard")
            .field("cluster", &self.cluster)
            .field("grpc", &self.grpc)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The body of a [`MeshService`](crate::MeshService) response; see the [module docs](self).
    pub struct ResponseBody {
        #[pin]
        inner: Inner,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner {
        Local {
            data: Option<Bytes>,
        },
        Upstream {
            #[pin]
            body: ResponseStream,
            #[pin]
            deadline: Option<Sleep>,
            timeout: Duration,
            guard: Option<CallGuard>,
            done: bool,
        },
    }
}

impl ResponseBody {
    /// A body made here (an error text, or nothing).
    pub(crate) fn local(data: Option<Bytes>) -> Self {
        Self {
            inner: Inner::Local {
                data: data.filter(|d| !d.is_empty()),
            },
        }
    }

    /// An endpoint's stream, cut at `deadline` (with `timeout` for the message), releasing `guard` at its end.
    pub(crate) fn upstream(
        body: ResponseStream,
        deadline: Option<(Instant, Duration)>,
        mut guard: Option<CallGuard>,
    ) -> Self {
        let done = body.is_end_stream();
        let (deadline, timeout) = match deadline {
            Some((at, timeout)) if !done => (Some(tokio::time::sleep_until(at)), timeout),
            _ => (None, Duration::ZERO),
        };
        if done {
            // Nothing will be polled: the call ends now, with the status the headers carried.
            if let Some(guard) = guard.as_mut() {
                guard.finish(None);
            }
        }
        Self {
            inner: Inner::Upstream {
                body,
                deadline,
                timeout,
                guard,
                done,
            },
        }
    }
}

impl ResponseBody {
    /// Gives the call's tracer span to the stream, which ends it with the call.
    pub(crate) fn attach_call_span(&mut self, call_span: Box<dyn CallSpan>) {
        match &mut self.inner {
            Inner::Upstream {
                guard: Some(guard), ..
            } => guard.attach_call_span(call_span),
            // Nothing to end it with: it ends without a status as it is dropped.
            _ => drop(call_span),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().inner.project() {
            InnerProj::Local { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            InnerProj::Upstream {
                body,
                deadline,
                timeout,
                guard,
                done,
            } => {
                if *done {
                    return Poll::Ready(None);
                }
                if let Some(deadline) = deadline.as_pin_mut()
                    && deadline.poll(cx).is_ready()
                {
                    *done = true;
                    let error = MeshError::DeadlineExceeded { timeout: *timeout };
                    let grpc = guard.as_ref().is_some_and(|g| g.grpc);
                    if let Some(guard) = guard.as_mut() {
                        guard.finish(Some(Code::DeadlineExceeded));
                    }
                    return Poll::Ready(Some(if grpc {
                        Ok(Frame::trailers(status_trailers(&error)))
                    } else {
                        Err(Box::new(error))
                    }));
                }
                match body.poll_frame(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(None) => {
                        *done = true;
                        if let Some(guard) = guard.as_mut() {
                            guard.finish(None);
                        }
                        Poll::Ready(None)
                    }
                    Poll::Ready(Some(Err(error))) => {
                        *done = true;
                        if let Some(guard) = guard.as_mut() {
                            guard.finish(Some(Code::Unavailable));
                        }
                        Poll::Ready(Some(Err(Box::new(error))))
                    }
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            if let Some(received) = guard
                                .as_mut()
                                .and_then(|guard| guard.attempt.as_mut())
                                .and_then(|attempt| attempt.received.as_mut())
                            {
                                received.feed(data);
                            }
                        } else if let Some(trailers) = frame.trailers_ref() {
                            let code = status::grpc_status(trailers);
                            if let Some(guard) = guard.as_mut() {
                                guard.finish(code);
                            }
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Local { data } => data.is_none(),
            Inner::Upstream { body, done, .. } => *done || body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Local { data } => SizeHint::with_exact(
                data.as_ref()
                    .map_or(0, |d| u64::try_from(d.len()).unwrap_or(u64::MAX)),
            ),
            Inner::Upstream { body, .. } => body.size_hint(),
        }
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Local { data } => f
                .debug_struct("ResponseBody::Local")
                .field("data", data)
                .finish(),
            Inner::Upstream { guard, done, .. } => f
                .debug_struct("ResponseBody::Upstream")
                .field("guard", guard)
                .field("done", done)
                .finish_non_exhaustive(),
        }
    }
}

/// Trailers (or trailers-only headers) carrying `error` as a gRPC status.
pub(crate) fn status_trailers(error: &MeshError) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert(status::GRPC_STATUS_NAME, error.code().header_value());
    headers.insert(
        status::GRPC_MESSAGE_NAME,
        status::encode_grpc_message(&error.to_string()),
    );
    headers
}
