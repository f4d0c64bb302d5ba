//! The interop client's stats port: `grpc.testing.LoadBalancerStatsService` and
//! `grpc.testing.XdsUpdateClientConfigureService` (grpc/grpc `src/proto/grpc/testing/test.proto`), hand-written
//! tonic servers and the clients a test driver uses.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tower_service::Service;

use super::messages::{
    ClientConfigureRequest, ClientConfigureResponse, LoadBalancerAccumulatedStatsRequest,
    LoadBalancerAccumulatedStatsResponse, LoadBalancerStatsRequest, LoadBalancerStatsResponse,
    RpcType,
};
use super::sender::{RpcConfig, SharedConfig};
use super::stats::Stats;
use crate::interop::services::{BoxError, BoxFuture, serve_unary, unimplemented};
use crate::unary::{GrpcTransport, UnaryClient};

/// `grpc.testing.LoadBalancerStatsService`.
pub const LOAD_BALANCER_STATS_SERVICE: &str = "grpc.testing.LoadBalancerStatsService";
/// `grpc.testing.XdsUpdateClientConfigureService`.
pub const XDS_UPDATE_CLIENT_CONFIGURE_SERVICE: &str =
    "grpc.testing.XdsUpdateClientConfigureService";

type HttpFuture = BoxFuture<Result<http::Response<tonic::body::Body>, Infallible>>;

/// `grpc.testing.LoadBalancerStatsService` over the client's [`Stats`].
#[derive(Debug, Clone)]
pub struct LoadBalancerStatsServer {
    stats: Arc<Stats>,
}

impl LoadBalancerStatsServer {
    /// A server answering from `stats`.
    #[must_use]
    pub fn new(stats: Arc<Stats>) -> Self {
        Self { stats }
    }
}

impl<B> Service<http::Request<B>> for LoadBalancerStatsServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<BoxError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> HttpFuture {
        let stats = Arc::clone(&self.stats);
        match request
            .uri()
            .path()
            .strip_prefix("/grpc.testing.LoadBalancerStatsService/")
        {
            Some("GetClientStats") => serve_unary(
                Arc::new(move |request: Request<LoadBalancerStatsRequest>| {
                    let stats = Arc::clone(&stats);
                    Box::pin(async move {
                        let request = request.into_inner();
                        let num_rpcs = u64::try_from(request.num_rpcs).map_err(|_| {
                            Status::invalid_argument(format!(
                                "num_rpcs {} is negative",
                                request.num_rpcs
                            ))
                        })?;
                        let timeout =
                            Duration::from_secs(u64::try_from(request.timeout_sec).unwrap_or(0));
                        Ok(Response::new(
                            stats
                                .next_rpcs(num_rpcs, timeout, &request.metadata_keys)
                                .await,
                        ))
                    }) as BoxFuture<_>
                }),
                request,
            ),
            Some("GetClientAccumulatedStats") => serve_unary(
                Arc::new(
                    move |_request: Request<LoadBalancerAccumulatedStatsRequest>| {
                        let stats = Arc::clone(&stats);
                        Box::pin(async move { Ok(Response::new(stats.accumulated())) })
                            as BoxFuture<_>
                    },
                ),
                request,
            ),
            _ => unimplemented(),
        }
    }
}

impl NamedService for LoadBalancerStatsServer {
    const NAME: &'static str = LOAD_BALANCER_STATS_SERVICE;
}

/// `grpc.testing.XdsUpdateClientConfigureService`: `Configure` replaces the RPC types, the headers and the
/// deadline the client sends with (a `timeout_sec` of 0 restores `--rpc_timeout_sec`).
#[derive(Debug, Clone)]
pub struct XdsUpdateClientConfigureServer {
    config: Arc<SharedConfig>,
}

impl XdsUpdateClientConfigureServer {
    /// A server changing `config`.
    #[must_use]
    pub fn new(config: Arc<SharedConfig>) -> Self {
        Self { config }
    }
}

/// The configuration `request` asks for, `default_timeout` standing in for a zero `timeout_sec`.
fn configuration(
    request: &ClientConfigureRequest,
    default_timeout: Duration,
) -> Result<RpcConfig, Status> {
    let rpc_type = |value: i32| {
        RpcType::try_from(value)
            .map_err(|_| Status::invalid_argument(format!("unknown RPC type {value}")))
    };
    let mut types = Vec::new();
    for &value in &request.types {
        let rpc = rpc_type(value)?;
        if !types.contains(&rpc) {
            types.push(rpc);
        }
    }
    let mut metadata = Vec::new();
    for entry in &request.metadata {
        let key = entry.key.to_ascii_lowercase().parse().map_err(|_| {
            Status::invalid_argument(format!(
                "metadata key {:?} is not a valid ASCII header name",
                entry.key
            ))
        })?;
        let value = entry.value.parse().map_err(|_| {
            Status::invalid_argument(format!(
                "metadata value {:?} of {:?} is not a valid header value",
                entry.value, entry.key
            ))
        })?;
        metadata.push((rpc_type(entry.r#type)?, key, value));
    }
    let timeout = match u64::try_from(request.timeout_sec) {
        Ok(0) => default_timeout,
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "timeout_sec {} is negative",
                request.timeout_sec
            )));
        }
    };
    Ok(RpcConfig {
        types,
        metadata,
        timeout,
    })
}

