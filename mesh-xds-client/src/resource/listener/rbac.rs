//! The RBAC HTTP filter's config (gRFC A41, audit logging per gRFC A59) into [`mesh_core::rbac::Rbac`].
//!
//! A41 considers every Envoy-implemented field: CEL conditions are rejected; `header` matchers on `grpc-`-prefixed
//! names or `:scheme` are rejected; Envoy metadata (and, by the same reasoning, filter state) does not exist in gRPC
//! and so never matches, which we express as `not(any)` so that a surrounding `not` still behaves as A41 requires.
//! Fields the model cannot express (port ranges, URI templates, custom matchers and principals) are rejected rather
//! than ignored, since ignoring part of an authorization rule changes what it allows.

use envoy_types::pb::envoy::config::rbac::v3::permission::Rule;
use envoy_types::pb::envoy::config::rbac::v3::principal::Identifier;
use envoy_types::pb::envoy::config::rbac::v3::rbac::Action as PbAction;
use envoy_types::pb::envoy::config::rbac::v3::rbac::audit_logging_options::AuditCondition as PbAuditCondition;
use envoy_types::pb::envoy::config::rbac::v3::{
    Permission as PbPermission, Policy, Principal as PbPrincipal,
};
use envoy_types::pb::envoy::config::route::v3::HeaderMatcher as PbHeaderMatcher;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as PbRbacFilter;
use envoy_types::pb::envoy::r#type::matcher::v3::PathMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::path_matcher::Rule as PathRule;
use mesh_core::matcher::StringMatcher;
use mesh_core::rbac::{AuditCondition, Permission, Principal, Rbac, RbacAction, RbacPolicy};
use mesh_core::route::HeaderMatcher;

use crate::resource::common::{Errors, cidr_range, header_matcher, string_matcher, type_name};

/// The audit logger type we can run (gRFC A59's stdout logger).
const STDOUT_AUDIT_LOGGER: &str = "envoy.extensions.rbac.audit_loggers.stream.v3.StdoutAuditLog";

/// The RBAC filter's `rules`; `None` when the filter enforces nothing: `rules` unset (Envoy: "no enforcing RBAC
/// policy will be applied") or action `LOG` (gRFC A41: "the policy will be completely ignored, as if RBAC was not
/// configured"). Problems are recorded relative to the filter config.
pub(crate) fn rbac_filter(pb: &PbRbacFilter, errors: &mut Errors) -> Option<Rbac> {
    if pb.matcher.is_some() {
        errors.push("matcher", "is not supported (use rules)");
    }
    // gRFC A41: shadow rules are not supported and need no enforcement, so they are ignored.
    let rules = pb.rules.as_ref()?;
    errors.at("rules", |e| {
        let action = match PbAction::try_from(rules.action) {
            Ok(PbAction::Allow) => Some(RbacAction::Allow),
            Ok(PbAction::Deny) => Some(RbacAction::Deny),
            Ok(PbAction::Log) => None,
            Err(_) => {
                e.push("action", format!("unknown action {}", rules.action));
                None
            }
        };
        let mut names: Vec<&String> = rules.policies.keys().collect();
        // Policies are a map; sort by name so the model (and config dumps) are deterministic.
        names.sort();
        let mut policies = Vec::with_capacity(names.len());
        for name in names {
            let Some(policy_pb) = rules.policies.get(name) else {
                continue;
            };
            if let Some(converted) = e.at(&format!("policies[{name:?}]"), |e| {
                policy(name, policy_pb, e)
            }) {
                policies.push(converted);
            }
        }
        let audit_condition =
            rules
                .audit_logging_options
                .as_ref()
                .map_or(Some(AuditCondition::None), |options| {
                    e.at("audit_logging_options", |e| {
                        for (index, logger) in options.logger_configs.iter().enumerate() {
                            // gRFC A59: an unsupported logger type is a NACK unless the entry is optional.
                            let logger_type = logger
                                .audit_logger
                                .as_ref()
                                .and_then(|ext| ext.typed_config.as_ref())
                                .map_or("", |any| type_name(&any.type_url));
                            if logger_type != STDOUT_AUDIT_LOGGER && !logger.is_optional {
                                e.push(
                                &format!("logger_configs[{index}]"),
                                format!(
                                    "unsupported audit logger type {logger_type:?} (not optional)"
                                ),
                            );
                            }
                        }
                        audit_condition(options.audit_condition, e)
                    })
                });
        Some(Rbac::new(action?, policies)).map(|mut rbac| {
            rbac.audit_condition = audit_condition.unwrap_or_default();
            rbac
        })
    })
}

