//! # mesh-fuzz
//!
//! What each fuzz target feeds to the code under test, as plain functions: the targets in `fuzz_targets/` are one
//! line each, and the seed generator (`examples/seed_corpus.rs`) checks its seeds against exactly what the fuzzer
//! runs. Every function must return for every input: an `Err` from the library is the right answer to bad bytes, a
//! panic is a bug (nothing reachable from network input or config may panic).
//!
//! Not for: checking what the validators accept. That is the unit tests' job; here only "does not panic" (and
//! does not hang or exhaust memory, which libFuzzer reports too) is asserted.

use envoy_types::pb::envoy::service::discovery::v3::{
    DiscoveryResponse, Resource as ResourceWrapper,
};
use envoy_types::pb::google::protobuf::Any;
use mesh_xds_client::bootstrap::Bootstrap;
use mesh_xds_client::protocol::normalize_name;
use mesh_xds_client::resource::{self, ResourceKind, ValidationContext};
use prost::Message as _;

/// The certificate provider instance the seed resources name (`default`), so validation of TLS settings goes past
/// the "unknown instance" check instead of stopping there.
pub const CERTIFICATE_PROVIDER: &str = "default";

/// The type URL of the `envoy.service.discovery.v3.Resource` wrapper a server may put around each resource.
const RESOURCE_WRAPPER_TYPE_URL: &str = "type.googleapis.com/envoy.service.discovery.v3.Resource";

/// The validation context every target uses.
#[must_use]
pub fn validation_context() -> ValidationContext {
    let mut ctx = ValidationContext::default();
    ctx.certificate_providers = vec![CERTIFICATE_PROVIDER.to_owned()];
    ctx
}

/// Parses `data`, as UTF-8 with invalid sequences replaced, as a bootstrap file. True when it is accepted.
#[must_use]
pub fn bootstrap(data: &[u8]) -> bool {
    Bootstrap::from_json_str(&String::from_utf8_lossy(data)).is_ok()
}

/// Decodes and validates `data` as the bytes of one resource of `kind`. True when it is accepted.
#[must_use]
pub fn resource(kind: ResourceKind, data: &[u8]) -> bool {
    let ctx = validation_context();
    match kind {
        ResourceKind::Listener => resource::validate_listener(data, &ctx).is_ok(),
        ResourceKind::RouteConfiguration => {
            resource::validate_route_configuration(data, &ctx).is_ok()
        }
        ResourceKind::Cluster => resource::validate_cluster(data, &ctx).is_ok(),
        ResourceKind::ClusterLoadAssignment => {
            resource::validate_cluster_load_assignment(data, &ctx).is_ok()
        }
        // A kind added later: the match in `mesh_xds_client::resource::decode` covers it.
        _ => resource::decode(
            kind,
            &Any {
                type_url: kind.type_url().to_owned(),
                value: data.to_vec(),
            },
            &ctx,
        )
        .is_ok(),
    }
}

/// Decodes `data` as a `DiscoveryResponse` and each of its resources as the client's worker does: the response's
/// type URL gives the kind, `Resource` wrappers are unwrapped, names are normalized. Returns how many resources
/// were accepted, or `None` when the bytes are not a `DiscoveryResponse`.
///
/// Unlike the worker, which drops a response of a type it does not know, a resource in such a response is
/// decoded as the kind its own type URL names, so that every validator is reachable from any response.
#[must_use]
pub fn discovery_response(data: &[u8]) -> Option<usize> {
    let response = DiscoveryResponse::decode(data).ok()?;
    let ctx = validation_context();
    let response_kind = ResourceKind::from_type_url(&response.type_url);
    let mut accepted = 0;
    for any in &response.resources {
        let Some(kind) = response_kind.or_else(|| ResourceKind::from_type_url(&any.type_url))
        else {
            continue;
        };
        let unwrapped;
        let any = if any.type_url == RESOURCE_WRAPPER_TYPE_URL {
            match ResourceWrapper::decode(any.value.as_slice())
                .ok()
                .and_then(|wrapper| wrapper.resource)
            {
                Some(inner) => {
                    unwrapped = inner;
                    &unwrapped
                }
                None => continue,
            }
        } else {
            any
        };
        if let Ok((name, _)) = resource::decode(kind, any, &ctx) {
            let _ = normalize_name(&name);
            accepted += 1;
        }
    }
    Some(accepted)
}

/// The trust bundle map [`tls`] verifies against: one trust domain with no roots, so a leaf that parses goes through
/// SPIFFE checks and webpki's path building (which then finds no issuer).
const FUZZ_BUNDLE_MAP: &[u8] = br#"{"trust_domains": {"example.org": {"keys": []}}}"#;

/// Certificate material from arbitrary bytes, through every parser and the verifier of `mesh_tower::tls`: the bytes
/// as a DER leaf (described, and verified as a server and as a client against a SPIFFE bundle map), as a SPIFFE
/// trust bundle map, as PEM CA roots, and as a PEM certificate chain with a PEM key. True when any accepts them.
#[must_use]
pub fn tls(data: &[u8]) -> bool {
    use mesh_core::matcher::StringMatcher;
    use mesh_tower::tls::pki_types::{CertificateDer, UnixTime};
    use mesh_tower::tls::{Identity, PeerRole, TrustRoots, describe_certificate, verify_peer};

    let mut accepted = describe_certificate(data).is_ok();
    if let Ok(roots) = TrustRoots::spiffe_from_json(FUZZ_BUNDLE_MAP) {
        let leaf = CertificateDer::from(data);
        let matchers = [StringMatcher::prefix("spiffe://example.org/")];
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000));
        for role in [PeerRole::Server, PeerRole::Client] {
            accepted |= verify_peer(&leaf, &[], &roots, &matchers, now, role).is_ok();
        }
    }
    accepted |= TrustRoots::spiffe_from_json(data).is_ok();
    accepted |= TrustRoots::ca_from_pem(data).is_ok();
    accepted |= Identity::from_pem(data, data).is_ok();
    accepted
}

#[cfg(test)]
mod tests {
    /// Every committed seed of the `tls` target is accepted by one of its parsers, so fuzzing starts deep.
    #[test]
    fn tls_seeds_are_accepted() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/tls");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            assert!(
                super::tls(&std::fs::read(&path).unwrap()),
                "{}",
                path.display()
            );
            seen += 1;
        }
        assert!(seen >= 5);
    }
}
