//! # mesh-xds-server
//!
//! A small xDS v3 management server for local development, tests and demos: it will serve listeners, routes,
//! clusters and endpoints over ADS to this library and to other xDS clients (gRPC, Envoy).
//!
//! Status: a placeholder crate. It builds and belongs to the workspace, but serves nothing yet.
//!
//! Not for: production. Run istiod, Cloud Service Mesh or a go-control-plane server there.
