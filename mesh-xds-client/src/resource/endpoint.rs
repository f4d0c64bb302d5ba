//! `ClusterLoadAssignment` (EDS) validation into [`EndpointSet`].
//!
//! The rules are gRFC A27's, where gRPC and Envoy agree, plus what our model keeps beyond gRPC (endpoint weights,
//! health statuses other than usable ones, metadata, the overprovisioning factor). The same conversion serves the
//! `load_assignment` of STATIC clusters ([`load_assignment`], called from `super::cluster`), with one difference
//! spelled out at [`MissingLocalityWeight`].
//!
//! Decisions where the specs leave room:
//! - Endpoint addresses must be IP literals (gRFC A27; Envoy's STATIC and EDS clusters reject hostnames too), so a
//!   host name is NACKed rather than turned into [`mesh_core::endpoint::EndpointAddress::HostPort`]; DNS names reach
//!   the model only through LOGICAL_DNS clusters.
//! - gRFC A61 `additional_addresses` are validated like the primary address and count for duplicate detection, but
//!   only the primary address is kept: the model has one address per endpoint.
//! - A health status value this build does not know is treated as unusable (`Unhealthy`), as gRFC A27 ignores every
//!   status other than HEALTHY and UNKNOWN.
//! - A locality whose weight is 0 is dropped like one without a weight (C-core's reading of A27; Envoy would NACK).
//!
//! Not here: picking among the endpoints (`mesh_core::picker`) and watching EDS resources (`crate::protocol`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::HealthStatus as PbHealthStatus;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::locality_lb_endpoints::LbConfig;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, LbEndpoint, LocalityLbEndpoints,
};
use mesh_core::endpoint::{DropOverload, Endpoint, EndpointSet, HealthStatus, LocalityEndpoints};
use mesh_core::locality::Locality;
use prost::Message as _;

use super::common::{Errors, fractional_percent};
use super::{ResourceError, ResourceKind, ValidationContext};

mod address;
mod metadata;

pub(super) use address::port;
use address::socket_address;
pub(super) use metadata::metadata;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod rejection_tests;
#[cfg(test)]
pub(super) mod test_support;
#[cfg(test)]
mod tests;

/// Decodes and validates a `ClusterLoadAssignment`, returning its `cluster_name` and the endpoints.
///
/// # Errors
/// [`ResourceError`] listing every problem found (as `field.path: problem`) when the bytes do not decode or the
/// assignment breaks a rule.
pub fn validate_cluster_load_assignment(
    bytes: &[u8],
    _ctx: &ValidationContext,
) -> Result<(String, EndpointSet), ResourceError> {
    let kind = ResourceKind::ClusterLoadAssignment;
    let cla = ClusterLoadAssignment::decode(bytes).map_err(|e| {
        ResourceError::new(
            kind,
            None,
            format!("cannot decode ClusterLoadAssignment: {e}"),
        )
    })?;
    let mut errors = Errors::new();
    // Envoy's `endpoint.proto`: `cluster_name` has `min_len: 1`; it is also the EDS resource name.
    if cla.cluster_name.is_empty() {
        errors.push("cluster_name", "must not be empty");
    }
    let set = load_assignment(
        &cla,
        &cla.cluster_name,
        MissingLocalityWeight::Skip,
        &mut errors,
    );
    let name = (!cla.cluster_name.is_empty()).then_some(cla.cluster_name);
    match errors.finish(set) {
        Ok(set) => Ok((name.unwrap_or_default(), set)),
        Err(problems) => Err(ResourceError {
            kind,
            name,
            problems,
        }),
    }
}

/// What a locality without `load_balancing_weight`, or with weight 0, means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MissingLocalityWeight {
    /// gRFC A27 (EDS): the locality is dropped.
    Skip,
    /// STATIC clusters: Envoy ignores locality weights unless locality-weighted balancing is configured, and static
    /// configs rarely set them, so such a locality counts with weight 1 instead of the whole cluster going empty.
    One,
}

/// Converts an assignment into an [`EndpointSet`] named `cluster_name`, recording problems in `errors` (relative to
/// the assignment). On error the returned set is incomplete and must not be used.
pub(super) fn load_assignment(
    cla: &ClusterLoadAssignment,
    cluster_name: &str,
    missing_weight: MissingLocalityWeight,
    errors: &mut Errors,
) -> EndpointSet {
    let mut checker = AssignmentChecker::default();
    let mut localities = Vec::with_capacity(cla.endpoints.len());
    for (index, pb) in cla.endpoints.iter().enumerate() {
        let segment = format!("endpoints[{index}]");
        let converted = errors.at(&segment, |e| {
            locality(pb, index, missing_weight, &mut checker, e)
        });
        localities.extend(converted);
    }
    checker.check_priorities(errors);

    let mut set = EndpointSet::new(cluster_name, localities);
    if let Some(policy) = &cla.policy {
        errors.at("policy", |e| {
            set.drop_overloads = drop_overloads(policy, e);
            // Envoy's `endpoint.proto`: `overprovisioning_factor` is `gt: 0`, default 140. gRPC ignores it; the
            // model's priority picking uses it.
            if let Some(factor) = policy.overprovisioning_factor {
                if factor.value == 0 {
                    e.push("overprovisioning_factor", "must be greater than 0");
                } else {
                    set.overprovisioning_factor = factor.value;
                }
            }
        });
    }
    set
}

