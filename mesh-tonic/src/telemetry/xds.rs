//! [`OtelXdsMetrics`]: the xDS client's metrics (gRFC A78) as OpenTelemetry counters.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use mesh_xds_client::client::XdsClientMetrics;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter, ObservableGauge};

/// The xDS client's [`XdsClientMetrics`] over an OpenTelemetry [`Meter`], named as gRFC A78 names them:
///
/// | instrument | unit | labels |
/// | --- | --- | --- |
/// | `grpc.xds_client.resource_updates_valid` | `{resource}` | `grpc.xds.server`, `grpc.xds.resource_type` |
/// | `grpc.xds_client.resource_updates_invalid` | `{resource}` | `grpc.xds.server`, `grpc.xds.resource_type` |
/// | `grpc.xds_client.server_failure` | `{failure}` | `grpc.xds.server` |
/// | `grpc.xds_client.connected` (gauge, 0 or 1) | `{bool}` | `grpc.xds.server` |
///
/// A78 also labels these with `grpc.target`, the channel the xDS client serves; the mesh has one xDS client for
/// all its channels, so the label is left out. Not here yet: the `grpc.xds_client.resources` gauge.
#[derive(Debug, Clone)]
pub struct OtelXdsMetrics {
    valid: Counter<u64>,
    invalid: Counter<u64>,
    server_failure: Counter<u64>,
    /// Connectivity by server, read when metrics are collected.
    connected: Arc<Mutex<BTreeMap<String, bool>>>,
    _connected_gauge: ObservableGauge<i64>,
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
        Self {
            connected,
            _connected_gauge: connected_gauge,
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
}
