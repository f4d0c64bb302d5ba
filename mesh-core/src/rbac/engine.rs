//! Evaluating one RBAC filter's rules against a request (gRFC A41, Envoy's `config.rbac.v3` semantics).
//!
//! Rules, with where they come from:
//! - ALLOW allows a request iff some policy matches; DENY denies it iff some policy matches (Envoy `RBAC.action`).
//!   Policies are tried in their configured order (mesh-xds-client sorts them by name, Envoy's "lexicographic order
//!   of the policy name") and the first match is the one reported.
//! - A policy matches iff any permission and any principal match, so a policy with an empty list never matches
//!   (Envoy `Policy`); `and` over nothing matches and `or` over nothing does not (Envoy's `AndMatcher`/`OrMatcher`).
//! - Headers (gRFC A41): `:method`, `:authority` (also when the rule says `host`) and `:path` are the request's
//!   values on the wire; `:path` keeps its query, `url_path` does not (Envoy). Several values of a header are joined
//!   with `,`. `-bin` headers are matched in their base64 wire form. Hop-by-hop headers (`connection`, `keep-alive`,
//!   `proxy-connection`, `transfer-encoding`, `upgrade`, `te`) never match, nor do `grpc-` headers and `:scheme`, which
//!   A41 forbids in rules (a rule written in code that names them sees them as absent). `content-type` is what the
//!   client sent.
//! - `requested_server_name` is matched against the empty string (gRFC A41: "hard-coded as empty string").
//! - Addresses: `destination_ip`/`destination_port` are the connection's local address; `source_ip`,
//!   `direct_remote_ip` and `remote_ip` are all the peer's address (A41, as long as neither the PROXY protocol nor
//!   `xff_num_trusted_hops` is supported). IPv4-mapped IPv6 addresses (a dual-stack listener's view of an IPv4 peer)
//!   are matched as the IPv4 address they map. Without connection facts, no address rule matches.
//! - `authenticated`: only TLS connections are authenticated, client certificate or not (gRFC A41). Without a matcher,
//!   any TLS peer; with one, any URI SAN, then any DNS SAN, then the RFC 2253 subject must match (Envoy's
//!   `AuthenticatedMatcher` and grpc-go try each kind in turn; A41's prose orders them the same way), and a TLS peer
//!   without a certificate is matched as the empty string (A41).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use super::{CidrRange, Permission, Principal, Rbac, RbacAction, RbacPolicy};
use crate::matcher::StringMatcher;
use crate::peer::{ConnectionInfo, PeerCertificate};
use crate::route::{HeaderLookup, HeaderMatch, HeaderMatcher};

/// What authorization sees of one request: its pseudo-headers, headers and path, and the facts of its connection.
///
/// ```
/// use mesh_core::rbac::RbacRequest;
///
/// let headers = http::HeaderMap::new();
/// let request = RbacRequest::new("POST", "/helloworld.Greeter/SayHello", &headers)
///     .with_authority(Some("greeter.example:50051"));
/// assert_eq!(request.url_path(), "/helloworld.Greeter/SayHello");
/// ```
#[derive(Debug)]
pub struct RbacRequest<'a, H: ?Sized> {
    method: &'a str,
    path_and_query: &'a str,
    authority: Option<&'a str>,
    headers: &'a H,
    connection: Option<&'a ConnectionInfo>,
}

impl<H: ?Sized> Clone for RbacRequest<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H: ?Sized> Copy for RbacRequest<'_, H> {}

impl<'a, H: HeaderLookup + ?Sized> RbacRequest<'a, H> {
    /// A request with `method` (`POST` for gRPC), `path_and_query` (the `:path` pseudo-header as received) and the
    /// regular `headers`; no authority and no connection facts yet.
    #[must_use]
    pub fn new(method: &'a str, path_and_query: &'a str, headers: &'a H) -> Self {
        Self {
            method,
            path_and_query,
            authority: None,
            headers,
            connection: None,
        }
    }

    /// Sets the `:authority` (gRFC A41: the `Host` header when `:authority` is absent).
    #[must_use]
    pub fn with_authority(mut self, authority: Option<&'a str>) -> Self {
        self.authority = authority;
        self
    }

    /// Sets the facts of the connection the request arrived on; without them the peer is unauthenticated and its
    /// addresses are unknown.
    #[must_use]
    pub fn with_connection(mut self, connection: Option<&'a ConnectionInfo>) -> Self {
        self.connection = connection;
        self
    }

