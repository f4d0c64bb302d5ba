//! Priority failover (gRFC A27/A56) over real connections: endpoints that cannot be reached leave the picker, the
//! next priority takes the traffic, and traffic returns when they heal.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use mesh_core::cluster::LbPolicy;
use mesh_core::route::{RetryBackoff, RetryOn, RetryPolicy, RouteAction};
use mesh_tower::MeshService;
use support::backend::always;
use support::config::{cluster, leaf, loc, snapshot, vhost, with};
use support::{Backend, Reply, eventually, grpc, options, tally};

fn retrying() -> RouteAction {
    let (retry_on, _) = RetryOn::parse("unavailable,reset,connect-failure");
    RouteAction::cluster("c").with_retry_policy(RetryPolicy::new(retry_on, 4).with_backoff(
        RetryBackoff::new(Duration::from_millis(1), Duration::from_millis(5)),
    ))
}

async fn setup(p0: &[&Backend], p1: &[&Backend]) -> MeshService {
    let service = MeshService::new(options());
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![with(retrying())]),
        vec![leaf(
            cluster("c", LbPolicy::RoundRobin),
            vec![
                loc("p0", 0, p0.iter().map(|b| b.addr).collect()),
                loc("p1", 1, p1.iter().map(|b| b.addr).collect()),
            ],
        )],
        None,
    ))));
    service
}

async fn burst(service: &MeshService, n: usize) -> Vec<support::Answer> {
    let mut answers = Vec::with_capacity(n);
    for _ in 0..n {
        answers.push(grpc(service, "/pkg.Svc/Call", &[]).await);
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_fails_over_to_priority_1_without_failures_and_returns() {
    let mut a = Backend::start(21, always(Reply::Grpc(0))).await;
    let mut b = Backend::start(22, always(Reply::Grpc(0))).await;
    let c = Backend::start(23, always(Reply::Grpc(0))).await;
    let service = setup(&[&a, &b], &[&c]).await;

    let answers = burst(&service, 40).await;
    assert!(answers.iter().all(support::Answer::ok));
    assert_eq!(
        c.hits(),
        0,
        "priority 1 gets nothing while priority 0 is up"
    );

    a.stop().await;
    b.stop().await;
    let answers = burst(&service, 60).await;
    let failed: Vec<_> = answers.iter().filter(|a| !a.ok()).collect();
    assert!(
        failed.is_empty(),
        "failed requests during failover: {failed:?}"
    );
    let counts = tally(&answers);
    assert_eq!(counts.get("127.0.0.23"), Some(&60), "{counts:?}");

    let connected_before = [&a, &b].map(|p0| p0.connections.load(Ordering::SeqCst));
    a.restart().await;
    b.restart().await;
    // Reconnect backoff is at most 200 ms in tests: traffic returns once a P0 endpoint connects again.
    let returned = eventually(Duration::from_secs(5), async || {
        grpc(&service, "/pkg.Svc/Call", &[])
            .await
            .backend
            .as_deref()
            != Some("127.0.0.23")
    })
    .await;
    assert!(returned, "traffic did not return to priority 0");
    // Once both P0 endpoints have reconnected, priority 1 is idle again.
    let reconnected = eventually(Duration::from_secs(5), async || {
        [&a, &b]
            .iter()
            .zip(connected_before)
            .all(|(p0, before)| p0.connections.load(Ordering::SeqCst) > before)
    })
    .await;
    assert!(reconnected, "priority 0's endpoints did not reconnect");
    let before = c.hits();
    let answers = burst(&service, 40).await;
    assert!(answers.iter().all(support::Answer::ok));
    assert_eq!(
        c.hits(),
        before,
        "priority 1 still gets traffic after priority 0 healed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_priority_0_failure_keeps_traffic_in_priority_0() {
    let mut a = Backend::start(24, always(Reply::Grpc(0))).await;
    let b = Backend::start(25, always(Reply::Grpc(0))).await;
    let c = Backend::start(26, always(Reply::Grpc(0))).await;
    let service = setup(&[&a, &b], &[&c]).await;
    assert!(burst(&service, 20).await.iter().all(support::Answer::ok));
    a.stop().await;
    let answers = burst(&service, 60).await;
    assert!(
        answers.iter().all(support::Answer::ok),
        "{:?}",
        tally(&answers)
    );
    assert_eq!(
        c.hits(),
        0,
        "priority 1 must get nothing while priority 0 has a usable endpoint"
    );
    assert_eq!(tally(&answers).get("127.0.0.25"), Some(&60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_any_reachable_endpoint_requests_fail_with_the_counts_and_the_connect_error() {
    let mut a = Backend::start(27, always(Reply::Grpc(0))).await;
    let service = MeshService::new(options());
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![support::config::to("c")]),
        vec![leaf(
            cluster("c", LbPolicy::RoundRobin),
            vec![loc("p0", 0, vec![a.addr])],
        )],
        None,
    ))));
    assert!(grpc(&service, "/x", &[]).await.ok());
    a.stop().await;
    let failed = eventually(Duration::from_secs(5), async || {
        grpc(&service, "/x", &[])
            .await
            .grpc_message
            .is_some_and(|m| {
                m.contains("no healthy endpoints in cluster \"c\"")
                    && m.contains("1 unreachable")
                    // The endpoint's own failure, as gRPC reports the last connection error.
                    && m.contains(&format!("last connection error: connect to {}", a.addr))
            })
    })
    .await;
    assert!(failed);
}
