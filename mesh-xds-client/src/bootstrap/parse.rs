//! Walks bootstrap JSON into the typed model, collecting every problem on the way.
//!
//! The walk follows C-core's JSON object loaders (`xds_bootstrap_grpc.cc`, `xds_server_grpc.cc`,
//! `certificate_provider_store.cc`, `file_watcher_certificate_provider_factory.cc`, and the `tls` creds factory):
//! the same fields, the same field paths in messages, the same words ("field not present", "is not a string").
//! gRFC A27: unknown fields are ignored, and so is a field whose value is `null`, as C-core does.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::certs::{CertificateProviderConfig, FILE_WATCHER_PLUGIN, FileWatcherConfig};
use super::error::{BootstrapError, BootstrapProblem, Problems};
use super::node::Node;
use super::server::{ChannelCreds, TlsChannelCreds, XdsServer};
use super::{Authority, Bootstrap, DEFAULT_CLIENT_LISTENER_TEMPLATE, duration, rules};

/// A JSON object and where it sits in the document.
struct Object<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Object<'a> {
    /// `value` as an object, or a problem at `path`.
    fn new(value: &'a Value, path: &str, problems: &mut Problems) -> Option<Self> {
        if let Value::Object(map) = value {
            Some(Self {
                map,
                path: path.to_owned(),
            })
        } else {
            problems.add(path, "is not an object");
            None
        }
    }

    fn field(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// A member; `null` counts as absent (C-core's `LoadObject`).
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|value| !value.is_null())
    }

    fn required(&self, name: &str, problems: &mut Problems) -> Option<&'a Value> {
        let value = self.get(name);
        if value.is_none() {
            problems.add(&self.field(name), "field not present");
        }
        value
    }

    fn string(&self, name: &str, problems: &mut Problems) -> Option<String> {
        self.get(name)
            .and_then(|value| as_string(value, &self.field(name), problems))
    }

    /// An optional string where an empty string means unset (file paths and templates, as grpc-go reads them).
    fn non_empty_string(&self, name: &str, problems: &mut Problems) -> Option<String> {
        self.string(name, problems).filter(|s| !s.is_empty())
    }

    fn required_string(&self, name: &str, problems: &mut Problems) -> Option<String> {
        self.required(name, problems)
            .and_then(|value| as_string(value, &self.field(name), problems))
    }

    fn object(&self, name: &str, problems: &mut Problems) -> Option<Object<'a>> {
        self.get(name)
            .and_then(|value| Object::new(value, &self.field(name), problems))
    }

    fn duration(&self, name: &str, problems: &mut Problems) -> Option<Duration> {
        let text = self.string(name, problems)?;
        duration::parse(&text)
            .map_err(|message| problems.add(&self.field(name), message))
            .ok()
    }

    /// The object's members with the path of each (`path["key"]`, C-core's map notation).
    fn entries(&self) -> impl Iterator<Item = (&'a String, &'a Value, String)> + '_ {
        self.map
            .iter()
            .map(|(key, value)| (key, value, format!("{}[\"{key}\"]", self.path)))
    }
}

fn as_string(value: &Value, field: &str, problems: &mut Problems) -> Option<String> {
    if let Value::String(s) = value {
        Some(s.clone())
    } else {
        problems.add(field, "is not a string");
        None
    }
}

/// The whole document.
pub(super) fn bootstrap(root: &Value) -> Result<Bootstrap, BootstrapError> {
    let mut problems = Problems::default();
    let Some(top) = Object::new(root, "", &mut problems) else {
        return Err(BootstrapError::Invalid {
            problems: vec![BootstrapProblem::new("", "is not an object")],
        });
    };
    let xds_servers = top
        .required("xds_servers", &mut problems)
        .map(|value| servers(value, "xds_servers", &mut problems))
        .unwrap_or_default();
    // C-core: "must be non-empty" only when the field has no other error.
    if xds_servers.is_empty() && !problems.has_under("xds_servers") {
        problems.add("xds_servers", rules::NON_EMPTY);
    }
    let node = top
        .object("node", &mut problems)
        .map(|object| node(&object, &mut problems))
        .unwrap_or_default();
    let certificate_providers = top
        .object("certificate_providers", &mut problems)
        .map(|object| certificate_providers(&object, &mut problems))
        .unwrap_or_default();
    let server_listener_resource_name_template =
        top.non_empty_string("server_listener_resource_name_template", &mut problems);
    // gRFC A47: defaults to "%s"; C-core and grpc-go both treat an empty template as unset.
    let client_default_listener_resource_name_template = top
        .non_empty_string(
            "client_default_listener_resource_name_template",
            &mut problems,
        )
        .unwrap_or_else(|| DEFAULT_CLIENT_LISTENER_TEMPLATE.to_owned());
    let authorities = top
        .object("authorities", &mut problems)
        .map(|object| authorities(&object, &mut problems))
        .unwrap_or_default();
    problems.finish(Bootstrap {
        xds_servers,
        node,
        certificate_providers,
        server_listener_resource_name_template,
        client_default_listener_resource_name_template,
        authorities,
    })
}

