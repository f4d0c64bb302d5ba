//! # mesh-xds-client
//!
//! The xDS protocol side of the mesh: gRPC's bootstrap file ([`bootstrap`]), validation of Envoy resources into
//! `mesh-core` values ([`resource`]), the Aggregated Discovery Service protocol as a state machine without I/O
//! ([`protocol`]), the gRFC A74 dependency manager ([`deps`]), the client that runs them over tonic with typed and
//! per-target watches and a config dump ([`client`]), the CSDS service ([`csds`]), and load reporting over LRS for
//! clusters whose `lrs_server` is `self` ([`lrs`], gRFC A27).
//!
//! TLS to the control plane (`channel_creds` type `tls`, gRFC A65) goes through a [`client::Connector`] that the
//! layer owning TLS registers per server (mesh-tonic does, with mesh-tower's rustls configs); without one such a
//! server is refused with a clear error.
//!
//! Not yet: delta xDS; LRS per endpoint and to servers other than `self`.
//!
//! Not for: anything about requests. Request handling belongs to `mesh-tower`; this crate stops at validated
//! configuration.

pub mod bootstrap;
pub mod client;
pub mod csds;
pub mod deps;
pub mod lrs;
pub mod protocol;
pub mod resource;
