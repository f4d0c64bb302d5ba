//! Listener rejections: one test per rule, each asserting the NACK text names the field at fault.

use envoy_types::pb::envoy::config::core::v3::address::Address as PbAddressKind;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as SocketConfig;
use envoy_types::pb::envoy::config::core::v3::{
    Address, ConfigSource, PathConfigSource, TransportSocket, config_source::ConfigSourceSpecifier,
};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as NetworkConfig;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain as PbFilterChain, FilterChainMatch as PbFilterChainMatch, Listener as PbListener,
    ListenerFilter,
};
use envoy_types::pb::envoy::config::rbac::v3::permission::Rule;
use envoy_types::pb::envoy::config::rbac::v3::principal::Identifier;
use envoy_types::pb::envoy::config::rbac::v3::{Permission as PbPermission, Principal as PbPrincipal};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::TlsCertificate;
use envoy_types::pb::google::protobuf::{Any, BoolValue};

use super::test_support::*;
use super::validate_listener;
use crate::resource::route::test_support::*;

#[test]
fn router_not_last_is_rejected() {
    let text = nack(&client_listener(
        "x",
        &hcm_rds("x", vec![router(), fault_filter("fault")]),
    ));
    assert!(
        text.starts_with(
            "Listener \"x\": api_listener.api_listener.http_filters: router filter must be last"
        ),
        "{text}"
    );
}

#[test]
fn http_filter_list_rules_of_grfc_a39() {
    let text = nack(&client_listener("x", &hcm_rds("x", vec![])));
    assert!(
        text.contains("api_listener.api_listener.http_filters: must contain at least one filter"),
        "{text}"
    );

    let text = nack(&client_listener(
        "x",
        &hcm_rds("x", vec![fault_filter("f")]),
    ));
    assert!(
        text.contains("http_filters: the last filter must be the router"),
        "{text}"
    );

    let text = nack(&client_listener("x", &hcm_rds("x", vec![fault_filter("dup"), http_filter("dup", pack(&envoy_types::pb::envoy::extensions::filters::http::router::v3::Router::default()))])));
    assert!(
        text.contains("http_filters[1].name: duplicate filter name \"dup\""),
        "{text}"
    );

    let unknown = http_filter(
        "acme",
        Any {
            type_url: "type.googleapis.com/acme.Filter".to_owned(),
            value: Vec::new(),
        },
    );
    let text = nack(&client_listener(
        "x",
        &hcm_rds("x", vec![unknown, router()]),
    ));
    assert!(text.contains("http_filters[0].typed_config: unsupported filter type \"acme.Filter\" on a client (not optional)"), "{text}");

    let text = nack(&client_listener(
        "x",
        &hcm_rds("x", vec![fault_filter("a"), fault_filter("b"), router()]),
    ));
    assert!(
        text.contains("http_filters: 2 fault filters; at most one is supported"),
        "{text}"
    );
}

#[test]
fn filters_are_registered_per_side() {
    // gRFC A39/A41: RBAC is a server filter; on a client it is an unknown type.
    let text = nack(&client_listener(
        "x",
        &hcm_rds(
            "x",
            vec![http_filter("rbac", pack(&rbac_rules())), router()],
        ),
    ));
    assert!(
        text.contains(
            "unsupported filter type \"envoy.extensions.filters.http.rbac.v3.RBAC\" on a client"
        ),
        "{text}"
    );
    let text = nack(&server_listener(
        vec![PbFilterChain {
            filters: vec![network_filter(&server_hcm(vec![
                fault_filter("fault"),
                router(),
            ]))],
            ..Default::default()
        }],
        None,
    ));
    assert!(text.contains("filter_chains[0].filters[0].typed_config.http_filters[0].typed_config: unsupported filter type \"envoy.extensions.filters.http.fault.v3.HTTPFault\" on a server"), "{text}");
}

#[test]
fn bad_fault_filter_config_is_rejected() {
    let mut config = fault(14, 10, 0, 0);
    if let Some(abort) = config.abort.as_mut() {
        abort.error_type = Some(envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType::HttpStatus(700));
    }
    let text = nack(&client_listener(
        "x",
        &hcm_rds("x", vec![http_filter("f", pack(&config)), router()]),
    ));
    assert!(text.contains("api_listener.api_listener.http_filters[0].typed_config.abort.http_status: 700 is not in [200, 600)"), "{text}");
}