    /// The path without query or fragment (Envoy's `url_path`; for gRPC, `/package.Service/Method`).
    #[must_use]
    pub fn url_path(&self) -> &'a str {
        let end = self
            .path_and_query
            .find(['?', '#'])
            .unwrap_or(self.path_and_query.len());
        self.path_and_query
            .get(..end)
            .unwrap_or(self.path_and_query)
    }

    /// The `:path` pseudo-header, query included.
    #[must_use]
    pub fn path_and_query(&self) -> &'a str {
        self.path_and_query
    }

    /// The connection facts, when the server supplied them.
    #[must_use]
    pub fn connection(&self) -> Option<&'a ConnectionInfo> {
        self.connection
    }

    /// The peer's verified certificate, if any.
    #[must_use]
    pub fn peer_certificate(&self) -> Option<&'a PeerCertificate> {
        self.connection
            .and_then(|connection| connection.peer_certificate.as_deref())
    }

    /// The value of header `name` (lowercase) as RBAC sees it (see the [module docs](self)): `None` when absent or
    /// never matchable, several values joined with `,` (the only case that allocates).
    fn header_value(&self, name: &str) -> Option<Cow<'a, [u8]>> {
        if let Some(pseudo) = name.strip_prefix(':') {
            let value = match pseudo {
                "method" => Some(self.method),
                "path" => Some(self.path_and_query),
                "authority" => self.authority,
                _ => None,
            };
            return value.map(|value| Cow::Borrowed(value.as_bytes()));
        }
        if name == "host" {
            // gRFC A41: `host` and `:authority` are one header.
            return self.authority.map(|value| Cow::Borrowed(value.as_bytes()));
        }
        if is_hidden_header(name) {
            return None;
        }
        let mut values = self.headers.values(name);
        let first = values.next()?;
        let Some(second) = values.next() else {
            return Some(Cow::Borrowed(first));
        };
        let mut joined = Vec::with_capacity(first.len() + 1 + second.len());
        joined.extend_from_slice(first);
        joined.push(b',');
        joined.extend_from_slice(second);
        for value in values {
            joined.push(b',');
            joined.extend_from_slice(value);
        }
        Some(Cow::Owned(joined))
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.connection.map(|connection| connection.local_addr)
    }

    fn remote_ip(&self) -> Option<IpAddr> {
        self.connection
            .map(|connection| connection.remote_addr.ip().to_canonical())
    }
}

/// Headers RBAC never matches: hop-by-hop headers (gRFC A41: "implementations must not match hop-by-hop headers";
/// RFC 9113 §8.2.2 lists the connection-specific ones, `te` included) and the `grpc-` headers A41 excludes.
fn is_hidden_header(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade" | "te"
    ) || name.starts_with("grpc-")
}

/// One RBAC filter's verdict on a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RbacDecision<'r> {
    /// Whether the filter lets the request through.
    pub allowed: bool,
    /// The first policy that matched: the reason for an ALLOW filter's yes or a DENY filter's no. `None` when no
    /// policy matched.
    pub matched_policy: Option<&'r RbacPolicy>,
}

impl<'r> RbacDecision<'r> {
    /// The matched policy's name ("matched rule" in gRFC A59's audit context), empty when none matched.
    #[must_use]
    pub fn matched_policy_name(&self) -> &'r str {
        self.matched_policy.map_or("", |policy| &policy.name)
    }
}

impl Rbac {
    /// This filter's decision on `request`: ALLOW allows iff a policy matches, DENY denies iff a policy matches.
    ///
    /// ```
    /// use mesh_core::matcher::StringMatcher;
    /// use mesh_core::rbac::{Permission, Principal, Rbac, RbacAction, RbacPolicy, RbacRequest};
    ///
    /// let rules = Rbac::new(
    ///     RbacAction::Allow,
    ///     vec![RbacPolicy::new(
    ///         "greeter",
    ///         vec![Permission::UrlPath(StringMatcher::prefix("/helloworld.Greeter/"))],
    ///         vec![Principal::Any],
    ///     )],
    /// );
    /// let headers = http::HeaderMap::new();
    /// let hello = rules.evaluate(&RbacRequest::new("POST", "/helloworld.Greeter/SayHello", &headers));
    /// assert!(hello.allowed);
    /// assert_eq!(hello.matched_policy_name(), "greeter");
    /// assert!(!rules.evaluate(&RbacRequest::new("POST", "/admin.Admin/Drop", &headers)).allowed);
    /// ```
    #[must_use]
    pub fn evaluate<H: HeaderLookup + ?Sized>(
        &self,
        request: &RbacRequest<'_, H>,
    ) -> RbacDecision<'_> {
        let matched_policy = self.policies.iter().find(|policy| policy.matches(request));
        let matched = matched_policy.is_some();
        RbacDecision {
            allowed: match self.action {
                RbacAction::Allow => matched,
                RbacAction::Deny => !matched,
            },
            matched_policy,
        }
    }
}

