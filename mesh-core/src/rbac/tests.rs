use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| unreachable!("test literal"))
}

#[test]
fn cidr_contains_by_prefix() {
    let net = CidrRange::new(ip("10.1.0.0"), 16).unwrap_or_else(|| unreachable!());
    assert!(net.contains(ip("10.1.255.3")));
    assert!(!net.contains(ip("10.2.0.1")));
    assert!(!net.contains(ip("::1")));
    let all = CidrRange::new(ip("0.0.0.0"), 0).unwrap_or_else(|| unreachable!());
    assert!(all.contains(ip("203.0.113.9")));
    let host = CidrRange::new(ip("::1"), 128).unwrap_or_else(|| unreachable!());
    assert!(host.contains(ip("::1")) && !host.contains(ip("::2")));
    assert!(CidrRange::new(ip("10.0.0.0"), 33).is_none());
}

mod evaluation {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::super::*;
    use crate::matcher::{StringMatch, StringMatcher};
    use crate::peer::{ConnectionInfo, PeerCertificate};
    use crate::route::{HeaderMatch, HeaderMatcher};

    const PATH: &str = "/helloworld.Greeter/SayHello";

    fn connection(local: &str, remote: &str) -> ConnectionInfo {
        ConnectionInfo::new(local.parse().unwrap(), remote.parse().unwrap())
    }

    fn certificate(uri: &[&str], dns: &[&str], subject: &str) -> Arc<PeerCertificate> {
        let mut certificate = PeerCertificate::new(Arc::from(&[0_u8][..]));
        certificate.uri_sans = uri.iter().map(|s| Arc::from(*s)).collect();
        certificate.dns_sans = dns.iter().map(|s| Arc::from(*s)).collect();
        certificate.subject = subject.into();
        Arc::new(certificate)
    }

    #[allow(clippy::needless_pass_by_value)] // keeps the call sites short
    fn permits(permission: Permission, request: &RbacRequest<'_, [(&str, &str)]>) -> bool {
        permission.matches(request)
    }

    #[allow(clippy::needless_pass_by_value)]
    fn admits(principal: Principal, request: &RbacRequest<'_, [(&str, &str)]>) -> bool {
        principal.matches(request)
    }

    fn header(name: &str, kind: StringMatch) -> HeaderMatcher {
        HeaderMatcher::new(name, HeaderMatch::String(StringMatcher::new(kind, false)))
    }

    #[test]
    fn pseudo_headers_are_the_wire_values_and_host_aliases_authority() {
        let headers: &[(&str, &str)] = &[("content-type", "application/grpc+proto")];
        let request = RbacRequest::new("POST", "/svc/M?x=1", headers)
            .with_authority(Some("api.example.com:443"));
        let exact = |name: &str, value: &str| Permission::Header(HeaderMatcher::exact(name, value));
        assert!(permits(exact(":method", "POST"), &request));
        assert!(permits(exact(":path", "/svc/M?x=1"), &request));
        assert!(permits(
            Permission::UrlPath(StringMatcher::exact("/svc/M")),
            &request
        ));
        assert!(permits(
            exact(":authority", "api.example.com:443"),
            &request
        ));
        assert!(permits(exact("host", "api.example.com:443"), &request));
        let wildcard = Permission::Header(header(
            "host",
            StringMatch::Suffix(".example.com:443".into()),
        ));
        assert!(permits(wildcard, &request));
        // gRFC A41: the client's content-type, not the hard-coded one route matching sees.
        assert!(permits(
            exact("content-type", "application/grpc+proto"),
            &request
        ));
        assert!(!permits(
            exact("content-type", "application/grpc"),
            &request
        ));
        // No authority at all: a value condition fails, presence reports absent.
        let bare = RbacRequest::new("POST", PATH, headers);
        assert!(!permits(
            Permission::Header(HeaderMatcher::present(":authority")),
            &bare
        ));
    }

