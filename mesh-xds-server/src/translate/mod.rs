//! Translation of a validated [`MeshConfig`] into the Envoy v3 resources proxyless gRPC and Envoy accept.
//!
//! The shapes follow what real clients require, not only what the protos allow:
//! - Listener name = the `xds:///NAME` target, with an `api_listener` holding an `HttpConnectionManager` that gets
//!   its routes over ADS (`rds.config_source.ads`) and whose `http_filters` end with the router (gRFC A27, A39).
//! - Clusters are EDS clusters fed over ADS (`eds_cluster_config.eds_config.ads`), with explicit HTTP/2 upstream
//!   options so Envoy speaks HTTP/2 to gRPC backends.
//! - Every locality carries `load_balancing_weight` (C-core silently drops a locality without one).
//! - Server listeners (gRFC A36) are named from the template, carry the listening address, and route with
//!   `non_forwarding_action`.

mod cluster;
mod listener;
mod route;
mod server;

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as EnvoyCluster;
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, SelfConfigSource,
    config_source::ConfigSourceSpecifier,
};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, RouteConfiguration};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use envoy_types::pb::envoy::r#type::v3::{
    FractionalPercent, Int64Range, fractional_percent::DenominatorType,
};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;

use crate::mesh::{HeaderMatch, MeshConfig, MeshError, ServerListener, StringMatch};
use crate::snapshot::Snapshot;

/// The HTTP router filter's name in `http_filters` (gRFC A39: it must be last).
pub const ROUTER_FILTER_NAME: &str = "envoy.filters.http.router";
/// The HTTP fault filter's name, also the key of its per-route overrides (gRFC A33).
pub const FAULT_FILTER_NAME: &str = "envoy.filters.http.fault";
/// The HTTP RBAC filter's name (gRFC A41).
pub const RBAC_FILTER_NAME: &str = "envoy.filters.http.rbac";
/// The network filter holding the HttpConnectionManager in a server Listener's filter chain (gRFC A36).
pub const HTTP_CONNECTION_MANAGER_FILTER_NAME: &str =
    "envoy.filters.network.http_connection_manager";
/// The TLS transport socket's name (gRFC A29).
pub const TLS_TRANSPORT_SOCKET_NAME: &str = "envoy.transport_sockets.tls";
/// The key of the upstream HTTP protocol options in a Cluster's `typed_extension_protocol_options`.
pub const HTTP_PROTOCOL_OPTIONS_KEY: &str =
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// The Envoy resources of a mesh, typed. [`EnvoyResources::into_snapshot`] packs them.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct EnvoyResources {
    /// Client Listeners (one per service) and server Listeners.
    pub listeners: Vec<Listener>,
    /// One per service.
    pub route_configurations: Vec<RouteConfiguration>,
    /// One per cluster.
    pub clusters: Vec<EnvoyCluster>,
    /// One per cluster.
    pub cluster_load_assignments: Vec<ClusterLoadAssignment>,
}

impl EnvoyResources {
    /// A snapshot with every type at `version`.
    #[must_use]
    pub fn into_snapshot(self, version: &str) -> Snapshot {
        let mut builder = Snapshot::builder().version(version);
        for listener in self.listeners {
            builder = builder.listener(listener);
        }
        for route in self.route_configurations {
            builder = builder.route_configuration(route);
        }
        for cluster in self.clusters {
            builder = builder.cluster(cluster);
        }
        for assignment in self.cluster_load_assignments {
            builder = builder.cluster_load_assignment(assignment);
        }
        builder.build()
    }
}

/// Translates a mesh that passed validation.
pub(crate) fn translate(mesh: &MeshConfig) -> Result<EnvoyResources, MeshError> {
    let mut resources = EnvoyResources::default();
    for service in &mesh.services {
        resources.listeners.push(listener::client_listener(service));
        resources
            .route_configurations
            .push(route::route_configuration(service));
    }
    for (index, server) in mesh.servers.iter().enumerate() {
        let name = server_listener_name(&mesh.server_listener_resource_name_template, server);
        resources.listeners.push(server::server_listener(
            &format!("servers[{index}]"),
            &name,
            server,
        )?);
    }
    for (index, cluster) in mesh.clusters.iter().enumerate() {
        resources.clusters.push(cluster::cluster(cluster));
        resources
            .cluster_load_assignments
            .push(cluster::load_assignment(
                &format!("clusters[{index}]"),
                cluster,
            )?);
    }
    Ok(resources)
}

