//! `grpc.testing.TestService` and `grpc.testing.XdsUpdateHealthService` (grpc/grpc
//! `src/proto/grpc/testing/test.proto`): hand-written tonic servers and clients.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use tonic::server::{NamedService, UnaryService};
use tonic::{IntoRequest, Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tonic_prost::ProstCodec;
use tower_service::Service;

use super::behavior;
use super::messages::{Empty, Payload, PayloadType, SimpleRequest, SimpleResponse};

pub(crate) use crate::unary::BoxError;
use crate::unary::{GrpcTransport, UnaryClient};
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub(crate) type Handler<Req, Resp> =
    Arc<dyn Fn(Request<Req>) -> BoxFuture<Result<Response<Resp>, Status>> + Send + Sync>;

/// `grpc.testing.TestService`.
pub const TEST_SERVICE: &str = "grpc.testing.TestService";
/// `grpc.testing.XdsUpdateHealthService`.
pub const XDS_UPDATE_HEALTH_SERVICE: &str = "grpc.testing.XdsUpdateHealthService";
/// The response header naming the server that answered.
pub const HOSTNAME_HEADER: &str = "hostname";
/// The largest `response_size` the server fills.
pub const MAX_RESPONSE_SIZE: i32 = 16 << 20;

/// A unary handler as tonic's server machinery wants it.
struct Unary<Req, Resp>(Handler<Req, Resp>);

impl<Req, Resp> UnaryService<Req> for Unary<Req, Resp> {
    type Response = Resp;
    type Future = BoxFuture<Result<Response<Resp>, Status>>;

    fn call(&mut self, request: Request<Req>) -> Self::Future {
        (self.0)(request)
    }
}

/// Serves `request` with `handler`.
pub(crate) fn serve_unary<Req, Resp, B>(
    handler: Handler<Req, Resp>,
    request: http::Request<B>,
) -> BoxFuture<Result<http::Response<tonic::body::Body>, Infallible>>
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Error: Into<BoxError> + Send + 'static,
{
    Box::pin(async move {
        let mut grpc = tonic::server::Grpc::new(ProstCodec::<Resp, Req>::default());
        Ok(grpc.unary(Unary(handler), request).await)
    })
}

pub(crate) fn unimplemented() -> BoxFuture<Result<http::Response<tonic::body::Body>, Infallible>> {
    Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) })
}

/// The identity a [`TestServiceServer`] answers with.
#[derive(Debug)]
struct Identity {
    hostname: String,
    server_id: String,
    header: MetadataValue<Ascii>,
}

/// `grpc.testing.TestService` as gRPC's xDS interop server implements it: `EmptyCall` and `UnaryCall` (with the
/// `hostname` and `server_id` fields and the requested payload) honouring [`behavior`]'s `rpc-behavior`, every
/// answer carrying the [`HOSTNAME_HEADER`] header (in the trailers-only answer for failures). Other methods are
/// UNIMPLEMENTED.
#[derive(Debug, Clone)]
pub struct TestServiceServer {
    identity: Arc<Identity>,
}

impl TestServiceServer {
    /// A server named `hostname` with id `server_id`.
    ///
    /// # Errors
    /// `hostname` is not a valid header value.
    pub fn new(hostname: &str, server_id: &str) -> Result<Self, String> {
        let header = hostname
            .parse()
            .map_err(|_| format!("hostname {hostname:?} is not a valid header value"))?;
        Ok(Self {
            identity: Arc::new(Identity {
                hostname: hostname.to_owned(),
                server_id: server_id.to_owned(),
                header,
            }),
        })
    }

    /// The hostname answered with.
    #[must_use]
    pub fn hostname(&self) -> &str {
        &self.identity.hostname
    }
}

impl Identity {
    /// The call's `rpc-behavior`, with the hostname attached to a failure.
    async fn behave(&self, metadata: &MetadataMap) -> Result<(), Status> {
        behavior::apply(metadata, &self.hostname)
            .await
            .map_err(|status| self.tag(status))
    }

    fn tag(&self, mut status: Status) -> Status {
        status
            .metadata_mut()
            .insert(HOSTNAME_HEADER, self.header.clone());
        status
    }

    fn respond<T>(&self, message: T) -> Response<T> {
        let mut response = Response::new(message);
        response
            .metadata_mut()
            .insert(HOSTNAME_HEADER, self.header.clone());
        response
    }

    fn unary_response(&self, request: &SimpleRequest) -> Result<SimpleResponse, Status> {
        if let Some(echo) = &request.response_status
            && echo.code != 0
        {
            return Err(Status::new(
                tonic::Code::from_i32(echo.code),
                echo.message.clone(),
            ));
        }
        let payload = match request.response_size {
            0 => None,
            size @ 1..=MAX_RESPONSE_SIZE => Some(Payload {
                r#type: PayloadType::Compressable as i32,
                body: vec![0; usize::try_from(size).unwrap_or(0)],
            }),
            size => {
                return Err(Status::invalid_argument(format!(
                    "response_size {size} is not within 0..={MAX_RESPONSE_SIZE}"
                )));
            }
        };
        Ok(SimpleResponse {
            payload,
            server_id: self.server_id.clone(),
            hostname: self.hostname.clone(),
            ..SimpleResponse::default()
        })
    }
}

