//! Builders for Envoy protos used by the route and listener tests: small functions that produce the realistic
//! shapes an Istio-like control plane sends, so each test states only what it is about.

#![allow(dead_code)] // each test module uses a different subset

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ConfigSource, RuntimeFractionalPercent, config_source,
};
use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener};
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{
    FilterConfig, HeaderMatcher, NonForwardingAction, Route, RouteAction, RouteConfiguration,
    RouteMatch, VirtualHost, WeightedCluster,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::FaultDelay;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{FaultAbort, HttpFault};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::google::protobuf::{Any, Duration, UInt32Value};
use prost::{Message, Name};

use crate::resource::route::validate_route_configuration;
use crate::resource::{ResourceError, ValidationContext};

/// `msg` packed in an `Any` under its own type URL.
pub(crate) fn pack<T: Message + Name>(msg: &T) -> Any {
    Any {
        type_url: T::type_url(),
        value: msg.encode_to_vec(),
    }
}

/// A validation context whose bootstrap knows the certificate provider `default`.
pub(crate) fn ctx() -> ValidationContext {
    ValidationContext {
        certificate_providers: vec!["default".to_owned()],
    }
}

pub(crate) fn millis(ms: i64) -> Duration {
    Duration {
        seconds: ms / 1000,
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    }
}

pub(crate) fn percent(numerator: u32) -> FractionalPercent {
    FractionalPercent {
        numerator,
        denominator: 0,
    }
}

pub(crate) fn route_config(name: &str, virtual_hosts: Vec<VirtualHost>) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts,
        ..Default::default()
    }
}

pub(crate) fn vhost(name: &str, domains: &[&str], routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: name.to_owned(),
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        routes,
        ..Default::default()
    }
}

pub(crate) fn prefix_match(prefix: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(prefix.to_owned())),
        ..Default::default()
    }
}

pub(crate) fn action(specifier: ClusterSpecifier) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(specifier),
        ..Default::default()
    }
}

pub(crate) fn route(matcher: RouteMatch, route_action: RouteAction) -> Route {
    Route {
        r#match: Some(matcher),
        action: Some(Action::Route(route_action)),
        ..Default::default()
    }
}

/// A route sending paths with `prefix` to `cluster`.
pub(crate) fn cluster_route(prefix: &str, cluster: &str) -> Route {
    route(
        prefix_match(prefix),
        action(ClusterSpecifier::Cluster(cluster.to_owned())),
    )
}

pub(crate) fn non_forwarding_route(prefix: &str) -> Route {
    Route {
        r#match: Some(prefix_match(prefix)),
        action: Some(Action::NonForwardingAction(NonForwardingAction::default())),
        ..Default::default()
    }
}

pub(crate) fn weighted(clusters: &[(&str, u32)]) -> WeightedCluster {
    WeightedCluster {
        clusters: clusters
            .iter()
            .map(|(name, weight)| ClusterWeight {
                name: (*name).to_owned(),
                weight: Some(UInt32Value { value: *weight }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A route splitting paths with `prefix` between weighted clusters.
pub(crate) fn weighted_route(prefix: &str, clusters: &[(&str, u32)]) -> Route {
    route(
        prefix_match(prefix),
        action(ClusterSpecifier::WeightedClusters(weighted(clusters))),
    )
}

#[allow(deprecated)]
pub(crate) fn header_exact(name: &str, value: &str) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(HeaderMatchSpecifier::ExactMatch(value.to_owned())),
        ..Default::default()
    }
}

pub(crate) fn runtime_fraction(numerator: u32) -> RuntimeFractionalPercent {
    RuntimeFractionalPercent {
        default_value: Some(percent(numerator)),
        runtime_key: "ignored".to_owned(),
    }
}

/// A fault config aborting `abort_percent`% of calls with gRPC status `code` and delaying `delay_percent`% by
/// `delay_ms`.
pub(crate) fn fault(code: u32, abort_percent: u32, delay_ms: i64, delay_percent: u32) -> HttpFault {
    HttpFault {
        delay: Some(FaultDelay {
            percentage: Some(percent(delay_percent)),
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(millis(delay_ms))),
        }),
        abort: Some(FaultAbort {
            percentage: Some(percent(abort_percent)),
            error_type: Some(ErrorType::GrpcStatus(code)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A per-filter config map with one entry.
pub(crate) fn overrides(name: &str, config: Any) -> HashMap<String, Any> {
    HashMap::from([(name.to_owned(), config)])
}

/// `config` wrapped in `FilterConfig` with `is_optional`.
pub(crate) fn filter_config(config: Any, is_optional: bool) -> Any {
    pack(&FilterConfig {
        config: Some(config),
        is_optional,
        disabled: false,
    })
}

pub(crate) fn http_filter(name: &str, config: Any) -> HttpFilter {
    HttpFilter {
        name: name.to_owned(),
        config_type: Some(ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

pub(crate) fn router() -> HttpFilter {
    http_filter("envoy.filters.http.router", pack(&Router::default()))
}

pub(crate) fn ads() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource::default(),
        )),
        ..Default::default()
    }
}

/// A connection manager fetching routes `rds_name` over ADS, with `filters`.
pub(crate) fn hcm_rds(rds_name: &str, filters: Vec<HttpFilter>) -> HttpConnectionManager {
    HttpConnectionManager {
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: rds_name.to_owned(),
        })),
        http_filters: filters,
        ..Default::default()
    }
}

/// A connection manager with inline routes and `filters`.
pub(crate) fn hcm_inline(
    config: RouteConfiguration,
    filters: Vec<HttpFilter>,
) -> HttpConnectionManager {
    HttpConnectionManager {
        route_specifier: Some(RouteSpecifier::RouteConfig(config)),
        http_filters: filters,
        ..Default::default()
    }
}

/// A client (API) listener named `name` holding `hcm`.
pub(crate) fn client_listener(name: &str, hcm: &HttpConnectionManager) -> Listener {
    Listener {
        name: name.to_owned(),
        api_listener: Some(ApiListener {
            api_listener: Some(pack(hcm)),
        }),
        ..Default::default()
    }
}

/// Validates `config` through the public entry point, checking the returned name is the model's.
pub(crate) fn validate_routes(
    config: &RouteConfiguration,
) -> Result<mesh_core::route::RouteConfig, ResourceError> {
    validate_route_configuration(&config.encode_to_vec(), &ctx()).map(|(name, config)| {
        assert_eq!(name, config.name.as_ref());
        config
    })
}

/// The NACK text for `config`, which must be rejected.
pub(crate) fn nack_routes(config: &RouteConfiguration) -> String {
    match validate_routes(config) {
        Ok(accepted) => panic!("expected a NACK, got {accepted:?}"),
        Err(err) => err.to_string(),
    }
}

/// A configuration with one virtual host (`greeter`) holding `route`.
pub(crate) fn one_route(route: Route) -> RouteConfiguration {
    route_config("routes", vec![vhost("vh", &["greeter"], vec![route])])
}
