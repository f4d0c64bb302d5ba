//! Load reports (gRFC A27) from the request path: `MeshOptions::load_store` counts each attempt to a locality of a
//! cluster with an `lrs_server` (issued, in progress, succeeded, failed) and its drops; other clusters count nothing.

mod support;

use std::sync::Arc;
use std::time::Duration;

use mesh_core::cluster::{LbPolicy, LoadReportServer};
use mesh_core::endpoint::DropOverload;
use mesh_core::fraction::{Denominator, FractionalPercent};
use mesh_core::load::{ClusterLoadReport, LoadStore, LocalityLoadReport};
use mesh_core::locality::Locality;
use mesh_core::route::{Route, RouteAction, RouteMatch};
use mesh_core::snapshot::ClusterConfig;
use mesh_tower::MeshService;
use support::backend::{always, handler};
use support::config::{cluster, endpoint_set, leaf, loc, snapshot, vhost};
use support::{Backend, Reply, grpc, options};

fn by_prefix(prefix: &str, cluster: &str) -> Route {
    Route::new(RouteMatch::prefix(prefix), RouteAction::cluster(cluster))
}

fn locality(report: &ClusterLoadReport, zone: &str) -> Option<LocalityLoadReport> {
    report
        .localities
        .iter()
        .find(|l| l.locality == Locality::new("r", zone, ""))
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_count_per_locality_of_reported_clusters_only() {
    let ok = Backend::start(1, always(Reply::Grpc(0))).await;
    let failing = Backend::start(2, always(Reply::Grpc(14))).await;
    // The gRPC status comes in trailers: the attempt is counted when the stream ends.
    let streaming = Backend::start(3, always(Reply::GrpcTrailers(0))).await;
    let store = LoadStore::new();
    let service = MeshService::new(options().with_load_store(store.clone()));
    let reported = cluster("reported", LbPolicy::RoundRobin)
        .with_lrs_server(Some(LoadReportServer::SameAsXds));
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![
            by_prefix("/quiet", "quiet"),
            by_prefix("/", "reported"),
        ]),
        vec![
            leaf(
                reported,
                vec![
                    loc("a", 0, vec![ok.addr]),
                    loc("b", 0, vec![failing.addr]),
                    loc("c", 0, vec![streaming.addr]),
                ],
            ),
            leaf(
                cluster("quiet", LbPolicy::RoundRobin),
                vec![loc("q", 0, vec![ok.addr])],
            ),
        ],
        None,
    ))));
    for _ in 0..30 {
        grpc(&service, "/svc/Call", &[]).await;
        grpc(&service, "/quiet/Call", &[]).await;
    }
    // The reporter learns of the cluster after the request path did: nothing recorded so far is lost.
    store.set_clusters([(Arc::from("reported"), None)]);
    let report = store.take("reported").unwrap();
    let (a, b, c) = (
        locality(&report, "a").unwrap(),
        locality(&report, "b").unwrap(),
        locality(&report, "c").unwrap(),
    );
    assert_eq!(a.issued + b.issued + c.issued, 30, "{report:?}");
    assert!(a.issued > 0 && b.issued > 0 && c.issued > 0, "{report:?}");
    assert_eq!((a.succeeded, a.errored, a.in_progress), (a.issued, 0, 0));
    assert_eq!((b.succeeded, b.errored, b.in_progress), (0, b.issued, 0));
    assert_eq!((c.succeeded, c.errored, c.in_progress), (c.issued, 0, 0));
    assert!(
        store.take("quiet").is_none(),
        "a cluster without lrs_server is not counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_is_in_progress_and_drops_count_by_category() {
    let slow = Backend::start(
        4,
        handler(|_| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Reply::Grpc(0)
        }),
    )
    .await;
    let store = LoadStore::new();
    store.set_clusters([(Arc::from("reported"), None)]);
    let service = MeshService::new(options().with_load_store(store.clone()));
    let reported = cluster("reported", LbPolicy::RoundRobin)
        .with_lrs_server(Some(LoadReportServer::SameAsXds));
    let set = endpoint_set("reported", vec![loc("a", 0, vec![slow.addr])]);
    let with_drops = (*set).clone().with_drop_overloads(vec![DropOverload::new(
        "throttle",
        FractionalPercent::new(100, Denominator::Hundred),
    )]);
    let config = |set| ClusterConfig::with_endpoints(Arc::new(reported.clone()), set);
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![by_prefix("/", "reported")]),
        vec![config(set)],
        None,
    ))));
    let call = {
        let service = service.clone();
        tokio::spawn(async move { grpc(&service, "/svc/Call", &[]).await })
    };
    assert!(
        support::eventually(Duration::from_secs(5), async || slow.hits() == 1).await,
        "the request reached the backend"
    );
    let during = store.take("reported").unwrap();
    assert_eq!(
        (
            during.localities[0].issued,
            during.localities[0].in_progress
        ),
        (1, 1)
    );
    assert!(call.await.unwrap().ok());
    let after = store.take("reported").unwrap();
    assert_eq!(
        (
            after.localities[0].succeeded,
            after.localities[0].in_progress
        ),
        (1, 0)
    );
    // Every request dropped by a 100% drop overload, counted under its category.
    service.update(Some(Ok(snapshot(
        2,
        vhost(vec![by_prefix("/", "reported")]),
        vec![config(Arc::new(with_drops))],
        None,
    ))));
    for _ in 0..3 {
        assert!(!grpc(&service, "/svc/Call", &[]).await.ok());
    }
    let dropped = store.take("reported").unwrap();
    assert_eq!(dropped.dropped, vec![(Arc::from("throttle"), 3)]);
}
