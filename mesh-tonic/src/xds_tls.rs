//! TLS to the control plane (gRFC A65): for every xDS server whose bootstrap `channel_creds` is `tls`, a
//! [`Connector`] that dials it with mesh-tower's rustls client config, trusting `ca_certificate_file` and, when the
//! certificate pair is set, presenting it (mutual TLS). The files are watched and reloaded like a `file_watcher`
//! certificate provider's (`refresh_interval`, directory events), so rotation reaches the next connection.
//!
//! The server is checked as any TLS client checks it: its certificate must chain to the roots and carry the host
//! of `server_uri` as a DNS or IP SAN (wildcards as RFC 6125 allows). SNI is that host when it is a name.
//!
//! Not supported: system roots (a `tls` credential without `ca_certificate_file` fails the build with a reason).

use std::net::IpAddr;

use mesh_core::endpoint::EndpointAddress;
use mesh_core::matcher::{StringMatch, StringMatcher};
use mesh_core::tls::{CertificateProviderInstance, CertificateValidation, UpstreamTls};
use mesh_tower::tls::{
    CertificateProvider, CertificateProviders, ClientTls, FileWatcherConfig, TlsConfigError,
};
use mesh_xds_client::bootstrap::{Bootstrap, ChannelCreds, TlsChannelCreds, XdsServer};
use mesh_xds_client::client::{ClientOptions, ConnectedIo, Connector};
use tokio::net::TcpStream;

use crate::error::MeshError;

/// Adds a connector for every server of `bootstrap` (top-level and per authority) with `tls` credentials, unless
/// `options` already has one for it.
pub(crate) fn with_connectors(
    bootstrap: &Bootstrap,
    mut options: ClientOptions,
) -> Result<ClientOptions, MeshError> {
    let servers = bootstrap.xds_servers.iter().chain(
        bootstrap
            .authorities
            .values()
            .flat_map(|authority| authority.xds_servers.iter()),
    );
    for server in servers {
        let ChannelCreds::Tls(creds) = &server.channel_creds else {
            continue;
        };
        if options.connectors.contains_key(&server.server_uri) {
            continue;
        }
        let connector = connector(server, creds).map_err(|source| MeshError::ControlPlaneTls {
            server_uri: server.server_uri.clone(),
            source,
        })?;
        options = options.with_connector(server.server_uri.clone(), connector);
    }
    Ok(options)
}

fn connector(server: &XdsServer, creds: &TlsChannelCreds) -> Result<Connector, TlsConfigError> {
    let Some(ca) = &creds.ca_certificate_file else {
        return Err(TlsConfigError::SystemRootsUnsupported);
    };
    let mut files = FileWatcherConfig::default()
        .with_ca_certificate_file(ca)
        .with_refresh_interval(creds.refresh_interval);
    if let (Some(certificate), Some(key)) = (&creds.certificate_file, &creds.private_key_file) {
        files = files.with_identity(certificate, key);
    }
    let name = format!("xds_server {}", server.server_uri);
    let provider = CertificateProvider::file_watcher(&name, files)?;
    let host = host_of(&server.server_uri);
    let instance = CertificateProviderInstance::new(&name);
    // Hostname verification as SAN matching: DNS names compare without case.
    let hostname = StringMatcher::new(StringMatch::Exact(host.as_str().into()), true);
    let validation = CertificateValidation::default()
        .with_ca(Some(instance.clone()))
        .with_san_matchers(vec![hostname]);
    let mut tls = UpstreamTls::new(validation);
    if creds.certificate_file.is_some() {
        tls = tls.with_identity(Some(instance));
    }
    if host.parse::<IpAddr>().is_err() {
        tls = tls.with_sni(Some(host.as_str().into()));
    }
    let client = ClientTls::new(&tls, &CertificateProviders::new().with(provider))?;
    Ok(Connector::new(move |uri: http::Uri| {
        let client = client.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .map(|host| {
                    host.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned()
                })
                .unwrap_or_default();
            let port = uri.port_u16().unwrap_or(443);
            let stream = TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            let address = EndpointAddress::HostPort {
                host: host.into(),
                port,
            };
            let stream = client.connect(&address, stream).await?;
            Ok(Box::new(stream) as Box<dyn ConnectedIo>)
        })
    }))
}

/// The host of a bootstrap `server_uri` (`host:port`, `dns:///host:port`, `https://host:port`, `[v6]:port`).
fn host_of(server_uri: &str) -> String {
    let bare = server_uri.strip_prefix("dns:///").unwrap_or(server_uri);
    let bare = bare.split_once("://").map_or(bare, |(_, rest)| rest);
    let authority = bare.split('/').next().unwrap_or(bare);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_owned();
    }
    match authority.rsplit_once(':') {
        Some((host, _port)) => host.to_owned(),
        None => authority.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts_of_server_uris() {
        assert_eq!(host_of("xds.example.com:443"), "xds.example.com");
        assert_eq!(host_of("dns:///xds.example.com:443"), "xds.example.com");
        assert_eq!(host_of("https://xds.example.com:8443/"), "xds.example.com");
        assert_eq!(host_of("[::1]:18000"), "::1");
        assert_eq!(host_of("127.0.0.1:18000"), "127.0.0.1");
        assert_eq!(host_of("localhost"), "localhost");
    }
}
