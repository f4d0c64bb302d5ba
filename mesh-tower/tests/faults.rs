//! Fault injection (gRFC A33) end to end: percentages, header control and per-route overrides.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mesh_core::cluster::LbPolicy;
use mesh_core::fraction::FractionalPercent;
use mesh_core::route::{
    FaultAbort, FaultAbortKind, FaultDelay, FaultInjection, Route, RouteAction, RouteMatch,
};
use mesh_tower::MeshService;
use mesh_tower::metrics::Metrics;
use support::backend::always;
use support::config::{cluster, leaf, loc, snapshot, to, vhost};
use support::{Backend, Reply, grpc, options};

#[derive(Default)]
struct Faults {
    delays: AtomicUsize,
    aborts: AtomicUsize,
}

impl Metrics for Faults {
    fn fault_injected(&self, _cluster: &str, abort: bool) {
        if abort {
            self.aborts.fetch_add(1, Ordering::SeqCst);
        } else {
            self.delays.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_percentages_hold_within_tolerance() {
    let backend = Backend::start(91, always(Reply::Grpc(0))).await;
    let fault = FaultInjection::default()
        .with_delay(FaultDelay::Fixed {
            delay: Duration::from_millis(1),
            percentage: FractionalPercent::percent(20),
        })
        .with_abort(FaultAbort::new(
            FaultAbortKind::Grpc(8),
            FractionalPercent::percent(30),
        ));
    let metrics = Arc::new(Faults::default());
    let service =
        MeshService::new(options().with_metrics(Arc::clone(&metrics) as Arc<dyn Metrics>));
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![to("c")]),
        vec![leaf(
            cluster("c", LbPolicy::RoundRobin),
            vec![loc("z", 0, vec![backend.addr])],
        )],
        Some(fault),
    ))));
    let n = 1000;
    let mut aborted = 0;
    for _ in 0..n {
        let answer = grpc(&service, "/x", &[]).await;
        match answer.grpc_status {
            Some(8) => aborted += 1,
            Some(0) => {}
            other => panic!("unexpected status {other:?}"),
        }
    }
    // Binomial(1000, p): four standard deviations are about ±58 at 30% and ±51 at 20%.
    assert!((240..=360).contains(&aborted), "{aborted} aborted of {n}");
    assert_eq!(metrics.aborts.load(Ordering::SeqCst), aborted);
    let delayed = metrics.delays.load(Ordering::SeqCst);
    assert!((150..=250).contains(&delayed), "{delayed} delayed of {n}");
    assert_eq!(backend.hits(), n - aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_controlled_faults_and_route_overrides() {
    let backend = Backend::start(92, always(Reply::Grpc(0))).await;
    let by_header = FaultInjection::default()
        .with_delay(FaultDelay::Header {
            percentage: FractionalPercent::percent(100),
        })
        .with_abort(FaultAbort::new(
            FaultAbortKind::Header,
            FractionalPercent::percent(100),
        ));
    let routes = vec![
        Route::new(RouteMatch::prefix("/override"), RouteAction::cluster("c")).with_fault_override(
            FaultInjection::default().with_abort(FaultAbort::new(
                FaultAbortKind::Http(404),
                FractionalPercent::percent(100),
            )),
        ),
        to("c"),
    ];
    let service = MeshService::new(options());
    service.update(Some(Ok(snapshot(
        1,
        vhost(routes),
        vec![leaf(
            cluster("c", LbPolicy::RoundRobin),
            vec![loc("z", 0, vec![backend.addr])],
        )],
        Some(by_header),
    ))));
    // No fault headers: no fault.
    assert!(grpc(&service, "/x", &[]).await.ok());
    // Header-selected abort and delay.
    assert_eq!(
        grpc(
            &service,
            "/x",
            &[("x-envoy-fault-abort-grpc-request", "10")]
        )
        .await
        .grpc_status,
        Some(10)
    );
    let started = Instant::now();
    assert!(
        grpc(&service, "/x", &[("x-envoy-fault-delay-request", "120")])
            .await
            .ok()
    );
    assert!(started.elapsed() >= Duration::from_millis(120));
    // A percentage header of 0 turns the header fault off.
    let answer = grpc(
        &service,
        "/x",
        &[
            ("x-envoy-fault-abort-grpc-request", "10"),
            ("x-envoy-fault-abort-request-percentage", "0"),
        ],
    )
    .await;
    assert!(answer.ok());
    // The route's override replaces the filter's config: HTTP 404 maps to UNIMPLEMENTED for gRPC.
    assert_eq!(grpc(&service, "/override", &[]).await.grpc_status, Some(12));
}
