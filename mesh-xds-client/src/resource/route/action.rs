//! `RouteAction`: cluster specifiers (gRFC A28), timeouts (A31), retries (A44) and hash policies (A42).

use std::collections::BTreeMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::RetryPolicy as PbRetryPolicy;
use envoy_types::pb::envoy::config::route::v3::RouteAction as PbRouteAction;
use envoy_types::pb::envoy::config::route::v3::WeightedCluster as PbWeightedCluster;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier as PbClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_action::HashPolicy as PbHashPolicy;
use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::PolicySpecifier;
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use mesh_core::matcher::SafeRegex;
use mesh_core::route::{
    ClusterSpecifier, HashPolicy, HashPolicyKind, RetryBackoff, RetryOn, RetryPolicy, RouteAction,
    WeightedCluster, WeightedClusters,
};

use super::fault_override;
use crate::resource::common::{Errors, duration, regex_matcher};

/// gRFC A42: the one filter-state key gRPC hashes, standing for the channel's identity.
const CHANNEL_ID_KEY: &str = "io.grpc.channel_id";

/// gRFC A44: backoff intervals below one millisecond are treated as one millisecond.
const MIN_RETRY_INTERVAL: Duration = Duration::from_millis(1);

/// What became of a route's action.
pub(super) enum ActionOutcome {
    /// Forward with this action.
    Route(Box<RouteAction>),
    /// `non_forwarding_action` (gRFC A36).
    NonForwarding,
    /// gRPC ignores the route (the reason is logged).
    Ignore(&'static str),
    /// Problems were recorded.
    Invalid,
}

/// `RouteAction` per gRFC A28/A31/A42/A44. `plugins` maps cluster-specifier plugin names to whether they are
/// optional.
pub(super) fn route_action(
    pb: &PbRouteAction,
    plugins: &BTreeMap<String, bool>,
    errors: &mut Errors,
) -> ActionOutcome {
    let problems_before = errors.len();
    let cluster = match &pb.cluster_specifier {
        // Envoy: `cluster` has `min_len: 1`.
        Some(PbClusterSpecifier::Cluster(name)) if name.is_empty() => {
            errors.push("cluster", "must not be empty");
            None
        }
        Some(PbClusterSpecifier::Cluster(name)) => {
            Some(ClusterSpecifier::Cluster(name.as_str().into()))
        }
        // Beyond gRFC A28 (which ignores such routes): the cluster is named by a request header.
        Some(PbClusterSpecifier::ClusterHeader(header)) => match header_name(header) {
            Ok(name) => Some(ClusterSpecifier::Header(name.into())),
            Err(problem) => {
                errors.push("cluster_header", problem);
                None
            }
        },
        Some(PbClusterSpecifier::WeightedClusters(weighted)) => errors
            .at("weighted_clusters", |e| weighted_clusters(weighted, e))
            .map(ClusterSpecifier::Weighted),
        Some(PbClusterSpecifier::ClusterSpecifierPlugin(name)) => match plugins.get(name) {
            // An optional plugin we do not support: the route is ignored.
            Some(true) => return ActionOutcome::Ignore("optional cluster specifier plugin"),
            // A required one was reported where it is defined.
            Some(false) => return ActionOutcome::Invalid,
            None => {
                errors.push(
                    "cluster_specifier_plugin",
                    format!("{name:?} is not defined in cluster_specifier_plugins"),
                );
                None
            }
        },
        Some(PbClusterSpecifier::InlineClusterSpecifierPlugin(plugin)) => {
            if plugin.is_optional {
                return ActionOutcome::Ignore("optional inline cluster specifier plugin");
            }
            errors.push(
                "inline_cluster_specifier_plugin",
                "is not supported (not optional)",
            );
            None
        }
        // gRFC A28: an unset (or unknown, newer) cluster specifier makes the route ignored.
        None => return ActionOutcome::Ignore("no cluster specifier"),
    };

    // gRFC A31: `max_stream_duration.max_stream_duration` is the route's timeout, capped per call by the
    // `grpc-timeout` header, itself capped by `grpc_timeout_header_max`. A zero value is kept: it means "no limit".
    let (max_stream_duration, grpc_timeout_header_max) = match &pb.max_stream_duration {
        Some(limits) => errors.at("max_stream_duration", |e| {
            let max = limits
                .max_stream_duration
                .as_ref()
                .and_then(|d| e.check("max_stream_duration", duration(d)));
            let header_max = limits
                .grpc_timeout_header_max
                .as_ref()
                .and_then(|d| e.check("grpc_timeout_header_max", duration(d)));
            (max, header_max)
        }),
        None => (None, None),
    };
    let retry_policy = pb
        .retry_policy
        .as_ref()
        .and_then(|policy| errors.at("retry_policy", |e| retry_policy(policy, e)));
    let hash_policies = hash_policies(&pb.hash_policy, errors);

    if errors.len() != problems_before {
        return ActionOutcome::Invalid;
    }
    let Some(cluster) = cluster else {
        return ActionOutcome::Invalid;
    };
    let mut action = RouteAction::new(cluster)
        .with_max_stream_duration(max_stream_duration)
        .with_grpc_timeout_header_max(grpc_timeout_header_max)
        .with_retry_policy(retry_policy);
    action.hash_policies = hash_policies;
    ActionOutcome::Route(Box::new(action))
}

/// A request header name as a cluster or hash key: non-empty, no whitespace or control characters, lowercased.
fn header_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!("{name:?} is not a valid header name"));
    }
    Ok(name.to_ascii_lowercase())
}

