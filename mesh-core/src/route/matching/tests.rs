#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use proptest::prelude::*;

use super::*;
use crate::fraction::FractionalPercent;
use crate::matcher::{SafeRegex, StringMatch, StringMatcher};
use crate::rng::FastRng;
use crate::route::RouteAction;

fn vhost(name: &str, domains: &[&str]) -> VirtualHost {
    VirtualHost::new(name, domains, vec![])
}

fn selected<'c>(config: &'c RouteConfig, authority: &str) -> Option<&'c str> {
    config.select_virtual_host(authority).map(|v| &*v.name)
}

fn route(matcher: RouteMatch, cluster: &str) -> Route {
    Route::new(matcher, RouteAction::cluster(cluster))
}

fn rng() -> FastRng {
    FastRng::from_seed(42)
}

/// Counts draws, to prove which evaluations consume randomness.
struct CountingRng {
    inner: FastRng,
    draws: usize,
}

impl RandomSource for CountingRng {
    fn next_u64(&mut self) -> u64 {
        self.draws += 1;
        self.inner.next_u64()
    }
}

// --- Virtual-host selection -------------------------------------------------------------------------------

#[test]
fn exact_beats_suffix_beats_prefix_beats_universal() {
    let all = RouteConfig::new(
        "r",
        vec![
            vhost("any", &["*"]),
            vhost("prefix", &["api.*"]),
            vhost("suffix", &["*.example.com"]),
            vhost("exact", &["api.example.com"]),
        ],
    );
    assert_eq!(selected(&all, "api.example.com"), Some("exact"));
    assert_eq!(selected(&all, "www.example.com"), Some("suffix"));
    assert_eq!(selected(&all, "api.example.org"), Some("prefix"));
    assert_eq!(selected(&all, "other.org"), Some("any"));
    assert_eq!(selected(&all, ""), Some("any"));
}

#[test]
fn longest_wildcard_wins_within_its_kind() {
    let config = RouteConfig::new(
        "r",
        vec![
            vhost("short-suffix", &["*.com"]),
            vhost("long-suffix", &["*.example.com"]),
            vhost("short-prefix", &["a*"]),
            vhost("long-prefix", &["api.*"]),
        ],
    );
    assert_eq!(selected(&config, "www.example.com"), Some("long-suffix"));
    assert_eq!(selected(&config, "www.other.com"), Some("short-suffix"));
    assert_eq!(selected(&config, "api.org"), Some("long-prefix"));
    assert_eq!(selected(&config, "abc.org"), Some("short-prefix"));
    // A short suffix still beats a long prefix: kind first, then length.
    assert_eq!(selected(&config, "api.x.com"), Some("short-suffix"));
}

#[test]
fn domains_match_ignoring_ascii_case() {
    let config = RouteConfig::new(
        "r",
        vec![
            vhost("exact", &["Api.Example.COM"]),
            vhost("suffix", &["*.EXAMPLE.org"]),
        ],
    );
    assert_eq!(selected(&config, "api.example.com"), Some("exact"));
    assert_eq!(selected(&config, "API.EXAMPLE.COM"), Some("exact"));
    assert_eq!(selected(&config, "www.Example.Org"), Some("suffix"));
}

#[test]
fn no_matching_domain_selects_nothing() {
    let config = RouteConfig::new("r", vec![vhost("a", &["a.com", "*.b.com", "c.*"])]);
    assert_eq!(selected(&config, "x.org"), None);
    assert_eq!(config.select_virtual_host_index("x.org"), None);
    assert_eq!(selected(&RouteConfig::new("empty", vec![]), "a.com"), None);
}

#[test]
fn equally_specific_matches_go_to_the_first_virtual_host() {
    let config = RouteConfig::new(
        "r",
        vec![
            vhost("first-suffix", &["*.foo.com"]),
            vhost("second-suffix", &["*.bar.com", "*.foo.com"]),
            vhost("first-exact", &["a.com"]),
            vhost("second-exact", &["A.COM"]),
            vhost("first-any", &["*"]),
            vhost("second-any", &["*"]),
        ],
    );
    assert_eq!(selected(&config, "x.foo.com"), Some("first-suffix"));
    assert_eq!(selected(&config, "a.com"), Some("first-exact"));
    assert_eq!(config.select_virtual_host_index("a.com"), Some(2));
    assert_eq!(selected(&config, "zzz"), Some("first-any"));
}

