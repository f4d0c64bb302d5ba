//! Configuration made in code for targets without xDS: `dns:///HOST:PORT` and static address lists.
//!
//! Each becomes the same kind of [`ConfigSnapshot`] the xDS client publishes: a listener with inline routes, one
//! virtual host matching every authority, one route sending everything to one round-robin cluster, and that
//! cluster's endpoints in a single locality. The request path cannot tell the difference, so these targets get the
//! same connection management, reachability tracking and error reporting as `xds:` targets. Round robin (gRPC's
//! policy for xDS clusters) rather than the request path's default peak-EWMA P2C: with P2C an address that has not
//! answered yet is priced at a fixed 30 ms, so under light load a fast address that answered first keeps all the
//! traffic. Their only retries are gRPC's transparent ones (gRFC A6): an attempt that never reached a server
//! (connection refused, stream refused) is tried again on another address, up to [`TRANSPARENT_RETRIES`] times; a
//! call a server saw is never retried.
//!
//! DNS: the host is resolved with the system resolver (`tokio::net::lookup_host`) when the channel is made and
//! every [`DEFAULT_DNS_REFRESH`] after that; every address becomes an endpoint. A failed re-resolution keeps the
//! last good addresses (gRPC does the same). Not here: re-resolution when connections fail, SRV or TXT records.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::cluster::{Cluster, DiscoveryKind, LbPolicy};
use mesh_core::endpoint::{Endpoint, EndpointSet, LocalityEndpoints};
use mesh_core::listener::{HttpConnectionManager, Listener, RouteSource};
use mesh_core::locality::Locality;
use mesh_core::route::{
    RetryOn, RetryPolicy, Route, RouteAction, RouteConfig, RouteMatch, VirtualHost,
};
use mesh_core::snapshot::{ClusterConfig, ConfigSnapshot, SnapshotError};
use tokio::sync::watch;

/// How often a `dns:` target's host is resolved again.
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(30);

/// Retries of attempts that never reached a server, for targets without xDS.
pub(crate) const TRANSPARENT_RETRIES: u32 = 2;

/// How soon a `dns:` target is resolved again after a failure while it has no addresses yet.
const DNS_RETRY: Duration = Duration::from_secs(1);

/// What a target without xDS is made of.
pub(crate) struct DirectTarget<'a> {
    /// The target's name (listener, route configuration and cluster are named after it).
    pub(crate) name: &'a str,
    /// The `:authority` sent to the endpoints.
    pub(crate) authority: &'a str,
    /// How the cluster is discovered (for config dumps and logs: the endpoints are given either way).
    pub(crate) discovery: Discovery,
}

/// How a target without xDS finds its endpoints.
#[derive(Debug, Clone)]
pub(crate) enum Discovery {
    /// A fixed list.
    Static,
    /// DNS (`dns:///HOST:PORT`), shown as a LOGICAL_DNS cluster.
    Dns {
        /// The host.
        host: Arc<str>,
        /// The port.
        port: u16,
    },
}

impl DirectTarget<'_> {
    /// The snapshot sending every request to `addresses`.
    pub(crate) fn snapshot(
        &self,
        addresses: &[SocketAddr],
        version: u64,
    ) -> Result<Arc<ConfigSnapshot>, SnapshotError> {
        let endpoints = Arc::new(EndpointSet::new(
            self.name,
            vec![LocalityEndpoints::new(
                Locality::default(),
                0,
                1,
                addresses.iter().map(|a| Endpoint::new(*a)).collect(),
            )],
        ));
        let discovery = match &self.discovery {
            Discovery::Static => DiscoveryKind::Static {
                endpoints: Arc::clone(&endpoints),
            },
            Discovery::Dns { host, port } => DiscoveryKind::LogicalDns {
                host: Arc::clone(host),
                port: *port,
            },
        };
        let cluster =
            Arc::new(Cluster::new(self.name, discovery).with_lb_policy(LbPolicy::RoundRobin));
        let routes = Arc::new(RouteConfig::new(
            self.name,
            vec![
                VirtualHost::new(
                    self.name,
                    &["*"],
                    vec![Route::new(
                        RouteMatch::any(),
                        RouteAction::cluster(self.name),
                    )],
                )
                .with_retry_policy(Some(transparent_retry())),
            ],
        ));
        let listener = Arc::new(Listener::client(
            self.name,
            HttpConnectionManager::new(RouteSource::Inline(Arc::clone(&routes))),
        ));
        ConfigSnapshot::builder(self.authority, listener, routes)
            .cluster(ClusterConfig::with_endpoints(cluster, endpoints))
            .build(version)
            .map(Arc::new)
    }
}

