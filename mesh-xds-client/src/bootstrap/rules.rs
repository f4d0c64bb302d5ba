//! The rules a bootstrap must keep beyond JSON types, shared by the JSON parser and the code builder so both refuse
//! the same things with the same words.

use super::certs::{FILE_WATCHER_PLUGIN, FileWatcherConfig};
use super::error::Problems;
use super::server::{ChannelCreds, TlsChannelCreds, XdsServer};
use super::{Authority, Bootstrap, parse};

pub(super) const NON_EMPTY: &str = "must be non-empty";

const IDENTITY_PAIR: &str =
    "fields \"certificate_file\" and \"private_key_file\" must be both set or both unset";

/// gRFC A65 and A29 (C-core's `JsonPostLoad` of both configs): the identity certificate and its key come together.
fn identity_pair(
    certificate_file: Option<&String>,
    private_key_file: Option<&String>,
) -> Option<&'static str> {
    (certificate_file.is_some() != private_key_file.is_some()).then_some(IDENTITY_PAIR)
}

/// Rules of a `tls` channel creds config, reported at `field` (its `config`).
pub(super) fn tls_creds(creds: &TlsChannelCreds, field: &str, problems: &mut Problems) {
    if let Some(message) = identity_pair(
        creds.certificate_file.as_ref(),
        creds.private_key_file.as_ref(),
    ) {
        problems.add(field, message);
    }
}

/// Rules of a `file_watcher` config (mesh-core's, in C-core's words), reported at `field` (its `config`).
pub(super) fn file_watcher(config: &FileWatcherConfig, field: &str, problems: &mut Problems) {
    for problem in config.problems() {
        problems.add(field, problem.to_string());
    }
}

/// gRFC A47: an authority's `client_listener_resource_name_template` "must start with `xdstp://<authority_name>/`";
/// C-core's wording. `field` is the template's own field.
pub(super) fn authority_template(name: &str, template: &str, field: &str, problems: &mut Problems) {
    let expected_prefix = format!("xdstp://{name}/");
    if !template.starts_with(&expected_prefix) {
        problems.add(
            field,
            format!("field must begin with \"{expected_prefix}\""),
        );
    }
}

/// A server needs somewhere to connect to. C-core accepts an empty `server_uri` and fails later when connecting;
/// grpc-go refuses it here, which is the clearer place.
pub(super) fn server_uri(uri: &str, field: &str, problems: &mut Problems) {
    if uri.is_empty() {
        problems.add(field, NON_EMPTY);
    }
}

/// Every rule, on a bootstrap built in code, with fields named as the equivalent JSON would name them.
/// Normalises the same way the parser does (empty templates mean unset; `file_watcher` configs given as JSON are
/// parsed).
pub(super) fn check(mut bootstrap: Bootstrap) -> Result<Bootstrap, super::BootstrapError> {
    let mut problems = Problems::default();
    if bootstrap.xds_servers.is_empty() {
        problems.add("xds_servers", NON_EMPTY);
    }
    check_servers(&mut bootstrap.xds_servers, "xds_servers", &mut problems);
    for (name, provider) in &mut bootstrap.certificate_providers {
        let field = format!("certificate_providers[\"{name}\"].config");
        if provider.plugin_name == FILE_WATCHER_PLUGIN && provider.file_watcher.is_none() {
            provider.file_watcher = parse::file_watcher(&provider.config, &field, &mut problems);
        } else if let Some(config) = &mut provider.file_watcher {
            for file in [
                &mut config.certificate_file,
                &mut config.private_key_file,
                &mut config.ca_certificate_file,
                &mut config.spiffe_trust_bundle_map_file,
            ] {
                blank_to_none(file);
            }
            file_watcher(config, &field, &mut problems);
        }
    }
    for (name, authority) in &mut bootstrap.authorities {
        let field = format!("authorities[\"{name}\"]");
        check_authority(name, authority, &field, &mut problems);
    }
    if bootstrap
        .client_default_listener_resource_name_template
        .is_empty()
    {
        super::DEFAULT_CLIENT_LISTENER_TEMPLATE
            .clone_into(&mut bootstrap.client_default_listener_resource_name_template);
    }
    if bootstrap.server_listener_resource_name_template.as_deref() == Some("") {
        bootstrap.server_listener_resource_name_template = None;
    }
    problems.finish(bootstrap)
}

fn check_authority(name: &str, authority: &mut Authority, field: &str, problems: &mut Problems) {
    if authority.client_listener_resource_name_template.as_deref() == Some("") {
        authority.client_listener_resource_name_template = None;
    }
    if let Some(template) = &authority.client_listener_resource_name_template {
        let template_field = format!("{field}.client_listener_resource_name_template");
        authority_template(name, template, &template_field, problems);
    }
    check_servers(
        &mut authority.xds_servers,
        &format!("{field}.xds_servers"),
        problems,
    );
}

fn check_servers(servers: &mut [XdsServer], field: &str, problems: &mut Problems) {
    for (index, server) in servers.iter_mut().enumerate() {
        let server_field = format!("{field}[{index}]");
        server_uri(
            &server.server_uri,
            &format!("{server_field}.server_uri"),
            problems,
        );
        if let ChannelCreds::Tls(creds) = &mut server.channel_creds {
            for file in [
                &mut creds.certificate_file,
                &mut creds.private_key_file,
                &mut creds.ca_certificate_file,
            ] {
                blank_to_none(file);
            }
            tls_creds(creds, &format!("{server_field}.channel_creds"), problems);
        }
    }
}

/// Empty paths mean unset, as in grpc-go.
fn blank_to_none<P: AsRef<std::ffi::OsStr>>(file: &mut Option<P>) {
    if file.as_ref().is_some_and(|path| path.as_ref().is_empty()) {
        *file = None;
    }
}
