use std::net::SocketAddr;
use std::sync::Arc;

use mesh_core::cluster::{Cluster, DiscoveryKind};
use mesh_core::endpoint::{Endpoint, EndpointSet, LocalityEndpoints};
use mesh_core::listener::{HttpConnectionManager, Listener, RouteSource, ServerListener};
use mesh_core::locality::Locality;
use mesh_core::route::{Route, RouteAction, RouteConfig, RouteMatch, VirtualHost, WeightedCluster};
use mesh_core::snapshot::{ClusterChildren, ClusterConfig};

use super::*;

fn listener_rds(name: &str, rds: &str) -> Resource {
    Resource::Listener(Arc::new(Listener::client(
        name,
        HttpConnectionManager::new(RouteSource::Rds(rds.into())),
    )))
}

fn routes(name: &str, clusters: &[(&str, u32)]) -> Arc<RouteConfig> {
    let action = if let [(only, _)] = clusters {
        RouteAction::cluster(only)
    } else {
        RouteAction::weighted(
            clusters
                .iter()
                .map(|(c, w)| WeightedCluster::new(c, *w))
                .collect(),
        )
        .unwrap()
    };
    Arc::new(RouteConfig::new(
        name,
        vec![VirtualHost::new(
            "all",
            &["*"],
            vec![Route::new(RouteMatch::any(), action)],
        )],
    ))
}

fn eds_cluster(name: &str) -> Resource {
    Resource::Cluster(Arc::new(Cluster::eds(name)))
}

fn endpoints(name: &str, port: u16) -> Resource {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    Resource::ClusterLoadAssignment(Arc::new(EndpointSet::new(
        name,
        vec![LocalityEndpoints::new(
            Locality::default(),
            0,
            1,
            vec![Endpoint::new(addr)],
        )],
    )))
}

fn subscriptions(actions: &[Action]) -> Vec<(String, ResourceKind, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Subscribe(kind, name) => Some(("+".to_owned(), *kind, name.clone())),
            Action::Unsubscribe(kind, name) => Some(("-".to_owned(), *kind, name.clone())),
            _ => None,
        })
        .collect()
}

fn published(actions: &[Action]) -> Vec<Result<Arc<ConfigSnapshot>, TargetError>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn changed(m: &mut DependencyManager, resource: Resource, name: &str) -> Vec<Action> {
    m.on_resource(resource.kind(), name, ResourceEvent::Changed(resource));
    m.take_actions()
}

/// Drives a manager through LDS -> RDS -> CDS (c1, c2) -> EDS and returns it with the first snapshot published.
fn complete() -> DependencyManager {
    let mut m = DependencyManager::new("greeter", "greeter");
    m.take_actions();
    changed(&mut m, listener_rds("greeter", "r"), "greeter");
    changed(
        &mut m,
        Resource::RouteConfiguration(routes("r", &[("c1", 90), ("c2", 10)])),
        "r",
    );
    changed(&mut m, eds_cluster("c1"), "c1");
    changed(&mut m, eds_cluster("c2"), "c2");
    changed(&mut m, endpoints("c1", 1), "c1");
    let actions = changed(&mut m, endpoints("c2", 2), "c2");
    assert_eq!(published(&actions).len(), 1);
    m
}

#[test]
fn follows_the_graph_and_publishes_once_everything_is_present() {
    let mut m = DependencyManager::new("greeter", "greeter");
    assert_eq!(
        subscriptions(&m.take_actions()),
        vec![("+".into(), ResourceKind::Listener, "greeter".into())]
    );
    let a = changed(&mut m, listener_rds("greeter", "r"), "greeter");
    assert_eq!(
        subscriptions(&a),
        vec![("+".into(), ResourceKind::RouteConfiguration, "r".into())]
    );
    let a = changed(
        &mut m,
        Resource::RouteConfiguration(routes("r", &[("c1", 90), ("c2", 10)])),
        "r",
    );
    assert_eq!(
        subscriptions(&a),
        vec![
            ("+".into(), ResourceKind::Cluster, "c1".into()),
            ("+".into(), ResourceKind::Cluster, "c2".into()),
        ]
    );
    let a = changed(&mut m, eds_cluster("c1"), "c1");
    assert_eq!(
        subscriptions(&a),
        vec![("+".into(), ResourceKind::ClusterLoadAssignment, "c1".into())]
    );
    assert!(published(&a).is_empty());
    changed(&mut m, eds_cluster("c2"), "c2");
    let a = changed(&mut m, endpoints("c1", 1), "c1");
    assert!(
        published(&a).is_empty(),
        "gRFC A74: c2's endpoints are still missing"
    );
    let a = changed(&mut m, endpoints("c2", 2), "c2");
    let snapshots = published(&a);
    assert_eq!(snapshots.len(), 1);
    let snapshot = snapshots[0].as_ref().unwrap();
    assert_eq!(snapshot.version(), 1);
    assert!(matches!(snapshot.cluster("c1"), Some(Ok(_))));
    assert!(matches!(snapshot.cluster("c2"), Some(Ok(_))));
}

