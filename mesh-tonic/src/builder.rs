//! [`MeshBuilder`]: where the mesh's bootstrap and settings come from.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_core::locality::Locality;
use mesh_tower::MeshOptions;
use mesh_tower::tls::{CertificateProvider, CertificateProviders};
use mesh_xds_client::bootstrap::{
    Bootstrap, BootstrapBuilder, CertificateProviderConfig, ChannelCreds,
};
use mesh_xds_client::client::{ClientOptions, XdsClient};

use crate::admin::AdminServer;
use crate::error::MeshError;
use crate::mesh::{Mesh, MeshInner};
use crate::telemetry::{Sampling, Telemetry, TelemetryConfig};

/// How long a channel waits for its target's first configuration before calls fail (see
/// [`MeshBuilder::wait_for_ready`]).
pub const DEFAULT_WAIT_FOR_READY: Duration = Duration::from_secs(10);

/// Where the bootstrap comes from.
#[derive(Debug)]
enum Source {
    Value(Box<Bootstrap>),
    Env,
}

/// Builds a [`Mesh`]; start with [`Mesh::builder`].
///
/// The bootstrap (gRFC A27: which xDS servers, who we are) comes from exactly one of:
/// - [`bootstrap`](Self::bootstrap): a [`Bootstrap`] value (from a file, JSON or [`Bootstrap::builder`]);
/// - [`bootstrap_from_env`](Self::bootstrap_from_env): `GRPC_XDS_BOOTSTRAP` (a file) or `GRPC_XDS_BOOTSTRAP_CONFIG`
///   (JSON), as every gRPC implementation reads it (with [`telemetry_from_env`](Self::telemetry_from_env), the only
///   environment this crate reads);
/// - parts given here: [`xds_server`](Self::xds_server), [`node_id`](Self::node_id),
///   [`locality`](Self::locality), [`certificate_provider`](Self::certificate_provider), checked by the same rules
///   as a bootstrap file;
/// - or none, with [`without_xds`](Self::without_xds), for `dns:` and static channels only.
///
/// Mixing a bootstrap value or the environment with parts is an error, so the configuration in use is never a
/// surprise.
///
/// ```no_run
/// use std::time::Duration;
/// use mesh_core::locality::Locality;
/// use mesh_tonic::Mesh;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let mesh = Mesh::builder()
///     .xds_server("127.0.0.1:18000")
///     .node_id("frontend-7d9f")
///     .locality(Locality::new("us-east", "us-east-1a", ""))
///     .wait_for_ready(Duration::from_secs(5))
///     .build()
///     .await?;
/// let channel = mesh.channel("xds:///greeter")?;
/// # let _ = channel;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use]
pub struct MeshBuilder {
    source: Option<Source>,
    parts: Option<BootstrapBuilder>,
    xds: bool,
    mesh_options: MeshOptions,
    wait_for_ready: Duration,
    client_options: ClientOptions,
    telemetry: Option<TelemetrySource>,
    telemetry_settings: TelemetrySettings,
    admin: Option<SocketAddr>,
}

impl Default for MeshBuilder {
    fn default() -> Self {
        Self {
            source: None,
            parts: None,
            xds: true,
            mesh_options: MeshOptions::default(),
            wait_for_ready: DEFAULT_WAIT_FOR_READY,
            client_options: ClientOptions::default(),
            telemetry: None,
            telemetry_settings: TelemetrySettings::default(),
            admin: None,
        }
    }
}

impl MeshBuilder {
    /// Uses `bootstrap`.
    pub fn bootstrap(mut self, bootstrap: Bootstrap) -> Self {
        self.source = Some(Source::Value(Box::new(bootstrap)));
        self
    }

    /// Reads the bootstrap from `GRPC_XDS_BOOTSTRAP` or `GRPC_XDS_BOOTSTRAP_CONFIG` when building (see
    /// [`Bootstrap::from_env`]).
    pub fn bootstrap_from_env(mut self) -> Self {
        self.source = Some(Source::Env);
        self
    }

    fn part(mut self, edit: impl FnOnce(BootstrapBuilder) -> BootstrapBuilder) -> Self {
        self.parts = Some(edit(self.parts.take().unwrap_or_default()));
        self
    }

    /// Adds an xDS server at `server_uri` (`host:port`), reached in plaintext; servers added later are fallbacks
    /// (gRFC A71).
    pub fn xds_server(self, server_uri: impl Into<String>) -> Self {
        self.part(|parts| parts.server(server_uri, ChannelCreds::Insecure))
    }

    /// Sets the node id the control plane sees.
    pub fn node_id(self, id: impl Into<String>) -> Self {
        self.part(|parts| parts.node_id(id))
    }