#[test]
fn wildcards_match_at_least_one_character() {
    assert!(domain_match("*.foo.com", "a.foo.com").is_some());
    assert_eq!(domain_match("*.foo.com", ".foo.com"), None);
    assert_eq!(domain_match("*.foo.com", "foo.com"), None);
    assert!(domain_match("foo.*", "foo.x").is_some());
    assert_eq!(domain_match("foo.*", "foo."), None);
    // Envoy allows the wildcard to stand for part of a label.
    assert!(domain_match("*-bar.foo.com", "baz-bar.foo.com").is_some());
    assert_eq!(domain_match("*-bar.foo.com", "-bar.foo.com"), None);
    assert!(domain_match("foo-*", "foo-1").is_some());
}

#[test]
fn invalid_domains_are_reported_and_never_match() {
    for pattern in ["a*b", "**", "*a*", "*.*.com", "foo.*.com"] {
        assert!(
            matches!(
                validate_domain(pattern),
                Err(DomainError::MisplacedWildcard { .. })
            ),
            "{pattern}"
        );
        assert_eq!(domain_match(pattern, "a*b"), None, "{pattern}");
        assert_eq!(domain_match(pattern, "aab"), None, "{pattern}");
    }
    assert_eq!(validate_domain(""), Err(DomainError::Empty));
    assert_eq!(domain_match("", ""), None);
    assert!(matches!(
        validate_domain("a\nb"),
        Err(DomainError::InvalidCharacter { .. })
    ));
    let err = validate_domain("a*b").unwrap_err();
    assert!(err.to_string().contains("\"a*b\""), "{err}");
    for pattern in ["*", "a.com", "*.a.com", "a.*", "*-x", "x-*", "a.com:8080"] {
        assert_eq!(validate_domain(pattern), Ok(()), "{pattern}");
    }
}

#[test]
fn port_in_the_authority_is_matched_as_given() {
    let config = RouteConfig::new(
        "r",
        vec![
            vhost("no-port", &["foo.com"]),
            vhost("with-port", &["foo.com:8080"]),
        ],
    );
    assert_eq!(selected(&config, "foo.com:8080"), Some("with-port"));
    assert_eq!(selected(&config, "foo.com"), Some("no-port"));
    assert_eq!(selected(&config, "foo.com:9090"), None);
    assert!(domain_match("foo.*", "foo.com:9090").is_some());
    assert!(domain_match("*:9090", "foo.com:9090").is_some());
}

#[test]
fn domain_match_ranks_compare_by_kind_then_length() {
    let rank = |pattern| domain_match(pattern, "api.example.com").unwrap();
    assert!(rank("api.example.com") > rank("*.example.com"));
    assert!(rank("*.example.com") > rank("*.com"));
    assert!(rank("*.com") > rank("api.example.*"));
    assert!(rank("api.example.*") > rank("a*"));
    assert!(rank("a*") > rank("*"));
    assert_eq!(
        rank("*.example.com"),
        DomainMatch {
            kind: DomainMatchKind::Suffix,
            literal_len: 12
        }
    );
}

// --- Paths ------------------------------------------------------------------------------------------------

#[test]
fn prefix_paths_honour_case_sensitivity() {
    let sensitive = RouteMatch::prefix("/Greeter/");
    assert!(sensitive.matches_path("/Greeter/SayHello"));
    assert!(!sensitive.matches_path("/greeter/SayHello"));
    assert!(!sensitive.matches_path("/Greet"));
    let insensitive = RouteMatch::prefix("/Greeter/").with_case_sensitive(false);
    assert!(insensitive.matches_path("/gREETER/SayHello"));
    assert!(!insensitive.matches_path("/Greet"));
}

#[test]
fn empty_prefix_matches_every_path() {
    assert!(RouteMatch::any().matches_path(""));
    assert!(RouteMatch::any().matches_path("/a/b"));
    assert!(
        RouteMatch::prefix("")
            .with_case_sensitive(false)
            .matches_path("/X")
    );
}

