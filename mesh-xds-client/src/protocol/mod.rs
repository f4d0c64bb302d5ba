//! The Aggregated Discovery Service protocol (state of the world) as a state machine without I/O.
//!
//! [`XdsState`] holds everything the xDS client protocol decides: which streams to open to which servers, what to
//! request on them, what to ACK or NACK, what the resource cache holds and what watchers are told. It does no I/O
//! and reads no clock: time (`now: Instant`) and randomness ([`mesh_core::rng::RandomSource`]) are inputs, so tests
//! drive it synchronously and deterministically. A thin async worker owns the gRPC streams: it performs each
//! [`Output`] ([`Output::Connect`], [`Output::Send`], [`Output::Disconnect`]), reports stream events and decoded
//! responses back, calls [`XdsState::tick`] at [`XdsState::next_deadline`], and forwards watcher events
//! ([`Output::Changed`], [`Output::Error`], [`Output::DoesNotExist`]).
//!
//! Rules implemented, each cited where it lives:
//! - ACK after applying; NACK with the last accepted version, the rejected nonce and every problem, while the valid
//!   resources of the same response are used (Envoy xDS protocol; gRFC A46). NACKed updates of cached resources are
//!   ambient errors, the cached value keeps serving (gRFC A88).
//! - Subscriptions are full sorted name lists per type; a new stream resends them with the last accepted versions
//!   and empty nonces (gRFC A27, A57).
//! - Streams failing before any response back off exponentially with jitter; streams that had a response reconnect
//!   at once. The cache survives both (gRFC A57).
//! - The 15 s does-not-exist timer runs only while a connected stream has been asked for a resource never received
//!   (gRFC A57).
//! - LDS/CDS responses leaving out a cached resource delete it, unless the server has `ignore_resource_deletion`
//!   (Envoy xDS protocol; gRFC A53). RDS/EDS omissions mean nothing.
//! - Fallback to the next server of an authority while the current one is unreachable and something is not cached,
//!   and back when a higher-priority server answers (gRFC A71).
//! - `xdstp://` names go to their authority's servers; authorities sharing a server share its stream (gRFC A47).
//! - The number of resources per authority, cache state and type ([`XdsState::resource_counts`]), for gRFC A78's
//!   `grpc.xds_client.resources` gauge.
//!
//! Not here: decoding (the worker decodes with [`crate::resource::decode`] and hands over [`DecodedResponse`]s),
//! watcher reference counting and fan-out, the dependency graph of gRFC A74, and the incremental (delta) protocol.
//!
//! ```no_run
//! use std::time::Instant;
//! use mesh_core::rng::FastRng;
//! use mesh_xds_client::protocol::{Output, ProtocolConfig, ServerConfig, XdsState};
//! use mesh_xds_client::resource::{Resource, ResourceKind};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ProtocolConfig::new(vec![ServerConfig::new("xds.example.com:443")]);
//! let mut xds: XdsState<Resource> = XdsState::new(config, FastRng::from_seed(1))?;
//! xds.subscribe(ResourceKind::Listener, "my-service", Instant::now());
//! while let Some(output) = xds.poll_output() {
//!     match output {
//!         Output::Connect { .. } => { /* open an ADS stream, then report stream_connected */ }
//!         Output::Send { .. } => { /* write a DiscoveryRequest */ }
//!         _ => { /* watcher events, disconnects */ }
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod backoff;
mod config;
mod counts;
mod name;
mod response;
mod state;
mod stream;
mod types;
mod view;

#[cfg(test)]
mod tests;

pub use config::{
    BackoffConfig, ConfigError, DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_JITTER,
    DEFAULT_BACKOFF_MAX, DEFAULT_BACKOFF_MULTIPLIER, DEFAULT_RESOURCE_TIMEOUT, ProtocolConfig,
    ServerConfig, ServerId,
};
pub use counts::{CacheState, ResourceCounts, ResourceGroup};
pub use name::normalize_name;
pub use state::XdsState;
pub use types::{
    DecodedResource, DecodedResponse, Output, Request, ResourceStatus, StreamId, WatchError,
};
pub use view::{ResourceView, StreamStatus, TypeView};
