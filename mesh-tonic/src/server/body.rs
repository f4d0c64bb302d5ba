//! [`RequestBody`]: the request body the xDS-enabled server hands the application.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use mesh_tower::metrics::MessageBytesCounter;

/// A request's body as the application receives it from an xDS-enabled server: hyper's [`Incoming`] stream, whose
/// gRPC message bytes are counted as the application reads them when the mesh has telemetry (gRFC A66's
/// `grpc.server.call.rcvd_total_compressed_message_size`). Any service generic over its request body (tonic's
/// generated servers and `Routes`, axum's `Router`) takes it as it is; a service written for
/// `http::Request<Incoming>` takes `http::Request<RequestBody>` instead, or unwraps it with
/// [`into_incoming`](Self::into_incoming) (the call's received size then counts what was read before).
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    received: Option<MessageBytesCounter>,
}

impl RequestBody {
    pub(crate) const fn new(inner: Incoming, received: Option<MessageBytesCounter>) -> Self {
        Self { inner, received }
    }

    /// hyper's body underneath; no more bytes are counted.
    pub fn into_incoming(self) -> Incoming {
        self.inner
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if let (Some(counter), Poll::Ready(Some(Ok(frame)))) = (&mut this.received, &frame)
            && let Some(data) = frame.data_ref()
        {
            counter.feed(data);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
