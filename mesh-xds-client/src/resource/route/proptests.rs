//! Property tests: validation never panics on arbitrary input, and valid generated configurations are accepted with
//! their clusters and weights intact.

use proptest::prelude::*;
use prost::Message;

use super::test_support::*;
use super::validate_route_configuration;
use mesh_core::route::ClusterSpecifier;

/// One generated route: a prefix and either one cluster or a weighted split.
#[derive(Debug, Clone)]
struct GeneratedRoute {
    prefix: String,
    clusters: Vec<(String, u32)>,
}

fn generated_route() -> impl Strategy<Value = GeneratedRoute> {
    (
        "(/[a-z][a-z0-9.]{0,12}){0,3}/?",
        prop::collection::vec(("[a-z][a-z0-9-]{0,15}", 1u32..=10_000), 1..5),
    )
        .prop_map(|(prefix, clusters)| GeneratedRoute { prefix, clusters })
}

/// Unique, valid domains: exact names plus optional wildcard forms.
fn domains() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set("[a-z][a-z0-9-]{0,10}(\\.[a-z]{1,5}){0,2}", 1..4).prop_flat_map(
        |names| {
            let names: Vec<String> = names.into_iter().collect();
            let count = names.len();
            (Just(names), prop::collection::vec(0u8..3, count)).prop_map(|(names, forms)| {
                names
                    .into_iter()
                    .zip(forms)
                    .map(|(name, form)| match form {
                        0 => name,
                        1 => format!("*.{name}"),
                        _ => format!("{name}.*"),
                    })
                    .collect()
            })
        },
    )
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = validate_route_configuration(&bytes, &ctx());
    }

    #[test]
    fn mutated_valid_configs_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let config = route_config("r", vec![vhost("vh", &["a.example", "*.b"], vec![
            weighted_route("/svc/", &[("x", 90), ("y", 10)]),
            cluster_route("", "z"),
        ])]);
        let mut bytes = config.encode_to_vec();
        for (index, value) in flips {
            let at = index.index(bytes.len());
            bytes[at] ^= value;
        }
        let _ = validate_route_configuration(&bytes, &ctx());
    }

    #[test]
    fn generated_configs_validate_and_keep_their_clusters(
        hosts in prop::collection::vec((domains(), prop::collection::vec(generated_route(), 1..6)), 1..4),
    ) {
        // Domains must be unique across virtual hosts: keep the first occurrence.
        let mut seen = std::collections::HashSet::new();
        let hosts: Vec<(Vec<String>, Vec<GeneratedRoute>)> = hosts
            .into_iter()
            .map(|(domains, routes)| (domains.into_iter().filter(|d| seen.insert(d.clone())).collect::<Vec<_>>(), routes))
            .filter(|(domains, _)| !domains.is_empty())
            .collect();
        let vhosts = hosts
            .iter()
            .enumerate()
            .map(|(index, (domains, routes))| {
                let domains: Vec<&str> = domains.iter().map(String::as_str).collect();
                let routes = routes
                    .iter()
                    .map(|route| match route.clusters.as_slice() {
                        [(name, _)] => cluster_route(&route.prefix, name),
                        clusters => {
                            let clusters: Vec<(&str, u32)> =
                                clusters.iter().map(|(name, weight)| (name.as_str(), *weight)).collect();
                            weighted_route(&route.prefix, &clusters)
                        }
                    })
                    .collect();
                vhost(&format!("vh{index}"), &domains, routes)
            })
            .collect();
        let bytes = route_config("generated", vhosts).encode_to_vec();
        let (name, config) = match validate_route_configuration(&bytes, &ctx()) {
            Ok(accepted) => accepted,
            Err(err) => return Err(TestCaseError::fail(err.to_string())),
        };
        prop_assert_eq!(name, "generated");
        prop_assert_eq!(config.virtual_hosts.len(), hosts.len());
        for (host, (domains, routes)) in config.virtual_hosts.iter().zip(&hosts) {
            let got_domains: Vec<&str> = host.domains.iter().map(|d| d.as_ref()).collect();
            prop_assert_eq!(got_domains, domains.iter().map(String::as_str).collect::<Vec<_>>());
            prop_assert_eq!(host.routes.len(), routes.len());
            for (route, expected) in host.routes.iter().zip(routes) {
                let Some(action) = route.route_action() else {
                    return Err(TestCaseError::fail("route does not forward"));
                };
                let got: Vec<(String, u32)> = match &action.cluster {
                    ClusterSpecifier::Cluster(name) => vec![(name.to_string(), expected.clusters[0].1)],
                    ClusterSpecifier::Weighted(split) => {
                        split.clusters().iter().map(|c| (c.name.to_string(), c.weight)).collect()
                    }
                    other => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
                };
                prop_assert_eq!(&got, &expected.clusters);
            }
        }
    }
}