#[test]
fn exact_paths_honour_case_sensitivity() {
    let sensitive = RouteMatch::exact("/svc/Method");
    assert!(sensitive.matches_path("/svc/Method"));
    assert!(!sensitive.matches_path("/svc/method"));
    assert!(!sensitive.matches_path("/svc/Method/"));
    assert!(!sensitive.matches_path("/svc/Metho"));
    let insensitive = RouteMatch::exact("/svc/Method").with_case_sensitive(false);
    assert!(insensitive.matches_path("/SVC/method"));
    assert!(!insensitive.matches_path("/svc/Method/"));
}

#[test]
fn regex_paths_match_whole_path_and_ignore_case_sensitivity() {
    let regex = PathMatch::SafeRegex(SafeRegex::new("/svc/[a-z]+").unwrap());
    let m = RouteMatch::new(regex);
    assert!(m.matches_path("/svc/get"));
    assert!(!m.matches_path("/svc/get/more"));
    assert!(!m.matches_path("/x/svc/get"));
    let insensitive = m.with_case_sensitive(false);
    assert!(!insensitive.matches_path("/SVC/GET"));
    assert!(insensitive.matches_path("/svc/get"));
}

#[test]
fn non_ascii_paths_do_not_panic_and_compare_bytewise() {
    let m = RouteMatch::prefix("/é").with_case_sensitive(false);
    assert!(m.matches_path("/é/x"));
    assert!(!m.matches_path("/É/x"));
    // A prefix ending inside a multi-byte character of the path is just a mismatch.
    assert!(!RouteMatch::prefix("/\u{e9}").matches_path("/\u{ea}"));
}

// --- Headers ----------------------------------------------------------------------------------------------

fn string_matcher(name: &str, kind: StringMatch) -> HeaderMatcher {
    HeaderMatcher::new(name, HeaderMatch::String(StringMatcher::new(kind, false)))
}

fn range(name: &str, start: i64, end: i64) -> HeaderMatcher {
    HeaderMatcher::new(name, HeaderMatch::Range { start, end })
}

#[test]
fn string_conditions_match_header_values() {
    let headers: &[(&str, &str)] = &[("x-env", "canary-eu")];
    assert!(HeaderMatcher::exact("x-env", "canary-eu").matches(headers));
    assert!(!HeaderMatcher::exact("x-env", "canary").matches(headers));
    assert!(string_matcher("x-env", StringMatch::Prefix("canary".into())).matches(headers));
    assert!(string_matcher("x-env", StringMatch::Suffix("-eu".into())).matches(headers));
    assert!(string_matcher("x-env", StringMatch::Contains("ary-e".into())).matches(headers));
    assert!(!string_matcher("x-env", StringMatch::Contains("us".into())).matches(headers));
    let regex = HeaderMatcher::new(
        "x-env",
        HeaderMatch::String(StringMatcher::regex("canary-[a-z]{2}").unwrap()),
    );
    assert!(regex.matches(headers));
    let partial = HeaderMatcher::new(
        "x-env",
        HeaderMatch::String(StringMatcher::regex("canary").unwrap()),
    );
    assert!(!partial.matches(headers), "regex is a full match");
    let ignore_case = HeaderMatcher::new(
        "x-env",
        HeaderMatch::String(StringMatcher::new(
            StringMatch::Exact("CANARY-EU".into()),
            true,
        )),
    );
    assert!(ignore_case.matches(headers));
    // Header names are looked up case-insensitively.
    assert!(HeaderMatcher::exact("X-Env", "canary-eu").matches(headers));
}

#[test]
fn several_values_are_matched_joined_with_commas() {
    let headers: &[(&str, &str)] = &[
        ("x-tag", "a"),
        ("other", "z"),
        ("x-tag", "b"),
        ("x-tag", ""),
    ];
    assert!(HeaderMatcher::exact("x-tag", "a,b,").matches(headers));
    assert!(!HeaderMatcher::exact("x-tag", "a").matches(headers));
    assert_eq!(
        header_value(headers, "x-tag").as_deref(),
        Some(&b"a,b,"[..])
    );
    assert!(matches!(
        header_value(headers, "other"),
        Some(Cow::Borrowed(b"z"))
    ));
    assert_eq!(header_value(headers, "missing"), None);

    let mut map = http::HeaderMap::new();
    map.append("x-tag", http::HeaderValue::from_static("a"));
    map.append("x-tag", http::HeaderValue::from_static("b"));
    assert!(HeaderMatcher::exact("x-tag", "a,b").matches(&map));
}

