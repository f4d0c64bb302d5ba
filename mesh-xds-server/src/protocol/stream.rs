//! Per-stream SotW state: subscriptions, last sent version and nonce per type, ACK/NACK bookkeeping.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::ControlPlane;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;

use crate::clients::{Nack, TypeStatus};
use crate::snapshot::{Resources, Snapshot, type_url};

/// Reported in every response's `control_plane.identifier`.
pub(crate) const CONTROL_PLANE_ID: &str = "mesh-xds-server";

/// A request the protocol cannot serve; the stream ends with `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProtocolError {
    /// xDS protocol: on an aggregated stream, every request names its type.
    #[error("DiscoveryRequest.type_url is required on an ADS stream")]
    MissingTypeUrl,
}

/// What a request was, once classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestKind {
    /// No nonce (a first request, or the first on a new stream), or a nonce from no response of this stream.
    Initial,
    /// Accepted the response with this version.
    Ack { version: String },
    /// Rejected a response.
    Nack(Nack),
    /// Carried the nonce of an older response: ignored, as the xDS protocol requires, because a newer response
    /// is already in flight and the client will answer that one.
    Stale { nonce: String },
}

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Handled {
    pub(crate) kind: RequestKind,
    pub(crate) response: Option<DiscoveryResponse>,
}

#[derive(Debug, Default)]
struct TypeState {
    status: TypeStatus,
    /// Whether a request for the type has been processed on this stream.
    requested: bool,
    /// xDS protocol: an empty name list on the first LDS/CDS request is a legacy wildcard subscription, which lasts
    /// until the client names resources.
    legacy_wildcard: bool,
    /// The resources of the last response, to decide whether a change is worth a push.
    sent: Option<BTreeMap<String, Any>>,
}

/// The state of one ADS stream.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    node_id: Option<String>,
    types: BTreeMap<String, TypeState>,
    responses_sent: u64,
}

impl StreamState {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The node id, once a request carried a non-empty one.
    pub(crate) fn node_id(&self) -> Option<&str> {
        self.node_id.as_deref()
    }

    /// Takes the node id from `request` if none is known yet (xDS protocol: only the first request of a stream
    /// needs to carry the node). Returns whether it changed.
    pub(crate) fn observe_node(&mut self, request: &DiscoveryRequest) -> bool {
        if self.node_id.is_some() {
            return false;
        }
        match request.node.as_ref().map(|node| node.id.as_str()) {
            Some(id) if !id.is_empty() => {
                self.node_id = Some(id.to_owned());
                true
            }
            _ => false,
        }
    }

    /// The per-type state, for the client registry.
    pub(crate) fn type_statuses(&self) -> BTreeMap<String, TypeStatus> {
        self.types
            .iter()
            .map(|(type_url, state)| (type_url.clone(), state.status.clone()))
            .collect()
    }

    /// Handles one request against the snapshot of the stream's node.
    pub(crate) fn handle_request(
        &mut self,
        request: &DiscoveryRequest,
        snapshot: &Snapshot,
    ) -> Result<Handled, ProtocolError> {
        if request.type_url.is_empty() {
            return Err(ProtocolError::MissingTypeUrl);
        }
        let state = self.types.entry(request.type_url.clone()).or_default();
        let kind = classify(state, request);
        match &kind {
            RequestKind::Stale { .. } => {
                state.status.stale_requests += 1;
                return Ok(Handled {
                    kind,
                    response: None,
                });
            }
            RequestKind::Ack { version } => {
                state.status.acked_version = Some(version.clone());
                state.status.ack_count += 1;
            }
            RequestKind::Nack(nack) => {
                state.status.last_nack = Some(nack.clone());
                state.status.nack_count += 1;
            }
            RequestKind::Initial => {}
        }
        update_subscription(state, &request.type_url, &request.resource_names);
        let response = self.respond_if_changed(&request.type_url, snapshot);
        Ok(Handled { kind, response })
    }

    /// The responses a new snapshot calls for: one per subscribed type whose selected resources changed.
    pub(crate) fn handle_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DiscoveryResponse> {
        let type_urls: Vec<String> = self
            .types
            .iter()
            .filter(|(_, state)| state.requested)
            .map(|(type_url, _)| type_url.clone())
            .collect();
        type_urls
            .iter()
            .filter_map(|type_url| self.respond_if_changed(type_url, snapshot))
            .collect()
    }

