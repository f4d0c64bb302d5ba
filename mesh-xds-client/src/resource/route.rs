//! RouteConfiguration validation: Envoy's `RouteConfiguration` (RDS, or inline in a listener) into
//! [`mesh_core::route::RouteConfig`].
//!
//! What it solves: every rule gRFC A28 (routing), A31 (timeouts), A39 (per-filter overrides), A42 (hash policies)
//! and A44 (retries) sets for route configurations, checked in one pass that reports *all* problems of a resource
//! with their field paths (`virtual_hosts[0].routes[3].route.weighted_clusters: total weight is 0`), so one NACK
//! tells an operator everything to fix.
//!
//! Decisions where the specs leave room (each also documented at the rule):
//! - Routes gRPC ignores stay ignored: a route with `query_parameters` (gRFC A28), with an unset or unknown action
//!   or cluster specifier (A28: "the route containing this action will be ignored"), or naming an optional
//!   cluster-specifier plugin we do not support. We also ignore routes matching on `cookies`, `dynamic_metadata`
//!   or `filter_state`, which gRPC cannot see either; ignoring them (rather than the matcher) keeps such routes from
//!   taking traffic they were never meant to take.
//! - `redirect`, `direct_response` and `filter_action` are NACKed. gRPC keeps such routes and fails matching RPCs
//!   with UNAVAILABLE, but the model has no action that fails requests on both sides (`NonForwarding` is the
//!   *expected* action on a server, gRFC A36), and silently serving what the control plane meant to deny is worse
//!   than a visible NACK.
//! - `path_separated_prefix` (which gRPC NACKs as an unknown path specifier) is supported by translating it into an
//!   equivalent full-match regex.
//!
//! Not here: choosing a virtual host or route for a request (`mesh_core::route::matching`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::route::Action as PbAction;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    Route as PbRoute, RouteConfiguration, RouteMatch as PbRouteMatch, VirtualHost as PbVirtualHost,
};
use envoy_types::pb::google::protobuf::Any;
use mesh_core::matcher::SafeRegex;
use mesh_core::route::matching::validate_domain;
use mesh_core::route::{FaultInjection, PathMatch, Route, RouteConfig, RouteMatch, VirtualHost};
use prost::Message;

use super::common::{Errors, fractional_percent, header_matcher, regex_matcher};
use super::listener::filters::{FilterOverrides, filter_overrides};
use super::{ResourceError, ResourceKind, ValidationContext};

mod action;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod rejection_tests;
#[cfg(test)]
pub(in crate::resource) mod test_support;
#[cfg(test)]
mod tests;

/// Decodes and validates a `RouteConfiguration`, returning its name and model.
///
/// # Errors
/// [`ResourceError`] when the bytes do not decode, the name is empty, or any rule is broken; every problem found is
/// listed.
pub fn validate_route_configuration(
    bytes: &[u8],
    _ctx: &ValidationContext,
) -> Result<(String, RouteConfig), ResourceError> {
    let kind = ResourceKind::RouteConfiguration;
    let pb = RouteConfiguration::decode(bytes)
        .map_err(|e| ResourceError::new(kind, None, format!("does not decode: {e}")))?;
    if pb.name.is_empty() {
        return Err(ResourceError::new(kind, None, "name: must not be empty"));
    }
    let mut errors = Errors::new();
    let config = route_config(&pb, &pb.name, &mut errors);
    match errors.finish(config) {
        Ok(Some(config)) => Ok((pb.name, config)),
        // `route_config` returns `None` only after recording a problem; report a generic one should that change.
        Ok(None) => Err(ResourceError::new(kind, Some(&pb.name), "invalid")),
        Err(problems) => Err(ResourceError {
            kind,
            name: Some(pb.name),
            problems,
        }),
    }
}

