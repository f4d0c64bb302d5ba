//! SPIFFE identities: [`TrustDomain`] and [`SpiffeId`].
//!
//! What it solves: turning untrusted strings (from xDS config, certificate SANs, RBAC policies)
//! into identities that are known to follow the [SPIFFE ID specification][spec], so the rest of
//! the mesh can compare and match them without re-checking. Parsing is strict: anything the
//! specification forbids is rejected with a precise [`SpiffeIdError`] rather than normalised
//! (an uppercase trust domain is an error, not lowercased), and no input can make it panic.
//!
//! What it does not do: it does not verify certificates or SVIDs, check signatures, or decide
//! whether a peer may claim an identity. That is the TLS layer's job; this module only gives it
//! a well-formed name to compare against.
//!
//! ```
//! use mesh_core::identity::{SpiffeId, TrustDomain};
//!
//! # fn main() -> Result<(), mesh_core::identity::SpiffeIdError> {
//! let id: SpiffeId = "spiffe://example.org/ns/default/sa/greeter".parse()?;
//! let domain = TrustDomain::new("example.org")?;
//! assert!(id.is_member_of(&domain));
//! assert_eq!(id.path(), "/ns/default/sa/greeter");
//! assert_eq!(id.segments().collect::<Vec<_>>(), ["ns", "default", "sa", "greeter"]);
//! assert!(SpiffeId::parse("spiffe://Example.org/ns/default").is_err());
//! # Ok(())
//! # }
//! ```
//!
//! [spec]: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::iter::FusedIterator;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The prefix every SPIFFE ID starts with: the `spiffe` scheme and the `://` separator.
pub const SPIFFE_ID_PREFIX: &str = "spiffe://";

/// Maximum length of a whole SPIFFE ID in bytes (SPIFFE-ID §2.3).
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

/// Maximum length of a trust domain name in bytes (SPIFFE-ID §2.3, after RFC 3986's host limit).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// Why a string is not a valid SPIFFE ID, trust domain or path.
///
/// `position` fields are byte offsets into the string that was validated: the whole ID for
/// [`SpiffeId::parse`] and [`TrustDomain::from_id_or_name`], the bare name for
/// [`TrustDomain::new`], and the path for [`SpiffeId::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// The input is the empty string.
    #[error("SPIFFE ID is empty")]
    Empty,
    /// The ID is longer than [`MAX_SPIFFE_ID_LEN`].
    #[error("SPIFFE ID is {len} bytes long; the maximum is {MAX_SPIFFE_ID_LEN}")]
    TooLong {
        /// Length of the ID in bytes.
        len: usize,
    },
    /// The ID does not start with exactly `spiffe://`.
    #[error("SPIFFE ID must start with the lowercase scheme and separator `spiffe://`")]
    WrongScheme,
    /// The trust domain name is empty.
    #[error("trust domain name is missing")]
    MissingTrustDomain,
    /// The trust domain name is longer than [`MAX_TRUST_DOMAIN_LEN`].
    #[error("trust domain is {len} bytes long; the maximum is {MAX_TRUST_DOMAIN_LEN}")]
    TrustDomainTooLong {
        /// Length of the trust domain name in bytes.
        len: usize,
    },
    /// The trust domain contains a character outside `[a-z0-9._-]`.
    #[error(
        "trust domain has invalid character {ch:?} at byte {position}: \
         only lowercase letters, digits, '.', '-' and '_' are allowed"
    )]
    TrustDomainBadChar {
        /// The offending character.
        ch: char,
        /// Byte offset of the character.
        position: usize,
    },
    /// The authority has a `:` port delimiter.
    #[error("trust domain has a port (':' at byte {position}), which SPIFFE IDs must not have")]
    HasPort {
        /// Byte offset of the `:`.
        position: usize,
    },
    /// The authority has a `userinfo@` part.
    #[error("trust domain has user info ('@' at byte {position}), which SPIFFE IDs must not have")]
    HasUserInfo {
        /// Byte offset of the `@`.
        position: usize,
    },
    /// A trust domain was expected but the ID has a path.
    #[error("expected a trust domain but the SPIFFE ID has a path starting at byte {position}")]
    TrustDomainHasPath {
        /// Byte offset of the path's leading `/`.
        position: usize,
    },
    /// A path given on its own is neither empty nor starts with `/`.
    #[error("path must be empty or start with '/'")]
    RelativePath,
    /// The path has an empty segment (`//`).
    #[error("path has an empty segment (\"//\") at byte {position}")]
    EmptySegment {
        /// Byte offset of the second `/` of the pair.
        position: usize,
    },
    /// The path has a `.` or `..` segment.
    #[error("path has a relative segment ('.' or '..') at byte {position}")]
    DotSegment {
        /// Byte offset of the segment.
        position: usize,
    },
    /// The path ends with `/`.
    #[error("path has a trailing '/' at byte {position}")]
    TrailingSlash {
        /// Byte offset of the trailing `/`.
        position: usize,
    },
    /// A path segment contains a character outside `[a-zA-Z0-9._-]`.
    #[error(
        "path has invalid character {ch:?} at byte {position}: \
         only letters, digits, '.', '-' and '_' are allowed in a segment"
    )]
    PathBadChar {
        /// The offending character.
        ch: char,
        /// Byte offset of the character.
        position: usize,
    },
    /// The ID contains a `%`: percent-encoding is not allowed.
    #[error("percent-encoded character ('%' at byte {position}) is not allowed")]
    PercentEncoded {
        /// Byte offset of the `%`.
        position: usize,
    },
    /// The ID has a query component.
    #[error("SPIFFE ID has a query ('?' at byte {position}), which is not allowed")]
    HasQuery {
        /// Byte offset of the `?`.
        position: usize,
    },
    /// The ID has a fragment component.
    #[error("SPIFFE ID has a fragment ('#' at byte {position}), which is not allowed")]
    HasFragment {
        /// Byte offset of the `#`.
        position: usize,
    },
}