fn audit_condition(value: i32, errors: &mut Errors) -> Option<AuditCondition> {
    match PbAuditCondition::try_from(value) {
        Ok(PbAuditCondition::None) => Some(AuditCondition::None),
        Ok(PbAuditCondition::OnDeny) => Some(AuditCondition::OnDeny),
        Ok(PbAuditCondition::OnAllow) => Some(AuditCondition::OnAllow),
        Ok(PbAuditCondition::OnDenyAndAllow) => Some(AuditCondition::OnDenyAndAllow),
        Err(_) => {
            errors.push("audit_condition", format!("unknown condition {value}"));
            None
        }
    }
}

fn policy(name: &str, pb: &Policy, errors: &mut Errors) -> Option<RbacPolicy> {
    let problems_before = errors.len();
    // gRFC A41: "CEL fields are not supported, so `Policy.condition` and `Policy.checked_condition` must cause a
    // validation failure if present."
    if pb.condition.is_some() {
        errors.push("condition", "CEL conditions are not supported");
    }
    if pb.checked_condition.is_some() {
        errors.push("checked_condition", "CEL conditions are not supported");
    }
    // Envoy: both lists have `min_items: 1`.
    if pb.permissions.is_empty() {
        errors.push("permissions", "must not be empty");
    }
    if pb.principals.is_empty() {
        errors.push("principals", "must not be empty");
    }
    let permissions: Vec<Permission> = pb
        .permissions
        .iter()
        .enumerate()
        .filter_map(|(i, p)| errors.at(&format!("permissions[{i}]"), |e| permission(p, e)))
        .collect();
    let principals: Vec<Principal> = pb
        .principals
        .iter()
        .enumerate()
        .filter_map(|(i, p)| errors.at(&format!("principals[{i}]"), |e| principal(p, e)))
        .collect();
    (errors.len() == problems_before).then(|| RbacPolicy::new(name, permissions, principals))
}

/// What gRFC A41 says Envoy metadata (never present in gRPC) evaluates to: nothing matches it.
fn never_permission() -> Permission {
    Permission::Not(Box::new(Permission::Any))
}

fn never_principal() -> Principal {
    Principal::Not(Box::new(Principal::Any))
}

fn permission(pb: &PbPermission, errors: &mut Errors) -> Option<Permission> {
    match &pb.rule {
        Some(Rule::AndRules(set)) => {
            permission_set(&set.rules, "and_rules.rules", errors).map(Permission::And)
        }
        Some(Rule::OrRules(set)) => {
            permission_set(&set.rules, "or_rules.rules", errors).map(Permission::Or)
        }
        Some(Rule::Any(any)) => any_rule(*any, errors).map(|()| Permission::Any),
        Some(Rule::Header(header)) => rbac_header(header, errors).map(Permission::Header),
        Some(Rule::UrlPath(path)) => url_path(path, errors).map(Permission::UrlPath),
        Some(Rule::DestinationIp(cidr)) => errors
            .check("destination_ip", cidr_range(cidr))
            .map(Permission::DestinationIp),
        // Envoy: `destination_port` has `lte: 65535`.
        Some(Rule::DestinationPort(port)) => match u16::try_from(*port) {
            Ok(port) => Some(Permission::DestinationPort(port)),
            Err(_) => {
                errors.push("destination_port", format!("{port} is above 65535"));
                None
            }
        },
        Some(Rule::DestinationPortRange(_)) => unsupported(errors, "destination_port_range"),
        #[allow(deprecated)] // gRFC A41 defines what the deprecated `metadata` rule means in gRPC
        Some(Rule::Metadata(_)) => Some(never_permission()),
        Some(Rule::SourcedMetadata(_)) => Some(never_permission()),
        Some(Rule::NotRule(inner)) => errors
            .at("not_rule", |e| permission(inner, e))
            .map(|inner| Permission::Not(Box::new(inner))),
        Some(Rule::RequestedServerName(matcher)) => errors
            .check("requested_server_name", string_matcher(matcher))
            .map(Permission::RequestedServerName),
        Some(Rule::Matcher(_)) => unsupported(errors, "matcher"),
        Some(Rule::UriTemplate(_)) => unsupported(errors, "uri_template"),
        // Envoy: the rule is required; a newer rule type decodes as unset, and cannot be honoured either.
        None => {
            errors.push("", "rule must be set");
            None
        }
    }
}

fn permission_set(
    rules: &[PbPermission],
    field: &str,
    errors: &mut Errors,
) -> Option<Vec<Permission>> {
    if rules.is_empty() {
        errors.push(field, "must not be empty");
        return None;
    }
    let problems_before = errors.len();
    let converted: Vec<Permission> = rules
        .iter()
        .enumerate()
        .filter_map(|(i, rule)| errors.at(&format!("{field}[{i}]"), |e| permission(rule, e)))
        .collect();
    (errors.len() == problems_before).then_some(converted)
}

