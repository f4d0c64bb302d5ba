//! Federation: `xdstp://` names and per-authority servers (gRFC A47), and configuration checks.

use mesh_core::rng::FastRng;

use super::support::*;
use crate::protocol::{
    ConfigError, Output, ProtocolConfig, ResourceStatus, ServerConfig, ServerId, WatchError,
    XdsState, normalize_name,
};

const A_LISTENER: &str = "xdstp://a/envoy.config.listener.v3.Listener/x";
const B_LISTENER: &str = "xdstp://b/envoy.config.listener.v3.Listener/y";

fn two_authorities() -> Harness {
    Harness::new(federated(
        &["default-server", "authority-server"],
        &[("a", &[1]), ("b", &[1]), ("shared", &[])],
    ))
}

#[test]
fn xdstp_names_go_to_their_authoritys_servers() {
    let mut h = two_authorities();
    assert_eq!(connects(&h.subscribe(LDS, A_LISTENER)), vec![1]);
    assert_eq!(h.xds.current_stream(ServerId(0)), None);
    let out = h.connect(1);
    assert_eq!(
        sends(&out),
        vec![(1, request(LDS, &[A_LISTENER], "", "", None))]
    );
}

#[test]
fn old_style_names_go_to_the_default_servers() {
    let mut h = two_authorities();
    assert_eq!(connects(&h.subscribe(LDS, "plain")), vec![0]);
}

#[test]
fn authority_without_servers_uses_the_default_servers() {
    let mut h = two_authorities();
    let out = h.subscribe(LDS, "xdstp://shared/envoy.config.listener.v3.Listener/z");
    assert_eq!(connects(&out), vec![0]);
}

#[test]
fn authorities_on_the_same_server_share_one_stream() {
    let mut h = two_authorities();
    h.subscribe(LDS, B_LISTENER);
    assert_eq!(h.subscribe(LDS, A_LISTENER), vec![]);
    let out = h.connect(1);
    assert_eq!(
        sends(&out),
        vec![(1, request(LDS, &[A_LISTENER, B_LISTENER], "", "", None))]
    );
}

#[test]
fn identical_server_entries_are_one_server() {
    let mut config = federated(&["same", "same"], &[("a", &[1])]);
    config.default_servers = vec![0];
    let mut h = Harness::new(config);
    h.subscribe(LDS, "plain");
    assert_eq!(h.subscribe(LDS, A_LISTENER), vec![]);
    let out = h.connect(0);
    assert_eq!(
        sends(&out),
        vec![(0, request(LDS, &["plain", A_LISTENER], "", "", None))]
    );
}

#[test]
fn unknown_authority_is_reported_and_requests_nothing() {
    let mut h = two_authorities();
    let name = "xdstp://nowhere/envoy.config.listener.v3.Listener/x";
    let unknown = WatchError::UnknownAuthority {
        name: name.to_owned(),
        authority: "nowhere".to_owned(),
    };
    assert_eq!(
        h.subscribe(LDS, name),
        vec![error(LDS, name, unknown, false)]
    );
    assert_eq!(
        h.xds.resource(LDS, name).unwrap().status,
        ResourceStatus::Unroutable
    );
    assert_eq!(h.unsubscribe(LDS, name), vec![]);
    assert!(h.xds.resource(LDS, name).is_none());
}

#[test]
fn xdstp_name_of_another_type_is_rejected() {
    let mut h = two_authorities();
    let out = h.subscribe(CDS, A_LISTENER);
    assert!(matches!(
        out.as_slice(),
        [Output::Error {
            error: WatchError::WrongType { .. },
            ambient: false,
            ..
        }]
    ));
    let out = h.subscribe(CDS, "xdstp://a/envoy.config.cluster.v3.Cluster");
    assert!(matches!(
        out.as_slice(),
        [Output::Error {
            error: WatchError::InvalidName { .. },
            ..
        }]
    ));
}

#[test]
fn context_parameters_are_normalized_on_both_sides() {
    let mut h = two_authorities();
    let asked = "xdstp://a/envoy.config.cluster.v3.Cluster/c?b=2&a=1";
    let canonical = "xdstp://a/envoy.config.cluster.v3.Cluster/c?a=1&b=2";
    h.subscribe(CDS, asked);
    let out = h.connect(1);
    assert_eq!(
        sends(&out),
        vec![(1, request(CDS, &[canonical], "", "", None))]
    );
    let out = h.respond(
        1,
        CDS,
        "1",
        "n1",
        vec![ok(
            "xdstp://a/envoy.config.cluster.v3.Cluster/c?b=2&a=1",
            "C",
        )],
    );
    assert_eq!(events(&out), vec![changed(CDS, canonical, "C")]);
    assert!(h.xds.resource(CDS, asked).is_some());
}

#[test]
fn normalize_name_sorts_parameters_and_keeps_the_last_duplicate() {
    assert_eq!(normalize_name("plain?b=1&a=2"), "plain?b=1&a=2");
    assert_eq!(
        normalize_name("xdstp://a/t/id?z=1&y=2&z=3"),
        "xdstp://a/t/id?y=2&z=3"
    );
    assert_eq!(normalize_name("xdstp://a/t/id?"), "xdstp://a/t/id");
    assert_eq!(normalize_name("xdstp://a/t/id?a=1"), "xdstp://a/t/id?a=1");
}

#[test]
fn configuration_errors_are_reported() {
    let new = |config: ProtocolConfig| XdsState::<String>::new(config, FastRng::from_seed(1)).err();
    assert_eq!(
        new(ProtocolConfig::new(vec![])),
        Some(ConfigError::NoServers)
    );
    let mut config = ProtocolConfig::new(vec![ServerConfig::new("s")]);
    config.authorities.insert("a".to_owned(), vec![3]);
    assert_eq!(
        new(config),
        Some(ConfigError::ServerOutOfRange {
            list: "authorities[\"a\"]".to_owned(),
            index: 3,
            count: 1,
        })
    );
    let mut config = ProtocolConfig::new(vec![ServerConfig::new("s")]);
    config.backoff.multiplier = f64::NAN;
    assert!(matches!(new(config), Some(ConfigError::Backoff(_))));
    let mut config = ProtocolConfig::new(vec![ServerConfig::new("s")]);
    config.default_servers.clear();
    assert_eq!(new(config), Some(ConfigError::NoDefaultServers));
}
