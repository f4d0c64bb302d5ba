#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use proptest::prelude::*;
use std::collections::HashSet;

fn err(id: &str) -> SpiffeIdError {
    SpiffeId::parse(id).expect_err(id)
}

fn bad_domain_char(ch: char, position: usize) -> SpiffeIdError {
    SpiffeIdError::TrustDomainBadChar { ch, position }
}

fn bad_path_char(ch: char, position: usize) -> SpiffeIdError {
    SpiffeIdError::PathBadChar { ch, position }
}

#[test]
fn accepts_spec_examples() {
    for id in [
        "spiffe://example.org",
        "spiffe://example.org/ns/default/sa/greeter",
        "spiffe://a-b_c.d/x.y-z_",
        "spiffe://staging.example.com/payments/mysql",
        "spiffe://k8s-west.example.com/ns/staging/sa/default",
        "spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453",
        "spiffe://trust_domain_name.example.com/UPPER/Case/...",
        "spiffe://192.168.0.1/x",
    ] {
        let parsed = SpiffeId::parse(id).unwrap();
        assert_eq!(parsed.as_str(), id);
        assert_eq!(parsed.to_string(), id);
        assert_eq!(parsed, id.parse::<SpiffeId>().unwrap());
    }
}

#[test]
fn accessors_split_trust_domain_and_path() {
    let id = SpiffeId::parse("spiffe://example.org/ns/default/sa/greeter").unwrap();
    assert_eq!(id.trust_domain().as_str(), "example.org");
    assert_eq!(id.trust_domain().id_string(), "spiffe://example.org");
    assert_eq!(id.path(), "/ns/default/sa/greeter");
    assert_eq!(
        id.segments().collect::<Vec<_>>(),
        ["ns", "default", "sa", "greeter"]
    );
    assert_eq!(id.segments().next_back(), Some("greeter"));

    let root = SpiffeId::parse("spiffe://example.org").unwrap();
    assert_eq!(root.path(), "");
    assert_eq!(root.segments().count(), 0);
    assert_eq!(root.trust_domain(), id.trust_domain());
}

#[test]
fn membership_compares_trust_domain_only() {
    let domain = TrustDomain::new("example.org").unwrap();
    assert!(
        SpiffeId::parse("spiffe://example.org/a")
            .unwrap()
            .is_member_of(&domain)
    );
    assert!(
        SpiffeId::parse("spiffe://example.org")
            .unwrap()
            .is_member_of(&domain)
    );
    assert!(
        !SpiffeId::parse("spiffe://example.org.evil/a")
            .unwrap()
            .is_member_of(&domain)
    );
    assert!(
        !SpiffeId::parse("spiffe://evil.example.org")
            .unwrap()
            .is_member_of(&domain)
    );
}

#[test]
fn new_builds_the_same_id_as_parse() {
    let domain = TrustDomain::new("example.org").unwrap();
    let built = SpiffeId::new(&domain, "/ns/default").unwrap();
    assert_eq!(
        built,
        SpiffeId::parse("spiffe://example.org/ns/default").unwrap()
    );
    assert_eq!(
        SpiffeId::new(&domain, "").unwrap().as_str(),
        "spiffe://example.org"
    );
    // A trust domain borrowed from a longer ID must not drag that ID's path along.
    let borrowed = built.trust_domain().clone();
    assert_eq!(
        SpiffeId::new(&borrowed, "/x").unwrap().as_str(),
        "spiffe://example.org/x"
    );
    assert_eq!(borrowed.id_string(), "spiffe://example.org");
}

#[test]
fn new_rejects_bad_paths_with_path_offsets() {
    let domain = TrustDomain::new("example.org").unwrap();
    let new = |path: &str| SpiffeId::new(&domain, path).unwrap_err();
    assert_eq!(new("ns/default"), SpiffeIdError::RelativePath);
    assert_eq!(new("/a/"), SpiffeIdError::TrailingSlash { position: 2 });
    assert_eq!(new("/a//b"), SpiffeIdError::EmptySegment { position: 3 });
    assert_eq!(new("/a/.."), SpiffeIdError::DotSegment { position: 3 });
    assert_eq!(new("/a b"), bad_path_char(' ', 2));
    assert_eq!(new("/a?b"), SpiffeIdError::HasQuery { position: 2 });
    let long = format!("/{}", "a".repeat(MAX_SPIFFE_ID_LEN));
    assert_eq!(
        new(&long),
        SpiffeIdError::TooLong {
            len: 20 + long.len()
        }
    );
}

