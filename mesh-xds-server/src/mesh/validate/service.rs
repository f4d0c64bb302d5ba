//! Services and routes.

use std::collections::HashMap;

use super::Checker;
use crate::mesh::service::{FaultInjection, HashPolicy, RetryPolicy, Route, Service};

/// Retry conditions gRPC honours (gRFC A44) and those Envoy defines for HTTP.
const RETRY_CONDITIONS: &[&str] = &[
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
];

pub(super) fn check_service(
    checker: &mut Checker,
    path: &str,
    service: &Service,
    clusters: &HashMap<&str, usize>,
) {
    checker.non_empty(&format!("{path}.name"), &service.name);
    if let Some(name) = &service.route_config_name {
        checker.non_empty(&format!("{path}.route_config_name"), name);
    }
    for (index, domain) in service.domains.iter().enumerate() {
        // Envoy: a domain is exact, `*`, or has one wildcard at its start or end.
        let stars = domain.matches('*').count();
        let valid = !domain.is_empty()
            && (stars == 0 || (stars == 1 && (domain.starts_with('*') || domain.ends_with('*'))));
        if !valid {
            checker.error(
                format!("{path}.domains[{index}]"),
                format!("invalid domain pattern {domain:?}"),
            );
        }
    }
    if service.routes.is_empty() {
        checker.error(format!("{path}.routes"), "at least one route is required");
    }
    for (index, route) in service.routes.iter().enumerate() {
        check_route(checker, &format!("{path}.routes[{index}]"), route, clusters);
    }
    if let Some(retry) = &service.retry {
        check_retry(checker, &format!("{path}.retry"), retry);
    }
    if let Some(fault) = &service.fault {
        check_fault(checker, &format!("{path}.fault"), fault);
    }
}

fn check_route(checker: &mut Checker, path: &str, route: &Route, clusters: &HashMap<&str, usize>) {
    let matcher = &route.matcher;
    let specifiers = [&matcher.prefix, &matcher.path, &matcher.regex]
        .iter()
        .filter(|s| s.is_some())
        .count();
    if specifiers > 1 {
        checker.error(
            format!("{path}.match"),
            "at most one of prefix, path, regex",
        );
    }
    if let Some(regex) = &matcher.regex {
        checker.regex(&format!("{path}.match.regex"), regex);
    }
    for (index, header) in matcher.headers.iter().enumerate() {
        checker.header(&format!("{path}.match.headers[{index}]"), header);
    }
    match (&route.cluster, route.weighted_clusters.is_empty()) {
        (Some(cluster), true) => {
            if !clusters.contains_key(cluster.as_str()) {
                checker.error(
                    format!("{path}.cluster"),
                    format!("unknown cluster {cluster:?}"),
                );
            }
        }
        (None, false) => {
            let mut total: u64 = 0;
            for (index, weighted) in route.weighted_clusters.iter().enumerate() {
                if !clusters.contains_key(weighted.name.as_str()) {
                    checker.error(
                        format!("{path}.weighted_clusters[{index}].name"),
                        format!("unknown cluster {:?}", weighted.name),
                    );
                }
                total += u64::from(weighted.weight);
            }
            // gRFC A28: the weights must sum to more than 0 and fit in a u32.
            if total == 0 {
                checker.error(
                    format!("{path}.weighted_clusters"),
                    "total weight must be greater than 0",
                );
            } else if total > u64::from(u32::MAX) {
                checker.error(
                    format!("{path}.weighted_clusters"),
                    format!("total weight {total} exceeds {}", u32::MAX),
                );
            }
        }
        _ => checker.error(
            path,
            "exactly one of cluster and weighted_clusters is required",
        ),
    }
    if let Some(retry) = &route.retry {
        check_retry(checker, &format!("{path}.retry"), retry);
    }
    if let Some(fault) = &route.fault {
        check_fault(checker, &format!("{path}.fault"), fault);
    }
    for (index, policy) in route.hash_policy.iter().enumerate() {
        check_hash_policy(checker, &format!("{path}.hash_policy[{index}]"), policy);
    }
}

fn check_hash_policy(checker: &mut Checker, path: &str, policy: &HashPolicy) {
    match (&policy.header, policy.channel_id) {
        (Some(header), false) => checker.non_empty(&format!("{path}.header"), header),
        (None, true) => {}
        _ => checker.error(
            path,
            "exactly one of header and channel_id: true is required",
        ),
    }
}

fn check_retry(checker: &mut Checker, path: &str, retry: &RetryPolicy) {
    if retry.retry_on.is_empty() {
        checker.error(
            format!("{path}.retry_on"),
            "at least one condition is required",
        );
    }
    for (index, condition) in retry.retry_on.iter().enumerate() {
        if !RETRY_CONDITIONS.contains(&condition.as_str()) {
            checker.error(
                format!("{path}.retry_on[{index}]"),
                format!("unknown retry condition {condition:?} (gRPC honours cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)"),
            );
        }
    }
    if let Some(backoff) = &retry.backoff {
        // gRFC A44: base_interval must be positive, max_interval at least base_interval.
        if backoff.base_interval.is_zero() {
            checker.error(
                format!("{path}.backoff.base_interval"),
                "must be greater than 0",
            );
        }
        if let Some(max) = backoff.max_interval
            && max < backoff.base_interval
        {
            checker.error(
                format!("{path}.backoff.max_interval"),
                "must be at least base_interval",
            );
        }
    }
}

fn check_fault_percent(checker: &mut Checker, path: &str, percent: f64) {
    if !(0.0..=100.0).contains(&percent) {
        checker.error(path, format!("must be between 0 and 100, got {percent}"));
    }
}

fn check_fault(checker: &mut Checker, path: &str, fault: &FaultInjection) {
    if let Some(delay) = &fault.delay {
        check_fault_percent(checker, &format!("{path}.delay.percent"), delay.percent);
    }
    if let Some(abort) = &fault.abort {
        check_fault_percent(checker, &format!("{path}.abort.percent"), abort.percent);
        match (abort.grpc_status, abort.http_status) {
            (Some(code), None) if code > 16 => {
                checker.error(
                    format!("{path}.abort.grpc_status"),
                    format!("must be 0-16, got {code}"),
                );
            }
            (None, Some(status)) if !(200..600).contains(&status) => {
                checker.error(
                    format!("{path}.abort.http_status"),
                    format!("must be 200-599, got {status}"),
                );
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => checker.error(
                format!("{path}.abort"),
                "exactly one of grpc_status and http_status is required",
            ),
        }
    }
}
