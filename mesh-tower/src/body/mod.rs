//! Bodies of the request path: what goes up to an endpoint ([`UpstreamBody`], replayable for retries) and what
//! comes back ([`ResponseBody`], which also ends the call's bookkeeping when the stream ends).
//!
//! A body that is whole in memory already (`Full<Bytes>`, `Empty<Bytes>`) is taken as its bytes, which every attempt
//! shares; a body of any other type is boxed once per request (one allocation) so that one HTTP/2 connection serves
//! callers with different body types. A request that may be retried wraps a boxed body in a replay buffer
//! ([`replay`]): the first attempt streams from the caller's body and records what it sends, up to the retry
//! policy's `max_buffered_body_bytes`; a retry replays the record and continues from the caller's body. A body
//! larger than the limit stops being recorded and its request is not retried.

mod replay;
mod response;

use std::any::Any;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

use crate::metrics::{MessageBytesCounter, MessageBytesTotal};

pub(crate) use replay::ReplayBody;
pub use response::ResponseBody;
pub(crate) use response::{CallGuard, PendingAttempt, record_status};

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

/// The caller's request body as the request path takes it: the bytes of a body that is whole in memory already
/// (`Full<Bytes>`, as hyper callers send unary messages, or `Empty<Bytes>`), taken without boxing, or any other
/// body boxed once.
pub(crate) enum CallerBody {
    /// The whole body (empty for none).
    Whole(Bytes),
    /// Any other body.
    Streaming(BoxBody),
}

impl CallerBody {
    pub(crate) fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut slot = Some(body);
        let any: &mut dyn Any = &mut slot;
        if let Some(full) = any.downcast_mut::<Option<Full<Bytes>>>() {
            return Self::Whole(full.take().map(whole).unwrap_or_default());
        }
        if any.is::<Option<Empty<Bytes>>>() {
            return Self::Whole(Bytes::new());
        }
        slot.map_or_else(
            || Self::Whole(Bytes::new()),
            |body| Self::Streaming(box_body(body)),
        )
    }
}

/// The bytes of a `Full` body: its one data frame, ready at once.
fn whole(mut body: Full<Bytes>) -> Bytes {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        Poll::Ready(Some(Err(never))) => match never {},
        Poll::Ready(None) | Poll::Pending => Bytes::new(),
    }
}

/// The body sent to an endpoint: the caller's body as is, or a replay of it; counting its gRPC message bytes when
/// metrics want gRFC A66's sizes ([`count_sent`](Self::count_sent)).
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    source: Upstream,
    sent: Option<MessageBytesCounter>,
}

#[derive(Debug)]
enum Upstream {
    /// Not retried: the caller's body.
    Direct(BoxBody),
    /// Retryable: a cursor over the shared replay buffer.
    Replay(ReplayBody),
    /// Retryable: a body that was whole before the first attempt (a unary message), sent from its bytes. `None`
    /// once sent.
    Complete(Option<Bytes>),
}

impl UpstreamBody {
    /// The caller's body, not retried.
    pub(crate) const fn direct(body: BoxBody) -> Self {
        Self {
            source: Upstream::Direct(body),
            sent: None,
        }
    }

    /// A cursor over a replay buffer.
    pub(crate) const fn replay(body: ReplayBody) -> Self {
        Self {
            source: Upstream::Replay(body),
            sent: None,
        }
    }

    /// Bytes whole before the first attempt (`None` for no body).
    pub(crate) const fn complete(data: Option<Bytes>) -> Self {
        Self {
            source: Upstream::Complete(data),
            sent: None,
        }
    }

    /// The body's bytes when it is whole in memory and not yet sent (counted as sent), else the body itself.
    ///
    /// # Errors
    /// The body itself when its frames are still to come.
    pub(crate) fn into_complete(mut self) -> Result<Bytes, Self> {
        match &mut self.source {
            Upstream::Complete(data @ Some(_)) => {
                let data = data.take().unwrap_or_default();
                if let Some(counter) = &mut self.sent {
                    counter.feed(&data);
                }
                Ok(data)
            }
            _ => Err(self),
        }
    }

    /// Counts the gRPC message bytes of the data frames sent from now on; the handle reads the count.
    pub(crate) fn count_sent(&mut self) -> MessageBytesTotal {
        let (counter, handle) = MessageBytesCounter::new();
        self.sent = Some(counter);
        handle
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let frame = match &mut this.source {
            Upstream::Direct(body) => Pin::new(body).poll_frame(cx),
            Upstream::Replay(body) => Pin::new(body).poll_frame(cx),
            Upstream::Complete(data) => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
        };
        if let (Some(counter), Poll::Ready(Some(Ok(frame)))) = (&mut this.sent, &frame)
            && let Some(data) = frame.data_ref()
        {
            counter.feed(data);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Upstream::Direct(body) => body.is_end_stream(),
            Upstream::Replay(body) => body.is_end_stream(),
            Upstream::Complete(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Upstream::Direct(body) => body.size_hint(),
            Upstream::Replay(body) => body.size_hint(),
            Upstream::Complete(data) => SizeHint::with_exact(
                data.as_ref()
                    .map_or(0, |data| u64::try_from(data.len()).unwrap_or(u64::MAX)),
            ),
        }
    }
}

/// A body with the frames already read from it (one or two) put back in front.
struct Prepended {
    first: Option<Result<Frame<Bytes>, BoxError>>,
    second: Option<Result<Frame<Bytes>, BoxError>>,
    rest: BoxBody,
}

impl Body for Prepended {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.first.take().or_else(|| self.second.take()) {
            Some(frame) => Poll::Ready(Some(frame)),
            None => Pin::new(&mut self.rest).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.second.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let len = |frame: &Option<Result<Frame<Bytes>, BoxError>>| match frame {
            Some(Ok(frame)) => frame
                .data_ref()
                .map_or(0, |data| u64::try_from(data.len()).unwrap_or(u64::MAX)),
            _ => 0,
        };
        let taken = len(&self.first).saturating_add(len(&self.second));
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(taken));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(taken));
        }
        hint
    }
}

