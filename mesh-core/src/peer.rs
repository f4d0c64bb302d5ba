//! Who is on the other end of a connection, as a server sees it: the addresses of the connection and, when the
//! peer presented a verified certificate, what that certificate says.
//!
//! The server's accept loop fills a [`ConnectionInfo`] once per connection and puts it (in an `Arc`) into every
//! request's extensions; authorization (gRFC A41) and handlers read it from there. Verifying certificates is the
//! TLS layer's job: a [`PeerCertificate`] here is always one that passed verification.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::identity::SpiffeId;

/// The facts of one accepted connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The local address the connection was accepted on (RBAC `destination_ip` / `destination_port`).
    pub local_addr: SocketAddr,
    /// The peer's address (RBAC `direct_remote_ip`, and `source_ip` / `remote_ip` without a proxy protocol).
    pub remote_addr: SocketAddr,
    /// Whether the connection is TLS (with or without a client certificate).
    pub tls: bool,
    /// The peer's verified certificate; `None` on plaintext connections and on TLS without a client certificate.
    pub peer_certificate: Option<Arc<PeerCertificate>>,
}

impl ConnectionInfo {
    /// A connection from `remote_addr` accepted on `local_addr`, without a peer certificate.
    #[must_use]
    pub fn new(local_addr: SocketAddr, remote_addr: SocketAddr) -> Self {
        Self {
            local_addr,
            remote_addr,
            tls: false,
            peer_certificate: None,
        }
    }

    /// Marks the connection as TLS, with no client certificate unless one is set.
    #[must_use]
    pub fn with_tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Sets the peer's verified certificate (which makes the connection TLS).
    #[must_use]
    pub fn with_peer_certificate(mut self, certificate: Arc<PeerCertificate>) -> Self {
        self.tls = true;
        self.peer_certificate = Some(certificate);
        self
    }

    /// Whether RBAC counts the peer as authenticated: gRFC A41 counts every TLS connection, client certificate or
    /// not.
    #[must_use]
    pub fn is_authenticated(&self) -> bool {
        self.tls
    }
}

/// What a verified peer leaf certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerCertificate {
    /// The SPIFFE ID, when the certificate is an X509-SVID (exactly one URI SAN holding a valid SPIFFE ID).
    pub spiffe_id: Option<SpiffeId>,
    /// Every URI subject alternative name, in certificate order.
    pub uri_sans: Vec<Arc<str>>,
    /// Every DNS subject alternative name, in certificate order.
    pub dns_sans: Vec<Arc<str>>,
    /// The subject distinguished name in RFC 2253 form (empty when the certificate has none).
    pub subject: Arc<str>,
    /// The leaf certificate, DER-encoded.
    pub der: Arc<[u8]>,
}

impl PeerCertificate {
    /// A certificate with the given DER encoding and nothing extracted from it yet.
    #[must_use]
    pub fn new(der: Arc<[u8]>) -> Self {
        Self {
            spiffe_id: None,
            uri_sans: Vec::new(),
            dns_sans: Vec::new(),
            subject: "".into(),
            der,
        }
    }

    /// The names RBAC's `principal_name` is matched against, in gRFC A41's order: URI SANs, then DNS SANs, then the
    /// subject.
    pub fn principal_names(&self) -> impl Iterator<Item = &str> {
        self.uri_sans
            .iter()
            .chain(self.dns_sans.iter())
            .map(|name| &**name)
            .chain((!self.subject.is_empty()).then_some(&*self.subject))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_names_follow_grfc_a41_order() {
        let mut certificate = PeerCertificate::new(Arc::from(&[1_u8, 2][..]));
        certificate.uri_sans = vec!["spiffe://a.example/ns/x".into()];
        certificate.dns_sans = vec!["x.a.example".into()];
        certificate.subject = "CN=x".into();
        let names: Vec<&str> = certificate.principal_names().collect();
        assert_eq!(names, ["spiffe://a.example/ns/x", "x.a.example", "CN=x"]);

        certificate.subject = "".into();
        assert_eq!(certificate.principal_names().count(), 2);
    }

    #[test]
    fn authenticated_only_over_tls() {
        let local: SocketAddr = ([127, 0, 0, 1], 443).into();
        let remote: SocketAddr = ([127, 0, 0, 2], 5000).into();
        let plain = ConnectionInfo::new(local, remote);
        assert!(!plain.is_authenticated());
        assert!(plain.clone().with_tls().is_authenticated());
        let tls = plain.with_peer_certificate(Arc::new(PeerCertificate::new(Arc::from(&[][..]))));
        assert!(tls.is_authenticated());
    }
}