/// What must hold across the whole assignment: unique addresses, unique localities per priority, weight sums, and
/// contiguous priorities.
#[derive(Default)]
struct AssignmentChecker {
    /// Every address seen, with the path where it was first seen.
    addresses: HashMap<SocketAddr, String>,
    /// Localities kept, by priority, with the index of their entry.
    localities: HashMap<(u32, Locality), usize>,
    /// Per priority: the sum of locality weights so far, and whether its overflow was reported.
    weight_sums: BTreeMap<u32, (u64, bool)>,
    /// Per kept priority, the index of its first entry.
    first_entry: BTreeMap<u32, usize>,
}

impl AssignmentChecker {
    /// gRFC A27: priorities must have no gaps, starting at 0. One problem, at the first entry of the lowest priority
    /// above the first gap, lists every missing priority.
    fn check_priorities(&self, errors: &mut Errors) {
        let mut missing = String::new();
        let mut report_at = None;
        let mut expected = 0_u32;
        for (&priority, &index) in &self.first_entry {
            if priority > expected {
                if !missing.is_empty() {
                    missing.push_str(", ");
                }
                let last = priority - 1;
                if last == expected {
                    let _ = write!(missing, "{expected}");
                } else {
                    let _ = write!(missing, "{expected}-{last}");
                }
                report_at.get_or_insert(index);
            }
            expected = priority.saturating_add(1);
        }
        if let Some(index) = report_at {
            errors.push(
                &format!("endpoints[{index}].priority"),
                format!("priorities must be contiguous from 0, missing {missing}"),
            );
        }
    }

    /// Records an address, reporting it at `field` when it was already seen (gRFC A27: unique within the cluster,
    /// across priorities and localities; gRFC A61: additional addresses included).
    fn address(&mut self, address: SocketAddr, field: &str, errors: &mut Errors) {
        let path = errors.path_to(field);
        match self.addresses.get(&address) {
            Some(first) => {
                errors.push(
                    field,
                    format!("duplicate endpoint address {address} (also at {first})"),
                );
            }
            None => {
                self.addresses.insert(address, path);
            }
        }
    }
}

/// One `LocalityLbEndpoints`; `None` when it is dropped or invalid.
fn locality(
    pb: &LocalityLbEndpoints,
    index: usize,
    missing_weight: MissingLocalityWeight,
    checker: &mut AssignmentChecker,
    errors: &mut Errors,
) -> Option<LocalityEndpoints> {
    // gRFC A27: a locality without a weight is skipped, not an error (see `MissingLocalityWeight`).
    let weight = match (pb.load_balancing_weight.map(|w| w.value), missing_weight) {
        (Some(weight @ 1..), _) => weight,
        (_, MissingLocalityWeight::Skip) => return None,
        (_, MissingLocalityWeight::One) => 1,
    };
    let locality = pb.locality.as_ref().map_or_else(Locality::default, |l| {
        Locality::new(&l.region, &l.zone, &l.sub_zone)
    });
    let priority = pb.priority;

    let problems_before = errors.len();
    #[allow(deprecated)] // read only to refuse it
    match &pb.lb_config {
        None => {}
        // Envoy marks both not-implemented-hide; gRPC has neither (LEDS is only drafted in gRFC A95).
        Some(LbConfig::LoadBalancerEndpoints(_)) => {
            errors.push(
                "load_balancer_endpoints",
                "is not supported, use lb_endpoints",
            );
        }
        Some(LbConfig::LedsClusterLocalityConfig(_)) => {
            errors.push("leds_cluster_locality_config", "LEDS is not supported");
        }
    }

    // gRFC A27: the locality must be unique within its priority.
    if let Some(first) = checker.localities.get(&(priority, locality.clone())) {
        errors.push(
            "locality",
            format!(
                "duplicate locality {locality} in priority {priority} (also at endpoints[{first}])"
            ),
        );
    } else {
        checker
            .localities
            .insert((priority, locality.clone()), index);
    }
    checker.first_entry.entry(priority).or_insert(index);

    // gRFC A27: the sum of locality weights within a priority must fit a uint32.
    let (sum, reported) = checker.weight_sums.entry(priority).or_insert((0, false));
    *sum += u64::from(weight);
    if *sum > u64::from(u32::MAX) && !*reported {
        *reported = true;
        errors.push(
            "load_balancing_weight",
            format!(
                "sum of locality weights in priority {priority} exceeds {}",
                u32::MAX
            ),
        );
    }

    let mut endpoints = Vec::with_capacity(pb.lb_endpoints.len());
    let mut endpoint_weight_sum = 0_u64;
    for (j, lb_endpoint) in pb.lb_endpoints.iter().enumerate() {
        let segment = format!("lb_endpoints[{j}]");
        let converted = errors.at(&segment, |e| {
            let converted = endpoint(lb_endpoint, checker, e)?;
            // Ours, beyond gRPC (which ignores endpoint weights): the weights of a locality must fit a uint32 so
            // weighted picking cannot overflow.
            let before = endpoint_weight_sum;
            endpoint_weight_sum += u64::from(converted.weight);
            if endpoint_weight_sum > u64::from(u32::MAX) && before <= u64::from(u32::MAX) {
                e.push(
                    "load_balancing_weight",
                    format!(
                        "sum of endpoint weights in the locality exceeds {}",
                        u32::MAX
                    ),
                );
            }
            Some(converted)
        });
        endpoints.extend(converted);
    }
    (errors.len() == problems_before)
        .then(|| LocalityEndpoints::new(locality, priority, weight, endpoints))
}