#[test]
fn binary_headers_are_treated_as_absent() {
    let headers: &[(&str, &str)] = &[("trace-bin", "abc"), ("x-Data-BIN", "abc")];
    assert!(!HeaderMatcher::exact("trace-bin", "abc").matches(headers));
    assert!(!HeaderMatcher::present("trace-bin").matches(headers));
    assert!(!HeaderMatcher::present("x-data-bin").matches(headers));
    assert!(HeaderMatcher::new("trace-bin", HeaderMatch::Present(false)).matches(headers));
    assert!(
        HeaderMatcher::present("trace-bin")
            .with_invert(true)
            .matches(headers)
    );
    assert!(
        !HeaderMatcher::exact("trace-bin", "abc")
            .with_invert(true)
            .matches(headers)
    );
    assert_eq!(header_value(headers, "trace-bin"), None);
}

#[test]
fn present_true_and_false() {
    let headers: &[(&str, &str)] = &[("x-debug", "")];
    assert!(HeaderMatcher::present("x-debug").matches(headers));
    assert!(!HeaderMatcher::present("x-other").matches(headers));
    let absent = HeaderMatcher::new("x-other", HeaderMatch::Present(false));
    assert!(absent.matches(headers));
    assert!(!HeaderMatcher::new("x-debug", HeaderMatch::Present(false)).matches(headers));
}

#[test]
fn invert_flips_the_result_for_present_headers() {
    let headers: &[(&str, &str)] = &[("x-env", "prod"), ("x-n", "5")];
    assert!(
        !HeaderMatcher::exact("x-env", "prod")
            .with_invert(true)
            .matches(headers)
    );
    assert!(
        HeaderMatcher::exact("x-env", "dev")
            .with_invert(true)
            .matches(headers)
    );
    assert!(!range("x-n", 0, 10).with_invert(true).matches(headers));
    assert!(range("x-n", 6, 10).with_invert(true).matches(headers));
    assert!(
        !HeaderMatcher::present("x-env")
            .with_invert(true)
            .matches(headers)
    );
    assert!(
        HeaderMatcher::new("x-env", HeaderMatch::Present(false))
            .with_invert(true)
            .matches(headers)
    );
}

#[test]
fn missing_header_fails_value_conditions_even_when_inverted() {
    // Envoy HeaderUtility::matchHeaders and gRPC: only the presence condition is inverted for a missing header.
    let none: &[(&str, &str)] = &[];
    assert!(
        !HeaderMatcher::exact("x-env", "prod")
            .with_invert(true)
            .matches(none)
    );
    assert!(!range("x-n", 0, 10).with_invert(true).matches(none));
    assert!(
        HeaderMatcher::present("x-env")
            .with_invert(true)
            .matches(none)
    );
    assert!(
        !HeaderMatcher::new("x-env", HeaderMatch::Present(false))
            .with_invert(true)
            .matches(none)
    );
}

#[test]
fn treat_missing_as_empty_matches_a_missing_header_as_empty() {
    let none: &[(&str, &str)] = &[];
    let empty_regex = HeaderMatcher::new(
        "x-enc",
        HeaderMatch::String(StringMatcher::regex("(identity)?").unwrap()),
    );
    assert!(!empty_regex.matches(none));
    assert!(
        empty_regex
            .clone()
            .with_treat_missing_as_empty(true)
            .matches(none)
    );
    // Envoy's documented example: range [0, 10) inverted on a missing header matches only when treated as empty.
    assert!(!range("x-n", 0, 10).with_invert(true).matches(none));
    assert!(
        range("x-n", 0, 10)
            .with_invert(true)
            .with_treat_missing_as_empty(true)
            .matches(none)
    );
    assert!(
        HeaderMatcher::exact("x-a", "")
            .with_treat_missing_as_empty(true)
            .matches(none)
    );
    // Treated as present-but-empty.
    assert!(
        HeaderMatcher::present("x-a")
            .with_treat_missing_as_empty(true)
            .matches(none)
    );
    let absent =
        HeaderMatcher::new("x-a", HeaderMatch::Present(false)).with_treat_missing_as_empty(true);
    assert!(!absent.matches(none));
    // A header that is there is unaffected.
    let present: &[(&str, &str)] = &[("x-enc", "gzip")];
    assert!(
        !empty_regex
            .with_treat_missing_as_empty(true)
            .matches(present)
    );
}

