//! The HTTP filter registry (gRFC A39): which filter config types we know, on which side, and how their top-level
//! configs and per-route overrides translate into the model.
//!
//! Registered types: the router (`envoy.extensions.filters.http.router.v3.Router`, both sides, terminal), fault
//! injection (`...fault.v3.HTTPFault`, client side, gRFC A33) and RBAC (`...rbac.v3.RBAC`, server side, gRFC A41),
//! following gRPC's split: A39 gives clients and servers independent filter sets. Override types: `HTTPFault`
//! (vhost, route and weighted-cluster level) and `RBACPerRoute`.
//!
//! Decisions: the model holds one fault override per level, not one per filter instance, so a connection manager
//! may have at most one fault filter and a per-filter-config map at most one fault override. `RBACPerRoute` is
//! validated but, having no place in the model yet, is NACKed unless optional: dropping an authorization override
//! silently would enforce a different policy than the control plane asked for.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::route::v3::FilterConfig;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::{
    Rbac as PbRbacFilter, RbacPerRoute,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::r#type::v3::FractionalPercent as PbFractionalPercent;
use envoy_types::pb::google::protobuf::Any;
use mesh_core::fraction::FractionalPercent;
use mesh_core::listener::HttpFilterConfig;
use mesh_core::route::{FaultAbort, FaultAbortKind, FaultDelay, FaultInjection};

use super::rbac::rbac_filter;
use crate::resource::common::{
    Errors, TypedConfig, decode_message, duration, fractional_percent, header_matcher, type_name,
    typed_config,
};

/// The router's config type.
pub(crate) const ROUTER_TYPE: &str = "envoy.extensions.filters.http.router.v3.Router";
/// The fault filter's config type (top level and override).
pub(crate) const FAULT_TYPE: &str = "envoy.extensions.filters.http.fault.v3.HTTPFault";
/// The RBAC filter's top-level config type.
pub(crate) const RBAC_TYPE: &str = "envoy.extensions.filters.http.rbac.v3.RBAC";
/// The RBAC filter's override type.
pub(crate) const RBAC_PER_ROUTE_TYPE: &str = "envoy.extensions.filters.http.rbac.v3.RBACPerRoute";
/// The wrapper carrying `is_optional` for overrides (gRFC A39).
const FILTER_CONFIG_TYPE: &str = "envoy.config.route.v3.FilterConfig";

/// Which side a connection manager runs on: gRFC A39 gives each its own filter registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// An API listener (gRPC client).
    Client,
    /// A TCP listener (gRPC server).
    Server,
}

/// A top-level filter config, decoded.
pub(crate) enum TopLevel {
    /// A registered type, converted.
    Known(HttpFilterConfig),
    /// A type not registered on this side: the caller NACKs or skips it per `is_optional`.
    Unknown(String),
    /// Problems were recorded.
    Invalid,
}

/// Decodes a filter's `typed_config` (gRFC A39), recording problems relative to it.
pub(crate) fn top_level(any: &Any, side: Side, errors: &mut Errors) -> TopLevel {
    let config = match typed_config(any) {
        Ok(config) => config,
        Err(problem) => {
            errors.push("", problem);
            return TopLevel::Invalid;
        }
    };
    match (config.type_name(), side) {
        // gRFC A39: "gRPC will not support any of the fields in the router filter's config. All fields will be
        // ignored", so the config only has to decode (or be a TypedStruct naming it).
        (ROUTER_TYPE, _) => match config {
            TypedConfig::Message { value, .. } => {
                match decode_message::<Router>(ROUTER_TYPE, value) {
                    Ok(_) => TopLevel::Known(HttpFilterConfig::Router),
                    Err(problem) => {
                        errors.push("", problem);
                        TopLevel::Invalid
                    }
                }
            }
            TypedConfig::Struct { .. } => TopLevel::Known(HttpFilterConfig::Router),
        },
        (FAULT_TYPE, Side::Client) => match message::<HttpFault>(&config, errors) {
            Some(pb) => fault(&pb, errors).map_or(TopLevel::Invalid, |f| {
                TopLevel::Known(HttpFilterConfig::Fault(f))
            }),
            None => TopLevel::Invalid,
        },
        (RBAC_TYPE, Side::Server) => match message::<PbRbacFilter>(&config, errors) {
            Some(pb) => {
                let problems_before = errors.len();
                let rules = rbac_filter(&pb, errors);
                if errors.len() == problems_before {
                    TopLevel::Known(HttpFilterConfig::Rbac(rules))
                } else {
                    TopLevel::Invalid
                }
            }
            None => TopLevel::Invalid,
        },
        (other, _) => TopLevel::Unknown(other.to_owned()),
    }
}