impl SpiffeIdError {
    /// The byte offset this error points at, if it points at one.
    pub fn position(&self) -> Option<usize> {
        match self {
            Self::TrustDomainBadChar { position, .. }
            | Self::HasPort { position }
            | Self::HasUserInfo { position }
            | Self::TrustDomainHasPath { position }
            | Self::EmptySegment { position }
            | Self::DotSegment { position }
            | Self::TrailingSlash { position }
            | Self::PathBadChar { position, .. }
            | Self::PercentEncoded { position }
            | Self::HasQuery { position }
            | Self::HasFragment { position } => Some(*position),
            Self::Empty
            | Self::TooLong { .. }
            | Self::WrongScheme
            | Self::MissingTrustDomain
            | Self::TrustDomainTooLong { .. }
            | Self::RelativePath => None,
        }
    }
}

/// A SPIFFE trust domain name such as `example.org` (SPIFFE-ID §2.1).
///
/// Cheap to clone (one reference-count increment). Ordered, hashed and compared by name.
#[derive(Clone)]
pub struct TrustDomain {
    /// Starts with [`SPIFFE_ID_PREFIX`]; the name is `full[prefix..end]`. A trust domain taken
    /// from a [`SpiffeId`] shares that ID's string, so `full` may continue with a path.
    full: Arc<str>,
    end: usize,
}

impl TrustDomain {
    /// Validates a bare trust domain name such as `example.org`.
    pub fn new(name: &str) -> Result<Self, SpiffeIdError> {
        check_trust_domain(name, 0)?;
        let full: Arc<str> = format!("{SPIFFE_ID_PREFIX}{name}").into();
        let end = full.len();
        Ok(Self { full, end })
    }

    /// Accepts either a bare name (`example.org`) or the trust domain's own SPIFFE ID
    /// (`spiffe://example.org`). An ID with a path is rejected rather than truncated, so a
    /// misplaced workload ID in a trust-domain setting is reported, not silently widened.
    pub fn from_id_or_name(id_or_name: &str) -> Result<Self, SpiffeIdError> {
        if !id_or_name.contains("://") {
            return Self::new(id_or_name);
        }
        let id = SpiffeId::parse(id_or_name)?;
        if id.path().is_empty() {
            Ok(id.trust_domain)
        } else {
            Err(SpiffeIdError::TrustDomainHasPath {
                position: id.trust_domain.end,
            })
        }
    }

    /// The bare name, e.g. `example.org`.
    pub fn as_str(&self) -> &str {
        self.full
            .get(SPIFFE_ID_PREFIX.len()..self.end)
            .unwrap_or("")
    }