/// The Listener name of a server: its explicit name, else the template with `%s` replaced by the listening address
/// (gRFC A36).
pub(crate) fn server_listener_name(template: &str, server: &ServerListener) -> String {
    server
        .name
        .clone()
        .unwrap_or_else(|| template.replace("%s", &server.listening_address))
}

/// `config_source { ads {} }` with the v3 resource API (gRFC A27: RDS and EDS must come over ADS).
pub(crate) fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3.into(),
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

/// `{self: {}}`: the server the resource came from.
pub(crate) fn self_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3.into(),
        config_source_specifier: Some(ConfigSourceSpecifier::Self_(SelfConfigSource::default())),
        ..Default::default()
    }
}

pub(crate) fn proto_duration(duration: Duration) -> ProtoDuration {
    ProtoDuration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        // Below 10^9, so it fits.
        nanos: i32::try_from(duration.subsec_nanos()).unwrap_or(0),
    }
}

/// A percentage 0–100 as parts per million.
pub(crate) fn fractional_percent(percent: f64) -> FractionalPercent {
    let per_million = (percent * 10_000.0).round().clamp(0.0, 1_000_000.0);
    // Clamped to [0, 10^6] just above (NaN becomes 0), so the cast neither truncates nor loses a sign.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let numerator = per_million as u32;
    FractionalPercent {
        numerator,
        denominator: DenominatorType::Million.into(),
    }
}

pub(crate) fn regex_matcher(regex: &str) -> RegexMatcher {
    RegexMatcher {
        regex: regex.to_owned(),
        engine_type: None,
    }
}

pub(crate) fn string_matcher(matcher: &StringMatch) -> StringMatcher {
    let pattern = if let Some(exact) = &matcher.exact {
        MatchPattern::Exact(exact.clone())
    } else if let Some(prefix) = &matcher.prefix {
        MatchPattern::Prefix(prefix.clone())
    } else if let Some(suffix) = &matcher.suffix {
        MatchPattern::Suffix(suffix.clone())
    } else if let Some(contains) = &matcher.contains {
        MatchPattern::Contains(contains.clone())
    } else {
        MatchPattern::SafeRegex(regex_matcher(matcher.regex.as_deref().unwrap_or_default()))
    };
    StringMatcher {
        ignore_case: matcher.ignore_case,
        match_pattern: Some(pattern),
    }
}

/// gRFC A28 header matchers, using `string_match` for the string forms (the older `exact_match` etc. are
/// deprecated; C-core, grpc-go and Envoy all read `string_match`).
pub(crate) fn header_matcher(header: &HeaderMatch) -> HeaderMatcher {
    let string = |pattern: MatchPattern| {
        HeaderMatchSpecifier::StringMatch(StringMatcher {
            ignore_case: header.ignore_case,
            match_pattern: Some(pattern),
        })
    };
    let specifier = if let Some(exact) = &header.exact {
        string(MatchPattern::Exact(exact.clone()))
    } else if let Some(prefix) = &header.prefix {
        string(MatchPattern::Prefix(prefix.clone()))
    } else if let Some(suffix) = &header.suffix {
        string(MatchPattern::Suffix(suffix.clone()))
    } else if let Some(contains) = &header.contains {
        string(MatchPattern::Contains(contains.clone()))
    } else if let Some(regex) = &header.regex {
        string(MatchPattern::SafeRegex(regex_matcher(regex)))
    } else if let Some(range) = header.range {
        HeaderMatchSpecifier::RangeMatch(Int64Range {
            start: range.start,
            end: range.end,
        })
    } else {
        HeaderMatchSpecifier::PresentMatch(header.present.unwrap_or(true))
    };
    HeaderMatcher {
        name: header.name.clone(),
        invert_match: header.invert,
        header_match_specifier: Some(specifier),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
