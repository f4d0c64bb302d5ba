//! Virtual-host selection and route matching: which [`VirtualHost`] serves a request's authority, and which of its
//! [`Route`]s takes the request.
//!
//! What it solves:
//! - Domain matching with Envoy's precedence ([`RouteConfig::select_virtual_host`], [`domain_match`]) and the
//!   syntax check an xDS validator NACKs on ([`validate_domain`]).
//! - First-match-wins route lookup ([`VirtualHost::find_route`]) over path, header and runtime-fraction conditions,
//!   as gRFC A28 specifies it for gRPC and Envoy's `RouteMatch` does for HTTP.
//!
//! What it does not: translate or validate whole route configurations (duplicate domains across virtual hosts, more
//! than one `*`, unsupported matchers such as query parameters: that is mesh-xds-client's job), compile regexes
//! (done once when the model is built), or decide what headers a request has. Matching is allocation-free except
//! where a header has several values and they must be joined (see [`header_value`]).
//!
//! # What the caller provides
//!
//! - The **authority** exactly as the data plane sees it. gRFC A28 matches the target's authority ("the server name
//!   from URI (with scheme stripped off)"), and Envoy matches the `:authority`/`Host` header as received: in both, a
//!   port is part of the string (`foo.com:8080` does not match the domain `foo.com`, but matches `foo.com:8080`,
//!   `foo.*` or `*`). Callers that want Envoy's `ignore_port_in_host_matching` or `strip_any_host_port` behaviour strip
//!   the port before calling.
//! - The **path** without its query string (`http::Uri::path()`; for gRPC, `/package.Service/Method`). Envoy
//!   compares `path` and `safe_regex` against the path with the query removed.
//! - The **headers**, through [`HeaderLookup`]. Matching here follows Envoy: it sees the headers it is given. gRPC
//!   (gRFC A28) matches only application metadata and reports `content-type` as `application/grpc` whatever the wire
//!   carries (grpc-java and C-core hardcode that value). The gRPC request path wraps its headers in
//!   [`GrpcHeaders`] to get that view; plain HTTP routing passes the headers as they are. Header names ending in
//!   `-bin` are treated as absent in both views (gRFC A28: binary metadata is not matched).

use std::borrow::Cow;

use super::{
    HeaderLookup, HeaderMatch, HeaderMatcher, PathMatch, Route, RouteConfig, RouteMatch,
    VirtualHost,
};
use crate::rng::RandomSource;

/// How a domain pattern matched, from least to most specific (Envoy's `VirtualHost.domains` search order, reversed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DomainMatchKind {
    /// `*`: any authority.
    Universal,
    /// A prefix wildcard, `foo.*` or `foo-*`.
    Prefix,
    /// A suffix wildcard, `*.foo.com` or `*-bar.foo.com`.
    Suffix,
    /// The whole authority, ignoring ASCII case.
    Exact,
}

/// The rank of a domain match: compare two with `<`/`>` to find the more specific one.
///
/// Ordered by [`DomainMatchKind`] first (exact beats suffix beats prefix beats `*`), then by the length of the
/// pattern's literal part (Envoy: "the longest wildcards match first").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainMatch {
    /// How the pattern matched.
    pub kind: DomainMatchKind,
    /// The pattern's length without its `*` (zero for `*`).
    pub literal_len: usize,
}

/// A virtual-host domain that can never match, reported so the xDS client can NACK the route configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// The domain is the empty string.
    #[error("virtual host domain is empty")]
    Empty,
    /// A `*` somewhere other than the first or last character, or more than one `*`.
    #[error(
        "virtual host domain {pattern:?}: a wildcard '*' is only allowed as the whole domain, its first or its last character"
    )]
    MisplacedWildcard {
        /// The domain as configured.
        pattern: String,
    },
    /// A NUL, CR or LF byte, which Envoy rejects in domains (its `HTTP_HEADER_VALUE` rule).
    #[error("virtual host domain {pattern:?}: contains a NUL, CR or LF character")]
    InvalidCharacter {
        /// The domain as configured.
        pattern: String,
    },
}

