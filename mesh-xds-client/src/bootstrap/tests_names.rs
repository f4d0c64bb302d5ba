//! Loading from files and the environment, the code builder, and Listener names (gRFC A47, A36).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mesh_core::locality::Locality;
use serde_json::json;

use super::*;

const MINIMAL: &str =
    r#"{"xds_servers":[{"server_uri":"localhost:1","channel_creds":[{"type":"insecure"}]}]}"#;

/// A file in the temp dir removed on drop, so tests running in parallel do not share one.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "mesh-xds-bootstrap-{}-{}.json",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }

    fn path(&self) -> String {
        self.0.to_str().unwrap().to_owned()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn env<'a>(vars: &'a [(&'a str, String)]) -> impl FnMut(&str) -> Option<String> + 'a {
    |name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }
}

#[test]
fn from_file_reads_the_file() {
    let file = TempFile::new(MINIMAL);
    let b = Bootstrap::from_file(&file.0).unwrap();
    assert_eq!(b.xds_servers[0].server_uri, "localhost:1");
}

#[test]
fn from_env_with_prefers_the_file_over_inline_json() {
    let file = TempFile::new(MINIMAL);
    let inline =
        r#"{"xds_servers":[{"server_uri":"inline:1","channel_creds":[{"type":"insecure"}]}]}"#;
    let vars = [
        (BOOTSTRAP_FILE_ENV, file.path()),
        (BOOTSTRAP_CONFIG_ENV, inline.to_owned()),
    ];
    let b = Bootstrap::from_env_with(env(&vars)).unwrap();
    assert_eq!(b.xds_servers[0].server_uri, "localhost:1");
}

#[test]
fn from_env_with_uses_inline_json_when_no_file_is_named() {
    let inline =
        r#"{"xds_servers":[{"server_uri":"inline:1","channel_creds":[{"type":"insecure"}]}]}"#;
    for file in [None, Some(String::new())] {
        let mut vars = vec![(BOOTSTRAP_CONFIG_ENV, inline.to_owned())];
        if let Some(file) = file {
            vars.push((BOOTSTRAP_FILE_ENV, file));
        }
        let b = Bootstrap::from_env_with(env(&vars)).unwrap();
        assert_eq!(b.xds_servers[0].server_uri, "inline:1");
    }
}

#[test]
fn from_env_with_neither_variable_names_both() {
    let error = Bootstrap::from_env_with(|_| None).unwrap_err();
    assert!(matches!(error, BootstrapError::NotConfigured));
    assert_eq!(
        error.to_string(),
        "environment variables GRPC_XDS_BOOTSTRAP or GRPC_XDS_BOOTSTRAP_CONFIG not defined"
    );
}

#[test]
fn from_env_with_missing_file_names_the_path_and_ignores_inline_json() {
    let missing = std::env::temp_dir().join("mesh-xds-bootstrap-does-not-exist.json");
    let vars = [
        (BOOTSTRAP_FILE_ENV, missing.to_str().unwrap().to_owned()),
        (BOOTSTRAP_CONFIG_ENV, MINIMAL.to_owned()),
    ];
    let error = Bootstrap::from_env_with(env(&vars)).unwrap_err();
    let BootstrapError::Io { path, .. } = &error else {
        panic!("expected an I/O error, got {error:?}");
    };
    assert_eq!(path, &missing);
    assert!(
        error.to_string().starts_with(&format!(
            "cannot read xDS bootstrap file {}: ",
            missing.display()
        )),
        "{error}"
    );
}

#[test]
fn from_env_with_invalid_inline_json_is_a_json_error() {
    let vars = [(BOOTSTRAP_CONFIG_ENV, "{".to_owned())];
    let error = Bootstrap::from_env_with(env(&vars)).unwrap_err();
    assert!(
        matches!(error, BootstrapError::Json { line: 1, .. }),
        "{error:?}"
    );
}

#[test]
fn builder_makes_what_the_parser_makes() {
    let built = Bootstrap::builder()
        .server("localhost:1", ChannelCreds::Insecure)
        .build()
        .unwrap();
    assert_eq!(built, Bootstrap::from_json_str(MINIMAL).unwrap());

    let metadata = json!({"k": "v"}).as_object().cloned().unwrap();
    let full = Bootstrap::builder()
        .xds_server(
            XdsServer::new("a:1", ChannelCreds::Insecure)
                .with_server_feature("ignore_resource_deletion"),
        )
        .server("b:1", ChannelCreds::Tls(TlsChannelCreds::new()))
        .node_id("n")
        .node_cluster("c")
        .locality(Locality::new("r", "z", "s"))
        .node_metadata(metadata.clone())
        .certificate_provider(
            "default",
            CertificateProviderConfig::file_watcher(
                FileWatcherConfig::new().with_ca_certificate_file("/ca"),
            ),
        )
        .server_listener_resource_name_template("grpc/server/%s")
        .authority("a.example", Authority::new())
        .build()
        .unwrap();
    assert_eq!(full.xds_servers.len(), 2);
    assert!(full.xds_servers[0].ignore_resource_deletion());
    assert_eq!(
        full.node,
        Node::new("n")
            .with_cluster("c")
            .with_locality(Locality::new("r", "z", "s"))
            .with_metadata(metadata)
    );
    assert_eq!(
        full.certificate_providers["default"].config,
        json!({"ca_certificate_file": "/ca", "refresh_interval": "600s"})
    );
    assert_eq!(full.client_default_listener_resource_name_template, "%s");
}

#[test]
fn builder_reports_every_problem_with_json_field_names() {
    let error = Bootstrap::builder()
        .authority(
            "a",
            Authority::new()
                .with_client_listener_resource_name_template("xdstp://b/%s")
                .with_server(XdsServer::new("", ChannelCreds::Insecure)),
        )
        .certificate_provider(
            "empty",
            CertificateProviderConfig::file_watcher(FileWatcherConfig::new()),
        )
        .certificate_provider(
            "json",
            CertificateProviderConfig::new("file_watcher", json!({"certificate_file": "/c"})),
        )
        .build()
        .unwrap_err();
    let problems: Vec<String> = error.problems().iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "authorities[\"a\"].client_listener_resource_name_template: field must begin with \"xdstp://a/\"",
            "authorities[\"a\"].xds_servers[0].server_uri: must be non-empty",
            "certificate_providers[\"empty\"].config: at least one of \"certificate_file\", \"ca_certificate_file\" and \"spiffe_trust_bundle_map_file\" must be specified",
            "certificate_providers[\"json\"].config: fields \"certificate_file\" and \"private_key_file\" must be both set or both unset",
            "xds_servers: must be non-empty",
        ]
    );
}

