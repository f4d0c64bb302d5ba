//! Sending: each channel sends, at `--qps` ticks per second, one RPC of every configured type, with that type's
//! headers and the configured deadline. `Configure` changes what the next tick sends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use http::uri::PathAndQuery;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, KeyAndValueRef, MetadataMap};
use tonic::{Code, Request, Status};
use tonic_prost::ProstCodec;

use super::messages::{MetadataType, RpcType};
use super::stats::{Received, Stats};
use crate::Channel;
use crate::interop::HOSTNAME_HEADER;
use crate::interop::messages::{Empty, SimpleRequest, SimpleResponse};

const UNARY_CALL_PATH: &str = "/grpc.testing.TestService/UnaryCall";
const EMPTY_CALL_PATH: &str = "/grpc.testing.TestService/EmptyCall";

/// What the client sends: set by the flags, replaced by `Configure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcConfig {
    /// The RPC types sent each tick.
    pub types: Vec<RpcType>,
    /// Headers, per type.
    pub metadata: Vec<(RpcType, AsciiMetadataKey, AsciiMetadataValue)>,
    /// The deadline of each RPC.
    pub timeout: Duration,
}

/// The current [`RpcConfig`], read once per tick.
#[derive(Debug)]
pub struct SharedConfig {
    current: RwLock<Arc<RpcConfig>>,
    /// The deadline used when `Configure` gives none.
    pub default_timeout: Duration,
}

