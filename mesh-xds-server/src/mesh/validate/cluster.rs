//! Clusters, their policies and their endpoints.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use super::{Checker, parse_address};
use crate::mesh::cluster::{Cluster, LbPolicy, OutlierDetection, UpstreamTls};

/// gRFC A42: ring sizes above 8M are rejected.
const MAX_RING_SIZE: u64 = 8_388_608;

pub(super) fn check_cluster(checker: &mut Checker, path: &str, cluster: &Cluster) {
    checker.non_empty(&format!("{path}.name"), &cluster.name);
    if let Some(name) = &cluster.eds_service_name {
        checker.non_empty(&format!("{path}.eds_service_name"), name);
    }
    if let Some(ring) = &cluster.ring_hash {
        if cluster.lb_policy != LbPolicy::RingHash {
            checker.error(
                format!("{path}.ring_hash"),
                "only valid with lb_policy: ring_hash",
            );
        }
        let min = ring.minimum_ring_size.unwrap_or(1024);
        let max = ring.maximum_ring_size.unwrap_or(MAX_RING_SIZE);
        if min == 0 || min > MAX_RING_SIZE {
            checker.error(
                format!("{path}.ring_hash.minimum_ring_size"),
                format!("must be 1-{MAX_RING_SIZE}"),
            );
        }
        if max > MAX_RING_SIZE {
            checker.error(
                format!("{path}.ring_hash.maximum_ring_size"),
                format!("must be at most {MAX_RING_SIZE}"),
            );
        } else if min > max {
            checker.error(
                format!("{path}.ring_hash"),
                "minimum_ring_size must not exceed maximum_ring_size",
            );
        }
    }
    if let Some(least) = &cluster.least_request {
        if cluster.lb_policy != LbPolicy::LeastRequest {
            checker.error(
                format!("{path}.least_request"),
                "only valid with lb_policy: least_request",
            );
        }
        // gRFC A48: choice_count must be at least 2.
        if least.choice_count.is_some_and(|count| count < 2) {
            checker.error(
                format!("{path}.least_request.choice_count"),
                "must be at least 2",
            );
        }
    }
    if let Some(outlier) = &cluster.outlier_detection {
        check_outlier(checker, &format!("{path}.outlier_detection"), outlier);
    }
    if let Some(tls) = &cluster.tls {
        check_upstream_tls(checker, &format!("{path}.tls"), tls);
    }
    check_localities(checker, path, cluster);
}

fn check_outlier(checker: &mut Checker, path: &str, outlier: &OutlierDetection) {
    // gRFC A50: percentages are at most 100; durations must be positive to make sense as intervals.
    if outlier.interval.is_some_and(|interval| interval.is_zero()) {
        checker.error(format!("{path}.interval"), "must be greater than 0");
    }
    if let Some(percent) = outlier.max_ejection_percent {
        checker.percent(&format!("{path}.max_ejection_percent"), percent);
    }
    if let Some(success) = &outlier.success_rate
        && let Some(percent) = success.enforcement_percentage
    {
        checker.percent(
            &format!("{path}.success_rate.enforcement_percentage"),
            percent,
        );
    }
    if let Some(failure) = &outlier.failure_percentage {
        if let Some(percent) = failure.enforcement_percentage {
            checker.percent(
                &format!("{path}.failure_percentage.enforcement_percentage"),
                percent,
            );
        }
        if let Some(threshold) = failure.threshold {
            checker.percent(&format!("{path}.failure_percentage.threshold"), threshold);
        }
    }
}

fn check_upstream_tls(checker: &mut Checker, path: &str, tls: &UpstreamTls) {
    // gRFC A29: an UpstreamTlsContext without a CA provider instance is rejected.
    checker.non_empty(
        &format!("{path}.ca_certificate_provider"),
        &tls.ca_certificate_provider,
    );
    if let Some(provider) = &tls.certificate_provider {
        checker.non_empty(&format!("{path}.certificate_provider"), provider);
    }
    for (index, matcher) in tls.san_matchers.iter().enumerate() {
        checker.string_match(&format!("{path}.san_matchers[{index}]"), matcher);
    }
}

fn check_localities(checker: &mut Checker, path: &str, cluster: &Cluster) {
    let mut seen_localities: HashMap<(&str, &str, &str, u32), usize> = HashMap::new();
    let mut seen_addresses: HashMap<SocketAddr, String> = HashMap::new();
    let mut weight_by_priority: BTreeMap<u32, u64> = BTreeMap::new();
    for (index, locality) in cluster.localities.iter().enumerate() {
        let locality_path = format!("{path}.localities[{index}]");
        if locality.weight == 0 {
            checker.error(format!("{locality_path}.weight"), "must be at least 1");
        }
        *weight_by_priority.entry(locality.priority).or_default() += u64::from(locality.weight);
        let key = (
            locality.region.as_str(),
            locality.zone.as_str(),
            locality.sub_zone.as_str(),
            locality.priority,
        );
        if let Some(previous) = seen_localities.insert(key, index) {
            checker.error(
                locality_path.clone(),
                format!(
                    "duplicate locality region={:?} zone={:?} sub_zone={:?} at priority {} (also localities[{previous}])",
                    locality.region, locality.zone, locality.sub_zone, locality.priority
                ),
            );
        }
        let mut endpoint_weight: u64 = 0;
        for (endpoint_index, endpoint) in locality.endpoints.iter().enumerate() {
            let endpoint_path = format!("{locality_path}.endpoints[{endpoint_index}]");
            match parse_address(&endpoint.address) {
                Ok(address) => {
                    let short = format!("localities[{index}].endpoints[{endpoint_index}]");
                    if let Some(previous) = seen_addresses.insert(address, short) {
                        checker.error(
                            endpoint_path.clone(),
                            format!("duplicate address {:?} (also {previous})", endpoint.address),
                        );
                    }
                }
                Err(message) => checker.error(endpoint_path.clone(), message),
            }
            if endpoint.weight == 0 {
                checker.error(format!("{endpoint_path}.weight"), "must be at least 1");
            }
            endpoint_weight += u64::from(endpoint.weight);
        }
        if endpoint_weight > u64::from(u32::MAX) {
            checker.error(
                format!("{locality_path}.endpoints"),
                format!(
                    "total endpoint weight {endpoint_weight} exceeds {}",
                    u32::MAX
                ),
            );
        }
    }
    // gRFC A27 / Envoy: priorities are contiguous from 0; a gap makes clients NACK the assignment.
    if let Some(&highest) = weight_by_priority.keys().next_back() {
        for priority in 0..highest {
            if !weight_by_priority.contains_key(&priority) {
                checker.error(
                    format!("{path}.localities"),
                    format!(
                        "priorities must be contiguous from 0: no locality has priority {priority}"
                    ),
                );
            }
        }
    }
    for (priority, total) in weight_by_priority {
        if total > u64::from(u32::MAX) {
            checker.error(
                format!("{path}.localities"),
                format!(
                    "total locality weight {total} of priority {priority} exceeds {}",
                    u32::MAX
                ),
            );
        }
    }
}