/// Converts a route configuration (from RDS or inline in a listener), recording problems in `errors` relative to
/// the configuration's root. `name` becomes the model's name (the listener's name for an inline configuration whose
/// own name is empty).
pub(in crate::resource) fn route_config(
    pb: &RouteConfiguration,
    name: &str,
    errors: &mut Errors,
) -> Option<RouteConfig> {
    let problems_before = errors.len();
    let plugins = cluster_specifier_plugins(pb, errors);
    // The route-configuration level override is the least specific: it applies to virtual hosts that set none
    // (Envoy: "the most specific config wins"; gRFC A39 lists the virtual host, route and cluster levels).
    let config_overrides = errors.at("typed_per_filter_config", |e| {
        filter_overrides(&pb.typed_per_filter_config, e)
    });

    let mut seen_domains: HashMap<String, usize> = HashMap::new();
    let mut virtual_hosts = Vec::with_capacity(pb.virtual_hosts.len());
    for (index, vhost) in pb.virtual_hosts.iter().enumerate() {
        let converted = errors.at(&format!("virtual_hosts[{index}]"), |e| {
            check_domains(vhost, index, &mut seen_domains, e);
            virtual_host(vhost, &plugins, e)
        });
        if let Some(mut converted) = converted {
            if converted.fault_override.is_none() {
                converted.fault_override = config_overrides.fault.clone();
            }
            virtual_hosts.push(converted);
        }
    }
    if pb.virtual_hosts.is_empty() {
        // Allowed: gRFC A28 then fails every RPC for lack of a matching virtual host, which is what the control
        // plane asked for.
        tracing::debug!(
            route_config = name,
            "route configuration has no virtual hosts"
        );
    }
    (errors.len() == problems_before).then(|| RouteConfig::new(name, virtual_hosts))
}

/// Cluster-specifier plugins by name: `true` when the plugin is optional. We support no plugin type, so a required
/// plugin is a NACK and routes naming an optional one are ignored (gRFC A28's rule for unsupported cluster
/// specifiers, and Envoy's `is_optional` contract).
fn cluster_specifier_plugins(
    pb: &RouteConfiguration,
    errors: &mut Errors,
) -> BTreeMap<String, bool> {
    let mut plugins = BTreeMap::new();
    for (index, plugin) in pb.cluster_specifier_plugins.iter().enumerate() {
        errors.at(&format!("cluster_specifier_plugins[{index}]"), |e| {
            let Some(extension) = &plugin.extension else {
                e.push("extension", "must be set");
                return;
            };
            if extension.name.is_empty() {
                e.push("extension.name", "must not be empty");
                return;
            }
            if plugins
                .insert(extension.name.clone(), plugin.is_optional)
                .is_some()
            {
                e.push(
                    "extension.name",
                    format!("duplicate plugin name {:?}", extension.name),
                );
            }
            if !plugin.is_optional {
                let type_url = extension
                    .typed_config
                    .as_ref()
                    .map_or("", |any| any.type_url.as_str());
                e.push(
                    "extension.typed_config",
                    format!(
                        "unsupported cluster specifier plugin type {type_url:?} (not optional)"
                    ),
                );
            }
        });
    }
    plugins
}

/// Envoy rejects a domain served by two virtual hosts ("only unique values for domains are permitted", compared
/// case-insensitively); gRFC A28 relies on the most specific match being unique. Each domain must also have a form
/// that can match at all.
fn check_domains(
    vhost: &PbVirtualHost,
    index: usize,
    seen: &mut HashMap<String, usize>,
    errors: &mut Errors,
) {
    if vhost.domains.is_empty() {
        // Envoy: `domains` has `min_items: 1`.
        errors.push("domains", "must not be empty");
    }
    for (domain_index, domain) in vhost.domains.iter().enumerate() {
        let field = format!("domains[{domain_index}]");
        if let Err(problem) = validate_domain(domain) {
            errors.push(&field, problem);
            continue;
        }
        if let Some(first) = seen.insert(domain.to_ascii_lowercase(), index) {
            errors.push(
                &field,
                format!("domain {domain:?} is also served by virtual_hosts[{first}]"),
            );
        }
    }
}

fn virtual_host(
    pb: &PbVirtualHost,
    plugins: &BTreeMap<String, bool>,
    errors: &mut Errors,
) -> Option<VirtualHost> {
    let problems_before = errors.len();
    if pb.matcher.is_some() {
        // Envoy ignores `routes` when the unified matcher is set; we cannot evaluate it.
        errors.push("matcher", "is not supported");
    }
    let overrides = errors.at("typed_per_filter_config", |e| {
        filter_overrides(&pb.typed_per_filter_config, e)
    });
    // gRFC A44: the virtual host's retry policy applies to routes that set none.
    let retry_policy = pb
        .retry_policy
        .as_ref()
        .and_then(|policy| errors.at("retry_policy", |e| action::retry_policy(policy, e)));

    let mut routes = Vec::with_capacity(pb.routes.len());
    for (index, route_pb) in pb.routes.iter().enumerate() {
        let segment = format!("routes[{index}]");
        match errors.at(&segment, |e| route(route_pb, plugins, e)) {
            RouteOutcome::Keep(converted) => routes.push(*converted),
            RouteOutcome::Ignore(reason) => {
                tracing::debug!(virtual_host = %pb.name, route = index, reason, "route ignored");
            }
            RouteOutcome::Invalid => {}
        }
    }
    if errors.len() != problems_before {
        return None;
    }
    let domains: Vec<&str> = pb.domains.iter().map(String::as_str).collect();
    Some(
        VirtualHost::new(&pb.name, &domains, routes)
            .with_retry_policy(retry_policy)
            .with_fault_override(overrides.fault),
    )
}

