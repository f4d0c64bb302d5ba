//! Verifying a peer's certificate chain: gRFC A29 (X.509 against a CA set, then SAN matchers) and gRFC A87 (SPIFFE
//! against the bundle of the peer's own trust domain).
//!
//! Chain building, signatures, validity periods, basic constraints (a CA certificate is never accepted as a leaf,
//! webpki's `CaUsedAsEndEntity`) and extended key usage are rustls-webpki's; this module chooses the roots, checks
//! the X509-SVID rules webpki does not know (exactly one URI SAN holding a SPIFFE ID, key usage bits of X509-SVID
//! §4.3) and applies the SAN matchers. No cryptography is done here.
//!
//! Not here: revocation (CRLs, OCSP), which the xDS validation refuses rather than ignore.

use mesh_core::identity::SpiffeId;
use mesh_core::matcher::{StringMatch, StringMatcher};
use mesh_core::peer::PeerCertificate;
use rustls::pki_types::{CertificateDer, UnixTime};

use super::certificate::LeafFacts;
use super::error::VerifyError;
use super::material::{RootSet, TrustRoots, crypto_provider};

/// Which side the peer is on, so its leaf is held to the matching extended key usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerRole {
    /// The peer is a TLS server (EKU `serverAuth` when the extension is present).
    Server,
    /// The peer is a TLS client (EKU `clientAuth` when the extension is present).
    Client,
}

/// Verifies `end_entity` (with the `intermediates` the peer sent) against `roots` at time `now`, then the SAN
/// `matchers` (any SAN of any kind matching any matcher; none configured accepts every SAN). Returns what the
/// certificate says.
///
/// # Errors
/// [`VerifyError`] naming the first rule the certificate breaks.
pub fn verify_peer(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    roots: &TrustRoots,
    matchers: &[StringMatcher],
    now: UnixTime,
    role: PeerRole,
) -> Result<PeerCertificate, VerifyError> {
    let facts = LeafFacts::parse(end_entity)?;
    let anchors = match roots {
        TrustRoots::Ca(set) => set,
        TrustRoots::Spiffe(map) => {
            // gRFC A87 step 1: a well-formed SPIFFE leaf, with a single URI SAN holding a SPIFFE ID.
            let [uri] = facts.uri_sans.as_slice() else {
                return Err(VerifyError::UriSanCount(facts.uri_sans.len()));
            };
            let id = SpiffeId::parse(uri).map_err(|error| VerifyError::InvalidSpiffeId {
                uri: uri.to_string(),
                reason: error.to_string(),
            })?;
            // Step 2: the bundle of the peer's own trust domain, so one domain's CA cannot vouch for another's IDs.
            map.get(id.trust_domain())
                .ok_or_else(|| VerifyError::UnknownTrustDomain(id.trust_domain().to_string()))?
        }
    };
    verify_chain(end_entity, intermediates, anchors, now, role)?;
    check_key_usage(&facts)?;
    if !matchers.is_empty()
        && !facts
            .all_sans()
            .any(|san| matches_san(matchers, san, &facts))
    {
        return Err(VerifyError::SanMismatch);
    }
    Ok(facts.into_peer(end_entity))
}

/// Step 3 of gRFC A87 and plain X.509 alike: webpki's path building to `roots`.
fn verify_chain(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    roots: &RootSet,
    now: UnixTime,
    role: PeerRole,
) -> Result<(), VerifyError> {
    let chain_error = |error: webpki::Error| VerifyError::Chain(describe(&error));
    let leaf = webpki::EndEntityCert::try_from(end_entity).map_err(chain_error)?;
    let usage = match role {
        PeerRole::Server => webpki::KeyUsage::server_auth(),
        PeerRole::Client => webpki::KeyUsage::client_auth(),
    };
    leaf.verify_for_usage(
        crypto_provider().signature_verification_algorithms.all,
        roots.anchors(),
        intermediates,
        now,
        usage,
        None,
        None,
    )
    .map(|_| ())
    .map_err(chain_error)
}

fn describe(error: &webpki::Error) -> String {
    match error {
        webpki::Error::CertExpired { .. } => "the certificate has expired".to_owned(),
        webpki::Error::CertNotValidYet { .. } => "the certificate is not valid yet".to_owned(),
        webpki::Error::CaUsedAsEndEntity => "a CA certificate was presented as the leaf".to_owned(),
        webpki::Error::UnknownIssuer => "the issuer is not a trusted root".to_owned(),
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the extended key usage does not allow this role".to_owned()
        }
        other => format!("{other:?}"),
    }
}

/// X509-SVID §4.3, applied to every leaf: when the key usage extension is present it must allow
/// `digitalSignature` (TLS 1.2 ECDHE and TLS 1.3 sign with the leaf key) and must not allow `keyCertSign` or
/// `cRLSign`, which belong to CAs.
fn check_key_usage(facts: &LeafFacts) -> Result<(), VerifyError> {
    match facts.key_usage {
        Some((false, _, _)) => Err(VerifyError::KeyUsage("digitalSignature is not set")),
        Some((_, true, _)) => Err(VerifyError::KeyUsage("keyCertSign is set on a leaf")),
        Some((_, _, true)) => Err(VerifyError::KeyUsage("cRLSign is set on a leaf")),
        _ => Ok(()),
    }
}

/// gRFC A29: a SAN matches when one matcher accepts it. An `exact` matcher also accepts a DNS SAN holding a
/// wildcard of the form `*.rest` when the matcher's value is one label followed by `.rest` (RFC 6125 §6.4.3, as
/// grpc-go and C-core do).
fn matches_san(matchers: &[StringMatcher], san: &str, facts: &LeafFacts) -> bool {
    matchers.iter().any(|matcher| {
        matcher.matches(san)
            || (facts.dns_sans.iter().any(|dns| &**dns == san) && wildcard_match(matcher, san))
    })
}

fn wildcard_match(matcher: &StringMatcher, san: &str) -> bool {
    let (StringMatch::Exact(expected), Some(rest)) = (matcher.kind(), san.strip_prefix("*."))
    else {
        return false;
    };
    if rest.is_empty() || rest.contains('*') {
        return false;
    }
    let Some((label, expected_rest)) = expected.split_once('.') else {
        return false;
    };
    !label.is_empty() && !label.contains('*') && expected_rest.eq_ignore_ascii_case(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_matchers_accept_dns_wildcards_one_label_deep() {
        let facts = LeafFacts {
            dns_sans: vec!["*.svc.example".into()],
            ..LeafFacts::default()
        };
        let matches =
            |value: &str| matches_san(&[StringMatcher::exact(value)], "*.svc.example", &facts);
        assert!(matches("a.svc.example"));
        assert!(matches("*.svc.example"));
        assert!(!matches("a.b.svc.example"));
        assert!(!matches("svc.example"));
        assert!(!matches_san(
            &[StringMatcher::prefix("a.")],
            "*.svc.example",
            &facts
        ));
    }

    #[test]
    fn key_usage_rules() {
        let with = |usage| LeafFacts {
            key_usage: usage,
            ..LeafFacts::default()
        };
        assert!(check_key_usage(&with(None)).is_ok());
        assert!(check_key_usage(&with(Some((true, false, false)))).is_ok());
        assert!(check_key_usage(&with(Some((false, false, false)))).is_err());
        assert!(check_key_usage(&with(Some((true, true, false)))).is_err());
        assert!(check_key_usage(&with(Some((true, false, true)))).is_err());
    }
}
