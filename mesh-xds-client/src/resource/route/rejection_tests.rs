//! RouteConfiguration rejections: one test per rule, each asserting the NACK text names the field at fault.

use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action as PbAction;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier as PbClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    ClusterSpecifierPlugin, RedirectAction, RetryPolicy as PbRetryPolicy,
    retry_policy::RetryBackOff,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::RbacPerRoute;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;
use envoy_types::pb::envoy::r#type::v3::Int64Range;
use envoy_types::pb::google::protobuf::{Any, UInt32Value};

use super::test_support::*;
use super::validate_route_configuration;

#[test]
fn total_weight_zero_is_rejected() {
    let text = nack_routes(&one_route(weighted_route("", &[("a", 0), ("b", 0)])));
    assert_eq!(
        text,
        "RouteConfiguration \"routes\": virtual_hosts[0].routes[0].route.weighted_clusters: total weight is 0"
    );
}

#[test]
fn total_weight_above_u32_is_rejected() {
    let text = nack_routes(&one_route(weighted_route("", &[("a", u32::MAX), ("b", 1)])));
    assert!(
        text.contains("routes[0].route.weighted_clusters: total weight 4294967296 exceeds"),
        "{text}"
    );
}

#[test]
fn total_weight_field_must_match_the_sum() {
    let mut route = weighted_route("", &[("a", 60), ("b", 30)]);
    if let Some(PbAction::Route(a)) = route.action.as_mut()
        && let Some(PbClusterSpecifier::WeightedClusters(w)) = a.cluster_specifier.as_mut()
    {
        #[allow(deprecated)]
        {
            w.total_weight = Some(UInt32Value { value: 100 });
        }
    }
    let text = nack_routes(&one_route(route));
    assert!(
        text.contains(
            "route.weighted_clusters.total_weight: 100 does not equal the sum of the weights (90)"
        ),
        "{text}"
    );
}

#[test]
fn weighted_cluster_needs_a_name_and_clusters() {
    let text = nack_routes(&one_route(weighted_route("", &[("", 10)])));
    assert!(
        text.contains("route.weighted_clusters.clusters[0].name: must not be empty"),
        "{text}"
    );
    let text = nack_routes(&one_route(weighted_route("", &[])));
    assert!(
        text.contains("route.weighted_clusters.clusters: must not be empty"),
        "{text}"
    );
}

#[test]
fn empty_cluster_name_is_rejected() {
    let text = nack_routes(&one_route(cluster_route("/", "")));
    assert!(
        text.contains("virtual_hosts[0].routes[0].route.cluster: must not be empty"),
        "{text}"
    );
}

#[test]
fn bad_domains_are_rejected() {
    let config = route_config(
        "routes",
        vec![
            vhost("a", &["foo.*.com", ""], vec![]),
            vhost("b", &[], vec![]),
            vhost("c", &["Greeter"], vec![]),
            vhost("d", &["greeter"], vec![]),
        ],
    );
    let text = nack_routes(&config);
    assert!(
        text.contains("virtual_hosts[0].domains[0]: virtual host domain \"foo.*.com\""),
        "{text}"
    );
    assert!(
        text.contains("virtual_hosts[0].domains[1]: virtual host domain is empty"),
        "{text}"
    );
    assert!(
        text.contains("virtual_hosts[1].domains: must not be empty"),
        "{text}"
    );
    assert!(
        text.contains(
            "virtual_hosts[3].domains[0]: domain \"greeter\" is also served by virtual_hosts[2]"
        ),
        "{text}"
    );
}

#[test]
fn missing_path_specifier_is_rejected() {
    let route = route(
        Default::default(),
        action(PbClusterSpecifier::Cluster("c".to_owned())),
    );
    let text = nack_routes(&one_route(route));
    assert!(
        text.contains("routes[0].match: path_specifier must be set"),
        "{text}"
    );
}

#[test]
fn bad_regex_is_rejected() {
    let mut route = cluster_route("/", "c");
    route.r#match = Some(envoy_types::pb::envoy::config::route::v3::RouteMatch {
        path_specifier: Some(PathSpecifier::SafeRegex(RegexMatcher {
            regex: "(unclosed".to_owned(),
            engine_type: None,
        })),
        ..Default::default()
    });
    let text = nack_routes(&one_route(route));
    assert!(
        text.contains("routes[0].match.safe_regex: invalid regex \"(unclosed\""),
        "{text}"
    );
}

