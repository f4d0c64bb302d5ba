//! Circuit breaking (gRFC A32) and outlier detection (gRFC A50 plus consecutive errors) end to end.

mod support;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mesh_core::cluster::{
    CircuitBreakers, ConsecutiveErrorEjection, FailurePercentageEjection, LbPolicy,
    OutlierDetection,
};
use mesh_tower::MeshService;
use mesh_tower::metrics::Metrics;
use support::backend::{always, handler};
use support::config::{cluster, leaf, loc, snapshot, to, vhost};
use support::{Backend, Reply, eventually, grpc, options};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_holds_exactly_max_requests_in_flight() {
    let gate = Arc::new(Semaphore::new(0));
    let held = Arc::clone(&gate);
    let backend = Backend::start(
        51,
        handler(move |_| {
            let gate = Arc::clone(&held);
            async move {
                gate.acquire().await.unwrap().forget();
                Reply::Grpc(0)
            }
        }),
    )
    .await;
    let service = MeshService::new(options());
    let limited = cluster("c", LbPolicy::RoundRobin)
        .with_circuit_breakers(CircuitBreakers::default().with_max_requests(3_u32));
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![to("c")]),
        vec![leaf(limited, vec![loc("z", 0, vec![backend.addr])])],
        None,
    ))));
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { grpc(&service, "/x", &[]).await })
        })
        .collect();
    let three_in = eventually(Duration::from_secs(5), async || {
        backend.in_flight.load(Ordering::SeqCst) == 3
    })
    .await;
    assert!(three_in);
    // Everything past the limit fails fast while three are held (the gate is never opened here, so the three held
    // cannot finish: whatever finishes was rejected).
    let seven_out = eventually(Duration::from_secs(5), async || {
        calls.iter().filter(|call| call.is_finished()).count() == 7
    })
    .await;
    assert!(
        seven_out,
        "the calls past max_requests fail without waiting"
    );
    let mut rejected = 0;
    let mut still = Vec::new();
    for call in calls {
        if call.is_finished() {
            let answer = call.await.unwrap();
            assert_eq!(answer.grpc_status, Some(14));
            assert!(answer.grpc_message.unwrap().contains("max_requests 3"));
            rejected += 1;
        } else {
            still.push(call);
        }
    }
    assert_eq!(still.len(), 3, "exactly max_requests wait at the backend");
    assert_eq!(rejected, 7);
    assert_eq!(backend.in_flight.load(Ordering::SeqCst), 3);
    gate.add_permits(3);
    for call in still {
        assert!(call.await.unwrap().ok());
    }
    assert_eq!(backend.peak.load(Ordering::SeqCst), 3);
    // The permits came back: the next request goes through.
    gate.add_permits(1);
    assert!(grpc(&service, "/x", &[]).await.ok());
}

/// Polls `call` once, with a waker that does nothing (a later `.await` polls it again with a real one).
fn poll_once<F: Future + Unpin>(call: &mut F) -> Poll<F::Output> {
    Pin::new(call).poll(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test]
async fn requests_waiting_for_a_connection_are_held_up_to_max_pending_requests() {
    // A listening socket whose accept queue holds one connection, taken here: the kernel then drops the mesh's
    // connection attempt (SYN) until the queue has room, so its requests wait for the connection (Envoy's pending
    // requests) for as long as the test wants.
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, 52), 0)))
        .unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let queued = TcpStream::connect(addr).await.unwrap();
    let service = MeshService::new(options());
    let limited = cluster("c", LbPolicy::RoundRobin)
        .with_connect_timeout(Duration::from_secs(30))
        .with_circuit_breakers(
            CircuitBreakers::default()
                .with_max_requests(100_u32)
                .with_max_pending_requests(2_u32),
        );
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![to("c")]),
        vec![leaf(limited, vec![loc("z", 0, vec![addr])])],
        None,
    ))));
    // Up to the limit, requests wait for the connection: far below max_requests, they are not refused.
    let mut waiting: Vec<_> = (0..2)
        .map(|_| Box::pin(grpc(&service, "/x", &[])))
        .collect();
    for call in &mut waiting {
        assert!(poll_once(call).is_pending());
    }
    // Beyond it, a request fails at once (its first poll), UNAVAILABLE with the reason.
    let Poll::Ready(rejected) = poll_once(&mut Box::pin(grpc(&service, "/x", &[]))) else {
        panic!("a request beyond max_pending_requests must fail fast");
    };
    assert_eq!(rejected.grpc_status, Some(14));
    let message = rejected.grpc_message.unwrap();
    assert!(
        message.contains("max_pending_requests 2") && message.contains("\"c\""),
        "{message}"
    );
    // Let the endpoint's connection task run: its connect is now waiting on the kernel, and so are the requests.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    for call in &mut waiting {
        assert!(poll_once(call).is_pending(), "still waiting to connect");
    }
    // Room in the accept queue: the mesh's retransmitted SYN gets through (about a second later), the connection is
    // made and the waiting requests go out.
    drop(queued);
    let (first, _) = listener.accept().await.unwrap();
    drop(first);
    let backend = Backend::start_on(listener, always(Reply::Grpc(0)));
    for call in waiting {
        assert!(call.await.ok());
    }
    assert_eq!(backend.hits(), 2);
    // Connected, requests are no longer pending: more than the pending limit go through at once.
    let calls: Vec<_> = (0..5).map(|_| grpc(&service, "/x", &[])).collect();
    for answer in futures_util::future::join_all(calls).await {
        assert!(answer.ok());
    }
}

