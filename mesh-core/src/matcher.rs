//! String and regex matchers shared by routes, header matchers, SAN matchers and RBAC.
//!
//! Envoy's `type.matcher.v3.StringMatcher` and `RegexMatcher`, reduced to what can be evaluated without allocation:
//! patterns are prepared once (lowercased for `ignore_case`, regexes compiled and anchored) so a match on the request
//! path is a plain byte comparison or one regex run.
//!
//! Not here: which header or SAN a matcher is applied to; that belongs to the caller ([`crate::route`],
//! [`crate::tls`], [`crate::rbac`]).

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// Upper bound on a compiled regex's size, so a hostile pattern from a control plane cannot exhaust memory. RE2,
/// which Envoy and gRPC use, bounds program size the same way.
pub const DEFAULT_REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A regex rejected at configuration time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regex {pattern:?}: {reason}")]
pub struct RegexError {
    /// The pattern as given.
    pub pattern: String,
    /// Why it was rejected.
    pub reason: String,
}

/// A "safe" regex (Envoy's `RegexMatcher` with the RE2 dialect): linear-time, compiled once, and matched against the
/// *whole* input, as Envoy and gRPC require (`safe_regex` is a full match, not a search).
#[derive(Clone)]
pub struct SafeRegex {
    pattern: Arc<str>,
    regex: regex::bytes::Regex,
}

impl SafeRegex {
    /// Compiles `pattern` as a full-match regex.
    ///
    /// # Errors
    /// [`RegexError`] when the pattern does not parse or exceeds [`DEFAULT_REGEX_SIZE_LIMIT`].
    pub fn new(pattern: &str) -> Result<Self, RegexError> {
        let anchored = format!("^(?:{pattern})$");
        let regex = regex::bytes::RegexBuilder::new(&anchored)
            .size_limit(DEFAULT_REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| RegexError {
                pattern: pattern.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            pattern: pattern.into(),
            regex,
        })
    }

    /// The pattern as configured (without the anchors added for full matching).
    #[must_use]
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `input` matches.
    #[must_use]
    pub fn is_match(&self, input: &[u8]) -> bool {
        self.regex.is_match(input)
    }

    /// Replaces every match of this regex within `input` by `substitution` (Envoy's `RegexMatchAndSubstitute`;
    /// `\1`-style groups are written `$1` here). Unlike [`SafeRegex::is_match`], this searches rather than requiring a
    /// whole-input match.
    #[must_use]
    pub fn replace_all(&self, input: &str, substitution: &str) -> String {
        // The anchored program cannot search; a second, unanchored compile is rare (hash policies with a rewrite) and
        // happens off the request path only when the pattern was accepted above, so it cannot fail here except on
        // size, in which case the input is returned unchanged.
        match regex::RegexBuilder::new(&self.pattern)
            .size_limit(DEFAULT_REGEX_SIZE_LIMIT)
            .build()
        {
            Ok(re) => re.replace_all(input, substitution).into_owned(),
            Err(_) => input.to_owned(),
        }
    }
}

impl fmt::Debug for SafeRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SafeRegex").field(&self.pattern).finish()
    }
}

impl PartialEq for SafeRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for SafeRegex {}

impl Serialize for SafeRegex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.pattern)
    }
}

/// What a [`StringMatcher`] compares against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StringMatch {
    /// The whole value equals the pattern.
    Exact(Arc<str>),
    /// The value starts with the pattern.
    Prefix(Arc<str>),
    /// The value ends with the pattern.
    Suffix(Arc<str>),
    /// The value contains the pattern.
    Contains(Arc<str>),
    /// The whole value matches the regex (`ignore_case` does not apply, as in Envoy).
    SafeRegex(SafeRegex),
}

/// Envoy's `StringMatcher`: one of exact, prefix, suffix, contains or a full-match regex, optionally ignoring ASCII
/// case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StringMatcher {
    kind: StringMatch,
    ignore_case: bool,
}

impl StringMatcher {
    /// A matcher; with `ignore_case`, literal patterns are compared case-insensitively (ASCII, as Envoy does).
    #[must_use]
    pub fn new(kind: StringMatch, ignore_case: bool) -> Self {
        // Lowercase once here so matching never allocates.
        let kind = if ignore_case {
            match kind {
                StringMatch::Exact(p) => StringMatch::Exact(p.to_ascii_lowercase().into()),
                StringMatch::Prefix(p) => StringMatch::Prefix(p.to_ascii_lowercase().into()),
                StringMatch::Suffix(p) => StringMatch::Suffix(p.to_ascii_lowercase().into()),
                StringMatch::Contains(p) => StringMatch::Contains(p.to_ascii_lowercase().into()),
                other @ StringMatch::SafeRegex(_) => other,
            }
        } else {
            kind
        };
        Self { kind, ignore_case }
    }

    /// Exact, case-sensitive match.
    #[must_use]
    pub fn exact(value: &str) -> Self {
        Self::new(StringMatch::Exact(value.into()), false)
    }

    /// Case-sensitive prefix match.
    #[must_use]
    pub fn prefix(value: &str) -> Self {
        Self::new(StringMatch::Prefix(value.into()), false)
    }

