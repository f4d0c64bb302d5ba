//! Authorization policies: the model of Envoy's RBAC filter config as gRPC supports it (gRFC A41, audit logging per
//! gRFC A59), and the engine that evaluates it against a request.
//!
//! A policy set ([`Rbac`]) has an action (ALLOW or DENY) and named policies, each matching when any of its
//! permissions (what is being accessed) and any of its principals (who is asking) match. Several RBAC filters may
//! follow each other in an HTTP filter chain ([`RbacChain`]); a request passes only if every one of them allows it.
//!
//! What it solves:
//! - The configuration, built from xDS by mesh-xds-client or written in code.
//! - Evaluation, pure and allocation-free ([`Rbac::evaluate`], [`RbacChain::evaluate`]) against an
//!   [`RbacRequest`]: what authorization may see of a request, with gRFC A41's mapping of Envoy's fields onto gRPC
//!   (pseudo-headers, hop-by-hop headers, the peer certificate's names, the connection's addresses). The decision
//!   names the matched policy, which audit logs report (gRFC A59).
//!
//! What it does not: enforce decisions or write audit logs (mesh-tower's `authz` layer does), verify certificates
//! (the TLS layer does; a [`PeerCertificate`](crate::peer::PeerCertificate) is always verified), or apply
//! `RBACPerRoute` overrides (choosing the per-route config belongs to the server's route matching).

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::matcher::StringMatcher;
use crate::route::HeaderMatcher;

mod chain;
mod engine;

pub use chain::{ChainDecision, RbacChain, RbacFilter};
pub use engine::{RbacDecision, RbacRequest};

/// What happens when a policy matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum RbacAction {
    /// Allow matching requests; deny the rest.
    Allow,
    /// Deny matching requests; allow the rest.
    Deny,
}

/// When authorization decisions are written to the audit log (gRFC A59).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum AuditCondition {
    /// Never.
    #[default]
    None,
    /// When a request is denied.
    OnDeny,
    /// When a request is allowed.
    OnAllow,
    /// Always.
    OnDenyAndAllow,
}

impl AuditCondition {
    /// Whether a decision (`allowed` or not) is audit-logged under this condition. gRFC A59: allow and deny are the
    /// filter's *decision*, not its action (a DENY filter whose policies do not match *allows*).
    #[must_use]
    pub fn applies(self, allowed: bool) -> bool {
        match self {
            Self::None => false,
            Self::OnDeny => !allowed,
            Self::OnAllow => allowed,
            Self::OnDenyAndAllow => true,
        }
    }
}

/// An IP prefix (Envoy's `CidrRange`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct CidrRange {
    prefix: IpAddr,
    len: u8,
}

impl CidrRange {
    /// `prefix/len`; `None` when `len` exceeds the address width (32 or 128).
    #[must_use]
    pub fn new(prefix: IpAddr, len: u8) -> Option<Self> {
        let width = if prefix.is_ipv4() { 32 } else { 128 };
        (len <= width).then_some(Self { prefix, len })
    }

    /// The prefix address.
    #[must_use]
    pub fn prefix(&self) -> IpAddr {
        self.prefix
    }

    /// The prefix length in bits.
    #[must_use]
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `ip` falls in this range (an IPv4 address never matches an IPv6 range and vice versa).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.prefix, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(p) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(p) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// What is being accessed (Envoy's `Permission`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Permission {
    /// Anything.
    Any,
    /// All of these.
    And(Vec<Permission>),
    /// Any of these.
    Or(Vec<Permission>),
    /// Not this.
    Not(Box<Permission>),
    /// A request header.
    Header(HeaderMatcher),
    /// The request path (without query).
    UrlPath(StringMatcher),
    /// The local address the connection arrived on.
    DestinationIp(CidrRange),
    /// The local port the connection arrived on.
    DestinationPort(u16),
    /// The TLS SNI the client asked for.
    RequestedServerName(StringMatcher),
}

/// Who is asking (Envoy's `Principal`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Principal {
    /// Anyone.
    Any,
    /// All of these.
    And(Vec<Principal>),
    /// Any of these.
    Or(Vec<Principal>),
    /// Not this.
    Not(Box<Principal>),
    /// An authenticated peer (any TLS connection, gRFC A41); with a matcher, its SPIFFE ID (URI SAN) or, failing that,
    /// a DNS SAN or the subject must match (the empty string without a client certificate). Without one, any TLS peer.
    Authenticated(Option<StringMatcher>),
    /// The peer's address (the connection's source).
    SourceIp(CidrRange),
    /// The directly connected peer's address.
    DirectRemoteIp(CidrRange),
    /// The client address (the same as the direct one without proxies in between).
    RemoteIp(CidrRange),
    /// A request header.
    Header(HeaderMatcher),
    /// The request path.
    UrlPath(StringMatcher),
}

/// A named policy: it matches when any permission and any principal match.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RbacPolicy {
    /// The policy's name (reported in audit logs).
    pub name: Arc<str>,
    /// What it covers; any may match.
    pub permissions: Vec<Permission>,
    /// Whom it covers; any may match.
    pub principals: Vec<Principal>,
}

impl RbacPolicy {
    /// A policy named `name`.
    #[must_use]
    pub fn new(name: &str, permissions: Vec<Permission>, principals: Vec<Principal>) -> Self {
        Self {
            name: name.into(),
            permissions,
            principals,
        }
    }
}

/// An RBAC filter's rules (gRFC A41): an action and policies, plus the audit condition.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Rbac {
    /// What a match means.
    pub action: RbacAction,
    /// The policies; any may match.
    pub policies: Vec<RbacPolicy>,
    /// When decisions are audit-logged.
    pub audit_condition: AuditCondition,
}

impl Rbac {
    /// Rules with `action` over `policies`, no audit logging.
    #[must_use]
    pub fn new(action: RbacAction, policies: Vec<RbacPolicy>) -> Self {
        Self {
            action,
            policies,
            audit_condition: AuditCondition::None,
        }
    }

    /// Sets when decisions are audit-logged.
    #[must_use]
    pub fn with_audit_condition(mut self, audit_condition: AuditCondition) -> Self {
        self.audit_condition = audit_condition;
        self
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
