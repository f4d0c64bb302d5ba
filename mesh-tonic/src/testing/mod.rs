//! A demo and test service: gRPC's "hello world" `helloworld.Greeter`, written by hand (no `protoc`), with a
//! tonic client and server, and [`GreeterBackend`] to run a replica on a socket and stop it.
//!
//! Each replica has a name and answers with it in the `hostname` response header (as gRPC's xDS interop server
//! does), so callers can see where their calls went. The demo (`mesh-examples`) and this crate's tests use it.
//!
//! Not for: production services. Use `tonic-prost-build` for real protos.

mod backend;
mod greeter;

pub use backend::GreeterBackend;
pub use greeter::{
    GreeterClient, GreeterServer, HelloReply, HelloRequest, REPLICA_HEADER, SAY_HELLO_PATH,
    SERVICE_NAME, replica_of,
};
