//! Load reports (gRFC A27 LRS) from the request path: what counts as a successful attempt.
//!
//! [`MeshOptions::with_load_store`](crate::options::MeshOptions::with_load_store) counts attempts per locality of
//! each cluster with an `lrs_server` into a `mesh-core` load store, through counters resolved when the cluster's
//! endpoints are set: an attempt costs two atomic increments. An attempt is issued (and in progress) once it has an
//! endpoint and has passed the circuit breaker; it finishes successful, for gRPC, when its status is OK (as gRPC
//! counts), for other HTTP requests when the status is below 500 (as Envoy counts); transport failures and timeouts
//! are errors, and so is an attempt whose call was dropped by its caller or cut by its deadline while the attempt
//! was on the wire (it ends then, so that it does not stay in progress). Requests dropped by a drop overload are
//! counted per category. The reporting itself (the LRS stream) belongs to mesh-xds-client.

use crate::metrics::Outcome;
use crate::status::Code;

/// Whether an attempt that ended with `outcome` (`None`: no response) counts as successful.
pub(crate) fn succeeded(outcome: Option<Outcome>) -> bool {
    outcome.is_some_and(|o| match o.grpc_status {
        Some(code) => code == Code::Ok,
        None => o.http_status < 500,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_follows_grpc_status_then_http_status() {
        assert!(succeeded(Some(Outcome::new(200, Some(Code::Ok)))));
        assert!(!succeeded(Some(Outcome::new(200, Some(Code::Unavailable)))));
        assert!(succeeded(Some(Outcome::new(404, None))));
        assert!(!succeeded(Some(Outcome::new(503, None))));
        assert!(!succeeded(None));
    }
}
