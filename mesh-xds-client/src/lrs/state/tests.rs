use super::*;
use mesh_core::locality::Locality;

fn response(all: bool, clusters: &[&str], millis: i32) -> LoadStatsResponse {
    LoadStatsResponse {
        clusters: clusters.iter().map(|c| (*c).to_owned()).collect(),
        send_all_clusters: all,
        load_reporting_interval: Some(PbDuration {
            seconds: 0,
            nanos: millis * 1_000_000,
        }),
        report_endpoint_granularity: false,
    }
}

fn ours(names: &[&str]) -> BTreeSet<Arc<str>> {
    names.iter().map(|n| Arc::from(*n)).collect()
}

#[test]
fn first_request_names_the_node_and_its_send_all_clusters_feature() {
    let mut state = LrsState::new(PbNode {
        id: "n".into(),
        ..Default::default()
    });
    let first = state.connected();
    let node = first.node.unwrap();
    assert_eq!(node.id, "n");
    assert!(
        node.client_features
            .contains(&CLIENT_FEATURE_SEND_ALL_CLUSTERS.to_owned())
    );
    assert!(first.cluster_stats.is_empty());
    assert_eq!(
        state.next_deadline(),
        None,
        "nothing due before the server answers"
    );
}

#[test]
fn reports_come_every_interval_with_the_counts_since_the_last_one() {
    let store = LoadStore::new();
    store.set_clusters([
        (Arc::from("a"), None),
        (Arc::from("b"), Some(Arc::from("b-eds"))),
    ]);
    let east = Locality::new("r", "east", "");
    let mut state = LrsState::new(PbNode::default());
    let _ = state.connected();
    let t0 = Instant::now();
    state.response(&response(true, &[], 100), t0);
    assert_eq!(state.next_deadline(), Some(t0 + Duration::from_millis(100)));
    store.issued("a", &east);
    store.finished("a", &east, true);
    store.dropped("b", "throttle");
    let mine = ours(&["a", "b"]);
    assert!(
        state
            .tick(t0 + Duration::from_millis(50), &store, &mine)
            .is_none()
    );
    let report = state
        .tick(t0 + Duration::from_millis(100), &store, &mine)
        .unwrap();
    assert!(report.node.is_none());
    assert_eq!(report.cluster_stats.len(), 2);
    let a = &report.cluster_stats[0];
    assert_eq!(a.cluster_name, "a");
    assert_eq!(a.upstream_locality_stats[0].total_successful_requests, 1);
    assert_eq!(a.upstream_locality_stats[0].total_issued_requests, 1);
    assert_eq!(a.load_report_interval.unwrap().nanos, 100_000_000);
    let b = &report.cluster_stats[1];
    assert_eq!(b.cluster_service_name, "b-eds");
    assert_eq!(b.total_dropped_requests, 1);
    assert_eq!(b.dropped_requests[0].category, "throttle");
    // The next report has fresh counts and a fresh interval.
    let next = state
        .tick(t0 + Duration::from_millis(230), &store, &mine)
        .unwrap();
    assert!(next.cluster_stats[0].upstream_locality_stats.is_empty());
    assert_eq!(
        next.cluster_stats[0].load_report_interval.unwrap().nanos,
        130_000_000
    );
}

#[test]
fn only_named_clusters_of_this_server_are_reported_and_counts_survive_a_reconnect() {
    let store = LoadStore::new();
    store.set_clusters([
        (Arc::from("a"), None),
        (Arc::from("b"), None),
        (Arc::from("c"), None),
    ]);
    let east = Locality::new("r", "east", "");
    let mut state = LrsState::new(PbNode::default());
    let _ = state.connected();
    let t0 = Instant::now();
    state.response(&response(false, &["a", "c"], 10), t0);
    store.issued("a", &east);
    let report = state
        .tick(t0 + Duration::from_millis(10), &store, &ours(&["a", "b"]))
        .unwrap();
    let names: Vec<_> = report
        .cluster_stats
        .iter()
        .map(|c| c.cluster_name.as_str())
        .collect();
    assert_eq!(names, ["a"], "b was not asked for, c is another server's");
    store.finished("a", &east, false);
    state.disconnected();
    assert_eq!(state.next_deadline(), None);
    assert!(
        state
            .tick(t0 + Duration::from_secs(1), &store, &ours(&["a"]))
            .is_none()
    );
    let _ = state.connected();
    state.response(&response(true, &[], 0), t0 + Duration::from_secs(2));
    let later = t0 + Duration::from_secs(2) + MIN_LOAD_REPORTING_INTERVAL;
    let report = state.tick(later, &store, &ours(&["a"])).unwrap();
    let locality = &report.cluster_stats[0].upstream_locality_stats[0];
    assert_eq!(
        locality.total_error_requests, 1,
        "the error finished while disconnected is reported"
    );
}
