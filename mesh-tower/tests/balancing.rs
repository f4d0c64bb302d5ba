//! Endpoint choice within a cluster: ring hash affinity, P2C over peak-EWMA latency, round robin, pick first, and
//! state that carries over configuration updates.

mod support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mesh_core::cluster::LbPolicy;
use mesh_core::route::{HashPolicy, RouteAction};
use mesh_tower::MeshService;
use support::backend::always;
use support::config::{cluster, leaf, loc, snapshot, to, vhost, with};
use support::{Backend, Reply, grpc, options, tally};

fn ring_snapshot(
    version: u64,
    backends: &[&Backend],
) -> std::sync::Arc<mesh_core::snapshot::ConfigSnapshot> {
    let action = RouteAction::cluster("c").with_hash_policy(HashPolicy::header("x-user"));
    snapshot(
        version,
        vhost(vec![with(action)]),
        vec![leaf(
            cluster("c", LbPolicy::ring_hash()),
            vec![loc("z", 0, backends.iter().map(|b| b.addr).collect())],
        )],
        None,
    )
}

/// The endpoint each key reaches (`"-"` for a failed request).
async fn owners_or_failed(service: &MeshService, keys: usize) -> HashMap<String, String> {
    let mut owners = HashMap::new();
    for key in 0..keys {
        let user = format!("user-{key}");
        let answer = grpc(service, "/x", &[("x-user", &user)]).await;
        let owner = if answer.ok() {
            answer.backend.unwrap_or_default()
        } else {
            "-".to_owned()
        };
        owners.insert(user, owner);
    }
    owners
}