#[test]
fn trust_domain_forms() {
    let bare = TrustDomain::new("example.org").unwrap();
    assert_eq!(bare.to_string(), "example.org");
    assert_eq!(bare.id_string(), "spiffe://example.org");
    assert_eq!("example.org".parse::<TrustDomain>().unwrap(), bare);
    assert_eq!(TrustDomain::from_id_or_name("example.org").unwrap(), bare);
    assert_eq!(
        TrustDomain::from_id_or_name("spiffe://example.org").unwrap(),
        bare
    );
    assert_eq!(
        TrustDomain::from_id_or_name("spiffe://example.org/workload"),
        Err(SpiffeIdError::TrustDomainHasPath { position: 20 })
    );
    assert_eq!(
        TrustDomain::from_id_or_name("SPIFFE://example.org"),
        Err(SpiffeIdError::WrongScheme)
    );
    assert_eq!(TrustDomain::new(""), Err(SpiffeIdError::MissingTrustDomain));
    assert_eq!(
        TrustDomain::new("Example.org"),
        Err(bad_domain_char('E', 0))
    );
    assert_eq!(
        TrustDomain::new("example.org/x"),
        Err(bad_domain_char('/', 11))
    );
    assert_eq!(
        TrustDomain::new("example.org:1"),
        Err(SpiffeIdError::HasPort { position: 11 })
    );
    assert_eq!(
        TrustDomain::new("u@example.org"),
        Err(SpiffeIdError::HasUserInfo { position: 1 })
    );
    // "spiffe" alone is a fine bare name; only "://" switches to ID parsing.
    assert_eq!(
        TrustDomain::from_id_or_name("spiffe").unwrap().as_str(),
        "spiffe"
    );
}

#[test]
fn rejects_structure_errors() {
    use SpiffeIdError::*;
    assert_eq!(err(""), Empty);
    for id in [
        "example.org",
        "http://example.org",
        "SPIFFE://example.org",
        "Spiffe://example.org",
        "spiffe:/example.org",
        "spiffe:example.org",
        " spiffe://example.org",
        "://example.org",
    ] {
        assert_eq!(err(id), WrongScheme, "{id}");
    }
    assert_eq!(err("spiffe://"), MissingTrustDomain);
    assert_eq!(err("spiffe:///path"), MissingTrustDomain);
    assert_eq!(err("spiffe://?q"), MissingTrustDomain);
}

#[test]
fn rejects_bad_trust_domains() {
    use SpiffeIdError::*;
    assert_eq!(err("spiffe://Example.org/a"), bad_domain_char('E', 9));
    assert_eq!(err("spiffe://exa mple.org"), bad_domain_char(' ', 12));
    assert_eq!(err("spiffe://exämple.org"), bad_domain_char('ä', 11));
    assert_eq!(err("spiffe://[::1]/a"), bad_domain_char('[', 9));
    assert_eq!(err("spiffe://example.org:8080/a"), HasPort { position: 20 });
    assert_eq!(err("spiffe://example.org:"), HasPort { position: 20 });
    assert_eq!(
        err("spiffe://user@example.org"),
        HasUserInfo { position: 13 }
    );
    assert_eq!(
        err("spiffe://user:pw@example.org"),
        HasUserInfo { position: 16 }
    );
    assert_eq!(
        err("spiffe://ex%41mple.org"),
        PercentEncoded { position: 11 }
    );

    let max = "a".repeat(MAX_TRUST_DOMAIN_LEN);
    assert!(SpiffeId::parse(&format!("spiffe://{max}/x")).is_ok());
    assert!(TrustDomain::new(&max).is_ok());
    let over = "a".repeat(MAX_TRUST_DOMAIN_LEN + 1);
    assert_eq!(
        err(&format!("spiffe://{over}")),
        TrustDomainTooLong { len: 256 }
    );
    assert_eq!(
        TrustDomain::new(&over),
        Err(TrustDomainTooLong { len: 256 })
    );
}

