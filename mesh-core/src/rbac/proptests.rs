//! Properties of rule evaluation over random rule trees and requests: negation, the empty `and`/`or` of Envoy's
//! matchers, the symmetry of ALLOW and DENY, and header rules agreeing with route matching on ordinary headers.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::peer::{ConnectionInfo, PeerCertificate};
use crate::route::HeaderMatch;

/// A request drawn from a small world, so that random rules match it often enough to be interesting.
#[derive(Debug, Clone)]
struct World {
    path: &'static str,
    role: Option<&'static str>,
    local_port: u16,
    remote_last_octet: u8,
    certificate: Option<&'static str>,
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::sample::select(vec!["/a.S/M", "/a.S/N", "/b.T/M"]),
        prop::option::of(prop::sample::select(vec!["reader", "writer"])),
        prop::sample::select(vec![80_u16, 443]),
        0_u8..4,
        prop::option::of(prop::sample::select(vec![
            "spiffe://a.example/x",
            "spiffe://b.example/y",
        ])),
    )
        .prop_map(
            |(path, role, local_port, remote_last_octet, certificate)| World {
                path,
                role,
                local_port,
                remote_last_octet,
                certificate,
            },
        )
}

fn leaf_permission() -> impl Strategy<Value = Permission> {
    prop_oneof![
        Just(Permission::Any),
        prop::sample::select(vec!["/a.", "/b.", "/a.S/M"])
            .prop_map(|p| Permission::UrlPath(StringMatcher::prefix(p))),
        prop::sample::select(vec!["reader", "writer"])
            .prop_map(|r| Permission::Header(HeaderMatcher::exact("x-role", r))),
        prop::sample::select(vec![80_u16, 443]).prop_map(Permission::DestinationPort),
    ]
}

fn permission() -> impl Strategy<Value = Permission> {
    leaf_permission().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Permission::And),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Permission::Or),
            inner.prop_map(|p| Permission::Not(Box::new(p))),
        ]
    })
}

fn leaf_principal() -> impl Strategy<Value = Principal> {
    prop_oneof![
        Just(Principal::Any),
        Just(Principal::Authenticated(None)),
        prop::sample::select(vec!["spiffe://a.example/", "spiffe://b.example/"])
            .prop_map(|p| Principal::Authenticated(Some(StringMatcher::prefix(p)))),
        (0_u8..4).prop_map(|octet| {
            let range = CidrRange::new([127, 0, 0, octet].into(), 32).unwrap();
            Principal::RemoteIp(range)
        }),
    ]
}

fn principal() -> impl Strategy<Value = Principal> {
    leaf_principal().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Principal::And),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Principal::Or),
            inner.prop_map(|p| Principal::Not(Box::new(p))),
        ]
    })
}

