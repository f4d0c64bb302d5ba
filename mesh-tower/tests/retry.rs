//! Retries (gRFC A44 and beyond): attempts by `num_retries` capped at 5, `grpc-previous-rpc-attempts`, the retry
//! budget, per-try timeouts, and request bodies replayed up to the buffer limit.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use mesh_core::cluster::LbPolicy;
use mesh_core::route::{RetryBackoff, RetryBudget, RetryOn, RetryPolicy, RouteAction};
use mesh_tower::metrics::{AttemptLabels, CallLabels, Metrics, Outcome};
use mesh_tower::{GRPC_PREVIOUS_RPC_ATTEMPTS, MeshService};
use support::backend::{always, handler};
use support::config::{cluster, leaf, loc, snapshot, vhost, with};
use support::{Backend, Reply, grpc, options, send};

fn policy(retry_on: &str, num_retries: u32) -> RetryPolicy {
    let (retry_on, _) = RetryOn::parse(retry_on);
    RetryPolicy::new(retry_on, num_retries).with_backoff(RetryBackoff::new(
        Duration::from_millis(1),
        Duration::from_millis(2),
    ))
}

/// Counts what the metrics interface reports.
#[derive(Default)]
struct Counts {
    requests: AtomicUsize,
    finished: AtomicUsize,
    attempts: AtomicUsize,
    retries: AtomicUsize,
    exhausted: AtomicUsize,
}

impl Metrics for Counts {
    fn request_started(&self, _cluster: &str) {
        self.requests.fetch_add(1, Ordering::SeqCst);
    }
    fn request_finished(&self, _cluster: &str, _outcome: Outcome, _duration: Duration) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
    fn attempt_finished(
        &self,
        _labels: &AttemptLabels<'_>,
        _outcome: Option<Outcome>,
        _duration: Duration,
    ) {
        self.attempts.fetch_add(1, Ordering::SeqCst);
    }
    fn retry(&self, _cluster: &str) {
        self.retries.fetch_add(1, Ordering::SeqCst);
    }
    fn retry_budget_exhausted(&self, _cluster: &str) {
        self.exhausted.fetch_add(1, Ordering::SeqCst);
    }
}

fn service_with(policy: RetryPolicy, backends: &[&Backend]) -> MeshService {
    service_with_metrics(policy, backends, Arc::new(Counts::default()))
}

fn service_with_metrics(
    policy: RetryPolicy,
    backends: &[&Backend],
    metrics: Arc<dyn Metrics>,
) -> MeshService {
    let service = MeshService::new(options().with_metrics(metrics));
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![with(
            RouteAction::cluster("c").with_retry_policy(policy),
        )]),
        vec![leaf(
            cluster("c", LbPolicy::RoundRobin),
            vec![loc("z", 0, backends.iter().map(|b| b.addr).collect())],
        )],
        None,
    ))));
    service
}

