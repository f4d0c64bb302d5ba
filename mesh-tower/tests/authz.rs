//! Authorization over real sockets: an HTTP/2 server on 127.0.0.1 with the authorization layer, whose accept loop
//! hands every request the connection's facts (and a test-made peer certificate, standing in for mTLS), called by an
//! HTTP/2 client as a gRPC client would. The cases mirror gRPC's xDS authz interop test: header regex, host wildcard,
//! destination port, URL path, principal present, exact and never-matching principals, under ALLOW and DENY; then
//! runtime swaps and gRFC A59 audit events.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "authz/audit_capture.rs"]
mod audit_capture;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use audit_capture::{AuditEvent, capture_audit};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::identity::SpiffeId;
use mesh_core::matcher::{StringMatch, StringMatcher};
use mesh_core::peer::{ConnectionInfo, PeerCertificate};
use mesh_core::rbac::{
    AuditCondition, Permission, Principal, Rbac, RbacAction, RbacChain, RbacFilter, RbacPolicy,
};
use mesh_core::route::{HeaderMatch, HeaderMatcher};
use mesh_tower::authz::{AuthorizationLayer, DENIED_MESSAGE};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, ServiceExt};

const CLIENT_ID: &str = "spiffe://a.example/ns/default/sa/client";
const UNARY_CALL: &str = "/grpc.testing.TestService/UnaryCall";
const EMPTY_CALL: &str = "/grpc.testing.TestService/EmptyCall";