#[test]
fn range_is_start_inclusive_end_exclusive_and_needs_an_integer() {
    let value = |v: &'static str| -> Vec<(&'static str, &'static str)> { vec![("x-n", v)] };
    let m = range("x-n", -10, 0);
    assert!(m.matches(value("-10").as_slice()));
    assert!(m.matches(value("-1").as_slice()));
    assert!(!m.matches(value("+0").as_slice()));
    assert!(!m.matches(value("0").as_slice()));
    assert!(!m.matches(value("-11").as_slice()));
    for bad in [
        "",
        " -1",
        "-1 ",
        "-1.0",
        "-1x",
        "x",
        "--1",
        "-",
        "99999999999999999999",
    ] {
        assert!(!m.matches(value(bad).as_slice()), "{bad:?}");
        assert!(
            m.clone().with_invert(true).matches(value(bad).as_slice()),
            "{bad:?}"
        );
    }
    assert!(range("x-n", 0, 10).matches(value("+5").as_slice()));
    assert!(range("x-n", i64::MIN, i64::MAX).matches(value("-9223372036854775808").as_slice()));
    assert!(
        !range("x-n", 5, 5).matches(value("5").as_slice()),
        "empty range"
    );
    // Joined values are not an integer.
    assert!(!m.matches(&[("x-n", "-1"), ("x-n", "-2")][..]));
}

#[test]
fn grpc_view_reports_application_grpc_content_type() {
    let mut map = http::HeaderMap::new();
    map.insert(
        "content-type",
        http::HeaderValue::from_static("application/grpc+proto"),
    );
    map.insert("x-user", http::HeaderValue::from_static("u1"));
    let exact = HeaderMatcher::exact("content-type", "application/grpc");
    assert!(!exact.matches(&map));
    assert!(exact.matches(&GrpcHeaders::new(&map)));
    assert!(exact.matches(&GrpcHeaders::new(&http::HeaderMap::new())));
    assert!(HeaderMatcher::exact("x-user", "u1").matches(&GrpcHeaders::new(&map)));
    assert!(!HeaderMatcher::present("x-none").matches(&GrpcHeaders::new(&map)));
}

// --- Routes -----------------------------------------------------------------------------------------------

#[test]
fn first_matching_route_wins() {
    // gRFC A28's example: the prefix route listed first takes the exact path too.
    let vh = VirtualHost::new(
        "v",
        &["*"],
        vec![
            route(RouteMatch::prefix("/MyService"), "one"),
            route(RouteMatch::exact("/MyService/MyMethod"), "two"),
            route(RouteMatch::any(), "fallback"),
        ],
    );
    let none: &[(&str, &str)] = &[];
    assert_eq!(
        vh.find_route_index("/MyService/MyMethod", none, &mut rng()),
        Some(0)
    );
    assert_eq!(vh.find_route_index("/Other/M", none, &mut rng()), Some(2));
    let found = vh.find_route("/Other/M", none, &mut rng()).unwrap();
    assert_eq!(
        found
            .route_action()
            .unwrap()
            .cluster_names()
            .next()
            .map(|n| &**n),
        Some("fallback")
    );
}

#[test]
fn every_header_condition_must_hold() {
    let vh = VirtualHost::new(
        "v",
        &["*"],
        vec![
            route(
                RouteMatch::prefix("/")
                    .with_header(HeaderMatcher::exact("x-env", "canary"))
                    .with_header(HeaderMatcher::present("x-user")),
                "canary",
            ),
            route(RouteMatch::prefix("/svc/"), "stable"),
        ],
    );
    let both: &[(&str, &str)] = &[("x-env", "canary"), ("x-user", "u")];
    let one: &[(&str, &str)] = &[("x-env", "canary")];
    assert_eq!(vh.find_route_index("/svc/m", both, &mut rng()), Some(0));
    assert_eq!(vh.find_route_index("/svc/m", one, &mut rng()), Some(1));
    assert_eq!(vh.find_route_index("/x", one, &mut rng()), None);
    assert!(vh.find_route("/x", one, &mut rng()).is_none());
}

