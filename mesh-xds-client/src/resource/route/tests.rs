//! RouteConfiguration validation: a realistic configuration translated field by field, then one test per rejection
//! rule asserting the NACK text names the field.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action as PbAction;
use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::{
    FilterState, Header as HashHeader, PolicySpecifier, QueryParameter,
};
use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier as PbClusterSpecifier, HashPolicy as PbHashPolicy, MaxStreamDuration,
};
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    ClusterSpecifierPlugin, QueryParameterMatcher, RetryPolicy as PbRetryPolicy,
    retry_policy::RetryBackOff,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatchAndSubstitute, RegexMatcher};
use envoy_types::pb::envoy::r#type::v3::Int64Range;
use envoy_types::pb::google::protobuf::{Any, BoolValue, UInt32Value};
use mesh_core::fraction::FractionalPercent;
use mesh_core::route::{
    Action, ClusterSpecifier, FaultAbort, FaultAbortKind, FaultDelay, FaultInjection, HashPolicy,
    HashPolicyKind, HeaderMatch, HeaderMatcher, PathMatch, RetryBackoff,
};

use super::test_support::*;

/// An Istio-like configuration: a canary header route, a 90/10 split with timeouts, retries, hash policies and
/// fault overrides at every level.
#[test]
fn istio_like_route_configuration_translates_every_field() {
    let mut canary = cluster_route("/helloworld.Greeter/", "outbound|50051|v2|greeter");
    if let Some(matcher) = canary.r#match.as_mut() {
        matcher.headers.push(header_exact("X-Canary", "true"));
        matcher.case_sensitive = Some(BoolValue { value: false });
    }

    let mut split = weighted_route(
        "",
        &[
            ("outbound|50051|v1|greeter", 90),
            ("outbound|50051|v2|greeter", 10),
        ],
    );
    if let Some(PbAction::Route(route_action)) = split.action.as_mut() {
        route_action.max_stream_duration = Some(MaxStreamDuration {
            max_stream_duration: Some(millis(5_000)),
            grpc_timeout_header_max: Some(millis(2_000)),
            ..Default::default()
        });
        route_action.retry_policy = Some(PbRetryPolicy {
            retry_on: "unavailable,cancelled,bogus-condition".to_owned(),
            num_retries: Some(UInt32Value { value: 3 }),
            retry_back_off: Some(RetryBackOff {
                base_interval: Some(millis(50)),
                max_interval: None,
            }),
            ..Default::default()
        });
        route_action.hash_policy = vec![
            PbHashPolicy {
                policy_specifier: Some(PolicySpecifier::Header(HashHeader {
                    header_name: "X-User".to_owned(),
                    regex_rewrite: None,
                })),
                terminal: true,
            },
            PbHashPolicy {
                policy_specifier: Some(PolicySpecifier::FilterState(FilterState {
                    key: "io.grpc.channel_id".to_owned(),
                })),
                terminal: false,
            },
            // gRFC A42: no result, dropped.
            PbHashPolicy {
                policy_specifier: Some(PolicySpecifier::QueryParameter(QueryParameter {
                    name: "q".to_owned(),
                })),
                terminal: false,
            },
        ];
        if let Some(PbClusterSpecifier::WeightedClusters(weighted)) =
            route_action.cluster_specifier.as_mut()
        {
            weighted.clusters[1].typed_per_filter_config =
                overrides("envoy.fault", pack(&fault(14, 100, 0, 0)));
        }
    }
    split.typed_per_filter_config = overrides(
        "envoy.fault",
        filter_config(pack(&fault(4, 50, 100, 25)), false),
    );
    split.name = "default".to_owned();

    let mut host = vhost(
        "greeter.default.svc.cluster.local:50051",
        &[
            "greeter.default.svc.cluster.local",
            "greeter",
            "greeter:50051",
        ],
        vec![canary, split],
    );
    host.retry_policy = Some(PbRetryPolicy {
        retry_on: "5xx".to_owned(),
        ..Default::default()
    });
    host.typed_per_filter_config = overrides("envoy.fault", pack(&fault(13, 1, 0, 0)));

    let config = match validate_routes(&route_config("outbound|50051||greeter", vec![host])) {
        Ok(config) => config,
        Err(err) => panic!("rejected: {err}"),
    };
    assert_eq!(config.name.as_ref(), "outbound|50051||greeter");
    let [host] = config.virtual_hosts.as_slice() else {
        panic!("one virtual host expected")
    };
    assert_eq!(host.domains.len(), 3);
    let vhost_retry = host
        .retry_policy
        .as_ref()
        .map(|p| (p.retry_on.retries_http_status(503), p.num_retries));
    assert_eq!(
        vhost_retry,
        Some((true, 1)),
        "num_retries defaults to 1 (gRFC A44)"
    );
    assert_eq!(
        host.fault_override.as_ref().and_then(|f| f.abort.clone()),
        Some(FaultAbort::new(
            FaultAbortKind::Grpc(13),
            FractionalPercent::percent(1)
        ))
    );

    let [canary, split] = host.routes.as_slice() else {
        panic!("two routes expected")
    };
    assert_eq!(
        canary.matcher.path,
        PathMatch::Prefix("/helloworld.Greeter/".into())
    );
    assert!(!canary.matcher.case_sensitive);
    assert_eq!(
        canary.matcher.headers,
        vec![HeaderMatcher::exact("x-canary", "true")]
    );
    assert_eq!(
        canary.route_action().map(|a| &a.cluster),
        Some(&ClusterSpecifier::Cluster(
            "outbound|50051|v2|greeter".into()
        ))
    );
    assert_eq!(canary.fault_override, None);

    assert_eq!(split.name.as_deref(), Some("default"));
    assert!(
        split.matcher.case_sensitive,
        "case_sensitive defaults to true"
    );
    let Some(action) = split.route_action() else {
        panic!("split forwards")
    };
    let ClusterSpecifier::Weighted(clusters) = &action.cluster else {
        panic!("weighted expected")
    };
    let weights: Vec<(&str, u32)> = clusters
        .clusters()
        .iter()
        .map(|c| (c.name.as_ref(), c.weight))
        .collect();
    assert_eq!(
        weights,
        vec![
            ("outbound|50051|v1|greeter", 90),
            ("outbound|50051|v2|greeter", 10)
        ]
    );
    assert_eq!(
        clusters
            .clusters()
            .first()
            .and_then(|c| c.fault_override.clone()),
        None
    );
    assert_eq!(
        clusters
            .clusters()
            .get(1)
            .and_then(|c| c.fault_override.as_ref())
            .and_then(|f| f.abort.clone()),
        Some(FaultAbort::new(
            FaultAbortKind::Grpc(14),
            FractionalPercent::percent(100)
        ))
    );
    assert_eq!(action.max_stream_duration, Some(Duration::from_secs(5)));
    assert_eq!(action.grpc_timeout_header_max, Some(Duration::from_secs(2)));
    let Some(retry) = &action.retry_policy else {
        panic!("route retry policy expected")
    };
    assert!(retry.retry_on.retries_grpc_code(14) && retry.retry_on.retries_grpc_code(1));
    assert!(!retry.retry_on.retries_grpc_code(13));
    assert_eq!(retry.num_retries, 3);
    assert_eq!(
        retry.backoff,
        RetryBackoff::new(Duration::from_millis(50), Duration::from_millis(500)),
        "max_interval defaults to 10x base (gRFC A44)"
    );
    assert_eq!(
        action.hash_policies,
        vec![
            HashPolicy::header("x-user").with_terminal(true),
            HashPolicy::channel_id()
        ]
    );
    let expected_fault = FaultInjection::default()
        .with_abort(FaultAbort::new(
            FaultAbortKind::Grpc(4),
            FractionalPercent::percent(50),
        ))
        .with_delay(FaultDelay::Fixed {
            delay: Duration::from_millis(100),
            percentage: FractionalPercent::percent(25),
        });
    assert_eq!(split.fault_override, Some(expected_fault));
}