    /// xDS protocol, "When to send an update": respond when the resources the client should hold differ from what
    /// this stream last sent. A version bump that leaves the client's resources unchanged sends nothing, and a
    /// NACKed response is not resent until something changes.
    fn respond_if_changed(
        &mut self,
        type_url: &str,
        snapshot: &Snapshot,
    ) -> Option<DiscoveryResponse> {
        let state = self.types.get_mut(type_url)?;
        let resources = snapshot.resources(type_url);
        let selected = select(resources, state);
        let should_send = match &state.sent {
            // Nothing sent yet: a wildcard subscriber learns the (possibly empty) full set; a client naming
            // resources that do not exist gets no response and relies on its does-not-exist timer (gRFC A27),
            // as go-control-plane does in ADS mode.
            None => state.status.wildcard || state.legacy_wildcard || !selected.is_empty(),
            Some(sent) => *sent != selected,
        };
        if !should_send {
            return None;
        }
        self.responses_sent += 1;
        let nonce = self.responses_sent.to_string();
        let version = resources.map_or("", Resources::version).to_owned();
        let response = DiscoveryResponse {
            version_info: version.clone(),
            resources: selected.values().cloned().collect(),
            type_url: type_url.to_owned(),
            nonce: nonce.clone(),
            control_plane: Some(ControlPlane {
                identifier: CONTROL_PLANE_ID.to_owned(),
            }),
            ..Default::default()
        };
        state.status.sent_version = Some(version);
        state.status.sent_nonce = Some(nonce);
        state.status.sent_resources = selected.keys().cloned().collect();
        state.sent = Some(selected);
        Some(response)
    }
}

fn classify(state: &TypeState, request: &DiscoveryRequest) -> RequestKind {
    let nonce = request.response_nonce.as_str();
    let Some(sent_nonce) = state.status.sent_nonce.as_deref() else {
        // A nonce from no response of this stream (e.g. carried over from an older stream) cannot be stale here;
        // treat the request as initial rather than leave the client waiting.
        return RequestKind::Initial;
    };
    if nonce.is_empty() {
        return RequestKind::Initial;
    }
    if nonce != sent_nonce {
        return RequestKind::Stale {
            nonce: nonce.to_owned(),
        };
    }
    match &request.error_detail {
        Some(error) => RequestKind::Nack(Nack {
            rejected_version: state.status.sent_version.clone().unwrap_or_default(),
            nonce: nonce.to_owned(),
            accepted_version: request.version_info.clone(),
            code: error.code,
            message: error.message.clone(),
        }),
        None => RequestKind::Ack {
            version: request.version_info.clone(),
        },
    }
}

/// xDS protocol, "How the client specifies what resources to return": the request carries the full list of names
/// the client wants; `*` subscribes to everything; an empty list on the first LDS/CDS request is the legacy
/// wildcard, kept while later requests stay empty and dropped once the client names resources.
fn update_subscription(state: &mut TypeState, type_url: &str, names: &[String]) {
    let mut names: BTreeSet<String> = names.iter().cloned().collect();
    let explicit_wildcard = names.remove("*");
    if !state.requested {
        state.requested = true;
        state.legacy_wildcard =
            names.is_empty() && !explicit_wildcard && type_url::supports_legacy_wildcard(type_url);
    } else if state.legacy_wildcard && (explicit_wildcard || !names.is_empty()) {
        state.legacy_wildcard = false;
    }
    state.status.wildcard = state.legacy_wildcard || explicit_wildcard;
    state.status.subscribed = names;
}

fn select(resources: Option<&Resources>, state: &TypeState) -> BTreeMap<String, Any> {
    let Some(resources) = resources else {
        return BTreeMap::new();
    };
    if state.status.wildcard {
        return resources
            .iter()
            .map(|(name, any)| (name.to_owned(), any.clone()))
            .collect();
    }
    state
        .status
        .subscribed
        .iter()
        .filter_map(|name| resources.get(name).map(|any| (name.clone(), any.clone())))
        .collect()
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
