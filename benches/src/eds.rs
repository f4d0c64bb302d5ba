//! Fixtures of the `xds_eds` benchmark: a large EDS resource as a control plane sends it, and a dependency manager
//! (gRFC A74) that already holds everything else of its target.
//!
//! The assignment has [`ENDPOINTS`] endpoints spread evenly over [`LOCALITIES`] localities, the first half of the
//! localities at priority 0 and the rest at priority 1, with varied locality and endpoint weights. Generations
//! differ only in the health of the very last endpoint, so that telling an update from a re-send costs a full
//! comparison, as it would for a real one-endpoint change.

use std::net::Ipv4Addr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, HealthStatus, Locality, Metadata, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, UInt32Value, Value};
use mesh_core::cluster::Cluster;
use mesh_core::listener::{HttpConnectionManager, Listener, RouteSource};
use mesh_core::route::{Route, RouteAction, RouteConfig, RouteMatch, VirtualHost};
use mesh_xds_client::deps::{DependencyManager, ResourceEvent};
use mesh_xds_client::resource::{Resource, ResourceKind};
use prost::Message as _;

/// Endpoints in the benchmark's assignment.
pub const ENDPOINTS: usize = 10_000;
/// Localities in the benchmark's assignment.
pub const LOCALITIES: usize = 100;
/// The target, listener, route configuration, cluster and EDS resource name.
pub const NAME: &str = "greeter";

/// What each endpoint carries besides its address, weight and health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointExtras {
    /// Nothing: what go-control-plane and the mesh-xds-server send.
    None,
    /// A host name and Istio-style metadata (a workload string and a TLS mode), each endpoint its own copy.
    HostnameAndMetadata,
}

/// A `ClusterLoadAssignment` named [`NAME`] of `endpoints` endpoints over `localities` localities (see the module
/// docs); `generation` 1 marks the last endpoint DRAINING, any other generation leaves every endpoint HEALTHY.
#[must_use]
pub fn cluster_load_assignment(
    endpoints: usize,
    localities: usize,
    generation: u32,
    extras: EndpointExtras,
) -> ClusterLoadAssignment {
    let localities = localities.clamp(1, endpoints.max(1));
    let per_locality = endpoints.div_ceil(localities);
    let mut made = 0usize;
    let locality_endpoints = (0..localities)
        .map(|l| {
            let here = per_locality.min(endpoints - made);
            let lb_endpoints = (made..made + here)
                .map(|n| {
                    let last = n + 1 == endpoints;
                    lb_endpoint(n, generation == 1 && last, extras)
                })
                .collect();
            made += here;
            LocalityLbEndpoints {
                locality: Some(Locality {
                    region: "us-east1".to_owned(),
                    zone: format!("us-east1-{l}"),
                    sub_zone: String::new(),
                }),
                lb_endpoints,
                load_balancing_weight: Some(UInt32Value {
                    value: u32::try_from(1 + l % 4).unwrap_or(1),
                }),
                priority: u32::from(l >= localities / 2),
                ..LocalityLbEndpoints::default()
            }
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: NAME.to_owned(),
        endpoints: locality_endpoints,
        ..ClusterLoadAssignment::default()
    }
}

/// [`cluster_load_assignment`] as the bytes of a `google.protobuf.Any`'s `value`.
#[must_use]
pub fn encoded_cluster_load_assignment(
    endpoints: usize,
    localities: usize,
    generation: u32,
    extras: EndpointExtras,
) -> Vec<u8> {
    cluster_load_assignment(endpoints, localities, generation, extras).encode_to_vec()
}

/// Endpoint `n`: address 10.x.y.z:50051 (unique for n below 2^24), weight 1 to 3.
fn lb_endpoint(n: usize, draining: bool, extras: EndpointExtras) -> LbEndpoint {
    let octets = u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
    let [_, a, b, c] = octets;
    let address = Ipv4Addr::new(10, a, b, c);
    let (hostname, metadata) = match extras {
        EndpointExtras::None => (String::new(), None),
        EndpointExtras::HostnameAndMetadata => (
            format!("greeter-{n}.greeter.default.svc.cluster.local"),
            Some(istio_metadata(n)),
        ),
    };
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(AddressKind::SocketAddress(SocketAddress {
                    address: address.to_string(),
                    port_specifier: Some(PortSpecifier::PortValue(50051)),
                    ..SocketAddress::default()
                })),
            }),
            hostname,
            ..Endpoint::default()
        })),
        health_status: if draining {
            HealthStatus::Draining
        } else {
            HealthStatus::Healthy
        }
        .into(),
        metadata,
        load_balancing_weight: Some(UInt32Value {
            value: u32::try_from(1 + n % 3).unwrap_or(1),
        }),
    }
}

/// The shape of the metadata istiod attaches to each endpoint.
fn istio_metadata(n: usize) -> Metadata {
    let string = |s: String| Value {
        kind: Some(Kind::StringValue(s)),
    };
    let fields = |pairs: Vec<(&str, Value)>| Struct {
        fields: pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    };
    Metadata {
        filter_metadata: [
            (
                "istio".to_owned(),
                fields(vec![(
                    "workload",
                    string(format!(
                        "greeter-v{};default;greeter;v{};Kubernetes",
                        n % 3,
                        n % 3
                    )),
                )]),
            ),
            (
                "envoy.transport_socket_match".to_owned(),
                fields(vec![("tlsMode", string("istio".to_owned()))]),
            ),
        ]
        .into_iter()
        .collect(),
        ..Metadata::default()
    }
}

/// A dependency manager for target [`NAME`] that holds its listener (RDS), route configuration (every request to
/// cluster [`NAME`]) and EDS cluster, and waits for the endpoints: the next `ClusterLoadAssignment` completes the
/// graph and publishes a snapshot.
#[must_use]
pub fn dependency_manager_waiting_for_eds() -> DependencyManager {
    let mut manager = DependencyManager::new(NAME, NAME);
    let listener = Listener::client(
        NAME,
        HttpConnectionManager::new(RouteSource::Rds(NAME.into())),
    );
    let routes = RouteConfig::new(
        NAME,
        vec![VirtualHost::new(
            NAME,
            &["*"],
            vec![Route::new(RouteMatch::any(), RouteAction::cluster(NAME))],
        )],
    );
    let resources = [
        Resource::Listener(Arc::new(listener)),
        Resource::RouteConfiguration(Arc::new(routes)),
        Resource::Cluster(Arc::new(Cluster::eds(NAME))),
    ];
    for resource in resources {
        manager.on_resource(resource.kind(), NAME, ResourceEvent::Changed(resource));
    }
    manager.take_actions();
    manager
}

/// Tells `manager` about an EDS resource for [`NAME`].
pub fn deliver_endpoints(manager: &mut DependencyManager, resource: Resource) {
    manager.on_resource(
        ResourceKind::ClusterLoadAssignment,
        NAME,
        ResourceEvent::Changed(resource),
    );
}
