//! Read-only views of the state, for the CSDS config dump (gRFC A40) and for tests.

use std::fmt::Debug;
use std::time::Instant;

use mesh_core::rng::RandomSource;

use crate::resource::ResourceKind;

use super::config::ServerId;
use super::name::{AuthorityKey, normalize_name};
use super::state::{Entry, Stream, XdsState};
use super::types::{ResourceStatus, StreamId, WatchError};

/// One subscribed resource.
#[derive(Debug)]
#[non_exhaustive]
pub struct ResourceView<'a, R> {
    /// The resource's kind.
    pub kind: ResourceKind,
    /// The (normalized) name.
    pub name: &'a str,
    /// The `xdstp://` authority, `None` for old-style and unroutable names.
    pub authority: Option<&'a str>,
    /// Where the resource stands.
    pub status: ResourceStatus,
    /// The value in use, if any (also while [`ResourceStatus::Nacked`]).
    pub value: Option<&'a R>,
    /// `version_info` of the response that last carried the value.
    pub version: Option<&'a str>,
    /// When the value was last received, or found not to exist.
    pub last_updated: Option<Instant>,
    /// The last error: the NACK reason while [`ResourceStatus::Nacked`], or why the name is unroutable.
    pub last_error: Option<&'a WatchError>,
    /// gRFC A53: the server deleted the resource and the deletion is being ignored.
    pub deletion_ignored: bool,
}

/// What one server was last told about one resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TypeView<'a> {
    /// The server.
    pub server: ServerId,
    /// The type.
    pub kind: ResourceKind,
    /// The last accepted `version_info`.
    pub version_info: &'a str,
    /// The nonce of the last response on the current stream.
    pub nonce: &'a str,
}

/// A server's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamStatus {
    /// No stream and none wanted.
    Idle,
    /// Opening.
    Connecting(StreamId),
    /// Open.
    Connected {
        /// The stream.
        stream: StreamId,
        /// Whether a response arrived on it.
        responded: bool,
    },
    /// Failed before any response; reconnects at `until`.
    Backoff {
        /// When the next attempt starts.
        until: Instant,
    },
}

impl<R: Clone + PartialEq + Debug, G: RandomSource> XdsState<R, G> {
    /// Every subscribed resource, by kind then name.
    pub fn resources(&self) -> impl Iterator<Item = ResourceView<'_, R>> + '_ {
        self.resources
            .iter()
            .map(|((kind, name), entry)| view(*kind, name, entry))
    }

    /// One subscribed resource.
    #[must_use]
    pub fn resource(&self, kind: ResourceKind, name: &str) -> Option<ResourceView<'_, R>> {
        let name = normalize_name(name).into_owned();
        self.resources
            .get_key_value(&(kind, name))
            .map(|((kind, name), entry)| view(*kind, name, entry))
    }

    /// Per server and type, the last accepted version and the current nonce.
    pub fn type_states(&self) -> impl Iterator<Item = TypeView<'_>> + '_ {
        self.servers.iter().enumerate().flat_map(|(index, state)| {
            state.types.iter().map(move |(kind, types)| TypeView {
                server: ServerId(index),
                kind: *kind,
                version_info: &types.version,
                nonce: &types.nonce,
            })
        })
    }

    /// The stream to `server`.
    #[must_use]
    pub fn stream_status(&self, server: ServerId) -> StreamStatus {
        match self.servers.get(server.0).map(|state| state.stream) {
            None | Some(Stream::Idle) => StreamStatus::Idle,
            Some(Stream::Connecting(stream)) => StreamStatus::Connecting(stream),
            Some(Stream::Connected { id, responded }) => StreamStatus::Connected {
                stream: id,
                responded,
            },
            Some(Stream::Backoff { until }) => StreamStatus::Backoff { until },
        }
    }

    /// The stream to `server` that is opening or open.
    #[must_use]
    pub fn current_stream(&self, server: ServerId) -> Option<StreamId> {
        match self.stream_status(server) {
            StreamStatus::Connecting(stream) | StreamStatus::Connected { stream, .. } => {
                Some(stream)
            }
            StreamStatus::Idle | StreamStatus::Backoff { .. } => None,
        }
    }

    /// Whether `server` had a stream fail before any response, with no response since (gRFC A57).
    #[must_use]
    pub fn is_unreachable(&self, server: ServerId) -> bool {
        self.servers
            .get(server.0)
            .is_some_and(|state| state.unreachable)
    }

    /// The servers an authority uses now, primary first (gRFC A71); `None` for old-style names. Empty when nothing of
    /// the authority is subscribed or the authority is unknown.
    #[must_use]
    pub fn servers_in_use(&self, authority: Option<&str>) -> Vec<ServerId> {
        let key = authority.map_or(AuthorityKey::Default, |name| {
            AuthorityKey::Named(name.to_owned())
        });
        self.active_servers(&key)
    }
}

fn view<'a, R>(kind: ResourceKind, name: &'a str, entry: &'a Entry<R>) -> ResourceView<'a, R> {
    ResourceView {
        kind,
        name,
        authority: entry.authority.as_ref().and_then(AuthorityKey::as_str),
        status: entry.status,
        value: entry.value.as_ref(),
        version: entry.version.as_deref(),
        last_updated: entry.last_updated,
        last_error: entry.last_error.as_ref(),
        deletion_ignored: entry.deletion_ignored,
    }
}
