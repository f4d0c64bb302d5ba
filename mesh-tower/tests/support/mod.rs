//! Shared fixtures for the request-path tests: in-process HTTP/2 backends on distinct loopback addresses, snapshot
//! builders and a client helper.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

pub mod backend;
pub mod config;
pub mod pki;
pub mod tls_backend;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use mesh_tower::{MeshOptions, MeshService, ReconnectBackoff};
use tower::ServiceExt;

#[allow(unused_imports)]
pub use backend::{Backend, Reply};

/// Options for tests: seeded, fast reconnects.
pub fn options() -> MeshOptions {
    MeshOptions::default()
        .with_rng_seed(7)
        .with_reconnect_backoff(ReconnectBackoff::new(
            Duration::from_millis(20),
            Duration::from_millis(200),
        ))
}

/// What a test sees of a response.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub grpc_status: Option<u32>,
    pub grpc_message: Option<String>,
    pub backend: Option<String>,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status == 200 && self.grpc_status == Some(0)
    }
}

/// Sends a gRPC-style request (content-type application/grpc) through `service`.
pub async fn grpc(service: &MeshService, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut all = vec![("content-type", "application/grpc")];
    all.extend_from_slice(headers);
    send(service, path, &all, Bytes::new()).await
}

/// Sends a request with `headers` and `body` through `service` and reads the whole response.
pub async fn send(
    service: &MeshService,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Answer {
    let mut request = Request::post(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body)).unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let collected = body.collect().await;
    let (body, trailers) = match collected {
        Ok(collected) => {
            let trailers = collected.trailers().cloned();
            (collected.to_bytes(), trailers)
        }
        Err(_) => (Bytes::new(), None),
    };
    let header = |map: &HeaderMap, name: &str| {
        map.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let grpc_status = header(&parts.headers, "grpc-status")
        .or_else(|| trailers.as_ref().and_then(|t| header(t, "grpc-status")))
        .and_then(|s| s.parse().ok());
    let grpc_message = header(&parts.headers, "grpc-message")
        .or_else(|| trailers.as_ref().and_then(|t| header(t, "grpc-message")));
    Answer {
        status: parts.status.as_u16(),
        grpc_status,
        grpc_message,
        backend: header(&parts.headers, "x-backend"),
        body,
        trailers,
    }
}

/// Counts answers by backend name (`"-"` for none).
pub fn tally(answers: &[Answer]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for answer in answers {
        *counts
            .entry(answer.backend.clone().unwrap_or_else(|| "-".into()))
            .or_insert(0) += 1;
    }
    counts
}

/// Polls `condition` every 10 ms for up to `limit`.
pub async fn eventually(limit: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let give_up = tokio::time::Instant::now() + limit;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= give_up {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A shared counter, handy in handlers.
pub type Counter = Arc<std::sync::atomic::AtomicUsize>;
