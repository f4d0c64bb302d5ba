//! What the state machine needs from the bootstrap: servers, authorities, timers and backoff.

use std::collections::BTreeMap;
use std::time::Duration;

/// The does-not-exist timeout for a subscribed resource (Envoy's xDS protocol doc, "Knowing when a requested
/// resource does not exist"; gRFC A57).
pub const DEFAULT_RESOURCE_TIMEOUT: Duration = Duration::from_secs(15);
/// gRPC connection backoff `INITIAL_BACKOFF` (grpc/grpc `doc/connection-backoff.md`), used for ADS streams that fail
/// before any response (gRFC A57).
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// gRPC connection backoff `MULTIPLIER`.
pub const DEFAULT_BACKOFF_MULTIPLIER: f64 = 1.6;
/// gRPC connection backoff `JITTER`: each delay is spread uniformly over `±JITTER` of its nominal value.
pub const DEFAULT_BACKOFF_JITTER: f64 = 0.2;
/// gRPC connection backoff `MAX_BACKOFF`.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(120);

/// An xDS server, by its position in [`ProtocolConfig::servers`].
///
/// Servers with identical [`ServerConfig`]s are the same server: the state machine keeps one stream for them and
/// always names the first position (gRFC A47: "entries will be de-duped").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(pub usize);

/// One xDS server from the bootstrap's `xds_servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The server's URI, used in logs and error messages (the worker owns the channel).
    pub uri: String,
    /// The `ignore_resource_deletion` server feature (gRFC A53): keep serving a Listener or Cluster the server stops
    /// sending instead of reporting it deleted.
    pub ignore_resource_deletion: bool,
}

impl ServerConfig {
    /// A server at `uri` with no server features.
    #[must_use]
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            ignore_resource_deletion: false,
        }
    }
}

/// Reconnect backoff for streams that fail before any response (gRFC A57, gRPC connection backoff).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BackoffConfig {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Growth factor between retries; at least 1.
    pub multiplier: f64,
    /// Relative jitter in `0..=1`: a delay `d` becomes uniform in `d * (1 - jitter) ..= d * (1 + jitter)`.
    pub jitter: f64,
    /// Upper bound on the nominal delay.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: DEFAULT_BACKOFF_INITIAL,
            multiplier: DEFAULT_BACKOFF_MULTIPLIER,
            jitter: DEFAULT_BACKOFF_JITTER,
            max: DEFAULT_BACKOFF_MAX,
        }
    }
}

/// Configuration of [`XdsState`](super::XdsState).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProtocolConfig {
    /// Every xDS server named anywhere in the bootstrap. Positions are [`ServerId`]s.
    pub servers: Vec<ServerConfig>,
    /// Servers for each `xdstp://` authority, in fallback order (gRFC A47, A71). An empty list means
    /// [`default_servers`](Self::default_servers) (gRFC A47: "If not specified, the top-level server list is used").
    pub authorities: BTreeMap<String, Vec<usize>>,
    /// Servers for old-style (non-`xdstp`) names, in fallback order: the bootstrap's top-level `xds_servers`.
    pub default_servers: Vec<usize>,
    /// How long a subscribed, never-seen resource may stay unanswered on a connected stream before it is reported as
    /// not existing.
    pub resource_timeout: Duration,
    /// Reconnect backoff.
    pub backoff: BackoffConfig,
}

impl ProtocolConfig {
    /// A configuration where every server is a default server, tried in the given order, with no authorities and
    /// default timers.
    #[must_use]
    pub fn new(servers: Vec<ServerConfig>) -> Self {
        let default_servers = (0..servers.len()).collect();
        Self {
            servers,
            authorities: BTreeMap::new(),
            default_servers,
            resource_timeout: DEFAULT_RESOURCE_TIMEOUT,
            backoff: BackoffConfig::default(),
        }
    }
}

/// A [`ProtocolConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No servers at all.
    #[error("xds_servers: at least one xDS server is required")]
    NoServers,
    /// The default server list is empty.
    #[error("default_servers: at least one server is required for non-xdstp resource names")]
    NoDefaultServers,
    /// A server list names a position past the end of `servers`.
    #[error("{list}: server index {index} is out of range (there are {count} servers)")]
    ServerOutOfRange {
        /// Which list (`default_servers` or `authorities["name"]`).
        list: String,
        /// The bad index.
        index: usize,
        /// How many servers there are.
        count: usize,
    },
    /// The backoff settings are unusable.
    #[error("backoff: {0}")]
    Backoff(&'static str),
}

/// Checks `config` and resolves every server list to canonical, de-duplicated [`ServerId`]s.
pub(super) fn resolve(config: &ProtocolConfig) -> Result<Resolved, ConfigError> {
    if config.servers.is_empty() {
        return Err(ConfigError::NoServers);
    }
    if config.default_servers.is_empty() {
        return Err(ConfigError::NoDefaultServers);
    }
    check_backoff(&config.backoff)?;
    // gRFC A47: servers are keyed by their whole definition, so identical entries share one stream.
    let canonical: Vec<ServerId> = config
        .servers
        .iter()
        .enumerate()
        .map(|(index, server)| {
            ServerId(
                config
                    .servers
                    .iter()
                    .position(|other| other == server)
                    .unwrap_or(index),
            )
        })
        .collect();
    let map_list = |list: &str, indices: &[usize]| -> Result<Vec<ServerId>, ConfigError> {
        let mut out: Vec<ServerId> = Vec::with_capacity(indices.len());
        for &index in indices {
            let id =
                canonical
                    .get(index)
                    .copied()
                    .ok_or_else(|| ConfigError::ServerOutOfRange {
                        list: list.to_owned(),
                        index,
                        count: config.servers.len(),
                    })?;
            if !out.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    };
    let default_servers = map_list("default_servers", &config.default_servers)?;
    let mut authorities = BTreeMap::new();
    for (name, indices) in &config.authorities {
        let list = if indices.is_empty() {
            default_servers.clone()
        } else {
            map_list(&format!("authorities[{name:?}]"), indices)?
        };
        authorities.insert(name.clone(), list);
    }
    Ok(Resolved {
        default_servers,
        authorities,
    })
}

fn check_backoff(backoff: &BackoffConfig) -> Result<(), ConfigError> {
    if !(backoff.multiplier.is_finite() && backoff.multiplier >= 1.0) {
        return Err(ConfigError::Backoff(
            "multiplier must be a finite number >= 1",
        ));
    }
    if !(0.0..=1.0).contains(&backoff.jitter) {
        return Err(ConfigError::Backoff("jitter must be within 0..=1"));
    }
    if backoff.max < backoff.initial {
        return Err(ConfigError::Backoff("max must not be below initial"));
    }
    Ok(())
}

/// Server lists after validation.
#[derive(Debug)]
pub(super) struct Resolved {
    pub(super) default_servers: Vec<ServerId>,
    pub(super) authorities: BTreeMap<String, Vec<ServerId>>,
}