/// A caller's body looked at before it is sent: whole (one data frame at hand, then its end, as the bodies of
/// unary calls are, `Full` or tonic's), or still streaming, with what the look read put back in front.
pub(crate) enum Peeked {
    Whole(Bytes),
    Streaming(BoxBody),
}

/// Looks at `body` without waiting: at most two polls, with a waker that does nothing (a body that is not ready
/// registers the real waker when it is polled again, as the `Body` contract requires of every poll).
pub(crate) fn peek_whole(mut body: BoxBody) -> Peeked {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let first = match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Pending => return Peeked::Streaming(body),
        Poll::Ready(None) => return Peeked::Whole(Bytes::new()),
        Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
            Ok(data) => data,
            Err(frame) => return put_back(Ok(frame), None, body),
        },
        Poll::Ready(Some(Err(error))) => return put_back(Err(error), None, body),
    };
    if body.is_end_stream() {
        return Peeked::Whole(first);
    }
    // Bodies made from a stream (tonic's) learn of their end on the next poll.
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(None) => Peeked::Whole(first),
        Poll::Pending => put_back(Ok(Frame::data(first)), None, body),
        Poll::Ready(Some(second)) => put_back(Ok(Frame::data(first)), Some(second), body),
    }
}

fn put_back(
    first: Result<Frame<Bytes>, BoxError>,
    second: Option<Result<Frame<Bytes>, BoxError>>,
    rest: BoxBody,
) -> Peeked {
    Peeked::Streaming(UnsyncBoxBody::new(Prepended {
        first: Some(first),
        second,
        rest,
    }))
}

/// The caller's body for a request that may be retried: its bytes when it is whole already ([`peek_whole`]), so
/// each attempt sends a cheap clone with no shared record, lock or allocation; otherwise a replay buffer recording
/// up to `limit` bytes.
pub(crate) enum Retryable {
    Complete(Bytes),
    Replay(ReplayBody),
}

impl Retryable {
    pub(crate) fn new(body: BoxBody, limit: usize) -> Self {
        match peek_whole(body) {
            Peeked::Whole(data) if data.len() <= limit => Self::Complete(data),
            Peeked::Whole(data) => Self::Replay(ReplayBody::new(
                UnsyncBoxBody::new(Full::new(data).map_err(|never| match never {})),
                limit,
            )),
            Peeked::Streaming(body) => Self::Replay(ReplayBody::new(body, limit)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A body made from a stream, as tonic's are: it learns of its end only when polled past its last frame, and
    /// answers `Pending` where `frames` has `None`.
    struct Streamed(VecDeque<Option<Frame<Bytes>>>);

    impl Body for Streamed {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            match self.0.pop_front() {
                Some(Some(frame)) => Poll::Ready(Some(Ok(frame))),
                Some(None) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                None => Poll::Ready(None),
            }
        }
    }

    fn streamed(frames: Vec<Option<Frame<Bytes>>>) -> BoxBody {
        UnsyncBoxBody::new(Streamed(frames.into()))
    }

    async fn frames(body: BoxBody) -> Vec<Frame<Bytes>> {
        let mut body = body;
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            frames.push(frame.unwrap());
        }
        frames
    }

    fn data(text: &'static str) -> Frame<Bytes> {
        Frame::data(Bytes::from_static(text.as_bytes()))
    }

    #[test]
    fn a_streamed_body_of_one_message_is_whole() {
        match peek_whole(streamed(vec![Some(data("hi"))])) {
            Peeked::Whole(bytes) => assert_eq!(bytes, "hi"),
            Peeked::Streaming(_) => panic!("one message, then the end: whole"),
        }
    }

    #[tokio::test]
    async fn a_body_still_streaming_keeps_every_frame_in_order() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-end", http::HeaderValue::from_static("1"));
        let cases = vec![
            vec![Some(data("a")), None, Some(data("b"))],
            vec![Some(data("a")), Some(data("b")), Some(data("c"))],
            vec![Some(data("a")), Some(Frame::trailers(trailers.clone()))],
            vec![None, Some(data("a"))],
            vec![Some(Frame::trailers(trailers))],
        ];
        for case in cases {
            let expected: Vec<_> = case.iter().flatten().map(|f| format!("{f:?}")).collect();
            let Peeked::Streaming(body) = peek_whole(streamed(case)) else {
                panic!("not whole: {expected:?}");
            };
            let seen: Vec<_> = frames(body)
                .await
                .iter()
                .map(|f| format!("{f:?}"))
                .collect();
            assert_eq!(seen, expected);
        }
    }
}
