//! DNS resolution for LOGICAL_DNS clusters (gRFC A27), re-resolved when the answer's TTL runs out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Re-resolution never happens more often than this, whatever the TTL (a zero TTL must not spin).
pub(super) const MIN_REFRESH: Duration = Duration::from_secs(1);
/// Nor less often than this, so address changes are noticed even with long TTLs.
pub(super) const MAX_REFRESH: Duration = Duration::from_secs(300);
/// After a failure, try again this soon.
pub(super) const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Spawns a task resolving `host` until aborted, reporting each result through `report`.
pub(super) fn spawn(
    resolver: Arc<TokioResolver>,
    host: Arc<str>,
    port: u16,
    report: impl Fn(Result<Vec<SocketAddr>, String>) -> bool + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            // A literal IP needs no resolver (and never changes).
            if let Ok(ip) = host.parse::<std::net::IpAddr>() {
                report(Ok(vec![SocketAddr::new(ip, port)]));
                return;
            }
            let (result, wait) = match resolver.lookup_ip(&*host).await {
                Ok(lookup) => {
                    let addresses: Vec<SocketAddr> =
                        lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect();
                    let ttl = lookup
                        .valid_until()
                        .saturating_duration_since(std::time::Instant::now());
                    (Ok(addresses), ttl.clamp(MIN_REFRESH, MAX_REFRESH))
                }
                Err(e) => (Err(e.to_string()), RETRY_AFTER_FAILURE),
            };
            if !report(result) {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    })
}

/// A channel-backed reporter (the worker's event queue).
pub(super) fn reporter<E: Send + 'static>(
    events: mpsc::UnboundedSender<E>,
    make: impl Fn(Result<Vec<SocketAddr>, String>) -> E + Send + 'static,
) -> impl Fn(Result<Vec<SocketAddr>, String>) -> bool + Send + 'static {
    move |result| events.send(make(result)).is_ok()
}
