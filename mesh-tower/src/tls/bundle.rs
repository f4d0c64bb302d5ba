//! The SPIFFE trust bundle map file (gRFC A87): `{"trust_domains": {"<trust domain>": <SPIFFE bundle>, ...}}`,
//! each bundle a JWK set as the SPIFFE Trust Domain and Bundle spec (§4) and X509-SVID spec (§6) define it.
//!
//! Only what gRFC A87 supports is read: `keys` (with `kty`, `use`, `x5c`) and `spiffe_sequence`. A key whose `use`
//! is `jwt-svid` (or another use) is skipped: only `x509-svid` keys are roots. An `x509-svid` key must have `kty`
//! and exactly one certificate in `x5c` (X509-SVID §6.1). gRFC A87 drops a whole bundle with a bad entry rather than
//! the entry; this parser is stricter still and rejects the whole file, so a provider keeps its previous map and
//! reports which trust domain and key are at fault.

use std::collections::HashMap;

use base64::Engine;
use mesh_core::identity::TrustDomain;
use rustls::pki_types::CertificateDer;
use serde_json::Value;

use super::error::MaterialError;
use super::material::RootSet;

/// The `use` of a JWK holding an X.509 root (X509-SVID §6.1).
pub const X509_SVID_USE: &str = "x509-svid";

fn bad(message: String) -> MaterialError {
    MaterialError::Bundle(message)
}

/// Parses a trust bundle map (format and rules in the module docs).
pub(crate) fn parse_bundle_map(
    json: &[u8],
) -> Result<HashMap<TrustDomain, RootSet>, MaterialError> {
    let value: Value =
        serde_json::from_slice(json).map_err(|error| bad(format!("invalid JSON: {error}")))?;
    let domains = value
        .get("trust_domains")
        .ok_or_else(|| bad("missing \"trust_domains\"".to_owned()))?
        .as_object()
        .ok_or_else(|| bad("\"trust_domains\" is not an object".to_owned()))?;
    let mut map = HashMap::with_capacity(domains.len());
    for (name, bundle) in domains {
        let trust_domain = TrustDomain::new(name)
            .map_err(|error| bad(format!("trust domain {name:?}: {error}")))?;
        let roots = parse_bundle(bundle)
            .map_err(|reason| bad(format!("trust domain {name:?}: {reason}")))?;
        map.insert(trust_domain, roots);
    }
    Ok(map)
}

/// One trust domain's bundle (a JWK set).
fn parse_bundle(bundle: &Value) -> Result<RootSet, String> {
    let bundle = bundle.as_object().ok_or("the bundle is not an object")?;
    if let Some(sequence) = bundle.get("spiffe_sequence")
        && !sequence.is_u64()
    {
        return Err("\"spiffe_sequence\" is not a non-negative integer".to_owned());
    }
    let keys = bundle
        .get("keys")
        .ok_or("missing \"keys\"")?
        .as_array()
        .ok_or("\"keys\" is not an array")?;
    let mut certificates = Vec::with_capacity(keys.len());
    for (index, key) in keys.iter().enumerate() {
        if let Some(der) = parse_key(key).map_err(|reason| format!("keys[{index}]: {reason}"))? {
            certificates.push(der);
        }
    }
    if certificates.is_empty() {
        return Ok(RootSet::empty());
    }
    RootSet::from_der(&certificates).map_err(|error| error.to_string())
}

/// One JWK: `Some(certificate)` for an `x509-svid` key, `None` for a key of another use.
fn parse_key(key: &Value) -> Result<Option<CertificateDer<'static>>, String> {
    let key = key.as_object().ok_or("not an object")?;
    let usage = key
        .get("use")
        .ok_or("missing \"use\"")?
        .as_str()
        .ok_or("\"use\" is not a string")?;
    if usage != X509_SVID_USE {
        return Ok(None);
    }
    key.get("kty")
        .and_then(Value::as_str)
        .filter(|kty| !kty.is_empty())
        .ok_or("missing \"kty\"")?;
    let x5c = key
        .get("x5c")
        .ok_or("missing \"x5c\"")?
        .as_array()
        .ok_or("\"x5c\" is not an array")?;
    let [certificate] = x5c.as_slice() else {
        return Err(format!(
            "\"x5c\" must hold exactly one certificate, found {}",
            x5c.len()
        ));
    };
    let encoded = certificate.as_str().ok_or("\"x5c\"[0] is not a string")?;
    // RFC 7517 §4.7: standard base64 (not base64url) of the DER certificate.
    let der = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|error| format!("\"x5c\"[0] is not base64: {error}"))?;
    Ok(Some(CertificateDer::from(der)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_trust_domain_and_key() {
        let json = br#"{"trust_domains": {"a.example": {"keys": [{"use": "x509-svid", "kty": "EC", "x5c": []}]}}}"#;
        let error = parse_bundle_map(json).unwrap_err().to_string();
        assert!(error.contains("\"a.example\""), "{error}");
        assert!(error.contains("keys[0]"), "{error}");
        assert!(error.contains("exactly one"), "{error}");
    }

    #[test]
    fn rejects_invalid_trust_domains_and_shapes() {
        for json in [
            &br#"{}"#[..],
            br#"{"trust_domains": []}"#,
            br#"{"trust_domains": {"UPPER.example": {"keys": []}}}"#,
            br#"{"trust_domains": {"a.example": {}}}"#,
            br#"{"trust_domains": {"a.example": {"keys": [{"kty": "EC"}]}}}"#,
            br#"{"trust_domains": {"a.example": {"keys": [{"use": "x509-svid", "x5c": ["AAAA"]}]}}}"#,
            br#"{"trust_domains": {"a.example": {"keys": [{"use": "x509-svid", "kty": "EC", "x5c": ["!!"]}]}}}"#,
            br#"{"trust_domains": {"a.example": {"keys": [{"use": "x509-svid", "kty": "EC", "x5c": ["AAAA"]}]}}}"#,
            br#"{"trust_domains": {"a.example": {"spiffe_sequence": -1, "keys": []}}}"#,
            b"\xff",
        ] {
            assert!(parse_bundle_map(json).is_err(), "{}", String::from_utf8_lossy(json));
        }
    }

    #[test]
    fn skips_jwt_keys_and_accepts_an_empty_map() {
        let json =
            br#"{"trust_domains": {"a.example": {"keys": [{"use": "jwt-svid", "kty": "EC"}]}}}"#;
        let map = parse_bundle_map(json).unwrap();
        assert!(map[&TrustDomain::new("a.example").unwrap()].is_empty());
        assert!(
            parse_bundle_map(br#"{"trust_domains": {}}"#)
                .unwrap()
                .is_empty()
        );
    }
}