#[test]
fn route_source_rules_of_grfc_a27() {
    let mut hcm = hcm_rds("", vec![router()]);
    if let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier.as_mut() {
        rds.config_source = Some(ConfigSource {
            config_source_specifier: Some(ConfigSourceSpecifier::PathConfigSource(
                PathConfigSource::default(),
            )),
            ..Default::default()
        });
    }
    let text = nack(&client_listener("x", &hcm));
    assert!(
        text.contains("api_listener.api_listener.rds.config_source: must be ads or self"),
        "{text}"
    );
    assert!(
        text.contains("api_listener.api_listener.rds.route_config_name: must not be empty"),
        "{text}"
    );

    let mut hcm = hcm_rds("r", vec![router()]);
    hcm.route_specifier = None;
    assert!(
        nack(&client_listener("x", &hcm))
            .contains("api_listener.api_listener: rds or route_config must be set")
    );
}

#[test]
fn trusted_xff_hops_are_rejected() {
    let mut hcm = hcm_rds("r", vec![router()]);
    hcm.xff_num_trusted_hops = 1;
    assert!(
        nack(&client_listener("x", &hcm))
            .contains("api_listener.api_listener.xff_num_trusted_hops: must be 0")
    );
}

#[test]
fn api_listener_must_hold_a_connection_manager() {
    let mut listener = client_listener("x", &hcm_rds("r", vec![router()]));
    if let Some(api) = listener.api_listener.as_mut() {
        api.api_listener = Some(pack(
            &envoy_types::pb::envoy::extensions::filters::http::router::v3::Router::default(),
        ));
    }
    assert!(nack(&listener).contains(
        "api_listener.api_listener: type \"envoy.extensions.filters.http.router.v3.Router\" is not"
    ));
}

#[test]
fn server_listener_rules_of_grfc_a36() {
    let mut listener = server_listener(vec![chain("a", None, None)], None);
    listener.listener_filters.push(ListenerFilter {
        name: "tls_inspector".to_owned(),
        ..Default::default()
    });
    listener.use_original_dst = Some(BoolValue { value: true });
    if let Some(Address {
        address: Some(PbAddressKind::SocketAddress(socket)),
    }) = listener.address.as_mut()
    {
        socket.address = "localhost".to_owned();
    }
    let text = nack(&listener);
    assert!(
        text.contains("address.socket_address.address: \"localhost\" is not an IP address"),
        "{text}"
    );
    assert!(text.contains("listener_filters: must be empty"), "{text}");
    assert!(
        text.contains("use_original_dst: must not be true"),
        "{text}"
    );
}

#[test]
fn duplicate_filter_chain_matches_are_rejected_after_normalisation() {
    // 10.1.2.3/16 and 10.1.0.0/16 are the same range once the unused low bits are cleared (gRFC A36).
    let first = PbFilterChainMatch {
        prefix_ranges: vec![cidr("10.1.2.3", 16), cidr("192.168.0.0", 24)],
        ..Default::default()
    };
    let second = PbFilterChainMatch {
        prefix_ranges: vec![cidr("10.1.0.0", 16)],
        ..Default::default()
    };
    let distinct = PbFilterChainMatch {
        prefix_ranges: vec![cidr("10.1.0.0", 16)],
        source_ports: vec![443],
        ..Default::default()
    };
    let text = nack(&server_listener(
        vec![
            chain("a", Some(first), None),
            chain("b", Some(second), None),
            chain("c", Some(distinct), None),
        ],
        None,
    ));
    assert!(
        text.ends_with(
            "filter_chains[1].filter_chain_match: duplicates the match of filter_chains[0]"
        ),
        "{text}"
    );
}

#[test]
fn filter_chain_needs_exactly_one_connection_manager() {
    let mut two = chain("a", None, None);
    two.filters.push(two.filters[0].clone());
    let text = nack(&server_listener(vec![two], None));
    assert!(
        text.contains(
            "filter_chains[0].filters[0]: the HttpConnectionManager must be the last filter"
        ),
        "{text}"
    );
    assert!(
        text.contains("filter_chains[0].filters[1].name: duplicate filter name"),
        "{text}"
    );

    let mut other = chain("b", None, None);
    other.filters = vec![Filter {
        name: "tcp".to_owned(),
        config_type: Some(NetworkConfig::TypedConfig(Any {
            type_url: "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
                .to_owned(),
            value: Vec::new(),
        })),
    }];
    let text = nack(&server_listener(vec![other], None));
    assert!(
        text.contains("filter_chains[0].filters[0].typed_config: unsupported network filter type"),
        "{text}"
    );
}

