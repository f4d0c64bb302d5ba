//! Parsing and validation of bootstrap JSON. Expected messages follow C-core's `xds_bootstrap_test.cc` where it has
//! a case (its `field:X error:Y` written here as `X: Y`).

use std::time::Duration;

use mesh_core::locality::Locality;
use serde_json::json;

use super::*;

/// The problems of a bootstrap that must be invalid, as `field: message` strings.
pub(super) fn problems(json: &str) -> Vec<String> {
    match Bootstrap::from_json_str(json) {
        Err(error @ BootstrapError::Invalid { .. }) => {
            error.problems().iter().map(ToString::to_string).collect()
        }
        other => panic!("expected an invalid bootstrap, got {other:?}"),
    }
}

pub(super) fn parse_ok(json: &str) -> Bootstrap {
    Bootstrap::from_json_str(json).unwrap_or_else(|e| panic!("{e}"))
}

const SERVER: &str = r#"{"server_uri":"localhost:1","channel_creds":[{"type":"insecure"}]}"#;

pub(super) fn with_server(rest: &str) -> String {
    format!(r#"{{"xds_servers":[{SERVER}]{rest}}}"#)
}

#[test]
fn minimal_c_core_bootstrap_parses_without_node() {
    let b = parse_ok(
        r#"{"xds_servers":[{"server_uri":"localhost:1","channel_creds":[{"type":"insecure"}]}]}"#,
    );
    assert_eq!(
        b.xds_servers,
        vec![XdsServer::new("localhost:1", ChannelCreds::Insecure)]
    );
    assert_eq!(b.node, Node::default());
    assert_eq!(b.node.user_agent_name, DEFAULT_USER_AGENT_NAME);
    assert_eq!(b.node.user_agent_version, DEFAULT_USER_AGENT_VERSION);
    assert_eq!(b.client_default_listener_resource_name_template, "%s");
    assert_eq!(b.server_listener_resource_name_template, None);
    assert!(b.certificate_providers.is_empty());
    assert!(b.authorities.is_empty());
    assert!(!b.xds_servers[0].ignore_resource_deletion());
}

/// The shape gRPC's bootstrap generators write for interop and Traffic Director: a fallback server, SPIFFE
/// certificates from a file watcher, federation templates and authorities, node locality and metadata.
const FULL: &str = r#"{
  "xds_servers": [
    {"server_uri": "xds.example.com:443", "channel_creds": [{"type": "google_default"}],
     "server_features": ["xds_v3", "ignore_resource_deletion"]},
    {"server_uri": "localhost:18001", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}
  ],
  "node": {
    "id": "projects/123/networks/default/nodes/client-1",
    "cluster": "cluster",
    "locality": {"region": "us-central1", "zone": "us-central1-a", "sub_zone": "rack1", "ignore": {}},
    "metadata": {"INSTANCE_IP": "10.0.0.1", "TRAFFICDIRECTOR_GCP_PROJECT_NUMBER": "123", "flags": {"on": true}},
    "user_agent_name": "ignored, gRFC A27",
    "ignore": "whee"
  },
  "certificate_providers": {
    "google_cloud_private_spiffe": {
      "plugin_name": "file_watcher",
      "config": {
        "certificate_file": "/var/run/certs/certificates.pem",
        "private_key_file": "/var/run/certs/private_key.pem",
        "ca_certificate_file": "/var/run/certs/ca_certificates.pem",
        "refresh_interval": "600s"
      }
    },
    "roots": {"plugin_name": "file_watcher", "config": {"ca_certificate_file": "/ca.pem", "refresh_interval": "1.5s"}}
  },
  "server_listener_resource_name_template": "grpc/server?xds.resource.listening_address=%s",
  "client_default_listener_resource_name_template": "xdstp://xds.example.com/envoy.config.listener.v3.Listener/%s",
  "authorities": {
    "xds.example.com": {},
    "other.example.com": {
      "client_listener_resource_name_template": "xdstp://other.example.com/envoy.config.listener.v3.Listener/grpc/client/%s?project_id=1234",
      "xds_servers": [{"server_uri": "xds.other.example.com:443",
                       "channel_creds": [{"type": "tls", "config": {"ca_certificate_file": "/other-ca.pem"}}]}]
    }
  },
  "ignore": {}
}"#;

