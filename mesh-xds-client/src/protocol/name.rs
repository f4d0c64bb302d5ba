//! Resource names: old-style names and `xdstp://` names (gRFC A47, xRFC TP1).

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::resource::ResourceKind;

use super::types::WatchError;

const XDSTP_SCHEME: &str = "xdstp://";

/// Where a subscription's requests go.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum AuthorityKey {
    /// Old-style names: the top-level `xds_servers` (gRFC A47).
    Default,
    /// `xdstp://{authority}/...` names (the empty string for `xdstp:///...`).
    Named(String),
}

impl AuthorityKey {
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Default => None,
            Self::Named(name) => Some(name),
        }
    }
}

/// The canonical form of a resource name.
///
/// Old-style names are returned unchanged. For `xdstp://` names the context parameters (the query) are sorted by
/// key, and a repeated key keeps its last value (gRFC A47: "New-style resource names used as cache keys must be
/// normalized"; xRFC TP1 normalization). [`XdsState`](super::XdsState) normalizes every name it receives, from
/// callers and from servers, and reports events under the normalized name, so callers comparing names should
/// normalize theirs with this function too.
#[must_use]
pub fn normalize_name(name: &str) -> Cow<'_, str> {
    if !name.starts_with(XDSTP_SCHEME) {
        return Cow::Borrowed(name);
    }
    let Some((base, query)) = name.split_once('?') else {
        return Cow::Borrowed(name);
    };
    let mut params: BTreeMap<&str, &str> = BTreeMap::new();
    for param in query.split('&').filter(|param| !param.is_empty()) {
        let key = param.split_once('=').map_or(param, |(key, _)| key);
        params.insert(key, param);
    }
    if params.is_empty() {
        return Cow::Owned(base.to_owned());
    }
    let sorted: Vec<&str> = params.into_values().collect();
    let normalized = format!("{base}?{}", sorted.join("&"));
    if normalized == name {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(normalized)
    }
}

/// The authority a (normalized) name belongs to, checking an `xdstp://` name's resource type against `kind`.
pub(super) fn authority_of(kind: ResourceKind, name: &str) -> Result<AuthorityKey, WatchError> {
    let Some(rest) = name.strip_prefix(XDSTP_SCHEME) else {
        return Ok(AuthorityKey::Default);
    };
    let malformed = |problem: &'static str| WatchError::InvalidName {
        name: name.to_owned(),
        problem,
    };
    let (authority, path) = rest
        .split_once('/')
        .ok_or_else(|| malformed("no resource type after the authority"))?;
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    let (resource_type, id) = path
        .split_once('/')
        .ok_or_else(|| malformed("no resource id after the resource type"))?;
    if id.is_empty() {
        return Err(malformed("empty resource id"));
    }
    // xRFC TP1: the path starts with the resource type, which must be the type being subscribed.
    if resource_type != kind.xdstp_type() {
        return Err(WatchError::WrongType {
            name: name.to_owned(),
            expected: kind.xdstp_type(),
        });
    }
    Ok(AuthorityKey::Named(authority.to_owned()))
}