#[test]
fn downstream_tls_rules_of_grfc_a29() {
    let mut unknown_provider = mtls();
    if let Some(common) = unknown_provider.common_tls_context.as_mut() {
        common.tls_certificate_provider_instance = Some(provider("missing"));
    }
    let text = nack(&server_listener(
        vec![chain("a", None, Some(&unknown_provider))],
        None,
    ));
    assert!(text.contains("filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificate_provider_instance.instance_name: unrecognized certificate provider instance name \"missing\""), "{text}");

    let mut strict = mtls();
    strict.require_sni = Some(BoolValue { value: true });
    strict.ocsp_staple_policy = 1;
    if let Some(common) = strict.common_tls_context.as_mut() {
        common.tls_certificates.push(TlsCertificate::default());
    }
    let text = nack(&server_listener(
        vec![chain("a", None, Some(&strict))],
        None,
    ));
    assert!(
        text.contains("transport_socket.typed_config.require_sni: is not supported"),
        "{text}"
    );
    assert!(
        text.contains("transport_socket.typed_config.ocsp_staple_policy: must be LENIENT_STAPLING"),
        "{text}"
    );
    assert!(
        text.contains(
            "transport_socket.typed_config.common_tls_context.tls_certificates: is not supported"
        ),
        "{text}"
    );

    let mut no_ca = mtls();
    if let Some(common) = no_ca.common_tls_context.as_mut() {
        common.validation_context_type = None;
    }
    let text = nack(&server_listener(vec![chain("a", None, Some(&no_ca))], None));
    assert!(
        text.contains("require_client_certificate needs a validation context"),
        "{text}"
    );

    let mut no_identity = mtls();
    if let Some(common) = no_identity.common_tls_context.as_mut() {
        common.tls_certificate_provider_instance = None;
    }
    let text = nack(&server_listener(
        vec![chain("a", None, Some(&no_identity))],
        None,
    ));
    assert!(
        text.contains("tls_certificate_provider_instance: must be set"),
        "{text}"
    );

    let mut other = chain("a", None, None);
    other.transport_socket = Some(TransportSocket {
        name: "alts".to_owned(),
        config_type: Some(SocketConfig::TypedConfig(Any {
            type_url: "type.googleapis.com/envoy.extensions.transport_sockets.alts.v3.Alts"
                .to_owned(),
            value: Vec::new(),
        })),
    });
    assert!(
        nack(&server_listener(vec![other], None))
            .contains("transport_socket.typed_config: unsupported transport socket type")
    );
}

#[test]
fn rbac_rules_of_grfc_a41() {
    let mut rules = rbac_rules();
    if let Some(policy) = rules
        .rules
        .as_mut()
        .and_then(|r| r.policies.get_mut("allow-client"))
    {
        policy.condition = Some(Default::default());
        policy.permissions.push(PbPermission {
            rule: Some(Rule::Header(header_exact("grpc-timeout", "1S"))),
        });
        policy.permissions.push(PbPermission {
            rule: Some(Rule::Any(false)),
        });
        policy.permissions.push(PbPermission {
            rule: Some(Rule::DestinationPortRange(Default::default())),
        });
        policy.principals.push(PbPrincipal {
            identifier: Some(Identifier::OrIds(Default::default())),
        });
    }
    let text = nack(&server_listener(
        vec![PbFilterChain {
            filters: vec![network_filter(&server_hcm(vec![
                http_filter("rbac", pack(&rules)),
                router(),
            ]))],
            ..Default::default()
        }],
        None,
    ));
    let prefix = "filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.rules.policies[\"allow-client\"]";
    for expected in [
        "condition: CEL conditions are not supported",
        "permissions[1].header.name: \"grpc-timeout\" cannot be matched by RBAC",
        "permissions[2].any: must be true",
        "permissions[3].destination_port_range: is not supported",
        "principals[1].or_ids.ids: must not be empty",
    ] {
        assert!(
            text.contains(&format!("{prefix}.{expected}")),
            "missing {expected:?} in {text}"
        );
    }
}

#[test]
fn all_problems_of_a_listener_are_reported_together() {
    let mut hcm = hcm_rds("", vec![router(), fault_filter("f")]);
    hcm.xff_num_trusted_hops = 2;
    let err = match validate(&client_listener("x", &hcm)) {
        Ok(listener) => panic!("accepted {listener:?}"),
        Err(err) => err,
    };
    assert_eq!(
        err.problems,
        vec![
            "api_listener.api_listener.rds.route_config_name: must not be empty".to_owned(),
            "api_listener.api_listener.http_filters: router filter must be last, but http_filters[0] is followed by \
             other filters"
                .to_owned(),
            "api_listener.api_listener.xff_num_trusted_hops: must be 0".to_owned(),
        ]
    );
}

#[test]
fn garbage_bytes_are_a_decode_error() {
    let err = match validate_listener(b"\x0a\xff\xff\xff\xff\xff", &ctx()) {
        Ok(listener) => panic!("accepted {listener:?}"),
        Err(err) => err,
    };
    assert!(
        err.to_string()
            .starts_with("Listener (name unreadable): does not decode"),
        "{err}"
    );
}

#[test]
fn listener_without_api_listener_or_address_is_rejected() {
    let text = nack(&PbListener {
        name: "x".to_owned(),
        ..Default::default()
    });
    assert_eq!(
        text,
        "Listener \"x\": neither api_listener (client) nor address (server) is set"
    );
}
