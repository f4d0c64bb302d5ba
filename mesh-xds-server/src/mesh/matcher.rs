//! String and header matchers shared by routes, TLS SAN checks and RBAC rules.

use serde::{Deserialize, Serialize};

/// Envoy's `type.matcher.v3.StringMatcher`: exactly one of `exact`, `prefix`, `suffix`, `contains`, `regex` (RE2
/// syntax), optionally case-insensitive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StringMatch {
    /// The whole string equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The string starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The string ends with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// The string contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// The whole string matches this RE2 regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Compare ignoring ASCII case (not for `regex`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_case: bool,
}

impl StringMatch {
    /// Matches exactly `value`.
    #[must_use]
    pub fn exact(value: impl Into<String>) -> Self {
        Self {
            exact: Some(value.into()),
            ..Self::default()
        }
    }

    /// Matches strings starting with `value`.
    #[must_use]
    pub fn prefix(value: impl Into<String>) -> Self {
        Self {
            prefix: Some(value.into()),
            ..Self::default()
        }
    }

    /// Matches strings ending with `value`.
    #[must_use]
    pub fn suffix(value: impl Into<String>) -> Self {
        Self {
            suffix: Some(value.into()),
            ..Self::default()
        }
    }

    /// Matches strings containing `value`.
    #[must_use]
    pub fn contains(value: impl Into<String>) -> Self {
        Self {
            contains: Some(value.into()),
            ..Self::default()
        }
    }

    /// Matches strings fully matching the RE2 expression `value`.
    #[must_use]
    pub fn regex(value: impl Into<String>) -> Self {
        Self {
            regex: Some(value.into()),
            ..Self::default()
        }
    }

    /// The same matcher, ignoring case.
    #[must_use]
    pub fn ignoring_case(mut self) -> Self {
        self.ignore_case = true;
        self
    }

    /// How many of the five rules are set (valid when exactly one).
    pub(crate) fn rule_count(&self) -> usize {
        [
            &self.exact,
            &self.prefix,
            &self.suffix,
            &self.contains,
            &self.regex,
        ]
        .iter()
        .filter(|rule| rule.is_some())
        .count()
    }
}

/// An inclusive-exclusive integer range `[start, end)` for header range matching.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Int64Range {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

impl Int64Range {
    /// `[start, end)`.
    #[must_use]
    pub fn new(start: i64, end: i64) -> Self {
        Self { start, end }
    }
}

/// Envoy's `config.route.v3.HeaderMatcher` (gRFC A28): a header `name` and exactly one of `exact`, `prefix`,
/// `suffix`, `contains`, `regex`, `present`, `range`; `invert` negates the result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HeaderMatch {
    /// The header name (lower case, as on the wire).
    pub name: String,
    /// The value equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The value starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The value ends with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// The value contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// The value fully matches this RE2 expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// `true`: the header is present; `false`: it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// The value is an integer in `[start, end)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Int64Range>,
    /// Negate the match.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invert: bool,
    /// Compare ignoring ASCII case (for exact, prefix, suffix, contains).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_case: bool,
}

impl HeaderMatch {
    fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// `name` equals `value`.
    #[must_use]
    pub fn exact(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            exact: Some(value.into()),
            ..Self::named(name)
        }
    }

    /// `name` starts with `value`.
    #[must_use]
    pub fn prefix(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            prefix: Some(value.into()),
            ..Self::named(name)
        }
    }

    /// `name` ends with `value`.
    #[must_use]
    pub fn suffix(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            suffix: Some(value.into()),
            ..Self::named(name)
        }
    }

    /// `name` contains `value`.
    #[must_use]
    pub fn contains(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            contains: Some(value.into()),
            ..Self::named(name)
        }
    }

    /// `name` fully matches the RE2 expression `value`.
    #[must_use]
    pub fn regex(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            regex: Some(value.into()),
            ..Self::named(name)
        }
    }

    /// `name` is present (`true`) or absent (`false`).
    #[must_use]
    pub fn present(name: impl Into<String>, present: bool) -> Self {
        Self {
            present: Some(present),
            ..Self::named(name)
        }
    }

    /// `name` is an integer in `[start, end)`.
    #[must_use]
    pub fn range(name: impl Into<String>, start: i64, end: i64) -> Self {
        Self {
            range: Some(Int64Range { start, end }),
            ..Self::named(name)
        }
    }

    /// The negated matcher.
    #[must_use]
    pub fn inverted(mut self) -> Self {
        self.invert = !self.invert;
        self
    }

    /// The same matcher, ignoring case.
    #[must_use]
    pub fn ignoring_case(mut self) -> Self {
        self.ignore_case = true;
        self
    }

    pub(crate) fn rule_count(&self) -> usize {
        let strings = [
            &self.exact,
            &self.prefix,
            &self.suffix,
            &self.contains,
            &self.regex,
        ]
        .iter()
        .filter(|rule| rule.is_some())
        .count();
        strings + usize::from(self.present.is_some()) + usize::from(self.range.is_some())
    }
}
