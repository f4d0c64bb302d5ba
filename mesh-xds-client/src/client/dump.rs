//! The client's config dump (gRFC A40): every subscribed resource with its status, version, last error and
//! update time, as a Rust value that serializes to JSON.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::collections::HashMap;

use envoy_types::pb::google::protobuf::Any;
use serde::Serialize;

use crate::protocol::{ResourceStatus, XdsState};
use crate::resource::{Resource, ResourceKind};

/// One resource in the dump.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ResourceDump {
    /// The resource type.
    pub kind: ResourceKind,
    /// The resource name.
    pub name: String,
    /// `REQUESTED`, `ACKED`, `NACKED` or `DOES_NOT_EXIST` (CSDS `ClientResourceStatus`).
    pub status: &'static str,
    /// The status as the protocol reports it.
    #[serde(skip)]
    pub resource_status: ResourceStatus,
    /// The version of the response that carried the value in use.
    pub version: Option<String>,
    /// When the value was last received or found missing, in milliseconds since the Unix epoch.
    pub last_updated_unix_ms: Option<u128>,
    /// The last error (the NACK reason while NACKED).
    pub error: Option<String>,
    /// The value in use.
    pub value: Option<Resource>,
    /// The value in use as the control plane sent it (for CSDS).
    #[serde(skip)]
    pub raw: Option<Any>,
}

/// Every subscribed resource, sorted by kind then name.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct ConfigDump {
    /// The resources.
    pub resources: Vec<ResourceDump>,
}

impl ConfigDump {
    /// The dump's entry for `(kind, name)`.
    #[must_use]
    pub fn resource(&self, kind: ResourceKind, name: &str) -> Option<&ResourceDump> {
        self.resources
            .iter()
            .find(|r| r.kind == kind && r.name == name)
    }

    /// The dump as pretty JSON.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

pub(super) fn build<G: mesh_core::rng::RandomSource>(
    state: &XdsState<Resource, G>,
    raw: &HashMap<(ResourceKind, String), Any>,
) -> ConfigDump {
    let now = Instant::now();
    let wall = SystemTime::now();
    let mut resources: Vec<ResourceDump> = state
        .resources()
        .map(|view| ResourceDump {
            kind: view.kind,
            name: view.name.to_owned(),
            status: super::status_name(view.status),
            resource_status: view.status,
            version: view.version.map(str::to_owned),
            last_updated_unix_ms: view.last_updated.and_then(|at| {
                let age = now.saturating_duration_since(at);
                wall.checked_sub(age)
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d: Duration| d.as_millis())
            }),
            error: view.last_error.map(ToString::to_string),
            value: view.value.cloned(),
            raw: view
                .value
                .and_then(|_| raw.get(&(view.kind, view.name.to_owned())).cloned()),
        })
        .collect();
    resources.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    ConfigDump { resources }
}
