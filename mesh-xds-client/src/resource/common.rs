//! Conversions shared by several resource types: durations, fractional percents, string/regex/header matchers, CIDR
//! ranges, and the [`Errors`] accumulator that turns nested validation failures into `field.path: problem` strings.
//!
//! Each conversion returns `Err(String)` describing the problem *relative to the value it was given*; the caller
//! decides the field path (usually through [`Errors::at`]), so the same helper serves routes, RBAC and clusters.
//!
//! Not here: anything resource-specific (which fields are required where); that stays with each resource's module.

use std::net::IpAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::CidrRange as PbCidrRange;
use envoy_types::pb::envoy::config::route::v3::HeaderMatcher as PbHeaderMatcher;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher as PbRegexMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher as PbStringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::v3::FractionalPercent as PbFractionalPercent;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use mesh_core::fraction::{Denominator, FractionalPercent};
use mesh_core::matcher::{SafeRegex, StringMatch, StringMatcher};
use mesh_core::rbac::CidrRange;
use mesh_core::route::{HeaderMatch, HeaderMatcher};
use prost::Message;

/// The largest `seconds` a `google.protobuf.Duration` may carry (10,000 years, per `duration.proto`).
const MAX_DURATION_SECONDS: i64 = 315_576_000_000;

/// Collects validation problems as `field.path: problem`, with a stack of path segments so nested validators need
/// not know where they are called from.
///
/// ```text
/// let mut errors = Errors::new();
/// errors.at("virtual_hosts[0]", |e| e.at("routes[3]", |e| e.push("route.weighted_clusters", "total weight 0")));
/// // -> "virtual_hosts[0].routes[3].route.weighted_clusters: total weight 0"
/// ```
#[derive(Debug, Default)]
pub(crate) struct Errors {
    path: Vec<String>,
    problems: Vec<String>,
}

impl Errors {
    /// An empty accumulator at the resource's root.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records `problem` at `field` below the current path (`field` may be empty for the current path itself).
    pub(crate) fn push(&mut self, field: &str, problem: impl std::fmt::Display) {
        let path = self.path_to(field);
        if path.is_empty() {
            self.problems.push(problem.to_string());
        } else {
            self.problems.push(format!("{path}: {problem}"));
        }
    }

    /// Records the error of `result` at `field`, returning its value when there was none.
    pub(crate) fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(problem) => {
                self.push(field, problem);
                None
            }
        }
    }

    /// Runs `f` with `segment` appended to the path (`routes[3]`, `route`, ...).
    pub(crate) fn at<R>(&mut self, segment: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push(segment.to_owned());
        let result = f(self);
        self.path.pop();
        result
    }

    /// The current path joined with `field`. Segments are separated by `.`, except index segments (`[3]`,
    /// `["name"]`), which attach to the segment before them.
    pub(crate) fn path_to(&self, field: &str) -> String {
        let mut path = String::new();
        for segment in self.path.iter().map(String::as_str).chain([field]) {
            if segment.is_empty() {
                continue;
            }
            if !path.is_empty() && !segment.starts_with('[') {
                path.push('.');
            }
            path.push_str(segment);
        }
        path
    }

    /// How many problems were recorded so far (to tell whether a nested validation added any).
    pub(crate) fn len(&self) -> usize {
        self.problems.len()
    }

    /// The problems, in the order found.
    #[cfg(test)]
    pub(crate) fn into_problems(self) -> Vec<String> {
        self.problems
    }

    /// `Ok(value)` when no problem was recorded, else every problem.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, Vec<String>> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(self.problems)
        }
    }
}