    /// The trust domain's SPIFFE ID, e.g. `spiffe://example.org`.
    pub fn id_string(&self) -> String {
        self.full.get(..self.end).unwrap_or("").to_owned()
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TrustDomain").field(&self.as_str()).finish()
    }
}

impl PartialEq for TrustDomain {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TrustDomain {}

impl Hash for TrustDomain {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for TrustDomain {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TrustDomain {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeIdError;

    /// Same as [`TrustDomain::new`]: a bare name only.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::new(name)
    }
}

/// A validated SPIFFE ID such as `spiffe://example.org/ns/default/sa/greeter` (SPIFFE-ID §2).
///
/// The canonical string is stored once and shared, so cloning is one reference-count increment
/// and [`as_str`](Self::as_str) does not allocate. Equality and hashing are those of the string;
/// ordering is by trust domain, then path, so IDs of one trust domain sort together.
#[derive(Clone)]
pub struct SpiffeId {
    /// Its `full` is the whole ID and its `end` is where the path starts.
    trust_domain: TrustDomain,
}

impl SpiffeId {
    /// Parses and validates a SPIFFE ID.
    pub fn parse(id: &str) -> Result<Self, SpiffeIdError> {
        let path_start = check_id(id)?;
        Ok(Self {
            trust_domain: TrustDomain {
                full: id.into(),
                end: path_start,
            },
        })
    }

    /// Builds an ID from a trust domain and a path that is empty or of the form `/a/b`.
    pub fn new(trust_domain: &TrustDomain, path: &str) -> Result<Self, SpiffeIdError> {
        let domain_id = trust_domain.full.get(..trust_domain.end).unwrap_or("");
        let len = domain_id.len() + path.len();
        if len > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong { len });
        }
        check_path(path, 0)?;
        let mut full = String::with_capacity(len);
        full.push_str(domain_id);
        full.push_str(path);
        Ok(Self {
            trust_domain: TrustDomain {
                full: full.into(),
                end: domain_id.len(),
            },
        })
    }

    /// The trust domain this ID belongs to.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The path, empty or starting with `/`, e.g. `/ns/default/sa/greeter`.
    pub fn path(&self) -> &str {
        self.trust_domain
            .full
            .get(self.trust_domain.end..)
            .unwrap_or("")
    }

    /// The path's segments, e.g. `ns`, `default`, `sa`, `greeter`; none for an empty path.
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            inner: self.path().strip_prefix('/').map(|rest| rest.split('/')),
        }
    }

    /// Whether this ID belongs to `trust_domain`.
    pub fn is_member_of(&self, trust_domain: &TrustDomain) -> bool {
        self.trust_domain == *trust_domain
    }

    /// The whole ID, e.g. `spiffe://example.org/ns/default/sa/greeter`.
    pub fn as_str(&self) -> &str {
        &self.trust_domain.full
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SpiffeId").field(&self.as_str()).finish()
    }
}

impl PartialEq for SpiffeId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SpiffeId {}

impl Hash for SpiffeId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for SpiffeId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SpiffeId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.trust_domain
            .cmp(&other.trust_domain)
            .then_with(|| self.path().cmp(other.path()))
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        Self::parse(id)
    }
}

/// Iterator over the path segments of a [`SpiffeId`], from [`SpiffeId::segments`].
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    inner: Option<std::str::Split<'a, char>>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.inner.as_mut()?.next()
    }
}

impl DoubleEndedIterator for Segments<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.as_mut()?.next_back()
    }
}

impl FusedIterator for Segments<'_> {}

impl Serialize for TrustDomain {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TrustDomain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseVisitor::<Self>::new("a SPIFFE trust domain name"))
    }
}

impl Serialize for SpiffeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SpiffeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseVisitor::<Self>::new("a SPIFFE ID string"))
    }
}

/// Deserializes a string through `T::from_str`, so deserialized values are validated.
struct ParseVisitor<T> {
    expecting: &'static str,
    target: PhantomData<fn() -> T>,
}

impl<T> ParseVisitor<T> {
    fn new(expecting: &'static str) -> Self {
        Self {
            expecting,
            target: PhantomData,
        }
    }
}

impl<T: FromStr<Err = SpiffeIdError>> serde::de::Visitor<'_> for ParseVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<T, E> {
        value.parse().map_err(E::custom)
    }
}