#[test]
fn header_matchers_cover_every_kind() {
    #[allow(deprecated)]
    let kinds = vec![
        HeaderMatchSpecifier::PrefixMatch("a".to_owned()),
        HeaderMatchSpecifier::SuffixMatch("z".to_owned()),
        HeaderMatchSpecifier::ContainsMatch("m".to_owned()),
        HeaderMatchSpecifier::SafeRegexMatch(RegexMatcher {
            regex: "[0-9]+".to_owned(),
            engine_type: None,
        }),
        HeaderMatchSpecifier::RangeMatch(Int64Range { start: 1, end: 10 }),
        HeaderMatchSpecifier::PresentMatch(true),
        HeaderMatchSpecifier::StringMatch(envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher {
            ignore_case: true,
            match_pattern: Some(
                envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern::Exact("AbC".to_owned()),
            ),
        }),
    ];
    let mut route = cluster_route("/", "c");
    if let Some(matcher) = route.r#match.as_mut() {
        for kind in kinds {
            matcher
                .headers
                .push(envoy_types::pb::envoy::config::route::v3::HeaderMatcher {
                    name: "x-h".to_owned(),
                    header_match_specifier: Some(kind),
                    invert_match: true,
                    treat_missing_header_as_empty: true,
                });
        }
    }
    let config = validate_routes(&one_route(route)).unwrap_or_else(|e| panic!("{e}"));
    let headers = &config.virtual_hosts[0].routes[0].matcher.headers;
    assert_eq!(headers.len(), 7);
    assert!(
        headers
            .iter()
            .all(|h| h.invert && h.treat_missing_as_empty && h.name.as_ref() == "x-h")
    );
    assert_eq!(
        headers[4].condition,
        HeaderMatch::Range { start: 1, end: 10 }
    );
    assert_eq!(headers[5].condition, HeaderMatch::Present(true));
    let HeaderMatch::String(ignore_case) = &headers[6].condition else {
        panic!("string match expected")
    };
    assert!(ignore_case.matches("abc"), "gRFC A63: ignore_case");
}

