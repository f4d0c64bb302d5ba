#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use mesh_core::matcher::StringMatcher;
use mesh_core::peer::ConnectionInfo;
use mesh_core::rbac::{Permission, Principal, Rbac, RbacAction, RbacChain, RbacPolicy};
use mesh_core::route::HeaderMatcher;
use tower::ServiceExt;

use super::*;
use crate::status::{self, Code};

fn chain(action: RbacAction, permission: Permission) -> RbacChain {
    RbacChain::single(
        "authz",
        Rbac::new(
            action,
            vec![RbacPolicy::new("p", vec![permission], vec![Principal::Any])],
        ),
    )
}

/// Sends `request` through `chain` in front of a handler that counts its calls; returns the response and the count.
async fn send(
    chain: RbacChain,
    request: Request<Full<Bytes>>,
) -> (Response<AuthorizationBody<Full<Bytes>>>, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let handler = tower::service_fn(move |_request: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello")))) }
    });
    let response = Authorization::new(handler, chain)
        .oneshot(request)
        .await
        .unwrap();
    (response, calls.load(Ordering::SeqCst))
}

fn grpc_request(uri: &str) -> Request<Full<Bytes>> {
    Request::post(uri)
        .header("content-type", "application/grpc")
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn denied_grpc_calls_get_a_trailers_only_permission_denied() {
    let rules = chain(RbacAction::Deny, Permission::Any);
    let (response, calls) = send(rules, grpc_request("/helloworld.Greeter/SayHello")).await;
    assert_eq!(calls, 0);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert_eq!(
        status::grpc_status(response.headers()),
        Some(Code::PermissionDenied)
    );
    assert_eq!(response.headers()["grpc-message"], DENIED_MESSAGE);
    assert!(response.body().is_end_stream());
    let collected = response.into_body().collect().await.unwrap();
    assert!(collected.to_bytes().is_empty());
}

#[tokio::test]
async fn denied_plain_http_gets_403_and_allowed_requests_reach_the_handler() {
    let rules = chain(
        RbacAction::Allow,
        Permission::UrlPath(StringMatcher::prefix("/public/")),
    );
    let request = Request::get("/private/x").body(Full::default()).unwrap();
    let (response, calls) = send(rules.clone(), request).await;
    assert_eq!((response.status().as_u16(), calls), (403, 0));

    let (response, calls) = send(rules, grpc_request("/public/x")).await;
    assert_eq!((response.status().as_u16(), calls), (200, 1));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "hello");
}

#[tokio::test]
async fn the_host_header_stands_in_for_a_missing_authority() {
    let rules = chain(
        RbacAction::Allow,
        Permission::Header(HeaderMatcher::exact(":authority", "api.example.com")),
    );
    let mut request = grpc_request("/svc/M");
    request
        .headers_mut()
        .insert("host", http::HeaderValue::from_static("api.example.com"));
    assert_eq!(send(rules.clone(), request).await.1, 1);
    // Two Host headers make the authority ambiguous: nothing to match.
    let mut request = grpc_request("/svc/M");
    request
        .headers_mut()
        .append("host", http::HeaderValue::from_static("api.example.com"));
    request
        .headers_mut()
        .append("host", http::HeaderValue::from_static("api.example.com"));
    assert_eq!(send(rules.clone(), request).await.1, 0);
    // The URI's authority wins over Host.
    let mut request = grpc_request("http://api.example.com/svc/M");
    request
        .headers_mut()
        .insert("host", http::HeaderValue::from_static("other.example.com"));
    assert_eq!(send(rules, request).await.1, 1);
}

#[tokio::test]
async fn without_connection_info_the_peer_is_unknown() {
    let port_rule = chain(RbacAction::Allow, Permission::DestinationPort(50051));
    assert_eq!(send(port_rule.clone(), grpc_request("/svc/M")).await.1, 0);
    let mut request = grpc_request("/svc/M");
    let info = ConnectionInfo::new(
        ([127, 0, 0, 1], 50051).into(),
        ([127, 0, 0, 1], 40000).into(),
    );
    request.extensions_mut().insert(Arc::new(info));
    assert_eq!(send(port_rule, request).await.1, 1);
}

#[tokio::test]
async fn an_empty_chain_allows_everything() {
    assert_eq!(
        send(RbacChain::default(), grpc_request("/svc/M")).await.1,
        1
    );
}
