//! Requests on an endpoint's HTTP/2 connection, with the `h2` crate (hyper's HTTP/2 implementation) used directly.
//!
//! hyper's client connection hands each request to the connection's task over a channel, spawns a task per request
//! to send its body and sends the response back over a oneshot channel: three hand-offs between tasks, on top of
//! `h2`. Here the caller's task opens the stream itself, sends a body that is whole in memory (every unary gRPC
//! call's) in the same step, and awaits the response headers; only a streaming body gets a task of its own, which
//! sends its frames as the peer's flow-control window allows. The connection's task only drives the socket.
//!
//! A request `h2` refuses before opening its stream (the connection is going away or gone) was not sent: the
//! caller may retry it anywhere. Such a refusal also tells the connection's driver to connect afresh at once,
//! without waiting for the old connection's streams to finish.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Reason, RecvStream, SendStream};
use http::header::{CONNECTION, CONTENT_LENGTH, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

use super::hpack::UniqueFields;
use crate::body::UpstreamBody;
use crate::error::TransportFailure;

/// What the connection's driver and its senders share.
#[derive(Debug, Default)]
pub(crate) struct Lifeline {
    /// The connection takes no new streams (it ended, or the peer sent GOAWAY).
    closed: AtomicBool,
    /// Wakes the driver when a sender finds the connection closed before the driver does.
    closing: Notify,
    /// The fields whose values are never stored in the connection's HPACK table, and whether it has their names.
    unique_fields: UniqueFields,
}

impl Lifeline {
    /// Marks the connection as taking no new streams; the driver connects afresh.
    pub(crate) fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.closing.notify_one();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once [`close`](Self::close) was called.
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.closing.notified();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

/// A handle to open streams on one connection. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Sender {
    inner: SendRequest<Bytes>,
    lifeline: Arc<Lifeline>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// Why an exchange failed, and whether the request got out.
#[derive(Debug)]
pub(crate) struct SendError {
    pub(crate) failure: TransportFailure,
    pub(crate) source: h2::Error,
    /// The request, when the connection refused it before anything was sent: it may go out as it is on the
    /// endpoint's next connection.
    pub(crate) unsent: Option<Box<Request<UpstreamBody>>>,
}

impl Sender {
    pub(crate) fn new(inner: SendRequest<Bytes>, lifeline: Arc<Lifeline>) -> Self {
        Self { inner, lifeline }
    }

    /// Whether the connection takes no new streams.
    pub(crate) fn is_closed(&self) -> bool {
        self.lifeline.is_closed()
    }

    /// Sends `request` and waits for the response's head.
    ///
    /// # Errors
    /// The `h2` error, classified: [`TransportFailure::RefusedStream`] when the request was not processed (refused
    /// before its stream opened, refused by the peer, or beyond the peer's GOAWAY), else a reset.
    pub(crate) async fn send(
        self,
        request: Request<UpstreamBody>,
    ) -> Result<Response<ResponseStream>, SendError> {
        let Self { inner, lifeline } = self;
        let refused = |source: h2::Error, request: Option<Request<UpstreamBody>>| {
            // The connection refuses new streams: it is going away. Connect afresh now, and the request may go
            // out on the next connection. (A request h2 finds malformed is refused too, but says nothing of the
            // connection.)
            let gone = connection_gone(&source);
            if gone {
                lifeline.close();
            }
            SendError {
                failure: TransportFailure::RefusedStream,
                source,
                unsent: request.filter(|_| gone).map(Box::new),
            }
        };
        let mut inner = match inner.ready().await {
            Ok(inner) => inner,
            Err(source) => return Err(refused(source, Some(request))),
        };
        let (mut head, body) = request.into_parts();
        strip_connection_headers(&mut head.headers);
        lifeline.unique_fields.prepare(&mut head.headers);
        // As hyper does: a body of known length says so, except an empty one on a method without a body.
        if let Some(len) = body.size_hint().exact()
            && (len > 0 || !matches!(head.method, Method::GET | Method::HEAD | Method::CONNECT))
        {
            head.headers
                .entry(CONTENT_LENGTH)
                .or_insert_with(|| HeaderValue::from(len));
        }
        let end = body.is_end_stream();
        let (response, mut stream) = inner
            .send_request(Request::from_parts(head, ()), end)
            .map_err(|source| refused(source, None))?;
        drop(inner);
        if !end {
            match body.into_complete() {
                // The body's bytes are at hand: they go out now (h2 buffers what the window does not take yet).
                Ok(data) => {
                    if let Err(source) = stream.send_data(data, true) {
                        return Err(classified(source));
                    }
                }
                Err(body) => {
                    tokio::spawn(pipe(body, stream));
                }
            }
        }
        let response = response.await.map_err(classified)?;
        Ok(response.map(ResponseStream::new))
    }
}

/// Whether `error` ends the connection for new streams (GOAWAY, an I/O error, a protocol error), rather than
/// being about one request.
fn connection_gone(error: &h2::Error) -> bool {
    error.is_go_away() || error.is_io() || (error.reason().is_some() && !error.is_reset())
}

/// A failure after the stream opened: not processed only when the peer said so.
fn classified(source: h2::Error) -> SendError {
    let refused = source.reason() == Some(Reason::REFUSED_STREAM)
        || (source.is_go_away() && source.is_remote());
    SendError {
        failure: if refused {
            TransportFailure::RefusedStream
        } else {
            TransportFailure::Reset
        },
        source,
        unsent: None,
    }
}

/// HTTP/2 forbids connection-specific header fields (RFC 9113 §8.2.2); an HTTP/1 caller's request may carry them.
fn strip_connection_headers(headers: &mut HeaderMap) {
    const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
    const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
    if let Some(connection) = headers.remove(CONNECTION) {
        // Fields the `connection` header names are connection-specific too.
        if let Ok(names) = connection.to_str() {
            for name in names.split(',') {
                if let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes()) {
                    headers.remove(name);
                }
            }
        }
    }
    for name in [KEEP_ALIVE, PROXY_CONNECTION, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    if headers
        .get(TE)
        .is_some_and(|te| te != HeaderValue::from_static("trailers"))
    {
        headers.remove(TE);
    }
}

/// Sends a body whose frames are still to come, as the peer's window allows; stops when the peer resets the stream.
async fn pipe(mut body: UpstreamBody, mut stream: SendStream<Bytes>) {
    loop {
        let frame = poll_fn(|cx| {
            if let Poll::Ready(reset) = stream.poll_reset(cx) {
                return Poll::Ready(Err(reset));
            }
            Pin::new(&mut body).poll_frame(cx).map(Ok)
        })
        .await;
        let frame = match frame {
            // The peer reset the stream (or answered early): nothing more to send.
            Err(_) => return,
            Ok(None) => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Ok(Some(Err(error))) => {
                tracing::debug!(%error, "request body failed; resetting the stream");
                stream.send_reset(Reason::CANCEL);
                return;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let frame = match frame.into_data() {
            Ok(data) => {
                if !data.is_empty() && !wait_for_capacity(&mut stream, data.len()).await {
                    return;
                }
                let end = body.is_end_stream();
                if stream.send_data(data, end).is_err() || end {
                    return;
                }
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(trailers) = frame.into_trailers() {
            let _ = stream.send_trailers(trailers);
            return;
        }
    }
}

/// Waits until the peer's window takes some of `len` bytes (h2 buffers the rest); false when the stream ended.
async fn wait_for_capacity(stream: &mut SendStream<Bytes>, len: usize) -> bool {
    stream.reserve_capacity(len);
    loop {
        if stream.capacity() > 0 {
            return true;
        }
        match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return false,
        }
    }
}

/// A response's body from an endpoint: its data frames (their flow-control window released as they are read),
/// then its trailers.
#[derive(Debug)]
pub struct ResponseStream {
    stream: RecvStream,
    data_done: bool,
}

impl ResponseStream {
    fn new(stream: RecvStream) -> Self {
        Self {
            stream,
            data_done: false,
        }
    }
}

impl Body for ResponseStream {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match ready!(self.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => self.data_done = true,
            }
        }
        match ready!(self.stream.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(error))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_specific_fields_of_an_http1_caller_are_not_sent() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-hop"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(UPGRADE, HeaderValue::from_static("h2c"));
        headers.insert(TE, HeaderValue::from_static("gzip"));
        headers.insert("x-kept", HeaderValue::from_static("yes"));
        strip_connection_headers(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert_eq!(headers["x-kept"], "yes");

        let mut grpc = HeaderMap::new();
        grpc.insert(TE, HeaderValue::from_static("trailers"));
        strip_connection_headers(&mut grpc);
        assert_eq!(grpc[TE], "trailers", "gRPC's `te: trailers` is allowed");
    }
}