#[test]
fn runtime_fraction_uses_the_default_value() {
    let mut route = cluster_route("/", "c");
    if let Some(matcher) = route.r#match.as_mut() {
        matcher.runtime_fraction = Some(runtime_fraction(25));
    }
    let config = validate_routes(&one_route(route)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.virtual_hosts[0].routes[0].matcher.runtime_fraction,
        Some(FractionalPercent::percent(25))
    );
}

#[test]
fn path_separated_prefix_matches_whole_segments() {
    let mut route = cluster_route("/", "c");
    route.r#match = Some(envoy_types::pb::envoy::config::route::v3::RouteMatch {
        path_specifier: Some(PathSpecifier::PathSeparatedPrefix("/api.v1".to_owned())),
        case_sensitive: Some(BoolValue { value: false }),
        ..Default::default()
    });
    let config = validate_routes(&one_route(route)).unwrap_or_else(|e| panic!("{e}"));
    let route = &config.virtual_hosts[0].routes[0];
    for (path, expected) in [
        ("/api.v1", true),
        ("/API.V1/x", true),
        ("/api.v1x", false),
        ("/apixv1", false),
    ] {
        assert_eq!(route.matcher.matches_path(path), expected, "{path}");
    }
}

#[test]
fn hash_policy_regex_rewrite_translates_re2_substitutions() {
    let mut route = cluster_route("/", "c");
    if let Some(PbAction::Route(route_action)) = route.action.as_mut() {
        route_action.hash_policy = vec![PbHashPolicy {
            policy_specifier: Some(PolicySpecifier::Header(HashHeader {
                header_name: "x-session".to_owned(),
                regex_rewrite: Some(RegexMatchAndSubstitute {
                    pattern: Some(RegexMatcher {
                        regex: "user-([0-9]+)".to_owned(),
                        engine_type: None,
                    }),
                    substitution: "id:\\1$".to_owned(),
                }),
            })),
            terminal: false,
        }];
    }
    let config = validate_routes(&one_route(route)).unwrap_or_else(|e| panic!("{e}"));
    let policies = &config.virtual_hosts[0].routes[0]
        .route_action()
        .map(|a| a.hash_policies.clone());
    let Some(
        [
            HashPolicy {
                kind:
                    HashPolicyKind::Header {
                        rewrite: Some((regex, substitution)),
                        ..
                    },
                ..
            },
        ],
    ) = policies.as_deref()
    else {
        panic!("header policy with rewrite expected, got {policies:?}")
    };
    assert_eq!(regex.replace_all("user-42", substitution), "id:42$");
}

