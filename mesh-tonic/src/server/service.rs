//! The application's service as one connection of the xDS-enabled server sees it: each request is checked against
//! the connection's filter chain ([`ChainConfig::check`]), gets the connection's `Arc<ConnectionInfo>` in its
//! extensions, and goes to the application; a request that fails the check is answered with its gRPC status
//! without reaching the application. Responses of any body type are carried as tonic bodies (no re-boxing when the
//! application already answers with one, as tonic services do).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use hyper::body::Incoming;
use mesh_core::peer::ConnectionInfo;
use tower::ServiceExt;
use tower::util::Oneshot;

use super::route::ChainConfig;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The application's service `S` on one connection.
pub(crate) struct ConnectionService<S> {
    inner: S,
    pub(crate) connection: Arc<ConnectionInfo>,
    chain: Arc<ChainConfig>,
}

impl<S> ConnectionService<S> {
    pub(crate) fn new(inner: S, connection: ConnectionInfo, chain: Arc<ChainConfig>) -> Self {
        Self {
            inner,
            connection: Arc::new(connection),
            chain,
        }
    }
}

impl<S, B> hyper::service::Service<http::Request<Incoming>> for ConnectionService<S>
where
    S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>> + Clone,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn call(&self, mut request: http::Request<Incoming>) -> Self::Future {
        if let Err(status) = self.chain.check(&request, &self.connection) {
            return ResponseFuture {
                state: State::Rejected {
                    response: Some(status.into_http()),
                },
            };
        }
        request
            .extensions_mut()
            .insert(Arc::clone(&self.connection));
        ResponseFuture {
            state: State::Called {
                future: self.inner.clone().oneshot(request),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of [`ConnectionService`].
    pub(crate) struct ResponseFuture<S, B>
    where
        S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProjection]
    enum State<S, B>
    where
        S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>,
    {
        Rejected { response: Option<http::Response<tonic::body::Body>> },
        Called { #[pin] future: Oneshot<S, http::Request<Incoming>> },
    }
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<http::Response<tonic::body::Body>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Rejected { response } => {
                // Polled again after completion: answer an empty response rather than panic.
                Poll::Ready(Ok(response.take().unwrap_or_default()))
            }
            StateProjection::Called { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(tonic::body::Body::new)))
            }
        }
    }
}