fn principal(pb: &PbPrincipal, errors: &mut Errors) -> Option<Principal> {
    match &pb.identifier {
        Some(Identifier::AndIds(set)) => {
            principal_set(&set.ids, "and_ids.ids", errors).map(Principal::And)
        }
        Some(Identifier::OrIds(set)) => {
            principal_set(&set.ids, "or_ids.ids", errors).map(Principal::Or)
        }
        Some(Identifier::Any(any)) => any_rule(*any, errors).map(|()| Principal::Any),
        // gRFC A41: without `principal_name`, any TLS peer matches; with it, the URI SANs, then DNS SANs, then the
        // subject are checked.
        Some(Identifier::Authenticated(authenticated)) => match &authenticated.principal_name {
            Some(name) => errors
                .check("authenticated.principal_name", string_matcher(name))
                .map(|matcher| Principal::Authenticated(Some(matcher))),
            None => Some(Principal::Authenticated(None)),
        },
        #[allow(deprecated)] // still sent by control planes; gRFC A41 maps it to the peer address
        Some(Identifier::SourceIp(cidr)) => errors
            .check("source_ip", cidr_range(cidr))
            .map(Principal::SourceIp),
        Some(Identifier::DirectRemoteIp(cidr)) => errors
            .check("direct_remote_ip", cidr_range(cidr))
            .map(Principal::DirectRemoteIp),
        Some(Identifier::RemoteIp(cidr)) => errors
            .check("remote_ip", cidr_range(cidr))
            .map(Principal::RemoteIp),
        Some(Identifier::Header(header)) => rbac_header(header, errors).map(Principal::Header),
        Some(Identifier::UrlPath(path)) => url_path(path, errors).map(Principal::UrlPath),
        #[allow(deprecated)]
        // gRFC A41: Envoy metadata is an empty map in gRPC, so this never matches
        Some(Identifier::Metadata(_)) => Some(never_principal()),
        Some(Identifier::SourcedMetadata(_)) => Some(never_principal()),
        // Envoy filter state has no gRPC equivalent either (A41's reasoning for metadata): never matches.
        Some(Identifier::FilterState(_)) => Some(never_principal()),
        Some(Identifier::NotId(inner)) => errors
            .at("not_id", |e| principal(inner, e))
            .map(|inner| Principal::Not(Box::new(inner))),
        Some(Identifier::Custom(_)) => unsupported(errors, "custom"),
        None => {
            errors.push("", "identifier must be set");
            None
        }
    }
}

fn principal_set(ids: &[PbPrincipal], field: &str, errors: &mut Errors) -> Option<Vec<Principal>> {
    if ids.is_empty() {
        errors.push(field, "must not be empty");
        return None;
    }
    let problems_before = errors.len();
    let converted: Vec<Principal> = ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| errors.at(&format!("{field}[{i}]"), |e| principal(id, e)))
        .collect();
    (errors.len() == problems_before).then_some(converted)
}

/// Envoy: `any` must be `true` (`const: true`).
fn any_rule(any: bool, errors: &mut Errors) -> Option<()> {
    if any {
        Some(())
    } else {
        errors.push("any", "must be true");
        None
    }
}

fn unsupported<T>(errors: &mut Errors, field: &str) -> Option<T> {
    errors.push(field, "is not supported");
    None
}

/// A header matcher in an RBAC rule. gRFC A41: "It is also a validation failure if Permission or Principal has a
/// `header` matcher for a `grpc-`-prefixed header name or `:scheme`", and `Host` is an alias of `:authority`
/// ("there must be no behavior change depending on which of the two header names is used"), so it is stored as
/// `:authority`.
fn rbac_header(pb: &PbHeaderMatcher, errors: &mut Errors) -> Option<HeaderMatcher> {
    let name = pb.name.to_ascii_lowercase();
    if name.starts_with("grpc-") || name == ":scheme" {
        errors.push(
            "header.name",
            format!("{:?} cannot be matched by RBAC", pb.name),
        );
        return None;
    }
    let mut matcher = errors.check("header", header_matcher(pb))?;
    if name == "host" {
        matcher.name = ":authority".into();
    }
    Some(matcher)
}

/// `url_path` (gRFC A41: the full method name with its leading slash, the `:path` header).
fn url_path(pb: &PathMatcher, errors: &mut Errors) -> Option<StringMatcher> {
    match &pb.rule {
        Some(PathRule::Path(matcher)) => errors.check("url_path.path", string_matcher(matcher)),
        None => {
            errors.push("url_path", "path must be set");
            None
        }
    }
}
