//! Answers made here: a [`MeshError`] as a gRPC trailers-only response or an HTTP error response.

use bytes::Bytes;
use http::{HeaderValue, Response, header};

use crate::body::ResponseBody;
use crate::error::MeshError;
use crate::status;

/// The response for `error`: for gRPC, HTTP 200 with `grpc-status` and `grpc-message` and no body (trailers-only);
/// otherwise the error's HTTP status with the reason as text. The error rides in the extensions.
pub(crate) fn error_response(error: MeshError, grpc: bool) -> Response<ResponseBody> {
    let mut response = if grpc {
        let mut response = Response::new(ResponseBody::local(None));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(status::GRPC_STATUS_NAME, error.code().header_value());
        headers.insert(
            status::GRPC_MESSAGE_NAME,
            status::encode_grpc_message(&error.to_string()),
        );
        response
    } else {
        let mut response =
            Response::new(ResponseBody::local(Some(Bytes::from(format!("{error}\n")))));
        *response.status_mut() = error.http_status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    };
    response.extensions_mut().insert(error);
    response
}
