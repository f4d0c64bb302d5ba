//! # mesh-tonic
//!
//! The front door for tonic services: a `Mesh` builder, `xds:///` channels that any tonic client accepts, and
//! xDS-enabled servers.
//!
//! Status: a placeholder crate. It builds and belongs to the workspace, but exposes no API yet.
//!
//! Not for: protocol or balancing logic. This crate is glue over `mesh-xds-client` and `mesh-tower`.
