//! Responses: applying resources, SotW deletions, ACK and NACK (Envoy xDS protocol; gRFC A27, A46, A53, A88).

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::Instant;

use mesh_core::rng::RandomSource;
use tracing::{debug, info, warn};

use crate::resource::{ResourceError, ResourceKind};

use super::config::ServerId;
use super::name::normalize_name;
use super::state::{Stream, XdsState};
use super::types::{
    DecodedResource, DecodedResponse, Output, Request, ResourceStatus, StreamId, WatchError,
};

impl<R: Clone + PartialEq + Debug, G: RandomSource> XdsState<R, G> {
    /// A response arrived on `stream`.
    ///
    /// In order: the server counts as reachable (backoff reset, gRFC A57) and every authority using it drops the
    /// fallback servers after it (gRFC A71); each valid resource that is subscribed on this server is applied and
    /// its watchers told if it changed; each invalid one is recorded, and its watchers get an error that is ambient
    /// when an older value keeps serving (gRFC A46 partial acceptance, A88); for Listener and Cluster, a cached
    /// resource the response leaves out is deleted (SotW, Envoy xDS protocol) unless the server ignores deletions
    /// (gRFC A53). Last comes the ACK, or the NACK carrying the previously accepted version and every problem.
    ///
    /// A response for a type never requested on this stream is dropped unanswered: an ACK would be the type's first
    /// request, and an empty first request for LDS or CDS subscribes to everything. Resources nobody subscribed on
    /// this server are ignored (gRFC A27: the client asks by name); their validation errors still go into the NACK,
    /// since the server did send something invalid.
    pub fn response(&mut self, stream: StreamId, response: DecodedResponse<R>, now: Instant) {
        let server = stream.server();
        let Some(state) = self.servers.get_mut(server.0) else {
            return;
        };
        match &mut state.stream {
            Stream::Connected { id, responded } if *id == stream => *responded = true,
            _ => {
                debug!(%stream, "response on a stream no longer wanted; ignoring");
                return;
            }
        }
        state.unreachable = false;
        state.last_failure = None;
        state.backoff.reset(&self.backoff);
        self.return_to(server);

        let DecodedResponse {
            kind,
            version_info,
            nonce,
            resources,
        } = response;
        let requested = self
            .servers
            .get(server.0)
            .and_then(|state| state.types.get(&kind))
            .is_some_and(|types| types.sent.is_some());
        if !requested {
            warn!(%stream, %kind, nonce, "response for a type never requested on this stream; ignoring");
            self.reconcile_timers(now);
            return;
        }
        let subscribed = self.desired_names(server, kind);
        let errors = self.apply_resources(server, kind, &subscribed, &version_info, resources, now);

        let Some(types) = self
            .servers
            .get_mut(server.0)
            .and_then(|state| state.types.get_mut(&kind))
        else {
            return;
        };
        types.nonce = nonce;
        let error_detail = if errors.is_empty() {
            types.version = version_info;
            None
        } else {
            // gRFC A46: one NACK per response naming every invalid resource; the valid ones were applied anyway.
            let detail = format!("xDS response validation errors: [{}]", errors.join("; "));
            warn!(%stream, %kind, version_info, detail, "NACK");
            Some(detail)
        };
        // Envoy xDS protocol: ACK = the response's version and nonce; NACK = the last accepted version and the
        // rejected nonce. Sent after the watchers heard of the update.
        let request = Request {
            kind,
            names: subscribed.iter().cloned().collect(),
            version_info: types.version.clone(),
            response_nonce: types.nonce.clone(),
            error_detail,
        };
        types.sent = Some(subscribed);
        self.outputs.push_back(Output::Send { stream, request });
        self.reconcile_timers(now);
    }

