//! # mesh-examples
//!
//! Runnable examples, built with the workspace so they cannot rot:
//!
//! - `balancing_walkthrough` (`cargo run --release -p mesh-examples --example balancing_walkthrough`): the
//!   balancing decisions of the mesh on a two-cluster topology, driven step by step (locality-aware routing, a
//!   weighted canary, failover to another cluster and back), printed as a table and checked. It exercises
//!   `mesh-core`'s route matching and endpoint picking directly; no sockets, no control plane.
//!
//! Not for: reusable code. This library part is empty on purpose; each example stands alone.
