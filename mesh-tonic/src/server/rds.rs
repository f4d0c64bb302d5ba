//! One RouteConfiguration subscription of the xDS-enabled server (gRFC A36 "RouteConfiguration Resource
//! Handling"): a small task keeps an [`RdsState`] equal to what the watch delivers, so requests read it with one
//! atomic load, and wakes the config task so it can start serving once every RDS watch has heard something.

use std::sync::Arc;

use arc_swap::ArcSwap;
use mesh_xds_client::client::ResourceWatcher;
use mesh_xds_client::resource::Resource;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::route::{RdsState, forwarding_routes};

/// One RDS subscription, ended (and unsubscribed) when dropped.
pub(crate) struct RdsWatch {
    pub(crate) state: Arc<ArcSwap<RdsState>>,
    pub(crate) task: JoinHandle<()>,
}

impl Drop for RdsWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keeps `state` equal to what the RDS watch delivers, and wakes the config task on every change.
pub(crate) async fn follow_rds(
    mut watcher: ResourceWatcher,
    name: Arc<str>,
    state: Arc<ArcSwap<RdsState>>,
    changed: Arc<Notify>,
) {
    let mut watched = watcher.current();
    let mut had_errors = false;
    loop {
        let next = match &watched.resource {
            Some(Resource::RouteConfiguration(routes)) => RdsState::Ready(Arc::clone(routes)),
            Some(_) => RdsState::Failed("not a RouteConfiguration resource".into()),
            None if watched.does_not_exist => RdsState::Failed("does not exist".into()),
            None => match &watched.error {
                Some(error) => RdsState::Failed(Arc::clone(error)),
                None => RdsState::Pending,
            },
        };
        // gRFC A36 "configuration error logging": a warning for every update that makes RPCs fail with
        // UNAVAILABLE, and one when that is over.
        let errors = match &next {
            RdsState::Failed(reason) => {
                tracing::warn!(route_configuration = %name, %reason,
                    "RouteConfiguration unusable: RPCs on filter chains using it fail with UNAVAILABLE");
                true
            }
            RdsState::Ready(routes) => {
                let forwarding = forwarding_routes(routes);
                if forwarding > 0 {
                    tracing::warn!(route_configuration = %name, forwarding,
                        "routes without non_forwarding_action: RPCs matching them fail with UNAVAILABLE");
                }
                forwarding > 0
            }
            RdsState::Pending => had_errors,
        };
        if had_errors && !errors {
            tracing::warn!(route_configuration = %name, "the RouteConfiguration has no configuration errors any more");
        }
        had_errors = errors;
        state.store(Arc::new(next));
        changed.notify_one();
        match watcher.changed().await {
            Some(next) => watched = next,
            None => return,
        }
    }
}