async fn owners(service: &MeshService, keys: usize) -> HashMap<String, String> {
    let owners = owners_or_failed(service, keys).await;
    assert!(
        owners.values().all(|owner| owner != "-"),
        "a request failed"
    );
    owners
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_sends_a_key_to_the_same_endpoint_and_a_removal_moves_about_one_in_n() {
    let mut backends = Vec::new();
    for host in 61..66 {
        backends.push(Backend::start(host, always(Reply::Grpc(0))).await);
    }
    let all: Vec<&Backend> = backends.iter().collect();
    let service = MeshService::new(options());
    service.update(Some(Ok(ring_snapshot(1, &all))));
    let first = owners(&service, 200).await;
    let again = owners(&service, 200).await;
    assert_eq!(first, again, "a key moved without any change");
    let used = first
        .values()
        .collect::<std::collections::HashSet<_>>()
        .len();
    assert_eq!(used, 5, "every endpoint owns keys");

    // Remove one of five endpoints.
    service.update(Some(Ok(ring_snapshot(2, &all[..4]))));
    let after = owners(&service, 200).await;
    let removed = &backends[4].name;
    let moved = first
        .iter()
        .filter(|(key, owner)| after[*key] != **owner)
        .count();
    let owned_by_removed = first.values().filter(|owner| *owner == removed).count();
    assert!(after.values().all(|owner| owner != removed));
    // Every key of the removed endpoint moves (about 1/N of them). The ring is rebuilt as Envoy and gRPC build it
    // (mesh-core's Ketama construction: a fixed ring size shared out by weight), so the survivors' extra points
    // take over a further share of the order of 1/N; everything else stays.
    assert!(moved >= owned_by_removed);
    let others_moved = moved - owned_by_removed;
    assert!(
        others_moved * 4 <= 200 - owned_by_removed,
        "{moved} keys moved, {owned_by_removed} owned by the removed endpoint"
    );
    assert!(
        (20..=60).contains(&owned_by_removed),
        "{owned_by_removed} keys on 1 of 5 endpoints"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_walks_past_an_unreachable_endpoint_and_keeps_affinity() {
    let mut backends = Vec::new();
    for host in 66..69 {
        backends.push(Backend::start(host, always(Reply::Grpc(0))).await);
    }
    let all: Vec<&Backend> = backends.iter().collect();
    let service = MeshService::new(options());
    service.update(Some(Ok(ring_snapshot(1, &all))));
    let first = owners(&service, 60).await;
    backends[0].stop().await;
    let name = backends[0].name.clone();
    // Once the stopped endpoint is known unreachable, its keys move and the others stay.
    let settled = support::eventually(Duration::from_secs(5), async || {
        owners_or_failed(&service, 60)
            .await
            .values()
            .all(|owner| *owner != name && owner != "-")
    })
    .await;
    assert!(settled);
    let after = owners(&service, 60).await;
    for (key, owner) in &first {
        if *owner != name {
            assert_eq!(
                &after[key], owner,
                "{key} moved although its endpoint is up"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_peak_ewma_sends_under_ten_percent_to_a_ten_times_slower_endpoint() {
    let mut backends = Vec::new();
    for host in 71..74 {
        backends.push(
            Backend::start(
                host,
                always(Reply::After(
                    Duration::from_millis(5),
                    Box::new(Reply::Grpc(0)),
                )),
            )
            .await,
        );
    }
    let slow = Backend::start(
        74,
        always(Reply::After(
            Duration::from_millis(50),
            Box::new(Reply::Grpc(0)),
        )),
    )
    .await;
    let mut addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    addrs.push(slow.addr);
    let service = MeshService::new(options());
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![to("c")]),
        vec![leaf(
            cluster("c", LbPolicy::peak_ewma()),
            vec![loc("z", 0, addrs)],
        )],
        None,
    ))));
    // Four callers over three fast endpoints: each fast one carries about one request at a time.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for _ in 0..60 {
                    answers.push(grpc(&service, "/x", &[]).await);
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for worker in workers {
        answers.extend(worker.await.unwrap());
    }
    assert!(answers.iter().all(support::Answer::ok));
    let share = slow.hits() as f64 / answers.len() as f64;
    assert!(
        share < 0.10,
        "the slow endpoint got {:.1}% ({:?})",
        share * 100.0,
        tally(&answers)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_evenly_and_pick_first_sticks_to_the_first() {
    let a = Backend::start(75, always(Reply::Grpc(0))).await;
    let b = Backend::start(76, always(Reply::Grpc(0))).await;
    let c = Backend::start(77, always(Reply::Grpc(0))).await;
    let addrs = vec![a.addr, b.addr, c.addr];
    let service = MeshService::new(options());
    service.update(Some(Ok(snapshot(
        1,
        vhost(vec![to("c")]),
        vec![leaf(
            cluster("c", LbPolicy::RoundRobin),
            vec![loc("z", 0, addrs.clone())],
        )],
        None,
    ))));
    let mut answers = Vec::new();
    for _ in 0..30 {
        answers.push(grpc(&service, "/x", &[]).await);
    }
    let counts = tally(&answers);
    assert!(counts.values().all(|&n| n == 10), "{counts:?}");

    service.update(Some(Ok(snapshot(
        2,
        vhost(vec![to("c")]),
        vec![leaf(
            cluster(
                "c",
                LbPolicy::PickFirst {
                    shuffle_address_list: false,
                },
            ),
            vec![loc("z", 0, addrs)],
        )],
        None,
    ))));
    let mut answers = Vec::new();
    for _ in 0..20 {
        answers.push(grpc(&service, "/x", &[]).await);
    }
    assert_eq!(tally(&answers).get("127.0.0.75"), Some(&20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_carry_over_configuration_updates_and_removed_endpoints_drain() {
    let a = Backend::start(78, always(Reply::Grpc(0))).await;
    let b = Backend::start(
        79,
        always(Reply::After(
            Duration::from_millis(300),
            Box::new(Reply::Grpc(0)),
        )),
    )
    .await;
    let service = MeshService::new(options());
    let both = |version| {
        snapshot(
            version,
            vhost(vec![to("c")]),
            vec![leaf(
                cluster("c", LbPolicy::RoundRobin),
                vec![loc("z", 0, vec![a.addr, b.addr])],
            )],
            None,
        )
    };
    service.update(Some(Ok(both(1))));
    for _ in 0..4 {
        assert!(grpc(&service, "/x", &[]).await.ok());
    }
    // A new snapshot with the same endpoints keeps the connections.
    service.update(Some(Ok(both(2))));
    for _ in 0..4 {
        assert!(grpc(&service, "/x", &[]).await.ok());
    }
    assert_eq!(a.connections.load(Ordering::SeqCst), 1);
    assert_eq!(b.connections.load(Ordering::SeqCst), 1);
    // A request in flight to b finishes even though b leaves the configuration meanwhile.
    let in_flight = {
        let service = service.clone();
        tokio::spawn(async move {
            loop {
                let answer = grpc(&service, "/x", &[]).await;
                if answer.backend.as_deref() == Some("127.0.0.79") {
                    return answer;
                }
            }
        })
    };
    assert!(
        support::eventually(Duration::from_secs(2), async || b
            .in_flight
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    service.update(Some(Ok(snapshot(
        3,
        vhost(vec![to("c")]),
        vec![leaf(
            cluster("c", LbPolicy::RoundRobin),
            vec![loc("z", 0, vec![a.addr])],
        )],
        None,
    ))));
    assert!(in_flight.await.unwrap().ok(), "the drained request failed");
    let before = b.hits();
    for _ in 0..10 {
        assert_eq!(
            grpc(&service, "/x", &[]).await.backend.as_deref(),
            Some("127.0.0.78")
        );
    }
    assert_eq!(b.hits(), before);
}