#[test]
fn an_unchanged_resource_republishes_nothing_and_a_change_republishes_the_whole_graph() {
    let mut m = complete();
    let a = changed(&mut m, endpoints("c1", 1), "c1");
    assert!(a.is_empty(), "{a:?}");
    let a = changed(&mut m, endpoints("c1", 11), "c1");
    let snapshots = published(&a);
    assert_eq!(snapshots.len(), 1);
    let snapshot = snapshots[0].as_ref().unwrap();
    assert_eq!(snapshot.version(), 2);
    assert!(
        snapshot.cluster("c2").is_some(),
        "the whole graph is republished"
    );
}

#[test]
fn clusters_no_longer_routed_to_are_unsubscribed_with_their_endpoints() {
    let mut m = complete();
    let a = changed(
        &mut m,
        Resource::RouteConfiguration(routes("r", &[("c1", 1)])),
        "r",
    );
    assert_eq!(
        subscriptions(&a),
        vec![
            ("-".into(), ResourceKind::Cluster, "c2".into()),
            ("-".into(), ResourceKind::ClusterLoadAssignment, "c2".into()),
        ]
    );
    let snapshot = published(&a).remove(0).unwrap();
    assert!(snapshot.cluster("c2").is_none());
    assert!(
        !m.watched()
            .contains(&(ResourceKind::Cluster, "c2".to_owned()))
    );
}

#[test]
fn a_missing_listener_is_a_target_error() {
    let mut m = DependencyManager::new("greeter", "greeter");
    m.take_actions();
    m.on_resource(
        ResourceKind::Listener,
        "greeter",
        ResourceEvent::DoesNotExist,
    );
    let err = published(&m.take_actions()).remove(0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "listener \"greeter\": Listener resource does not exist"
    );
}

#[test]
fn ambient_errors_keep_the_last_good_graph_and_data_errors_fail_only_their_cluster() {
    let mut m = complete();
    m.on_resource(
        ResourceKind::Cluster,
        "c2",
        ResourceEvent::Error {
            error: "bad".into(),
            ambient: true,
        },
    );
    assert!(
        m.take_actions().is_empty(),
        "gRFC A88: the cached cluster keeps serving"
    );
    m.on_resource(ResourceKind::Cluster, "c2", ResourceEvent::DoesNotExist);
    let snapshot = published(&m.take_actions()).remove(0).unwrap();
    assert!(matches!(snapshot.cluster("c1"), Some(Ok(_))));
    assert_eq!(
        snapshot.cluster("c2"),
        Some(&Err(
            "cluster \"c2\": Cluster resource does not exist".into()
        ))
    );
}

