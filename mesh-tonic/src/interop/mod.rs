//! gRPC's xDS interop test services (../shared/XDS-FEATURES.md, "The interop contract"), written by hand with
//! gRPC's names and field numbers (no `protoc`): the `grpc.testing` messages, `grpc.testing.TestService` and
//! `grpc.testing.XdsUpdateHealthService` servers and clients, and the `rpc-behavior` header.
//!
//! The `xds-interop-server` binary serves them, with `grpc.health.v1.Health` from `tonic-health`; [`client`] is the
//! interop client behind the `xds-interop-client` binary.

pub mod behavior;
pub mod client;
pub mod messages;
mod services;

pub use services::{
    HOSTNAME_HEADER, MAX_RESPONSE_SIZE, TEST_SERVICE, TestServiceClient, TestServiceServer,
    XDS_UPDATE_HEALTH_SERVICE, XdsUpdateHealthClient, XdsUpdateHealthServer,
};
