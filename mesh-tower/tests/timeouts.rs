//! Deadlines (gRFC A31): the route's `max_stream_duration` (else the listener's), capped by `grpc-timeout`; they fire
//! at the configured time and cover delays, retries and the whole response stream.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_core::cluster::LbPolicy;
use mesh_core::fraction::FractionalPercent;
use mesh_core::listener::{
    HttpConnectionManager, HttpFilter, HttpFilterConfig, Listener, RouteSource,
};
use mesh_core::route::{FaultDelay, FaultInjection, RouteAction, RouteConfig};
use mesh_core::snapshot::ConfigSnapshot;
use mesh_tower::MeshService;
use support::backend::always;
use support::config::{cluster, leaf, loc, snapshot, to, vhost, with};
use support::{Backend, Reply, grpc, options, send};

const MS: Duration = Duration::from_millis(1);

fn slow() -> Reply {
    Reply::After(Duration::from_secs(5), Box::new(Reply::Grpc(0)))
}

async fn service_for(action: RouteAction, backend: &Backend) -> MeshService {
    let service = MeshService::new(options());
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![with(action)]),
        vec![leaf(
            cluster("c", LbPolicy::RoundRobin),
            vec![loc("z", 0, vec![backend.addr])],
        )],
        None,
    ))));
    service
}

fn assert_near(elapsed: Duration, expected: Duration) {
    assert!(
        elapsed >= expected && elapsed < expected + 400 * MS,
        "fired after {elapsed:?}, configured {expected:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_stream_duration_fires_deadline_exceeded_at_the_configured_time() {
    let backend = Backend::start(81, always(slow())).await;
    let service = service_for(
        RouteAction::cluster("c").with_max_stream_duration(200 * MS),
        &backend,
    )
    .await;
    let started = Instant::now();
    let answer = grpc(&service, "/x", &[]).await;
    assert_near(started.elapsed(), 200 * MS);
    assert_eq!(answer.grpc_status, Some(4), "{answer:?}");
    // Plain HTTP gets a 504.
    let started = Instant::now();
    let answer = send(&service, "/x", &[], Default::default()).await;
    assert_near(started.elapsed(), 200 * MS);
    assert_eq!(answer.status, 504);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_timeout_header_shortens_the_deadline_and_is_passed_on() {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let recorded = Arc::clone(&seen);
    let backend = Backend::start(
        82,
        support::backend::handler(move |request| {
            *recorded.lock().unwrap() = request.headers.get("grpc-timeout").cloned();
            async { Reply::After(Duration::from_secs(5), Box::new(Reply::Grpc(0))) }
        }),
    )
    .await;
    let service = service_for(
        RouteAction::cluster("c").with_max_stream_duration(Duration::from_secs(2)),
        &backend,
    )
    .await;
    let started = Instant::now();
    let answer = grpc(&service, "/x", &[("grpc-timeout", "150m")]).await;
    assert_near(started.elapsed(), 150 * MS);
    assert_eq!(answer.grpc_status, Some(4));
    let sent = seen.lock().unwrap().clone().unwrap();
    let sent = mesh_tower::timeout::parse_grpc_timeout(sent.as_bytes()).unwrap();
    assert!(sent <= 150 * MS && sent > 100 * MS, "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_timeout_header_max_caps_the_header() {
    let backend = Backend::start(83, always(slow())).await;
    let action = RouteAction::cluster("c")
        .with_max_stream_duration(Duration::from_secs(3))
        .with_grpc_timeout_header_max(100 * MS);
    let service = service_for(action, &backend).await;
    let started = Instant::now();
    let answer = grpc(&service, "/x", &[("grpc-timeout", "10S")]).await;
    assert_near(started.elapsed(), 100 * MS);
    assert_eq!(answer.grpc_status, Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_covers_the_response_stream() {
    let backend = Backend::start(84, always(Reply::SlowTrailers(Duration::from_secs(5)))).await;
    let service = service_for(
        RouteAction::cluster("c").with_max_stream_duration(200 * MS),
        &backend,
    )
    .await;
    let started = Instant::now();
    let answer = grpc(&service, "/x", &[]).await;
    assert_near(started.elapsed(), 200 * MS);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.grpc_status, Some(4), "{answer:?}");
    assert!(answer.trailers.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_max_stream_duration_applies_when_the_route_sets_none() {
    let backend = Backend::start(85, always(slow())).await;
    let routes = Arc::new(RouteConfig::new("routes", vec![vhost(vec![to("c")])]));
    let hcm = HttpConnectionManager::new(RouteSource::Rds("routes".into()))
        .with_max_stream_duration(150 * MS);
    let listener = Arc::new(Listener::client("svc", hcm));
    let snapshot = ConfigSnapshot::builder("svc", listener, routes)
        .cluster(leaf(
            cluster("c", LbPolicy::RoundRobin),
            vec![loc("z", 0, vec![backend.addr])],
        ))
        .build(1)
        .unwrap();
    let service = MeshService::new(options());
    service.update(Some(Ok(Arc::new(snapshot))));
    let started = Instant::now();
    let answer = grpc(&service, "/x", &[]).await;
    assert_near(started.elapsed(), 150 * MS);
    assert_eq!(answer.grpc_status, Some(4));
}

#[tokio::test(start_paused = true)]
async fn a_fault_delay_counts_against_the_deadline_in_paused_time() {
    // The endpoint is never contacted: the deadline fires during the injected delay.
    let unused: std::net::SocketAddr = "127.0.0.86:9".parse().unwrap();
    let fault = FaultInjection::default().with_delay(FaultDelay::Fixed {
        delay: Duration::from_secs(10),
        percentage: FractionalPercent::percent(100),
    });
    let routes = Arc::new(RouteConfig::new(
        "routes",
        vec![vhost(vec![with(
            RouteAction::cluster("c").with_max_stream_duration(Duration::from_secs(1)),
        )])],
    ));
    let hcm =
        HttpConnectionManager::new(RouteSource::Rds("routes".into())).with_http_filters(vec![
            HttpFilter::new("fault", HttpFilterConfig::Fault(fault)),
            HttpFilter::router(),
        ]);
    let snapshot = ConfigSnapshot::builder("svc", Arc::new(Listener::client("svc", hcm)), routes)
        .cluster(leaf(
            cluster("c", LbPolicy::RoundRobin),
            vec![loc("z", 0, vec![unused])],
        ))
        .build(1)
        .unwrap();
    let service = MeshService::new(options());
    service.update(Some(Ok(Arc::new(snapshot))));
    let started = tokio::time::Instant::now();
    let answer = grpc(&service, "/x", &[]).await;
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(answer.grpc_status, Some(4));
    assert!(
        answer
            .grpc_message
            .unwrap()
            .contains("deadline exceeded after 1s")
    );
}