/// gRFC A6 transparent retry: only failures that never reached a server.
fn transparent_retry() -> RetryPolicy {
    let (retry_on, _) = RetryOn::parse("connect-failure,refused-stream");
    RetryPolicy::new(retry_on, TRANSPARENT_RETRIES)
}

/// A `dns:` target's configuration, published as the host resolves.
pub(crate) type DnsUpdates = watch::Sender<Option<Result<Arc<ConfigSnapshot>, Arc<str>>>>;

/// Resolves `host:port` now and every `refresh`, publishing a snapshot whenever the addresses change, until every
/// receiver of `updates` is gone.
pub(crate) async fn resolve_dns(
    host: Arc<str>,
    port: u16,
    label: Arc<str>,
    refresh: Duration,
    updates: DnsUpdates,
) {
    let target = DirectTarget {
        name: &label,
        authority: &format!("{host}:{port}"),
        discovery: Discovery::Dns {
            host: Arc::clone(&host),
            port,
        },
    };
    let mut current: Vec<SocketAddr> = Vec::new();
    let mut version: u64 = 0;
    loop {
        let resolved = tokio::net::lookup_host((&*host, port))
            .await
            .map(|addresses| {
                let mut addresses: Vec<SocketAddr> = addresses.collect();
                addresses.sort_unstable();
                addresses.dedup();
                addresses
            });
        let wait = match resolved {
            Ok(addresses) if addresses.is_empty() => failed(
                &updates,
                &current,
                &format!("{host} resolved to no addresses"),
            ),
            Ok(addresses) => {
                if addresses != current {
                    version += 1;
                    match target.snapshot(&addresses, version) {
                        Ok(snapshot) => {
                            tracing::debug!(target = %label, ?addresses, "DNS resolved");
                            updates.send_replace(Some(Ok(snapshot)));
                            current = addresses;
                        }
                        Err(error) => {
                            updates.send_replace(Some(Err(error.to_string().into())));
                        }
                    }
                }
                refresh
            }
            Err(error) => failed(&updates, &current, &format!("resolving {host}: {error}")),
        };
        tokio::select! {
            () = updates.closed() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if updates.is_closed() {
            return;
        }
    }
}

/// Reports a resolution failure unless good addresses are in use; returns how long to wait before trying again.
fn failed(updates: &DnsUpdates, current: &[SocketAddr], reason: &str) -> Duration {
    if current.is_empty() {
        updates.send_replace(Some(Err(reason.into())));
        DNS_RETRY
    } else {
        tracing::debug!(
            reason,
            "DNS re-resolution failed; keeping the last addresses"
        );
        DEFAULT_DNS_REFRESH
    }
}

#[cfg(test)]
mod tests {
    use mesh_core::snapshot::ClusterChildren;

    use super::*;

    #[test]
    fn a_static_snapshot_routes_everything_to_its_addresses() {
        let target = DirectTarget {
            name: "static",
            authority: "127.0.0.1:1",
            discovery: Discovery::Static,
        };
        let addresses: Vec<SocketAddr> = vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.2:1".parse().unwrap(),
        ];
        let snapshot = target.snapshot(&addresses, 3).unwrap();
        assert_eq!(snapshot.version(), 3);
        assert_eq!(snapshot.authority(), "127.0.0.1:1");
        let Some(Ok(config)) = snapshot.cluster("static") else {
            panic!("the cluster is missing");
        };
        let ClusterChildren::Endpoints {
            endpoints: Some(endpoints),
            ..
        } = &config.children
        else {
            panic!("the cluster has no endpoints");
        };
        assert_eq!(endpoints.endpoint_count(), 2);
    }

    #[tokio::test]
    async fn dns_resolves_and_stops_when_nobody_listens() {
        let (updates, mut rx) = watch::channel(None);
        let task = tokio::spawn(resolve_dns(
            "localhost".into(),
            8080,
            "dns:///localhost:8080".into(),
            DEFAULT_DNS_REFRESH,
            updates,
        ));
        let update = rx.wait_for(Option::is_some).await.unwrap().clone();
        let snapshot = update.unwrap().unwrap();
        assert_eq!(snapshot.authority(), "localhost:8080");
        drop(rx);
        task.await.unwrap();
    }
}