/// `google.protobuf.Duration` to a std `Duration`.
///
/// `duration.proto`: seconds within ±315,576,000,000 and nanos within ±999,999,999 with the sign of seconds. Negative
/// durations have no meaning for any timeout or interval we read, so they are rejected.
pub(crate) fn duration(value: &PbDuration) -> Result<Duration, String> {
    if !(-MAX_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&value.seconds) {
        return Err(format!("seconds {} out of range", value.seconds));
    }
    if !(-999_999_999..=999_999_999).contains(&value.nanos) {
        return Err(format!("nanos {} out of range", value.nanos));
    }
    if value.seconds < 0 || value.nanos < 0 {
        return Err(format!(
            "negative duration ({}s {}ns)",
            value.seconds, value.nanos
        ));
    }
    let seconds = u64::try_from(value.seconds).map_err(|_| "seconds out of range".to_owned())?;
    let nanos = u32::try_from(value.nanos).map_err(|_| "nanos out of range".to_owned())?;
    Ok(Duration::new(seconds, nanos))
}

/// `type.v3.FractionalPercent` to the model. An unknown denominator enum value is rejected (Envoy's
/// `enum.defined_only`); a numerator above the denominator is kept and means "always" (Envoy clamps it).
// By reference like every other conversion here, so callers pass what they hold (`Option<&T>` fields).
#[allow(clippy::trivially_copy_pass_by_ref)]
pub(crate) fn fractional_percent(value: &PbFractionalPercent) -> Result<FractionalPercent, String> {
    let denominator = match DenominatorType::try_from(value.denominator) {
        Ok(DenominatorType::Hundred) => Denominator::Hundred,
        Ok(DenominatorType::TenThousand) => Denominator::TenThousand,
        Ok(DenominatorType::Million) => Denominator::Million,
        Err(_) => return Err(format!("unknown denominator {}", value.denominator)),
    };
    Ok(FractionalPercent::new(value.numerator, denominator))
}

/// `type.matcher.v3.RegexMatcher` to a compiled full-match regex.
///
/// gRFC A28/A63: the regex is RE2 syntax and must compile; the deprecated `google_re2.max_program_size` is ignored
/// (the engine bounds program size itself, see `mesh_core::matcher::DEFAULT_REGEX_SIZE_LIMIT`). An empty regex is
/// rejected (Envoy: `regex` has `min_len: 1`).
pub(crate) fn regex_matcher(value: &PbRegexMatcher) -> Result<SafeRegex, String> {
    if value.regex.is_empty() {
        return Err("regex is empty".to_owned());
    }
    SafeRegex::new(&value.regex).map_err(|e| e.to_string())
}

/// `type.matcher.v3.StringMatcher` to the model.
///
/// Envoy's `string.proto` constraints: `prefix`, `suffix` and `contains` need at least one character (`min_len: 1`),
/// `exact` may be empty, `safe_regex` must compile. gRFC A63: `ignore_case` applies to the literal kinds, not to
/// `safe_regex`. The `custom` extension is not supported by gRPC and is rejected.
pub(crate) fn string_matcher(value: &PbStringMatcher) -> Result<StringMatcher, String> {
    let kind = match &value.match_pattern {
        Some(MatchPattern::Exact(exact)) => StringMatch::Exact(exact.as_str().into()),
        Some(MatchPattern::Prefix(prefix)) => {
            StringMatch::Prefix(non_empty("prefix", prefix)?.into())
        }
        Some(MatchPattern::Suffix(suffix)) => {
            StringMatch::Suffix(non_empty("suffix", suffix)?.into())
        }
        Some(MatchPattern::Contains(contains)) => {
            StringMatch::Contains(non_empty("contains", contains)?.into())
        }
        Some(MatchPattern::SafeRegex(regex)) => {
            StringMatch::SafeRegex(regex_matcher(regex).map_err(|e| format!("safe_regex: {e}"))?)
        }
        Some(MatchPattern::Custom(custom)) => {
            return Err(format!("custom matcher {:?} is not supported", custom.name));
        }
        None => return Err("no match pattern set".to_owned()),
    };
    Ok(StringMatcher::new(kind, value.ignore_case))
}

fn non_empty<'a>(field: &str, value: &'a str) -> Result<&'a str, String> {
    if value.is_empty() {
        Err(format!("{field} must not be empty"))
    } else {
        Ok(value)
    }
}

