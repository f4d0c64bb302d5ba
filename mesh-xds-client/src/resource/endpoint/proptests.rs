use std::net::{Ipv4Addr, SocketAddr};

use envoy_types::pb::envoy::config::endpoint::v3::LocalityLbEndpoints;
use proptest::prelude::*;
use prost::Message as _;

use super::test_support::{cla, lb_endpoint, locality, weighted};
use super::validate_cluster_load_assignment;
use crate::resource::ValidationContext;

/// One generated locality: its priority, weight and endpoint weights (`None`: unset, meaning 1).
#[derive(Debug, Clone)]
struct GenLocality {
    priority: u32,
    weight: u32,
    endpoint_weights: Vec<Option<u32>>,
}

/// 1-5 contiguous priorities, each with 1-3 localities of 0-4 endpoints.
fn assignment() -> impl Strategy<Value = Vec<GenLocality>> {
    (1_u32..=5)
        .prop_flat_map(|priorities| {
            (0..priorities)
                .map(|priority| {
                    prop::collection::vec(
                        (
                            1_u32..=1000,
                            prop::collection::vec(prop::option::of(1_u32..=1000), 0..=4),
                        ),
                        1..=3,
                    )
                    .prop_map(move |localities| {
                        localities
                            .into_iter()
                            .map(|(weight, endpoint_weights)| GenLocality {
                                priority,
                                weight,
                                endpoint_weights,
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect::<Vec<_>>()
        })
        .prop_map(|priorities| priorities.into_iter().flatten().collect::<Vec<_>>())
        .prop_shuffle()
}

fn build(localities: &[GenLocality]) -> Vec<LocalityLbEndpoints> {
    let mut next_host = 0_u32;
    localities
        .iter()
        .enumerate()
        .map(|(index, generated)| {
            let endpoints = generated
                .endpoint_weights
                .iter()
                .map(|weight| {
                    next_host += 1;
                    let ip = Ipv4Addr::from(0x0a00_0000 + next_host);
                    let endpoint = lb_endpoint(&ip.to_string(), 8080);
                    match weight {
                        Some(weight) => weighted(endpoint, *weight),
                        None => endpoint,
                    }
                })
                .collect();
            // Unique zone per entry, so no locality repeats within a priority.
            locality(
                "r",
                &format!("z{index}"),
                generated.priority,
                Some(generated.weight),
                endpoints,
            )
        })
        .collect()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = validate_cluster_load_assignment(&bytes, &ValidationContext::default());
    }

    #[test]
    fn valid_assignments_keep_priorities_weights_and_endpoints(generated in assignment()) {
        let bytes = cla("svc", build(&generated)).encode_to_vec();
        let (name, set) = validate_cluster_load_assignment(&bytes, &ValidationContext::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(name, "svc");
        let expected_count: usize = generated.iter().map(|l| l.endpoint_weights.len()).sum();
        prop_assert_eq!(set.endpoint_count(), expected_count);
        prop_assert_eq!(set.localities.len(), generated.len());
        let mut next_host = 0_u32;
        for (converted, generated) in set.localities.iter().zip(&generated) {
            prop_assert_eq!(converted.priority, generated.priority);
            prop_assert_eq!(converted.weight, generated.weight);
            let weights: Vec<u32> = converted.endpoints.iter().map(|e| e.weight).collect();
            let expected: Vec<u32> = generated.endpoint_weights.iter().map(|w| w.unwrap_or(1)).collect();
            prop_assert_eq!(weights, expected);
            for endpoint in &converted.endpoints {
                next_host += 1;
                let ip = Ipv4Addr::from(0x0a00_0000 + next_host);
                prop_assert_eq!(&endpoint.address, &SocketAddr::from((ip, 8080)).into());
            }
        }
    }

    /// Corrupting one byte of a valid assignment never panics (it may still decode and validate).
    #[test]
    fn corrupted_valid_assignments_never_panic(generated in assignment(), position in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = cla("svc", build(&generated)).encode_to_vec();
        if !bytes.is_empty() {
            let at = position.index(bytes.len());
            bytes[at] = byte;
        }
        let _ = validate_cluster_load_assignment(&bytes, &ValidationContext::default());
    }
}
