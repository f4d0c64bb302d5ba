//! # mesh-xds-client
//!
//! The xDS protocol side of the mesh: gRPC's bootstrap file ([`bootstrap`]), validation of Envoy resources into
//! `mesh-core` values ([`resource`]), and the Aggregated Discovery Service protocol as a state machine without I/O
//! ([`protocol`]).
//!
//! Status: being built. The ADS worker, typed watches, the gRFC A74 dependency manager and the config dump are not
//! here yet.
//!
//! Not for: anything about requests. Request handling belongs to `mesh-tower`; this crate stops at validated
//! configuration.

pub mod bootstrap;
pub mod client;
pub mod csds;
pub mod deps;
pub mod protocol;
pub mod resource;