/// `WeightedCluster` per gRFC A28: at least one cluster, a positive total that fits in 32 bits, and (when the
/// deprecated `total_weight` is set) weights adding up to it.
fn weighted_clusters(pb: &PbWeightedCluster, errors: &mut Errors) -> Option<WeightedClusters> {
    let problems_before = errors.len();
    if pb.clusters.is_empty() {
        // Envoy: `clusters` has `min_items: 1`.
        errors.push("clusters", "must not be empty");
        return None;
    }
    let mut clusters = Vec::with_capacity(pb.clusters.len());
    let mut total: u64 = 0;
    for (index, entry) in pb.clusters.iter().enumerate() {
        errors.at(&format!("clusters[{index}]"), |e| {
            if entry.name.is_empty() {
                if entry.cluster_header.is_empty() {
                    e.push("name", "must not be empty");
                } else {
                    e.push("cluster_header", "is not supported in a weighted cluster");
                }
                return;
            }
            // An unset weight is 0: the cluster gets no traffic (Envoy's wrapper default).
            let weight = entry.weight.map_or(0, |w| w.value);
            total = total.saturating_add(u64::from(weight));
            let mut cluster = WeightedCluster::new(&entry.name, weight);
            // gRFC A39: a weighted cluster's override is the most specific one.
            cluster.fault_override = e.at("typed_per_filter_config", |e| {
                fault_override(&entry.typed_per_filter_config, e)
            });
            clusters.push(cluster);
        });
    }
    if errors.len() != problems_before {
        return None;
    }
    if total == 0 {
        errors.push("", "total weight is 0");
        return None;
    }
    if total > u64::from(u32::MAX) {
        // gRPC C-core: "sum of weights loaded from RDS exceeds uint32 max".
        errors.push("", format!("total weight {total} exceeds {}", u32::MAX));
        return None;
    }
    #[allow(deprecated)] // gRFC A28 checks it; newer control planes leave it unset
    let total_weight = pb.total_weight;
    if let Some(expected) = total_weight.filter(|t| t.value != 0 && u64::from(t.value) != total) {
        errors.push(
            "total_weight",
            format!(
                "{} does not equal the sum of the weights ({total})",
                expected.value
            ),
        );
        return None;
    }
    match WeightedClusters::new(clusters) {
        Ok(split) => Some(split),
        Err(problem) => {
            errors.push("", problem);
            None
        }
    }
}

/// `RetryPolicy` per gRFC A44. Returns `None` (without a problem) when no supported condition remains in
/// `retry_on`: A44 then configures no retries.
pub(super) fn retry_policy(pb: &PbRetryPolicy, errors: &mut Errors) -> Option<RetryPolicy> {
    let problems_before = errors.len();
    // gRFC A44: conditions we cannot honour are ignored, not rejected. Beyond A44 we also honour Envoy's HTTP
    // conditions (`5xx`, `reset`, ...), see `RetryOn::parse`.
    let (retry_on, unsupported) = RetryOn::parse(&pb.retry_on);
    if !unsupported.is_empty() {
        tracing::debug!(?unsupported, "retry_on conditions ignored");
    }
    // gRFC A44: `num_retries` defaults to 1 and must not be less than 1.
    let num_retries = pb
        .num_retries
        .map_or(RetryPolicy::DEFAULT_NUM_RETRIES, |n| n.value);
    if num_retries == 0 {
        errors.push("num_retries", "must be at least 1");
    }
    let backoff = match &pb.retry_back_off {
        Some(pb_backoff) => errors.at("retry_back_off", |e| {
            // gRFC A44: `base_interval` is required; `max_interval` defaults to ten times it; both must be
            // positive and the maximum no less than the base.
            let base = match &pb_backoff.base_interval {
                Some(base) => e.check("base_interval", positive(duration(base))),
                None => {
                    e.push("base_interval", "must be set");
                    None
                }
            };
            let max = pb_backoff
                .max_interval
                .as_ref()
                .map(|max| e.check("max_interval", positive(duration(max))));
            let base = base?;
            let max = match max {
                Some(max) => max?,
                None => base.checked_mul(10).unwrap_or(Duration::MAX),
            };
            if max < base {
                e.push(
                    "max_interval",
                    format!("{max:?} is below base_interval {base:?}"),
                );
                return None;
            }
            // gRFC A44: values below 1 ms are treated as 1 ms.
            Some(RetryBackoff::new(
                base.max(MIN_RETRY_INTERVAL),
                max.max(MIN_RETRY_INTERVAL),
            ))
        }),
        None => Some(RetryBackoff::default()),
    };
    // Beyond gRFC A44 (which ignores it): a per-attempt timeout; zero means none, as in Envoy.
    let per_try_timeout = pb
        .per_try_timeout
        .as_ref()
        .and_then(|d| errors.check("per_try_timeout", duration(d)))
        .filter(|d| !d.is_zero());
    if errors.len() != problems_before || retry_on.is_empty() {
        return None;
    }
    Some(
        RetryPolicy::new(retry_on, num_retries)
            .with_backoff(backoff?)
            .with_per_try_timeout(per_try_timeout),
    )
}

