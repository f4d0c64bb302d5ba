//! Wait-for-ready: what a channel's request path sees of its target's configuration while the first one is on its
//! way.
//!
//! A channel is usually made when its program starts, often before the control plane has answered or while it is
//! still starting. gRPC queues a wait-for-ready call until the channel is ready or the call's deadline passes; the
//! mesh does the same for the whole channel at start: until the target's first configuration arrives, or
//! `wait_for_ready` has passed since the channel was made, errors from the source (the xDS server is unreachable,
//! a resource does not exist yet, DNS failed) are held back and calls wait. When the period ends without a
//! configuration, the latest error (or "no configuration within ...") is published, and calls fail at once with
//! UNAVAILABLE and that reason, until a configuration arrives. After the first configuration, updates and errors
//! pass through unchanged: the xDS client already keeps a cached value serving through errors that do not remove
//! it (gRFC A88).
//!
//! The gate runs as a task between the source (an xDS [`TargetWatcher`](mesh_xds_client::client::TargetWatcher) or
//! a DNS resolver) and the [`MeshService`](mesh_tower::MeshService), and ends when the source ends or when nothing
//! receives its updates any more: the service, every channel on it and every call still waiting are gone. A call
//! that outlives its channel (`channel.oneshot(request)`) so keeps its configuration coming.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::snapshot::ConfigSnapshot;
use mesh_tower::ConfigUpdate;
use tokio::sync::watch;
use tokio::time::Instant;

/// What a source publishes: nothing yet, a snapshot, or why there is none.
pub(crate) type SourceUpdate<E> = Option<Result<Arc<ConfigSnapshot>, E>>;

/// Forwards `upstream` to `downstream` with the wait-for-ready period `grace`; see the [module docs](self). Errors
/// are published as `"{label}: {error}"`. `keep` is held for as long as the gate runs (the xDS watch, whose drop
/// unsubscribes).
pub(crate) async fn run<E, K>(
    mut upstream: watch::Receiver<SourceUpdate<E>>,
    downstream: watch::Sender<ConfigUpdate>,
    label: Arc<str>,
    grace: Duration,
    keep: K,
) where
    E: fmt::Display + Clone,
{
    let _keep = keep;
    let reason = |error: &E| -> Arc<str> { format!("{label}: {error}").into() };
    let deadline = Instant::now() + grace;
    let mut settled = false;
    loop {
        let update = upstream.borrow_and_update().clone();
        match update {
            None => {}
            Some(Ok(snapshot)) => {
                settled = true;
                downstream.send_replace(Some(Ok(snapshot)));
            }
            Some(Err(error)) if settled => {
                downstream.send_replace(Some(Err(reason(&error))));
            }
            // Held back during the wait-for-ready period.
            Some(Err(_)) => {}
        }
        if !settled {
            tokio::select! {
                () = downstream.closed() => return,
                changed = upstream.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
                () = tokio::time::sleep_until(deadline) => {
                    settled = true;
                    let failure = match &*upstream.borrow_and_update() {
                        Some(Err(error)) => reason(error),
                        Some(Ok(snapshot)) => {
                            downstream.send_replace(Some(Ok(Arc::clone(snapshot))));
                            continue;
                        }
                        None => format!("{label}: no configuration within {grace:?} (wait-for-ready)").into(),
                    };
                    tracing::debug!(target = %label, reason = %failure, "no configuration after the wait-for-ready period");
                    downstream.send_replace(Some(Err(failure)));
                }
            }
        }
        tokio::select! {
            () = downstream.closed() => return,
            changed = upstream.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use mesh_core::listener::{HttpConnectionManager, Listener, RouteSource};
    use mesh_core::route::{RouteConfig, VirtualHost};

    use super::*;

    fn snapshot(version: u64) -> Arc<ConfigSnapshot> {
        let routes = Arc::new(RouteConfig::new(
            "r",
            vec![VirtualHost::new("v", &["*"], Vec::new())],
        ));
        let listener = Arc::new(Listener::client(
            "l",
            HttpConnectionManager::new(RouteSource::Inline(Arc::clone(&routes))),
        ));
        Arc::new(
            ConfigSnapshot::builder("x", listener, routes)
                .build(version)
                .unwrap(),
        )
    }

    type Up = watch::Sender<SourceUpdate<Arc<str>>>;

    fn start(grace: Duration) -> (Up, watch::Receiver<ConfigUpdate>) {
        let (up_tx, up_rx) = watch::channel(None);
        let (down_tx, down_rx) = watch::channel(None);
        tokio::spawn(run(up_rx, down_tx, "xds:///t".into(), grace, ()));
        (up_tx, down_rx)
    }

    fn error_of(update: &ConfigUpdate) -> Option<String> {
        match update {
            Some(Err(reason)) => Some(reason.to_string()),
            _ => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_held_until_the_grace_period_ends() {
        let started = Instant::now();
        let (up, mut down) = start(Duration::from_secs(10));
        up.send_replace(Some(Err("server unreachable".into())));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(down.borrow().is_none(), "held during the grace period");
        let update = down.wait_for(Option::is_some).await.unwrap().clone();
        assert_eq!(
            error_of(&update).as_deref(),
            Some("xds:///t: server unreachable")
        );
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_config_in_time_passes_and_later_errors_pass_too() {
        let (up, mut down) = start(Duration::from_secs(10));
        up.send_replace(Some(Err("not yet".into())));
        tokio::time::sleep(Duration::from_secs(1)).await;
        up.send_replace(Some(Ok(snapshot(1))));
        let update = down.wait_for(Option::is_some).await.unwrap().clone();
        assert!(matches!(update, Some(Ok(ref s)) if s.version() == 1));
        up.send_replace(Some(Err("listener deleted".into())));
        down.changed().await.unwrap();
        assert_eq!(
            error_of(&down.borrow()).as_deref(),
            Some("xds:///t: listener deleted")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn silence_becomes_an_error_after_the_grace_period_and_a_late_config_still_applies() {
        let (up, mut down) = start(Duration::from_secs(2));
        let update = down.wait_for(Option::is_some).await.unwrap().clone();
        assert_eq!(
            error_of(&update).as_deref(),
            Some("xds:///t: no configuration within 2s (wait-for-ready)")
        );
        up.send_replace(Some(Ok(snapshot(4))));
        down.changed().await.unwrap();
        assert!(matches!(&*down.borrow(), Some(Ok(s)) if s.version() == 4));
    }
}