#[test]
fn runtime_fraction_of_zero_and_full() {
    let none: &[(&str, &str)] = &[];
    let never = RouteMatch::any().with_runtime_fraction(FractionalPercent::NEVER);
    let always = RouteMatch::any().with_runtime_fraction(FractionalPercent::ALWAYS);
    let mut rng = rng();
    assert!((0..1000).all(|_| !never.matches("/", none, &mut rng)));
    assert!((0..1000).all(|_| always.matches("/", none, &mut rng)));
}

#[test]
fn runtime_fraction_of_a_quarter_takes_a_quarter() {
    let none: &[(&str, &str)] = &[];
    let quarter = RouteMatch::any().with_runtime_fraction(FractionalPercent::percent(25));
    let mut rng = FastRng::from_seed(7);
    let hits = (0..100_000)
        .filter(|_| quarter.matches("/", none, &mut rng))
        .count();
    assert!((24_000..=26_000).contains(&hits), "{hits}");
}

#[test]
fn runtime_fraction_draws_only_after_path_and_headers_match() {
    let half = FractionalPercent::percent(50);
    let m = RouteMatch::prefix("/svc/")
        .with_header(HeaderMatcher::exact("x-env", "canary"))
        .with_runtime_fraction(half);
    let mut counting = CountingRng {
        inner: rng(),
        draws: 0,
    };
    let canary: &[(&str, &str)] = &[("x-env", "canary")];
    let stable: &[(&str, &str)] = &[("x-env", "stable")];
    m.matches("/other", canary, &mut counting);
    m.matches("/svc/m", stable, &mut counting);
    assert_eq!(counting.draws, 0);
    m.matches("/svc/m", canary, &mut counting);
    assert_eq!(counting.draws, 1);
}

// --- Property tests ---------------------------------------------------------------------------------------

/// Independent reference for domain precedence: (kind rank, literal length), written with allocating string
/// operations instead of the byte-level code above.
fn reference_valid(pattern: &str) -> bool {
    let stars = pattern.matches('*').count();
    !pattern.is_empty()
        && !pattern.contains(['\0', '\r', '\n'])
        && (pattern == "*"
            || stars == 0
            || (stars == 1 && (pattern.starts_with('*') || pattern.ends_with('*'))))
}

fn reference_rank(pattern: &str, authority: &str) -> Option<(u8, usize)> {
    if !reference_valid(pattern) {
        return None;
    }
    let pattern = pattern.to_ascii_lowercase();
    let authority = authority.to_ascii_lowercase();
    if pattern == "*" {
        Some((0, 0))
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        (authority.len() > suffix.len() && authority.ends_with(suffix)).then_some((2, suffix.len()))
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        (authority.len() > prefix.len() && authority.starts_with(prefix))
            .then_some((1, prefix.len()))
    } else {
        (pattern == authority).then_some((3, pattern.len()))
    }
}

fn as_tuple(rank: DomainMatch) -> (u8, usize) {
    let kind = match rank.kind {
        DomainMatchKind::Universal => 0,
        DomainMatchKind::Prefix => 1,
        DomainMatchKind::Suffix => 2,
        DomainMatchKind::Exact => 3,
    };
    (kind, rank.literal_len)
}

fn domain_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[*]?[aAbB.:-]{0,5}[*]?",
        1 => "[*aB.]{0,4}",
        1 => any::<String>(),
    ]
}

