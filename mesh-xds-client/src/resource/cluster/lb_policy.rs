//! The endpoint-picking policy: the legacy `lb_policy` enum with its `*_lb_config`, or the `load_balancing_policy`
//! extension list (gRFC A52), which takes precedence when present.
//!
//! Locality picking is always weighted by locality weight (the model has no other), so `wrr_locality` (gRFC A52)
//! contributes only its `endpoint_picking_policy`.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::config::cluster::v3::LoadBalancingPolicy;
use envoy_types::pb::envoy::config::cluster::v3::cluster::ring_hash_lb_config::HashFunction as LegacyHashFunction;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    LbConfig, LbPolicy as PbLbPolicy, LeastRequestLbConfig,
};
use envoy_types::pb::envoy::extensions::load_balancing_policies::client_side_weighted_round_robin::v3::ClientSideWeightedRoundRobin;
use envoy_types::pb::envoy::extensions::load_balancing_policies::least_request::v3::LeastRequest;
use envoy_types::pb::envoy::extensions::load_balancing_policies::pick_first::v3::PickFirst;
use envoy_types::pb::envoy::extensions::load_balancing_policies::ring_hash::v3::RingHash;
use envoy_types::pb::envoy::extensions::load_balancing_policies::ring_hash::v3::ring_hash::HashFunction;
use envoy_types::pb::envoy::extensions::load_balancing_policies::round_robin::v3::RoundRobin;
use envoy_types::pb::envoy::extensions::load_balancing_policies::wrr_locality::v3::WrrLocality;
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration, UInt32Value, UInt64Value};
use mesh_core::cluster::{LbPolicy, WrrConfig};
use prost::Message;

use super::any_is;
use crate::resource::common::{Errors, duration, typed_config};

/// gRFC A42: the largest ring size accepted (and the default maximum).
const MAX_RING_SIZE: u64 = LbPolicy::DEFAULT_MAX_RING_SIZE;
/// gRFC A48: larger choice counts are capped to this.
const MAX_CHOICE_COUNT: u32 = 10;
/// gRFC A52: how deeply `load_balancing_policy` lists may nest (through `wrr_locality`).
const MAX_POLICY_DEPTH: usize = 16;
/// gRFC A58: `weight_update_period` below this is raised to it.
const MIN_WEIGHT_UPDATE_PERIOD: Duration = Duration::from_millis(100);

/// The cluster's policy; on error a placeholder with the problem recorded.
pub(super) fn lb_policy(pb: &PbCluster, errors: &mut Errors) -> LbPolicy {
    // gRFC A52: `load_balancing_policy`, when set, is used instead of `lb_policy`.
    if let Some(list) = &pb.load_balancing_policy {
        return errors.at("load_balancing_policy", |e| policy_list(list, 1, e));
    }
    match PbLbPolicy::try_from(pb.lb_policy) {
        // gRFC A27: ROUND_ROBIN, also what a cluster that sets nothing reads as (see the module docs of `cluster`).
        Ok(PbLbPolicy::RoundRobin) => LbPolicy::RoundRobin,
        // gRFC A48: `least_request_lb_config` is optional.
        Ok(PbLbPolicy::LeastRequest) => {
            let config = match &pb.lb_config {
                Some(LbConfig::LeastRequestLbConfig(config)) => Some(config),
                _ => None,
            };
            errors.at("least_request_lb_config", |e| {
                least_request(
                    config.and_then(|c: &LeastRequestLbConfig| c.choice_count),
                    e,
                )
            })
        }
        // gRFC A42: `ring_hash_lb_config` is optional; only XX_HASH is supported.
        Ok(PbLbPolicy::RingHash) => {
            let Some(LbConfig::RingHashLbConfig(config)) = &pb.lb_config else {
                return LbPolicy::ring_hash();
            };
            errors.at("ring_hash_lb_config", |e| {
                if config.hash_function != LegacyHashFunction::XxHash as i32 {
                    e.push(
                        "hash_function",
                        "invalid hash function, only XX_HASH is supported",
                    );
                }
                ring_sizes(config.minimum_ring_size, config.maximum_ring_size, e)
            })
        }
        Ok(other) => {
            errors.push(
                "lb_policy",
                format!("{} is not supported", other.as_str_name()),
            );
            LbPolicy::RoundRobin
        }
        Err(_) => {
            errors.push("lb_policy", format!("unknown LB policy {}", pb.lb_policy));
            LbPolicy::RoundRobin
        }
    }
}

