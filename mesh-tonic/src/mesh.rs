//! [`Mesh`]: the xDS client and the channels made from it.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use mesh_tower::{MeshOptions, MeshService};
use mesh_xds_client::bootstrap::Bootstrap;
use mesh_xds_client::client::{ConfigDump, XdsClient};
use mesh_xds_client::csds::CsdsService;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::builder::MeshBuilder;
use crate::channel::{Channel, ChannelShared};
use crate::direct::{DEFAULT_DNS_REFRESH, DirectTarget, Discovery, resolve_dns};
use crate::error::ChannelError;
use crate::gate;
use crate::target::Target;

/// The mesh of one process: its xDS client and the channels it made. Cheap to clone; clones share everything. See
/// the [crate docs](crate) for an example.
#[derive(Clone)]
pub struct Mesh {
    pub(crate) inner: Arc<MeshInner>,
}

pub(crate) struct MeshInner {
    pub(crate) xds: Option<XdsClient>,
    pub(crate) options: MeshOptions,
    pub(crate) wait_for_ready: Duration,
    pub(crate) telemetry: Option<crate::telemetry::Telemetry>,
    /// The admin endpoint, stopped with the last clone of the mesh.
    pub(crate) admin: Option<crate::admin::AdminServer>,
    pub(crate) runtime: Handle,
    /// Live channels by canonical target, so that channels for one target share one request path.
    pub(crate) channels: Mutex<HashMap<String, Weak<ChannelShared>>>,
}