/// A list of servers (`xds_servers`, top-level or an authority's). Entries with problems are left out; their
/// problems are recorded.
fn servers(value: &Value, field: &str, problems: &mut Problems) -> Vec<XdsServer> {
    let Value::Array(list) = value else {
        problems.add(field, "is not an array");
        return Vec::new();
    };
    list.iter()
        .enumerate()
        .filter_map(|(index, entry)| server(entry, &format!("{field}[{index}]"), problems))
        .collect()
}

fn server(value: &Value, field: &str, problems: &mut Problems) -> Option<XdsServer> {
    let object = Object::new(value, field, problems)?;
    let before = problems.len();
    let channel_creds = channel_creds(&object, problems);
    let server_features = server_features(&object, problems);
    let server_uri = object.required_string("server_uri", problems);
    if let Some(uri) = &server_uri {
        rules::server_uri(uri, &object.field("server_uri"), problems);
    }
    match (server_uri, channel_creds) {
        (Some(server_uri), Some(channel_creds)) if problems.len() == before => Some(XdsServer {
            server_uri,
            channel_creds,
            server_features,
        }),
        _ => None,
    }
}

/// gRFC A27: "client will stop at the first type it supports"; C-core still validates the config of every
/// supported entry, and so do we.
fn channel_creds(server: &Object<'_>, problems: &mut Problems) -> Option<ChannelCreds> {
    let field = server.field("channel_creds");
    let Value::Array(list) = server.required("channel_creds", problems)? else {
        problems.add(&field, "is not an array");
        return None;
    };
    let before = problems.len();
    let mut chosen = None;
    for (index, entry) in list.iter().enumerate() {
        let Some(entry) = Object::new(entry, &format!("{field}[{index}]"), problems) else {
            continue;
        };
        let kind = entry.required_string("type", problems);
        let config = entry.object("config", problems);
        let creds = match kind.as_deref() {
            Some("insecure") => Some(ChannelCreds::Insecure),
            Some("google_default") => Some(ChannelCreds::GoogleDefault),
            Some("tls") => {
                tls_creds(config.as_ref(), &entry.field("config"), problems).map(ChannelCreds::Tls)
            }
            // Unknown types are skipped, so a bootstrap can list newer types first.
            _ => None,
        };
        if chosen.is_none() {
            chosen = creds;
        }
    }
    // C-core reports this only when the entries themselves were well-formed.
    if chosen.is_none() && problems.len() == before {
        problems.add(&field, "no known creds type found");
    }
    chosen
}

/// gRFC A65 `tls` config; every field optional.
fn tls_creds(
    config: Option<&Object<'_>>,
    field: &str,
    problems: &mut Problems,
) -> Option<TlsChannelCreds> {
    let before = problems.len();
    let mut creds = TlsChannelCreds::default();
    if let Some(config) = config {
        creds.certificate_file = config.non_empty_string("certificate_file", problems);
        creds.private_key_file = config.non_empty_string("private_key_file", problems);
        creds.ca_certificate_file = config.non_empty_string("ca_certificate_file", problems);
        if let Some(interval) = config.duration("refresh_interval", problems) {
            creds.refresh_interval = interval;
        }
    }
    rules::tls_creds(&creds, field, problems);
    (problems.len() == before).then_some(creds)
}

