//! Client Listeners: `api_listener` with an HttpConnectionManager (gRFC A27, A39).

use envoy_types::pb::envoy::config::core::v3::HttpProtocolOptions as CommonHttpProtocolOptions;
use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager::RouteSpecifier,
    http_filter::ConfigType,
};
use envoy_types::util::pack_any;

use super::route::http_fault;
use super::{FAULT_FILTER_NAME, ROUTER_FILTER_NAME, ads_config_source, proto_duration};
use crate::mesh::Service;

/// The router filter, which must end every `http_filters` list (gRFC A39).
pub(super) fn router_filter() -> HttpFilter {
    HttpFilter {
        name: ROUTER_FILTER_NAME.to_owned(),
        config_type: Some(ConfigType::TypedConfig(pack_any(Router::default()))),
        ..Default::default()
    }
}

pub(super) fn client_listener(service: &Service) -> Listener {
    let mut http_filters = Vec::new();
    // gRFC A33: the fault filter is in the chain when any route of the service injects faults; its own config is
    // the service-wide fault (empty: no fault unless a route overrides it).
    let any_route_fault = service.routes.iter().any(|route| route.fault.is_some());
    if service.fault.is_some() || any_route_fault {
        let fault = service.fault.as_ref().map(http_fault).unwrap_or_default();
        http_filters.push(HttpFilter {
            name: FAULT_FILTER_NAME.to_owned(),
            config_type: Some(ConfigType::TypedConfig(pack_any(fault))),
            ..Default::default()
        });
    }
    http_filters.push(router_filter());
    let manager = HttpConnectionManager {
        stat_prefix: service.name.clone(),
        // gRFC A31: the default stream timeout when a route sets none.
        common_http_protocol_options: service.timeout.map(|timeout| CommonHttpProtocolOptions {
            max_stream_duration: Some(proto_duration(timeout)),
            ..Default::default()
        }),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: service.route_config_name().to_owned(),
        })),
        http_filters,
        ..Default::default()
    };
    Listener {
        name: service.name.clone(),
        api_listener: Some(ApiListener {
            api_listener: Some(pack_any(manager)),
        }),
        ..Default::default()
    }
}