    #[test]
    fn hidden_headers_never_match_but_binary_ones_do() {
        let headers: &[(&str, &str)] = &[
            ("te", "trailers"),
            ("connection", "close"),
            ("grpc-timeout", "1S"),
            ("x-trace-bin", "AAEC"),
        ];
        let request = RbacRequest::new("POST", PATH, headers);
        let present = |name: &str| Permission::Header(HeaderMatcher::present(name));
        assert!(!permits(present("te"), &request));
        assert!(!permits(present("connection"), &request));
        assert!(!permits(present("grpc-timeout"), &request));
        assert!(!permits(present(":scheme"), &request));
        // gRFC A41: binary headers in their base64 form.
        assert!(permits(present("x-trace-bin"), &request));
        assert!(permits(
            Permission::Header(HeaderMatcher::exact("x-trace-bin", "AAEC")),
            &request
        ));
    }

    #[test]
    fn multiple_values_are_joined_with_commas() {
        let headers: &[(&str, &str)] = &[("x-role", "reader"), ("x-role", "writer")];
        let request = RbacRequest::new("POST", PATH, headers);
        assert!(permits(
            Permission::Header(HeaderMatcher::exact("x-role", "reader,writer")),
            &request
        ));
        let regex = StringMatcher::regex(".*(^|,)writer(,|$).*").unwrap();
        let regex = HeaderMatcher::new("x-role", HeaderMatch::String(regex));
        assert!(permits(Permission::Header(regex), &request));
    }

    #[test]
    fn missing_headers_fail_value_conditions_even_inverted() {
        let headers: &[(&str, &str)] = &[];
        let request = RbacRequest::new("POST", PATH, headers);
        let inverted = HeaderMatcher::exact("x-user", "alice").with_invert(true);
        assert!(!permits(Permission::Header(inverted.clone()), &request));
        let empty_ok = inverted.with_treat_missing_as_empty(true);
        assert!(permits(Permission::Header(empty_ok), &request));
        let absent = HeaderMatcher::present("x-user").with_invert(true);
        assert!(permits(Permission::Header(absent), &request));
        let range = HeaderMatcher::new("x-n", HeaderMatch::Range { start: 1, end: 5 });
        let numbered: &[(&str, &str)] = &[("x-n", "4")];
        assert!(permits(
            Permission::Header(range.clone()),
            &RbacRequest::new("POST", PATH, numbered)
        ));
        assert!(!permits(Permission::Header(range), &request));
    }

    #[test]
    fn addresses_come_from_the_connection() {
        let headers: &[(&str, &str)] = &[];
        let info = connection("10.0.0.5:50051", "[::ffff:192.168.1.7]:40000");
        let request = RbacRequest::new("POST", PATH, headers).with_connection(Some(&info));
        let cidr = |s: &str, len| CidrRange::new(s.parse().unwrap(), len).unwrap();
        assert!(permits(Permission::DestinationPort(50051), &request));
        assert!(!permits(Permission::DestinationPort(50052), &request));
        assert!(permits(
            Permission::DestinationIp(cidr("10.0.0.0", 8)),
            &request
        ));
        // A dual-stack listener's mapped address matches the IPv4 range.
        for principal in [
            Principal::SourceIp(cidr("192.168.1.0", 24)),
            Principal::DirectRemoteIp(cidr("192.168.1.0", 24)),
            Principal::RemoteIp(cidr("192.168.1.7", 32)),
        ] {
            assert!(admits(principal, &request));
        }
        assert!(!admits(
            Principal::RemoteIp(cidr("192.168.2.0", 24)),
            &request
        ));
        // Without connection facts no address rule matches, so their negation does.
        let unknown = RbacRequest::new("POST", PATH, headers);
        assert!(!permits(Permission::DestinationPort(50051), &unknown));
        assert!(permits(
            Permission::Not(Box::new(Permission::DestinationPort(50051))),
            &unknown
        ));
        assert!(!admits(Principal::SourceIp(cidr("0.0.0.0", 0)), &unknown));
    }