#[test]
fn full_interop_bootstrap_parses_to_expected_values() {
    let b = parse_ok(FULL);
    let primary = XdsServer::new("xds.example.com:443", ChannelCreds::GoogleDefault)
        .with_server_feature("xds_v3")
        .with_server_feature("ignore_resource_deletion");
    let fallback =
        XdsServer::new("localhost:18001", ChannelCreds::Insecure).with_server_feature("xds_v3");
    assert_eq!(b.xds_servers, vec![primary, fallback]);
    assert!(b.xds_servers[0].ignore_resource_deletion());
    assert!(!b.xds_servers[1].ignore_resource_deletion());

    assert_eq!(b.node.id, "projects/123/networks/default/nodes/client-1");
    assert_eq!(b.node.cluster, "cluster");
    assert_eq!(
        b.node.locality,
        Locality::new("us-central1", "us-central1-a", "rack1")
    );
    assert_eq!(b.node.user_agent_name, DEFAULT_USER_AGENT_NAME);
    let metadata = json!({"INSTANCE_IP": "10.0.0.1", "TRAFFICDIRECTOR_GCP_PROJECT_NUMBER": "123", "flags": {"on": true}});
    assert_eq!(serde_json::Value::Object(b.node.metadata.clone()), metadata);

    let spiffe = &b.certificate_providers["google_cloud_private_spiffe"];
    assert_eq!(spiffe.plugin_name, "file_watcher");
    assert_eq!(
        spiffe.file_watcher,
        Some(
            FileWatcherConfig::new()
                .with_identity(
                    "/var/run/certs/certificates.pem",
                    "/var/run/certs/private_key.pem"
                )
                .with_ca_certificate_file("/var/run/certs/ca_certificates.pem")
        )
    );
    assert_eq!(spiffe.config["refresh_interval"], "600s");
    let roots = b.certificate_providers["roots"].file_watcher.clone();
    assert_eq!(
        roots,
        Some(
            FileWatcherConfig::new()
                .with_ca_certificate_file("/ca.pem")
                .with_refresh_interval(Duration::from_millis(1500))
        )
    );

    assert_eq!(
        b.server_listener_resource_name_template.as_deref(),
        Some("grpc/server?xds.resource.listening_address=%s")
    );
    assert_eq!(
        b.client_default_listener_resource_name_template,
        "xdstp://xds.example.com/envoy.config.listener.v3.Listener/%s"
    );
    assert_eq!(b.authorities["xds.example.com"], Authority::new());
    let other = &b.authorities["other.example.com"];
    assert_eq!(
        other.client_listener_resource_name_template.as_deref(),
        Some(
            "xdstp://other.example.com/envoy.config.listener.v3.Listener/grpc/client/%s?project_id=1234"
        )
    );
    let tls = TlsChannelCreds::new().with_ca_certificate_file("/other-ca.pem");
    assert_eq!(
        other.xds_servers,
        vec![XdsServer::new(
            "xds.other.example.com:443",
            ChannelCreds::Tls(tls)
        )]
    );
}

#[test]
fn config_dump_serializes_creds_and_durations_like_the_bootstrap() {
    let dump = serde_json::to_value(parse_ok(FULL)).unwrap();
    assert_eq!(
        dump["xds_servers"][1]["channel_creds"],
        json!({"type": "insecure"})
    );
    let tls = &dump["authorities"]["other.example.com"]["xds_servers"][0]["channel_creds"];
    assert_eq!(tls["type"], "tls");
    assert_eq!(tls["config"]["refresh_interval"], "600s");
    assert_eq!(dump["node"]["locality"]["zone"], "us-central1-a");
}

#[test]
fn unsupported_creds_type_first_then_insecure_picks_insecure() {
    let b = parse_ok(
        r#"{"xds_servers":[{"server_uri":"x","channel_creds":[{"type":"alts","config":{"x":1}},{"type":"insecure"}]}]}"#,
    );
    assert_eq!(b.xds_servers[0].channel_creds, ChannelCreds::Insecure);
}

#[test]
fn first_supported_creds_wins_even_google_default() {
    let b = parse_ok(
        r#"{"xds_servers":[{"server_uri":"x","channel_creds":[{"type":"google_default"},{"type":"insecure"}]}]}"#,
    );
    assert_eq!(b.xds_servers[0].channel_creds, ChannelCreds::GoogleDefault);
    assert_eq!(b.xds_servers[0].channel_creds.type_name(), "google_default");
}

#[test]
fn only_unsupported_creds_types_is_an_error() {
    let json =
        r#"{"xds_servers":[{"server_uri":"fake:///lb","channel_creds":[{"type":"unknown"}]}]}"#;
    assert_eq!(
        problems(json),
        ["xds_servers[0].channel_creds: no known creds type found"]
    );
    let empty = r#"{"xds_servers":[{"server_uri":"fake:///lb","channel_creds":[]}]}"#;
    assert_eq!(
        problems(empty),
        ["xds_servers[0].channel_creds: no known creds type found"]
    );
}

