//! Building a bootstrap in code, for tests, embedded control planes and programs that do not use a file.

use std::collections::BTreeMap;

use mesh_core::locality::Locality;

use super::certs::CertificateProviderConfig;
use super::node::Node;
use super::server::{ChannelCreds, XdsServer};
use super::{Authority, Bootstrap, BootstrapError, DEFAULT_CLIENT_LISTENER_TEMPLATE, rules};

/// Builds a [`Bootstrap`]; [`BootstrapBuilder::build`] checks it with the parser's rules.
///
/// ```no_run
/// use mesh_core::locality::Locality;
/// use mesh_xds_client::bootstrap::{Bootstrap, ChannelCreds};
///
/// # fn main() -> Result<(), mesh_xds_client::bootstrap::BootstrapError> {
/// let bootstrap = Bootstrap::builder()
///     .server("localhost:18000", ChannelCreds::Insecure)
///     .node_id("client-1")
///     .locality(Locality::new("us-east1", "us-east1-b", ""))
///     .build()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct BootstrapBuilder {
    xds_servers: Vec<XdsServer>,
    node: Node,
    certificate_providers: BTreeMap<String, CertificateProviderConfig>,
    server_listener_resource_name_template: Option<String>,
    client_default_listener_resource_name_template: Option<String>,
    authorities: BTreeMap<String, Authority>,
}

impl BootstrapBuilder {
    /// Adds a server at `server_uri` reached with `channel_creds` (after those added before: a fallback).
    pub fn server(self, server_uri: impl Into<String>, channel_creds: ChannelCreds) -> Self {
        self.xds_server(XdsServer::new(server_uri, channel_creds))
    }

    /// Adds a server, with its features.
    pub fn xds_server(mut self, server: XdsServer) -> Self {
        self.xds_servers.push(server);
        self
    }

    /// Replaces the whole node.
    pub fn node(mut self, node: Node) -> Self {
        self.node = node;
        self
    }

    /// Sets `node.id`.
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node.id = id.into();
        self
    }

    /// Sets `node.cluster`.
    pub fn node_cluster(mut self, cluster: impl Into<String>) -> Self {
        self.node.cluster = cluster.into();
        self
    }

    /// Sets `node.locality`.
    pub fn locality(mut self, locality: Locality) -> Self {
        self.node.locality = locality;
        self
    }

    /// Sets `node.metadata`.
    pub fn node_metadata(mut self, metadata: serde_json::Map<String, serde_json::Value>) -> Self {
        self.node.metadata = metadata;
        self
    }

    /// Adds certificate provider instance `name`.
    pub fn certificate_provider(
        mut self,
        name: impl Into<String>,
        provider: CertificateProviderConfig,
    ) -> Self {
        self.certificate_providers.insert(name.into(), provider);
        self
    }

    /// Sets the server Listener name template (gRFC A36).
    pub fn server_listener_resource_name_template(mut self, template: impl Into<String>) -> Self {
        self.server_listener_resource_name_template = Some(template.into());
        self
    }

    /// Sets the client Listener name template for targets without an authority (gRFC A47).
    pub fn client_default_listener_resource_name_template(
        mut self,
        template: impl Into<String>,
    ) -> Self {
        self.client_default_listener_resource_name_template = Some(template.into());
        self
    }

    /// Adds authority `name` (gRFC A47).
    pub fn authority(mut self, name: impl Into<String>, authority: Authority) -> Self {
        self.authorities.insert(name.into(), authority);
        self
    }

    /// The bootstrap, checked with the rules [`Bootstrap::from_json_str`] applies (problems are named by the JSON
    /// field the equivalent bootstrap file would have, e.g. `xds_servers: must be non-empty`).
    ///
    /// # Errors
    /// [`BootstrapError::Invalid`] listing every problem.
    pub fn build(self) -> Result<Bootstrap, BootstrapError> {
        rules::check(Bootstrap {
            xds_servers: self.xds_servers,
            node: self.node,
            certificate_providers: self.certificate_providers,
            server_listener_resource_name_template: self.server_listener_resource_name_template,
            client_default_listener_resource_name_template: self
                .client_default_listener_resource_name_template
                .unwrap_or_else(|| DEFAULT_CLIENT_LISTENER_TEMPLATE.to_owned()),
            authorities: self.authorities,
        })
    }
}
