//! RouteConfigurations: one virtual host per service (gRFC A28, A31, A33, A42, A44).

use std::collections::HashMap;

use envoy_types::pb::envoy::config::route::v3::retry_policy::RetryBackOff;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::{
    FilterState, Header, PolicySpecifier,
};
use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, HashPolicy as EnvoyHashPolicy, MaxStreamDuration,
};
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{
    RetryPolicy as EnvoyRetryPolicy, Route as EnvoyRoute, RouteAction, RouteConfiguration,
    RouteMatch, VirtualHost, WeightedCluster as EnvoyWeightedCluster,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::FaultDelay as EnvoyFaultDelay;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort as EnvoyFaultAbort, HttpFault,
};
use envoy_types::pb::google::protobuf::{Any, BoolValue, UInt32Value};
use envoy_types::util::pack_any;

use super::{FAULT_FILTER_NAME, fractional_percent, header_matcher, proto_duration, regex_matcher};
use crate::mesh::{FaultInjection, HashPolicy, RetryPolicy, Route, Service};

/// gRPC's filter-state key for hashing on the channel (gRFC A42).
const CHANNEL_ID_FILTER_STATE_KEY: &str = "io.grpc.channel_id";

pub(super) fn route_configuration(service: &Service) -> RouteConfiguration {
    let domains = if service.domains.is_empty() {
        vec!["*".to_owned()]
    } else {
        service.domains.clone()
    };
    RouteConfiguration {
        name: service.route_config_name().to_owned(),
        virtual_hosts: vec![VirtualHost {
            name: service.name.clone(),
            domains,
            routes: service.routes.iter().map(route).collect(),
            retry_policy: service.retry.as_ref().map(retry_policy),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn route(route: &Route) -> EnvoyRoute {
    let matcher = &route.matcher;
    let path_specifier = if let Some(path) = &matcher.path {
        PathSpecifier::Path(path.clone())
    } else if let Some(regex) = &matcher.regex {
        PathSpecifier::SafeRegex(regex_matcher(regex))
    } else {
        PathSpecifier::Prefix(matcher.prefix.clone().unwrap_or_default())
    };
    let cluster_specifier = match &route.cluster {
        Some(cluster) => ClusterSpecifier::Cluster(cluster.clone()),
        None => ClusterSpecifier::WeightedClusters(EnvoyWeightedCluster {
            clusters: route
                .weighted_clusters
                .iter()
                .map(|weighted| ClusterWeight {
                    name: weighted.name.clone(),
                    weight: Some(UInt32Value {
                        value: weighted.weight,
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    };
    let action = RouteAction {
        cluster_specifier: Some(cluster_specifier),
        // gRFC A31: the route's max_stream_duration is the stream timeout.
        max_stream_duration: route.timeout.map(|timeout| MaxStreamDuration {
            max_stream_duration: Some(proto_duration(timeout)),
            ..Default::default()
        }),
        retry_policy: route.retry.as_ref().map(retry_policy),
        hash_policy: route.hash_policy.iter().map(hash_policy).collect(),
        ..Default::default()
    };
    let mut typed_per_filter_config: HashMap<String, Any> = HashMap::new();
    if let Some(fault) = &route.fault {
        typed_per_filter_config.insert(FAULT_FILTER_NAME.to_owned(), pack_any(http_fault(fault)));
    }
    EnvoyRoute {
        name: route.name.clone().unwrap_or_default(),
        r#match: Some(RouteMatch {
            // Only sent when it differs from the default (true), keeping the common case minimal.
            case_sensitive: (!matcher.case_sensitive).then_some(BoolValue { value: false }),
            headers: matcher.headers.iter().map(header_matcher).collect(),
            path_specifier: Some(path_specifier),
            ..Default::default()
        }),
        action: Some(Action::Route(action)),
        typed_per_filter_config,
        ..Default::default()
    }
}

/// gRFC A44: `retry_on` is a comma-separated list; backoff defaults are the client's (25 ms, 10 × base).
fn retry_policy(retry: &RetryPolicy) -> EnvoyRetryPolicy {
    EnvoyRetryPolicy {
        retry_on: retry.retry_on.join(","),
        num_retries: retry.num_retries.map(|value| UInt32Value { value }),
        retry_back_off: retry.backoff.as_ref().map(|backoff| RetryBackOff {
            base_interval: Some(proto_duration(backoff.base_interval)),
            max_interval: backoff.max_interval.map(proto_duration),
        }),
        ..Default::default()
    }
}

fn hash_policy(policy: &HashPolicy) -> EnvoyHashPolicy {
    let specifier = match &policy.header {
        Some(header) => PolicySpecifier::Header(Header {
            header_name: header.clone(),
            regex_rewrite: None,
        }),
        None => PolicySpecifier::FilterState(FilterState {
            key: CHANNEL_ID_FILTER_STATE_KEY.to_owned(),
        }),
    };
    EnvoyHashPolicy {
        terminal: policy.terminal,
        policy_specifier: Some(specifier),
    }
}

/// gRFC A33: `HTTPFault` with a fixed delay and an abort, percentages per million.
pub(super) fn http_fault(fault: &FaultInjection) -> HttpFault {
    HttpFault {
        delay: fault.delay.as_ref().map(|delay| EnvoyFaultDelay {
            percentage: Some(fractional_percent(delay.percent)),
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(proto_duration(delay.fixed))),
        }),
        abort: fault.abort.as_ref().map(|abort| EnvoyFaultAbort {
            percentage: Some(fractional_percent(abort.percent)),
            error_type: Some(match (abort.grpc_status, abort.http_status) {
                (Some(code), _) => ErrorType::GrpcStatus(code),
                (None, status) => ErrorType::HttpStatus(status.unwrap_or(503)),
            }),
            ..Default::default()
        }),
        max_active_faults: fault.max_active_faults.map(|value| UInt32Value { value }),
        ..Default::default()
    }
}
