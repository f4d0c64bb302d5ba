//! `certificate_providers` (gRFC A29), durations, and `authorities` (gRFC A47) in bootstrap JSON.

use std::time::Duration;

use serde_json::json;

use super::tests::{parse_ok, problems, with_server};
use super::*;

#[test]
fn certificate_provider_errors() {
    let json = with_server(
        r#","certificate_providers":{"a":1,"b":{"plugin_name":1},"c":{"plugin_name":"file_watcher","config":[]},"d":{}}"#,
    );
    assert_eq!(
        problems(&json),
        [
            "certificate_providers[\"a\"]: is not an object",
            "certificate_providers[\"b\"].plugin_name: is not a string",
            "certificate_providers[\"c\"].config: is not an object",
            "certificate_providers[\"d\"].plugin_name: field not present",
        ]
    );
}

#[test]
fn unknown_certificate_provider_plugin_is_kept_without_file_watcher() {
    let b = parse_ok(&with_server(
        r#","certificate_providers":{"mesh":{"plugin_name":"meshca","config":{"x":1}}}"#,
    ));
    let provider = &b.certificate_providers["mesh"];
    assert_eq!(provider.plugin_name, "meshca");
    assert_eq!(provider.config, json!({"x": 1}));
    assert_eq!(provider.file_watcher, None);
}

#[test]
fn file_watcher_rules() {
    let json = with_server(
        r#","certificate_providers":{
            "half":{"plugin_name":"file_watcher","config":{"private_key_file":"/key","ca_certificate_file":"/ca"}},
            "none":{"plugin_name":"file_watcher"},
            "blank":{"plugin_name":"file_watcher","config":{"certificate_file":"","ca_certificate_file":""}},
            "spiffe":{"plugin_name":"file_watcher","config":{"spiffe_trust_bundle_map_file":"/bundle.json"}}}"#,
    );
    let something = "at least one of \"certificate_file\", \"ca_certificate_file\" and \"spiffe_trust_bundle_map_file\" must be specified";
    assert_eq!(
        problems(&json),
        [
            format!("certificate_providers[\"blank\"].config: {something}"),
            "certificate_providers[\"half\"].config: fields \"certificate_file\" and \"private_key_file\" must be both set or both unset".to_owned(),
            format!("certificate_providers[\"none\"].config: {something}"),
        ]
    );
}

#[test]
fn file_watcher_spiffe_bundle_alone_is_enough_and_refresh_defaults_to_600s() {
    let b = parse_ok(&with_server(
        r#","certificate_providers":{"s":{"plugin_name":"file_watcher","config":{"spiffe_trust_bundle_map_file":"/b.json"}}}"#,
    ));
    let config = b.certificate_providers["s"].file_watcher.clone().unwrap();
    assert_eq!(
        config.spiffe_trust_bundle_map_file.as_deref(),
        Some(std::path::Path::new("/b.json"))
    );
    assert_eq!(config.refresh_interval, Duration::from_secs(600));
}

#[test]
fn refresh_interval_errors_use_c_core_words() {
    let cases = [
        ("1", "is not a string"),
        ("\"10m\"", "Not a duration (no s suffix)"),
        ("\"abcs\"", "Not a duration (not a number of seconds)"),
        ("\"1.s\"", "Not a duration (not a number of nanoseconds)"),
        (
            "\"1.1234567890s\"",
            "Not a duration (too many digits after decimal)",
        ),
        ("\"-1s\"", "seconds must be in the range [0, 315576000000]"),
        (
            "\"315576000001s\"",
            "seconds must be in the range [0, 315576000000]",
        ),
    ];
    for (value, message) in cases {
        let json = with_server(&format!(
            r#","certificate_providers":{{"p":{{"plugin_name":"file_watcher","config":{{"ca_certificate_file":"/ca","refresh_interval":{value}}}}}}}"#
        ));
        assert_eq!(
            problems(&json),
            [format!(
                "certificate_providers[\"p\"].config.refresh_interval: {message}"
            )],
            "{value}"
        );
    }
}

#[test]
fn durations_parse_and_format_as_protobuf_json() {
    assert_eq!(duration::parse("600s"), Ok(Duration::from_secs(600)));
    assert_eq!(duration::parse("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(duration::parse("0.000000001s"), Ok(Duration::from_nanos(1)));
    assert_eq!(
        duration::parse("315576000000s"),
        Ok(Duration::from_secs(315_576_000_000))
    );
    assert_eq!(duration::format(Duration::from_secs(600)), "600s");
    assert_eq!(duration::format(Duration::from_millis(1500)), "1.500s");
    assert_eq!(duration::format(Duration::from_micros(1)), "0.000001s");
    assert_eq!(duration::format(Duration::from_nanos(5)), "0.000000005s");
}

#[test]
fn authority_template_must_start_with_its_xdstp_prefix() {
    let json = with_server(
        r#","authorities":{"xds.example.com":{"client_listener_resource_name_template":
            "xds://xds.example.com/envoy.config.listener.v3.Listener/grpc/server/%s"}}"#,
    );
    assert_eq!(
        problems(&json),
        [
            "authorities[\"xds.example.com\"].client_listener_resource_name_template: field must begin with \"xdstp://xds.example.com/\""
        ]
    );
}

#[test]
fn authority_server_missing_fields_and_wrong_types() {
    let json = with_server(
        r#","authorities":{"a":{"xds_servers":[{}]},"b":1,"c":{"xds_servers":{},"client_listener_resource_name_template":2}}"#,
    );
    assert_eq!(
        problems(&json),
        [
            "authorities[\"a\"].xds_servers[0].channel_creds: field not present",
            "authorities[\"a\"].xds_servers[0].server_uri: field not present",
            "authorities[\"b\"]: is not an object",
            "authorities[\"c\"].client_listener_resource_name_template: is not a string",
            "authorities[\"c\"].xds_servers: is not an array",
        ]
    );
}