impl<B> Service<http::Request<B>> for TestServiceServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<BoxError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let identity = Arc::clone(&self.identity);
        match request
            .uri()
            .path()
            .strip_prefix("/grpc.testing.TestService/")
        {
            Some("EmptyCall") => serve_unary(
                Arc::new(move |request: Request<Empty>| {
                    let identity = Arc::clone(&identity);
                    Box::pin(async move {
                        identity.behave(request.metadata()).await?;
                        Ok(identity.respond(Empty {}))
                    }) as BoxFuture<_>
                }),
                request,
            ),
            Some("UnaryCall") => serve_unary(
                Arc::new(move |request: Request<SimpleRequest>| {
                    let identity = Arc::clone(&identity);
                    Box::pin(async move {
                        identity.behave(request.metadata()).await?;
                        let response = identity
                            .unary_response(request.get_ref())
                            .map_err(|status| identity.tag(status))?;
                        Ok(identity.respond(response))
                    }) as BoxFuture<_>
                }),
                request,
            ),
            _ => unimplemented(),
        }
    }
}

impl NamedService for TestServiceServer {
    const NAME: &'static str = TEST_SERVICE;
}

/// `grpc.testing.XdsUpdateHealthService`: `SetServing` and `SetNotServing` set the overall (`""`) and
/// [`TEST_SERVICE`] statuses of a `grpc.health.v1.Health` server. `SendHookRequest` is UNIMPLEMENTED.
#[derive(Debug, Clone)]
pub struct XdsUpdateHealthServer {
    reporter: HealthReporter,
}

impl XdsUpdateHealthServer {
    /// A server setting statuses through `reporter`.
    #[must_use]
    pub fn new(reporter: HealthReporter) -> Self {
        Self { reporter }
    }

    /// Sets the overall and [`TEST_SERVICE`] statuses.
    pub async fn set(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        self.reporter.set_service_status(TEST_SERVICE, status).await;
    }
}

impl<B> Service<http::Request<B>> for XdsUpdateHealthServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<BoxError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let status = match request
            .uri()
            .path()
            .strip_prefix("/grpc.testing.XdsUpdateHealthService/")
        {
            Some("SetServing") => ServingStatus::Serving,
            Some("SetNotServing") => ServingStatus::NotServing,
            _ => return unimplemented(),
        };
        let server = self.clone();
        serve_unary(
            Arc::new(move |_request: Request<Empty>| {
                let server = server.clone();
                Box::pin(async move {
                    server.set(status).await;
                    Ok(Response::new(Empty {}))
                }) as BoxFuture<_>
            }),
            request,
        )
    }
}

impl NamedService for XdsUpdateHealthServer {
    const NAME: &'static str = XDS_UPDATE_HEALTH_SERVICE;
}

/// A `grpc.testing.TestService` client (`EmptyCall`, `UnaryCall`) over any tonic transport.
#[derive(Debug, Clone)]
pub struct TestServiceClient<T> {
    inner: UnaryClient<T>,
}

impl<T: GrpcTransport> TestServiceClient<T> {
    /// A client sending on `transport`.
    pub fn new(transport: T) -> Self {
        Self {
            inner: UnaryClient::new(transport),
        }
    }

    /// `EmptyCall`.
    ///
    /// # Errors
    /// The call's status.
    pub async fn empty_call(
        &mut self,
        request: impl IntoRequest<Empty>,
    ) -> Result<Response<Empty>, Status> {
        self.inner.call(TEST_SERVICE, "EmptyCall", request).await
    }

    /// `UnaryCall`.
    ///
    /// # Errors
    /// The call's status.
    pub async fn unary_call(
        &mut self,
        request: impl IntoRequest<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        self.inner.call(TEST_SERVICE, "UnaryCall", request).await
    }
}

/// A `grpc.testing.XdsUpdateHealthService` client (`SetServing`, `SetNotServing`) over any tonic transport.
#[derive(Debug, Clone)]
pub struct XdsUpdateHealthClient<T> {
    inner: UnaryClient<T>,
}

impl<T: GrpcTransport> XdsUpdateHealthClient<T> {
    /// A client sending on `transport`.
    pub fn new(transport: T) -> Self {
        Self {
            inner: UnaryClient::new(transport),
        }
    }

    /// `SetServing`.
    ///
    /// # Errors
    /// The call's status.
    pub async fn set_serving(&mut self) -> Result<Response<Empty>, Status> {
        self.inner
            .call(XDS_UPDATE_HEALTH_SERVICE, "SetServing", Empty {})
            .await
    }

    /// `SetNotServing`.
    ///
    /// # Errors
    /// The call's status.
    pub async fn set_not_serving(&mut self) -> Result<Response<Empty>, Status> {
        self.inner
            .call(XDS_UPDATE_HEALTH_SERVICE, "SetNotServing", Empty {})
            .await
    }
}
