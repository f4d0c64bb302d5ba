//! Listener validation: Envoy's `Listener` into [`mesh_core::listener::Listener`].
//!
//! What it solves: a client listener (gRFC A27: an `api_listener` holding an `HttpConnectionManager`) and a server
//! listener (gRFC A36: an address with filter chains, each with TLS per gRFC A29 and its own connection manager)
//! are checked against every rule the gRFCs set, and all problems of a resource are reported together, each with
//! its field path (`api_listener.api_listener.http_filters: router filter must be last`).
//!
//! Decisions where the specs leave room:
//! - `rds.config_source` must be `ads` or `self` (gRFC A27 requires ADS; `self` means the same server, as gRPC
//!   accepts since xDS federation).
//! - HTTP filters: gRFC A39 per side (client: router and fault; server: router and RBAC). A filter that is
//!   `disabled` by default (to be enabled per route) or discovered through ECDS cannot be represented and is
//!   NACKed unless `is_optional`, in which case it is skipped like an unknown optional filter.
//! - Fields that would change what a connection manager or filter chain accepts and that the model cannot express
//!   (scoped routes, `filter_chain_matcher`, `direct_source_prefix_ranges`) are NACKed rather than ignored.
//!
//! Not here: choosing a filter chain for a connection or running filters (mesh-tonic, mesh-tower).

use std::collections::HashSet;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener as PbListener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager as PbHttpConnectionManager, HttpFilter as PbHttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::Any;
use mesh_core::listener::{
    HttpConnectionManager, HttpFilter, HttpFilterConfig, Listener, ListenerKind, RouteSource,
};
use prost::Message;

use super::common::{Errors, TypedConfig, decode_message, duration, typed_config};
use super::route::route_config;
use super::{ResourceError, ResourceKind, ValidationContext};

pub(super) mod filters;
mod rbac;
mod server;
pub(super) mod tls;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod rejection_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use filters::{Side, TopLevel};

/// The `HttpConnectionManager` network filter's config type.
pub(crate) const HTTP_CONNECTION_MANAGER_TYPE: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// Decodes and validates a `Listener`, returning its name and model.
///
/// A listener with an `api_listener` is a client listener (gRFC A27); one with an `address` and no `api_listener` is
/// a server listener (gRFC A36).
///
/// # Errors
/// [`ResourceError`] when the bytes do not decode, the name is empty, or any rule is broken; every problem found is
/// listed.
pub fn validate_listener(
    bytes: &[u8],
    ctx: &ValidationContext,
) -> Result<(String, Listener), ResourceError> {
    let kind = ResourceKind::Listener;
    let pb = PbListener::decode(bytes)
        .map_err(|e| ResourceError::new(kind, None, format!("does not decode: {e}")))?;
    if pb.name.is_empty() {
        return Err(ResourceError::new(kind, None, "name: must not be empty"));
    }
    let mut errors = Errors::new();
    let listener_kind = if let Some(api_listener) = &pb.api_listener {
        errors
            .at("api_listener", |e| client(api_listener, &pb.name, ctx, e))
            .map(ListenerKind::Client)
    } else if pb.address.is_some() {
        server::server_listener(&pb, ctx, &mut errors).map(ListenerKind::Server)
    } else {
        errors.push(
            "",
            "neither api_listener (client) nor address (server) is set",
        );
        None
    };
    match errors.finish(listener_kind) {
        Ok(Some(ListenerKind::Client(http))) => {
            let listener = Listener::client(&pb.name, http);
            Ok((pb.name, listener))
        }
        Ok(Some(ListenerKind::Server(server))) => {
            let listener = Listener::server(&pb.name, server);
            Ok((pb.name, listener))
        }
        // Every `None` above comes with a recorded problem, and the model has no other kind yet.
        Ok(_) => Err(ResourceError::new(kind, Some(&pb.name), "invalid")),
        Err(problems) => Err(ResourceError {
            kind,
            name: Some(pb.name),
            problems,
        }),
    }
}