    /// Sets the node's cluster.
    pub fn node_cluster(self, cluster: impl Into<String>) -> Self {
        self.part(|parts| parts.node_cluster(cluster))
    }

    /// Sets the node's locality (control planes compute priorities relative to it).
    pub fn locality(self, locality: Locality) -> Self {
        self.part(|parts| parts.locality(locality))
    }

    /// Adds certificate provider instance `name` (gRFC A29).
    pub fn certificate_provider(
        self,
        name: impl Into<String>,
        provider: CertificateProviderConfig,
    ) -> Self {
        self.part(|parts| parts.certificate_provider(name, provider))
    }

    /// Builds a mesh with no xDS client: only `dns:` and static channels.
    pub fn without_xds(mut self) -> Self {
        self.xds = false;
        self
    }

    /// Settings of the request path (reconnect backoff, keep-alive, default retry budget, metrics, randomness).
    /// Its `initial_config_timeout` is replaced by [`wait_for_ready`](Self::wait_for_ready).
    pub fn mesh_options(mut self, options: MeshOptions) -> Self {
        self.mesh_options = options;
        self
    }

    /// How long a new channel waits for its target's first configuration (default [`DEFAULT_WAIT_FOR_READY`]).
    ///
    /// Calls made during that time wait for it (or for their own deadline) instead of failing on errors that may
    /// be transient (control plane unreachable or still starting, resource not there yet); when it ends without a
    /// configuration, calls fail at once with UNAVAILABLE and the latest reason, until a configuration arrives.
    pub fn wait_for_ready(mut self, wait: Duration) -> Self {
        self.wait_for_ready = wait;
        self
    }

    /// How long a subscribed xDS resource may go unanswered before it is reported as not existing (gRFC A57;
    /// default 15 s).
    pub fn resource_timeout(mut self, timeout: Duration) -> Self {
        self.client_options = self.client_options.with_resource_timeout(timeout);
        self
    }