    /// Case-sensitive suffix match.
    #[must_use]
    pub fn suffix(value: &str) -> Self {
        Self::new(StringMatch::Suffix(value.into()), false)
    }

    /// Case-sensitive substring match.
    #[must_use]
    pub fn contains(value: &str) -> Self {
        Self::new(StringMatch::Contains(value.into()), false)
    }

    /// Full-match regex.
    ///
    /// # Errors
    /// [`RegexError`] when the pattern is invalid.
    pub fn regex(pattern: &str) -> Result<Self, RegexError> {
        Ok(Self::new(
            StringMatch::SafeRegex(SafeRegex::new(pattern)?),
            false,
        ))
    }

    /// What this matcher compares against (literal patterns are lowercased when [`Self::ignore_case`] is set).
    #[must_use]
    pub fn kind(&self) -> &StringMatch {
        &self.kind
    }

    /// Whether literal comparisons ignore ASCII case.
    #[must_use]
    pub fn ignore_case(&self) -> bool {
        self.ignore_case
    }

    /// Whether `value` matches.
    #[must_use]
    pub fn matches(&self, value: &str) -> bool {
        self.matches_bytes(value.as_bytes())
    }

    /// Whether `value` (e.g. a header value, which need not be UTF-8) matches.
    #[must_use]
    pub fn matches_bytes(&self, value: &[u8]) -> bool {
        match &self.kind {
            StringMatch::Exact(p) => eq_bytes(value, p.as_bytes(), self.ignore_case),
            StringMatch::Prefix(p) => value
                .get(..p.len())
                .is_some_and(|head| eq_bytes(head, p.as_bytes(), self.ignore_case)),
            StringMatch::Suffix(p) => value
                .len()
                .checked_sub(p.len())
                .and_then(|start| value.get(start..))
                .is_some_and(|tail| eq_bytes(tail, p.as_bytes(), self.ignore_case)),
            StringMatch::Contains(p) => contains_bytes(value, p.as_bytes(), self.ignore_case),
            StringMatch::SafeRegex(re) => re.is_match(value),
        }
    }
}

/// `value == pattern`, where `pattern` is already lowercase when `ignore_case` is set.
fn eq_bytes(value: &[u8], pattern: &[u8], ignore_case: bool) -> bool {
    if ignore_case {
        value.len() == pattern.len()
            && value
                .iter()
                .zip(pattern)
                .all(|(v, p)| v.to_ascii_lowercase() == *p)
    } else {
        value == pattern
    }
}

fn contains_bytes(value: &[u8], pattern: &[u8], ignore_case: bool) -> bool {
    if pattern.is_empty() {
        return true;
    }
    value
        .windows(pattern.len())
        .any(|window| eq_bytes(window, pattern, ignore_case))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn literal_kinds_match_as_envoy_documents() {
        assert!(StringMatcher::exact("abc").matches("abc"));
        assert!(!StringMatcher::exact("abc").matches("abcd"));
        assert!(StringMatcher::prefix("/svc.").matches("/svc.Method"));
        assert!(!StringMatcher::prefix("/svc.").matches("/sv"));
        assert!(StringMatcher::suffix(".com").matches("example.com"));
        assert!(!StringMatcher::suffix(".com").matches("com"));
        assert!(StringMatcher::contains("mid").matches("amidst"));
        assert!(StringMatcher::contains("").matches(""));
        assert!(!StringMatcher::contains("xyz").matches("xy"));
    }

    #[test]
    fn ignore_case_applies_to_literals_only() {
        let m = StringMatcher::new(StringMatch::Prefix("/Greeter/".into()), true);
        assert!(m.matches("/greeter/SayHello"));
        assert!(m.matches("/GREETER/x"));
        let exact = StringMatcher::new(StringMatch::Exact("ABC".into()), true);
        assert!(exact.matches("abc") && exact.matches("aBc"));
        let re = StringMatcher::new(StringMatch::SafeRegex(SafeRegex::new("abc").unwrap()), true);
        assert!(re.matches("abc"));
        assert!(!re.matches("ABC"));
    }

    #[test]
    fn regex_is_a_full_match() {
        let re = SafeRegex::new("a+b").unwrap();
        assert!(re.is_match(b"aaab"));
        assert!(!re.is_match(b"xaab"));
        assert!(!re.is_match(b"aabx"));
        // Alternation must not escape the anchors.
        let alt = SafeRegex::new("a|b").unwrap();
        assert!(!alt.is_match(b"ab"));
    }

    #[test]
    fn bad_regex_names_the_pattern() {
        let err = SafeRegex::new("a(").unwrap_err();
        assert_eq!(err.pattern, "a(");
        assert!(err.to_string().contains("\"a(\""));
    }

    #[test]
    fn non_utf8_values_match_literals() {
        assert!(StringMatcher::prefix("ab").matches_bytes(b"ab\xff"));
        assert!(!StringMatcher::exact("ab").matches_bytes(b"ab\xff"));
    }

    #[test]
    fn replace_all_rewrites_matches() {
        let re = SafeRegex::new("[0-9]+").unwrap();
        assert_eq!(re.replace_all("user-42-x-7", "N"), "user-N-x-N");
    }
}
