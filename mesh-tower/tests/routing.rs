//! Routing end to end: virtual host and route, weighted splits, cluster headers, aggregate clusters, and the
//! answers for requests that cannot be routed.

mod support;

use std::time::Duration;

use mesh_core::cluster::{Cluster, DiscoveryKind, LbPolicy};
use mesh_core::route::{
    ClusterSpecifier, HeaderMatcher, Route, RouteAction, RouteMatch, WeightedCluster,
};
use mesh_core::snapshot::ClusterConfig;
use mesh_tower::MeshService;
use support::backend::always;
use support::config::{cluster, leaf, loc, snapshot, to, vhost, with};
use support::{Backend, Reply, grpc, options, send, tally};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_reaches_its_cluster_over_http2() {
    let backend = Backend::start(11, always(Reply::Grpc(0))).await;
    let service = MeshService::new(options());
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![to("a")]),
        vec![leaf(
            cluster("a", LbPolicy::RoundRobin),
            vec![loc("z", 0, vec![backend.addr])],
        )],
        None,
    ))));
    let answer = grpc(&service, "/pkg.Svc/Call", &[]).await;
    assert!(answer.ok(), "{answer:?}");
    assert_eq!(answer.backend.as_deref(), Some("127.0.0.11"));
    assert_eq!(service.version(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_20_80_holds_within_five_percent() {
    let a = Backend::start(12, always(Reply::Grpc(0))).await;
    let b = Backend::start(13, always(Reply::Grpc(0))).await;
    let split = RouteAction::weighted(vec![
        WeightedCluster::new("a", 20),
        WeightedCluster::new("b", 80),
    ])
    .unwrap();
    let service = MeshService::new(options());
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![with(split)]),
        vec![
            leaf(
                cluster("a", LbPolicy::RoundRobin),
                vec![loc("z", 0, vec![a.addr])],
            ),
            leaf(
                cluster("b", LbPolicy::RoundRobin),
                vec![loc("z", 0, vec![b.addr])],
            ),
        ],
        None,
    ))));
    let mut answers = Vec::new();
    for _ in 0..1000 {
        answers.push(grpc(&service, "/pkg.Svc/Call", &[]).await);
    }
    assert!(answers.iter().all(support::Answer::ok));
    let counts = tally(&answers);
    let (to_a, to_b) = (counts["127.0.0.12"], counts["127.0.0.13"]);
    assert!((190..=210).contains(&to_a), "a got {to_a}");
    assert!((760..=840).contains(&to_b), "b got {to_b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_match_path_and_headers_and_cluster_headers_pick_the_cluster() {
    let a = Backend::start(14, always(Reply::Grpc(0))).await;
    let b = Backend::start(15, always(Reply::Grpc(0))).await;
    let routes = vec![
        Route::new(RouteMatch::prefix("/admin"), RouteAction::cluster("b")),
        Route::new(
            RouteMatch::any().with_header(HeaderMatcher::present("x-pick")),
            RouteAction::new(ClusterSpecifier::Header("x-pick".into())),
        ),
        Route::new(
            RouteMatch::any().with_header(HeaderMatcher::exact("content-type", "application/grpc")),
            RouteAction::cluster("a"),
        ),
    ];
    let service = MeshService::new(options());
    service.update(Some(Ok(snapshot(
        1,
        vhost(routes),
        vec![
            leaf(
                cluster("a", LbPolicy::RoundRobin),
                vec![loc("z", 0, vec![a.addr])],
            ),
            leaf(
                cluster("b", LbPolicy::RoundRobin),
                vec![loc("z", 0, vec![b.addr])],
            ),
        ],
        None,
    ))));
    assert_eq!(
        grpc(&service, "/admin/x", &[]).await.backend.as_deref(),
        Some("127.0.0.15")
    );
    assert_eq!(
        grpc(&service, "/pkg.Svc/Call", &[])
            .await
            .backend
            .as_deref(),
        Some("127.0.0.14")
    );
    // gRFC A28: gRPC sees content-type as application/grpc whatever its suffix.
    let plus = send(
        &service,
        "/pkg.Svc/Call",
        &[("content-type", "application/grpc+proto")],
        Default::default(),
    )
    .await;
    assert_eq!(plus.backend.as_deref(), Some("127.0.0.14"));
    assert_eq!(
        grpc(&service, "/pkg.Svc/Call", &[("x-pick", "b")])
            .await
            .backend
            .as_deref(),
        Some("127.0.0.15")
    );
    let unknown = grpc(&service, "/pkg.Svc/Call", &[("x-pick", "nope")]).await;
    assert_eq!(unknown.grpc_status, Some(14));
    assert!(
        unknown
            .grpc_message
            .unwrap()
            .contains("unknown cluster \"nope\"")
    );
    // Plain HTTP: no route (the gRPC-only route does not match) is a 404 with the reason.
    let plain = send(&service, "/other", &[], Default::default()).await;
    assert_eq!(plain.status, 404, "{plain:?}");
    assert!(String::from_utf8_lossy(&plain.body).contains("no route"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_forwarding_and_failed_clusters_fail_with_unavailable_and_a_reason() {
    let service = MeshService::new(options());
    let routes = vec![
        Route::non_forwarding(RouteMatch::prefix("/local"))
            .with_name(std::sync::Arc::<str>::from("local-only")),
        to("broken"),
    ];
    let listener_snapshot = {
        use std::sync::Arc;

        use mesh_core::listener::{HttpConnectionManager, Listener, RouteSource};
        use mesh_core::route::RouteConfig;
        use mesh_core::snapshot::ConfigSnapshot;
        let routes = Arc::new(RouteConfig::new("routes", vec![vhost(routes)]));
        let listener = Arc::new(Listener::client(
            "svc",
            HttpConnectionManager::new(RouteSource::Rds("routes".into())),
        ));
        Arc::new(
            ConfigSnapshot::builder("svc", listener, routes)
                .cluster_error("broken", "cluster \"broken\" does not exist")
                .build(1)
                .unwrap(),
        )
    };
    service.update(Some(Ok(listener_snapshot)));
    let local = grpc(&service, "/local/x", &[]).await;
    assert_eq!(local.grpc_status, Some(14));
    assert!(local.grpc_message.unwrap().contains("non-forwarding"));
    let broken = grpc(&service, "/x", &[]).await;
    assert_eq!(broken.grpc_status, Some(14));
    assert!(broken.grpc_message.unwrap().contains("does not exist"));
    service.update(Some(Err("listener \"svc\" does not exist".into())));
    let failed = grpc(&service, "/x", &[]).await;
    assert_eq!(failed.grpc_status, Some(14));
    assert!(
        failed
            .grpc_message
            .unwrap()
            .contains("listener \"svc\" does not exist")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregate_cluster_uses_its_first_leaf_with_usable_endpoints() {
    let primary = Backend::start(16, always(Reply::Grpc(0))).await;
    let secondary = Backend::start(17, always(Reply::Grpc(0))).await;
    let aggregate = ClusterConfig::aggregate(
        std::sync::Arc::new(Cluster::new(
            "agg",
            DiscoveryKind::Aggregate {
                clusters: vec!["one".into(), "two".into()],
            },
        )),
        vec!["one".into(), "two".into()],
    );
    let unhealthy_one = {
        use mesh_core::endpoint::{Endpoint, EndpointSet, HealthStatus, LocalityEndpoints};
        let set = EndpointSet::new(
            "one",
            vec![LocalityEndpoints::new(
                Default::default(),
                0,
                1,
                vec![Endpoint::new(primary.addr).with_health(HealthStatus::Unhealthy)],
            )],
        );
        ClusterConfig::with_endpoints(
            std::sync::Arc::new(cluster("one", LbPolicy::RoundRobin)),
            std::sync::Arc::new(set),
        )
    };
    let service = MeshService::new(options());
    let two = || {
        leaf(
            cluster("two", LbPolicy::RoundRobin),
            vec![loc("z", 0, vec![secondary.addr])],
        )
    };
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![to("agg")]),
        vec![
            aggregate.clone(),
            leaf(
                cluster("one", LbPolicy::RoundRobin),
                vec![loc("z", 0, vec![primary.addr])],
            ),
            two(),
        ],
        None,
    ))));
    assert_eq!(
        grpc(&service, "/x", &[]).await.backend.as_deref(),
        Some("127.0.0.16")
    );
    service.update(Some(Ok(snapshot(
        2,
        vhost(vec![to("agg")]),
        vec![aggregate, unhealthy_one, two()],
        None,
    ))));
    assert_eq!(
        grpc(&service, "/x", &[]).await.backend.as_deref(),
        Some("127.0.0.17")
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_waits_for_the_first_configuration_up_to_its_deadline() {
    let service = MeshService::new(options().with_initial_config_timeout(Duration::from_secs(5)));
    let started = tokio::time::Instant::now();
    let answer = grpc(&service, "/x", &[("grpc-timeout", "300m")]).await;
    assert_eq!(answer.grpc_status, Some(14));
    assert!(answer.grpc_message.unwrap().contains("no configuration"));
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    let answer = send(&service, "/x", &[], Default::default()).await;
    assert_eq!(answer.status, 503);
    assert_eq!(started.elapsed(), Duration::from_millis(5300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_overloads_drop_requests_with_their_category() {
    use mesh_core::endpoint::{DropOverload, Endpoint, EndpointSet, LocalityEndpoints};
    use mesh_core::fraction::FractionalPercent;

    let backend = Backend::start(18, always(Reply::Grpc(0))).await;
    let set = EndpointSet::new(
        "c",
        vec![LocalityEndpoints::new(
            Default::default(),
            0,
            1,
            vec![Endpoint::new(backend.addr)],
        )],
    )
    .with_drop_overloads(vec![DropOverload::new(
        "throttle",
        FractionalPercent::percent(100),
    )]);
    let config = ClusterConfig::with_endpoints(
        std::sync::Arc::new(cluster("c", LbPolicy::RoundRobin)),
        std::sync::Arc::new(set),
    );
    let service = MeshService::new(options());
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![to("c")]),
        vec![config],
        None,
    ))));
    let answer = grpc(&service, "/x", &[]).await;
    assert_eq!(answer.grpc_status, Some(14));
    assert!(
        answer
            .grpc_message
            .unwrap()
            .contains("drop overload category \"throttle\"")
    );
    assert_eq!(backend.hits(), 0);
}
