//! # mesh-core
//!
//! The vocabulary of the mesh: the configuration model that xDS resources are translated into and that the request
//! path reads, service identities, and the pure algorithms that run on that model.
//!
//! What it solves:
//! - A plain, typed model of listeners, route configurations, clusters and endpoint sets ([`route`], [`cluster`],
//!   [`endpoint`], [`listener`], [`tls`], [`rbac`]) and the connection facts a server passes to authorization
//!   ([`peer`]), gathered into a versioned [`snapshot::ConfigSnapshot`] that the
//!   request path reads with one atomic load (gRFC A74: a snapshot holds a whole, consistent dependency graph).
//! - SPIFFE identities ([`identity::SpiffeId`], [`identity::TrustDomain`]) validated per the SPIFFE ID specification.
//! - Algorithms that need no I/O: virtual-host selection and route matching ([`route`]), weighted choice
//!   ([`weighted`]), priority and locality picking ([`picker`]), consistent hashing ([`ring_hash`]), all driven by an
//!   injectable [`rng::RandomSource`] so tests are deterministic; authorization decisions over RBAC rules and chains
//!   of RBAC filters (gRFC A41, [`rbac`]).
//!
//! What it is not: it knows nothing of Envoy protos, tonic, sockets or time. Translating xDS into this model is the
//! job of `mesh-xds-client`; running requests over it is the job of `mesh-tower`.

pub mod cluster;
pub mod endpoint;
pub mod fraction;
pub mod identity;
pub mod listener;
pub mod load;
pub mod locality;
pub mod matcher;
pub mod peer;
pub mod picker;
pub mod rbac;
pub mod ring_hash;
pub mod rng;
pub mod route;
pub mod snapshot;
pub mod tls;
pub mod weighted;

mod macros;