impl<B> Service<http::Request<B>> for XdsUpdateClientConfigureServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<BoxError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> HttpFuture {
        if request.uri().path() != "/grpc.testing.XdsUpdateClientConfigureService/Configure" {
            return unimplemented();
        }
        let config = Arc::clone(&self.config);
        serve_unary(
            Arc::new(move |request: Request<ClientConfigureRequest>| {
                let config = Arc::clone(&config);
                Box::pin(async move {
                    config.set(configuration(request.get_ref(), config.default_timeout)?);
                    Ok(Response::new(ClientConfigureResponse {}))
                }) as BoxFuture<_>
            }),
            request,
        )
    }
}

impl NamedService for XdsUpdateClientConfigureServer {
    const NAME: &'static str = XDS_UPDATE_CLIENT_CONFIGURE_SERVICE;
}

/// A `grpc.testing.LoadBalancerStatsService` client over any tonic transport.
#[derive(Debug, Clone)]
pub struct LoadBalancerStatsClient<T> {
    inner: UnaryClient<T>,
}

impl<T: GrpcTransport> LoadBalancerStatsClient<T> {
    /// A client sending on `transport`.
    pub fn new(transport: T) -> Self {
        Self {
            inner: UnaryClient::new(transport),
        }
    }

    /// `GetClientStats`.
    ///
    /// # Errors
    /// The call's status.
    pub async fn get_client_stats(
        &mut self,
        request: LoadBalancerStatsRequest,
    ) -> Result<LoadBalancerStatsResponse, Status> {
        self.inner
            .call(LOAD_BALANCER_STATS_SERVICE, "GetClientStats", request)
            .await
            .map(Response::into_inner)
    }

    /// `GetClientAccumulatedStats`.
    ///
    /// # Errors
    /// The call's status.
    pub async fn get_client_accumulated_stats(
        &mut self,
    ) -> Result<LoadBalancerAccumulatedStatsResponse, Status> {
        self.inner
            .call(
                LOAD_BALANCER_STATS_SERVICE,
                "GetClientAccumulatedStats",
                LoadBalancerAccumulatedStatsRequest {},
            )
            .await
            .map(Response::into_inner)
    }
}

/// A `grpc.testing.XdsUpdateClientConfigureService` client over any tonic transport.
#[derive(Debug, Clone)]
pub struct XdsUpdateClientConfigureClient<T> {
    inner: UnaryClient<T>,
}

impl<T: GrpcTransport> XdsUpdateClientConfigureClient<T> {
    /// A client sending on `transport`.
    pub fn new(transport: T) -> Self {
        Self {
            inner: UnaryClient::new(transport),
        }
    }

    /// `Configure`.
    ///
    /// # Errors
    /// The call's status.
    pub async fn configure(
        &mut self,
        request: ClientConfigureRequest,
    ) -> Result<ClientConfigureResponse, Status> {
        self.inner
            .call(XDS_UPDATE_CLIENT_CONFIGURE_SERVICE, "Configure", request)
            .await
            .map(Response::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::super::messages::ConfigureMetadata;
    use super::*;

    #[test]
    fn configure_replaces_types_headers_and_timeout() {
        let request = ClientConfigureRequest {
            types: vec![1, 0, 1],
            metadata: vec![ConfigureMetadata {
                r#type: 0,
                key: "RPC-Behavior".into(),
                value: "sleep-1, keep-open".into(),
            }],
            timeout_sec: 0,
        };
        let config = configuration(&request, Duration::from_secs(20)).unwrap();
        assert_eq!(config.types, [RpcType::UnaryCall, RpcType::EmptyCall]);
        assert_eq!(config.metadata[0].1.as_str(), "rpc-behavior");
        assert_eq!(config.timeout, Duration::from_secs(20));
        for bad in [
            ClientConfigureRequest {
                types: vec![7],
                ..request.clone()
            },
            ClientConfigureRequest {
                timeout_sec: -1,
                ..request.clone()
            },
            ClientConfigureRequest {
                metadata: vec![ConfigureMetadata {
                    r#type: 0,
                    key: "bad key".into(),
                    value: String::new(),
                }],
                ..request
            },
        ] {
            let status = configuration(&bad, Duration::from_secs(20)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
        }
    }
}
