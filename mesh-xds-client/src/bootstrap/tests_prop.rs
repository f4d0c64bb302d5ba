//! Property tests: no input makes the parser panic, and whatever it rejects it explains.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::*;

/// Field names the parser looks for, so generated objects reach deep into it rather than being ignored.
const KEYS: &[&str] = &[
    "xds_servers",
    "server_uri",
    "channel_creds",
    "type",
    "config",
    "server_features",
    "node",
    "id",
    "cluster",
    "locality",
    "region",
    "zone",
    "sub_zone",
    "metadata",
    "certificate_providers",
    "plugin_name",
    "certificate_file",
    "private_key_file",
    "ca_certificate_file",
    "spiffe_trust_bundle_map_file",
    "refresh_interval",
    "server_listener_resource_name_template",
    "client_default_listener_resource_name_template",
    "authorities",
    "client_listener_resource_name_template",
];

/// Strings that mean something to the parser, plus arbitrary ones.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "insecure",
            "tls",
            "google_default",
            "file_watcher",
            "600s",
            "1.5s",
            "-1s",
            "xdstp://a/%s",
            "%s",
            "",
            "ignore_resource_deletion",
        ])
        .prop_map(str::to_owned),
        ".{0,12}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => ".{0,6}"]
}

/// Arbitrary JSON trees.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        string().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn check(text: &str) {
    match Bootstrap::from_json_str(text) {
        Ok(bootstrap) => {
            assert!(!bootstrap.xds_servers.is_empty());
            // Names can always be derived for the default authority without panicking.
            let _ = bootstrap.client_listener_name(None, text);
            let _ = bootstrap.server_listener_name(([127, 0, 0, 1], 1).into());
            let _ = serde_json::to_string(&bootstrap);
        }
        Err(BootstrapError::Invalid { problems }) => {
            assert!(!problems.is_empty());
            assert!(
                problems.windows(2).all(|w| w[0].field <= w[1].field),
                "{problems:?}"
            );
        }
        Err(BootstrapError::Json { .. }) => {}
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_strings(text in ".{0,200}") {
        check(&text);
    }

    #[test]
    fn never_panics_on_arbitrary_json(value in json_value()) {
        check(&value.to_string());
    }

    #[test]
    fn never_panics_on_bootstrap_shaped_json(
        servers in prop::collection::vec(json_value(), 0..3),
        rest in prop::collection::vec((key(), json_value()), 0..6),
    ) {
        let mut top: Map<String, Value> = rest.into_iter().collect();
        top.insert("xds_servers".to_owned(), Value::Array(servers));
        check(&Value::Object(top).to_string());
    }

    #[test]
    fn client_names_only_hold_uri_path_characters_after_the_template(path in ".{0,40}") {
        let b = Bootstrap::builder()
            .server("x", ChannelCreds::Insecure)
            .client_default_listener_resource_name_template("xdstp://a/%s")
            .authority("a", Authority::new())
            .build()
            .unwrap();
        let name = b.client_listener_name(None, &path).unwrap();
        let encoded = name.strip_prefix("xdstp://a/").unwrap();
        prop_assert!(encoded.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&c)));
    }
}