/// `config.route.v3.HeaderMatcher` to the model, for routes, fault filters and RBAC.
///
/// gRFC A28 lists the supported kinds: exact, safe_regex, range, present, prefix, suffix (the deprecated direct
/// fields), plus `contains` and `string_match` (gRFC A63, whose `ignore_case` applies); `invert_match` inverts the
/// result. `treat_missing_header_as_empty` is honoured as Envoy documents it. The name is lowercased (HTTP/2 header
/// names are lowercase; Envoy lowercases too). Envoy requires a non-empty, valid header name; gRFC A28 matches
/// pseudo-headers gRPC knows nothing about as absent rather than rejecting them, so `:`-names are accepted here and it
/// is left to matching to treat them (a `-bin` name is likewise accepted and never matches, per A28). A range needs
/// `start < end` (Envoy: "end is exclusive"; an empty range could never match and is rejected as in grpc-go).
#[allow(deprecated)] // the deprecated direct fields are still sent by control planes and gRFC A28 supports them
pub(crate) fn header_matcher(value: &PbHeaderMatcher) -> Result<HeaderMatcher, String> {
    if value.name.is_empty() {
        return Err("name: must not be empty".to_owned());
    }
    if value
        .name
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == 0)
    {
        return Err(format!("name: {:?} is not a valid header name", value.name));
    }
    let condition = match &value.header_match_specifier {
        Some(HeaderMatchSpecifier::ExactMatch(exact)) => {
            HeaderMatch::String(StringMatcher::exact(exact))
        }
        Some(HeaderMatchSpecifier::SafeRegexMatch(regex)) => {
            HeaderMatch::String(StringMatcher::new(
                StringMatch::SafeRegex(
                    regex_matcher(regex).map_err(|e| format!("safe_regex_match: {e}"))?,
                ),
                false,
            ))
        }
        Some(HeaderMatchSpecifier::RangeMatch(range)) => {
            if range.start >= range.end {
                return Err(format!(
                    "range_match: start {} must be below end {}",
                    range.start, range.end
                ));
            }
            HeaderMatch::Range {
                start: range.start,
                end: range.end,
            }
        }
        Some(HeaderMatchSpecifier::PresentMatch(present)) => HeaderMatch::Present(*present),
        Some(HeaderMatchSpecifier::PrefixMatch(prefix)) => {
            HeaderMatch::String(StringMatcher::prefix(non_empty("prefix_match", prefix)?))
        }
        Some(HeaderMatchSpecifier::SuffixMatch(suffix)) => {
            HeaderMatch::String(StringMatcher::suffix(non_empty("suffix_match", suffix)?))
        }
        Some(HeaderMatchSpecifier::ContainsMatch(contains)) => HeaderMatch::String(
            StringMatcher::contains(non_empty("contains_match", contains)?),
        ),
        Some(HeaderMatchSpecifier::StringMatch(matcher)) => {
            HeaderMatch::String(string_matcher(matcher).map_err(|e| format!("string_match: {e}"))?)
        }
        // Envoy: with no specifier the header only has to be present.
        None => HeaderMatch::Present(true),
    };
    Ok(HeaderMatcher::new(&value.name, condition)
        .with_invert(value.invert_match)
        .with_treat_missing_as_empty(value.treat_missing_header_as_empty))
}

/// `config.core.v3.CidrRange` to the model.
///
/// `address_prefix` must be an IP address. `prefix_len` above 128 is rejected (Envoy's `address.proto`: `lte: 128`);
/// gRFC A36 (CIDR normalisation) clamps a length beyond the family's width (32 for IPv4) to that width and reads a
/// missing `prefix_len` as 0, which still matches only addresses of the family.
pub(crate) fn cidr_range(value: &PbCidrRange) -> Result<CidrRange, String> {
    let prefix: IpAddr = value.address_prefix.parse().map_err(|_| {
        format!(
            "address_prefix {:?} is not an IP address",
            value.address_prefix
        )
    })?;
    let len = value.prefix_len.map_or(0, |len| len.value);
    if len > 128 {
        return Err(format!("prefix_len {len} is above 128"));
    }
    let width: u8 = if prefix.is_ipv4() { 32 } else { 128 };
    let len = u8::try_from(len).unwrap_or(width).min(width);
    CidrRange::new(prefix, len).ok_or_else(|| format!("prefix_len {len} is too long for {prefix}"))
}