/// Decodes a registered message, rejecting a `TypedStruct` form we cannot convert.
fn message<T: prost::Message + Default>(
    config: &TypedConfig<'_>,
    errors: &mut Errors,
) -> Option<T> {
    match config {
        TypedConfig::Message { type_name, value } => {
            errors.check("", decode_message::<T>(type_name, value))
        }
        TypedConfig::Struct { type_name } => {
            errors.push(
                "",
                format!(
                    "{type_name} given as a TypedStruct is not supported; send the message itself"
                ),
            );
            None
        }
    }
}

/// The overrides of one `typed_per_filter_config` map that the model can hold.
#[derive(Debug, Default)]
pub(crate) struct FilterOverrides {
    /// The fault-injection override, if any.
    pub(crate) fault: Option<FaultInjection>,
}

/// Validates a `typed_per_filter_config` map (gRFC A39): every entry must be of a known override type unless
/// optional; the key need not name a filter of any connection manager ("the xDS client code cannot know which
/// `HttpConnectionManager` config is currently being used"), and both sides' types are accepted.
pub(crate) fn filter_overrides(map: &HashMap<String, Any>, errors: &mut Errors) -> FilterOverrides {
    let mut overrides = FilterOverrides::default();
    // Sorted so problems come out in the same order every time.
    let mut entries: Vec<(&String, &Any)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (name, any) in entries {
        errors.at(&format!("[{name:?}]"), |e| {
            if let Some(fault) = filter_override(any, e) {
                if overrides.fault.is_some() {
                    e.push(
                        "",
                        "a second fault override (only one fault filter instance is supported)",
                    );
                } else {
                    overrides.fault = Some(fault);
                }
            }
        });
    }
    overrides
}

/// One override entry; `Some` for a fault override.
fn filter_override(any: &Any, errors: &mut Errors) -> Option<FaultInjection> {
    // gRFC A39: a `FilterConfig` wrapper carries `is_optional` and the config itself.
    let wrapper = if type_name(&any.type_url) == FILTER_CONFIG_TYPE {
        Some(errors.check(
            "",
            decode_message::<FilterConfig>(FILTER_CONFIG_TYPE, &any.value),
        )?)
    } else {
        None
    };
    let (inner, is_optional, disabled) = match &wrapper {
        Some(wrapper) => (
            wrapper.config.as_ref(),
            wrapper.is_optional,
            wrapper.disabled,
        ),
        None => (Some(any), false, false),
    };
    let Some(inner) = inner else {
        // Envoy: a `FilterConfig` without `config` only makes sense with `disabled`, naming the filter by key,
        // which the xDS client cannot resolve to a type (gRFC A39).
        if !is_optional {
            errors.push(
                "config",
                "must be set (disabling a filter by name alone is not supported)",
            );
        }
        return None;
    };
    let config = errors.check("", typed_config(inner))?;
    match config.type_name() {
        FAULT_TYPE => {
            let pb = message::<HttpFault>(&config, errors)?;
            let converted = fault(&pb, errors)?;
            // Envoy's `FilterConfig.disabled`: the filter does not run for this route, i.e. injects nothing.
            Some(if disabled {
                FaultInjection::default()
            } else {
                converted
            })
        }
        RBAC_PER_ROUTE_TYPE => {
            if let Some(RbacPerRoute { rbac: Some(rbac) }) =
                message::<RbacPerRoute>(&config, errors)
            {
                errors.at("rbac", |e| rbac_filter(&rbac, e));
            }
            if !is_optional {
                errors.push("", "RBACPerRoute overrides are not supported yet");
            }
            None
        }
        // gRFC A39: a top-level type used as an override fails validation when the filter takes no override of
        // that type.
        ROUTER_TYPE | RBAC_TYPE => {
            errors.push(
                "",
                format!(
                    "{} cannot be used as a per-route override",
                    config.type_name()
                ),
            );
            None
        }
        other => {
            if !is_optional {
                errors.push(
                    "",
                    format!("unsupported filter config type {other:?} (not optional)"),
                );
            }
            None
        }
    }
}