    #[test]
    fn authenticated_tries_uri_then_dns_sans_then_subject() {
        let headers: &[(&str, &str)] = &[];
        let plain = connection("127.0.0.1:1", "127.0.0.1:2");
        let mtls = plain.clone().with_peer_certificate(certificate(
            &["spiffe://a.example/ns/default/sa/client"],
            &["client.a.example"],
            "CN=client,O=A",
        ));
        let request = |info| RbacRequest::new("POST", PATH, headers).with_connection(Some(info));
        let named = |m: StringMatcher| Principal::Authenticated(Some(m));

        assert!(admits(Principal::Authenticated(None), &request(&mtls)));
        assert!(!admits(Principal::Authenticated(None), &request(&plain)));
        assert!(!admits(
            Principal::Authenticated(None),
            &RbacRequest::new("POST", PATH, headers)
        ));
        assert!(admits(
            named(StringMatcher::exact(
                "spiffe://a.example/ns/default/sa/client"
            )),
            &request(&mtls)
        ));
        assert!(admits(
            named(StringMatcher::exact("client.a.example")),
            &request(&mtls)
        ));
        assert!(admits(
            named(StringMatcher::prefix("CN=client")),
            &request(&mtls)
        ));
        assert!(!admits(
            named(StringMatcher::exact(
                "spiffe://a.example/ns/default/sa/other"
            )),
            &request(&mtls)
        ));
        // Plaintext is never authenticated, even for a matcher that accepts the empty string.
        assert!(!admits(named(StringMatcher::exact("")), &request(&plain)));
    }

    #[test]
    fn tls_without_a_client_certificate_is_authenticated_as_the_empty_name() {
        let headers: &[(&str, &str)] = &[];
        let tls = connection("127.0.0.1:1", "127.0.0.1:2").with_tls();
        let request = RbacRequest::new("POST", PATH, headers).with_connection(Some(&tls));
        let named = |m: StringMatcher| Principal::Authenticated(Some(m));
        // gRFC A41: any TLS connection is authenticated; without a certificate the name is "".
        assert!(admits(Principal::Authenticated(None), &request));
        assert!(admits(named(StringMatcher::exact("")), &request));
        assert!(!admits(named(StringMatcher::exact("CN=client")), &request));
    }

    #[test]
    fn requested_server_name_is_the_empty_string() {
        let headers: &[(&str, &str)] = &[];
        let request = RbacRequest::new("POST", PATH, headers);
        assert!(permits(
            Permission::RequestedServerName(StringMatcher::exact("")),
            &request
        ));
        assert!(!permits(
            Permission::RequestedServerName(StringMatcher::exact("api.example.com")),
            &request
        ));
    }

    fn policy(name: &str, path_prefix: &str) -> RbacPolicy {
        RbacPolicy::new(
            name,
            vec![Permission::UrlPath(StringMatcher::prefix(path_prefix))],
            vec![Principal::Any],
        )
    }

    #[test]
    fn allow_and_deny_report_the_first_matching_policy() {
        let headers: &[(&str, &str)] = &[];
        let request = RbacRequest::new("POST", PATH, headers);
        let policies = vec![
            policy("admin", "/admin."),
            policy("greeter-a", "/helloworld."),
            policy("greeter-b", "/helloworld.Greeter/"),
        ];
        let allow = Rbac::new(RbacAction::Allow, policies.clone());
        let decision = allow.evaluate(&request);
        assert!(decision.allowed);
        assert_eq!(decision.matched_policy_name(), "greeter-a");
        let deny = Rbac::new(RbacAction::Deny, policies);
        let decision = deny.evaluate(&request);
        assert!(!decision.allowed);
        assert_eq!(decision.matched_policy_name(), "greeter-a");

        let other = RbacRequest::new("POST", "/other.Svc/M", headers);
        assert_eq!(
            allow.evaluate(&other),
            RbacDecision {
                allowed: false,
                matched_policy: None
            }
        );
        assert_eq!(
            deny.evaluate(&other),
            RbacDecision {
                allowed: true,
                matched_policy: None
            }
        );
        // No policies: ALLOW denies everything, DENY allows everything.
        assert!(
            !Rbac::new(RbacAction::Allow, vec![])
                .evaluate(&request)
                .allowed
        );
        assert!(
            Rbac::new(RbacAction::Deny, vec![])
                .evaluate(&request)
                .allowed
        );
    }