    /// Applies every resource of a response; returns the problems for the NACK (empty means ACK).
    fn apply_resources(
        &mut self,
        server: ServerId,
        kind: ResourceKind,
        subscribed: &BTreeSet<String>,
        version_info: &str,
        resources: Vec<DecodedResource<R>>,
        now: Instant,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut unnamed_error = false;
        for resource in resources {
            match resource {
                Ok((name, value)) => {
                    let name = normalize_name(&name).into_owned();
                    if !seen.insert(name.clone()) {
                        // As gRPC C-core: the first copy wins and the duplicate makes the response a NACK.
                        let duplicate = ResourceError::new(
                            kind,
                            Some(&name),
                            "duplicate resource name in one response",
                        );
                        errors.push(duplicate.to_string());
                    } else if subscribed.contains(&name) {
                        self.accept(kind, name, value, version_info, now);
                    } else {
                        debug!(%kind, name, "resource not subscribed on this server; ignoring");
                    }
                }
                Err(error) => {
                    errors.push(error.to_string());
                    let Some(name) = error
                        .name
                        .as_deref()
                        .map(|name| normalize_name(name).into_owned())
                    else {
                        unnamed_error = true;
                        continue;
                    };
                    if seen.insert(name.clone()) && subscribed.contains(&name) {
                        self.reject(kind, name, error);
                    }
                }
            }
        }
        if matches!(kind, ResourceKind::Listener | ResourceKind::Cluster) {
            if unnamed_error {
                // A resource whose name could not be read may be any of the missing ones: do not call it deleted.
                warn!(%kind, "response has an unreadable resource; skipping deletion detection");
            } else {
                self.sotw_deletions(server, kind, subscribed, &seen, now);
            }
        }
        errors
    }

    fn accept(
        &mut self,
        kind: ResourceKind,
        name: String,
        value: R,
        version_info: &str,
        now: Instant,
    ) {
        let Some(entry) = self.resources.get_mut(&(kind, name.clone())) else {
            return;
        };
        if entry.deletion_ignored {
            // gRFC A53: log when the server sends an ignored-deleted resource again.
            info!(%kind, name, "resource whose deletion was ignored is back");
            entry.deletion_ignored = false;
        }
        entry.status = ResourceStatus::Acked;
        entry.version = Some(version_info.to_owned());
        entry.last_updated = Some(now);
        entry.last_error = None;
        entry.timer = None;
        // Watchers are woken only for a different value, never for the same resource sent again.
        if entry.value.as_ref() != Some(&value) {
            entry.value = Some(value.clone());
            self.outputs.push_back(Output::Changed {
                kind,
                name,
                resource: value,
            });
        }
    }

    fn reject(&mut self, kind: ResourceKind, name: String, error: ResourceError) {
        let Some(entry) = self.resources.get_mut(&(kind, name.clone())) else {
            return;
        };
        let error = WatchError::Rejected(error);
        let repeated =
            entry.status == ResourceStatus::Nacked && entry.last_error.as_ref() == Some(&error);
        entry.status = ResourceStatus::Nacked;
        entry.last_error = Some(error.clone());
        entry.timer = None;
        if !repeated {
            // gRFC A88: with a cached value the error is ambient and the value keeps serving (no
            // fail_on_data_errors); without one the watchers must fail.
            let ambient = entry.value.is_some();
            self.outputs.push_back(Output::Error {
                kind,
                name,
                error,
                ambient,
            });
        }
    }

    /// Envoy xDS protocol: LDS and CDS responses carry every subscribed resource the server has, so a cached one
    /// left out was deleted. gRFC A53: a server with `ignore_resource_deletion` keeps it serving instead.
    fn sotw_deletions(
        &mut self,
        server: ServerId,
        kind: ResourceKind,
        subscribed: &BTreeSet<String>,
        seen: &BTreeSet<String>,
        now: Instant,
    ) {
        let Some(config) = self.servers.get(server.0).map(|state| state.config.clone()) else {
            return;
        };
        for name in subscribed.difference(seen) {
            let Some(entry) = self.resources.get_mut(&(kind, name.clone())) else {
                continue;
            };
            if entry.value.is_none() {
                continue;
            }
            if config.ignore_resource_deletion {
                if !entry.deletion_ignored {
                    warn!(%kind, name, uri = config.uri, "server deleted the resource; ignoring (ignore_resource_deletion)");
                    entry.deletion_ignored = true;
                    let error = WatchError::DeletionIgnored {
                        server_uri: config.uri.clone(),
                    };
                    entry.last_error = Some(error.clone());
                    // gRFC A88 reports ignored data errors as ambient errors: context, not a reason to stop.
                    self.outputs.push_back(Output::Error {
                        kind,
                        name: name.clone(),
                        error,
                        ambient: true,
                    });
                }
                continue;
            }
            info!(%kind, name, uri = config.uri, "resource deleted by the server");
            entry.value = None;
            entry.status = ResourceStatus::DoesNotExist;
            entry.version = None;
            entry.last_updated = Some(now);
            entry.last_error = None;
            self.outputs.push_back(Output::DoesNotExist {
                kind,
                name: name.clone(),
            });
        }
    }
}
