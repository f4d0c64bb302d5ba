//! Certificate material: our identity (a certificate chain with its private key) and the trust roots a peer is
//! verified against, either one CA set or a SPIFFE trust bundle map (gRFC A87). Everything is parsed and checked
//! here, once, when the material is loaded, so a handshake only looks it up.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use mesh_core::identity::TrustDomain;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, TrustAnchor};
use rustls::sign::CertifiedKey;

use super::bundle;
use super::error::MaterialError;

/// The one crypto provider of this crate: ring (two installed providers make rustls panic). rustls 0.23.48
/// deprecates ring's provider because ring has no post-quantum key exchange; the project pins ring, so key exchange
/// is X25519 / P-256 / P-384.
#[allow(deprecated)]
static PROVIDER: LazyLock<Arc<CryptoProvider>> =
    LazyLock::new(|| Arc::new(rustls::crypto::ring::default_provider()));

pub(crate) fn crypto_provider() -> &'static Arc<CryptoProvider> {
    &PROVIDER
}

/// Our identity: a certificate chain (leaf first) and the private key of its leaf, checked to match.
#[derive(Clone)]
pub struct Identity {
    certified: Arc<CertifiedKey>,
}

impl Identity {
    /// An identity from a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    /// [`MaterialError`] when either is malformed, the key is unsupported or does not match the leaf.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, MaterialError> {
        let chain = certificates_from_pem(chain_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| match error {
            rustls::pki_types::pem::Error::NoItemsFound => MaterialError::NoPrivateKey,
            other => MaterialError::Pem(other.to_string()),
        })?;
        Self::from_der(chain, key)
    }

    /// An identity from DER certificates (leaf first) and a DER private key.
    ///
    /// # Errors
    /// [`MaterialError`] when the chain is empty, the key is unsupported or does not match the leaf.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, MaterialError> {
        if chain.is_empty() {
            return Err(MaterialError::NoCertificate);
        }
        let signing = crypto_provider()
            .key_provider
            .load_private_key(key)
            .map_err(|error| MaterialError::PrivateKey(error.to_string()))?;
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(MaterialError::KeyMismatch);
            }
            Err(rustls::Error::InconsistentKeys(_)) => {}
            Err(other) => return Err(MaterialError::PrivateKey(other.to_string())),
        }
        Ok(Self {
            certified: Arc::new(certified),
        })
    }

    /// The certificate chain, leaf first.
    #[must_use]
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.certified.cert
    }

    pub(crate) fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.certified
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("chain_len", &self.certified.cert.len())
            .finish_non_exhaustive()
    }
}

/// A set of trust anchors (CA certificates), parsed once.
#[derive(Clone)]
pub struct RootSet {
    anchors: Arc<[TrustAnchor<'static>]>,
}

impl RootSet {
    /// Roots from PEM text holding one or more CA certificates.
    ///
    /// # Errors
    /// [`MaterialError`] when the text holds no certificate or one cannot serve as a trust anchor.
    pub fn from_pem(pem: &[u8]) -> Result<Self, MaterialError> {
        Self::from_der(&certificates_from_pem(pem)?)
    }

    /// Roots from DER certificates.
    ///
    /// # Errors
    /// [`MaterialError`] when there is none or one cannot serve as a trust anchor.
    pub fn from_der(certificates: &[CertificateDer<'_>]) -> Result<Self, MaterialError> {
        if certificates.is_empty() {
            return Err(MaterialError::NoCertificate);
        }
        let anchors = certificates
            .iter()
            .enumerate()
            .map(|(index, der)| {
                webpki::anchor_from_trusted_cert(der)
                    .map(|anchor| anchor.to_owned())
                    .map_err(|error| MaterialError::TrustRoot {
                        index,
                        reason: error.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            anchors: anchors.into(),
        })
    }

    /// How many anchors the set holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Whether the set is empty (a SPIFFE bundle may legitimately be).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    pub(crate) fn empty() -> Self {
        Self {
            anchors: Arc::new([]),
        }
    }

    pub(crate) fn anchors(&self) -> &[TrustAnchor<'static>] {
        &self.anchors
    }
}

impl fmt::Debug for RootSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootSet")
            .field("anchors", &self.anchors.len())
            .finish()
    }
}

/// What a peer's certificate chain must lead to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TrustRoots {
    /// Plain X.509 verification against one CA set (gRFC A29 `ca_certificate_file`).
    Ca(RootSet),
    /// SPIFFE verification (gRFC A87): the peer's leaf is an X509-SVID and its chain must lead to the bundle of its
    /// own trust domain. An empty map is valid and rejects every peer.
    Spiffe(Arc<HashMap<TrustDomain, RootSet>>),
}

impl TrustRoots {
    /// CA roots from PEM text.
    ///
    /// # Errors
    /// See [`RootSet::from_pem`].
    pub fn ca_from_pem(pem: &[u8]) -> Result<Self, MaterialError> {
        RootSet::from_pem(pem).map(Self::Ca)
    }

    /// A SPIFFE trust bundle map from its JSON form (`{"trust_domains": {"td": <SPIFFE bundle>, ...}}`, gRFC A87).
    ///
    /// # Errors
    /// [`MaterialError::Bundle`] naming the trust domain and key at fault.
    pub fn spiffe_from_json(json: &[u8]) -> Result<Self, MaterialError> {
        bundle::parse_bundle_map(json).map(|map| Self::Spiffe(Arc::new(map)))
    }

    /// A SPIFFE trust bundle map from trust domains and their roots.
    #[must_use]
    pub fn spiffe(map: HashMap<TrustDomain, RootSet>) -> Self {
        Self::Spiffe(Arc::new(map))
    }
}

/// Every certificate in `pem`, in order.
pub(crate) fn certificates_from_pem(
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, MaterialError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| MaterialError::Pem(error.to_string()))?;
    if chain.is_empty() {
        return Err(MaterialError::NoCertificate);
    }
    Ok(chain)
}
