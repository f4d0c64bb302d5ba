//! Writes the seed corpora under `fuzz/corpus/<target>/`: valid inputs, so fuzzing starts deep inside the
//! validators instead of spending its first minutes learning the protobuf wire format.
//!
//! ```sh
//! cd fuzz && cargo run --example seed_corpus
//! ```
//!
//! The resources come from `seeds/mesh.yaml` (the mesh-xds-server README example: RDS listeners, a server listener
//! with TLS and RBAC, weighted routes with faults and retries, clusters with TLS, outlier detection, ring hash and
//! least request, localities over two priorities), plus clusters the mesh file cannot express (LOGICAL_DNS,
//! aggregate, STATIC). Every seed is checked with the same function its fuzz target calls and must be accepted,
//! so a seed that rots fails here. Each `corpus/<target>/` directory is replaced as a whole.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, CustomClusterType, DiscoveryType,
};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::extensions::clusters::aggregate::v3::ClusterConfig as AggregateConfig;
use envoy_types::pb::envoy::service::discovery::v3::{
    DiscoveryResponse, Resource as ResourceWrapper,
};
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use mesh_xds_client::resource::{self, ResourceKind};
use mesh_xds_server::mesh::MeshConfig;
use prost::{Message, Name};

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// Bootstrap seeds: the minimal C-core shape, the mesh-xds-server README's, and the full interop shape (fallback
/// server, certificate providers, federation).
const BOOTSTRAPS: [(&str, &str); 3] = [
    (
        "minimal",
        r#"{"xds_servers":[{"server_uri":"localhost:1","channel_creds":[{"type":"insecure"}]}]}"#,
    ),
    (
        "readme",
        r#"{
  "xds_servers": [{ "server_uri": "127.0.0.1:18000", "channel_creds": [{ "type": "insecure" }] }],
  "node": { "id": "demo-client", "locality": {} },
  "server_listener_resource_name_template": "grpc/server?xds.resource.listening_address=%s"
}"#,
    ),
    (
        "federation",
        r#"{
  "xds_servers": [
    {"server_uri": "xds.example.com:443", "channel_creds": [{"type": "google_default"}],
     "server_features": ["xds_v3", "ignore_resource_deletion"]},
    {"server_uri": "localhost:18001", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}
  ],
  "node": {
    "id": "projects/123/networks/default/nodes/client-1",
    "cluster": "cluster",
    "locality": {"region": "us-central1", "zone": "us-central1-a", "sub_zone": "rack1"},
    "metadata": {"INSTANCE_IP": "10.0.0.1", "flags": {"on": true}}
  },
  "certificate_providers": {
    "default": {
      "plugin_name": "file_watcher",
      "config": {
        "certificate_file": "/var/run/certs/certificates.pem",
        "private_key_file": "/var/run/certs/private_key.pem",
        "ca_certificate_file": "/var/run/certs/ca_certificates.pem",
        "refresh_interval": "600s"
      }
    }
  },
  "server_listener_resource_name_template": "grpc/server?xds.resource.listening_address=%s",
  "client_default_listener_resource_name_template": "xdstp://xds.example.com/envoy.config.listener.v3.Listener/%s",
  "authorities": {
    "xds.example.com": {},
    "other.example.com": {
      "client_listener_resource_name_template": "xdstp://other.example.com/envoy.config.listener.v3.Listener/grpc/client/%s",
      "xds_servers": [{"server_uri": "xds.other.example.com:443",
                       "channel_creds": [{"type": "tls", "config": {"ca_certificate_file": "/ca.pem"}}]}]
    }
  }
}"#,
    ),
];