/// An HTTP/2 server with the authorization layer in front of a handler that counts the calls it gets.
struct Server {
    addr: SocketAddr,
    handled: Arc<AtomicUsize>,
    policies: Arc<ArcSwap<RbacChain>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Serves on a free port of 127.0.0.1; every connection's peer presents `peer` (none: plaintext). Starts with
    /// no rules (everything allowed).
    async fn start(peer: Option<Arc<PeerCertificate>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handled = Arc::new(AtomicUsize::new(0));
        let policies = Arc::new(ArcSwap::from_pointee(RbacChain::default()));
        let counter = Arc::clone(&handled);
        let handler = tower::service_fn(move |_request: Request<Incoming>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                let response = Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "0")
                    .body(Full::<Bytes>::default())
                    .unwrap();
                Ok::<_, Infallible>(response)
            }
        });
        let authorized = AuthorizationLayer::from_shared(Arc::clone(&policies)).layer(handler);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let (stream, remote) = listener.accept().await.unwrap();
                // The accept wrapper: what a TLS acceptor would learn about the connection.
                let mut info = ConnectionInfo::new(stream.local_addr().unwrap(), remote);
                if let Some(certificate) = &peer {
                    info = info.with_peer_certificate(Arc::clone(certificate));
                }
                let info = Arc::new(info);
                let authorized = authorized.clone();
                let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                    request.extensions_mut().insert(Arc::clone(&info));
                    authorized.clone().oneshot(request)
                });
                connections.spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            handled,
            policies,
            task,
        }
    }

    fn set_rules(&self, chain: RbacChain) {
        self.policies.store(Arc::new(chain));
    }

    fn handled(&self) -> usize {
        self.handled.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

/// What a client sees of a call.
#[derive(Debug, PartialEq)]
struct Outcome {
    grpc_status: Option<String>,
    grpc_message: Option<String>,
}

impl Outcome {
    fn allowed(&self) -> bool {
        match self.grpc_status.as_deref() {
            Some("0") => true,
            Some("7") => {
                assert_eq!(self.grpc_message.as_deref(), Some(DENIED_MESSAGE));
                false
            }
            other => panic!("unexpected grpc-status {other:?}"),
        }
    }
}

/// One HTTP/2 connection to the server, used like a gRPC channel.
struct Client {
    sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        Self { sender }
    }

    /// A unary gRPC call to `path` with `:authority` `authority` and the `test` metadata `test`.
    async fn call(&mut self, authority: &str, path: &str, test: &str) -> Outcome {
        let request = Request::post(format!("http://{authority}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("test", test)
            .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
            .unwrap();
        self.sender.ready().await.unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let (parts, body) = response.into_parts();
        let trailers = body.collect().await.unwrap().trailers().cloned();
        let read = |name: &str| {
            parts
                .headers
                .get(name)
                .or_else(|| trailers.as_ref().and_then(|t| t.get(name)))
                .map(|value| value.to_str().unwrap().to_owned())
        };
        Outcome {
            grpc_status: read("grpc-status"),
            grpc_message: read("grpc-message"),
        }
    }
}

fn client_certificate() -> Arc<PeerCertificate> {
    let mut certificate = PeerCertificate::new(Arc::from(&b"test-made leaf"[..]));
    certificate.spiffe_id = Some(SpiffeId::parse(CLIENT_ID).unwrap());
    certificate.uri_sans = vec![CLIENT_ID.into()];
    certificate.subject = "CN=client,O=a.example".into();
    Arc::new(certificate)
}

/// gRPC's authz interop policies: each applies to calls whose `test` metadata names it, plus its own condition.
fn interop_rules(action: RbacAction, server_port: u16) -> Rbac {
    let test_is = |case: &str| Permission::Header(HeaderMatcher::exact("test", case));
    let when = |case: &str, rule: Permission| Permission::And(vec![test_is(case), rule]);
    let any_principal = vec![Principal::Any];
    let authenticated =
        |name: Option<&str>| vec![Principal::Authenticated(name.map(StringMatcher::exact))];
    let host_wildcard = HeaderMatcher::new(
        "host",
        HeaderMatch::String(StringMatcher::new(
            StringMatch::Suffix(".mesh.example".into()),
            false,
        )),
    );
    let regex = StringMatcher::regex("header-regex-[ab]").unwrap();
    let policies = vec![
        RbacPolicy::new(
            "destination-port",
            vec![when(
                "destination-port",
                Permission::DestinationPort(server_port),
            )],
            any_principal.clone(),
        ),
        RbacPolicy::new(
            "header-regex",
            vec![Permission::Header(HeaderMatcher::new(
                "test",
                HeaderMatch::String(regex),
            ))],
            any_principal.clone(),
        ),
        RbacPolicy::new(
            "host-wildcard",
            vec![when("host-wildcard", Permission::Header(host_wildcard))],
            any_principal.clone(),
        ),
        RbacPolicy::new(
            "match-principal",
            vec![test_is("match-principal")],
            authenticated(Some(CLIENT_ID)),
        ),
        RbacPolicy::new(
            "never-match-principal",
            vec![test_is("never-match-principal")],
            authenticated(Some("never-match")),
        ),
        RbacPolicy::new(
            "principal-present",
            vec![test_is("principal-present")],
            authenticated(None),
        ),
        RbacPolicy::new(
            "url-path",
            vec![when(
                "url-path",
                Permission::UrlPath(StringMatcher::exact(UNARY_CALL)),
            )],
            any_principal,
        ),
    ];
    Rbac::new(action, policies)
}

/// (test metadata, authority, path, whether an ALLOW filter lets it through with an mTLS peer, without one).
const INTEROP_CASES: &[(&str, &str, &str, bool, bool)] = &[
    (
        "destination-port",
        "svc.mesh.example",
        UNARY_CALL,
        true,
        true,
    ),
    ("header-regex-a", "svc.mesh.example", UNARY_CALL, true, true),
    (
        "header-regex-c",
        "svc.mesh.example",
        UNARY_CALL,
        false,
        false,
    ),
    (
        "host-wildcard",
        "greeter.mesh.example",
        UNARY_CALL,
        true,
        true,
    ),
    (
        "host-wildcard",
        "greeter.other.example",
        UNARY_CALL,
        false,
        false,
    ),
    (
        "match-principal",
        "svc.mesh.example",
        UNARY_CALL,
        true,
        false,
    ),
    (
        "never-match-principal",
        "svc.mesh.example",
        UNARY_CALL,
        false,
        false,
    ),
    (
        "principal-present",
        "svc.mesh.example",
        UNARY_CALL,
        true,
        false,
    ),
    ("url-path", "svc.mesh.example", UNARY_CALL, true, true),
    ("url-path", "svc.mesh.example", EMPTY_CALL, false, false),
    ("no-policy", "svc.mesh.example", UNARY_CALL, false, false),
];

async fn run_interop_cases(action: RbacAction, mtls: bool) {
    let server = Server::start(mtls.then(client_certificate)).await;
    server.set_rules(RbacChain::single(
        "authz-interop",
        interop_rules(action, server.addr.port()),
    ));
    let mut client = Client::connect(server.addr).await;
    for &(test, authority, path, with_mtls, without) in INTEROP_CASES {
        let allow_expected = if mtls { with_mtls } else { without };
        let expected = match action {
            RbacAction::Allow => allow_expected,
            _ => !allow_expected,
        };
        let handled_before = server.handled();
        let outcome = client.call(authority, path, test).await;
        let case = format!("{action:?} mtls={mtls} test={test} authority={authority} path={path}");
        assert_eq!(outcome.allowed(), expected, "{case}");
        // A denied call never reaches the handler.
        assert_eq!(
            server.handled() - handled_before,
            usize::from(expected),
            "{case}"
        );
    }
}

#[tokio::test]
async fn allow_policies_admit_only_matching_calls_with_mtls_peer() {
    run_interop_cases(RbacAction::Allow, true).await;
}

#[tokio::test]
async fn allow_policies_admit_only_matching_calls_with_plaintext_peer() {
    run_interop_cases(RbacAction::Allow, false).await;
}

#[tokio::test]
async fn deny_policies_reject_exactly_the_matching_calls_with_mtls_peer() {
    run_interop_cases(RbacAction::Deny, true).await;
}

#[tokio::test]
async fn deny_policies_reject_exactly_the_matching_calls_with_plaintext_peer() {
    run_interop_cases(RbacAction::Deny, false).await;
}

#[tokio::test]
async fn rules_swapped_at_runtime_apply_to_the_next_call_on_the_same_connection() {
    let server = Server::start(Some(client_certificate())).await;
    let mut client = Client::connect(server.addr).await;
    assert!(
        client
            .call("svc.mesh.example", UNARY_CALL, "x")
            .await
            .allowed()
    );

    let deny_all = Rbac::new(
        RbacAction::Deny,
        vec![RbacPolicy::new(
            "everything",
            vec![Permission::Any],
            vec![Principal::Any],
        )],
    );
    server.set_rules(RbacChain::single("lockdown", deny_all));
    assert!(
        !client
            .call("svc.mesh.example", UNARY_CALL, "x")
            .await
            .allowed()
    );

    server.set_rules(RbacChain::default());
    assert!(
        client
            .call("svc.mesh.example", UNARY_CALL, "x")
            .await
            .allowed()
    );
    assert_eq!(server.handled(), 2);
}

/// gRFC A43/A59's authorization policy shape: a DENY filter, then an ALLOW filter, with the audit conditions A59's
/// table derives from the policy's one condition.
fn audited_chain(deny_condition: AuditCondition, allow_condition: AuditCondition) -> RbacChain {
    let deny = Rbac::new(
        RbacAction::Deny,
        vec![RbacPolicy::new(
            "no-admin",
            vec![Permission::UrlPath(StringMatcher::prefix("/admin."))],
            vec![Principal::Any],
        )],
    )
    .with_audit_condition(deny_condition);
    let allow = Rbac::new(
        RbacAction::Allow,
        vec![RbacPolicy::new(
            "testing-service",
            vec![Permission::UrlPath(StringMatcher::prefix("/grpc.testing."))],
            vec![Principal::Authenticated(Some(StringMatcher::exact(
                CLIENT_ID,
            )))],
        )],
    )
    .with_audit_condition(allow_condition);
    RbacChain::new(vec![
        RbacFilter::new("authz-deny", deny),
        RbacFilter::new("authz-allow", allow),
    ])
}

fn event(policy_name: &str, matched_rule: &str, rpc_method: &str, authorized: bool) -> AuditEvent {
    AuditEvent {
        policy_name: policy_name.to_owned(),
        matched_rule: matched_rule.to_owned(),
        principal: CLIENT_ID.to_owned(),
        rpc_method: rpc_method.to_owned(),
        authorized,
    }
}

/// Sends an allowed call, one denied by the DENY filter and one denied by the ALLOW filter; returns the audit
/// events they caused.
async fn audit_events(
    deny_condition: AuditCondition,
    allow_condition: AuditCondition,
) -> Vec<AuditEvent> {
    let (captured, _guard) = capture_audit();
    let server = Server::start(Some(client_certificate())).await;
    server.set_rules(audited_chain(deny_condition, allow_condition));
    let mut client = Client::connect(server.addr).await;
    assert!(
        client
            .call("svc.mesh.example", UNARY_CALL, "")
            .await
            .allowed()
    );
    assert!(
        !client
            .call("svc.mesh.example", "/admin.Admin/Drop", "")
            .await
            .allowed()
    );
    assert!(
        !client
            .call("svc.mesh.example", "/other.Service/Call", "")
            .await
            .allowed()
    );
    assert_eq!(server.handled(), 1);
    captured.take()
}

#[tokio::test]
async fn audit_on_deny_logs_each_denial_once() {
    let events = audit_events(AuditCondition::OnDeny, AuditCondition::OnDeny).await;
    assert_eq!(
        events,
        [
            event("authz-deny", "no-admin", "/admin.Admin/Drop", false),
            event("authz-allow", "", "/other.Service/Call", false),
        ]
    );
}

#[tokio::test]
async fn audit_on_allow_logs_only_the_allowed_call() {
    let events = audit_events(AuditCondition::None, AuditCondition::OnAllow).await;
    assert_eq!(
        events,
        [event("authz-allow", "testing-service", UNARY_CALL, true)]
    );
}

#[tokio::test]
async fn audit_on_deny_and_allow_logs_every_call_once() {
    let events = audit_events(AuditCondition::OnDeny, AuditCondition::OnDenyAndAllow).await;
    assert_eq!(
        events,
        [
            event("authz-allow", "testing-service", UNARY_CALL, true),
            event("authz-deny", "no-admin", "/admin.Admin/Drop", false),
            event("authz-allow", "", "/other.Service/Call", false),
        ]
    );
}

#[tokio::test]
async fn audit_none_logs_nothing() {
    let events = audit_events(AuditCondition::None, AuditCondition::None).await;
    assert!(events.is_empty(), "{events:?}");
}
