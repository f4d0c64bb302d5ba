//! Bodies of the request path: what goes up to an endpoint ([`UpstreamBody`], replayable for retries) and what
//! comes back ([`ResponseBody`], which also ends the call's bookkeeping when the stream ends).
//!
//! Request bodies of any type are boxed once per request (one allocation) so that one HTTP/2 connection serves
//! callers with different body types. A request that may be retried wraps its body in a replay buffer
//! ([`replay`]): the first attempt streams from the caller's body and records what it sends, up to the retry
//! policy's `max_buffered_body_bytes`; a retry replays the record and continues from the caller's body. A body
//! larger than the limit stops being recorded and its request is not retried.

mod replay;
mod response;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

pub(crate) use replay::ReplayBody;
pub(crate) use response::CallGuard;
pub use response::ResponseBody;

/// A boxed error, as bodies and the HTTP stack use them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The caller's request body, type-erased.
pub(crate) type BoxBody = UnsyncBoxBody<Bytes, BoxError>;

/// Boxes a caller's body.
pub(crate) fn box_body<B>(body: B) -> BoxBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    UnsyncBoxBody::new(body.map_err(Into::into))
}

/// The body sent to an endpoint: the caller's body as is, or a replay of it.
#[derive(Debug)]
pub(crate) enum UpstreamBody {
    /// Not retried: the caller's body.
    Direct(BoxBody),
    /// Retryable: a cursor over the shared replay buffer.
    Replay(ReplayBody),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Direct(body) => Pin::new(body).poll_frame(cx),
            Self::Replay(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Direct(body) => body.is_end_stream(),
            Self::Replay(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Direct(body) => body.size_hint(),
            Self::Replay(body) => body.size_hint(),
        }
    }
}
