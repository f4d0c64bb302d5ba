//! What the mesh puts on an endpoint's HTTP/2 connection. Many callers share it, so a request must go out framed as
//! the caller's body was (the mesh adds no frames) and nothing a well-behaved exchange sends may trip a default
//! server's flood protections (h2's budgets for small and empty DATA frames, its limits on reset streams): tripping
//! one tears the connection down with `GOAWAY` and fails every request in flight on it.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mesh_core::cluster::LbPolicy;
use mesh_core::route::{RetryBackoff, RetryOn, RetryPolicy, RouteAction};
use mesh_tower::MeshService;
use support::backend::{Reading, always, handler};
use support::config::{cluster, leaf, loc, snapshot, vhost, with};
use support::{Answer, Backend, Reply, options, send};
use tokio::task::JoinSet;

const PATH: &str = "/helloworld.Greeter/SayHello";
const HEADERS: &[(&str, &str)] = &[("content-type", "application/grpc"), ("te", "trailers")];
/// A small gRPC message (length-prefixed "hi"): far below h2's 256-byte threshold for small DATA frames.
const MESSAGE: &[u8] = b"\0\0\0\0\x02hi";

/// A route that may retry, so request bodies go through the replay buffer.
fn retrying_service(backend: &Backend) -> MeshService {
    let (retry_on, _) = RetryOn::parse("unavailable,reset,connect-failure");
    let policy = RetryPolicy::new(retry_on, 1).with_backoff(RetryBackoff::new(
        Duration::from_millis(1),
        Duration::from_millis(2),
    ));
    let service = MeshService::new(options());
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![with(
            RouteAction::cluster("c").with_retry_policy(policy),
        )]),
        vec![leaf(
            cluster("c", LbPolicy::RoundRobin),
            vec![loc("z", 0, vec![backend.addr])],
        )],
        None,
    ))));
    service
}

#[tokio::test]
async fn a_replayed_body_reaches_the_endpoint_framed_as_the_caller_sent_it() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&seen);
    let backend = Backend::start(
        1,
        handler(move |request| {
            let recorded = Arc::clone(&recorded);
            async move {
                let mut recorded = recorded.lock().unwrap();
                recorded.push(request);
                // The first attempt fails, so the retry sends the replayed record.
                Reply::Grpc(if recorded.len() == 1 { 14 } else { 0 })
            }
        }),
    )
    .await;
    let service = retrying_service(&backend);

    let answer = send(&service, PATH, HEADERS, Bytes::from_static(MESSAGE)).await;

    assert!(answer.ok(), "{answer:?}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "one retry");
    for (attempt, request) in seen.iter().enumerate() {
        assert_eq!(request.body, MESSAGE, "attempt {attempt}");
        // As a direct `Full` request: one DATA frame carrying END_STREAM, no empty frame after it.
        assert_eq!(request.data_frames, 1, "attempt {attempt}");
        assert_eq!(
            request.headers.get("content-length").map(|v| v.as_bytes()),
            Some(&b"7"[..]),
            "attempt {attempt}"
        );
    }
}

#[tokio::test]
async fn a_message_from_a_stream_goes_out_in_one_frame_with_the_end_of_the_stream() {
    let backend = Backend::start(1, always(Reply::Grpc(0))).await;
    // No retry policy: the body is sent once.
    let service = MeshService::new(options());
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![with(RouteAction::cluster("c"))]),
        vec![leaf(
            cluster("c", LbPolicy::RoundRobin),
            vec![loc("z", 0, vec![backend.addr])],
        )],
        None,
    ))));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&seen);
    backend.set_handler(handler(move |request| {
        recorded.lock().unwrap().push(request);
        async { Reply::Grpc(0) }
    }));
    // A body made from a stream, as tonic makes a unary call's: it knows it has ended only when polled again.
    let frames = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
        http_body::Frame::data(Bytes::from_static(MESSAGE)),
    )]);
    let request = http::Request::post(format!("http://c{PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::StreamBody::new(frames))
        .unwrap();
    let response = tower::ServiceExt::oneshot(service, request).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "0");

    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].body, MESSAGE);
    // Not a DATA frame and then an empty one to end the stream: one frame carrying END_STREAM.
    assert_eq!(seen[0].data_frames, 1);
}

/// h2 charges every small DATA frame that does not end its stream against a per-connection budget and never
/// refunds one that arrives after the server dropped the request body. A server that answers from the headers alone
/// (this backend drops request bodies unread and keeps its response open a little, as a server stream would) sees
/// every request's DATA late. A body sent as a small frame followed by an empty END_STREAM frame spends the budget
/// in a few thousand requests, and the server ends the connection with `GOAWAY(ENHANCE_YOUR_CALM)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retryable_requests_keep_one_connection_to_a_default_hyper_server() {
    const REQUESTS: usize = 8_000;
    const CONCURRENCY: usize = 64;
    let backend = Backend::start_reading(
        1,
        always(Reply::SlowTrailers(Duration::from_millis(5))),
        Reading::Nothing,
    )
    .await;
    let service = retrying_service(&backend);

    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..CONCURRENCY {
        let service = service.clone();
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let mut failed: Vec<Answer> = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < REQUESTS {
                let answer = send(&service, PATH, HEADERS, Bytes::from_static(MESSAGE)).await;
                if !answer.ok() {
                    failed.push(answer);
                }
            }
            failed
        });
    }
    let mut failed = Vec::new();
    while let Some(result) = tasks.join_next().await {
        failed.extend(result.unwrap());
    }

    assert!(
        failed.is_empty(),
        "{} of {REQUESTS} requests failed; the first: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(backend.hits(), REQUESTS, "one attempt per request");
    assert_eq!(
        backend.connections.load(Ordering::SeqCst),
        1,
        "the server ended the connection and the mesh made another"
    );
}
