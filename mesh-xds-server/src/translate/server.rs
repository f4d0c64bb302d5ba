//! Server Listeners for xDS-enabled gRPC servers (gRFC A36) with TLS (A29) and RBAC (A41).

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as TransportSocketConfig;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as FilterConfig;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::rbac::v3::permission::Rule;
use envoy_types::pb::envoy::config::rbac::v3::principal::{
    Authenticated as EnvoyAuthenticated, Identifier,
};
use envoy_types::pb::envoy::config::rbac::v3::rbac::Action as EnvoyRbacAction;
use envoy_types::pb::envoy::config::rbac::v3::{
    Permission as EnvoyPermission, Policy, Principal as EnvoyPrincipal, Rbac as EnvoyRbacRules,
};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    NonForwardingAction, Route, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacFilter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager::RouteSpecifier,
    http_filter::ConfigType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext,
    common_tls_context::ValidationContextType,
};
use envoy_types::pb::envoy::r#type::matcher::v3::PathMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::path_matcher::Rule as PathRule;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use super::cluster::{certificate_provider, parse_address, socket_address};
use super::listener::router_filter;
use super::{
    HTTP_CONNECTION_MANAGER_FILTER_NAME, RBAC_FILTER_NAME, TLS_TRANSPORT_SOCKET_NAME,
    header_matcher, string_matcher,
};
use crate::mesh::{
    DownstreamTls, MeshError, Permission, Principal, Rbac, RbacAction, ServerListener,
};

pub(super) fn server_listener(
    path: &str,
    name: &str,
    server: &ServerListener,
) -> Result<Listener, MeshError> {
    let address = parse_address(
        format!("{path}.listening_address"),
        &server.listening_address,
    )?;
    let mut http_filters = Vec::new();
    if let Some(rbac) = &server.rbac {
        http_filters.push(HttpFilter {
            name: RBAC_FILTER_NAME.to_owned(),
            config_type: Some(ConfigType::TypedConfig(pack_any(rbac_filter(rbac)))),
            ..Default::default()
        });
    }
    http_filters.push(router_filter());
    let manager = HttpConnectionManager {
        stat_prefix: name.to_owned(),
        // gRFC A36: a server's routes carry `non_forwarding_action`; anything else fails the RPC.
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            name: format!("{name}/routes"),
            virtual_hosts: vec![VirtualHost {
                name: "inbound".to_owned(),
                domains: vec!["*".to_owned()],
                routes: vec![Route {
                    r#match: Some(RouteMatch {
                        path_specifier: Some(PathSpecifier::Prefix(String::new())),
                        ..Default::default()
                    }),
                    action: Some(Action::NonForwardingAction(NonForwardingAction {})),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        })),
        http_filters,
        ..Default::default()
    };
    let filter_chain = FilterChain {
        name: "default".to_owned(),
        filters: vec![Filter {
            name: HTTP_CONNECTION_MANAGER_FILTER_NAME.to_owned(),
            config_type: Some(FilterConfig::TypedConfig(pack_any(manager))),
        }],
        transport_socket: server.tls.as_ref().map(downstream_tls),
        ..Default::default()
    };
    Ok(Listener {
        name: name.to_owned(),
        // gRFC A36: the server checks that this address is the one it listens on.
        address: Some(socket_address(address)),
        filter_chains: vec![filter_chain],
        traffic_direction: TrafficDirection::Inbound.into(),
        ..Default::default()
    })
}

fn downstream_tls(tls: &DownstreamTls) -> TransportSocket {
    let validation_context_type = tls.ca_certificate_provider.as_deref().map(|instance| {
        ValidationContextType::ValidationContext(CertificateValidationContext {
            ca_certificate_provider_instance: Some(certificate_provider(
                instance,
                tls.ca_certificate_name.as_ref(),
            )),
            ..Default::default()
        })
    });
    let context = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_provider_instance: Some(certificate_provider(
                &tls.certificate_provider,
                tls.certificate_name.as_ref(),
            )),
            validation_context_type,
            ..Default::default()
        }),
        require_client_certificate: Some(BoolValue {
            value: tls.require_client_certificate,
        }),
        ..Default::default()
    };
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET_NAME.to_owned(),
        config_type: Some(TransportSocketConfig::TypedConfig(pack_any(context))),
    }
}

fn rbac_filter(rbac: &Rbac) -> RbacFilter {
    let action = match rbac.action {
        RbacAction::Allow => EnvoyRbacAction::Allow,
        RbacAction::Deny => EnvoyRbacAction::Deny,
    };
    let policies: HashMap<String, Policy> = rbac
        .policies
        .iter()
        .map(|policy| {
            (
                policy.name.clone(),
                Policy {
                    permissions: policy.permissions.iter().map(permission).collect(),
                    principals: policy.principals.iter().map(principal).collect(),
                    ..Default::default()
                },
            )
        })
        .collect();
    RbacFilter {
        rules: Some(EnvoyRbacRules {
            action: action.into(),
            policies,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn path_matcher(matcher: &crate::mesh::StringMatch) -> PathMatcher {
    PathMatcher {
        rule: Some(PathRule::Path(string_matcher(matcher))),
    }
}

fn permission(permission: &Permission) -> EnvoyPermission {
    let rule = match permission {
        Permission::Any => Rule::Any(true),
        Permission::Path(matcher) => Rule::UrlPath(path_matcher(matcher)),
        Permission::Header(header) => Rule::Header(header_matcher(header)),
        Permission::DestinationPort(port) => Rule::DestinationPort(*port),
        Permission::Not(inner) => Rule::NotRule(Box::new(self::permission(inner))),
    };
    EnvoyPermission { rule: Some(rule) }
}

fn principal(principal: &Principal) -> EnvoyPrincipal {
    let identifier = match principal {
        Principal::Any => Identifier::Any(true),
        Principal::Authenticated(authenticated) => Identifier::Authenticated(EnvoyAuthenticated {
            principal_name: authenticated.principal_name.as_ref().map(string_matcher),
        }),
        Principal::Header(header) => Identifier::Header(header_matcher(header)),
        Principal::Path(matcher) => Identifier::UrlPath(path_matcher(matcher)),
        Principal::Not(inner) => Identifier::NotId(Box::new(self::principal(inner))),
    };
    EnvoyPrincipal {
        identifier: Some(identifier),
    }
}
