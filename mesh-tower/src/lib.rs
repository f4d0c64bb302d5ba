//! # mesh-tower
//!
//! The request path of the mesh as tower layers over `http::Request`: routing, locality-aware balancing with
//! failover, retries, circuit breaking and outlier detection, reading `mesh-core` config snapshots with one atomic
//! load per request.
//!
//! Status: a placeholder crate. It builds and belongs to the workspace, but contains no middleware yet; the
//! algorithms it will run (route matching, weighted and priority picking, ring hash) already live in `mesh-core`.
//!
//! Not for: xDS. This crate never sees Envoy protos; it takes snapshots from any source.