fn main() -> Result<()> {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mesh = MeshConfig::from_file(fuzz_dir.join("seeds/mesh.yaml"))?;
    let mut envoy = mesh.translate()?;
    envoy.clusters.extend(extra_clusters(&envoy.clusters)?);

    let corpus = fuzz_dir.join("corpus");
    let mut bootstrap = Seeds::new(&corpus, "bootstrap")?;
    for (name, json) in BOOTSTRAPS {
        if !mesh_fuzz::bootstrap(json.as_bytes()) {
            return Err(format!("bootstrap seed {name:?} is rejected").into());
        }
        bootstrap.write(name, json.as_bytes())?;
    }

    let kinds = [
        (
            ResourceKind::Listener,
            "listener",
            encode_all(&envoy.listeners, |l| &l.name),
        ),
        (
            ResourceKind::RouteConfiguration,
            "route_configuration",
            encode_all(&envoy.route_configurations, |r| &r.name),
        ),
        (
            ResourceKind::Cluster,
            "cluster",
            encode_all(&envoy.clusters, |c| &c.name),
        ),
        (
            ResourceKind::ClusterLoadAssignment,
            "cluster_load_assignment",
            encode_all(&envoy.cluster_load_assignments, |c| &c.cluster_name),
        ),
    ];
    let mut responses = Seeds::new(&corpus, "discovery_response")?;
    for (kind, target, resources) in kinds {
        let mut seeds = Seeds::new(&corpus, target)?;
        for (name, any) in &resources {
            resource::decode(kind, any, &mesh_fuzz::validation_context())
                .map_err(|e| format!("seed {name:?} is rejected: {e}"))?;
            seeds.write(name, &any.value)?;
        }
        // One response with every resource of the type, and one with each wrapped in a `Resource`.
        let plain = response(kind, resources.iter().map(|(_, any)| any.clone()).collect());
        let wrapped = response(
            kind,
            resources
                .iter()
                .map(|(name, any)| {
                    pack(&ResourceWrapper {
                        name: name.clone(),
                        version: "1".to_owned(),
                        resource: Some(any.clone()),
                        ..ResourceWrapper::default()
                    })
                })
                .collect(),
        );
        for (suffix, message) in [("", plain), ("-wrapped", wrapped)] {
            let bytes = message.encode_to_vec();
            if mesh_fuzz::discovery_response(&bytes) != Some(resources.len()) {
                return Err(format!("{target}{suffix} response seed is not fully accepted").into());
            }
            responses.write(&format!("{target}{suffix}"), &bytes)?;
        }
    }
    Ok(())
}

/// The seeds of one target: a fresh directory, files numbered in write order.
struct Seeds {
    dir: PathBuf,
    count: usize,
}

impl Seeds {
    fn new(corpus: &Path, target: &str) -> Result<Self> {
        let dir = corpus.join(target);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        Ok(Self { dir, count: 0 })
    }

    fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.dir.join(format!("{:02}-{safe}", self.count));
        self.count += 1;
        fs::write(&path, bytes)?;
        println!("{} ({} bytes)", path.display(), bytes.len());
        Ok(())
    }
}

/// Each resource, named, packed in an `Any` as a server sends it.
fn encode_all<M: Name>(resources: &[M], name: impl Fn(&M) -> &String) -> Vec<(String, Any)> {
    resources
        .iter()
        .map(|r| (name(r).clone(), pack(r)))
        .collect()
}

/// `message` in an `Any`, as a server sends it.
fn pack<M: Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

fn response(kind: ResourceKind, resources: Vec<Any>) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: "1".to_owned(),
        resources,
        type_url: kind.type_url().to_owned(),
        nonce: "nonce-1".to_owned(),
        ..DiscoveryResponse::default()
    }
}

/// Clusters the mesh file cannot express, made from its first cluster: LOGICAL_DNS (gRFC A37), aggregate over the
/// mesh's clusters (gRFC A37), and STATIC with inline endpoints.
fn extra_clusters(clusters: &[Cluster]) -> Result<Vec<Cluster>> {
    let template = clusters.first().ok_or("the seed mesh has no cluster")?;
    let base = Cluster {
        eds_cluster_config: None,
        ..template.clone()
    };
    let one_endpoint = |cluster_name: &str, host: &str, port: u32| ClusterLoadAssignment {
        cluster_name: cluster_name.to_owned(),
        endpoints: vec![LocalityLbEndpoints {
            load_balancing_weight: Some(UInt32Value { value: 1 }),
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                    address: Some(Address {
                        address: Some(AddressKind::SocketAddress(SocketAddress {
                            address: host.to_owned(),
                            port_specifier: Some(PortSpecifier::PortValue(port)),
                            ..SocketAddress::default()
                        })),
                    }),
                    ..Endpoint::default()
                })),
                ..LbEndpoint::default()
            }],
            ..LocalityLbEndpoints::default()
        }],
        ..ClusterLoadAssignment::default()
    };
    let logical_dns = Cluster {
        name: "greeter-dns".to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::LogicalDns.into())),
        load_assignment: Some(one_endpoint("greeter-dns", "greeter.example.com", 443)),
        ..base.clone()
    };
    let static_cluster = Cluster {
        name: "greeter-static".to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static.into())),
        load_assignment: Some(one_endpoint("greeter-static", "10.1.2.3", 50051)),
        ..base.clone()
    };
    let aggregate_config = AggregateConfig {
        clusters: clusters
            .iter()
            .map(|c| c.name.clone())
            .chain([logical_dns.name.clone()])
            .collect(),
    };
    let aggregate = Cluster {
        name: "greeter-aggregate".to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::ClusterType(CustomClusterType {
            name: "envoy.clusters.aggregate".to_owned(),
            typed_config: Some(pack(&aggregate_config)),
        })),
        ..base
    };
    Ok(vec![logical_dns, static_cluster, aggregate])
}