/// A domain pattern split into its kind and literal part.
#[derive(Debug, Clone, Copy)]
enum DomainPattern<'p> {
    Universal,
    Prefix(&'p str),
    Suffix(&'p str),
    Exact(&'p str),
}

fn parse_domain(pattern: &str) -> Result<DomainPattern<'_>, DomainError> {
    if pattern.is_empty() {
        return Err(DomainError::Empty);
    }
    if pattern.bytes().any(|b| matches!(b, b'\0' | b'\r' | b'\n')) {
        return Err(DomainError::InvalidCharacter {
            pattern: pattern.to_owned(),
        });
    }
    if pattern == "*" {
        return Ok(DomainPattern::Universal);
    }
    // Envoy: wildcards are "in the suffix or prefix form" only; `*-bar.foo.com` and `foo-*` are allowed, the `*`
    // need not stand for a whole label.
    let (parsed, literal) = if let Some(literal) = pattern.strip_prefix('*') {
        (DomainPattern::Suffix(literal), literal)
    } else if let Some(literal) = pattern.strip_suffix('*') {
        (DomainPattern::Prefix(literal), literal)
    } else {
        (DomainPattern::Exact(pattern), pattern)
    };
    if literal.contains('*') {
        return Err(DomainError::MisplacedWildcard {
            pattern: pattern.to_owned(),
        });
    }
    Ok(parsed)
}

/// Checks that `pattern` is a domain Envoy's forms allow: an exact name, `*suffix`, `prefix*`, or `*`.
///
/// # Errors
/// [`DomainError`] when the pattern is empty, has a `*` in the middle or more than one, or contains NUL, CR or LF.
/// Such a pattern never matches in [`domain_match`].
pub fn validate_domain(pattern: &str) -> Result<(), DomainError> {
    parse_domain(pattern).map(|_| ())
}

/// How specifically `pattern` matches `authority`, or `None` when it does not (or is invalid, see
/// [`validate_domain`]).
///
/// Matching ignores ASCII case (Envoy lowercases both sides; gRPC compares case-insensitively). A wildcard stands for
/// at least one character (Envoy: "the wildcard will not match the empty string"), so `*.foo.com` matches
/// `a.foo.com` but not `.foo.com` or `foo.com`. The authority is compared as given, port included.
#[must_use]
pub fn domain_match(pattern: &str, authority: &str) -> Option<DomainMatch> {
    let authority = authority.as_bytes();
    let (kind, literal, matched) = match parse_domain(pattern).ok()? {
        DomainPattern::Universal => (DomainMatchKind::Universal, "", true),
        DomainPattern::Exact(literal) => (
            DomainMatchKind::Exact,
            literal,
            authority.eq_ignore_ascii_case(literal.as_bytes()),
        ),
        DomainPattern::Suffix(literal) => (
            DomainMatchKind::Suffix,
            literal,
            authority.len() > literal.len() && ends_with_ignore_case(authority, literal.as_bytes()),
        ),
        DomainPattern::Prefix(literal) => (
            DomainMatchKind::Prefix,
            literal,
            authority.len() > literal.len()
                && starts_with_ignore_case(authority, literal.as_bytes()),
        ),
    };
    matched.then_some(DomainMatch {
        kind,
        literal_len: literal.len(),
    })
}

fn starts_with_ignore_case(value: &[u8], prefix: &[u8]) -> bool {
    value
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn ends_with_ignore_case(value: &[u8], suffix: &[u8]) -> bool {
    value
        .len()
        .checked_sub(suffix.len())
        .and_then(|start| value.get(start..))
        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
}

impl RouteConfig {
    /// The virtual host whose domains most specifically match `authority` (gRFC A28, Envoy's domain search order):
    /// an exact domain, else the longest suffix wildcard, else the longest prefix wildcard, else `*`. Between equally
    /// specific matches the first configured virtual host wins. `None` when nothing matches (gRPC fails the call
    /// with UNAVAILABLE; Envoy answers 404).
    ///
    /// ```
    /// use mesh_core::route::{RouteConfig, VirtualHost};
    ///
    /// let config = RouteConfig::new(
    ///     "routes",
    ///     vec![
    ///         VirtualHost::new("fallback", &["*"], vec![]),
    ///         VirtualHost::new("wildcard", &["*.example.com"], vec![]),
    ///         VirtualHost::new("api", &["api.example.com"], vec![]),
    ///     ],
    /// );
    /// let name = |authority| config.select_virtual_host(authority).map(|v| v.name.to_string());
    /// assert_eq!(name("API.example.com").as_deref(), Some("api"));
    /// assert_eq!(name("www.example.com").as_deref(), Some("wildcard"));
    /// assert_eq!(name("example.org").as_deref(), Some("fallback"));
    /// ```
    #[must_use]
    pub fn select_virtual_host(&self, authority: &str) -> Option<&VirtualHost> {
        self.select_virtual_host_index(authority)
            .and_then(|index| self.virtual_hosts.get(index))
    }

    /// The position in [`RouteConfig::virtual_hosts`] of the virtual host [`RouteConfig::select_virtual_host`]
    /// returns.
    #[must_use]
    pub fn select_virtual_host_index(&self, authority: &str) -> Option<usize> {
        let mut best: Option<(DomainMatch, usize)> = None;
        for (index, vhost) in self.virtual_hosts.iter().enumerate() {
            let Some(rank) = vhost.best_domain_match(authority) else {
                continue;
            };
            if rank.kind == DomainMatchKind::Exact {
                // Nothing ranks above an exact match, and ties go to the first configured.
                return Some(index);
            }
            // Strictly greater: an equal rank later in the list does not displace the first.
            if best.is_none_or(|(best_rank, _)| rank > best_rank) {
                best = Some((rank, index));
            }
        }
        best.map(|(_, index)| index)
    }
}

impl VirtualHost {
    /// The most specific match among this virtual host's domains for `authority`, if any.
    #[must_use]
    pub fn best_domain_match(&self, authority: &str) -> Option<DomainMatch> {
        self.domains
            .iter()
            .filter_map(|domain| domain_match(domain, authority))
            .max()
    }

    /// The first route matching the request (gRFC A28: "the first match wins", as in Envoy), or `None` (gRPC fails
    /// the call with UNAVAILABLE).
    ///
    /// `path` excludes the query string; `rng` is drawn from only for a route with a runtime fraction whose path and
    /// headers already matched.
    pub fn find_route<H: HeaderLookup + ?Sized>(
        &self,
        path: &str,
        headers: &H,
        rng: &mut impl RandomSource,
    ) -> Option<&Route> {
        self.find_route_index(path, headers, rng)
            .and_then(|index| self.routes.get(index))
    }

    /// The position in [`VirtualHost::routes`] of the route [`VirtualHost::find_route`] returns.
    pub fn find_route_index<H: HeaderLookup + ?Sized>(
        &self,
        path: &str,
        headers: &H,
        rng: &mut impl RandomSource,
    ) -> Option<usize> {
        self.routes
            .iter()
            .position(|route| route.matcher.matches(path, headers, &mut *rng))
    }
}

impl RouteMatch {
    /// Whether the request matches: the path condition, every header condition, then the runtime fraction.
    ///
    /// The fraction is sampled last, so a request that fails on path or headers consumes no randomness and a
    /// seeded test sees the same draws whatever the route table in front of it. gRFC A28 takes the share per
    /// million (`runtime_fraction.default_value` scaled to 1M; `runtime_key` is ignored); a draw uniform over
    /// `0..1_000_000` below it matches, so 0% never matches and 100% always does.
    pub fn matches<H: HeaderLookup + ?Sized>(
        &self,
        path: &str,
        headers: &H,
        rng: &mut impl RandomSource,
    ) -> bool {
        self.matches_path(path)
            && self.headers.iter().all(|header| header.matches(headers))
            && self
                .runtime_fraction
                .is_none_or(|fraction| fraction.sample(rng))
    }

    /// Whether `path` (without query string) satisfies the path condition under this match's
    /// [`RouteMatch::case_sensitive`].
    #[must_use]
    pub fn matches_path(&self, path: &str) -> bool {
        self.path.matches(path, self.case_sensitive)
    }
}

impl PathMatch {
    /// Whether `path` satisfies this condition.
    ///
    /// Envoy `RouteMatch`: `prefix` and `path` honour `case_sensitive` (false compares ASCII case-insensitively);
    /// `safe_regex` must match the whole path and ignores `case_sensitive` (use `(?i)` in the pattern instead). An
    /// empty prefix matches every path.
    #[must_use]
    pub fn matches(&self, path: &str, case_sensitive: bool) -> bool {
        let path = path.as_bytes();
        match self {
            Self::Prefix(prefix) => path
                .get(..prefix.len())
                .is_some_and(|head| bytes_eq(head, prefix.as_bytes(), case_sensitive)),
            Self::Exact(exact) => bytes_eq(path, exact.as_bytes(), case_sensitive),
            Self::SafeRegex(regex) => regex.is_match(path),
        }
    }
}

fn bytes_eq(value: &[u8], pattern: &[u8], case_sensitive: bool) -> bool {
    if case_sensitive {
        value == pattern
    } else {
        value.eq_ignore_ascii_case(pattern)
    }
}

/// Whether `name` is a binary (`-bin`) metadata name, which route matching treats as absent (gRFC A28; grpc-go
/// removes such headers before matching, grpc-java and C-core report them missing).
fn is_binary_header(name: &str) -> bool {
    ends_with_ignore_case(name.as_bytes(), b"-bin")
}

/// The value of header `name` as route matching sees it: `None` when absent or a `-bin` header (gRFC A28), the value
/// itself when there is one, and every value joined with `,` when there are several (Envoy and gRPC both join; this is
/// the only case that allocates).
///
/// Hash policies (gRFC A42) use the same view of a header.
pub fn header_value<'h, H: HeaderLookup + ?Sized>(
    headers: &'h H,
    name: &str,
) -> Option<Cow<'h, [u8]>> {
    if is_binary_header(name) {
        return None;
    }
    let mut values = headers.values(name);
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

impl HeaderMatcher {
    /// Whether `headers` satisfy this condition (Envoy's `HeaderMatcher`, gRFC A28).
    ///
    /// - A header with several values is matched against the values joined with `,`; `-bin` headers are absent.
    /// - `Present(true)` holds when the header exists, `Present(false)` when it does not.
    /// - `Range` holds when the whole value is a base-10 `i64` (optional sign, no whitespace) in `start..end`.
    /// - `treat_missing_as_empty`: a missing header is matched as if present with the value `""` (so
    ///   `Present(false)` then fails and `Present(true)` holds).
    /// - `invert` flips the result, with one exception that follows Envoy's `HeaderUtility::matchHeaders` and gRPC
    ///   (grpc-go, grpc-java): a *missing* header fails every value condition (string, range) whether inverted or
    ///   not, unless `treat_missing_as_empty` is set (Envoy's `treat_missing_header_as_empty` docs use exactly this
    ///   example: an inverted range matcher does not match an absent header). Only the presence condition is
    ///   inverted for a missing header (`Present(true)` inverted matches it).
    pub fn matches<H: HeaderLookup + ?Sized>(&self, headers: &H) -> bool {
        let matched = match &self.condition {
            HeaderMatch::Present(want_present) => {
                let present = self.treat_missing_as_empty
                    || (!is_binary_header(&self.name)
                        && headers.values(&self.name).next().is_some());
                present == *want_present
            }
            HeaderMatch::String(_) | HeaderMatch::Range { .. } => {
                let value = match header_value(headers, &self.name) {
                    Some(value) => value,
                    None if self.treat_missing_as_empty => Cow::Borrowed(&b""[..]),
                    None => return false,
                };
                self.value_matches(&value)
            }
        };
        matched != self.invert
    }

    fn value_matches(&self, value: &[u8]) -> bool {
        match &self.condition {
            HeaderMatch::String(matcher) => matcher.matches_bytes(value),
            HeaderMatch::Range { start, end } => {
                parse_i64(value).is_some_and(|v| *start <= v && v < *end)
            }
            HeaderMatch::Present(want_present) => *want_present,
        }
    }
}

/// Envoy `range_match`: "an optional plus or minus sign followed by a sequence of digits"; anything else, including
/// whitespace, an empty value or an overflow, does not parse.
fn parse_i64(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// The `content-type` gRPC reports to route matching (gRFC A28 as implemented by grpc-java, grpc-go and C-core).
pub const GRPC_CONTENT_TYPE: &str = "application/grpc";

/// Request headers as gRPC's xDS routing sees them: `content-type` always reads [`GRPC_CONTENT_TYPE`], whatever the
/// request carries (`application/grpc+proto`, or nothing yet when routing runs before the transport sets it); every
/// other header passes through. Wrap a gRPC request's headers in this before matching routes.
///
/// ```
/// use mesh_core::route::{HeaderLookup, matching::GrpcHeaders};
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("content-type", http::HeaderValue::from_static("application/grpc+proto"));
/// let view = GrpcHeaders::new(&headers);
/// assert_eq!(view.values("content-type").collect::<Vec<_>>(), [b"application/grpc".as_slice()]);
/// ```
#[derive(Debug)]
pub struct GrpcHeaders<'h, H: ?Sized> {
    headers: &'h H,
}

impl<'h, H: ?Sized> GrpcHeaders<'h, H> {
    /// The gRPC view of `headers`.
    #[must_use]
    pub fn new(headers: &'h H) -> Self {
        Self { headers }
    }

    /// The wrapped headers.
    #[must_use]
    pub fn get_ref(&self) -> &'h H {
        self.headers
    }
}

impl<H: ?Sized> Clone for GrpcHeaders<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H: ?Sized> Copy for GrpcHeaders<'_, H> {}

impl<H: HeaderLookup + ?Sized> HeaderLookup for GrpcHeaders<'_, H> {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        let is_content_type = name.eq_ignore_ascii_case("content-type");
        let fixed: Option<&'a [u8]> = is_content_type.then_some(GRPC_CONTENT_TYPE.as_bytes());
        let headers: &'a H = self.headers;
        let passthrough = (!is_content_type).then(|| headers.values(name));
        fixed.into_iter().chain(passthrough.into_iter().flatten())
    }
}

#[cfg(test)]
mod tests;