#[test]
fn tls_creds_config_is_parsed_with_defaults() {
    let b = parse_ok(
        r#"{"xds_servers":[{"server_uri":"x","channel_creds":[{"type":"tls","config":{
            "ca_certificate_file":"/ca","certificate_file":"/crt","private_key_file":"/key","refresh_interval":"30s"}}]}]}"#,
    );
    let expected = TlsChannelCreds::new()
        .with_ca_certificate_file("/ca")
        .with_identity("/crt", "/key")
        .with_refresh_interval(Duration::from_secs(30));
    assert_eq!(b.xds_servers[0].channel_creds, ChannelCreds::Tls(expected));
    // gRFC A65: every field optional, unlike file_watcher.
    let bare = parse_ok(r#"{"xds_servers":[{"server_uri":"x","channel_creds":[{"type":"tls"}]}]}"#);
    assert_eq!(
        bare.xds_servers[0].channel_creds,
        ChannelCreds::Tls(TlsChannelCreds::new())
    );
    assert_eq!(
        TlsChannelCreds::new().refresh_interval,
        Duration::from_secs(600)
    );
}

#[test]
fn tls_creds_errors_are_reported_even_for_entries_after_the_chosen_one() {
    let json = r#"{"xds_servers":[{"server_uri":"x","channel_creds":[{"type":"insecure"},
        {"type":"tls","config":{"certificate_file":"/crt","refresh_interval":"5m"}}]}]}"#;
    assert_eq!(
        problems(json),
        [
            "xds_servers[0].channel_creds[1].config: fields \"certificate_file\" and \"private_key_file\" must be both set or both unset",
            "xds_servers[0].channel_creds[1].config.refresh_interval: Not a duration (no s suffix)",
        ]
    );
}

#[test]
fn missing_channel_creds() {
    let json = r#"{"xds_servers":[{"server_uri":"fake:///lb"}]}"#;
    assert_eq!(
        problems(json),
        ["xds_servers[0].channel_creds: field not present"]
    );
}

#[test]
fn missing_xds_servers_display_lists_the_problem() {
    let error = Bootstrap::from_json_str("{}").unwrap_err();
    assert_eq!(
        error.to_string(),
        "errors validating xDS bootstrap: [xds_servers: field not present]"
    );
}

#[test]
fn empty_xds_servers() {
    assert_eq!(
        problems(r#"{"xds_servers":[]}"#),
        ["xds_servers: must be non-empty"]
    );
}

#[test]
fn top_fields_wrong_types() {
    let json = r#"{"xds_servers":1,"node":1,"server_listener_resource_name_template":1,"certificate_providers":1,
        "client_default_listener_resource_name_template":[],"authorities":"x"}"#;
    assert_eq!(
        problems(json),
        [
            "authorities: is not an object",
            "certificate_providers: is not an object",
            "client_default_listener_resource_name_template: is not a string",
            "node: is not an object",
            "server_listener_resource_name_template: is not a string",
            "xds_servers: is not an array",
        ]
    );
}

#[test]
fn xds_server_missing_fields() {
    assert_eq!(
        problems(r#"{"xds_servers":[{}]}"#),
        [
            "xds_servers[0].channel_creds: field not present",
            "xds_servers[0].server_uri: field not present"
        ]
    );
}

#[test]
fn xds_server_entry_not_an_object_and_empty_uri() {
    let json = r#"{"xds_servers":[1,{"server_uri":"","channel_creds":[{"type":"insecure"}]}]}"#;
    assert_eq!(
        problems(json),
        [
            "xds_servers[0]: is not an object",
            "xds_servers[1].server_uri: must be non-empty"
        ]
    );
}

#[test]
fn xds_server_uri_and_creds_wrong_types() {
    let json = r#"{"xds_servers":[{"server_uri":1,"channel_creds":1,"server_features":"xds_v3"}]}"#;
    assert_eq!(
        problems(json),
        [
            "xds_servers[0].channel_creds: is not an array",
            "xds_servers[0].server_features: is not an array",
            "xds_servers[0].server_uri: is not a string",
        ]
    );
}

#[test]
fn channel_creds_fields_wrong_types() {
    let json =
        r#"{"xds_servers":[{"server_uri":"foo","channel_creds":[{"type":0,"config":1},2]}]}"#;
    assert_eq!(
        problems(json),
        [
            "xds_servers[0].channel_creds[0].config: is not an object",
            "xds_servers[0].channel_creds[0].type: is not a string",
            "xds_servers[0].channel_creds[1]: is not an object",
        ]
    );
}

#[test]
fn server_features_keep_strings_and_skip_others() {
    let json = r#"{"xds_servers":[{"server_uri":"x","channel_creds":[{"type":"insecure"}],
        "server_features":["xds_v3",1,null,"ignore_resource_deletion"]}]}"#;
    let server = &parse_ok(json).xds_servers[0];
    assert_eq!(
        server.server_features,
        ["xds_v3", "ignore_resource_deletion"]
    );
    assert!(server.ignore_resource_deletion());
}

