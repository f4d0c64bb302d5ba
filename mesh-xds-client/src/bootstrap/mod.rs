//! gRPC's xDS bootstrap: which management servers to talk to, who we are, and how resource names are formed.
//!
//! What it solves: reading the bootstrap JSON exactly as gRPC C-core and grpc-go accept it, so one bootstrap file
//! serves this library and every other proxyless gRPC client in a mesh:
//! - `xds_servers` (gRFC A27), in order, the later ones being fallbacks (gRFC A71); each with the first supported
//!   `channel_creds` entry (`insecure`, `google_default`, `tls` per gRFC A65) and its `server_features`
//!   (`ignore_resource_deletion`, gRFC A53);
//! - `node` (id, cluster, locality, metadata);
//! - `certificate_providers` (gRFC A29), with the `file_watcher` plugin's config validated;
//! - `server_listener_resource_name_template` (gRFC A36), `client_default_listener_resource_name_template` and
//!   `authorities` (gRFC A47), with helpers that turn an `xds:` target or a listening address into a Listener name.
//!
//! Every problem in a bootstrap is reported at once, each naming its JSON field the way C-core does
//! (`xds_servers[0].channel_creds: field not present`). Nothing here panics, whatever the input.
//!
//! What it does not do: open connections, read certificates or watch files. It names files; the transport and the
//! security layer use them. Only [`Bootstrap::from_env`] reads the process environment, and only the two variables
//! gRPC defines (`GRPC_XDS_BOOTSTRAP`, `GRPC_XDS_BOOTSTRAP_CONFIG`); unlike gRPC, no experimental environment
//! variable switches features on or off: federation, fallback and SPIFFE bundle maps are always accepted.
//!
//! ```no_run
//! use mesh_xds_client::bootstrap::Bootstrap;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bootstrap = Bootstrap::from_json_str(
//!     r#"{"xds_servers":[{"server_uri":"localhost:18000","channel_creds":[{"type":"insecure"}]}]}"#,
//! )?;
//! assert_eq!(bootstrap.client_listener_name(None, "/greeter")?, "greeter");
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

mod builder;
mod certs;
mod duration;
mod error;
mod names;
mod node;
mod parse;
mod rules;
mod server;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_certs;
#[cfg(test)]
mod tests_names;
#[cfg(test)]
mod tests_prop;

pub use builder::BootstrapBuilder;
pub use certs::{CertificateProviderConfig, FILE_WATCHER_PLUGIN, FileWatcherConfig};
pub use error::{BootstrapError, BootstrapProblem, ListenerNameError};
pub use names::xdstp_authority;
pub use node::{DEFAULT_USER_AGENT_NAME, DEFAULT_USER_AGENT_VERSION, Node};
pub use server::{
    ChannelCreds, DEFAULT_REFRESH_INTERVAL, SERVER_FEATURE_IGNORE_RESOURCE_DELETION,
    TlsChannelCreds, XdsServer,
};

/// The environment variable naming a bootstrap file (gRFC A27).
pub const BOOTSTRAP_FILE_ENV: &str = "GRPC_XDS_BOOTSTRAP";

/// The environment variable holding bootstrap JSON itself, used when [`BOOTSTRAP_FILE_ENV`] is unset.
pub const BOOTSTRAP_CONFIG_ENV: &str = "GRPC_XDS_BOOTSTRAP_CONFIG";

/// gRFC A47: the default `client_default_listener_resource_name_template`: the target's name as it is.
pub const DEFAULT_CLIENT_LISTENER_TEMPLATE: &str = "%s";

/// A validated bootstrap.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Bootstrap {
    /// The management servers, in order of preference (gRFC A71: the later ones are fallbacks). Never empty in a
    /// bootstrap this module produced.
    pub xds_servers: Vec<XdsServer>,
    /// Who we are.
    pub node: Node,
    /// Certificate provider instances by name (gRFC A29).
    pub certificate_providers: BTreeMap<String, CertificateProviderConfig>,
    /// The template of an xDS-enabled server's Listener name, `%s` standing for `ip:port` (gRFC A36); without it an
    /// xDS-enabled server cannot start.
    pub server_listener_resource_name_template: Option<String>,
    /// The template of a client's Listener name for `xds:` targets without an authority (gRFC A47; default `%s`).
    pub client_default_listener_resource_name_template: String,
    /// Federation authorities by name (gRFC A47).
    pub authorities: BTreeMap<String, Authority>,
}