    /// Loads the bootstrap and starts the xDS client. Must run inside a tokio runtime; the mesh's tasks run on it.
    ///
    /// # Errors
    /// [`MeshError`] naming what is wrong: no or conflicting bootstrap sources, an invalid bootstrap (each problem
    /// with its field, e.g. `xds_servers: must be non-empty`), an xDS client that cannot start.
    pub async fn build(self) -> Result<Mesh, MeshError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| MeshError::NoRuntime)?;
        if self.telemetry_settings.prometheus && self.admin.is_none() {
            return Err(MeshError::Conflict(
                ".prometheus() serves /metrics on the admin endpoint: give .admin(..) or .admin_port(..) too",
            ));
        }
        let telemetry = start_telemetry(self.telemetry, self.telemetry_settings)?;
        let client_options = match &telemetry {
            Some(telemetry) => self.client_options.with_metrics(telemetry.xds_metrics()),
            None => self.client_options,
        };
        let mut mesh_options = self.mesh_options;
        let client = if self.xds {
            let bootstrap = match (self.source, self.parts) {
                (Some(_), Some(_)) => {
                    return Err(MeshError::Conflict(
                        "a bootstrap (.bootstrap or .bootstrap_from_env) and bootstrap parts (.xds_server, \
                         .node_id, .locality, ...) were both given; use one or the other",
                    ));
                }
                (Some(Source::Value(bootstrap)), None) => *bootstrap,
                (Some(Source::Env), None) => Bootstrap::from_env()?,
                (None, Some(parts)) => parts.build()?,
                (None, None) => return Err(MeshError::NoBootstrap),
            };
            mesh_options.certificate_providers =
                certificate_providers(&bootstrap, &mesh_options.certificate_providers)?;
            let client_options = crate::xds_tls::with_connectors(&bootstrap, client_options)?;
            Some(XdsClient::start_with_options(bootstrap, client_options)?)
        } else {
            if self.source.is_some() || self.parts.is_some() {
                return Err(MeshError::Conflict(
                    ".without_xds() and a bootstrap were both given",
                ));
            }
            None
        };
        let admin = match self.admin {
            Some(address) => Some(
                AdminServer::start(address, client.clone(), telemetry.clone(), &runtime).await?,
            ),
            None => None,
        };
        let mut options =
            mesh_options.with_initial_config_timeout(request_wait(self.wait_for_ready));
        if let Some(telemetry) = &telemetry {
            options = telemetry.apply(options);
        }
        if let Some(client) = &client {
            // gRFC A27 LRS: the request path counts load per cluster and locality into the client's store; only
            // clusters with an `lrs_server` are counted, through counters resolved when their endpoints are set.
            options = options.with_load_store(client.load_store().clone());
        }
        Ok(Mesh {
            inner: Arc::new(MeshInner {
                xds: client,
                options,
                wait_for_ready: self.wait_for_ready,
                telemetry,
                admin,
                runtime,
                channels: Mutex::new(HashMap::new()),
            }),
        })
    }

    // The admin endpoint (issue #7): CSDS and the JSON config dump; see the `admin` module.

    /// Serves the admin endpoint on `address` while the mesh lives: CSDS over gRPC, `GET /config_dump` (JSON) and
    /// `GET /healthz`; see [`crate::admin`]. A socket of its own, never a serving port; keep it on 127.0.0.1
    /// ([`admin_port`](Self::admin_port)) unless it must be reached from elsewhere. Its address:
    /// [`Mesh::admin_addr`].
    pub fn admin(mut self, address: SocketAddr) -> Self {
        self.admin = Some(address);
        self
    }

    /// [`admin`](Self::admin) on `127.0.0.1:port` ([`DEFAULT_ADMIN_IP`](crate::admin::DEFAULT_ADMIN_IP); 0 picks
    /// a free port).
    pub fn admin_port(self, port: u16) -> Self {
        self.admin(SocketAddr::new(crate::admin::DEFAULT_ADMIN_IP, port))
    }

    // Telemetry (issue #7): OpenTelemetry over OTLP; see the `telemetry` module.

    /// Sends the mesh's metrics and spans to the OTLP/gRPC collector at `endpoint` (`http://host:4317`); see
    /// [`crate::telemetry`]. The mesh's channels record gRPC's client metrics, a span per call and per attempt,
    /// and put `traceparent` on every attempt; the application's own `tracing` spans are exported once its
    /// subscriber has the telemetry's layer ([`Mesh::telemetry`], then [`Telemetry::init_tracing`] or
    /// [`Telemetry::tracing_layer`]).
    pub fn with_otlp(mut self, endpoint: impl Into<String>) -> Self {
        self.telemetry = Some(TelemetrySource::Config(Box::new(TelemetryConfig::otlp(
            endpoint,
        ))));
        self
    }

    /// Configures telemetry from the OpenTelemetry variables when building: `OTEL_EXPORTER_OTLP_ENDPOINT` (no
    /// telemetry without it), `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`,
    /// `OTEL_TRACES_SAMPLER_ARG`, `OTEL_METRIC_EXPORT_INTERVAL` (see [`TelemetryConfig::from_vars`]). Settings
    /// given here ([`service_name`](Self::service_name), ...) take precedence over the variables.
    pub fn telemetry_from_env(mut self) -> Self {
        self.telemetry = Some(TelemetrySource::Env);
        self
    }

    /// Uses telemetry the application started itself ([`Telemetry::start`]), e.g. to share it between meshes.
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(TelemetrySource::Ready(telemetry));
        self
    }

    /// The `service.name` telemetry reports (with [`with_otlp`](Self::with_otlp) or
    /// [`telemetry_from_env`](Self::telemetry_from_env)).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.telemetry_settings.service_name = Some(name.into());
        self
    }

    /// Adds a resource attribute to telemetry (`deployment.environment`, `cloud.region`, ...).
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.telemetry_settings
            .resource_attributes
            .push((key.into(), value.into()));
        self
    }

    /// The fraction of new traces to sample (clamped to 0..=1; default 1). Calls that arrive with a caller's
    /// `traceparent` follow the caller's decision.
    pub fn trace_sampling_ratio(mut self, ratio: f64) -> Self {
        self.telemetry_settings.sampling = Some(Sampling::ParentBasedRatio(ratio.clamp(0.0, 1.0)));
        self
    }

    /// Also serves the mesh's metrics for Prometheus to scrape, at `GET /metrics` on the admin endpoint
    /// ([`admin_port`](Self::admin_port) or [`admin`](Self::admin), required; 127.0.0.1 by default), in the text
    /// exposition format (0.0.4). With [`with_otlp`](Self::with_otlp) or [`telemetry_from_env`](Self::telemetry_from_env)
    /// the same metrics also go to the collector; without a collector (neither given, or no
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`), they are only scraped and spans are not exported (`traceparent` is still
    /// sent). Names follow the OpenTelemetry-to-Prometheus rules: `grpc.client.attempt.duration` (unit `s`) is
    /// `grpc_client_attempt_duration_seconds`, `grpc.client.attempt.started` is `grpc_client_attempt_started_total`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// // Scrape http://127.0.0.1:9901/metrics; no collector needed.
    /// let mesh = mesh_tonic::Mesh::builder()
    ///     .bootstrap_from_env()
    ///     .admin_port(9901)
    ///     .prometheus()
    ///     .build()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn prometheus(mut self) -> Self {
        self.telemetry_settings.prometheus = true;
        self
    }

    /// How often metrics are exported (default [`DEFAULT_METRICS_INTERVAL`](crate::telemetry::DEFAULT_METRICS_INTERVAL)).
    pub fn metrics_export_interval(mut self, interval: Duration) -> Self {
        self.telemetry_settings.metrics_interval = Some(interval);
        self
    }
}

impl Mesh {
    /// The certificate provider instances TLS contexts can name: the bootstrap's `file_watcher` instances and
    /// those given through [`MeshOptions::with_certificate_providers`]. Each reports its reloads and failures in
    /// its [`status`](CertificateProvider::status).
    pub fn certificate_providers(&self) -> &CertificateProviders {
        &self.inner.options.certificate_providers
    }
}

/// The bootstrap's `file_watcher` certificate provider instances (gRFC A29), started here, with the instances given
/// in code through [`MeshOptions::with_certificate_providers`] added over them (code wins on a name clash).
/// Instances of other plugins are skipped with a warning: a TLS context naming one fails its calls.
fn certificate_providers(
    bootstrap: &Bootstrap,
    given: &CertificateProviders,
) -> Result<CertificateProviders, MeshError> {
    let mut providers = CertificateProviders::new();
    for (name, config) in &bootstrap.certificate_providers {
        let Some(files) = &config.file_watcher else {
            tracing::warn!(instance = %name, plugin = %config.plugin_name, "certificate provider plugin not supported");
            continue;
        };
        let provider =
            CertificateProvider::file_watcher(name, files.clone()).map_err(|source| {
                MeshError::CertificateProvider {
                    name: name.clone(),
                    source,
                }
            })?;
        providers = providers.with(provider);
    }
    Ok(given
        .iter()
        .cloned()
        .fold(providers, CertificateProviders::with))
}

/// How long the request path itself lets a call wait for a first configuration: a little longer than the channel's
/// wait-for-ready period, so that when the period ends the gate's reason (not a bare timeout) answers the calls
/// still waiting.
pub(crate) fn request_wait(wait_for_ready: Duration) -> Duration {
    wait_for_ready.saturating_add(Duration::from_secs(1))
}

/// Where the mesh's telemetry comes from.
#[derive(Debug)]
enum TelemetrySource {
    Config(Box<TelemetryConfig>),
    Env,
    Ready(Telemetry),
}

/// Telemetry settings given on the builder, applied over the configuration.
#[derive(Debug, Default)]
struct TelemetrySettings {
    service_name: Option<String>,
    resource_attributes: Vec<(String, String)>,
    sampling: Option<Sampling>,
    metrics_interval: Option<Duration>,
    prometheus: bool,
}

impl TelemetrySettings {
    fn is_empty(&self) -> bool {
        self.service_name.is_none()
            && self.resource_attributes.is_empty()
            && self.sampling.is_none()
            && self.metrics_interval.is_none()
            && !self.prometheus
    }

    fn apply(self, mut config: TelemetryConfig) -> TelemetryConfig {
        if let Some(name) = self.service_name {
            config.service_name = Some(name);
        }
        config.resource_attributes.extend(self.resource_attributes);
        if let Some(sampling) = self.sampling {
            config.sampling = sampling;
        }
        if let Some(interval) = self.metrics_interval {
            config.metrics_interval = interval;
        }
        config.prometheus |= self.prometheus;
        config
    }
}

/// The mesh's telemetry, started from the builder's source and settings.
fn start_telemetry(
    source: Option<TelemetrySource>,
    settings: TelemetrySettings,
) -> Result<Option<Telemetry>, MeshError> {
    let config = match source {
        None if settings.is_empty() => return Ok(None),
        // Metrics for Prometheus only.
        None if settings.prometheus => TelemetryConfig::prometheus(),
        None => {
            return Err(MeshError::Conflict(
                "telemetry settings (.service_name, .resource_attribute, .trace_sampling_ratio, \
                 .metrics_export_interval) were given without .with_otlp(..) or .telemetry_from_env()",
            ));
        }
        Some(TelemetrySource::Ready(telemetry)) => {
            if !settings.is_empty() {
                return Err(MeshError::Conflict(
                    "telemetry settings were given with .telemetry(..), which is already configured",
                ));
            }
            return Ok(Some(telemetry));
        }
        Some(TelemetrySource::Config(config)) => *config,
        // The one place this crate reads OpenTelemetry's variables: the explicit builder helper.
        Some(TelemetrySource::Env) => {
            match TelemetryConfig::from_vars(|name| std::env::var(name).ok())? {
                Some(config) => config,
                None if settings.prometheus => TelemetryConfig::prometheus(),
                None => return Ok(None),
            }
        }
    };
    Ok(Some(Telemetry::start(&settings.apply(config))?))
}