#[test]
fn builder_checks_tls_creds_and_parses_file_watcher_json() {
    let mut half = TlsChannelCreds::new();
    half.certificate_file = Some("/crt".to_owned());
    let error = Bootstrap::builder()
        .server("x", ChannelCreds::Tls(half))
        .build()
        .unwrap_err();
    assert_eq!(
        error.problems(),
        [BootstrapProblem::new(
            "xds_servers[0].channel_creds",
            "fields \"certificate_file\" and \"private_key_file\" must be both set or both unset"
        )]
    );
    let b = Bootstrap::builder()
        .server("x", ChannelCreds::Insecure)
        .certificate_provider(
            "p",
            CertificateProviderConfig::new(
                "file_watcher",
                json!({"ca_certificate_file": "/ca", "refresh_interval": "2s"}),
            ),
        )
        .build()
        .unwrap();
    let expected = FileWatcherConfig::new()
        .with_ca_certificate_file("/ca")
        .with_refresh_interval(Duration::from_secs(2));
    assert_eq!(b.certificate_providers["p"].file_watcher, Some(expected));
}

fn federated() -> Bootstrap {
    Bootstrap::from_json_str(
        r#"{
      "xds_servers": [{"server_uri": "top:1", "channel_creds": [{"type": "insecure"}]}],
      "client_default_listener_resource_name_template": "xdstp://xds.authority.com/envoy.config.listener.v3.Listener/%s",
      "server_listener_resource_name_template": "xdstp://xds.authority.com/envoy.config.listener.v3.Listener/grpc/server/%s?project_id=1234",
      "authorities": {
        "xds.authority.com": {},
        "xds.other.com": {
          "client_listener_resource_name_template": "xdstp://xds.other.com/envoy.config.listener.v3.Listener/grpc/client/%s?project_id=1234",
          "xds_servers": [{"server_uri": "other:1", "channel_creds": [{"type": "insecure"}]}]
        }
      }
    }"#,
    )
    .unwrap()
}

#[test]
fn client_name_without_authority_uses_the_default_template_verbatim() {
    let b = Bootstrap::from_json_str(MINIMAL).unwrap();
    assert_eq!(
        b.client_listener_name(None, "/server.example.com:443")
            .unwrap(),
        "server.example.com:443"
    );
    assert_eq!(
        b.client_listener_name(Some(""), "a b/c?d").unwrap(),
        "a b/c?d"
    );
}