/// What became of one route.
enum RouteOutcome {
    /// A valid route.
    Keep(Box<Route>),
    /// A route gRPC ignores (never matches), with the reason for the debug log.
    Ignore(&'static str),
    /// Problems were recorded.
    Invalid,
}

fn route(pb: &PbRoute, plugins: &BTreeMap<String, bool>, errors: &mut Errors) -> RouteOutcome {
    let problems_before = errors.len();
    let matcher = match &pb.r#match {
        Some(matcher) => errors.at("match", |e| route_match(matcher, e)),
        None => {
            // Envoy: `match` is required.
            errors.push("match", "must be set");
            MatchOutcome::Invalid
        }
    };
    let overrides: FilterOverrides = errors.at("typed_per_filter_config", |e| {
        filter_overrides(&pb.typed_per_filter_config, e)
    });
    let route_action = match &pb.action {
        Some(PbAction::Route(pb_action)) => {
            errors.at("route", |e| action::route_action(pb_action, plugins, e))
        }
        // gRFC A36: a valid action; a server handles the request locally, a client fails it with UNAVAILABLE.
        Some(PbAction::NonForwardingAction(_)) => action::ActionOutcome::NonForwarding,
        Some(PbAction::Redirect(_)) => unsupported_action(errors, "redirect"),
        Some(PbAction::DirectResponse(_)) => unsupported_action(errors, "direct_response"),
        Some(PbAction::FilterAction(_)) => unsupported_action(errors, "filter_action"),
        // gRFC A28: an unset action (or one from a newer proto, which decodes as unset) makes the route ignored.
        None => action::ActionOutcome::Ignore("no action"),
    };
    if errors.len() != problems_before {
        return RouteOutcome::Invalid;
    }
    let matcher = match matcher {
        MatchOutcome::Match(matcher) => matcher,
        MatchOutcome::Ignore(reason) => return RouteOutcome::Ignore(reason),
        MatchOutcome::Invalid => return RouteOutcome::Invalid,
    };
    let mut converted = match route_action {
        action::ActionOutcome::Route(route_action) => Route::new(matcher, *route_action),
        action::ActionOutcome::NonForwarding => Route::non_forwarding(matcher),
        action::ActionOutcome::Ignore(reason) => return RouteOutcome::Ignore(reason),
        action::ActionOutcome::Invalid => return RouteOutcome::Invalid,
    };
    if !pb.name.is_empty() {
        converted = converted.with_name(Some(Arc::from(pb.name.as_str())));
    }
    converted = converted.with_fault_override(overrides.fault);
    RouteOutcome::Keep(Box::new(converted))
}

fn unsupported_action(errors: &mut Errors, field: &str) -> action::ActionOutcome {
    errors.push(
        field,
        "route action is not supported (only `route` and `non_forwarding_action` are)",
    );
    action::ActionOutcome::Invalid
}