/// Virtual hosts' domains plus an authority that is often one of those domains with its `*` removed or
/// replaced, so exact hits, empty-wildcard near misses and ties are common.
fn vhosts_and_authority() -> impl Strategy<Value = (Vec<Vec<String>>, String)> {
    prop::collection::vec(prop::collection::vec(domain_strategy(), 1..4), 0..5).prop_flat_map(
        |domains| {
            let mut near: Vec<String> = vec![String::new()];
            for domain in domains.iter().flatten() {
                near.push(domain.replace('*', ""));
                near.push(domain.replace('*', "x"));
                near.push(domain.to_ascii_uppercase().replace('*', "Ab"));
            }
            let authority = prop_oneof![
                1 => "[aAbB.:-]{0,6}",
                1 => any::<String>(),
                2 => prop::sample::select(near),
            ];
            (Just(domains), authority)
        },
    )
}

#[derive(Debug, Clone)]
struct RouteSpec {
    prefix: bool,
    path: String,
    case_sensitive: bool,
    headers: Vec<(String, String, bool)>,
    fraction: Option<FractionalPercent>,
}

fn route_spec_strategy() -> impl Strategy<Value = RouteSpec> {
    let header = (
        prop::sample::select(vec!["x-a", "X-A", "x-b", "x-c-bin"]),
        "[ab,]{0,3}",
        any::<bool>(),
    )
        .prop_map(|(name, value, invert)| (name.to_owned(), value, invert));
    (
        any::<bool>(),
        "[/aAb]{0,4}",
        any::<bool>(),
        prop::collection::vec(header, 0..3),
        prop::sample::select(vec![
            None,
            Some(FractionalPercent::ALWAYS),
            Some(FractionalPercent::NEVER),
        ]),
    )
        .prop_map(
            |(prefix, path, case_sensitive, headers, fraction)| RouteSpec {
                prefix,
                path,
                case_sensitive,
                headers,
                fraction,
            },
        )
}

fn build_route(spec: &RouteSpec) -> Route {
    let mut matcher = if spec.prefix {
        RouteMatch::prefix(&spec.path)
    } else {
        RouteMatch::exact(&spec.path)
    }
    .with_case_sensitive(spec.case_sensitive)
    .with_runtime_fraction(spec.fraction);
    for (name, value, invert) in &spec.headers {
        matcher = matcher.with_header(HeaderMatcher::exact(name, value).with_invert(*invert));
    }
    route(matcher, "c")
}

/// Independent reference: does `spec` take the request? Each condition evaluated on its own with plain strings.
fn reference_route_matches(spec: &RouteSpec, path: &str, headers: &[(String, String)]) -> bool {
    let (want, got) = if spec.case_sensitive {
        (spec.path.clone(), path.to_owned())
    } else {
        (spec.path.to_ascii_lowercase(), path.to_ascii_lowercase())
    };
    let path_ok = if spec.prefix {
        got.starts_with(&want)
    } else {
        got == want
    };
    let headers_ok = spec.headers.iter().all(|(name, value, invert)| {
        if name.to_ascii_lowercase().ends_with("-bin") {
            return false;
        }
        let values: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        !values.is_empty() && ((values.join(",") == *value) != *invert)
    });
    let fraction_ok = spec.fraction != Some(FractionalPercent::NEVER);
    path_ok && headers_ok && fraction_ok
}

/// Headers with arbitrary (not necessarily UTF-8) values.
struct RawHeaders(Vec<(String, Vec<u8>)>);

