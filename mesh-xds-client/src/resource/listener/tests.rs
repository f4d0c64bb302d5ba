//! Listener validation: a realistic client listener and an mTLS + RBAC server listener translated field by field.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::config::listener::v3::FilterChain as PbFilterChain;
use envoy_types::pb::envoy::config::rbac::v3::Permission as PbPermission;
use envoy_types::pb::envoy::config::rbac::v3::permission::Rule;
use envoy_types::pb::google::protobuf::Any;
use mesh_core::fraction::FractionalPercent;
use mesh_core::listener::{
    FilterChainMatch, HttpFilter, HttpFilterConfig, ListenerKind, RouteSource, SourceType,
};
use mesh_core::matcher::StringMatcher;
use mesh_core::rbac::{CidrRange, Permission, Principal, Rbac, RbacAction, RbacPolicy};
use mesh_core::route::{Action, FaultAbort, FaultAbortKind, FaultDelay, FaultInjection};
use mesh_core::tls::{CertificateProviderInstance, CertificateValidation, DownstreamTls, TlsMode};

use super::test_support::*;
use crate::resource::route::test_support::*;

/// A client listener as Istio sends it for `xds:///greeter:50051`: RDS over ADS, fault then router, a default
/// maximum stream duration.
#[test]
fn istio_like_client_listener_translates() {
    let mut hcm = hcm_rds(
        "greeter:50051",
        vec![fault_filter("envoy.filters.http.fault"), router()],
    );
    hcm.common_http_protocol_options = Some(HttpProtocolOptions {
        max_stream_duration: Some(millis(30_000)),
        ..Default::default()
    });
    let listener = accept(&client_listener("greeter:50051", &hcm));
    assert_eq!(listener.name.as_ref(), "greeter:50051");
    let http = client_http(&listener);
    assert_eq!(http.route_source, RouteSource::Rds("greeter:50051".into()));
    assert_eq!(http.max_stream_duration, Some(Duration::from_secs(30)));
    let expected_fault = FaultInjection::default()
        .with_abort(FaultAbort::new(
            FaultAbortKind::Grpc(14),
            FractionalPercent::percent(10),
        ))
        .with_delay(FaultDelay::Fixed {
            delay: Duration::from_millis(250),
            percentage: FractionalPercent::percent(50),
        });
    assert_eq!(
        http.http_filters,
        vec![
            HttpFilter::new(
                "envoy.filters.http.fault",
                HttpFilterConfig::Fault(expected_fault)
            ),
            HttpFilter::router(),
        ]
    );
}

#[test]
fn inline_route_config_is_validated_and_named_after_the_listener() {
    let routes = route_config(
        "",
        vec![vhost(
            "vh",
            &["*"],
            vec![weighted_route("", &[("a", 90), ("b", 10)])],
        )],
    );
    let listener = accept(&client_listener("svc", &hcm_inline(routes, vec![router()])));
    let RouteSource::Inline(config) = &client_http(&listener).route_source else {
        panic!("inline routes expected")
    };
    assert_eq!(config.name.as_ref(), "svc");
    assert_eq!(config.virtual_hosts[0].routes.len(), 1);

    let bad = route_config(
        "",
        vec![vhost("vh", &["*"], vec![weighted_route("", &[("a", 0)])])],
    );
    let text = nack(&client_listener("svc", &hcm_inline(bad, vec![router()])));
    assert!(
        text.contains("api_listener.api_listener.route_config.virtual_hosts[0].routes[0].route.weighted_clusters: total weight is 0"),
        "{text}"
    );
}

#[test]
fn unknown_optional_filter_is_skipped() {
    let mut optional = http_filter(
        "acme",
        Any {
            type_url: "type.googleapis.com/acme.Filter".to_owned(),
            value: Vec::new(),
        },
    );
    optional.is_optional = true;
    let listener = accept(&client_listener(
        "svc",
        &hcm_rds("svc", vec![optional, router()]),
    ));
    assert_eq!(
        client_http(&listener).http_filters,
        vec![HttpFilter::router()]
    );
}