impl Mesh {
    /// The address of the admin endpoint ([`MeshBuilder::admin`]), if the mesh has one.
    #[must_use]
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner
            .admin
            .as_ref()
            .map(crate::admin::AdminServer::local_addr)
    }

    /// A builder; see [`MeshBuilder`].
    pub fn builder() -> MeshBuilder {
        MeshBuilder::default()
    }

    /// A channel to `target`: `xds:///NAME` or `xds://AUTHORITY/NAME` (configuration from the control plane), or
    /// `dns:///HOST:PORT` (or bare `HOST:PORT`: the host's addresses, resolved now and every 30 s). Channels for the
    /// same target share one request path while any of them lives. May be called outside the runtime the mesh was
    /// built in; its tasks run there.
    ///
    /// The first calls wait for the target's configuration (see [`MeshBuilder::wait_for_ready`]).
    ///
    /// # Errors
    /// [`ChannelError`] when the target does not parse, names an authority the bootstrap lacks, or is an `xds:`
    /// target on a mesh built without xDS.
    pub fn channel(&self, target: &str) -> Result<Channel, ChannelError> {
        let parsed = Target::parse(target)?;
        let key = parsed.to_string();
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = channels.get(&key).and_then(Weak::upgrade) {
            return Ok(Channel::from_shared(shared));
        }
        let shared = Arc::new(self.make_channel(target, &parsed, key.as_str().into())?);
        channels.retain(|_, channel| channel.strong_count() > 0);
        channels.insert(key, Arc::downgrade(&shared));
        Ok(Channel::from_shared(shared))
    }

    /// A client for services that are not gRPC: the same [`Channel`] (it serves `http::Request<B>` for any body),
    /// named for what it is used for. Requests may carry a relative URI (`/path?query`); the target's authority is
    /// filled in. Failures come back as responses: 503 (unavailable: no configuration, no route, no endpoint,
    /// connection failure) or 504 (timeout) with the reason as a text body, and the request path's
    /// [`mesh_tower::error::MeshError`] in the response extensions.
    ///
    /// ```no_run
    /// use http_body_util::{BodyExt, Full};
    /// use tower::ServiceExt;
    ///
    /// # async fn demo(mesh: mesh_tonic::Mesh) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let client = mesh.http_client("xds:///inventory")?;
    /// let request = http::Request::get("/items/42").body(Full::new(bytes::Bytes::new()))?;
    /// let response = client.oneshot(request).await?;
    /// let body = response.into_body().collect().await?.to_bytes();
    /// # let _ = body;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Mesh::channel`].
    pub fn http_client(&self, target: &str) -> Result<Channel, ChannelError> {
        self.channel(target)
    }

    /// A channel balancing over fixed `addresses`, through the same request path as `xds:` targets, with default
    /// [`MeshOptions`]. Not shared with other channels. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`ChannelError::NoAddresses`] for an empty list.
    pub fn static_channel(
        addresses: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Channel, ChannelError> {
        Self::static_channel_with_options(addresses, MeshOptions::default())
    }

    /// [`Mesh::static_channel`] with request-path `options`.
    ///
    /// # Errors
    /// As [`Mesh::static_channel`].
    pub fn static_channel_with_options(
        addresses: impl IntoIterator<Item = SocketAddr>,
        options: MeshOptions,
    ) -> Result<Channel, ChannelError> {
        let addresses: Vec<SocketAddr> = addresses.into_iter().collect();
        let first = addresses.first().ok_or(ChannelError::NoAddresses)?;
        let label = format!(
            "static:///{}",
            addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        let options = options.for_target(&label);
        let service = fixed_service(&label, &first.to_string(), &addresses, options)?;
        Ok(Channel::from_shared(Arc::new(ChannelShared {
            service,
            target: label.into(),
        })))
    }

    /// An xDS-enabled server (gRFC A36) configured by this mesh's control plane; see [`crate::server`].
    pub fn server(&self) -> crate::server::ServerBuilder {
        crate::server::ServerBuilder::new(self.clone())
    }

    /// The xDS client, when the mesh has one.
    #[must_use]
    pub fn xds_client(&self) -> Option<&XdsClient> {
        self.inner.xds.as_ref()
    }

    /// The bootstrap in use, when the mesh has an xDS client.
    #[must_use]
    pub fn bootstrap(&self) -> Option<&Bootstrap> {
        self.inner.xds.as_ref().map(XdsClient::bootstrap)
    }

    /// Every subscribed xDS resource with its status, version and last error (gRFC A40); `None` without xDS or once
    /// the client has stopped.
    pub async fn config_dump(&self) -> Option<ConfigDump> {
        self.inner.xds.as_ref()?.config_dump().await
    }

    /// The CSDS service (gRFC A40) over this mesh's xDS client, to mount on an admin server with
    /// [`CsdsService::into_server`]; `None` without xDS.
    #[must_use]
    pub fn csds_service(&self) -> Option<CsdsService> {
        self.inner.xds.clone().map(CsdsService::new)
    }

    fn make_channel(
        &self,
        given: &str,
        target: &Target,
        label: Arc<str>,
    ) -> Result<ChannelShared, ChannelError> {
        let inner = &self.inner;
        let _runtime = inner.runtime.enter();
        let options = inner.options.clone().for_target(&label);
        let (downstream, source) = watch::channel(None);
        match target {
            Target::Xds { authority, name } => {
                let client = inner
                    .xds
                    .as_ref()
                    .ok_or_else(|| ChannelError::XdsDisabled {
                        target: given.to_owned(),
                    })?;
                let listener = client
                    .bootstrap()
                    .client_listener_name(authority.as_deref(), name)
                    .map_err(|source| ChannelError::ListenerName {
                        target: given.to_owned(),
                        source,
                    })?;
                // gRFC A27: the target's name is also the data-plane authority that selects the virtual host.
                let watcher = client.watch_target(&listener, name);
                let upstream = watcher.receiver();
                inner.runtime.spawn(gate::run(
                    upstream,
                    downstream,
                    Arc::clone(&label),
                    inner.wait_for_ready,
                    watcher,
                ));
            }
            Target::Dns { host, port } => {
                if let Some(ip) = target.ip_literal() {
                    let address = SocketAddr::new(ip, *port);
                    let service = fixed_service(&label, &address.to_string(), &[address], options)?;
                    return Ok(ChannelShared {
                        service,
                        target: label,
                    });
                }
                let (resolved, upstream) = watch::channel(None);
                inner.runtime.spawn(resolve_dns(
                    host.as_str().into(),
                    *port,
                    Arc::clone(&label),
                    DEFAULT_DNS_REFRESH,
                    resolved,
                ));
                inner.runtime.spawn(gate::run(
                    upstream,
                    downstream,
                    Arc::clone(&label),
                    inner.wait_for_ready,
                    (),
                ));
            }
        }
        let service = MeshService::from_source(source, options);
        Ok(ChannelShared {
            service,
            target: label,
        })
    }
}

/// A service over fixed `addresses`, configured at once.
fn fixed_service(
    label: &str,
    authority: &str,
    addresses: &[SocketAddr],
    options: MeshOptions,
) -> Result<MeshService, ChannelError> {
    let target = DirectTarget {
        name: label,
        authority,
        discovery: Discovery::Static,
    };
    let snapshot = target
        .snapshot(addresses, 1)
        .map_err(|error| ChannelError::Internal {
            target: label.to_owned(),
            problem: error.to_string(),
        })?;
    let service = MeshService::new(options);
    service.update(Some(Ok(snapshot)));
    Ok(service)
}

impl fmt::Debug for Mesh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mesh")
            .field("xds", &self.inner.xds.is_some())
            .field("wait_for_ready", &self.inner.wait_for_ready)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}