impl HeaderLookup for RawHeaders {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

fn header_matcher_strategy() -> impl Strategy<Value = HeaderMatcher> {
    let string_kind = prop_oneof![
        ".{0,3}".prop_map(|p| StringMatch::Exact(p.into())),
        ".{0,3}".prop_map(|p| StringMatch::Prefix(p.into())),
        ".{0,3}".prop_map(|p| StringMatch::Suffix(p.into())),
        ".{0,3}".prop_map(|p| StringMatch::Contains(p.into())),
        prop::sample::select(vec!["", ".*", "[0-9]+", "(?i)ab.", "\\x00|\\xff"])
            .prop_map(|p| StringMatch::SafeRegex(SafeRegex::new(p).unwrap())),
    ];
    let condition = prop_oneof![
        (string_kind, any::<bool>()).prop_map(|(kind, ignore_case)| {
            HeaderMatch::String(StringMatcher::new(kind, ignore_case))
        }),
        (any::<i64>(), any::<i64>()).prop_map(|(start, end)| HeaderMatch::Range { start, end }),
        (-3i64..3, -3i64..3).prop_map(|(start, end)| HeaderMatch::Range { start, end }),
        any::<bool>().prop_map(HeaderMatch::Present),
    ];
    (
        prop::sample::select(vec!["x-a", "x-b-bin", "X-A"]),
        condition,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(name, condition, invert, treat_missing)| {
            HeaderMatcher::new(name, condition)
                .with_invert(invert)
                .with_treat_missing_as_empty(treat_missing)
        })
}

proptest! {
    #[test]
    fn select_virtual_host_agrees_with_reference_precedence(
        (domains, authority) in vhosts_and_authority(),
    ) {
        let vhosts: Vec<VirtualHost> = domains
            .iter()
            .enumerate()
            .map(|(i, ds)| {
                let ds: Vec<&str> = ds.iter().map(String::as_str).collect();
                VirtualHost::new(&i.to_string(), &ds, vec![])
            })
            .collect();
        let config = RouteConfig::new("r", vhosts);
        for ds in &domains {
            for d in ds {
                prop_assert_eq!(domain_match(d, &authority).map(as_tuple), reference_rank(d, &authority));
                prop_assert_eq!(validate_domain(d).is_ok(), reference_valid(d));
            }
        }
        let best_per_vhost: Vec<Option<(u8, usize)>> = domains
            .iter()
            .map(|ds| ds.iter().filter_map(|d| reference_rank(d, &authority)).max())
            .collect();
        let mut expected: Option<usize> = None;
        for (i, rank) in best_per_vhost.iter().enumerate() {
            if rank.is_some() && expected.is_none_or(|e| *rank > best_per_vhost[e]) {
                expected = Some(i);
            }
        }
        let got = config.select_virtual_host_index(&authority);
        prop_assert_eq!(got, expected);
        let via_ref = config.select_virtual_host(&authority);
        prop_assert_eq!(via_ref.map(|v| v.name.to_string()), got.map(|i| i.to_string()));
        if let Some(chosen) = via_ref {
            let chosen_rank = chosen.best_domain_match(&authority).map(as_tuple);
            for other in &best_per_vhost {
                prop_assert!(chosen_rank >= *other);
            }
        }
    }

    #[test]
    fn find_route_agrees_with_reference(
        specs in prop::collection::vec(route_spec_strategy(), 0..6),
        path in "[/aAb]{0,5}",
        headers in prop::collection::vec(
            (prop::sample::select(vec!["x-a", "X-A", "x-b", "x-c-bin", "y"]), "[ab]{0,2}"),
            0..4,
        ),
    ) {
        let headers: Vec<(String, String)> =
            headers.into_iter().map(|(n, v)| (n.to_owned(), v)).collect();
        let lookup: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let vh = VirtualHost::new("v", &["*"], specs.iter().map(build_route).collect());
        let expected = specs.iter().position(|s| reference_route_matches(s, &path, &headers));
        prop_assert_eq!(vh.find_route_index(&path, lookup.as_slice(), &mut rng()), expected);
    }

    #[test]
    fn header_matching_never_panics_and_invert_flips_present_headers(
        matcher in header_matcher_strategy(),
        headers in prop::collection::vec(
            (prop::sample::select(vec!["x-a", "x-b-bin", "X-A", "z"]), prop::collection::vec(any::<u8>(), 0..6)),
            0..4,
        ),
    ) {
        let raw = RawHeaders(headers.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect());
        let result = matcher.matches(&raw);
        let flipped = matcher.clone().with_invert(!matcher.invert).matches(&raw);
        let visible = header_value(&raw, &matcher.name).is_some();
        if visible || matcher.treat_missing_as_empty || matches!(matcher.condition, HeaderMatch::Present(_)) {
            prop_assert_eq!(flipped, !result);
        } else {
            // Envoy: a missing header fails value conditions either way.
            prop_assert!(!result && !flipped);
        }

        let mut map = http::HeaderMap::new();
        for (name, value) in &headers {
            if let Ok(value) = http::HeaderValue::from_bytes(value) {
                map.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
            }
        }
        let _ = matcher.matches(&map);
        let _ = matcher.matches(&GrpcHeaders::new(&map));
    }
}