/// Evaluates `check` against the request `world` describes.
fn with_request<T>(world: &World, check: impl FnOnce(&RbacRequest<'_, [(&str, &str)]>) -> T) -> T {
    let mut info = ConnectionInfo::new(
        ([127, 0, 0, 1], world.local_port).into(),
        ([127, 0, 0, world.remote_last_octet], 40000).into(),
    );
    if let Some(uri) = world.certificate {
        let mut certificate = PeerCertificate::new(Arc::from(&[0_u8][..]));
        certificate.uri_sans = vec![uri.into()];
        info = info.with_peer_certificate(Arc::new(certificate));
    }
    let headers: Vec<(&str, &str)> = world.role.map(|r| ("x-role", r)).into_iter().collect();
    let request = RbacRequest::new("POST", world.path, &headers[..]).with_connection(Some(&info));
    check(&request)
}

proptest! {
    #[test]
    fn double_negation_is_identity(p in permission(), q in principal(), world in world()) {
        with_request(&world, |request| {
            let not_not_p = Permission::Not(Box::new(Permission::Not(Box::new(p.clone()))));
            prop_assert_eq!(not_not_p.matches(request), p.matches(request));
            let not_not_q = Principal::Not(Box::new(Principal::Not(Box::new(q.clone()))));
            prop_assert_eq!(not_not_q.matches(request), q.matches(request));
            Ok(())
        })?;
    }

    #[test]
    fn and_or_follow_envoy_including_empty_lists(
        rules in prop::collection::vec(permission(), 0..4),
        ids in prop::collection::vec(principal(), 0..4),
        world in world(),
    ) {
        with_request(&world, |request| {
            let each: Vec<bool> = rules.iter().map(|p| p.matches(request)).collect();
            prop_assert_eq!(Permission::And(rules.clone()).matches(request), each.iter().all(|m| *m));
            prop_assert_eq!(Permission::Or(rules.clone()).matches(request), each.iter().any(|m| *m));
            // De Morgan: not(or(ps)) == and(not p for p in ps).
            let negated: Vec<Permission> = rules.iter().cloned().map(|p| Permission::Not(Box::new(p))).collect();
            prop_assert_eq!(
                !Permission::Or(rules.clone()).matches(request),
                Permission::And(negated).matches(request)
            );
            let each: Vec<bool> = ids.iter().map(|p| p.matches(request)).collect();
            prop_assert_eq!(Principal::And(ids.clone()).matches(request), each.iter().all(|m| *m));
            prop_assert_eq!(Principal::Or(ids.clone()).matches(request), each.iter().any(|m| *m));
            Ok(())
        })?;
        // Envoy: an empty `and` matches everything, an empty `or` nothing.
        with_request(&world, |request| {
            prop_assert!(Permission::And(vec![]).matches(request));
            prop_assert!(!Permission::Or(vec![]).matches(request));
            prop_assert!(Principal::And(vec![]).matches(request));
            prop_assert!(!Principal::Or(vec![]).matches(request));
            Ok(())
        })?;
    }

    #[test]
    fn allow_and_deny_over_the_same_policies_disagree(
        policies in prop::collection::vec(
            (prop::collection::vec(permission(), 0..3), prop::collection::vec(principal(), 0..3)),
            0..4,
        ),
        world in world(),
    ) {
        let policies: Vec<RbacPolicy> = policies
            .into_iter()
            .enumerate()
            .map(|(i, (permissions, principals))| RbacPolicy::new(&format!("p{i}"), permissions, principals))
            .collect();
        let allow = Rbac::new(RbacAction::Allow, policies.clone());
        let deny = Rbac::new(RbacAction::Deny, policies.clone());
        with_request(&world, |request| {
            let allowed = allow.evaluate(request);
            let denied = deny.evaluate(request);
            prop_assert_eq!(allowed.allowed, !denied.allowed);
            prop_assert_eq!(allowed.matched_policy_name(), denied.matched_policy_name());
            // The reported policy is the first that matches.
            let first = policies.iter().find(|p| p.matches(request)).map_or("", |p| &*p.name);
            prop_assert_eq!(allowed.matched_policy_name(), first);
            Ok(())
        })?;
    }
}

fn header_matcher() -> impl Strategy<Value = HeaderMatcher> {
    let name = prop::sample::select(vec!["x-a", "x-b"]);
    let condition = prop_oneof![
        any::<bool>().prop_map(HeaderMatch::Present),
        prop::sample::select(vec!["1", "2", "1,2", ""])
            .prop_map(|v| { HeaderMatch::String(StringMatcher::exact(v)) }),
        prop::sample::select(vec!["1", "2,", ""])
            .prop_map(|v| { HeaderMatch::String(StringMatcher::prefix(v)) }),
        (0_i64..3, 1_i64..4).prop_map(|(start, end)| HeaderMatch::Range { start, end }),
    ];
    (name, condition, any::<bool>(), any::<bool>()).prop_map(
        |(name, condition, invert, missing_as_empty)| {
            HeaderMatcher::new(name, condition)
                .with_invert(invert)
                .with_treat_missing_as_empty(missing_as_empty)
        },
    )
}

proptest! {
    /// On ordinary headers (no pseudo-header, hop-by-hop, `grpc-` or `-bin` name) RBAC's header rule behaves exactly as
    /// route matching's `HeaderMatcher`: same joining of values, same handling of invert and missing headers.
    #[test]
    fn ordinary_headers_match_as_in_routing(
        matcher in header_matcher(),
        headers in prop::collection::vec(
            (prop::sample::select(vec!["x-a", "x-b"]), prop::sample::select(vec!["1", "2", ""])),
            0..4,
        ),
    ) {
        let headers: &[(&str, &str)] = &headers;
        let request = RbacRequest::new("POST", "/s/m", headers);
        prop_assert_eq!(Permission::Header(matcher.clone()).matches(&request), matcher.matches(headers));
        prop_assert_eq!(Principal::Header(matcher.clone()).matches(&request), matcher.matches(headers));
    }
}