/// gRFC A27: the `api_listener` must hold an `HttpConnectionManager`.
fn client(
    pb: &ApiListener,
    listener_name: &str,
    ctx: &ValidationContext,
    errors: &mut Errors,
) -> Option<HttpConnectionManager> {
    let Some(any) = &pb.api_listener else {
        errors.push("api_listener", "must be set");
        return None;
    };
    errors.at("api_listener", |e| {
        http_connection_manager_any(any, Side::Client, listener_name, ctx, e)
    })
}

/// An `Any` that must hold an `HttpConnectionManager` (client `api_listener` or server network filter).
pub(crate) fn http_connection_manager_any(
    any: &Any,
    side: Side,
    listener_name: &str,
    ctx: &ValidationContext,
    errors: &mut Errors,
) -> Option<HttpConnectionManager> {
    match errors.check("", typed_config(any))? {
        TypedConfig::Message {
            type_name: HTTP_CONNECTION_MANAGER_TYPE,
            value,
        } => {
            let pb = errors.check(
                "",
                decode_message::<PbHttpConnectionManager>(HTTP_CONNECTION_MANAGER_TYPE, value),
            )?;
            http_connection_manager(&pb, side, listener_name, ctx, errors)
        }
        other => {
            errors.push(
                "",
                format!(
                    "type {:?} is not {HTTP_CONNECTION_MANAGER_TYPE}",
                    other.type_name()
                ),
            );
            None
        }
    }
}

/// `HttpConnectionManager` per gRFC A27 (route source), A39 (HTTP filters), A31 (default max stream duration) and
/// A41 (no trusted XFF hops or original-IP detection, so `remote_ip` is the peer address).
fn http_connection_manager(
    pb: &PbHttpConnectionManager,
    side: Side,
    listener_name: &str,
    _ctx: &ValidationContext,
    errors: &mut Errors,
) -> Option<HttpConnectionManager> {
    let problems_before = errors.len();
    let route_source = match &pb.route_specifier {
        Some(RouteSpecifier::Rds(rds)) => {
            errors.at("rds", |e| rds_name(rds, e)).map(RouteSource::Rds)
        }
        Some(RouteSpecifier::RouteConfig(config)) => {
            // An inline configuration without a name takes the listener's (see `RouteConfig::name`).
            let name = if config.name.is_empty() {
                listener_name
            } else {
                &config.name
            };
            errors
                .at("route_config", |e| route_config(config, name, e))
                .map(|config| RouteSource::Inline(Arc::new(config)))
        }
        Some(RouteSpecifier::ScopedRoutes(_)) => {
            errors.push(
                "scoped_routes",
                "is not supported (use rds or route_config)",
            );
            None
        }
        // gRFC A27: the connection manager must have `rds` or `route_config`.
        None => {
            errors.push("", "rds or route_config must be set");
            None
        }
    };
    let http_filters = http_filters(&pb.http_filters, side, errors);
    // gRFC A41: RBAC equates `remote_ip` with `direct_remote_ip`, which holds only without trusted hops or original
    // IP detection; the rule applies to client and server listeners alike.
    if pb.xff_num_trusted_hops != 0 {
        errors.push("xff_num_trusted_hops", "must be 0");
    }
    if !pb.original_ip_detection_extensions.is_empty() {
        errors.push("original_ip_detection_extensions", "must be empty");
    }
    // gRFC A31: the listener-wide default for routes that set no `max_stream_duration`.
    let max_stream_duration = pb
        .common_http_protocol_options
        .as_ref()
        .and_then(|options| options.max_stream_duration.as_ref())
        .and_then(|d| {
            errors.check(
                "common_http_protocol_options.max_stream_duration",
                duration(d),
            )
        });
    if errors.len() != problems_before {
        return None;
    }
    Some(
        HttpConnectionManager::new(route_source?)
            .with_http_filters(http_filters)
            .with_max_stream_duration(max_stream_duration),
    )
}

