//! The request each attempt sends: the caller's request with an absolute URI (HTTP/2 needs `:scheme` and
//! `:authority`), `grpc-previous-rpc-attempts` on retries (gRFC A6) and the remaining deadline as `grpc-timeout`.

use std::time::Duration;

use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{HeaderValue, Request};

use crate::body::UpstreamBody;
use crate::timeout::{GRPC_TIMEOUT, format_grpc_timeout};

/// gRFC A6: the number of attempts made before this one, sent on every retry.
pub const GRPC_PREVIOUS_RPC_ATTEMPTS: &str = "grpc-previous-rpc-attempts";

/// Builds attempt `attempt` (0 for the first). The last attempt takes `parts`; earlier ones copy them.
pub(crate) fn attempt_request(
    parts: &mut Parts,
    last: bool,
    attempt: u32,
    authority: Option<&Authority>,
    remaining: Option<Duration>,
    grpc: bool,
    body: UpstreamBody,
) -> Request<UpstreamBody> {
    let mut request = if last {
        let taken = std::mem::replace(parts, Request::new(()).into_parts().0);
        Request::from_parts(taken, body)
    } else {
        let mut request = Request::new(body);
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.version_mut() = parts.version;
        *request.headers_mut() = parts.headers.clone();
        *request.extensions_mut() = parts.extensions.clone();
        request
    };
    // HTTP/2 to the endpoint, whatever the caller used.
    *request.version_mut() = http::Version::HTTP_2;
    if request.uri().scheme().is_none() || request.uri().authority().is_none() {
        let uri = absolute(request.uri(), authority);
        *request.uri_mut() = uri;
    }
    let headers = request.headers_mut();
    if attempt > 0 {
        headers.insert(GRPC_PREVIOUS_RPC_ATTEMPTS, HeaderValue::from(attempt));
    }
    if grpc && let Some(remaining) = remaining {
        headers.insert(GRPC_TIMEOUT, format_grpc_timeout(remaining));
    }
    request
}

fn absolute(uri: &Uri, fallback: Option<&Authority>) -> Uri {
    let authority = uri
        .authority()
        .or(fallback)
        .cloned()
        .unwrap_or_else(|| Authority::from_static("localhost"));
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(uri.scheme().cloned().unwrap_or(Scheme::HTTP));
    parts.authority = Some(authority);
    parts.path_and_query = Some(path);
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

#[cfg(test)]
mod tests {
    use http_body_util::Empty;

    use super::*;
    use crate::body::box_body;

    fn body() -> UpstreamBody {
        UpstreamBody::Direct(box_body(Empty::new()))
    }

    #[test]
    fn a_relative_uri_gets_the_targets_authority_and_retries_count_attempts() {
        let (mut parts, ()) = Request::get("/pkg.Svc/Call").body(()).unwrap().into_parts();
        let authority = Authority::from_static("greeter");
        let first = attempt_request(&mut parts, false, 0, Some(&authority), None, true, body());
        assert_eq!(first.uri(), "http://greeter/pkg.Svc/Call");
        assert!(first.headers().get(GRPC_PREVIOUS_RPC_ATTEMPTS).is_none());
        let retry = attempt_request(
            &mut parts,
            true,
            2,
            Some(&authority),
            Some(Duration::from_millis(5)),
            true,
            body(),
        );
        assert_eq!(retry.headers()[GRPC_PREVIOUS_RPC_ATTEMPTS], "2");
        assert_eq!(retry.headers()[GRPC_TIMEOUT], "5000000n");
    }

    #[test]
    fn an_absolute_uri_is_kept() {
        let (mut parts, ()) = Request::get("http://other:8080/x?y=1")
            .body(())
            .unwrap()
            .into_parts();
        let request = attempt_request(&mut parts, true, 0, None, None, false, body());
        assert_eq!(request.uri(), "http://other:8080/x?y=1");
    }
}