/// An Istio-like inbound listener: mTLS with RBAC for the pod network, plaintext default chain.
#[test]
fn server_listener_with_mtls_and_rbac_translates() {
    let listener = accept(&server_listener(
        vec![chain("inbound-mtls", Some(pod_network()), Some(&mtls()))],
        Some(chain("inbound-default", None, None)),
    ));
    let ListenerKind::Server(server) = &listener.kind else {
        panic!("server listener expected")
    };
    assert_eq!(server.address, "0.0.0.0:8080".parse().unwrap());
    let [mtls_chain] = server.filter_chains.as_slice() else {
        panic!("one chain expected")
    };
    assert_eq!(mtls_chain.name.as_ref(), "inbound-mtls");
    let mut expected_match = FilterChainMatch::default();
    expected_match.prefix_ranges = vec![CidrRange::new("10.0.0.0".parse().unwrap(), 8).unwrap()];
    assert_eq!(mtls_chain.filter_chain_match, expected_match);
    assert_eq!(mtls_chain.tls_mode(), TlsMode::Mutual);
    let expected_tls = DownstreamTls::new(CertificateProviderInstance::new("default"))
        .with_validation(
            CertificateValidation::default().with_ca(CertificateProviderInstance::new("default")),
        )
        .with_require_client_certificate(true);
    assert_eq!(mtls_chain.tls, Some(expected_tls));

    let expected_rbac = Rbac::new(
        RbacAction::Allow,
        vec![RbacPolicy::new(
            "allow-client",
            vec![Permission::UrlPath(StringMatcher::prefix(
                "/helloworld.Greeter/",
            ))],
            vec![Principal::Authenticated(Some(StringMatcher::prefix(
                "spiffe://cluster.local/ns/default/sa/client",
            )))],
        )],
    );
    assert_eq!(
        mtls_chain.http.http_filters,
        vec![
            HttpFilter::new("rbac", HttpFilterConfig::Rbac(Some(expected_rbac))),
            HttpFilter::router()
        ]
    );
    let RouteSource::Inline(routes) = &mtls_chain.http.route_source else {
        panic!("inline routes expected")
    };
    assert_eq!(
        routes.virtual_hosts[0].routes[0].action,
        Action::NonForwarding
    );

    let Some(default_chain) = &server.default_filter_chain else {
        panic!("default chain expected")
    };
    assert_eq!(default_chain.tls_mode(), TlsMode::Plaintext);
    assert_eq!(
        default_chain.filter_chain_match.source_type,
        SourceType::Any
    );
}

#[test]
fn rbac_log_action_and_metadata_follow_grfc_a41() {
    let mut rules = rbac_rules();
    if let Some(r) = rules.rules.as_mut() {
        r.action = 2; // LOG: as if RBAC were not configured
    }
    let listener = accept(&server_listener(
        vec![PbFilterChain {
            filters: vec![network_filter(&server_hcm(vec![
                http_filter("rbac", pack(&rules)),
                router(),
            ]))],
            ..Default::default()
        }],
        None,
    ));
    let ListenerKind::Server(server) = &listener.kind else {
        panic!()
    };
    assert_eq!(
        server.filter_chains[0].http.http_filters[0].config,
        HttpFilterConfig::Rbac(None)
    );

    let mut rules = rbac_rules();
    if let Some(policy) = rules
        .rules
        .as_mut()
        .and_then(|r| r.policies.get_mut("allow-client"))
    {
        #[allow(deprecated)]
        {
            policy.permissions = vec![PbPermission {
                rule: Some(Rule::Metadata(Default::default())),
            }];
        }
    }
    let listener = accept(&server_listener(
        vec![PbFilterChain {
            filters: vec![network_filter(&server_hcm(vec![
                http_filter("rbac", pack(&rules)),
                router(),
            ]))],
            ..Default::default()
        }],
        None,
    ));
    let ListenerKind::Server(server) = &listener.kind else {
        panic!()
    };
    let HttpFilterConfig::Rbac(Some(rbac)) = &server.filter_chains[0].http.http_filters[0].config
    else {
        panic!()
    };
    assert_eq!(
        rbac.policies[0].permissions,
        vec![Permission::Not(Box::new(Permission::Any))]
    );
}