/// `rds` per gRFC A27: a route configuration name and a config source that is ADS (or `self`, the same server).
fn rds_name(pb: &Rds, errors: &mut Errors) -> Option<Arc<str>> {
    match pb
        .config_source
        .as_ref()
        .and_then(|source| source.config_source_specifier.as_ref())
    {
        Some(ConfigSourceSpecifier::Ads(_) | ConfigSourceSpecifier::Self_(_)) => {}
        Some(_) => errors.push("config_source", "must be ads or self"),
        None => errors.push("config_source", "must be set to ads or self"),
    }
    if pb.route_config_name.is_empty() {
        errors.push("route_config_name", "must not be empty");
        return None;
    }
    Some(pb.route_config_name.as_str().into())
}

/// `http_filters` per gRFC A39: at least one filter, unique names, every config of a type registered on this side
/// (unknown optional filters are skipped), the router last and nothing after it.
fn http_filters(pb: &[PbHttpFilter], side: Side, errors: &mut Errors) -> Vec<HttpFilter> {
    if pb.is_empty() {
        errors.push(
            "http_filters",
            "must contain at least one filter (the router, last)",
        );
        return Vec::new();
    }
    let problems_before = errors.len();
    let mut names = HashSet::new();
    let mut filters = Vec::with_capacity(pb.len());
    let last_index = pb.len() - 1;
    for (index, filter) in pb.iter().enumerate() {
        let converted = errors.at(&format!("http_filters[{index}]"), |e| {
            http_filter(filter, side, &mut names, e)
        });
        if let Some(converted) = converted {
            if matches!(converted.config, HttpFilterConfig::Router) && index != last_index {
                errors.push(
                    "http_filters",
                    format!("router filter must be last, but http_filters[{index}] is followed by other filters"),
                );
            }
            filters.push(converted);
        }
    }
    let has_router = filters
        .iter()
        .any(|filter| matches!(filter.config, HttpFilterConfig::Router));
    if !has_router && errors.len() == problems_before {
        // A39: "validation will fail if ... a non-terminal filter is the last filter in the chain".
        errors.push(
            "http_filters",
            "the last filter must be the router, and there is none",
        );
    }
    let faults = filters
        .iter()
        .filter(|filter| matches!(filter.config, HttpFilterConfig::Fault(_)))
        .count();
    if faults > 1 {
        // Overrides in the model are not keyed by filter instance (see `filters`).
        errors.push(
            "http_filters",
            format!("{faults} fault filters; at most one is supported"),
        );
    }
    filters
}

fn http_filter(
    pb: &PbHttpFilter,
    side: Side,
    names: &mut HashSet<String>,
    errors: &mut Errors,
) -> Option<HttpFilter> {
    if pb.name.is_empty() {
        errors.push("name", "must not be empty");
    } else if !names.insert(pb.name.clone()) {
        // gRFC A39: "Any duplicate instance names will cause the Listener resource to be NACKed."
        errors.push("name", format!("duplicate filter name {:?}", pb.name));
    }
    let skip = |errors: &mut Errors, field: &str, problem: String| {
        if pb.is_optional {
            tracing::debug!(filter = %pb.name, %problem, "optional HTTP filter skipped");
        } else {
            errors.push(field, format!("{problem} (not optional)"));
        }
    };
    if pb.disabled {
        skip(
            errors,
            "disabled",
            "filters disabled by default are not supported".to_owned(),
        );
        return None;
    }
    let any = match &pb.config_type {
        Some(ConfigType::TypedConfig(any)) => any,
        Some(ConfigType::ConfigDiscovery(_)) => {
            skip(
                errors,
                "config_discovery",
                "filter config discovery is not supported".to_owned(),
            );
            return None;
        }
        None => {
            errors.push("typed_config", "must be set");
            return None;
        }
    };
    match errors.at("typed_config", |e| filters::top_level(any, side, e)) {
        TopLevel::Known(config) => Some(HttpFilter::new(&pb.name, config)),
        // gRFC A39: an unknown type NACKs the listener "unless the `is_optional` field is true, in which case the
        // individual filter will be ignored".
        TopLevel::Unknown(type_name) => {
            let where_ = match side {
                Side::Client => "client",
                Side::Server => "server",
            };
            skip(
                errors,
                "typed_config",
                format!("unsupported filter type {type_name:?} on a {where_}"),
            );
            None
        }
        TopLevel::Invalid => None,
    }
}
