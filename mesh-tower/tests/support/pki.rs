//! Test PKIs made with rcgen: a CA per trust domain and leaves with whatever (good or bad) properties a test needs.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
// Through mesh-tower's re-export, so other crates' tests can include this file without depending on rustls.
use mesh_tower::tls::pki_types::CertificateDer;

/// A CA of one trust domain.
pub struct Ca {
    pub trust_domain: String,
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(trust_domain: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{trust_domain} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        // A CA presented as a leaf must fail on being a CA, not on a missing SAN: give it the domain's ID.
        params.subject_alt_names = vec![uri(&format!("spiffe://{trust_domain}/ca"))];
        let certificate = params.self_signed(&key).unwrap();
        Self {
            trust_domain: trust_domain.to_owned(),
            der: certificate.der().clone(),
            pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Issues a leaf.
    pub fn issue(&self, spec: &Leaf) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, spec.common_name.clone());
        params.subject_alt_names = spec.sans.clone();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = spec.key_usages.clone();
        params.extended_key_usages = spec.extended_key_usages.clone();
        if let Some(((y1, m1, d1), (y2, m2, d2))) = spec.validity {
            params.not_before = rcgen::date_time_ymd(y1, m1, d1);
            params.not_after = rcgen::date_time_ymd(y2, m2, d2);
        }
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            chain_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            der: certificate.der().clone(),
        }
    }

    /// The CA itself as an identity (to present a CA certificate as a leaf).
    pub fn as_identity(&self) -> Issued {
        Issued {
            chain_pem: self.pem.clone(),
            key_pem: self.key_pem.clone(),
            der: self.der.clone(),
        }
    }

    /// The SPIFFE bundle (JWK set) of this domain, for a bundle map.
    pub fn bundle_json(&self) -> String {
        use base64::Engine;
        let x5c = base64::engine::general_purpose::STANDARD.encode(self.der.as_ref());
        format!(
            r#"{{"spiffe_sequence": 1, "keys": [{{"kty": "EC", "use": "x509-svid", "x5c": ["{x5c}"]}}]}}"#
        )
    }
}

/// A SPIFFE trust bundle map JSON of `cas`.
pub fn bundle_map(cas: &[&Ca]) -> String {
    let entries: Vec<String> = cas
        .iter()
        .map(|ca| format!("{:?}: {}", ca.trust_domain, ca.bundle_json()))
        .collect();
    format!(r#"{{"trust_domains": {{{}}}}}"#, entries.join(", "))
}

/// A date as (year, month, day).
pub type Ymd = (i32, u8, u8);

/// What a leaf should look like.
#[derive(Clone)]
pub struct Leaf {
    pub common_name: String,
    pub sans: Vec<SanType>,
    pub key_usages: Vec<KeyUsagePurpose>,
    pub extended_key_usages: Vec<ExtendedKeyUsagePurpose>,
    /// Not before and not after, as (year, month, day).
    pub validity: Option<(Ymd, Ymd)>,
}

impl Leaf {
    /// A well-formed X509-SVID for `id`, good for both client and server.
    pub fn svid(id: &str) -> Self {
        Self {
            common_name: id.rsplit('/').next().unwrap_or("leaf").to_owned(),
            sans: vec![uri(id)],
            key_usages: vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
            extended_key_usages: vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            validity: None,
        }
    }

    pub fn with_sans(mut self, sans: Vec<SanType>) -> Self {
        self.sans = sans;
        self
    }
}

pub fn uri(value: &str) -> SanType {
    SanType::URI(value.try_into().unwrap())
}

pub fn dns(value: &str) -> SanType {
    SanType::DnsName(value.try_into().unwrap())
}

/// A leaf's PEM chain, key and DER.
#[derive(Clone)]
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Issued {
    pub fn identity(&self) -> mesh_tower::tls::Identity {
        mesh_tower::tls::Identity::from_pem(self.chain_pem.as_bytes(), self.key_pem.as_bytes())
            .unwrap()
    }
}