/// Answers OK only on the attempt numbered `succeed_on` (0-based), per `grpc-previous-rpc-attempts`.
fn succeed_on_attempt(succeed_on: usize) -> support::backend::Handler {
    handler(move |seen| async move {
        let previous: usize = seen
            .headers
            .get(GRPC_PREVIOUS_RPC_ATTEMPTS)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        if previous == succeed_on {
            Reply::Grpc(0)
        } else {
            Reply::Grpc(14)
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_succeeds_on_attempt_n_iff_num_retries_is_at_least_n_minus_1() {
    for n in 1..=5_usize {
        let backend = Backend::start(31, succeed_on_attempt(n - 1)).await;
        for num_retries in 0..=5_u32 {
            let service = service_with(policy("unavailable", num_retries), &[&backend]);
            let before = backend.hits();
            let answer = grpc(&service, "/pkg.Svc/Call", &[]).await;
            let expected = usize::try_from(num_retries).unwrap() + 1 >= n;
            assert_eq!(
                answer.ok(),
                expected,
                "attempt {n}, num_retries {num_retries}: {answer:?}"
            );
            let attempts = backend.hits() - before;
            let allowed = usize::try_from(num_retries).unwrap().min(4) + 1;
            assert_eq!(
                attempts,
                if expected { n } else { allowed },
                "attempt {n}, num_retries {num_retries}"
            );
            if !expected {
                assert_eq!(answer.grpc_status, Some(14));
            }
        }
    }
}

/// Metrics that resolve a call's own metrics as it starts (as OpenTelemetry's do, per method).
struct PerCall {
    channel: Counts,
    call: Arc<Counts>,
    resolved: AtomicUsize,
}

impl Metrics for PerCall {
    fn for_call(&self, call: &CallLabels<'_>) -> Option<Arc<dyn Metrics>> {
        assert_eq!(call.method, "/pkg.Svc/Call");
        self.resolved.fetch_add(1, Ordering::SeqCst);
        Some(Arc::clone(&self.call) as Arc<dyn Metrics>)
    }
    fn request_started(&self, cluster: &str) {
        self.channel.request_started(cluster);
    }
    fn request_finished(&self, cluster: &str, outcome: Outcome, duration: Duration) {
        self.channel.request_finished(cluster, outcome, duration);
    }
    fn attempt_finished(
        &self,
        labels: &AttemptLabels<'_>,
        outcome: Option<Outcome>,
        duration: Duration,
    ) {
        self.channel.attempt_finished(labels, outcome, duration);
    }
    fn retry(&self, cluster: &str) {
        self.channel.retry(cluster);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_events_go_to_the_metrics_resolved_for_it() {
    let backend = Backend::start(39, succeed_on_attempt(1)).await;
    let metrics = Arc::new(PerCall {
        channel: Counts::default(),
        call: Arc::new(Counts::default()),
        resolved: AtomicUsize::new(0),
    });
    let service = service_with_metrics(
        policy("unavailable", 2),
        &[&backend],
        Arc::clone(&metrics) as Arc<dyn Metrics>,
    );
    let answer = grpc(&service, "/pkg.Svc/Call", &[]).await;
    assert!(answer.ok(), "{answer:?}");
    assert_eq!(
        metrics.resolved.load(Ordering::SeqCst),
        1,
        "resolved once per call"
    );
    // The call's start, both attempts, the retry and the end: all on the call's metrics.
    let call = &metrics.call;
    assert_eq!(call.requests.load(Ordering::SeqCst), 1);
    assert_eq!(call.attempts.load(Ordering::SeqCst), 2);
    assert_eq!(call.retries.load(Ordering::SeqCst), 1);
    assert_eq!(call.finished.load(Ordering::SeqCst), 1);
    let channel = &metrics.channel;
    for count in [
        &channel.requests,
        &channel.attempts,
        &channel.retries,
        &channel.finished,
    ] {
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_capped_at_five() {
    let backend = Backend::start(32, succeed_on_attempt(5)).await;
    let service = service_with(policy("unavailable", 10), &[&backend]);
    let answer = grpc(&service, "/pkg.Svc/Call", &[]).await;
    assert_eq!(answer.grpc_status, Some(14));
    assert_eq!(backend.hits(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_configured_conditions_are_retried() {
    let backend = Backend::start(33, always(Reply::Grpc(13))).await;
    let service = service_with(policy("unavailable", 3), &[&backend]);
    assert_eq!(grpc(&service, "/x", &[]).await.grpc_status, Some(13));
    assert_eq!(backend.hits(), 1, "INTERNAL is not in retry_on");
    // A status in trailers after headers commits the call: not retried even when its code is in retry_on.
    backend.set_handler(always(Reply::GrpcTrailers(14)));
    assert_eq!(grpc(&service, "/x", &[]).await.grpc_status, Some(14));
    assert_eq!(backend.hits(), 2);
    // Plain HTTP by status class.
    let http = Backend::start(34, always(Reply::Http(503))).await;
    let service = service_with(policy("5xx", 2), &[&http]);
    assert_eq!(send(&service, "/x", &[], Bytes::new()).await.status, 503);
    assert_eq!(http.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_prefers_another_endpoint() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let make = |seen: Arc<std::sync::Mutex<Vec<String>>>| {
        handler(move |request| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().unwrap().push(request.backend.clone());
                if request.headers.contains_key(GRPC_PREVIOUS_RPC_ATTEMPTS) {
                    Reply::Grpc(0)
                } else {
                    Reply::Grpc(14)
                }
            }
        })
    };
    let a = Backend::start(35, make(Arc::clone(&seen))).await;
    let b = Backend::start(36, make(Arc::clone(&seen))).await;
    let service = service_with(policy("unavailable", 1), &[&a, &b]);
    for _ in 0..10 {
        seen.lock().unwrap().clear();
        assert!(grpc(&service, "/x", &[]).await.ok());
        let order = seen.lock().unwrap().clone();
        assert_eq!(order.len(), 2);
        assert_ne!(order[0], order[1], "the retry went to the same endpoint");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_caps_a_retry_storm() {
    let backend = Backend::start(
        37,
        always(Reply::After(
            Duration::from_millis(50),
            Box::new(Reply::Grpc(14)),
        )),
    )
    .await;
    let budget = RetryBudget {
        budget_percent: 20.0,
        min_retry_concurrency: 1,
    };
    let metrics = Arc::new(Counts::default());
    let service = service_with_metrics(
        policy("unavailable", 4).with_budget(budget),
        &[&backend],
        Arc::clone(&metrics) as Arc<dyn Metrics>,
    );
    let requests = 50;
    let calls: Vec<_> = (0..requests)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { grpc(&service, "/x", &[]).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().grpc_status, Some(14));
    }
    let attempts = backend.hits();
    // Without a budget: 250 attempts. With 20% of ~50 active requests, about 10 retries run at a time.
    assert!(
        attempts < requests * 2,
        "{attempts} attempts for {requests} requests"
    );
    assert!(
        metrics.exhausted.load(Ordering::SeqCst) > 0,
        "the budget never said no"
    );
    assert_eq!(metrics.requests.load(Ordering::SeqCst), requests);
    assert_eq!(metrics.finished.load(Ordering::SeqCst), requests);
    assert_eq!(metrics.attempts.load(Ordering::SeqCst), attempts);
    assert_eq!(metrics.retries.load(Ordering::SeqCst), attempts - requests);
    assert!(
        attempts > requests,
        "some retries must still happen: {attempts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_try_timeout_moves_on_to_the_next_attempt() {
    let slow_first = handler(|seen| async move {
        if seen.headers.contains_key(GRPC_PREVIOUS_RPC_ATTEMPTS) {
            Reply::Grpc(0)
        } else {
            Reply::After(Duration::from_secs(5), Box::new(Reply::Grpc(0)))
        }
    });
    let backend = Backend::start(38, slow_first).await;
    let policy = policy("deadline-exceeded", 1).with_per_try_timeout(Duration::from_millis(100));
    let service = service_with(policy, &[&backend]);
    let started = std::time::Instant::now();
    assert!(grpc(&service, "/x", &[]).await.ok());
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(100) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_replayed_up_to_the_buffer_limit() {
    let bodies = Arc::new(std::sync::Mutex::new(Vec::<Bytes>::new()));
    let recorded = Arc::clone(&bodies);
    let backend = Backend::start(
        39,
        handler(move |seen| {
            let recorded = Arc::clone(&recorded);
            async move {
                recorded.lock().unwrap().push(seen.body.clone());
                Reply::Http(503)
            }
        }),
    )
    .await;
    let service = service_with(
        policy("5xx", 2).with_max_buffered_body_bytes(16_usize),
        &[&backend],
    );
    let small = Bytes::from_static(b"0123456789");
    assert_eq!(send(&service, "/x", &[], small.clone()).await.status, 503);
    assert_eq!(
        *bodies.lock().unwrap(),
        vec![small.clone(), small.clone(), small]
    );
    bodies.lock().unwrap().clear();
    let large = Bytes::from(vec![7_u8; 64]);
    assert_eq!(send(&service, "/x", &[], large.clone()).await.status, 503);
    assert_eq!(
        *bodies.lock().unwrap(),
        vec![large],
        "a body over the limit is sent once and not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_are_retried_on_another_endpoint() {
    let good = Backend::start(40, always(Reply::Grpc(0))).await;
    let mut bad = Backend::start(41, always(Reply::Grpc(0))).await;
    bad.stop().await;
    let service = service_with(policy("connect-failure", 2), &[&good, &bad]);
    let calls = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        assert!(grpc(&service, "/x", &[]).await.ok());
        calls.fetch_add(1, Ordering::SeqCst);
    }
    assert_eq!(good.hits(), 20);
}