/// gRFC A52: the first policy of the list this client supports is used; the list is NACKed when none is. Custom
/// policies (`TypedStruct`) are never supported here, so they are skipped like any unknown type. A supported
/// policy whose config is invalid NACKs the cluster.
fn policy_list(list: &LoadBalancingPolicy, depth: usize, errors: &mut Errors) -> LbPolicy {
    if depth > MAX_POLICY_DEPTH {
        errors.push(
            "",
            format!("policies nest more than {MAX_POLICY_DEPTH} deep"),
        );
        return LbPolicy::RoundRobin;
    }
    let mut unsupported = Vec::new();
    for (index, policy) in list.policies.iter().enumerate() {
        let segment = format!("policies[{index}].typed_extension_config");
        let Some(config) = &policy.typed_extension_config else {
            errors.push(&segment, "field not present");
            return LbPolicy::RoundRobin;
        };
        let Some(any) = &config.typed_config else {
            errors.push(&format!("{segment}.typed_config"), "field not present");
            return LbPolicy::RoundRobin;
        };
        let segment = format!("{segment}.typed_config");
        if let Some(policy) = errors.at(&segment, |e| extension(any, depth, e)) {
            return policy;
        }
        // A custom policy in a `TypedStruct` is named by the type inside it.
        unsupported.push(
            typed_config(any).map_or_else(|_| any.type_url.clone(), |c| c.type_name().to_owned()),
        );
    }
    errors.push(
        "policies",
        format!("no supported load balancing policy (found {unsupported:?})"),
    );
    LbPolicy::RoundRobin
}

/// One extension policy: `None` when its type is not supported, else the policy (a placeholder when its config is
/// invalid, with the problem recorded).
fn extension(any: &Any, depth: usize, errors: &mut Errors) -> Option<LbPolicy> {
    let policy = if any_is::<RoundRobin>(any) {
        // `slow_start_config` and `locality_lb_config` are ignored, as in gRPC.
        decode::<RoundRobin>(any, errors).map(|_| LbPolicy::RoundRobin)
    } else if any_is::<LeastRequest>(any) {
        // gRFC A48: only `choice_count` is used.
        decode::<LeastRequest>(any, errors).map(|config| least_request(config.choice_count, errors))
    } else if any_is::<RingHash>(any) {
        decode::<RingHash>(any, errors).map(|config| {
            // gRFC A42 (as extended for this message): DEFAULT_HASH means XX_HASH.
            let hash = HashFunction::try_from(config.hash_function);
            if !matches!(hash, Ok(HashFunction::DefaultHash | HashFunction::XxHash)) {
                errors.push(
                    "hash_function",
                    "invalid hash function, only XX_HASH is supported",
                );
            }
            ring_sizes(config.minimum_ring_size, config.maximum_ring_size, errors)
        })
    } else if any_is::<PickFirst>(any) {
        // gRFC A62.
        decode::<PickFirst>(any, errors).map(|config| LbPolicy::PickFirst {
            shuffle_address_list: config.shuffle_address_list,
        })
    } else if any_is::<ClientSideWeightedRoundRobin>(any) {
        decode::<ClientSideWeightedRoundRobin>(any, errors)
            .map(|config| LbPolicy::WeightedRoundRobin(weighted_round_robin(&config, errors)))
    } else if any_is::<WrrLocality>(any) {
        // gRFC A52: the locality level is weighted already; the endpoint level is the nested list.
        decode::<WrrLocality>(any, errors).map(|config| match &config.endpoint_picking_policy {
            Some(list) => errors.at("endpoint_picking_policy", |e| {
                policy_list(list, depth + 1, e)
            }),
            None => {
                errors.push("endpoint_picking_policy", "field not present");
                LbPolicy::RoundRobin
            }
        })
    } else {
        return None;
    };
    Some(policy.unwrap_or(LbPolicy::RoundRobin))
}

