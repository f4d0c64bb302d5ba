//! Sending: each channel sends, at `--qps` ticks per second, one RPC of every configured type, with that type's
//! headers and the configured deadline. `Configure` changes what the next tick sends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::{Code, Request, Status};

use super::messages::RpcType;
use super::stats::Stats;
use crate::Channel;
use crate::interop::HOSTNAME_HEADER;
use crate::interop::TestServiceClient;
use crate::interop::messages::{Empty, SimpleRequest};

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
                    let outcome = this.send(rpc, &config).await;
                    let (code, peer) = match &outcome {
                        Ok(peer) => (Code::Ok, peer.as_deref()),
                        Err(status) => (status.code(), None),
                    };
                    this.stats.finish(ticket, code, peer);
                    this.report(rpc, outcome);
                });
            }
        }
    }

    /// One RPC: the hostname that answered, or the status.
    async fn send(&self, rpc: RpcType, config: &RpcConfig) -> Result<Option<String>, Status> {
        let mut client = TestServiceClient::new(self.channel.clone());
        let metadata = config
            .metadata
            .iter()
            .filter(|(kind, _, _)| *kind == rpc)
            .map(|(_, key, value)| (key.clone(), value.clone()));
        let response_metadata = match rpc {
            RpcType::UnaryCall => {
                let request = SimpleRequest {
                    fill_server_id: true,
                    ..SimpleRequest::default()
                };
                client
                    .unary_call(prepare(request, metadata, config.timeout))
                    .await?
                    .metadata()
                    .clone()
            }
            RpcType::EmptyCall => client
                .empty_call(prepare(Empty {}, metadata, config.timeout))
                .await?
                .metadata()
                .clone(),
        };
        Ok(response_metadata
            .get(HOSTNAME_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned))
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
