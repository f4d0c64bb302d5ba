//! An in-process HTTP/2 backend that answers like a gRPC server would, on its own loopback address.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// What the backend answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A trailers-only gRPC response with this status.
    Grpc(u32),
    /// A gRPC response: headers, one data frame, then trailers with this status.
    GrpcTrailers(u32),
    /// A plain HTTP response with this status.
    Http(u16),
    /// Waits, then answers.
    After(Duration, Box<Reply>),
    /// A gRPC stream: headers at once, one message, then OK trailers after this long.
    SlowTrailers(Duration),
}

/// How much of a request body the backend reads before it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// All of it, to the end of the stream.
    Whole,
    /// None of it: the body is dropped unread as the request arrives, as a server that needs nothing from it may
    /// do. Body frames that arrive later are discarded by the server's HTTP/2 side.
    Nothing,
}

/// What a handler sees of a request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// How many DATA frames carried the body (empty ones included).
    pub data_frames: usize,
    pub backend: String,
}

type BoxFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;
pub type Handler = Arc<dyn Fn(Seen) -> BoxFuture + Send + Sync>;

/// A handler that always gives `reply`.
pub fn always(reply: Reply) -> Handler {
    Arc::new(move |_| {
        let reply = reply.clone();
        Box::pin(async move { reply })
    })
}

/// A handler from an async closure.
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Seen) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    Arc::new(move |seen| Box::pin(f(seen)))
}

/// See the [module docs](self).
pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    pub hits: Arc<AtomicUsize>,
    pub in_flight: Arc<AtomicUsize>,
    pub peak: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
    handler: Arc<std::sync::Mutex<Handler>>,
    reading: Reading,
    server: Option<(
        tokio::task::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )>,
}

impl Backend {
    /// Starts a backend on `127.0.0.<host>` with a free port.
    pub async fn start(host: u8, handler: Handler) -> Self {
        Self::start_reading(host, handler, Reading::Whole).await
    }

    /// Starts a backend on `127.0.0.<host>` that reads request bodies as `reading` says.
    pub async fn start_reading(host: u8, handler: Handler, reading: Reading) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::new(127, 0, 0, host), 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut backend = Self {
            addr,
            name: format!("127.0.0.{host}"),
            hits: Arc::default(),
            in_flight: Arc::default(),
            peak: Arc::default(),
            connections: Arc::default(),
            handler: Arc::new(std::sync::Mutex::new(handler)),
            reading,
            server: None,
        };
        backend.serve(listener);
        backend
    }

    /// Starts a backend serving on `listener`, bound by the caller (for tests that shape the listening socket).
    pub fn start_on(listener: TcpListener, handler: Handler) -> Self {
        let addr = listener.local_addr().unwrap();
        let mut backend = Self {
            addr,
            name: addr.ip().to_string(),
            hits: Arc::default(),
            in_flight: Arc::default(),
            peak: Arc::default(),
            connections: Arc::default(),
            handler: Arc::new(std::sync::Mutex::new(handler)),
            reading: Reading::Whole,
            server: None,
        };
        backend.serve(listener);
        backend
    }

    /// Replaces the handler.
    pub fn set_handler(&self, handler: Handler) {
        *self.handler.lock().unwrap() = handler;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops serving and closes every connection; returns once they are all closed.
    pub async fn stop(&mut self) {
        if let Some((server, shutdown)) = self.server.take() {
            let _ = shutdown.send(());
            let _ = server.await;
        }
    }

    /// Serves again on the same address.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(error) if tries < 50 => {
                    tries += 1;
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("rebind {}: {error}", self.addr),
            }
        };
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let name = self.name.clone();
        let hits = Arc::clone(&self.hits);
        let in_flight = Arc::clone(&self.in_flight);
        let peak = Arc::clone(&self.peak);
        let handler = Arc::clone(&self.handler);
        let connections_made = Arc::clone(&self.connections);
        let reading = self.reading;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            // Connections live in this set: on shutdown (or abort) they are all closed.
            let mut connections = JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    _ = &mut stopped => {
                        drop(listener);
                        connections.shutdown().await;
                        return;
                    }
                    accepted = listener.accept() => accepted,
                    Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                };
                let Ok((stream, _)) = accepted else { continue };
                connections_made.fetch_add(1, Ordering::SeqCst);
                let name = name.clone();
                let hits = Arc::clone(&hits);
                let in_flight = Arc::clone(&in_flight);
                let peak = Arc::clone(&peak);
                let handler = Arc::clone(&handler);
                let service = service_fn(move |request: Request<Incoming>| {
                    let name = name.clone();
                    let hits = Arc::clone(&hits);
                    let in_flight = Arc::clone(&in_flight);
                    let peak = Arc::clone(&peak);
                    let handler = handler.lock().unwrap().clone();
                    async move {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        let (parts, body) = request.into_parts();
                        let (body, data_frames) = match reading {
                            Reading::Whole => read_whole(body).await,
                            Reading::Nothing => {
                                drop(body);
                                (Bytes::new(), 0)
                            }
                        };
                        let seen = Seen {
                            path: parts.uri.path().to_owned(),
                            headers: parts.headers,
                            body,
                            data_frames,
                            backend: name.clone(),
                        };
                        let mut reply = handler(seen).await;
                        while let Reply::After(wait, next) = reply {
                            tokio::time::sleep(wait).await;
                            reply = *next;
                        }
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(respond(&reply, &name))
                    }
                });
                connections.spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        self.server = Some((server, stop));
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some((server, _)) = self.server.take() {
            server.abort();
        }
    }
}

/// Reads `body` to its end: its bytes (none if it failed) and how many DATA frames carried them.
async fn read_whole(mut body: Incoming) -> (Bytes, usize) {
    let mut bytes = BytesMut::new();
    let mut data_frames = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return (Bytes::new(), data_frames);
        };
        if let Ok(data) = frame.into_data() {
            data_frames += 1;
            bytes.extend_from_slice(&data);
        }
    }
    (bytes.freeze(), data_frames)
}

type ReplyBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn respond(reply: &Reply, name: &str) -> Response<ReplyBody> {
    let mut frames = Vec::new();
    let mut response = Response::builder().header("x-backend", name);
    match reply {
        Reply::Grpc(code) => {
            response = response
                .header("content-type", "application/grpc")
                .header("grpc-status", code.to_string());
        }
        Reply::GrpcTrailers(code) => {
            response = response.header("content-type", "application/grpc");
            frames.push(Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0"))));
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from(*code));
            frames.push(Ok(Frame::trailers(trailers)));
        }
        Reply::Http(status) => {
            response = response.status(*status);
            frames.push(Ok(Frame::data(Bytes::from(format!("{name}\n")))));
        }
        Reply::SlowTrailers(wait) => {
            let wait = *wait;
            let message =
                futures_util::stream::iter([Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0")))]);
            let trailers = futures_util::stream::once(async move {
                tokio::time::sleep(wait).await;
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from(0));
                Ok(Frame::trailers(trailers))
            });
            use futures_util::StreamExt;
            return response
                .header("content-type", "application/grpc")
                .body(BodyExt::boxed(StreamBody::new(message.chain(trailers))))
                .unwrap();
        }
        Reply::After(..) => unreachable!("resolved before responding"),
    }
    response
        .body(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(
            frames,
        ))))
        .unwrap()
}