fn decode<M: Message + Default>(any: &Any, errors: &mut Errors) -> Option<M> {
    match M::decode(any.value.as_slice()) {
        Ok(config) => Some(config),
        Err(e) => {
            errors.push("", format!("cannot decode {}: {e}", any.type_url));
            None
        }
    }
}

/// gRFC A48: `choice_count` defaults to 2, must be at least 2, and is capped at 10.
fn least_request(choice_count: Option<UInt32Value>, errors: &mut Errors) -> LbPolicy {
    let choice_count = choice_count.map_or(LbPolicy::DEFAULT_CHOICE_COUNT, |c| c.value);
    if choice_count < 2 {
        errors.push(
            "choice_count",
            format!("must be at least 2, got {choice_count}"),
        );
    }
    LbPolicy::LeastRequest {
        choice_count: choice_count.min(MAX_CHOICE_COUNT),
    }
}

/// gRFC A42: ring sizes default to 1024 and 8M, must be in 1..=8M, and the minimum must not exceed the maximum.
fn ring_sizes(
    minimum: Option<UInt64Value>,
    maximum: Option<UInt64Value>,
    errors: &mut Errors,
) -> LbPolicy {
    let min_ring_size = minimum.map_or(LbPolicy::DEFAULT_MIN_RING_SIZE, |v| v.value);
    let max_ring_size = maximum.map_or(LbPolicy::DEFAULT_MAX_RING_SIZE, |v| v.value);
    let mut in_range = true;
    for (field, value) in [
        ("minimum_ring_size", min_ring_size),
        ("maximum_ring_size", max_ring_size),
    ] {
        if !(1..=MAX_RING_SIZE).contains(&value) {
            errors.push(
                field,
                format!("must be in the range of 1 to {MAX_RING_SIZE}, got {value}"),
            );
            in_range = false;
        }
    }
    if in_range && min_ring_size > max_ring_size {
        errors.push(
            "minimum_ring_size",
            format!("{min_ring_size} is greater than maximum_ring_size {max_ring_size}"),
        );
    }
    LbPolicy::RingHash {
        min_ring_size,
        max_ring_size,
    }
}

/// gRFC A58's `client_side_weighted_round_robin` config, with its defaults: durations must be valid and
/// non-negative, `error_utilization_penalty` non-negative, and `weight_update_period` is raised to at least 100 ms.
fn weighted_round_robin(config: &ClientSideWeightedRoundRobin, errors: &mut Errors) -> WrrConfig {
    let mut wrr = WrrConfig::default();
    if let Some(enabled) = config.enable_oob_load_report {
        wrr.enable_oob_load_report = enabled.value;
    }
    let mut period = |field: &str, value: Option<&PbDuration>, target: &mut Duration| {
        if let Some(value) = value
            && let Some(value) = errors.check(field, duration(value))
        {
            *target = value;
        }
    };
    period(
        "oob_reporting_period",
        config.oob_reporting_period.as_ref(),
        &mut wrr.oob_reporting_period,
    );
    period(
        "blackout_period",
        config.blackout_period.as_ref(),
        &mut wrr.blackout_period,
    );
    period(
        "weight_expiration_period",
        config.weight_expiration_period.as_ref(),
        &mut wrr.weight_expiration_period,
    );
    period(
        "weight_update_period",
        config.weight_update_period.as_ref(),
        &mut wrr.weight_update_period,
    );
    wrr.weight_update_period = wrr.weight_update_period.max(MIN_WEIGHT_UPDATE_PERIOD);
    if let Some(penalty) = config.error_utilization_penalty {
        if penalty.value.is_nan() || penalty.value < 0.0 {
            errors.push(
                "error_utilization_penalty",
                format!("must be non-negative, got {}", penalty.value),
            );
        } else {
            wrr.error_utilization_penalty = penalty.value;
        }
    }
    wrr
}