#[test]
fn node_fields_wrong_types() {
    let json = r#"{"node":{"id":0,"cluster":0,"locality":0,"metadata":0}}"#;
    assert_eq!(
        problems(json),
        [
            "node.cluster: is not a string",
            "node.id: is not a string",
            "node.locality: is not an object",
            "node.metadata: is not an object",
            "xds_servers: field not present",
        ]
    );
}

#[test]
fn locality_fields_wrong_type() {
    let json = r#"{"node":{"locality":{"region":0,"zone":0,"sub_zone":0}}}"#;
    assert_eq!(
        problems(json),
        [
            "node.locality.region: is not a string",
            "node.locality.sub_zone: is not a string",
            "node.locality.zone: is not a string",
            "xds_servers: field not present",
        ]
    );
}

#[test]
fn null_fields_count_as_absent() {
    let b = parse_ok(&with_server(
        r#","node":null,"authorities":null,"server_listener_resource_name_template":null"#,
    ));
    assert_eq!(b.node, Node::default());
    assert!(b.authorities.is_empty());
    assert_eq!(
        problems(r#"{"xds_servers":null}"#),
        ["xds_servers: field not present"]
    );
}

#[test]
fn empty_templates_count_as_unset() {
    let b = parse_ok(&with_server(
        r#","server_listener_resource_name_template":"","client_default_listener_resource_name_template":"",
           "authorities":{"a":{"client_listener_resource_name_template":""}}"#,
    ));
    assert_eq!(b.server_listener_resource_name_template, None);
    assert_eq!(b.client_default_listener_resource_name_template, "%s");
    assert_eq!(
        b.authorities["a"].client_listener_resource_name_template,
        None
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let json = r#"{
      "xds_servers": [{"server_uri": 7, "channel_creds": [{"type": "kerberos"}]}, {"channel_creds": "insecure"}],
      "node": {"id": 1, "locality": {"zone": false}},
      "certificate_providers": {"p": {"plugin_name": "file_watcher", "config": {"refresh_interval": "x"}}},
      "authorities": {"a": {"client_listener_resource_name_template": "xdstp://b/%s"}}
    }"#;
    let found = problems(json);
    let expected = [
        "authorities[\"a\"].client_listener_resource_name_template: field must begin with \"xdstp://a/\"",
        "certificate_providers[\"p\"].config: at least one of \"certificate_file\", \"ca_certificate_file\" and \"spiffe_trust_bundle_map_file\" must be specified",
        "certificate_providers[\"p\"].config.refresh_interval: Not a duration (no s suffix)",
        "node.id: is not a string",
        "node.locality.zone: is not a string",
        "xds_servers[0].channel_creds: no known creds type found",
        "xds_servers[0].server_uri: is not a string",
        "xds_servers[1].channel_creds: is not an array",
        "xds_servers[1].server_uri: field not present",
    ];
    assert_eq!(found, expected);
    let display = Bootstrap::from_json_str(json).unwrap_err().to_string();
    assert_eq!(
        display,
        format!("errors validating xDS bootstrap: [{}]", expected.join("; "))
    );
}

#[test]
fn invalid_json_reports_line_and_column() {
    let error = Bootstrap::from_json_str("{\n  \"xds_servers\": [,\n}").unwrap_err();
    let BootstrapError::Json {
        line,
        column,
        message,
    } = &error
    else {
        panic!("expected a JSON error, got {error:?}");
    };
    assert_eq!((*line, *column), (2, 19));
    assert_eq!(message, "expected value");
    assert_eq!(
        error.to_string(),
        "xDS bootstrap is not valid JSON: expected value at line 2 column 19"
    );
    assert!(error.problems().is_empty());
}

#[test]
fn document_that_is_not_an_object() {
    let error = Bootstrap::from_json_str("[1]").unwrap_err();
    assert_eq!(
        error.problems(),
        [BootstrapProblem::new("", "is not an object")]
    );
    assert_eq!(
        error.to_string(),
        "errors validating xDS bootstrap: [is not an object]"
    );
}