/// The fully qualified message name in an `Any`'s type URL (`type.googleapis.com/envoy.x.v3.Foo` -> `envoy.x.v3.Foo`).
pub(crate) fn type_name(type_url: &str) -> &str {
    type_url.rsplit_once('/').map_or(type_url, |(_, name)| name)
}

/// `udpa.type.v1.TypedStruct` and `xds.type.v3.TypedStruct` share this wire form; only the type URL is read (the
/// `value` Struct is skipped as an unknown field).
#[derive(Clone, PartialEq, prost::Message)]
struct TypedStruct {
    #[prost(string, tag = "1")]
    type_url: String,
}

const UDPA_TYPED_STRUCT: &str = "udpa.type.v1.TypedStruct";
const XDS_TYPED_STRUCT: &str = "xds.type.v3.TypedStruct";

/// An extension's configuration as carried in an `Any`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TypedConfig<'a> {
    /// A concrete message of type `type_name`, serialised in `value`.
    Message {
        /// The message's full name.
        type_name: &'a str,
        /// Its bytes.
        value: &'a [u8],
    },
    /// A `TypedStruct` naming `type_name`, its fields given as a `google.protobuf.Struct` we do not convert.
    Struct {
        /// The full name of the message the struct stands for.
        type_name: String,
    },
}

impl TypedConfig<'_> {
    /// The configuration's message type, looking inside a `TypedStruct`.
    pub(crate) fn type_name(&self) -> &str {
        match self {
            Self::Message { type_name, .. } => type_name,
            Self::Struct { type_name } => type_name,
        }
    }
}

/// Reads the configuration type of `any`, unwrapping a `TypedStruct` (gRFC A39: "if the proto message type is
/// `udpa.type.v1.TypedStruct`, then gRPC will look inside that type's `type_url` field to determine the actual type";
/// `xds.type.v3.TypedStruct` is the same message under its new name).
pub(crate) fn typed_config(any: &Any) -> Result<TypedConfig<'_>, String> {
    let name = type_name(&any.type_url);
    if name == UDPA_TYPED_STRUCT || name == XDS_TYPED_STRUCT {
        let typed_struct = TypedStruct::decode(any.value.as_slice())
            .map_err(|e| format!("{name} does not decode: {e}"))?;
        return Ok(TypedConfig::Struct {
            type_name: type_name(&typed_struct.type_url).to_owned(),
        });
    }
    if name.is_empty() {
        return Err("type_url is empty".to_owned());
    }
    Ok(TypedConfig::Message {
        type_name: name,
        value: any.value.as_slice(),
    })
}

/// Decodes `bytes` as `T`, naming the type on failure.
pub(crate) fn decode_message<T: Message + Default>(
    type_name: &str,
    bytes: &[u8],
) -> Result<T, String> {
    T::decode(bytes).map_err(|e| format!("{type_name} does not decode: {e}"))
}

