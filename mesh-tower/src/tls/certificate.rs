//! What a leaf certificate says, read with x509-parser: subject alternative names of every kind, the subject, the
//! key usage extension, and the SPIFFE ID when the certificate is an X509-SVID.

use std::net::IpAddr;
use std::sync::Arc;

use mesh_core::identity::SpiffeId;
use mesh_core::peer::PeerCertificate;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Name};

use super::error::VerifyError;

/// The facts of a leaf certificate that verification and the peer description need.
#[derive(Debug, Default)]
pub(crate) struct LeafFacts {
    pub(crate) uri_sans: Vec<Arc<str>>,
    pub(crate) dns_sans: Vec<Arc<str>>,
    pub(crate) ip_sans: Vec<Arc<str>>,
    pub(crate) email_sans: Vec<Arc<str>>,
    pub(crate) subject: Arc<str>,
    /// `Some((digital_signature, key_cert_sign, crl_sign))` when the key usage extension is present.
    pub(crate) key_usage: Option<(bool, bool, bool)>,
}

impl LeafFacts {
    /// Reads `der`.
    pub(crate) fn parse(der: &[u8]) -> Result<Self, VerifyError> {
        let malformed = |error: &dyn std::fmt::Display| VerifyError::Malformed(error.to_string());
        let (_, certificate) = X509Certificate::from_der(der).map_err(|e| malformed(&e))?;
        let mut facts = Self {
            subject: rfc2253(certificate.subject()).into(),
            ..Self::default()
        };
        if let Some(san) = certificate
            .subject_alternative_name()
            .map_err(|e| malformed(&e))?
        {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(uri) => facts.uri_sans.push((*uri).into()),
                    GeneralName::DNSName(dns) => facts.dns_sans.push((*dns).into()),
                    GeneralName::RFC822Name(email) => facts.email_sans.push((*email).into()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            facts.ip_sans.push(ip.to_string().into());
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(usage) = certificate.key_usage().map_err(|e| malformed(&e))? {
            let usage = usage.value;
            facts.key_usage = Some((
                usage.digital_signature(),
                usage.key_cert_sign(),
                usage.crl_sign(),
            ));
        }
        Ok(facts)
    }

    /// The SPIFFE ID when there is exactly one URI SAN and it is a valid SPIFFE ID (X509-SVID §2).
    pub(crate) fn spiffe_id(&self) -> Option<SpiffeId> {
        match self.uri_sans.as_slice() {
            [only] => SpiffeId::parse(only).ok(),
            _ => None,
        }
    }

    /// Every SAN, of every kind, as gRFC A29's matchers see them.
    pub(crate) fn all_sans(&self) -> impl Iterator<Item = &str> {
        self.uri_sans
            .iter()
            .chain(&self.dns_sans)
            .chain(&self.ip_sans)
            .chain(&self.email_sans)
            .map(|name| &**name)
    }

    /// The peer description handed to handlers and authorization.
    pub(crate) fn into_peer(self, der: &[u8]) -> PeerCertificate {
        let mut peer = PeerCertificate::new(Arc::from(der));
        peer.spiffe_id = self.spiffe_id();
        peer.uri_sans = self.uri_sans;
        peer.dns_sans = self.dns_sans;
        peer.subject = self.subject;
        peer
    }
}

/// Describes a DER leaf certificate (without verifying it).
///
/// # Errors
/// [`VerifyError::Malformed`] when `der` is not a parseable certificate.
pub fn describe_certificate(der: &[u8]) -> Result<PeerCertificate, VerifyError> {
    LeafFacts::parse(der).map(|facts| facts.into_peer(der))
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}

/// The subject in RFC 2253 form: RDNs last-to-first, joined by `,`; multi-valued RDNs joined by `+`.
fn rfc2253(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (position, rdn) in rdns.iter().rev().enumerate() {
        if position > 0 {
            out.push(',');
        }
        for (index, attribute) in rdn.iter().enumerate() {
            if index > 0 {
                out.push('+');
            }
            let oid = attribute.attr_type();
            match x509_parser::objects::oid2abbrev(oid, registry) {
                Ok(short) => out.push_str(short),
                Err(_) => out.push_str(&oid.to_id_string()),
            }
            out.push('=');
            match attribute.as_str() {
                Ok(value) => escape_rfc2253(value, &mut out),
                // RFC 2253 §2.4: a value without a string form is written as `#` and its BER encoding in hex.
                Err(_) => {
                    out.push('#');
                    for byte in attribute.as_slice() {
                        out.push_str(&format!("{byte:02x}"));
                    }
                }
            }
        }
    }
    out
}

fn escape_rfc2253(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (index, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (index == 0 && (c == '#' || c == ' '))
            || (index == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        assert!(matches!(
            describe_certificate(b"not a certificate"),
            Err(VerifyError::Malformed(_))
        ));
        assert!(describe_certificate(&[]).is_err());
    }

    #[test]
    fn escapes_special_characters() {
        let mut out = String::new();
        escape_rfc2253("#a,b ", &mut out);
        assert_eq!(out, "\\#a\\,b\\ ");
    }
}
