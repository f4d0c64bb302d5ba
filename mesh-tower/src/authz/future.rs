//! The [`ResponseFuture`] of [`Authorization`](super::Authorization).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use super::body::AuthorizationBody;
use super::service::denied_response;

pin_project! {
    /// The inner service's response, or the denial.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F> {
        Allowed { #[pin] future: F },
        Denied { grpc: bool },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn allowed(future: F) -> Self {
        Self {
            kind: Kind::Allowed { future },
        }
    }

    pub(crate) fn denied(grpc: bool) -> Self {
        Self {
            kind: Kind::Denied { grpc },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<AuthorizationBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Allowed { future } => future
                .poll(cx)
                .map_ok(|response| response.map(AuthorizationBody::inner)),
            KindProj::Denied { grpc } => Poll::Ready(Ok(
                denied_response(*grpc).map(|()| AuthorizationBody::denied())
            )),
        }
    }
}
