//! The response body: the inner service's, or nothing for a denied request.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body of an [`Authorization`](super::Authorization) response: the inner service's body, or empty when the
    /// request was denied (the status travels in the headers).
    #[derive(Debug)]
    pub struct AuthorizationBody<B> {
        #[pin]
        inner: Option<B>,
    }
}

impl<B> AuthorizationBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        Self { inner: Some(body) }
    }

    pub(crate) fn denied() -> Self {
        Self { inner: None }
    }

    /// The inner service's body; `None` for a denied request.
    #[must_use]
    pub fn into_inner(self) -> Option<B> {
        self.inner
    }
}

impl<B: Body> Body for AuthorizationBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().inner.as_pin_mut() {
            Some(body) => body.poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