#[test]
fn routes_grpc_ignores_are_dropped_not_rejected() {
    let mut query = cluster_route("/a", "c");
    if let Some(matcher) = query.r#match.as_mut() {
        matcher.query_parameters.push(QueryParameterMatcher {
            name: "q".to_owned(),
            ..Default::default()
        });
    }
    let no_action = envoy_types::pb::envoy::config::route::v3::Route {
        r#match: Some(prefix_match("/b")),
        ..Default::default()
    };
    let no_specifier = route(
        prefix_match("/c"),
        envoy_types::pb::envoy::config::route::v3::RouteAction::default(),
    );
    let mut optional_plugin = route(
        prefix_match("/d"),
        action(PbClusterSpecifier::ClusterSpecifierPlugin("rls".to_owned())),
    );
    optional_plugin.name = "rls".to_owned();
    let mut config = route_config(
        "routes",
        vec![vhost(
            "vh",
            &["*"],
            vec![
                query,
                no_action,
                no_specifier,
                optional_plugin,
                cluster_route("", "kept"),
            ],
        )],
    );
    config
        .cluster_specifier_plugins
        .push(ClusterSpecifierPlugin {
            extension: Some(TypedExtensionConfig {
                name: "rls".to_owned(),
                typed_config: Some(Any {
                    type_url: "type.googleapis.com/grpc.lookup.v1.RouteLookupClusterSpecifier"
                        .to_owned(),
                    value: Vec::new(),
                }),
            }),
            is_optional: true,
        });
    let config = validate_routes(&config).unwrap_or_else(|e| panic!("{e}"));
    let routes = &config.virtual_hosts[0].routes;
    assert_eq!(routes.len(), 1);
    assert!(
        matches!(&routes[0].action, Action::Route(a) if a.cluster == ClusterSpecifier::Cluster("kept".into()))
    );
}

#[test]
fn non_forwarding_action_is_kept() {
    let config =
        validate_routes(&one_route(non_forwarding_route("/"))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.virtual_hosts[0].routes[0].action,
        Action::NonForwarding
    );
}

#[test]
fn route_configuration_level_override_applies_to_hosts_without_one() {
    let mut config = route_config(
        "routes",
        vec![
            vhost("a", &["a"], vec![cluster_route("", "c")]),
            vhost("b", &["b"], vec![cluster_route("", "c")]),
        ],
    );
    config.typed_per_filter_config = overrides("fault", pack(&fault(2, 100, 0, 0)));
    config.virtual_hosts[1].typed_per_filter_config =
        overrides("fault", pack(&fault(3, 100, 0, 0)));
    let config = validate_routes(&config).unwrap_or_else(|e| panic!("{e}"));
    let codes: Vec<_> = config
        .virtual_hosts
        .iter()
        .map(|vh| {
            vh.fault_override
                .as_ref()
                .and_then(|f| f.abort.as_ref())
                .map(|a| a.kind)
        })
        .collect();
    assert_eq!(
        codes,
        vec![Some(FaultAbortKind::Grpc(2)), Some(FaultAbortKind::Grpc(3))]
    );
}

#[test]
fn optional_unknown_override_is_skipped() {
    let mut route = cluster_route("", "c");
    let unknown = Any {
        type_url: "type.googleapis.com/acme.Custom".to_owned(),
        value: Vec::new(),
    };
    route.typed_per_filter_config = overrides("acme", filter_config(unknown, true));
    let config = validate_routes(&one_route(route)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.virtual_hosts[0].routes[0].fault_override, None);
}