impl Bootstrap {
    /// Parses and validates bootstrap JSON.
    ///
    /// # Errors
    /// [`BootstrapError::Json`] for text that is not JSON; [`BootstrapError::Invalid`] listing every problem.
    pub fn from_json_str(json: &str) -> Result<Self, BootstrapError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| BootstrapError::from_json(&e))?;
        parse::bootstrap(&value)
    }

    /// Reads, parses and validates a bootstrap file.
    ///
    /// # Errors
    /// [`BootstrapError::Io`] naming `path` when it cannot be read, else as [`Bootstrap::from_json_str`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, BootstrapError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| BootstrapError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json_str(&text)
    }

    /// Loads the bootstrap the way gRPC does: the file named by `GRPC_XDS_BOOTSTRAP`, else the JSON in
    /// `GRPC_XDS_BOOTSTRAP_CONFIG`. This is the one place the library reads the environment.
    ///
    /// # Errors
    /// [`BootstrapError::NotConfigured`] when neither variable is set, else as [`Bootstrap::from_env_with`].
    pub fn from_env() -> Result<Self, BootstrapError> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// [`Bootstrap::from_env`] with the variables looked up by `lookup`, so tests need not touch the process
    /// environment. An empty value counts as unset (grpc-go does the same).
    ///
    /// # Errors
    /// [`BootstrapError::NotConfigured`] when neither variable is set; otherwise the errors of
    /// [`Bootstrap::from_file`] or [`Bootstrap::from_json_str`].
    pub fn from_env_with(
        mut lookup: impl FnMut(&str) -> Option<String>,
    ) -> Result<Self, BootstrapError> {
        let mut get = |name: &str| lookup(name).filter(|value| !value.is_empty());
        if let Some(path) = get(BOOTSTRAP_FILE_ENV) {
            return Self::from_file(path);
        }
        match get(BOOTSTRAP_CONFIG_ENV) {
            Some(json) => Self::from_json_str(&json),
            None => Err(BootstrapError::NotConfigured),
        }
    }

    /// A builder for a bootstrap made in code; [`BootstrapBuilder::build`] applies the same rules as the parser.
    pub fn builder() -> BootstrapBuilder {
        BootstrapBuilder::default()
    }

    /// The authority named `name`, if the bootstrap has it.
    #[must_use]
    pub fn authority(&self, name: &str) -> Option<&Authority> {
        self.authorities.get(name)
    }

    /// The servers to ask for resources of `authority` (gRFC A47): `None` (old-style names) uses the top-level
    /// servers; a known authority uses its own servers, or the top-level ones when it lists none. An authority the
    /// bootstrap does not have gets no servers (an empty slice): A47 makes that an error, and falling back to the
    /// default servers would send the request where it was not meant to go.
    #[must_use]
    pub fn servers_for_authority(&self, authority: Option<&str>) -> &[XdsServer] {
        match authority {
            None => &self.xds_servers,
            Some(name) => match self.authorities.get(name) {
                Some(entry) if !entry.xds_servers.is_empty() => &entry.xds_servers,
                Some(_) => &self.xds_servers,
                None => &[],
            },
        }
    }
}

/// One entry of `authorities` (gRFC A47).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Authority {
    /// The template of the Listener name for `xds://<this authority>/<name>` targets. Must start with
    /// `xdstp://<authority name>/`; `None` means `xdstp://<authority name>/envoy.config.listener.v3.Listener/%s`.
    pub client_listener_resource_name_template: Option<String>,
    /// This authority's servers, in order of preference; empty means the top-level `xds_servers`.
    pub xds_servers: Vec<XdsServer>,
}

impl Authority {
    /// An authority using the default template and the top-level servers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the client Listener name template.
    #[must_use]
    pub fn with_client_listener_resource_name_template(
        mut self,
        template: impl Into<String>,
    ) -> Self {
        self.client_listener_resource_name_template = Some(template.into());
        self
    }

    /// Adds a server of its own.
    #[must_use]
    pub fn with_server(mut self, server: XdsServer) -> Self {
        self.xds_servers.push(server);
        self
    }
}
