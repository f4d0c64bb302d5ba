//! Builders for listener tests: the server-side shapes (filter chains, mTLS, RBAC) on top of the route builders.

#![allow(dead_code)] // each test module uses a different subset

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::address::Address as PbAddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as SocketConfig;
use envoy_types::pb::envoy::config::core::v3::{
    Address, CidrRange as PbCidrRange, SocketAddress, TransportSocket,
};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as NetworkConfig;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain as PbFilterChain, FilterChainMatch as PbFilterChainMatch,
    Listener as PbListener,
};
use envoy_types::pb::envoy::config::rbac::v3::permission::Rule;
use envoy_types::pb::envoy::config::rbac::v3::principal::{Authenticated, Identifier};
use envoy_types::pb::envoy::config::rbac::v3::{
    Permission as PbPermission, Policy, Principal as PbPrincipal, Rbac as PbRbac,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as PbRbacFilter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager as PbHcm;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter as PbHttpFilter;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateProviderPluginInstance, CertificateValidationContext, CommonTlsContext,
    DownstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    PathMatcher, StringMatcher as PbStringMatcher, path_matcher,
};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};
use mesh_core::listener::{HttpConnectionManager, Listener, ListenerKind};
use prost::Message;

use super::validate_listener;
use crate::resource::ResourceError;
use crate::resource::route::test_support::*;

pub(crate) fn validate(listener: &PbListener) -> Result<Listener, ResourceError> {
    validate_listener(&listener.encode_to_vec(), &ctx()).map(|(name, listener)| {
        assert_eq!(name, listener.name.as_ref());
        listener
    })
}

pub(crate) fn accept(listener: &PbListener) -> Listener {
    validate(listener).unwrap_or_else(|err| panic!("rejected: {err}"))
}

pub(crate) fn nack(listener: &PbListener) -> String {
    match validate(listener) {
        Ok(accepted) => panic!("expected a NACK, got {accepted:?}"),
        Err(err) => err.to_string(),
    }
}

pub(crate) fn client_http(listener: &Listener) -> &HttpConnectionManager {
    match &listener.kind {
        ListenerKind::Client(http) => http,
        other => panic!("client listener expected, got {other:?}"),
    }
}

pub(crate) fn fault_filter(name: &str) -> PbHttpFilter {
    http_filter(name, pack(&fault(14, 10, 250, 50)))
}

pub(crate) fn provider(name: &str) -> CertificateProviderPluginInstance {
    CertificateProviderPluginInstance {
        instance_name: name.to_owned(),
        certificate_name: String::new(),
    }
}

/// mTLS: our certificate and the client roots from the `default` provider, client certificates required.
pub(crate) fn mtls() -> DownstreamTlsContext {
    DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_provider_instance: Some(provider("default")),
            validation_context_type: Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    ca_certificate_provider_instance: Some(provider("default")),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    }
}

pub(crate) fn tls_socket(context: &DownstreamTlsContext) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_owned(),
        config_type: Some(SocketConfig::TypedConfig(pack(context))),
    }
}

pub(crate) fn prefix_string(prefix: &str) -> PbStringMatcher {
    PbStringMatcher {
        ignore_case: false,
        match_pattern: Some(MatchPattern::Prefix(prefix.to_owned())),
    }
}

/// RBAC allowing the `client` workload's SPIFFE ID to call the Greeter service.
pub(crate) fn rbac_rules() -> PbRbacFilter {
    let policy = Policy {
        permissions: vec![PbPermission {
            rule: Some(Rule::UrlPath(PathMatcher {
                rule: Some(path_matcher::Rule::Path(prefix_string(
                    "/helloworld.Greeter/",
                ))),
            })),
        }],
        principals: vec![PbPrincipal {
            identifier: Some(Identifier::Authenticated(Authenticated {
                principal_name: Some(prefix_string("spiffe://cluster.local/ns/default/sa/client")),
            })),
        }],
        ..Default::default()
    };
    PbRbacFilter {
        rules: Some(PbRbac {
            action: 0,
            policies: HashMap::from([("allow-client".to_owned(), policy)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn server_hcm(filters: Vec<PbHttpFilter>) -> PbHcm {
    hcm_inline(
        route_config(
            "inbound",
            vec![vhost("inbound", &["*"], vec![non_forwarding_route("")])],
        ),
        filters,
    )
}

pub(crate) fn network_filter(hcm: &PbHcm) -> Filter {
    Filter {
        name: "envoy.filters.network.http_connection_manager".to_owned(),
        config_type: Some(NetworkConfig::TypedConfig(pack(hcm))),
    }
}

pub(crate) fn chain(
    name: &str,
    filter_chain_match: Option<PbFilterChainMatch>,
    tls: Option<&DownstreamTlsContext>,
) -> PbFilterChain {
    PbFilterChain {
        name: name.to_owned(),
        filter_chain_match,
        filters: vec![network_filter(&server_hcm(vec![
            http_filter("rbac", pack(&rbac_rules())),
            router(),
        ]))],
        transport_socket: tls.map(tls_socket),
        ..Default::default()
    }
}

pub(crate) fn cidr(prefix: &str, len: u32) -> PbCidrRange {
    PbCidrRange {
        address_prefix: prefix.to_owned(),
        prefix_len: Some(UInt32Value { value: len }),
    }
}

pub(crate) fn server_listener(
    chains: Vec<PbFilterChain>,
    default_chain: Option<PbFilterChain>,
) -> PbListener {
    PbListener {
        name: "grpc/server?xds.resource.listening_address=0.0.0.0:8080".to_owned(),
        address: Some(Address {
            address: Some(PbAddressKind::SocketAddress(SocketAddress {
                address: "0.0.0.0".to_owned(),
                port_specifier: Some(PortSpecifier::PortValue(8080)),
                ..Default::default()
            })),
        }),
        filter_chains: chains,
        default_filter_chain: default_chain,
        ..Default::default()
    }
}

pub(crate) fn pod_network() -> PbFilterChainMatch {
    PbFilterChainMatch {
        prefix_ranges: vec![cidr("10.0.0.0", 8)],
        source_type: 0,
        ..Default::default()
    }
}
