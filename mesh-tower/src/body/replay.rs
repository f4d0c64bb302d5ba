//! A request body that can be sent more than once, for retries.
//!
//! Every [`ReplayBody`] made from one caller's body shares a buffer. A cursor first replays the frames recorded so
//! far, then reads on from the caller's body and records what it reads, until the record would exceed the limit:
//! from then on the record is frozen, the reading cursor passes frames straight through, and
//! [`ReplayBody::is_replayable`] turns false, so no further attempt is made. Only one attempt is in flight at a
//! time, so only one cursor reads from the caller's body; the lock is per frame, on the body path, never on the
//! routing or picking path.
//!
//! On the wire a cursor looks like the caller's body would: it passes on the body's length (`content-length`) and
//! reports its end with its last frame, so a body that ends with data goes out as DATA frames the last of which
//! carries `END_STREAM`, with no empty frame after it.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::{BoxBody, BoxError};

#[derive(Debug)]
struct Shared {
    /// The caller's body; `None` once it ended.
    source: Option<BoxBody>,
    /// Data frames recorded so far, in order.
    chunks: Vec<Bytes>,
    /// Bytes recorded.
    recorded: usize,
    /// The most that may be recorded.
    limit: usize,
    /// Frames read from the source (data frames only).
    read: usize,
    /// The source went past the limit: the record is incomplete.
    capped: bool,
    /// The source's trailers, once read.
    trailers: Option<HeaderMap>,
    /// The source has ended (after its trailers, if any).
    ended: bool,
    /// The source failed; every cursor reaching this point fails the same way.
    failed: Option<Arc<str>>,
}

/// A cursor over a shared, replayable request body; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct ReplayBody {
    shared: Arc<Mutex<Shared>>,
    /// Data frames this cursor has produced.
    position: usize,
    /// Whether this cursor has produced the trailers.
    trailers_sent: bool,
}

/// The source's frame failed: the message, shared by every cursor.
#[derive(Debug, thiserror::Error)]
#[error("request body failed: {0}")]
struct SourceFailed(Arc<str>);

/// A cursor tried to replay a body whose record was capped.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeded the retry buffer and cannot be replayed")]
struct NotReplayable;

impl ReplayBody {
    /// The first cursor over `source`, recording up to `limit` bytes.
    pub(crate) fn new(source: BoxBody, limit: usize) -> Self {
        let ended = source.is_end_stream();
        Self {
            shared: Arc::new(Mutex::new(Shared {
                source: (!ended).then_some(source),
                chunks: Vec::new(),
                recorded: 0,
                limit,
                read: 0,
                capped: false,
                trailers: None,
                ended,
                failed: None,
            })),
            position: 0,
            trailers_sent: false,
        }
    }

    /// A new cursor from the start, for the next attempt.
    pub(crate) fn replay(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            position: 0,
            trailers_sent: false,
        }
    }

    /// Whether a new cursor would produce the whole body: the record is complete so far.
    pub(crate) fn is_replayable(&self) -> bool {
        let shared = self.lock();
        !shared.capped && shared.failed.is_none()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let mut shared = this.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(chunk) = shared.chunks.get(this.position) {
            let chunk = chunk.clone();
            this.position += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if this.position < shared.read {
            // Frames were read past the record (it was capped): this cursor cannot go on.
            return Poll::Ready(Some(Err(Box::new(NotReplayable))));
        }
        if let Some(message) = &shared.failed {
            return Poll::Ready(Some(Err(Box::new(SourceFailed(Arc::clone(message))))));
        }
        if shared.ended {
            if this.trailers_sent {
                return Poll::Ready(None);
            }
            this.trailers_sent = true;
            return Poll::Ready(shared.trailers.clone().map(|t| Ok(Frame::trailers(t))));
        }
        let Some(source) = shared.source.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(source).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                shared.ended = true;
                shared.source = None;
                this.trailers_sent = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                shared.failed = Some(error.to_string().into());
                shared.source = None;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    shared.read += 1;
                    this.position += 1;
                    if !shared.capped && shared.recorded.saturating_add(data.len()) <= shared.limit
                    {
                        shared.recorded += data.len();
                        shared.chunks.push(data.clone());
                    } else {
                        // Over the limit: free the record, it can no longer serve a retry.
                        shared.capped = true;
                        shared.chunks = Vec::new();
                    }
                    // Learn of the end with the last frame, not on the next poll: the transport asks `is_end_stream` after
                    // each frame and, told no, sends this one without END_STREAM and follows it with an empty
                    // DATA frame. An h2 server charges each small non-final frame against a per-connection budget
                    // (never refunded for one arriving after it answered); once spent, it ends the connection,
                    // shared by every caller, with GOAWAY(ENHANCE_YOUR_CALM).
                    if shared.source.as_ref().is_some_and(Body::is_end_stream) {
                        shared.ended = true;
                        shared.source = None;
                    }
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => {
                        shared.trailers = Some(trailers.clone());
                        shared.ended = true;
                        shared.source = None;
                        this.trailers_sent = true;
                        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                    }
                    // Neither data nor trailers: an unknown frame kind, passed over.
                    Err(_) => {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                },
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        let shared = self.lock();
        // Against every frame read, not the record: a cursor behind a capped record has frames it cannot produce
        // (it fails), which is not an end.
        shared.ended
            && self.position >= shared.read
            && (self.trailers_sent || shared.trailers.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        let shared = self.lock();
        // A failed body, or a cursor behind a capped record: it will fail, its length is unknown.
        if shared.failed.is_some() || (shared.capped && self.position < shared.read) {
            return SizeHint::default();
        }
        let recorded: usize = shared
            .chunks
            .iter()
            .skip(self.position)
            .map(Bytes::len)
            .sum();
        let recorded = u64::try_from(recorded).unwrap_or(u64::MAX);
        // The rest of the caller's body as it tells it, so that a body of known length keeps its
        // `content-length`, as it would have without the mesh.
        let Some(source) = &shared.source else {
            return SizeHint::with_exact(recorded);
        };
        let rest = source.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(recorded));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(recorded));
        }
        hint
    }
}

#[cfg(test)]
mod tests;