/// A certificate provider instance named by a TLS context. gRFC A29: the instance must be one the bootstrap's
/// `certificate_providers` defines (C-core: "unrecognized certificate provider instance name").
pub(crate) fn certificate_provider(
    instance_name: &str,
    certificate_name: &str,
    field: &str,
    ctx: &super::ValidationContext,
    errors: &mut Errors,
) -> Option<mesh_core::tls::CertificateProviderInstance> {
    if instance_name.is_empty() {
        errors.push(&format!("{field}.instance_name"), "must not be empty");
        return None;
    }
    if !ctx
        .certificate_providers
        .iter()
        .any(|known| known == instance_name)
    {
        errors.push(
            &format!("{field}.instance_name"),
            format!("unrecognized certificate provider instance name {instance_name:?}"),
        );
        return None;
    }
    let mut instance = mesh_core::tls::CertificateProviderInstance::new(instance_name);
    instance.certificate_name = certificate_name.into();
    Some(instance)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use envoy_types::pb::google::protobuf::UInt32Value;

    #[test]
    fn errors_join_nested_paths() {
        let mut errors = Errors::new();
        errors.at("virtual_hosts[0]", |e| {
            e.at("routes[3]", |e| {
                e.push("route.weighted_clusters", "total weight 0");
            });
            e.push("[1]", "odd");
        });
        errors.push("", "root problem");
        assert_eq!(
            errors.into_problems(),
            vec![
                "virtual_hosts[0].routes[3].route.weighted_clusters: total weight 0".to_owned(),
                "virtual_hosts[0][1]: odd".to_owned(),
                "root problem".to_owned(),
            ]
        );
    }

    #[test]
    fn durations_reject_negative_and_out_of_range() {
        let ok = duration(&PbDuration {
            seconds: 1,
            nanos: 5,
        })
        .unwrap();
        assert_eq!(ok, Duration::new(1, 5));
        assert!(
            duration(&PbDuration {
                seconds: -1,
                nanos: 0
            })
            .unwrap_err()
            .contains("negative")
        );
        assert!(
            duration(&PbDuration {
                seconds: 0,
                nanos: -1
            })
            .is_err()
        );
        assert!(
            duration(&PbDuration {
                seconds: 0,
                nanos: 1_000_000_000
            })
            .is_err()
        );
        assert!(
            duration(&PbDuration {
                seconds: i64::MAX,
                nanos: 0
            })
            .is_err()
        );
    }

    #[test]
    fn string_matcher_rules() {
        let m = |p| PbStringMatcher {
            ignore_case: true,
            match_pattern: Some(p),
        };
        let prefix = string_matcher(&m(MatchPattern::Prefix("/Svc".into()))).unwrap();
        assert!(prefix.matches("/svc/x"));
        assert!(
            string_matcher(&m(MatchPattern::Prefix(String::new())))
                .unwrap_err()
                .contains("prefix")
        );
        assert!(string_matcher(&m(MatchPattern::Exact(String::new()))).is_ok());
        let bad = PbRegexMatcher {
            regex: "a(".into(),
            engine_type: None,
        };
        assert!(
            string_matcher(&m(MatchPattern::SafeRegex(bad)))
                .unwrap_err()
                .starts_with("safe_regex")
        );
        assert!(string_matcher(&PbStringMatcher::default()).is_err());
    }

    #[test]
    fn cidr_is_clamped_and_checked() {
        let cidr = |a: &str, len: Option<u32>| PbCidrRange {
            address_prefix: a.into(),
            prefix_len: len.map(|value| UInt32Value { value }),
        };
        assert_eq!(
            cidr_range(&cidr("10.0.0.0", Some(40)))
                .unwrap()
                .prefix_len(),
            32
        );
        assert_eq!(cidr_range(&cidr("::", None)).unwrap().prefix_len(), 0);
        assert!(cidr_range(&cidr("::", Some(129))).is_err());
        assert!(cidr_range(&cidr("host", Some(8))).is_err());
    }

    #[test]
    fn typed_struct_is_unwrapped() {
        let inner = TypedStruct {
            type_url: "type.googleapis.com/acme.Filter".into(),
        };
        let any = Any {
            type_url: format!("type.googleapis.com/{XDS_TYPED_STRUCT}"),
            value: inner.encode_to_vec(),
        };
        assert_eq!(typed_config(&any).unwrap().type_name(), "acme.Filter");
        let garbage = Any {
            type_url: UDPA_TYPED_STRUCT.into(),
            value: vec![0xff, 0xff],
        };
        assert!(typed_config(&garbage).is_err());
    }
}