    #[test]
    fn a_policy_needs_a_permission_and_a_principal() {
        let headers: &[(&str, &str)] = &[];
        let request = RbacRequest::new("POST", PATH, headers);
        let no_principal = RbacPolicy::new("p", vec![Permission::Any], vec![]);
        assert!(!no_principal.matches(&request));
        let no_permission = RbacPolicy::new("p", vec![], vec![Principal::Any]);
        assert!(!no_permission.matches(&request));
        let wrong_principal = RbacPolicy::new(
            "p",
            vec![Permission::Any],
            vec![Principal::Authenticated(None)],
        );
        assert!(!wrong_principal.matches(&request));
    }

    #[test]
    fn a_chain_stops_at_the_first_denial() {
        let headers: &[(&str, &str)] = &[];
        let request = RbacRequest::new("POST", PATH, headers);
        let deny_greeter = RbacFilter::new(
            "deny",
            Rbac::new(RbacAction::Deny, vec![policy("no-greeter", "/helloworld.")]),
        );
        let allow_all = RbacFilter::new(
            "allow",
            Rbac::new(RbacAction::Allow, vec![policy("all", "/")]),
        );
        let chain = RbacChain::new(vec![deny_greeter, allow_all]);
        let mut seen = Vec::new();
        let decision = chain.evaluate(&request, |filter, d| {
            seen.push((filter.name.to_string(), d.allowed));
        });
        assert!(!decision.allowed);
        assert_eq!(decision.filter.map(|f| &*f.name), Some("deny"));
        assert_eq!(
            decision.matched_policy.map(|p| &*p.name),
            Some("no-greeter")
        );
        assert_eq!(seen, [("deny".to_owned(), false)]);

        let other = RbacRequest::new("POST", "/other.Svc/M", headers);
        let mut seen = Vec::new();
        let decision = chain.evaluate(&other, |filter, d| {
            seen.push((filter.name.to_string(), d.allowed));
        });
        assert!(decision.allowed);
        assert_eq!(decision.matched_policy.map(|p| &*p.name), Some("all"));
        assert_eq!(
            seen,
            [("deny".to_owned(), true), ("allow".to_owned(), true)]
        );

        assert!(
            RbacChain::default()
                .evaluate(&request, |_, _| unreachable!())
                .allowed
        );
    }

    #[test]
    fn chain_from_http_filters_keeps_rules_in_order() {
        use crate::listener::{HttpFilter, HttpFilterConfig};
        let rules = Rbac::new(RbacAction::Deny, vec![]);
        let filters = [
            HttpFilter::new("authz-a", HttpFilterConfig::Rbac(Some(rules.clone()))),
            HttpFilter::new("per-route-only", HttpFilterConfig::Rbac(None)),
            HttpFilter::new("authz-b", HttpFilterConfig::Rbac(Some(rules))),
            HttpFilter::router(),
        ];
        let chain = RbacChain::from_http_filters(&filters);
        let names: Vec<&str> = chain.filters().iter().map(|f| &*f.name).collect();
        assert_eq!(names, ["authz-a", "authz-b"]);
    }

    #[test]
    fn audit_conditions_follow_the_decision() {
        assert!(!AuditCondition::None.applies(true) && !AuditCondition::None.applies(false));
        assert!(AuditCondition::OnDeny.applies(false) && !AuditCondition::OnDeny.applies(true));
        assert!(AuditCondition::OnAllow.applies(true) && !AuditCondition::OnAllow.applies(false));
        assert!(AuditCondition::OnDenyAndAllow.applies(true));
        assert!(AuditCondition::OnDenyAndAllow.applies(false));
    }

    #[test]
    fn url_path_drops_query_and_fragment() {
        let headers: &[(&str, &str)] = &[];
        assert_eq!(
            RbacRequest::new("GET", "/a/b?c#d", headers).url_path(),
            "/a/b"
        );
        assert_eq!(RbacRequest::new("GET", "/a#d?c", headers).url_path(), "/a");
        assert_eq!(RbacRequest::new("GET", "/a", headers).url_path(), "/a");
    }
}
