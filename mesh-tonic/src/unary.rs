//! What the hand-written gRPC clients of this crate (`testing`'s greeter, `interop`'s test services) share: the
//! transports they accept and one way to make a unary call.

use http::uri::PathAndQuery;
use tonic::client::GrpcService;
use tonic::{GrpcMethod, IntoRequest, Response, Status};
use tonic_prost::ProstCodec;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A transport the crate's clients send on: a mesh [`Channel`](crate::Channel), tonic's own `Channel`, or any
/// [`GrpcService`] taking `tonic::body::Body` requests and answering with a body of byte chunks (the bounds tonic's
/// generated clients put on their transport).
pub trait GrpcTransport:
    GrpcService<
        tonic::body::Body,
        Error: Into<BoxError>,
        ResponseBody: http_body::Body<Data = bytes::Bytes, Error: Into<BoxError> + Send>
                          + Send
                          + 'static,
    >
{
}

impl<T> GrpcTransport for T where
    T: GrpcService<
            tonic::body::Body,
            Error: Into<BoxError>,
            ResponseBody: http_body::Body<Data = bytes::Bytes, Error: Into<BoxError> + Send>
                              + Send
                              + 'static,
        >
{
}

/// Unary calls over a transport, with the method named for interceptors and telemetry ([`GrpcMethod`]).
#[derive(Debug, Clone)]
pub(crate) struct UnaryClient<T> {
    inner: tonic::client::Grpc<T>,
}

impl<T: GrpcTransport> UnaryClient<T> {
    pub(crate) fn new(transport: T) -> Self {
        Self {
            inner: tonic::client::Grpc::new(transport),
        }
    }

    /// Calls `/{service}/{method}`; a transport that is not ready fails the call with UNAVAILABLE.
    pub(crate) async fn call<Req, Resp>(
        &mut self,
        service: &'static str,
        method: &'static str,
        request: impl IntoRequest<Req>,
    ) -> Result<Response<Resp>, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.inner.ready().await.map_err(|error| {
            Status::unavailable(format!("transport not ready: {}", error.into()))
        })?;
        let mut request = request.into_request();
        request
            .extensions_mut()
            .insert(GrpcMethod::new(service, method));
        let path = PathAndQuery::try_from(format!("/{service}/{method}"))
            .map_err(|error| Status::internal(format!("bad method path: {error}")))?;
        self.inner
            .unary(request, path, ProstCodec::<Req, Resp>::default())
            .await
    }
}
