//! [`OtelXdsMetrics`]: the xDS client's metrics (gRFC A78) as OpenTelemetry counters and gauges.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use mesh_xds_client::client::XdsClientMetrics;
use mesh_xds_client::protocol::ResourceCounts;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter, ObservableGauge};

/// A78's `grpc.xds.authority` for old-style (non-`xdstp://`) resource names.
const OLD_STYLE_AUTHORITY: &str = "#old";

/// Resource counts by (`grpc.xds.authority`, `grpc.xds.cache_state`, `grpc.xds.resource_type`).
type Counts = BTreeMap<(String, &'static str, &'static str), u64>;

/// The xDS client's [`XdsClientMetrics`] over an OpenTelemetry [`Meter`], named as gRFC A78 names them:
///
/// | instrument | unit | labels |
/// | --- | --- | --- |
/// | `grpc.xds_client.resource_updates_valid` | `{resource}` | `grpc.xds.server`, `grpc.xds.resource_type` |
/// | `grpc.xds_client.resource_updates_invalid` | `{resource}` | `grpc.xds.server`, `grpc.xds.resource_type` |
/// | `grpc.xds_client.server_failure` | `{failure}` | `grpc.xds.server` |
/// | `grpc.xds_client.connected` (gauge, 0 or 1) | `{bool}` | `grpc.xds.server` |
/// | `grpc.xds_client.resources` (gauge) | `{resource}` | `grpc.xds.authority`, `grpc.xds.cache_state`, `grpc.xds.resource_type` |
///
/// `grpc.xds.resource_type` is the type URL without `type.googleapis.com/` (e.g.
/// `envoy.config.listener.v3.Listener`). `grpc.xds_client.resources` counts the subscribed resources by
/// `grpc.xds.authority` (`#old` for old-style names), `grpc.xds.cache_state` (`requested`, `does_not_exist`,
/// `acked`, `nacked`, `nacked_but_cached`) and type; a combination once seen stays at 0 when it has no resource left,
/// so a cleared NACK shows as a drop to 0 rather than a series that stops. Names that cannot be routed to any server
/// (an authority the bootstrap does not list, a malformed `xdstp://` name) have no A78 cache state and are not counted.
///
/// A78 also labels all of these with `grpc.target`, the channel the xDS client serves; the mesh has one xDS client
/// for all its channels, so the label is left out.
#[derive(Debug, Clone)]
pub struct OtelXdsMetrics {
    valid: Counter<u64>,
    invalid: Counter<u64>,
    server_failure: Counter<u64>,
    /// Connectivity by server, read when metrics are collected.
    connected: Arc<Mutex<BTreeMap<String, bool>>>,
    _connected_gauge: ObservableGauge<i64>,
    /// The latest resource counts, read when metrics are collected.
    resources: Arc<Mutex<Counts>>,
    _resources_gauge: ObservableGauge<i64>,
}

impl OtelXdsMetrics {
    /// Counters created from `meter`.
    #[must_use]
    pub fn new(meter: &Meter) -> Self {
        let connected: Arc<Mutex<BTreeMap<String, bool>>> = Arc::default();
        let observed = Arc::clone(&connected);
        let connected_gauge = meter
            .i64_observable_gauge("grpc.xds_client.connected")
            .with_unit("{bool}")
            .with_description(
                "Whether the xDS client currently has a working ADS stream to the xDS server.",
            )
            .with_callback(move |observer| {
                let servers = observed.lock().unwrap_or_else(PoisonError::into_inner);
                for (server, up) in servers.iter() {
                    observer.observe(
                        i64::from(*up),
                        &[KeyValue::new("grpc.xds.server", server.clone())],
                    );
                }
            })
            .build();
        let resources: Arc<Mutex<Counts>> = Arc::default();
        let observed = Arc::clone(&resources);
        let resources_gauge = meter
            .i64_observable_gauge("grpc.xds_client.resources")
            .with_unit("{resource}")
            .with_description("Number of xDS resources.")
            .with_callback(move |observer| {
                let counts = observed.lock().unwrap_or_else(PoisonError::into_inner);
                for ((authority, cache_state, resource_type), count) in counts.iter() {
                    observer.observe(
                        i64::try_from(*count).unwrap_or(i64::MAX),
                        &[
                            KeyValue::new("grpc.xds.authority", authority.clone()),
                            KeyValue::new("grpc.xds.cache_state", *cache_state),
                            KeyValue::new("grpc.xds.resource_type", *resource_type),
                        ],
                    );
                }
            })
            .build();
        Self {
            connected,
            _connected_gauge: connected_gauge,
            resources,
            _resources_gauge: resources_gauge,
            valid: meter
                .u64_counter("grpc.xds_client.resource_updates_valid")
                .with_unit("{resource}")
                .with_description(
                    "A counter of resources received that were considered valid, changed or not.",
                )
                .build(),
            invalid: meter
                .u64_counter("grpc.xds_client.resource_updates_invalid")
                .with_unit("{resource}")
                .with_description("A counter of resources received that were considered invalid.")
                .build(),
            server_failure: meter
                .u64_counter("grpc.xds_client.server_failure")
                .with_unit("{failure}")
                .with_description(
                    "A counter of xDS servers going from healthy to unhealthy (unreachable, or the ADS stream \
                     failed before a response; gRFC A57).",
                )
                .build(),
        }
    }
}

impl XdsClientMetrics for OtelXdsMetrics {
    fn resource_updates(&self, server: &str, resource_type: &str, valid: u64, invalid: u64) {
        let labels = [
            KeyValue::new("grpc.xds.server", server.to_owned()),
            KeyValue::new("grpc.xds.resource_type", resource_type.to_owned()),
        ];
        if valid > 0 {
            self.valid.add(valid, &labels);
        }
        if invalid > 0 {
            self.invalid.add(invalid, &labels);
        }
    }

    fn server_failure(&self, server: &str) {
        self.server_failure
            .add(1, &[KeyValue::new("grpc.xds.server", server.to_owned())]);
    }

    fn server_connected(&self, server: &str, connected: bool) {
        self.connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(server.to_owned(), connected);
    }

    fn resource_counts(&self, counts: &ResourceCounts) {
        let mut latest = self
            .resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A group the new counts leave out has no resource now.
        for count in latest.values_mut() {
            *count = 0;
        }
        for (group, count) in counts.iter() {
            let authority = group
                .authority
                .as_deref()
                .unwrap_or(OLD_STYLE_AUTHORITY)
                .to_owned();
            let key = (
                authority,
                group.cache_state.as_str(),
                group.kind.xdstp_type(),
            );
            latest.insert(key, count);
        }
    }
}