fn positive(value: Result<Duration, String>) -> Result<Duration, String> {
    value.and_then(|d| {
        if d.is_zero() {
            Err("must be greater than zero".to_owned())
        } else {
            Ok(d)
        }
    })
}

/// `hash_policy` per gRFC A42: header (with an optional regex rewrite) and the `io.grpc.channel_id` filter state are
/// supported; cookie, query-parameter and other filter-state policies "will not return any result" and are dropped.
/// Beyond A42, `connection_properties.source_ip` is kept for server-side and proxy use (a client never has a hash
/// from it).
fn hash_policies(pb: &[PbHashPolicy], errors: &mut Errors) -> Vec<HashPolicy> {
    let mut policies = Vec::with_capacity(pb.len());
    for (index, policy) in pb.iter().enumerate() {
        let converted = errors.at(&format!("hash_policy[{index}]"), |e| hash_policy(policy, e));
        if let Some(converted) = converted {
            policies.push(converted.with_terminal(policy.terminal));
        }
    }
    policies
}

fn hash_policy(pb: &PbHashPolicy, errors: &mut Errors) -> Option<HashPolicy> {
    match &pb.policy_specifier {
        Some(PolicySpecifier::Header(header)) => {
            let name = errors.check("header.header_name", header_name(&header.header_name))?;
            // gRFC A42 matches headers as A28 does: `-bin` headers count as absent, so such a policy never
            // produces a hash.
            if name.ends_with("-bin") {
                return None;
            }
            let rewrite = match &header.regex_rewrite {
                Some(rewrite) => {
                    Some(errors.check("header.regex_rewrite", regex_rewrite(rewrite))?)
                }
                None => None,
            };
            let mut policy = HashPolicy::header(&name);
            policy.kind = HashPolicyKind::Header {
                name: name.into(),
                rewrite,
            };
            Some(policy)
        }
        Some(PolicySpecifier::FilterState(state)) if state.key == CHANNEL_ID_KEY => {
            Some(HashPolicy::channel_id())
        }
        Some(PolicySpecifier::ConnectionProperties(properties)) if properties.source_ip => {
            let mut policy = HashPolicy::channel_id();
            policy.kind = HashPolicyKind::SourceIp;
            Some(policy)
        }
        Some(
            PolicySpecifier::FilterState(_)
            | PolicySpecifier::ConnectionProperties(_)
            | PolicySpecifier::Cookie(_)
            | PolicySpecifier::QueryParameter(_),
        ) => None,
        None => {
            // Envoy: the policy specifier is required.
            errors.push("", "policy_specifier must be set");
            None
        }
    }
}

/// `RegexMatchAndSubstitute`: the pattern must compile; the RE2 substitution (`\1` for a group, `\\` for a
/// backslash) is rewritten into the model's syntax (`${1}`, with `$` escaped as `$$`).
fn regex_rewrite(pb: &RegexMatchAndSubstitute) -> Result<(SafeRegex, std::sync::Arc<str>), String> {
    let pattern = pb.pattern.as_ref().ok_or("pattern: must be set")?;
    let regex = regex_matcher(pattern).map_err(|e| format!("pattern: {e}"))?;
    let mut substitution = String::with_capacity(pb.substitution.len());
    let mut chars = pb.substitution.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(digit @ '0'..='9') => {
                    substitution.push_str("${");
                    substitution.push(digit);
                    substitution.push('}');
                }
                Some('\\') => substitution.push('\\'),
                other => {
                    return Err(format!(
                        "substitution: invalid escape \\{}",
                        other.map(String::from).unwrap_or_default()
                    ));
                }
            },
            '$' => substitution.push_str("$$"),
            other => substitution.push(other),
        }
    }
    Ok((regex, substitution.into()))
}
