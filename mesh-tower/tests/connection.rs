//! An endpoint's HTTP/2 connection over its life: keep-alive pings find a peer that stopped answering, and a
//! connection the peer is closing (GOAWAY) is replaced at once, its refused requests sent on the new one.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::cluster::LbPolicy;
use mesh_core::route::RouteAction;
use mesh_tower::MeshService;
use support::backend::always;
use support::config::{cluster, leaf, loc, snapshot, vhost, with};
use support::{Backend, Reply, eventually, grpc, options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

/// A service sending every request to `addr`, without retries.
fn service_to(addr: SocketAddr, options: mesh_tower::MeshOptions) -> MeshService {
    let service = MeshService::new(options);
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![with(RouteAction::cluster("c"))]),
        vec![leaf(
            cluster("c", LbPolicy::RoundRobin),
            vec![loc("z", 0, vec![addr])],
        )],
        None,
    ))));
    service
}

/// A TCP proxy to `target` whose connections, once frozen, pass nothing more either way (a peer that hangs with
/// its socket open, as behind a dead NAT entry). Connections made after the freeze pass traffic.
async fn freezing_proxy(target: SocketAddr) -> (SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (freeze, frozen) = watch::channel(false);
    let (_never, never_frozen) = watch::channel(false);
    tokio::spawn(async move {
        let _never = _never;
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(target).await else {
                continue;
            };
            // A connection made after the freeze never freezes.
            let frozen = if *frozen.borrow() {
                never_frozen.clone()
            } else {
                frozen.clone()
            };
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            tokio::spawn(pump(in_read, out_write, frozen.clone()));
            tokio::spawn(pump(out_read, in_write, frozen));
        }
    });
    (addr, freeze)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = frozen.wait_for(|frozen| *frozen) => break,
        };
        let Ok(n) = read else { return };
        if n == 0 || *frozen.borrow() {
            break;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
    // Frozen: hold both sockets open, passing nothing, until the other side closes its end.
    let mut sink = [0; 1024];
    while let Ok(n) = from.read(&mut sink).await {
        if n == 0 {
            return;
        }
    }
}

#[tokio::test]
async fn an_unanswered_keep_alive_ping_closes_the_connection_and_fails_its_calls_at_once() {
    let backend = Backend::start(1, always(Reply::Grpc(0))).await;
    let (proxy, freeze) = freezing_proxy(backend.addr).await;
    let service = service_to(
        proxy,
        options().with_keep_alive(Some(Duration::from_millis(100)), Duration::from_millis(200)),
    );
    assert!(grpc(&service, "/svc/Call", &[]).await.ok());

    freeze.send_replace(true);
    // The call goes out on the frozen connection and hears nothing: without keep-alive it would wait forever.
    let stuck = tokio::time::timeout(Duration::from_secs(5), grpc(&service, "/svc/Call", &[]))
        .await
        .expect("the keep-alive timeout ends the call");
    assert_eq!(stuck.grpc_status, Some(14), "{stuck:?}");

    // The endpoint connected afresh; the new connection works.
    let answer = grpc(&service, "/svc/Call", &[]).await;
    assert!(answer.ok(), "{answer:?}");
    assert_eq!(backend.connections.load(Ordering::SeqCst), 2);
}

/// A server whose first connection shuts down gracefully (GOAWAY, then its streams in flight finish) when
/// `drain` is notified. `/slow` answers after 400 ms; each answer says which connection (0, 1, ...) served it.
struct DrainingServer {
    addr: SocketAddr,
    drain: Arc<Notify>,
    slow_started: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
}

async fn draining_server() -> DrainingServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let drain = Arc::new(Notify::new());
    let slow_started = Arc::new(AtomicBool::new(false));
    let connections = Arc::new(AtomicUsize::new(0));
    let server = DrainingServer {
        addr,
        drain: Arc::clone(&drain),
        slow_started: Arc::clone(&slow_started),
        connections: Arc::clone(&connections),
    };
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let index = connections.fetch_add(1, Ordering::SeqCst);
            let slow_started = Arc::clone(&slow_started);
            let service = service_fn(move |request: http::Request<Incoming>| {
                let slow_started = Arc::clone(&slow_started);
                async move {
                    if request.uri().path() == "/slow" {
                        slow_started.store(true, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(400)).await;
                    }
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("content-type", "application/grpc")
                            .header("grpc-status", "0")
                            .header("x-backend", index.to_string())
                            .body(Full::new(Bytes::new()))
                            .unwrap(),
                    )
                }
            });
            let drain = Arc::clone(&drain);
            tokio::spawn(async move {
                let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service);
                tokio::pin!(connection);
                if index > 0 {
                    let _ = connection.await;
                    return;
                }
                tokio::select! {
                    _ = connection.as_mut() => {}
                    () = drain.notified() => {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    }
                }
            });
        }
    });
    server
}

#[tokio::test]
async fn a_connection_going_away_is_replaced_at_once_and_no_call_fails() {
    let server = draining_server().await;
    let service = service_to(server.addr, options());
    let slow = tokio::spawn({
        let service = service.clone();
        async move { grpc(&service, "/slow", &[]).await }
    });
    assert!(
        eventually(Duration::from_secs(5), async || server
            .slow_started
            .load(Ordering::SeqCst))
        .await
    );

    server.drain.notify_one();
    // While the old connection finishes its slow call, calls go out (without any retry policy) and succeed: those
    // the old connection refuses go out on the new one.
    let mut on_new = 0;
    for _ in 0..20 {
        let answer = grpc(&service, "/fast", &[]).await;
        assert!(answer.ok(), "{answer:?}");
        if answer.backend.as_deref() == Some("1") {
            on_new += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!slow.is_finished(), "the slow call outlived the fast ones");
    assert!(
        on_new > 0,
        "the new connection served calls while the old one drained"
    );
    let slow = slow.await.unwrap();
    assert!(
        slow.ok(),
        "the call in flight finished on the old connection: {slow:?}"
    );
    assert_eq!(slow.backend.as_deref(), Some("0"));
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}
