//! The application's service as one connection of the xDS-enabled server sees it: each request is checked against
//! the connection's filter chain ([`ChainConfig::check`]), gets the connection's `Arc<ConnectionInfo>` in its
//! extensions, and goes to the application; a request that fails the check is answered with its gRPC status
//! without reaching the application. Responses of any body type are carried as tonic bodies (no re-boxing when the
//! application already answers with one, as tonic services do).
//!
//! With telemetry ([`crate::telemetry`]), each call is recorded from its request headers to its status: the
//! handler is polled with the call's span as the current OpenTelemetry context, the request body counts the message
//! bytes the handler reads ([`RequestBody`]), and the response body is wrapped to count message bytes and read the
//! status in the trailers ([`TelemetryBody`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use mesh_core::peer::ConnectionInfo;
use mesh_tower::status::{Code, grpc_status};
use tower::ServiceExt;
use tower::util::Oneshot;

use super::RequestBody;
use super::route::ChainConfig;
use crate::telemetry::{ServerCall, ServerTelemetry};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The application's service `S` on one connection.
pub(crate) struct ConnectionService<S> {
    inner: S,
    pub(crate) connection: Arc<ConnectionInfo>,
    chain: Arc<ChainConfig>,
    telemetry: Option<Arc<ServerTelemetry>>,
}

impl<S> ConnectionService<S> {
    pub(crate) fn new(
        inner: S,
        connection: ConnectionInfo,
        chain: Arc<ChainConfig>,
        telemetry: Option<Arc<ServerTelemetry>>,
    ) -> Self {
        Self {
            inner,
            connection: Arc::new(connection),
            chain,
            telemetry,
        }
    }
}

impl<S, B> hyper::service::Service<http::Request<Incoming>> for ConnectionService<S>
where
    S: tower_service::Service<http::Request<RequestBody>, Response = http::Response<B>> + Clone,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn call(&self, mut request: http::Request<Incoming>) -> Self::Future {
        let mut call = self.telemetry.as_ref().map(|telemetry| {
            telemetry.start(request.uri().path(), request.headers(), &self.connection)
        });
        if let Err(status) = self.chain.check(&request, &self.connection) {
            if let Some(call) = &mut call {
                call.finish(Code::from_u32(
                    u32::try_from(status.code() as i32).unwrap_or(2),
                ));
            }
            return ResponseFuture {
                state: State::Rejected {
                    response: Some(status.into_http()),
                },
                call: None,
            };
        }
        request
            .extensions_mut()
            .insert(Arc::clone(&self.connection));
        let received = call.as_mut().map(ServerCall::count_received);
        let request = request.map(|body| RequestBody::new(body, received));
        ResponseFuture {
            state: State::Called {
                future: self.inner.clone().oneshot(request),
            },
            call,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of [`ConnectionService`].
    pub(crate) struct ResponseFuture<S, B>
    where
        S: tower_service::Service<http::Request<RequestBody>, Response = http::Response<B>>,
    {
        #[pin]
        state: State<S, B>,
        call: Option<ServerCall>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProjection]
    enum State<S, B>
    where
        S: tower_service::Service<http::Request<RequestBody>, Response = http::Response<B>>,
    {
        Rejected { response: Option<http::Response<tonic::body::Body>> },
        Called { #[pin] future: Oneshot<S, http::Request<RequestBody>> },
    }
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: tower_service::Service<http::Request<RequestBody>, Response = http::Response<B>>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<http::Response<tonic::body::Body>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            StateProjection::Rejected { response } => {
                // Polled again after completion: answer an empty response rather than panic.
                Poll::Ready(Ok(response.take().unwrap_or_default()))
            }
            StateProjection::Called { future } => {
                // The handler's own spans are children of the call's.
                let _current = this
                    .call
                    .as_ref()
                    .map(|call| call.context().clone().attach());
                let response = match ready!(future.poll(cx)) {
                    Ok(response) => response,
                    Err(error) => {
                        if let Some(mut call) = this.call.take() {
                            call.finish(Code::Unknown);
                        }
                        return Poll::Ready(Err(error));
                    }
                };
                let Some(mut call) = this.call.take() else {
                    return Poll::Ready(Ok(response.map(tonic::body::Body::new)));
                };
                let fallback = if response.status() == http::StatusCode::OK {
                    Code::Unknown
                } else {
                    Code::from_http_status(response.status().as_u16())
                };
                // A trailers-only response carries its status in the headers.
                if let Some(status) = grpc_status(response.headers()) {
                    call.finish(status);
                } else if response.body().is_end_stream() {
                    call.finish(fallback);
                }
                Poll::Ready(Ok(response.map(|inner| {
                    tonic::body::Body::new(TelemetryBody {
                        inner,
                        call,
                        fallback,
                    })
                })))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts its message bytes and ends its call's record with the status in its trailers
    /// (`fallback` when it ends without one; CANCELLED when dropped before its end).
    pub(crate) struct TelemetryBody<B> {
        #[pin]
        inner: B,
        call: ServerCall,
        fallback: Code,
    }
}

impl<B> Body for TelemetryBody<B>
where
    B: Body<Data = bytes::Bytes>,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.call.sent(data);
                } else if let Some(trailers) = frame.trailers_ref() {
                    this.call
                        .finish(grpc_status(trailers).unwrap_or(Code::Unknown));
                }
            }
            Some(Err(_)) => this.call.finish(Code::Unknown),
            None => this.call.finish(*this.fallback),
        }
        // hyper stops polling a body that says it has ended: finish now (a no-op after the trailers).
        if this.inner.is_end_stream() {
            this.call.finish(*this.fallback);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