impl SharedConfig {
    /// Starts with `config`, whose timeout is also the default.
    #[must_use]
    pub fn new(config: RpcConfig) -> Arc<Self> {
        Arc::new(Self {
            default_timeout: config.timeout,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// The configuration in force.
    #[must_use]
    pub fn get(&self) -> Arc<RpcConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the configuration.
    pub fn set(&self, config: RpcConfig) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
    }
}

/// How a sender reports an RPC that failed after another succeeded (`--fail_on_failed_rpcs`).
#[derive(Debug, Clone)]
pub(super) struct FailureWatch {
    succeeded_once: Arc<AtomicBool>,
    report: mpsc::UnboundedSender<(RpcType, Status)>,
}

impl FailureWatch {
    /// A watch and the receiver of its reports.
    #[must_use]
    pub(super) fn new() -> (Self, mpsc::UnboundedReceiver<(RpcType, Status)>) {
        let (report, reports) = mpsc::unbounded_channel();
        (
            Self {
                succeeded_once: Arc::new(AtomicBool::new(false)),
                report,
            },
            reports,
        )
    }
}

/// One channel's sending loop.
#[derive(Debug, Clone)]
pub(super) struct Sender {
    /// The channel.
    pub(super) channel: Channel,
    /// Ticks per second.
    pub(super) qps: u32,
    /// What to send.
    pub(super) config: Arc<SharedConfig>,
    /// Where outcomes go.
    pub(super) stats: Arc<Stats>,
    /// Set with `--fail_on_failed_rpcs`.
    pub(super) failures: Option<FailureWatch>,
    /// Print each outcome (`--print_response`).
    pub(super) print: bool,
}

impl Sender {
    /// Sends until the task is aborted.
    pub(super) async fn run(self) {
        let period = Duration::from_secs(1) / self.qps.max(1);
        let mut ticks = tokio::time::interval(period);
        // Ticks missed while the machine was busy are dropped (as grpc-go's ticker does), not sent in a burst.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            let config = self.config.get();
            for &rpc in &config.types {
                let this = self.clone();
                let config = Arc::clone(&config);
                tokio::spawn(async move {
                    // Counted as started (and numbered for GetClientStats) when actually sent, not when scheduled.
                    let ticket = this.stats.start(rpc);
                    let outcome = this.send(rpc, &config, ticket.wants_metadata()).await;
                    match &outcome {
                        Ok((peer, metadata)) => {
                            this.stats
                                .finish(ticket, Code::Ok, peer.as_deref(), metadata);
                        }
                        Err(status) => this.stats.finish(ticket, status.code(), None, &[]),
                    }
                    this.report(rpc, outcome.map(|(peer, _)| peer));
                });
            }
        }
    }

    /// One RPC: the peer that answered (its [`HOSTNAME_HEADER`] response header) and, when `want_metadata`, the
    /// response's metadata; or the status.
    async fn send(
        &self,
        rpc: RpcType,
        config: &RpcConfig,
        want_metadata: bool,
    ) -> Result<(Option<String>, Vec<Received>), Status> {
        let metadata = config
            .metadata
            .iter()
            .filter(|(kind, _, _)| *kind == rpc)
            .map(|(_, key, value)| (key.clone(), value.clone()));
        match rpc {
            RpcType::UnaryCall => {
                let request = SimpleRequest {
                    fill_server_id: true,
                    ..SimpleRequest::default()
                };
                self.call::<_, SimpleResponse>(
                    UNARY_CALL_PATH,
                    prepare(request, metadata, config.timeout),
                    want_metadata,
                )
                .await
            }
            RpcType::EmptyCall => {
                self.call::<_, Empty>(
                    EMPTY_CALL_PATH,
                    prepare(Empty {}, metadata, config.timeout),
                    want_metadata,
                )
                .await
            }
        }
    }

    /// A unary call read as a response stream, so that its headers and trailers stay apart (a unary call merges
    /// them); the wire is the same.
    async fn call<Req, Resp>(
        &self,
        path: &'static str,
        request: Request<Req>,
        want_metadata: bool,
    ) -> Result<(Option<String>, Vec<Received>), Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        if let Err(never) = grpc.ready().await {
            match never {}
        }
        let response = grpc
            .server_streaming(
                request,
                PathAndQuery::from_static(path),
                ProstCodec::<Req, Resp>::default(),
            )
            .await?;
        let (headers, mut body, _) = response.into_parts();
        while body.message().await?.is_some() {}
        let trailers = body.trailers().await?;
        let peer = headers
            .get(HOSTNAME_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let mut received = Vec::new();
        if want_metadata {
            entries(&headers, MetadataType::Initial, &mut received);
            if let Some(trailers) = &trailers {
                entries(trailers, MetadataType::Trailing, &mut received);
            }
        }
        Ok((peer, received))
    }

    #[allow(clippy::print_stdout)] // --print_response prints on stdout
    fn report(&self, rpc: RpcType, outcome: Result<Option<String>, Status>) {
        if self.print {
            match &outcome {
                Ok(peer) => println!("{}: peer {}", rpc.method(), peer.as_deref().unwrap_or("?")),
                Err(status) => println!(
                    "{}: {:?}: {}",
                    rpc.method(),
                    status.code(),
                    status.message()
                ),
            }
        }
        let Some(failures) = &self.failures else {
            return;
        };
        match outcome {
            Ok(_) => failures.succeeded_once.store(true, Ordering::Relaxed),
            Err(status) if failures.succeeded_once.load(Ordering::Relaxed) => {
                let _ = failures.report.send((rpc, status));
            }
            Err(_) => {}
        }
    }
}

/// The ASCII entries of `metadata` other than gRPC's own (`content-type`, `grpc-status`, ...), which gRPC
/// libraries do not expose as metadata.
fn entries(metadata: &MetadataMap, kind: MetadataType, into: &mut Vec<Received>) {
    for entry in metadata.iter() {
        if let KeyAndValueRef::Ascii(key, value) = entry {
            let key = key.as_str();
            if key == "content-type" || key.starts_with("grpc-") {
                continue;
            }
            into.push(Received {
                key: key.to_owned(),
                value: value.to_str().unwrap_or_default().to_owned(),
                kind,
            });
        }
    }
}

fn prepare<T>(
    message: T,
    metadata: impl Iterator<Item = (AsciiMetadataKey, AsciiMetadataValue)>,
    timeout: Duration,
) -> Request<T> {
    let mut request = Request::new(message);
    for (key, value) in metadata {
        request.metadata_mut().append(key, value);
    }
    request.set_timeout(timeout);
    request
}