#[test]
fn client_name_from_xdstp_default_template_is_percent_encoded() {
    let b = federated();
    assert_eq!(
        b.client_listener_name(None, "/server.example.com").unwrap(),
        "xdstp://xds.authority.com/envoy.config.listener.v3.Listener/server.example.com"
    );
    // gRFC A47: RFC 3986 path characters, '/' included, stay; everything else is encoded.
    assert_eq!(
        b.client_listener_name(None, "/a/b:1@x!$&'()*+,;=-._~ %?#[]^\\é")
            .unwrap(),
        "xdstp://xds.authority.com/envoy.config.listener.v3.Listener/a/b:1@x!$&'()*+,;=-._~%20%25%3F%23%5B%5D%5E%5C%C3%A9"
    );
}

#[test]
fn client_name_with_authority_uses_its_template_or_the_default_one() {
    let b = federated();
    assert_eq!(
        b.client_listener_name(Some("xds.other.com"), "/server.other.com")
            .unwrap(),
        "xdstp://xds.other.com/envoy.config.listener.v3.Listener/grpc/client/server.other.com?project_id=1234"
    );
    assert_eq!(
        b.client_listener_name(Some("xds.authority.com"), "/my service")
            .unwrap(),
        "xdstp://xds.authority.com/envoy.config.listener.v3.Listener/my%20service"
    );
}

#[test]
fn client_name_with_unknown_authority_is_an_error() {
    let b = federated();
    let error = b
        .client_listener_name(Some("nowhere.com"), "/x")
        .unwrap_err();
    assert_eq!(
        error,
        ListenerNameError::UnknownAuthority {
            authority: "nowhere.com".to_owned()
        }
    );
    assert_eq!(
        error.to_string(),
        "authority not found in xDS bootstrap: \"nowhere.com\""
    );

    let mut b = Bootstrap::from_json_str(MINIMAL).unwrap();
    b.client_default_listener_resource_name_template =
        "xdstp://missing/envoy.config.listener.v3.Listener/%s".to_owned();
    assert_eq!(
        b.client_listener_name(None, "x"),
        Err(ListenerNameError::UnknownAuthority {
            authority: "missing".to_owned()
        })
    );
}

#[test]
fn server_names_for_ipv4_and_ipv6() {
    let plain = Bootstrap::builder()
        .server("x", ChannelCreds::Insecure)
        .server_listener_resource_name_template("grpc/server?xds.resource.listening_address=%s")
        .build()
        .unwrap();
    let v4: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let v6: SocketAddr = "[::1]:8080".parse().unwrap();
    assert_eq!(
        plain.server_listener_name(v4).as_deref(),
        Some("grpc/server?xds.resource.listening_address=0.0.0.0:8080")
    );
    assert_eq!(
        plain.server_listener_name(v6).as_deref(),
        Some("grpc/server?xds.resource.listening_address=[::1]:8080")
    );
    let b = federated();
    assert_eq!(
        b.server_listener_name(v4).as_deref(),
        Some(
            "xdstp://xds.authority.com/envoy.config.listener.v3.Listener/grpc/server/0.0.0.0:8080?project_id=1234"
        )
    );
    assert_eq!(
        b.server_listener_name(v6).as_deref(),
        Some(
            "xdstp://xds.authority.com/envoy.config.listener.v3.Listener/grpc/server/%5B::1%5D:8080?project_id=1234"
        )
    );
    assert_eq!(
        Bootstrap::from_json_str(MINIMAL)
            .unwrap()
            .server_listener_name(v4),
        None
    );
}

#[test]
fn servers_for_authority_falls_back_to_top_level_only_for_known_authorities() {
    let b = federated();
    assert_eq!(b.servers_for_authority(None)[0].server_uri, "top:1");
    assert_eq!(
        b.servers_for_authority(Some("xds.authority.com"))[0].server_uri,
        "top:1"
    );
    assert_eq!(
        b.servers_for_authority(Some("xds.other.com"))[0].server_uri,
        "other:1"
    );
    assert!(b.servers_for_authority(Some("nowhere.com")).is_empty());
    assert!(b.authority("xds.other.com").is_some());
}

#[test]
fn xdstp_authority_of_resource_names() {
    assert_eq!(
        xdstp_authority("xdstp://a.com/envoy.config.listener.v3.Listener/x"),
        Some("a.com")
    );
    assert_eq!(xdstp_authority("xdstp://a.com?x=1"), Some("a.com"));
    assert_eq!(
        xdstp_authority("xdstp:///envoy.config.listener.v3.Listener/x"),
        Some("")
    );
    assert_eq!(
        xdstp_authority("xdstp:envoy.config.listener.v3.Listener/x"),
        Some("")
    );
    assert_eq!(xdstp_authority("server.example.com"), None);
}
