//! The admin endpoint of a mesh ([`MeshBuilder::admin`](crate::MeshBuilder::admin)): one socket, separate from
//! every serving port, answering
//!
//! - CSDS over gRPC (`envoy.service.status.v3.ClientStatusDiscoveryService`, gRFC A40: `grpcdebug`, Envoy tools);
//! - `GET /config_dump`: the same dump as JSON ([`ConfigDump::to_json`](mesh_xds_client::client::ConfigDump::to_json));
//! - `GET /healthz`: `ok` while the mesh lives;
//! - `GET /metrics`: the mesh's metrics for Prometheus (text exposition format 0.0.4), when the mesh was built with
//!   [`MeshBuilder::prometheus`](crate::MeshBuilder::prometheus) (see [`crate::telemetry`]).
//!
//! HTTP/1.1 and HTTP/2 (h2c) are both accepted on the socket, so `curl` and gRPC tools share it. It is bound to
//! 127.0.0.1 unless told otherwise ([`DEFAULT_ADMIN_IP`]): the dump reveals the mesh's whole configuration, so
//! expose it further only deliberately. It has no authentication and no TLS. It stops when the last clone of the
//! [`Mesh`](crate::Mesh) is dropped.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mesh_xds_client::client::XdsClient;
use mesh_xds_client::csds::CsdsService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::telemetry::{PROMETHEUS_CONTENT_TYPE, PROMETHEUS_PATH, Telemetry};

/// The IP the admin endpoint listens on when only a port is given ([`MeshBuilder::admin_port`](crate::MeshBuilder::admin_port)).
pub const DEFAULT_ADMIN_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The path of the JSON config dump.
pub const CONFIG_DUMP_PATH: &str = "/config_dump";

/// The path of the liveness check.
pub const HEALTHZ_PATH: &str = "/healthz";

const CSDS_PREFIX: &str = "/envoy.service.status.v3.ClientStatusDiscoveryService/";

/// The admin endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("admin endpoint: cannot listen on {address}: {source}")]
pub struct AdminError {
    /// The address.
    pub address: SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

/// A running admin endpoint; stops when dropped.
#[derive(Debug)]
pub(crate) struct AdminServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl AdminServer {
    /// Binds `address` and serves on `runtime`.
    pub(crate) async fn start(
        address: SocketAddr,
        xds: Option<XdsClient>,
        telemetry: Option<Telemetry>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Self, AdminError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| AdminError { address, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| AdminError { address, source })?;
        let (stop, stopped) = watch::channel(false);
        let admin = Arc::new(Admin { xds, telemetry });
        runtime.spawn(accept(listener, admin, stopped));
        Ok(Self { local_addr, stop })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

struct Admin {
    xds: Option<XdsClient>,
    telemetry: Option<Telemetry>,
}

async fn accept(listener: TcpListener, admin: Arc<Admin>, mut stopped: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "admin endpoint: accept failed");
                    continue;
                }
            },
            _ = stopped.wait_for(|stop| *stop) => return,
        };
        let admin = Arc::clone(&admin);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let admin = Arc::clone(&admin);
                async move { Ok::<_, Infallible>(admin.answer(request).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let serving = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = serving => {}
                _ = stopped.wait_for(|stop| *stop) => {}
            }
        });
    }
}

impl Admin {
    async fn answer(&self, request: Request<Incoming>) -> Response<tonic::body::Body> {
        let path = request.uri().path();
        if path.starts_with(CSDS_PREFIX) {
            let Some(xds) = &self.xds else {
                return tonic::Status::unimplemented("this mesh has no xDS client").into_http();
            };
            return match CsdsService::new(xds.clone())
                .into_server()
                .oneshot(request)
                .await
            {
                Ok(response) => response,
                Err(never) => match never {},
            };
        }
        if request.method() != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
        }
        match path {
            HEALTHZ_PATH => text(StatusCode::OK, "ok\n"),
            PROMETHEUS_PATH => self.prometheus().await,
            CONFIG_DUMP_PATH => {
                let Some(xds) = &self.xds else {
                    return text(StatusCode::NOT_FOUND, "this mesh has no xDS client\n");
                };
                match xds.config_dump().await {
                    Some(dump) => Response::builder()
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(tonic::body::Body::new(Full::new(Bytes::from(
                            dump.to_json(),
                        ))))
                        .unwrap_or_default(),
                    None => text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the xDS client has stopped\n",
                    ),
                }
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "admin endpoint: GET /config_dump, GET /healthz, GET /metrics, or CSDS over gRPC\n",
            ),
        }
    }

    /// The Prometheus page, collected off the runtime's threads (collecting runs the observable instruments'
    /// callbacks).
    async fn prometheus(&self) -> Response<tonic::body::Body> {
        let Some(telemetry) = self.telemetry.clone() else {
            return text(
                StatusCode::NOT_FOUND,
                "no metrics here: build the mesh with .prometheus()\n",
            );
        };
        let page = tokio::task::spawn_blocking(move || telemetry.prometheus_page())
            .await
            .ok()
            .flatten();
        match page {
            Some(page) => Response::builder()
                .header(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)
                .body(tonic::body::Body::new(Full::new(Bytes::from(page))))
                .unwrap_or_default(),
            None => text(
                StatusCode::NOT_FOUND,
                "no metrics here: build the mesh with .prometheus() (or telemetry has shut down)\n",
            ),
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<tonic::body::Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(tonic::body::Body::new(Full::new(Bytes::from_static(
            body.as_bytes(),
        ))))
        .unwrap_or_default()
}