#[test]
fn rejects_bad_paths() {
    use SpiffeIdError::*;
    assert_eq!(err("spiffe://example.org/"), TrailingSlash { position: 20 });
    assert_eq!(
        err("spiffe://example.org/a/"),
        TrailingSlash { position: 22 }
    );
    assert_eq!(err("spiffe://example.org//"), EmptySegment { position: 21 });
    assert_eq!(
        err("spiffe://example.org/a//b"),
        EmptySegment { position: 23 }
    );
    assert_eq!(err("spiffe://example.org/./a"), DotSegment { position: 21 });
    assert_eq!(
        err("spiffe://example.org/../a"),
        DotSegment { position: 21 }
    );
    assert_eq!(err("spiffe://example.org/a/."), DotSegment { position: 23 });
    assert_eq!(
        err("spiffe://example.org/a/.."),
        DotSegment { position: 23 }
    );
    assert_eq!(err("spiffe://example.org/a b"), bad_path_char(' ', 22));
    assert_eq!(err("spiffe://example.org/a$b"), bad_path_char('$', 22));
    assert_eq!(err("spiffe://example.org/é"), bad_path_char('é', 21));
    assert_eq!(err("spiffe://example.org/a:b"), bad_path_char(':', 22));
    assert_eq!(
        err("spiffe://example.org/%41"),
        PercentEncoded { position: 21 }
    );
    assert_eq!(err("spiffe://example.org?a=b"), HasQuery { position: 20 });
    assert_eq!(err("spiffe://example.org/p?a=b"), HasQuery { position: 22 });
    assert_eq!(err("spiffe://example.org#f"), HasFragment { position: 20 });
    assert_eq!(
        err("spiffe://example.org/p#f"),
        HasFragment { position: 22 }
    );
    assert_eq!(
        err("spiffe://example.org/p#f?q"),
        HasFragment { position: 22 }
    );
}

#[test]
fn enforces_whole_id_length() {
    let prefix = "spiffe://example.org/";
    let at_limit = format!("{prefix}{}", "a".repeat(MAX_SPIFFE_ID_LEN - prefix.len()));
    assert_eq!(
        SpiffeId::parse(&at_limit).unwrap().as_str().len(),
        MAX_SPIFFE_ID_LEN
    );
    let over = format!("{at_limit}a");
    assert_eq!(
        err(&over),
        SpiffeIdError::TooLong {
            len: MAX_SPIFFE_ID_LEN + 1
        }
    );
}

#[test]
fn errors_say_what_and_where() {
    let message = err("spiffe://example.org/a b").to_string();
    assert!(
        message.contains("' '") && message.contains("byte 22"),
        "{message}"
    );
    let message = err("spiffe://example.org:80").to_string();
    assert!(
        message.contains("port") && message.contains("byte 20"),
        "{message}"
    );
}

#[test]
fn equality_hash_and_order() {
    let a = SpiffeId::parse("spiffe://a/x").unwrap();
    let a_dash = SpiffeId::parse("spiffe://a-b/x").unwrap();
    let a_root = SpiffeId::parse("spiffe://a").unwrap();
    assert_eq!(a.clone(), a);
    let set: HashSet<_> = [a.clone(), a.clone(), a_dash.clone()].into_iter().collect();
    assert_eq!(set.len(), 2);
    // Grouped by trust domain, unlike plain string order ('-' sorts before '/').
    let mut ids = vec![a_dash.clone(), a.clone(), a_root.clone()];
    ids.sort();
    assert_eq!(ids, [a_root, a, a_dash]);
}

#[test]
fn serde_round_trip_and_validation() {
    let id = SpiffeId::parse("spiffe://example.org/ns/default").unwrap();
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(json, "\"spiffe://example.org/ns/default\"");
    assert_eq!(serde_json::from_str::<SpiffeId>(&json).unwrap(), id);

    let domain = TrustDomain::new("example.org").unwrap();
    let json = serde_json::to_string(&domain).unwrap();
    assert_eq!(json, "\"example.org\"");
    assert_eq!(serde_json::from_str::<TrustDomain>(&json).unwrap(), domain);

    let bad = serde_json::from_str::<SpiffeId>("\"spiffe://Example.org\"").unwrap_err();
    assert!(
        bad.to_string().contains("invalid character 'E' at byte 9"),
        "{bad}"
    );
    assert!(serde_json::from_str::<SpiffeId>("42").is_err());
    assert!(serde_json::from_str::<TrustDomain>("\"spiffe://example.org\"").is_err());
}

