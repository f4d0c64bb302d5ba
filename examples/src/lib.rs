//! # mesh-examples
//!
//! Runnable examples, built with the workspace so they cannot rot:
//!
//! - `multi_cluster` (`cargo run --release -p mesh-examples --example multi_cluster`): the whole mesh on loopback
//!   (control plane, two regions of greeter replicas, a client sending steady traffic through `xds:///greeter`),
//!   told in four checked steps: locality-aware balancing, a canary, a region failing and returning, a control-plane
//!   restart. The logic lives in [`multi_cluster`] so that `tests/multi_cluster.rs` runs the same checks.
//! - `balancing_walkthrough` (`cargo run --release -p mesh-examples --example balancing_walkthrough`): the
//!   balancing decisions of the mesh on the same topology, driven step by step through `mesh-core`'s route matching
//!   and endpoint picking directly; no sockets, no control plane.
//!
//! Not for: reusable code. The library holds what an example shares with its test, nothing more.

pub mod multi_cluster;