/// C-core keeps only the features it knows; we keep every string (grpc-go does) so a config dump shows them, and
/// skip entries that are not strings (as C-core does).
fn server_features(server: &Object<'_>, problems: &mut Problems) -> Vec<String> {
    match server.get("server_features") {
        None => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|feature| feature.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            problems.add(&server.field("server_features"), "is not an array");
            Vec::new()
        }
    }
}

fn node(object: &Object<'_>, problems: &mut Problems) -> Node {
    let mut node = Node::default();
    if let Some(id) = object.string("id", problems) {
        node.id = id;
    }
    if let Some(cluster) = object.string("cluster", problems) {
        node.cluster = cluster;
    }
    if let Some(locality) = object.object("locality", problems) {
        let region = locality.string("region", problems).unwrap_or_default();
        let zone = locality.string("zone", problems).unwrap_or_default();
        let sub_zone = locality.string("sub_zone", problems).unwrap_or_default();
        node.locality = mesh_core::locality::Locality::new(&region, &zone, &sub_zone);
    }
    if let Some(metadata) = object.object("metadata", problems) {
        node.metadata = metadata.map.clone();
    }
    node
}

/// gRFC A29 `certificate_providers`: instance name -> `{plugin_name, config}`.
fn certificate_providers(
    object: &Object<'_>,
    problems: &mut Problems,
) -> BTreeMap<String, CertificateProviderConfig> {
    let mut providers = BTreeMap::new();
    for (name, value, field) in object.entries() {
        let Some(entry) = Object::new(value, &field, problems) else {
            continue;
        };
        let plugin_name = entry.required_string("plugin_name", problems);
        let config = match entry.get("config") {
            None => Some(Value::Object(Map::new())),
            Some(config @ Value::Object(_)) => Some(config.clone()),
            Some(_) => {
                problems.add(&entry.field("config"), "is not an object");
                None
            }
        };
        let (Some(plugin_name), Some(config)) = (plugin_name, config) else {
            continue;
        };
        let file_watcher = if plugin_name == FILE_WATCHER_PLUGIN {
            file_watcher(&config, &entry.field("config"), problems)
        } else {
            None
        };
        providers.insert(
            name.clone(),
            CertificateProviderConfig {
                plugin_name,
                config,
                file_watcher,
            },
        );
    }
    providers
}

/// A `file_watcher` plugin config at `field`; `null` counts as an empty object.
pub(super) fn file_watcher(
    config: &Value,
    field: &str,
    problems: &mut Problems,
) -> Option<FileWatcherConfig> {
    let empty = Map::new();
    let config = match config {
        Value::Null => Object {
            map: &empty,
            path: field.to_owned(),
        },
        other => Object::new(other, field, problems)?,
    };
    let before = problems.len();
    let mut parsed = FileWatcherConfig::default();
    let mut path = |key| config.non_empty_string(key, problems).map(PathBuf::from);
    parsed.certificate_file = path("certificate_file");
    parsed.private_key_file = path("private_key_file");
    parsed.ca_certificate_file = path("ca_certificate_file");
    parsed.spiffe_trust_bundle_map_file = path("spiffe_trust_bundle_map_file");
    if let Some(interval) = config.duration("refresh_interval", problems) {
        parsed.refresh_interval = interval;
    }
    rules::file_watcher(&parsed, field, problems);
    (problems.len() == before).then_some(parsed)
}

/// gRFC A47 `authorities`: authority name -> `{client_listener_resource_name_template, xds_servers}`.
fn authorities(object: &Object<'_>, problems: &mut Problems) -> BTreeMap<String, Authority> {
    let mut authorities = BTreeMap::new();
    for (name, value, field) in object.entries() {
        let Some(entry) = Object::new(value, &field, problems) else {
            continue;
        };
        let template = entry.non_empty_string("client_listener_resource_name_template", problems);
        if let Some(template) = &template {
            let template_field = entry.field("client_listener_resource_name_template");
            rules::authority_template(name, template, &template_field, problems);
        }
        // gRFC A47: "If not specified, the top-level server list is used"; an empty list means the same.
        let xds_servers = entry
            .get("xds_servers")
            .map(|value| servers(value, &entry.field("xds_servers"), problems))
            .unwrap_or_default();
        authorities.insert(
            name.clone(),
            Authority {
                client_listener_resource_name_template: template,
                xds_servers,
            },
        );
    }
    authorities
}
