//! The state-of-the-world ADS protocol of one stream, as a state machine without I/O.
//!
//! Inputs are the client's `DiscoveryRequest`s and snapshot changes; outputs are the `DiscoveryResponse`s to send.
//! The async worker in [`crate::server`] only moves messages. The rules follow the xDS transport protocol
//! (envoyproxy/envoy `api/xds_protocol.rst`, "ACK/NACK and resource type instance version", "When to send an
//! update", "Resource warming", "How the client specifies what resources to return") and gRFC A27.
//!
//! Not here: delta xDS (the server answers `Unimplemented`), TTLs, resource errors, xDS-TP names (names are opaque
//! strings: an `xdstp://` name is served if the snapshot has a resource of that exact name).

mod stream;

pub(crate) use stream::{RequestKind, StreamState};