#[test]
fn missing_endpoints_leave_the_cluster_without_endpoints_and_a_note() {
    let mut m = complete();
    m.on_resource(
        ResourceKind::ClusterLoadAssignment,
        "c2",
        ResourceEvent::DoesNotExist,
    );
    let snapshot = published(&m.take_actions()).remove(0).unwrap();
    match snapshot.cluster("c2") {
        Some(Ok(ClusterConfig {
            children:
                ClusterChildren::Endpoints {
                    endpoints,
                    resolution_note,
                },
            ..
        })) => {
            assert!(endpoints.is_none());
            assert!(
                resolution_note
                    .as_deref()
                    .unwrap()
                    .contains("does not exist")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn aggregate_clusters_expand_to_their_leaves_in_order() {
    let mut m = DependencyManager::new("t", "t");
    changed(&mut m, listener_rds("t", "r"), "t");
    changed(
        &mut m,
        Resource::RouteConfiguration(routes("r", &[("agg", 1)])),
        "r",
    );
    let agg = Cluster::new(
        "agg",
        DiscoveryKind::Aggregate {
            clusters: vec!["a".into(), "inner".into()],
        },
    );
    let a = changed(&mut m, Resource::Cluster(Arc::new(agg)), "agg");
    assert_eq!(
        subscriptions(&a),
        vec![
            ("+".into(), ResourceKind::Cluster, "a".into()),
            ("+".into(), ResourceKind::Cluster, "inner".into()),
        ]
    );
    let inner = Cluster::new(
        "inner",
        DiscoveryKind::Aggregate {
            clusters: vec!["b".into(), "a".into()],
        },
    );
    changed(&mut m, Resource::Cluster(Arc::new(inner)), "inner");
    changed(&mut m, eds_cluster("a"), "a");
    changed(&mut m, eds_cluster("b"), "b");
    changed(&mut m, endpoints("a", 1), "a");
    let a = changed(&mut m, endpoints("b", 2), "b");
    let snapshot = published(&a).remove(0).unwrap();
    match snapshot.cluster("agg") {
        Some(Ok(ClusterConfig {
            children: ClusterChildren::Aggregate { leaf_clusters },
            ..
        })) => {
            let leaves: Vec<&str> = leaf_clusters.iter().map(|l| &**l).collect();
            assert_eq!(
                leaves,
                vec!["a", "b"],
                "depth first, in order, without duplicates (gRFC A75)"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_aggregate_cycle_is_an_error_for_that_cluster() {
    let mut m = DependencyManager::new("t", "t");
    changed(&mut m, listener_rds("t", "r"), "t");
    changed(
        &mut m,
        Resource::RouteConfiguration(routes("r", &[("x", 1)])),
        "r",
    );
    let x = Cluster::new(
        "x",
        DiscoveryKind::Aggregate {
            clusters: vec!["y".into()],
        },
    );
    let y = Cluster::new(
        "y",
        DiscoveryKind::Aggregate {
            clusters: vec!["x".into()],
        },
    );
    changed(&mut m, Resource::Cluster(Arc::new(x)), "x");
    let a = changed(&mut m, Resource::Cluster(Arc::new(y)), "y");
    let snapshot = published(&a).remove(0).unwrap();
    let Some(Err(reason)) = snapshot.cluster("x") else {
        panic!("{:?}", snapshot.cluster("x"))
    };
    assert!(
        reason.contains("cycle") || reason.contains("no usable leaf"),
        "{reason}"
    );
}

#[test]
fn logical_dns_clusters_are_resolved_and_keep_their_addresses_when_re_resolution_fails() {
    let mut m = DependencyManager::new("t", "t");
    changed(&mut m, listener_rds("t", "r"), "t");
    changed(
        &mut m,
        Resource::RouteConfiguration(routes("r", &[("dns", 1)])),
        "r",
    );
    let dns = Cluster::new(
        "dns",
        DiscoveryKind::LogicalDns {
            host: "svc.example".into(),
            port: 8443,
        },
    );
    let a = changed(&mut m, Resource::Cluster(Arc::new(dns)), "dns");
    assert!(a.iter().any(
        |a| matches!(a, Action::ResolveDns { cluster, host, port: 8443 } if cluster == "dns" && &**host == "svc.example")
    ));
    m.on_dns(
        "dns",
        Ok(vec![
            "127.0.0.7:0".parse().unwrap(),
            "127.0.0.8:0".parse().unwrap(),
        ]),
    );
    let snapshot = published(&m.take_actions()).remove(0).unwrap();
    let Some(Ok(ClusterConfig {
        children:
            ClusterChildren::Endpoints {
                endpoints: Some(set),
                ..
            },
        ..
    })) = snapshot.cluster("dns")
    else {
        panic!()
    };
    let addrs: Vec<String> = set
        .endpoints()
        .map(|(_, e)| e.address.to_string())
        .collect();
    assert_eq!(addrs, vec!["127.0.0.7:8443", "127.0.0.8:8443"]);
    m.on_dns("dns", Err("timeout".into()));
    assert!(
        m.take_actions().is_empty(),
        "a failed re-resolution keeps the last addresses"
    );
}

#[test]
fn inline_route_configurations_need_no_rds() {
    let mut m = DependencyManager::new("t", "t");
    m.take_actions();
    let listener = Listener::client(
        "t",
        HttpConnectionManager::new(RouteSource::Inline(routes("inline", &[("c", 1)]))),
    );
    let a = changed(&mut m, Resource::Listener(Arc::new(listener)), "t");
    assert_eq!(
        subscriptions(&a),
        vec![("+".into(), ResourceKind::Cluster, "c".into())]
    );
}

#[test]
fn no_virtual_host_for_the_authority_and_server_listeners_are_target_errors() {
    let mut m = DependencyManager::new("t", "t");
    changed(&mut m, listener_rds("t", "r"), "t");
    let rc = RouteConfig::new("r", vec![VirtualHost::new("v", &["other"], Vec::new())]);
    let a = changed(&mut m, Resource::RouteConfiguration(Arc::new(rc)), "r");
    let err = published(&a).remove(0).unwrap_err();
    assert!(
        err.to_string()
            .contains("no virtual host matches authority \"t\""),
        "{err}"
    );

    let mut m = DependencyManager::new("s", "s");
    let server = Listener::server(
        "s",
        ServerListener::new("127.0.0.1:1".parse().unwrap(), Vec::new()),
    );
    let a = changed(&mut m, Resource::Listener(Arc::new(server)), "s");
    assert_eq!(
        published(&a).remove(0).unwrap_err().to_string(),
        "listener \"s\" is not an API listener"
    );
}

#[test]
fn events_for_unwatched_resources_are_ignored() {
    let mut m = complete();
    let a = changed(&mut m, eds_cluster("unrelated"), "unrelated");
    assert!(a.is_empty());
}
