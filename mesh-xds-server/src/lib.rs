//! # mesh-xds-server
//!
//! A small xDS v3 management server for local development, tests and demos. It serves Listeners,
//! RouteConfigurations, Clusters and ClusterLoadAssignments over state-of-the-world ADS to this library and to
//! other xDS clients (gRPC C-core, grpc-js, grpc-go, Envoy).
//!
//! - [`Snapshot`] and [`SnapshotCache`]: versioned resources per node id, with a default for other nodes.
//! - [`XdsServer`]: the ADS server (SotW; explicit names and wildcards; ACK/NACK tracking; pushes on change),
//!   with per-client state in [`XdsServer::clients`], and the LRS server (gRFC A27): it asks every client for all
//!   clusters' load at [`XdsServerBuilder::load_reporting_interval`] and records the reports in
//!   [`XdsServer::load_reports`] (and logs each); clusters with `load_reporting: true` tell clients to report.
//! - [`mesh`]: the YAML mesh file (documented in the crate's `README.md`) and the same model as Rust values,
//!   translated by [`translate`] into the resources real clients accept; reloaded when the file changes.
//! - The `mesh-xds-server` binary: `mesh-xds-server --config mesh.yaml --listen 127.0.0.1:18000`.
//!
//! Not for production: run istiod, Cloud Service Mesh or a go-control-plane server there. Not implemented: delta
//! xDS (answered with `UNIMPLEMENTED`), CSDS, TLS on the ADS connection itself; the LRS server records reports but
//! does not act on them (no global load balancing).

mod cache;
mod clients;
mod loads;
pub mod mesh;
mod protocol;
mod reload;
mod server;
mod snapshot;
pub mod translate;

pub use cache::SnapshotCache;
pub use clients::{ClientInfo, ClientRegistry, Nack, TypeStatus};
pub use loads::{ClusterLoad, LoadReports, LocalityLoad, ReportedLocality};
pub use reload::{DEFAULT_RELOAD_DEBOUNCE, ReloadOutcome, ReloadStatus};
pub use server::{
    DEFAULT_LOAD_REPORTING_INTERVAL, DEFAULT_SHUTDOWN_GRACE, ServerError, XdsServer,
    XdsServerBuilder,
};
pub use snapshot::{Resources, Snapshot, SnapshotBuilder, type_url};

// Compiles the README's Rust examples as doctests, so the documented API cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