/// What became of a route's match.
enum MatchOutcome {
    Match(RouteMatch),
    Ignore(&'static str),
    Invalid,
}

/// `RouteMatch` per gRFC A28.
fn route_match(pb: &PbRouteMatch, errors: &mut Errors) -> MatchOutcome {
    let problems_before = errors.len();
    // Envoy: `case_sensitive` defaults to true; gRFC A28 honours an explicit false for prefix and path.
    let case_sensitive = pb.case_sensitive.is_none_or(|value| value.value);
    let path = match &pb.path_specifier {
        Some(PathSpecifier::Prefix(prefix)) => Some(PathMatch::Prefix(prefix.as_str().into())),
        Some(PathSpecifier::Path(path)) => Some(PathMatch::Exact(path.as_str().into())),
        // gRFC A28/A63: `safe_regex` must compile; case sensitivity does not apply to it.
        Some(PathSpecifier::SafeRegex(regex)) => errors
            .check("safe_regex", regex_matcher(regex))
            .map(PathMatch::SafeRegex),
        Some(PathSpecifier::PathSeparatedPrefix(prefix)) => errors
            .check(
                "path_separated_prefix",
                path_separated_prefix(prefix, case_sensitive),
            )
            .map(PathMatch::SafeRegex),
        Some(PathSpecifier::ConnectMatcher(_)) => {
            errors.push("connect_matcher", "is not supported");
            None
        }
        Some(PathSpecifier::PathMatchPolicy(policy)) => {
            errors.push(
                "path_match_policy",
                format!("extension {:?} is not supported", policy.name),
            );
            None
        }
        // gRFC A28: "Not having path_specifier will cause a NACK".
        None => {
            errors.push(
                "",
                "path_specifier must be set (prefix, path or safe_regex)",
            );
            None
        }
    };
    let mut headers = Vec::with_capacity(pb.headers.len());
    for (index, header) in pb.headers.iter().enumerate() {
        if let Some(header) = errors.check(&format!("headers[{index}]"), header_matcher(header)) {
            headers.push(header);
        }
    }
    // gRFC A28: gRPC has no runtime, so only `default_value` is used and `runtime_key` is ignored.
    let runtime_fraction = pb.runtime_fraction.as_ref().and_then(|fraction| {
        match &fraction.default_value {
            Some(value) => {
                errors.check("runtime_fraction.default_value", fractional_percent(value))
            }
            None => {
                // Envoy: `default_value` is required.
                errors.push("runtime_fraction.default_value", "must be set");
                None
            }
        }
    });
    if errors.len() != problems_before {
        return MatchOutcome::Invalid;
    }
    let Some(path) = path else {
        return MatchOutcome::Invalid;
    };
    // gRFC A28: a route with `query_parameters` is ignored ("this always evaluates to false, because gRPC does not
    // and will not support query parameters"). Cookie, dynamic-metadata and filter-state matchers are in the same
    // situation (gRPC sees none of them), so their routes are ignored too. `grpc` and `tls_context` matchers are
    // ignored while the rest of the route is evaluated (A28).
    if !pb.query_parameters.is_empty() {
        return MatchOutcome::Ignore("query_parameters");
    }
    if !pb.cookies.is_empty() {
        return MatchOutcome::Ignore("cookies");
    }
    if !pb.dynamic_metadata.is_empty() {
        return MatchOutcome::Ignore("dynamic_metadata");
    }
    if !pb.filter_state.is_empty() {
        return MatchOutcome::Ignore("filter_state");
    }
    let mut matcher = RouteMatch::new(path)
        .with_case_sensitive(case_sensitive)
        .with_runtime_fraction(runtime_fraction);
    matcher.headers = headers;
    MatchOutcome::Match(matcher)
}

/// Envoy's `path_separated_prefix`: the path equals the prefix or continues it with `/`. Envoy requires the prefix
/// to match `^[^?#]+[^?#/]$`. Translated to a full-match regex (case-insensitive when `case_sensitive` is false).
fn path_separated_prefix(prefix: &str, case_sensitive: bool) -> Result<SafeRegex, String> {
    if prefix.is_empty() || prefix.ends_with('/') || prefix.contains(['?', '#']) {
        return Err(format!(
            "{prefix:?} must be non-empty, not end with '/' and contain no '?' or '#'"
        ));
    }
    let flags = if case_sensitive { "" } else { "(?i)" };
    SafeRegex::new(&format!("{flags}{}(?:/.*)?", escape_regex(prefix))).map_err(|e| e.to_string())
}

/// Escapes the regex meta characters (those `regex::escape` escapes) so `literal` matches itself.
fn escape_regex(literal: &str) -> String {
    let mut escaped = String::with_capacity(literal.len() * 2);
    for c in literal.chars() {
        if matches!(
            c,
            '\\' | '.'
                | '+'
                | '*'
                | '?'
                | '('
                | ')'
                | '|'
                | '['
                | ']'
                | '{'
                | '}'
                | '^'
                | '$'
                | '#'
                | '&'
                | '-'
                | '~'
        ) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The fault override of a per-filter config map, for callers that only need that (weighted clusters).
pub(in crate::resource) fn fault_override(
    map: &HashMap<String, Any>,
    errors: &mut Errors,
) -> Option<FaultInjection> {
    filter_overrides(map, errors).fault
}
