//! `helloworld.Greeter` (grpc/grpc `examples/protos/helloworld.proto`): messages, client and server.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::server::{NamedService, UnaryService};
use tonic::{GrpcMethod, IntoRequest, Request, Response, Status};
use tonic_prost::ProstCodec;
use tower_service::Service;

/// The service's full name.
pub const SERVICE_NAME: &str = "helloworld.Greeter";

/// The path of `SayHello`.
pub const SAY_HELLO_PATH: &str = "/helloworld.Greeter/SayHello";

/// The response header carrying the name of the replica that answered.
pub const REPLICA_HEADER: &str = "hostname";

use crate::unary::{BoxError, GrpcTransport};

/// `helloworld.HelloRequest`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct HelloRequest {
    /// Who to greet.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `helloworld.HelloReply`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub message: String,
}

/// The replica named in a response's [`REPLICA_HEADER`], if any.
#[must_use]
pub fn replica_of<T>(response: &Response<T>) -> Option<&str> {
    response
        .metadata()
        .get(REPLICA_HEADER)
        .and_then(|value| value.to_str().ok())
}

/// A `helloworld.Greeter` client over any tonic transport: a [`Channel`](crate::Channel), or tonic's own.
#[derive(Debug, Clone)]
pub struct GreeterClient<T> {
    inner: tonic::client::Grpc<T>,
}

impl<T: GrpcTransport> GreeterClient<T> {
    /// A client sending on `transport`.
    pub fn new(transport: T) -> Self {
        Self {
            inner: tonic::client::Grpc::new(transport),
        }
    }

    /// `SayHello`.
    ///
    /// # Errors
    /// The call's status.
    pub async fn say_hello(
        &mut self,
        request: impl IntoRequest<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        self.inner.ready().await.map_err(|error| {
            Status::unavailable(format!("transport not ready: {}", error.into()))
        })?;
        let mut request = request.into_request();
        request
            .extensions_mut()
            .insert(GrpcMethod::new(SERVICE_NAME, "SayHello"));
        self.inner
            .unary(
                request,
                PathAndQuery::from_static(SAY_HELLO_PATH),
                ProstCodec::<HelloRequest, HelloReply>::default(),
            )
            .await
    }
}

/// A `helloworld.Greeter` server for replica `replica`: answers `Hello, NAME!` with the replica's name in the
/// [`REPLICA_HEADER`] response header, and counts what it served.
#[derive(Debug, Clone)]
pub struct GreeterServer {
    state: Arc<ServerState>,
}

#[derive(Debug)]
struct ServerState {
    replica: MetadataValue<tonic::metadata::Ascii>,
    served: AtomicU64,
}

impl GreeterServer {
    /// A server for `replica` (its name must be a valid header value; anything else becomes `"unnamed"`).
    #[must_use]
    pub fn new(replica: &str) -> Self {
        let replica = replica
            .parse()
            .unwrap_or_else(|_| MetadataValue::from_static("unnamed"));
        Self {
            state: Arc::new(ServerState {
                replica,
                served: AtomicU64::new(0),
            }),
        }
    }

    /// Calls answered so far.
    #[must_use]
    pub fn served(&self) -> u64 {
        self.state.served.load(Ordering::Relaxed)
    }
}

/// `SayHello` as tonic's server machinery wants it.
struct SayHello(Arc<ServerState>);

impl UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = Ready<Result<Response<HelloReply>, Status>>;

    fn call(&mut self, request: Request<HelloRequest>) -> Self::Future {
        self.0.served.fetch_add(1, Ordering::Relaxed);
        let mut response = Response::new(HelloReply {
            message: format!("Hello, {}!", request.get_ref().name),
        });
        response
            .metadata_mut()
            .insert(REPLICA_HEADER, self.0.replica.clone());
        ready(Ok(response))
    }
}

impl<B> Service<http::Request<B>> for GreeterServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<BoxError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() == SAY_HELLO_PATH {
            let method = SayHello(Arc::clone(&self.state));
            Box::pin(async move {
                let mut grpc =
                    tonic::server::Grpc::new(ProstCodec::<HelloReply, HelloRequest>::default());
                Ok(grpc.unary(method, request).await)
            })
        } else {
            Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) })
        }
    }
}

impl NamedService for GreeterServer {
    const NAME: &'static str = SERVICE_NAME;
}