#[test]
fn bad_header_matchers_are_rejected() {
    let mut route = cluster_route("/", "c");
    if let Some(matcher) = route.r#match.as_mut() {
        matcher.headers.push(header_exact("", "v"));
        matcher
            .headers
            .push(envoy_types::pb::envoy::config::route::v3::HeaderMatcher {
                name: "x-range".to_owned(),
                header_match_specifier: Some(HeaderMatchSpecifier::RangeMatch(Int64Range {
                    start: 5,
                    end: 5,
                })),
                ..Default::default()
            });
    }
    let text = nack_routes(&one_route(route));
    assert!(
        text.contains("routes[0].match.headers[0]: name: must not be empty"),
        "{text}"
    );
    assert!(
        text.contains("routes[0].match.headers[1]: range_match: start 5 must be below end 5"),
        "{text}"
    );
}

#[test]
fn runtime_fraction_without_default_is_rejected() {
    let mut route = cluster_route("/", "c");
    if let Some(matcher) = route.r#match.as_mut() {
        matcher.runtime_fraction = Some(Default::default());
    }
    let text = nack_routes(&one_route(route));
    assert!(
        text.contains("routes[0].match.runtime_fraction.default_value: must be set"),
        "{text}"
    );
}

fn with_retry(
    policy: PbRetryPolicy,
) -> envoy_types::pb::envoy::config::route::v3::RouteConfiguration {
    let mut route = cluster_route("/", "c");
    if let Some(PbAction::Route(a)) = route.action.as_mut() {
        a.retry_policy = Some(policy);
    }
    one_route(route)
}

#[test]
fn retry_policy_rules_of_grfc_a44() {
    let zero = with_retry(PbRetryPolicy {
        retry_on: "unavailable".to_owned(),
        num_retries: Some(UInt32Value { value: 0 }),
        ..Default::default()
    });
    assert!(nack_routes(&zero).contains("route.retry_policy.num_retries: must be at least 1"));

    let no_base = with_retry(PbRetryPolicy {
        retry_on: "unavailable".to_owned(),
        retry_back_off: Some(RetryBackOff::default()),
        ..Default::default()
    });
    assert!(
        nack_routes(&no_base)
            .contains("route.retry_policy.retry_back_off.base_interval: must be set")
    );

    let zero_base = with_retry(PbRetryPolicy {
        retry_on: "unavailable".to_owned(),
        retry_back_off: Some(RetryBackOff {
            base_interval: Some(millis(0)),
            max_interval: None,
        }),
        ..Default::default()
    });
    assert!(
        nack_routes(&zero_base).contains("retry_back_off.base_interval: must be greater than zero")
    );

    let inverted = with_retry(PbRetryPolicy {
        retry_on: "unavailable".to_owned(),
        retry_back_off: Some(RetryBackOff {
            base_interval: Some(millis(100)),
            max_interval: Some(millis(10)),
        }),
        ..Default::default()
    });
    assert!(
        nack_routes(&inverted)
            .contains("retry_back_off.max_interval: 10ms is below base_interval 100ms")
    );
}

