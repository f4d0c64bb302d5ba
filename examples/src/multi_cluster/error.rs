//! Why the demo could not run.

use std::io;
use std::net::SocketAddr;

use mesh_tonic::{ChannelError, MeshError};
use mesh_xds_server::ServerError;
use mesh_xds_server::mesh::MeshError as ConfigError;

/// The demo could not run (as opposed to a check failing, which the [`DemoReport`](super::DemoReport) says).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// A replica could not bind its address.
    #[error(
        "cannot bind {address}: {source} (the demo needs 127.0.1.x and 127.0.2.x, which Linux loopback accepts; \
         on macOS add them with `sudo ifconfig lo0 alias 127.0.1.1 up` and so on)"
    )]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The control plane failed.
    #[error("control plane: {0}")]
    ControlPlane(#[from] ServerError),
    /// The demo's mesh configuration was rejected.
    #[error("mesh configuration: {0}")]
    Config(#[from] ConfigError),
    /// The client mesh could not be built.
    #[error(transparent)]
    Mesh(#[from] MeshError),
    /// The channel could not be made.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The first call failed.
    #[error("the first call failed: {0}")]
    FirstCall(tonic::Status),
    /// Something expected did not happen in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// Writing the output failed.
    #[error("output: {0}")]
    Output(#[from] io::Error),
}
