//! An HTTP/2 backend behind our `ServerTls`: answers every call with grpc-status 0 and says which client identity
//! the connection was authenticated with (`x-peer`), so tests see mTLS from both ends.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_tower::tls::ServerTls;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub struct TlsBackend {
    pub addr: SocketAddr,
    /// The client SPIFFE ID (or "-") of every accepted connection, in order.
    pub peers: Arc<Mutex<Vec<String>>>,
    /// Every failed handshake's error.
    pub failures: Arc<Mutex<Vec<String>>>,
    tls: ServerTls,
    server: tokio::task::JoinHandle<()>,
}

impl TlsBackend {
    pub async fn start(host: u8, tls: ServerTls) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::new(127, 0, 0, host), 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let peers: Arc<Mutex<Vec<String>>> = Arc::default();
        let failures: Arc<Mutex<Vec<String>>> = Arc::default();
        let server = Self::serve(listener, tls.clone(), &peers, &failures);
        Self {
            addr,
            peers,
            failures,
            tls,
            server,
        }
    }

    /// Closes every connection and serves again on the same address with the same `ServerTls` (so the same
    /// session cache, were resumption on).
    pub async fn restart(&mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.server = Self::serve(listener, self.tls.clone(), &self.peers, &self.failures);
    }

    fn serve(
        listener: TcpListener,
        tls: ServerTls,
        peers: &Arc<Mutex<Vec<String>>>,
        failures: &Arc<Mutex<Vec<String>>>,
    ) -> tokio::task::JoinHandle<()> {
        let (seen, failed) = (Arc::clone(peers), Arc::clone(failures));
        tokio::spawn(async move {
            // Connections live in this set: aborting the server closes them all.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (tls, seen, failed) = (tls.clone(), Arc::clone(&seen), Arc::clone(&failed));
                connections.spawn(async move {
                    let (stream, peer) = match tls.accept(stream).await {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            failed
                                .lock()
                                .unwrap()
                                .push(format!("{error}: {:?}", std::error::Error::source(&error)));
                            return;
                        }
                    };
                    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
                    let peer_id = peer
                        .as_ref()
                        .and_then(|p| p.spiffe_id.as_ref())
                        .map_or_else(|| "-".to_owned(), ToString::to_string);
                    seen.lock().unwrap().push(peer_id.clone());
                    let service = service_fn(move |_request: Request<Incoming>| {
                        let peer_id = peer_id.clone();
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("content-type", "application/grpc")
                                    .header("grpc-status", "0")
                                    .header("x-backend", peer_id)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
    }

    pub fn peers(&self) -> Vec<String> {
        self.peers.lock().unwrap().clone()
    }

    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap().clone()
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.server.abort();
    }
}