/// `HTTPFault` per gRFC A33: fixed or header delay, HTTP, gRPC or header abort, each with a percentage (0 when
/// unset, as in Envoy), `max_active_faults` and header conditions. A33 defers `response_rate_limit`,
/// `upstream_cluster` and `downstream_nodes`; like gRPC we ignore them, and the runtime keys (no runtime).
pub(crate) fn fault(pb: &HttpFault, errors: &mut Errors) -> Option<FaultInjection> {
    let problems_before = errors.len();
    let delay = pb.delay.as_ref().and_then(|delay| {
        errors.at("delay", |e| {
            let percentage = percentage(delay.percentage.as_ref(), e)?;
            match &delay.fault_delay_secifier {
                Some(FaultDelaySecifier::FixedDelay(fixed)) => e
                    .check("fixed_delay", duration(fixed))
                    .map(|delay| FaultDelay::Fixed { delay, percentage }),
                Some(FaultDelaySecifier::HeaderDelay(_)) => Some(FaultDelay::Header { percentage }),
                None => {
                    e.push("", "fixed_delay or header_delay must be set");
                    None
                }
            }
        })
    });
    let abort = pb.abort.as_ref().and_then(|abort| {
        errors.at("abort", |e| {
            let percentage = percentage(abort.percentage.as_ref(), e)?;
            let kind = match abort.error_type {
                // Envoy: `http_status` in [200, 600).
                Some(ErrorType::HttpStatus(status)) => match u16::try_from(status) {
                    Ok(status) if (200..600).contains(&status) => FaultAbortKind::Http(status),
                    _ => {
                        e.push("http_status", format!("{status} is not in [200, 600)"));
                        return None;
                    }
                },
                Some(ErrorType::GrpcStatus(code)) if code <= 16 => FaultAbortKind::Grpc(code),
                Some(ErrorType::GrpcStatus(code)) => {
                    e.push(
                        "grpc_status",
                        format!("{code} is not a gRPC status code (0..=16)"),
                    );
                    return None;
                }
                Some(ErrorType::HeaderAbort(_)) => FaultAbortKind::Header,
                None => {
                    e.push("", "http_status, grpc_status or header_abort must be set");
                    return None;
                }
            };
            Some(FaultAbort::new(kind, percentage))
        })
    });
    let mut headers = Vec::with_capacity(pb.headers.len());
    for (index, header) in pb.headers.iter().enumerate() {
        if let Some(header) = errors.check(&format!("headers[{index}]"), header_matcher(header)) {
            headers.push(header);
        }
    }
    if errors.len() != problems_before {
        return None;
    }
    let mut fault = FaultInjection::default()
        .with_delay(delay)
        .with_abort(abort)
        .with_max_active_faults(pb.max_active_faults.map(|max| max.value));
    fault.headers = headers;
    Some(fault)
}

fn percentage(pb: Option<&PbFractionalPercent>, errors: &mut Errors) -> Option<FractionalPercent> {
    match pb {
        Some(pb) => errors.check("percentage", fractional_percent(pb)),
        None => Some(FractionalPercent::NEVER),
    }
}