/// Tracks ejections as the metrics interface reports them.
#[derive(Default)]
struct Ejections {
    current: AtomicIsize,
    peak: AtomicIsize,
    ejected: AtomicUsize,
    returned: AtomicUsize,
}

impl Metrics for Ejections {
    fn ejection(&self, _cluster: &str, _endpoint: &str, ejected: bool) {
        if ejected {
            let now = self.current.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            self.ejected.fetch_add(1, Ordering::SeqCst);
        } else {
            self.current.fetch_sub(1, Ordering::SeqCst);
            self.returned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn detection(max_percent: u32) -> OutlierDetection {
    OutlierDetection::default()
        .with_interval(Duration::from_millis(100))
        .with_base_ejection_time(Duration::from_millis(300))
        .with_max_ejection_time(Duration::from_secs(1))
        .with_max_ejection_percent(max_percent)
        .with_failure_percentage({
            let mut ejection = FailurePercentageEjection::default();
            ejection.threshold = 50;
            ejection.minimum_hosts = 3;
            ejection.request_volume = 5;
            ejection
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_an_erroring_backend_and_lets_it_return() {
    let bad = Backend::start(52, always(Reply::Grpc(14))).await;
    let good1 = Backend::start(53, always(Reply::Grpc(0))).await;
    let good2 = Backend::start(54, always(Reply::Grpc(0))).await;
    let metrics = Arc::new(Ejections::default());
    let service =
        MeshService::new(options().with_metrics(Arc::clone(&metrics) as Arc<dyn Metrics>));
    let detected = cluster("c", LbPolicy::RoundRobin).with_outlier_detection(detection(50));
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![to("c")]),
        vec![leaf(
            detected,
            vec![loc("z", 0, vec![bad.addr, good1.addr, good2.addr])],
        )],
        None,
    ))));
    let ejected = eventually(Duration::from_secs(5), async || {
        for _ in 0..10 {
            grpc(&service, "/x", &[]).await;
        }
        metrics.ejected.load(Ordering::SeqCst) > 0
    })
    .await;
    assert!(ejected, "the erroring backend was never ejected");
    // While ejected it gets nothing.
    let before = bad.hits();
    for _ in 0..30 {
        assert!(grpc(&service, "/x", &[]).await.ok());
    }
    assert_eq!(bad.hits(), before);
    // Healed, it returns after its ejection time.
    bad.set_handler(always(Reply::Grpc(0)));
    let returned = eventually(Duration::from_secs(5), async || {
        grpc(&service, "/x", &[]).await;
        bad.hits() > before
    })
    .await;
    assert!(returned, "the healed backend never got traffic again");
    assert!(metrics.returned.load(Ordering::SeqCst) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_never_ejects_more_than_the_max_percent() {
    let mut backends = Vec::new();
    for host in 55..60 {
        let reply = if host < 58 {
            Reply::Grpc(14)
        } else {
            Reply::Grpc(0)
        };
        backends.push(Backend::start(host, always(reply)).await);
    }
    let metrics = Arc::new(Ejections::default());
    let service =
        MeshService::new(options().with_metrics(Arc::clone(&metrics) as Arc<dyn Metrics>));
    // Failure percentage and inline consecutive-5xx ejection both try to eject the three failing backends.
    let detection = detection(20).with_consecutive_5xx({
        let mut ejection = ConsecutiveErrorEjection::default();
        ejection.consecutive = 3;
        ejection
    });
    let detected = cluster("c", LbPolicy::RoundRobin).with_outlier_detection(detection);
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![to("c")]),
        vec![leaf(
            detected,
            vec![loc("z", 0, backends.iter().map(|b| b.addr).collect())],
        )],
        None,
    ))));
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                for _ in 0..150 {
                    grpc(&service, "/x", &[]).await;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    assert!(
        metrics.ejected.load(Ordering::SeqCst) > 0,
        "nothing was ejected"
    );
    // 20% of 5 endpoints: one at a time (gRFC A50 stops once the ejected share reaches the maximum).
    assert_eq!(metrics.peak.load(Ordering::SeqCst), 1);
}
