//! Server listeners for xDS-enabled gRPC servers (gRFC A36): TLS mode and authorization (gRFC A41).

use serde::{Deserialize, Serialize};

use super::matcher::{HeaderMatch, StringMatch};

/// The template gRPC bootstraps commonly set as `server_listener_resource_name_template` (gRFC A36); `%s` is
/// replaced by the listening address, `IP:PORT` (`[IPv6]:PORT`).
pub const DEFAULT_SERVER_LISTENER_NAME_TEMPLATE: &str =
    "grpc/server?xds.resource.listening_address=%s";

/// The Listener an xDS-enabled server fetches for one listening address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerListener {
    /// `IP:PORT` the server listens on (`0.0.0.0:50051`); the Listener's `address` and, through the template, its
    /// name.
    pub listening_address: String,
    /// The Listener name; default: the mesh's `server_listener_resource_name_template` with `%s` replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// TLS for accepted connections; none: plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<DownstreamTls>,
    /// Authorization of requests (the HTTP RBAC filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rbac: Option<Rbac>,
}

impl ServerListener {
    /// A plaintext server listener for `listening_address`.
    #[must_use]
    pub fn new(listening_address: impl Into<String>) -> Self {
        Self {
            listening_address: listening_address.into(),
            name: None,
            tls: None,
            rbac: None,
        }
    }

    /// Sets TLS.
    #[must_use]
    pub fn with_tls(mut self, tls: DownstreamTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets authorization.
    #[must_use]
    pub fn with_rbac(mut self, rbac: Rbac) -> Self {
        self.rbac = Some(rbac);
        self
    }
}

/// `DownstreamTlsContext` from certificate-provider instances named in the server's bootstrap (gRFC A29/A36).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DownstreamTls {
    /// The provider instance of the server's certificate (`tls_certificate_provider_instance`).
    pub certificate_provider: String,
    /// The certificate name within that instance; default `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_name: Option<String>,
    /// The provider instance of the CA that validates client certificates; required with
    /// `require_client_certificate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_provider: Option<String>,
    /// The certificate name within that instance; default `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_name: Option<String>,
    /// mTLS: reject clients without a valid certificate.
    #[serde(default)]
    pub require_client_certificate: bool,
}

impl DownstreamTls {
    /// TLS with the certificate of provider instance `certificate_provider`.
    #[must_use]
    pub fn new(certificate_provider: impl Into<String>) -> Self {
        Self {
            certificate_provider: certificate_provider.into(),
            ..Self::default()
        }
    }

    /// mTLS: require client certificates signed by the CA of provider instance `ca_certificate_provider`.
    #[must_use]
    pub fn requiring_client_certificate(
        mut self,
        ca_certificate_provider: impl Into<String>,
    ) -> Self {
        self.ca_certificate_provider = Some(ca_certificate_provider.into());
        self.require_client_certificate = true;
        self
    }
}

/// RBAC rules (gRFC A41): with `allow`, a request must match a policy; with `deny`, it must match none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Rbac {
    /// Default `allow`.
    #[serde(default)]
    pub action: RbacAction,
    /// The policies, by name. May be empty: `allow` with none denies everything.
    #[serde(default)]
    pub policies: Vec<RbacPolicy>,
}

impl Rbac {
    /// Rules with `action` and no policies yet.
    #[must_use]
    pub fn new(action: RbacAction) -> Self {
        Self {
            action,
            policies: Vec::new(),
        }
    }

    /// Appends a policy.
    #[must_use]
    pub fn with_policy(mut self, policy: RbacPolicy) -> Self {
        self.policies.push(policy);
        self
    }
}

/// What matching a policy means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RbacAction {
    /// Allow requests matching a policy, deny the rest.
    #[default]
    Allow,
    /// Deny requests matching a policy, allow the rest.
    Deny,
}

/// A policy matches when any permission and any principal match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RbacPolicy {
    /// The policy name (unique).
    pub name: String,
    /// What is requested; at least one.
    // YAML writes an enum as a one-key map (`{path: ...}`) or, for unit variants, a bare string (`any`).
    #[serde(with = "serde_norway::with::singleton_map_recursive")]
    pub permissions: Vec<Permission>,
    /// Who requests; at least one.
    #[serde(with = "serde_norway::with::singleton_map_recursive")]
    pub principals: Vec<Principal>,
}

impl RbacPolicy {
    /// A policy named `name`.
    #[must_use]
    pub fn new(
        name: impl Into<String>,
        permissions: Vec<Permission>,
        principals: Vec<Principal>,
    ) -> Self {
        Self {
            name: name.into(),
            permissions,
            principals,
        }
    }
}

/// A permission: YAML `any`, `{path: {prefix: /x}}`, `{header: {...}}`, `{destination_port: 50051}`,
/// `{not: ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Permission {
    /// Every request.
    Any,
    /// The request path (`/package.Service/Method`) matches.
    Path(StringMatch),
    /// A request header matches.
    Header(HeaderMatch),
    /// The connection's destination port.
    DestinationPort(u32),
    /// The inner permission does not match.
    Not(Box<Permission>),
}

/// A principal: YAML `any`, `{authenticated: {principal_name: {exact: spiffe://...}}}`, `{header: {...}}`,
/// `{path: {...}}`, `{not: ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Principal {
    /// Every client.
    Any,
    /// A client with a verified certificate whose SAN (URI, DNS) or subject matches `principal_name`; without
    /// `principal_name`, any client with a verified certificate.
    Authenticated(Authenticated),
    /// A request header matches.
    Header(HeaderMatch),
    /// The request path matches.
    Path(StringMatch),
    /// The inner principal does not match.
    Not(Box<Principal>),
}

/// An authenticated peer (gRFC A41).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Authenticated {
    /// The peer identity to match; none: any authenticated peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_name: Option<StringMatch>,
}

impl Authenticated {
    /// A peer whose identity matches `principal_name`.
    #[must_use]
    pub fn new(principal_name: StringMatch) -> Self {
        Self {
            principal_name: Some(principal_name),
        }
    }
}
