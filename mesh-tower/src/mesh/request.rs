//! The request each attempt sends: the caller's request with an absolute URI (HTTP/2 needs `:scheme` and
//! `:authority`), `grpc-previous-rpc-attempts` on retries (gRFC A6) and the remaining deadline as `grpc-timeout`.

use std::time::Duration;

use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{HeaderValue, Request};

use crate::body::UpstreamBody;
use crate::timeout::{GRPC_TIMEOUT_NAME, format_grpc_timeout};

/// gRFC A6: the number of attempts made before this one, sent on every retry.
pub const GRPC_PREVIOUS_RPC_ATTEMPTS: &str = "grpc-previous-rpc-attempts";
const GRPC_PREVIOUS_RPC_ATTEMPTS_NAME: http::HeaderName =
    http::HeaderName::from_static(GRPC_PREVIOUS_RPC_ATTEMPTS);

/// Builds attempt `attempt` (0 for the first). Each attempt sends the caller's head; one that may be followed by
/// another leaves a copy of it in `parts` for the next. The original goes out rather than the copy because a copy's
/// header table has no room to spare, and the transport adds `content-length` to it.
pub(crate) fn attempt_request(
    parts: &mut Parts,
    last: bool,
    attempt: u32,
    authority: Option<&Authority>,
    remaining: Option<Duration>,
    grpc: bool,
    body: UpstreamBody,
) -> Request<UpstreamBody> {
    let kept = if last {
        Request::new(()).into_parts().0
    } else {
        let mut copy = Request::new(()).into_parts().0;
        copy.method = parts.method.clone();
        copy.uri = parts.uri.clone();
        copy.version = parts.version;
        copy.headers = parts.headers.clone();
        copy.extensions = parts.extensions.clone();
        copy
    };
    let mut request = Request::from_parts(std::mem::replace(parts, kept), body);
    // HTTP/2 to the endpoint, whatever the caller used.
    *request.version_mut() = http::Version::HTTP_2;
    if request.uri().scheme().is_none() || request.uri().authority().is_none() {
        let uri = absolute(request.uri(), authority);
        *request.uri_mut() = uri;
    }
    let headers = request.headers_mut();
    if attempt > 0 {
        headers.insert(GRPC_PREVIOUS_RPC_ATTEMPTS_NAME, HeaderValue::from(attempt));
    }
    if grpc && let Some(remaining) = remaining {
        // A new value for each attempt: never stored in the connection's HPACK table (see `endpoint::hpack`).
        let mut timeout = format_grpc_timeout(remaining);
        timeout.set_sensitive(true);
        headers.insert(GRPC_TIMEOUT_NAME, timeout);
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
        UpstreamBody::direct(box_body(Empty::new()))
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
        assert_eq!(retry.headers()[crate::timeout::GRPC_TIMEOUT], "5000000n");
        // New for each attempt: kept out of the connection's HPACK table.
        assert!(retry.headers()[crate::timeout::GRPC_TIMEOUT].is_sensitive());
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