/// One `LbEndpoint`.
fn endpoint(
    pb: &LbEndpoint,
    checker: &mut AssignmentChecker,
    errors: &mut Errors,
) -> Option<Endpoint> {
    let problems_before = errors.len();
    // Envoy's `endpoint_components.proto`: `load_balancing_weight` is `gte: 1` when set; unset means 1.
    let weight = match pb.load_balancing_weight {
        None => Endpoint::DEFAULT_WEIGHT,
        Some(w) if w.value == 0 => {
            errors.push("load_balancing_weight", "must be at least 1");
            Endpoint::DEFAULT_WEIGHT
        }
        Some(w) => w.value,
    };
    let health = health_status(pb.health_status);
    let metadata = metadata(pb.metadata.as_ref());

    let pb_endpoint = match &pb.host_identifier {
        Some(HostIdentifier::Endpoint(endpoint)) => endpoint,
        Some(HostIdentifier::EndpointName(_)) => {
            errors.push("endpoint_name", "named endpoints are not supported");
            return None;
        }
        None => {
            errors.push("endpoint", "field not present");
            return None;
        }
    };
    let address = errors.at("endpoint", |e| {
        let address = socket_address(pb_endpoint.address.as_ref(), e);
        if let Some(address) = address {
            checker.address(address, "address", e);
        }
        // gRFC A61: each additional address is validated and must be unique like the primary one; only the primary
        // address is kept (see the module docs).
        for (k, additional) in pb_endpoint.additional_addresses.iter().enumerate() {
            let segment = format!("additional_addresses[{k}]");
            e.at(&segment, |e| {
                if let Some(extra) = socket_address(additional.address.as_ref(), e) {
                    checker.address(extra, "address", e);
                }
            });
        }
        address
    })?;
    if errors.len() != problems_before {
        return None;
    }
    let hostname: Option<Arc<str>> =
        (!pb_endpoint.hostname.is_empty()).then(|| pb_endpoint.hostname.as_str().into());
    Some(
        Endpoint::new(address)
            .with_health(health)
            .with_weight(weight)
            .with_hostname(hostname)
            .with_metadata(metadata),
    )
}

/// `config.core.v3.HealthStatus` to the model; a value this build does not know is unusable (gRFC A27 uses only
/// HEALTHY and UNKNOWN endpoints).
fn health_status(value: i32) -> HealthStatus {
    match PbHealthStatus::try_from(value) {
        Ok(PbHealthStatus::Unknown) => HealthStatus::Unknown,
        Ok(PbHealthStatus::Healthy) => HealthStatus::Healthy,
        Ok(PbHealthStatus::Unhealthy) | Err(_) => HealthStatus::Unhealthy,
        Ok(PbHealthStatus::Draining) => HealthStatus::Draining,
        Ok(PbHealthStatus::Timeout) => HealthStatus::Timeout,
        Ok(PbHealthStatus::Degraded) => HealthStatus::Degraded,
    }
}

/// `policy.drop_overloads` (gRFC A27): each needs a category (Envoy: `min_len: 1`) and a drop percentage.
fn drop_overloads(
    policy: &envoy_types::pb::envoy::config::endpoint::v3::cluster_load_assignment::Policy,
    errors: &mut Errors,
) -> Vec<DropOverload> {
    let mut drops = Vec::with_capacity(policy.drop_overloads.len());
    for (k, drop) in policy.drop_overloads.iter().enumerate() {
        let segment = format!("drop_overloads[{k}]");
        errors.at(&segment, |e| {
            if drop.category.is_empty() {
                e.push("category", "must not be empty");
            }
            let percentage = match &drop.drop_percentage {
                Some(percentage) => e.check("drop_percentage", fractional_percent(percentage)),
                None => {
                    e.push("drop_percentage", "field not present");
                    None
                }
            };
            if let Some(percentage) = percentage
                && !drop.category.is_empty()
            {
                drops.push(DropOverload::new(&drop.category, percentage));
            }
        });
    }
    drops
}