#[test]
fn retry_policy_without_supported_conditions_is_dropped() {
    let config = validate_routes(&with_retry(PbRetryPolicy {
        retry_on: "bogus".to_owned(),
        ..Default::default()
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.virtual_hosts[0].routes[0]
            .route_action()
            .and_then(|a| a.retry_policy.clone()),
        None
    );
}

#[test]
fn redirect_action_is_rejected() {
    let route = envoy_types::pb::envoy::config::route::v3::Route {
        r#match: Some(prefix_match("/")),
        action: Some(PbAction::Redirect(RedirectAction::default())),
        ..Default::default()
    };
    let text = nack_routes(&one_route(route));
    assert!(
        text.contains("routes[0].redirect: route action is not supported"),
        "{text}"
    );
}

#[test]
fn unknown_required_override_is_rejected() {
    let mut route = cluster_route("/", "c");
    let unknown = Any {
        type_url: "type.googleapis.com/acme.Custom".to_owned(),
        value: Vec::new(),
    };
    route.typed_per_filter_config = overrides("acme", unknown);
    let text = nack_routes(&one_route(route));
    assert!(
        text.contains("routes[0].typed_per_filter_config[\"acme\"]: unsupported filter config type \"acme.Custom\" (not optional)"),
        "{text}"
    );
}

#[test]
fn unrepresentable_overrides_are_rejected() {
    let mut route = cluster_route("/", "c");
    route.typed_per_filter_config = overrides("rbac", pack(&RbacPerRoute::default()));
    assert!(
        nack_routes(&one_route(route)).contains(
            "typed_per_filter_config[\"rbac\"]: RBACPerRoute overrides are not supported"
        )
    );

    let mut host = vhost("vh", &["*"], vec![]);
    host.typed_per_filter_config = overrides("router", pack(&Router::default()));
    let text = nack_routes(&route_config("routes", vec![host]));
    assert!(text.contains("virtual_hosts[0].typed_per_filter_config[\"router\"]: envoy.extensions.filters.http.router.v3.Router cannot be used as a per-route override"), "{text}");
}

#[test]
fn bad_fault_override_is_rejected() {
    let mut route = cluster_route("/", "c");
    route.typed_per_filter_config = overrides("fault", pack(&fault(99, 10, 0, 0)));
    let text = nack_routes(&one_route(route));
    assert!(
        text.contains(
            "typed_per_filter_config[\"fault\"].abort.grpc_status: 99 is not a gRPC status code"
        ),
        "{text}"
    );
}

#[test]
fn cluster_specifier_plugins_must_be_defined_and_supported() {
    let route = route(
        prefix_match("/"),
        action(PbClusterSpecifier::ClusterSpecifierPlugin(
            "missing".to_owned(),
        )),
    );
    let mut config = one_route(route);
    config
        .cluster_specifier_plugins
        .push(ClusterSpecifierPlugin {
            extension: Some(TypedExtensionConfig {
                name: "required".to_owned(),
                typed_config: Some(Any {
                    type_url: "type.googleapis.com/acme.Plugin".to_owned(),
                    value: Vec::new(),
                }),
            }),
            is_optional: false,
        });
    let text = nack_routes(&config);
    assert!(text.contains("cluster_specifier_plugins[0].extension.typed_config: unsupported cluster specifier plugin type"), "{text}");
    assert!(
        text.contains("routes[0].route.cluster_specifier_plugin: \"missing\" is not defined"),
        "{text}"
    );
}

#[test]
fn all_problems_of_a_resource_are_reported_together() {
    let config = route_config(
        "routes",
        vec![
            vhost(
                "a",
                &["ok"],
                vec![cluster_route("/", ""), weighted_route("", &[("x", 0)])],
            ),
            vhost("b", &["bad*domain*"], vec![]),
        ],
    );
    let err = match validate_routes(&config) {
        Ok(config) => panic!("accepted {config:?}"),
        Err(err) => err,
    };
    assert_eq!(err.name.as_deref(), Some("routes"));
    assert_eq!(err.problems.len(), 3, "{err}");
    assert!(err.problems[0].starts_with("virtual_hosts[0].routes[0].route.cluster"));
    assert!(err.problems[1].starts_with("virtual_hosts[0].routes[1].route.weighted_clusters"));
    assert!(err.problems[2].starts_with("virtual_hosts[1].domains[0]"));
    assert_eq!(err.to_string().matches("; ").count(), 2);
}

#[test]
fn garbage_bytes_are_a_decode_error() {
    let err = match validate_route_configuration(&[0xff, 0xff, 0xff, 0x01], &ctx()) {
        Ok(config) => panic!("accepted {config:?}"),
        Err(err) => err,
    };
    assert_eq!(err.name, None);
    assert!(
        err.to_string()
            .starts_with("RouteConfiguration (name unreadable): does not decode"),
        "{err}"
    );
}

#[test]
fn empty_name_is_rejected() {
    let text = nack_routes(&route_config("", vec![]));
    assert_eq!(
        text,
        "RouteConfiguration (name unreadable): name: must not be empty"
    );
}