impl RbacPolicy {
    /// Whether some permission and some principal match `request`.
    #[must_use]
    pub fn matches<H: HeaderLookup + ?Sized>(&self, request: &RbacRequest<'_, H>) -> bool {
        self.permissions.iter().any(|p| p.matches(request))
            && self.principals.iter().any(|p| p.matches(request))
    }
}

impl Permission {
    /// Whether this permission matches `request`.
    #[must_use]
    pub fn matches<H: HeaderLookup + ?Sized>(&self, request: &RbacRequest<'_, H>) -> bool {
        match self {
            Self::Any => true,
            Self::And(rules) => rules.iter().all(|rule| rule.matches(request)),
            Self::Or(rules) => rules.iter().any(|rule| rule.matches(request)),
            Self::Not(rule) => !rule.matches(request),
            Self::Header(matcher) => header_matches(matcher, request),
            Self::UrlPath(matcher) => matcher.matches(request.url_path()),
            Self::DestinationIp(range) => request
                .local_addr()
                .is_some_and(|addr| range_contains(range, addr.ip())),
            Self::DestinationPort(port) => request.local_addr().is_some_and(|a| a.port() == *port),
            // gRFC A41: the requested server name is "hard-coded as empty string".
            Self::RequestedServerName(matcher) => matcher.matches(""),
        }
    }
}

impl Principal {
    /// Whether this principal matches `request`.
    #[must_use]
    pub fn matches<H: HeaderLookup + ?Sized>(&self, request: &RbacRequest<'_, H>) -> bool {
        match self {
            Self::Any => true,
            Self::And(ids) => ids.iter().all(|id| id.matches(request)),
            Self::Or(ids) => ids.iter().any(|id| id.matches(request)),
            Self::Not(id) => !id.matches(request),
            Self::Authenticated(name) => {
                request
                    .connection()
                    .is_some_and(ConnectionInfo::is_authenticated)
                    && principal_name_matches(name.as_ref(), request.peer_certificate())
            }
            // gRFC A41: all three are the peer's address while the PROXY protocol and XFF are unsupported.
            Self::SourceIp(range) | Self::DirectRemoteIp(range) | Self::RemoteIp(range) => request
                .remote_ip()
                .is_some_and(|ip| range_contains(range, ip)),
            Self::Header(matcher) => header_matches(matcher, request),
            Self::UrlPath(matcher) => matcher.matches(request.url_path()),
        }
    }
}

/// Envoy's `AuthenticatedMatcher` on a TLS connection: no matcher accepts any peer; otherwise a URI SAN, a DNS SAN or
/// the subject must match, tried in that order. gRFC A41: a peer without a certificate is matched as the empty
/// string.
fn principal_name_matches(
    matcher: Option<&StringMatcher>,
    certificate: Option<&PeerCertificate>,
) -> bool {
    let Some(matcher) = matcher else {
        return true;
    };
    let Some(certificate) = certificate else {
        return matcher.matches("");
    };
    certificate.uri_sans.iter().any(|san| matcher.matches(san))
        || certificate.dns_sans.iter().any(|san| matcher.matches(san))
        || matcher.matches(&certificate.subject)
}

fn range_contains(range: &CidrRange, ip: IpAddr) -> bool {
    range.contains(ip.to_canonical())
}

/// Envoy's `HeaderMatcher` over RBAC's view of the request; the same rules as route matching
/// ([`HeaderMatcher::matches`]) except for which headers exist (see the [module docs](self)). A missing header fails
/// every value condition, inverted or not, unless `treat_missing_as_empty` is set.
fn header_matches<H: HeaderLookup + ?Sized>(
    matcher: &HeaderMatcher,
    request: &RbacRequest<'_, H>,
) -> bool {
    let value = request.header_value(&matcher.name);
    let matched = match &matcher.condition {
        HeaderMatch::Present(want_present) => {
            (matcher.treat_missing_as_empty || value.is_some()) == *want_present
        }
        HeaderMatch::String(string) => {
            let Some(value) = value.or(matcher
                .treat_missing_as_empty
                .then_some(Cow::Borrowed(&b""[..])))
            else {
                return false;
            };
            string.matches_bytes(&value)
        }
        HeaderMatch::Range { start, end } => {
            let Some(value) = value.or(matcher
                .treat_missing_as_empty
                .then_some(Cow::Borrowed(&b""[..])))
            else {
                return false;
            };
            std::str::from_utf8(&value)
                .ok()
                .and_then(|text| text.parse::<i64>().ok())
                .is_some_and(|number| *start <= number && number < *end)
        }
    };
    matched != matcher.invert
}
