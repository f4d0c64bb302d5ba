//! Validation of a [`MeshConfig`]: references, ranges, uniqueness. Every rule that a real client would otherwise
//! NACK is caught here, with the YAML path of the value, so a bad mesh file never reaches a client.

mod cluster;
mod server;
mod service;

use std::collections::HashMap;
use std::net::SocketAddr;

use super::MeshConfig;
use super::error::FieldError;
use super::matcher::{HeaderMatch, StringMatch};

#[derive(Default)]
pub(super) struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    pub(super) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn regex(&mut self, path: &str, pattern: &str) {
        // RE2 and the regex crate share their syntax for everything a route would use (no backreferences or
        // lookaround in either), so this catches what a client's RE2 would reject.
        if let Err(error) = regex::Regex::new(pattern) {
            let detail = error
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_owned();
            self.error(path, format!("invalid regex {pattern:?}: {detail}"));
        }
    }

    pub(super) fn non_empty(&mut self, path: &str, value: &str) {
        if value.is_empty() {
            self.error(path, "must not be empty");
        }
    }

    pub(super) fn percent(&mut self, path: &str, value: u32) {
        if value > 100 {
            self.error(path, format!("must be between 0 and 100, got {value}"));
        }
    }

    pub(super) fn string_match(&mut self, path: &str, matcher: &StringMatch) {
        if matcher.rule_count() != 1 {
            self.error(
                path,
                "exactly one of exact, prefix, suffix, contains, regex is required",
            );
        }
        if let Some(regex) = &matcher.regex {
            self.regex(&format!("{path}.regex"), regex);
        }
    }

    pub(super) fn header(&mut self, path: &str, header: &HeaderMatch) {
        self.non_empty(&format!("{path}.name"), &header.name);
        if header.rule_count() != 1 {
            self.error(
                path,
                "exactly one of exact, prefix, suffix, contains, regex, present, range is required",
            );
        }
        if let Some(regex) = &header.regex {
            self.regex(&format!("{path}.regex"), regex);
        }
        if let Some(range) = header.range
            && range.start >= range.end
        {
            self.error(format!("{path}.range"), "start must be less than end");
        }
    }
}

/// `IP:PORT` with a non-zero port, as endpoints and listening addresses need.
pub(super) fn parse_address(text: &str) -> Result<SocketAddr, String> {
    match text.parse::<SocketAddr>() {
        Ok(address) if address.port() == 0 => {
            Err(format!("invalid address {text:?}: port must not be 0"))
        }
        Ok(address) => Ok(address),
        Err(_) => Err(format!(
            "invalid address {text:?}: expected IP:PORT, e.g. 10.0.0.7:50051 or [::1]:50051"
        )),
    }
}

pub(in crate::mesh) fn validate(mesh: &MeshConfig) -> Vec<FieldError> {
    let mut checker = Checker::default();
    let clusters: HashMap<&str, usize> = mesh
        .clusters
        .iter()
        .enumerate()
        .rev()
        .map(|(index, cluster)| (cluster.name.as_str(), index))
        .collect();
    let mut listener_names: HashMap<String, String> = HashMap::new();
    let mut route_names: HashMap<&str, usize> = HashMap::new();
    for (index, service) in mesh.services.iter().enumerate() {
        let path = format!("services[{index}]");
        service::check_service(&mut checker, &path, service, &clusters);
        if let Some(previous) = listener_names.insert(service.name.clone(), path.clone()) {
            checker.error(
                format!("{path}.name"),
                format!(
                    "duplicate listener name {:?} (also {previous})",
                    service.name
                ),
            );
        }
        if let Some(previous) = route_names.insert(service.route_config_name(), index) {
            checker.error(
                format!("{path}.route_config_name"),
                format!(
                    "route configuration {:?} is already used by services[{previous}]",
                    service.route_config_name()
                ),
            );
        }
    }
    let mut eds_names: HashMap<&str, usize> = HashMap::new();
    for (index, cluster) in mesh.clusters.iter().enumerate() {
        let path = format!("clusters[{index}]");
        cluster::check_cluster(&mut checker, &path, cluster);
        if let Some(&first) = clusters.get(cluster.name.as_str())
            && first != index
        {
            checker.error(
                format!("{path}.name"),
                format!(
                    "duplicate cluster name {:?} (also clusters[{first}])",
                    cluster.name
                ),
            );
        }
        if let Some(previous) = eds_names.insert(cluster.eds_service_name(), index) {
            checker.error(
                path,
                format!(
                    "EDS service name {:?} is already used by clusters[{previous}]",
                    cluster.eds_service_name()
                ),
            );
        }
    }
    let template = &mesh.server_listener_resource_name_template;
    if mesh.servers.iter().any(|server| server.name.is_none()) && !template.contains("%s") {
        checker.error("server_listener_resource_name_template", "must contain %s");
    }
    for (index, server) in mesh.servers.iter().enumerate() {
        let path = format!("servers[{index}]");
        server::check_server(&mut checker, &path, server);
        let name = crate::translate::server_listener_name(template, server);
        if let Some(previous) = listener_names.insert(name.clone(), path.clone()) {
            checker.error(
                path,
                format!("duplicate listener name {name:?} (also {previous})"),
            );
        }
    }
    checker.errors
}

#[cfg(test)]
mod tests;