// Independent oracle for the spec's rules (SPIFFE-ID §2, §2.1, §2.2, §2.3).
fn satisfies_spec(id: &str) -> bool {
    static SHAPE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^spiffe://[a-z0-9._-]{1,255}((?:/[a-zA-Z0-9._-]+)*)$").unwrap()
    });
    let Some(captures) = SHAPE.captures(id) else {
        return false;
    };
    id.len() <= MAX_SPIFFE_ID_LEN
        && captures[1]
            .split('/')
            .skip(1)
            .all(|s| s != "." && s != "..")
}

fn trust_domain_name() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,40}"
}

fn segment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{1,12}".prop_filter("relative segment", |s| s != "." && s != "..")
}

fn valid_id() -> impl Strategy<Value = (String, Vec<String>)> {
    (trust_domain_name(), prop::collection::vec(segment(), 0..6))
}

fn join((domain, segments): &(String, Vec<String>)) -> String {
    let path: String = segments.iter().map(|s| format!("/{s}")).collect();
    format!("spiffe://{domain}{path}")
}

// Strings close to SPIFFE IDs, so the equivalence property explores the interesting edges.
fn near_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "spiffe://[a-zA-Z0-9./:@%?#_ -]{0,30}",
        "[sS]piffe:/{0,3}[a-z.]{0,5}(/[a-zA-Z.]{0,3}){0,4}",
        valid_id().prop_map(|parts| join(&parts)),
    ]
}

proptest! {
    #[test]
    fn valid_parts_round_trip(parts in valid_id()) {
        let text = join(&parts);
        let id = SpiffeId::parse(&text).unwrap();
        prop_assert_eq!(id.to_string(), text);
        prop_assert_eq!(id.trust_domain().as_str(), parts.0.as_str());
        prop_assert_eq!(id.segments().collect::<Vec<_>>(), parts.1.iter().map(String::as_str).collect::<Vec<_>>());
        let domain = TrustDomain::new(&parts.0).unwrap();
        prop_assert_eq!(SpiffeId::new(&domain, id.path()).unwrap(), id);
    }

    #[test]
    fn parse_never_panics_on_text(text in ".*") {
        let _ = SpiffeId::parse(&text);
        let _ = TrustDomain::from_id_or_name(&text);
        let _ = SpiffeId::parse(&format!("spiffe://{text}"));
    }

    #[test]
    fn parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2100)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = SpiffeId::parse(&text);
        let _ = TrustDomain::from_id_or_name(&text);
        let _ = SpiffeId::parse(&format!("spiffe://{text}"));
    }

    #[test]
    fn accepted_exactly_when_spec_allows(text in near_id()) {
        let parsed = SpiffeId::parse(&text);
        prop_assert_eq!(parsed.is_ok(), satisfies_spec(&text), "{:?}", parsed);
        if let Ok(id) = parsed {
            prop_assert_eq!(id.as_str(), text.as_str());
            prop_assert_eq!(&SpiffeId::parse(id.as_str()).unwrap(), &id);
            let rebuilt = format!("spiffe://{}{}", id.trust_domain(), id.path());
            prop_assert_eq!(rebuilt, text);
        }
    }

    #[test]
    fn inserting_an_invalid_char_is_rejected(
        parts in valid_id(),
        at in any::<prop::sample::Index>(),
        ch in any::<char>().prop_filter("allowed char", |c| !is_path_char(*c) && *c != '/'),
    ) {
        let mut text = join(&parts);
        let position = at.index(text.len() + 1);
        text.insert(position, ch);
        let error = SpiffeId::parse(&text).unwrap_err();
        // A '?' or '#' right after "spiffe://" ends the authority before any name.
        let ends_empty_authority = position == SPIFFE_ID_PREFIX.len() && matches!(ch, '?' | '#');
        if ends_empty_authority {
            prop_assert_eq!(error, SpiffeIdError::MissingTrustDomain);
        } else if position >= SPIFFE_ID_PREFIX.len() {
            prop_assert_eq!(error.position(), Some(position), "{:?}", error);
        }
    }

    #[test]
    fn uppercase_in_trust_domain_is_rejected(
        parts in valid_id(),
        at in any::<prop::sample::Index>(),
        ch in "[A-Z]",
    ) {
        let mut text = join(&parts);
        let position = SPIFFE_ID_PREFIX.len() + at.index(parts.0.len() + 1);
        text.insert_str(position, &ch);
        let expected = bad_domain_char(ch.chars().next().unwrap(), position);
        prop_assert_eq!(SpiffeId::parse(&text), Err(expected));
    }
}