/// Validates a whole ID and returns the byte offset where its path starts.
fn check_id(id: &str) -> Result<usize, SpiffeIdError> {
    if id.is_empty() {
        return Err(SpiffeIdError::Empty);
    }
    // SPIFFE-ID §2.3: at most 2048 bytes, all components included.
    if id.len() > MAX_SPIFFE_ID_LEN {
        return Err(SpiffeIdError::TooLong { len: id.len() });
    }
    // SPIFFE-ID §2: the scheme MUST be `spiffe`. §2.4 calls it case-insensitive, but §2.1 makes
    // the trust domain lowercase-only; we accept only the canonical lowercase form throughout.
    let rest = id
        .strip_prefix(SPIFFE_ID_PREFIX)
        .ok_or(SpiffeIdError::WrongScheme)?;
    // RFC 3986 §3.2: the authority ends at the first '/', '?' or '#'.
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at_checked(authority_len).unwrap_or((rest, ""));
    let path_start = SPIFFE_ID_PREFIX.len() + authority.len();
    check_trust_domain(authority, SPIFFE_ID_PREFIX.len())?;
    check_path(path, path_start)?;
    Ok(path_start)
}

/// Validates a trust domain name (SPIFFE-ID §2.1); `base` is its offset in the input.
fn check_trust_domain(name: &str, base: usize) -> Result<(), SpiffeIdError> {
    if name.is_empty() {
        return Err(SpiffeIdError::MissingTrustDomain);
    }
    // §2.1: userinfo and port MUST be empty. '@' is checked first so `user:pass@host` is
    // reported as user info, not as a port.
    if let Some(i) = name.find('@') {
        return Err(SpiffeIdError::HasUserInfo { position: base + i });
    }
    // §2.3: RFC 3986 limits the host to 255 bytes.
    if name.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdError::TrustDomainTooLong { len: name.len() });
    }
    for (i, ch) in name.char_indices() {
        let position = base + i;
        match ch {
            'a'..='z' | '0'..='9' | '.' | '-' | '_' => {}
            // §2.1: the ':' delimiter MUST NOT be present.
            ':' => return Err(SpiffeIdError::HasPort { position }),
            // §2.1: the host MUST NOT contain percent-encoded characters.
            '%' => return Err(SpiffeIdError::PercentEncoded { position }),
            // §2.1: lowercase, [a-z0-9.-_] only. IPv6 literals (`[::1]`) fail here on '['.
            _ => return Err(SpiffeIdError::TrustDomainBadChar { ch, position }),
        }
    }
    Ok(())
}

/// Validates a path (SPIFFE-ID §2.2); `base` is its offset in the input.
fn check_path(path: &str, base: usize) -> Result<(), SpiffeIdError> {
    // §2: no query or fragment. RFC 3986 §3.3: the path ends at the first '?' or '#', so these
    // are reported before anything that follows them.
    if let Some(i) = path.find(['?', '#']) {
        let position = base + i;
        return Err(if path.as_bytes().get(i) == Some(&b'?') {
            SpiffeIdError::HasQuery { position }
        } else {
            SpiffeIdError::HasFragment { position }
        });
    }
    // §2.2: MUST NOT include percent-encoded characters.
    if let Some(i) = path.find('%') {
        return Err(SpiffeIdError::PercentEncoded { position: base + i });
    }
    if path.is_empty() {
        return Ok(());
    }
    let rest = path.strip_prefix('/').ok_or(SpiffeIdError::RelativePath)?;
    let mut segment_start = base + 1;
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        // §2.2: no empty segments and no trailing '/'.
        if segment.is_empty() {
            return Err(if segments.peek().is_none() {
                SpiffeIdError::TrailingSlash {
                    position: segment_start - 1,
                }
            } else {
                SpiffeIdError::EmptySegment {
                    position: segment_start,
                }
            });
        }
        // §2.2: no relative path modifiers.
        if segment == "." || segment == ".." {
            return Err(SpiffeIdError::DotSegment {
                position: segment_start,
            });
        }
        // §2.2: segments contain only [a-zA-Z0-9.-_].
        if let Some((i, ch)) = segment.char_indices().find(|&(_, ch)| !is_path_char(ch)) {
            return Err(SpiffeIdError::PathBadChar {
                ch,
                position: segment_start + i,
            });
        }
        segment_start += segment.len() + 1;
    }
    Ok(())
}

fn is_path_char(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_')
}

#[cfg(test)]
mod tests;
