//! One measurement: `concurrency` callers sending `SayHello` back to back for a time window through one client,
//! every call timed; throughput, latency percentiles, errors and CPU time per call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use mesh_tonic::testing::{GreeterClient, HelloRequest};

use crate::cpu;

/// The three ways to reach the greeter.
#[derive(Clone)]
pub enum Client {
    /// (a) and (c): a plain tonic channel (to the server, or to the sidecar).
    Tonic(GreeterClient<tonic::transport::Channel>),
    /// (b): the mesh's `xds:///` channel.
    Mesh(GreeterClient<mesh_tonic::Channel>),
}

impl Client {
    /// One `SayHello`.
    pub async fn call(&mut self) -> Result<(), tonic::Status> {
        let request = HelloRequest {
            name: "bench".to_owned(),
        };
        let reply = match self {
            Self::Tonic(client) => client.say_hello(request).await?,
            Self::Mesh(client) => client.say_hello(request).await?,
        };
        if reply.get_ref().message == "Hello, bench!" {
            Ok(())
        } else {
            Err(tonic::Status::internal(format!(
                "unexpected reply {:?}",
                reply.get_ref().message
            )))
        }
    }
}

/// Whose CPU time a measurement reads.
pub struct CpuProbe {
    /// The Envoy process, for the sidecar variant.
    pub envoy_pid: Option<u32>,
}

/// CPU time per call, in microseconds (absent where `/proc` could not be read).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuPerCall {
    pub client: Option<f64>,
    pub server: Option<f64>,
    pub envoy: Option<f64>,
}

/// What one measurement saw.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Calls answered inside the window (errors included).
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// The first failure, to show.
    pub first_error: Option<String>,
    /// Calls per second.
    pub throughput: f64,
    /// Latency percentiles, in microseconds.
    pub p50: f64,
    pub p99: f64,
    pub cpu: CpuPerCall,
}

struct Snapshot {
    client: Option<Duration>,
    server: Option<Duration>,
    envoy: Option<Duration>,
}

impl Snapshot {
    fn take(probe: &CpuProbe) -> Self {
        Self {
            client: cpu::threads_named(crate::CLIENT_THREADS),
            server: cpu::threads_named(crate::SERVER_THREADS),
            envoy: probe.envoy_pid.and_then(cpu::process),
        }
    }

    fn per_call(&self, before: &Self, calls: u64) -> CpuPerCall {
        let delta = |after: Option<Duration>, before: Option<Duration>| {
            Some(cpu::micros_per_call(after?.checked_sub(before?)?, calls))
        };
        CpuPerCall {
            client: delta(self.client, before.client),
            server: delta(self.server, before.server),
            envoy: delta(self.envoy, before.envoy),
        }
    }
}

struct Caller {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

/// The callers' phases: warming up (calls not counted), measuring, stopped.
const RAMP: u8 = 0;
const MEASURING: u8 = 1;
const STOPPED: u8 = 2;

/// Runs `concurrency` callers on `client` for a ramp of a tenth of `window`, then for `window`, and counts the
/// calls that complete inside the window. Starting the count after the ramp, with the pipeline already full, keeps
/// slow variants from being under-counted by the calls in flight when the window closes (about `concurrency`
/// calls, by Little's law).
pub async fn measure(
    client: &Client,
    concurrency: usize,
    window: Duration,
    probe: &CpuProbe,
) -> Sample {
    let phase = Arc::new(AtomicU8::new(RAMP));
    let callers: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut client = client.clone();
            let phase = Arc::clone(&phase);
            tokio::spawn(async move {
                let mut caller = Caller {
                    latencies: Vec::with_capacity(1 << 14),
                    errors: 0,
                    first_error: None,
                };
                loop {
                    let sent = Instant::now();
                    let outcome = client.call().await;
                    match phase.load(Ordering::Relaxed) {
                        MEASURING => {}
                        RAMP => continue,
                        _ => return caller,
                    }
                    caller.latencies.push(sent.elapsed());
                    if let Err(status) = outcome {
                        caller.errors += 1;
                        caller.first_error.get_or_insert_with(|| status.to_string());
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(window / 10).await;
    let before = Snapshot::take(probe);
    let start = Instant::now();
    phase.store(MEASURING, Ordering::Relaxed);
    tokio::time::sleep(window).await;
    phase.store(STOPPED, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let after = Snapshot::take(probe);
    let mut latencies = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    for caller in callers {
        let Ok(caller) = caller.await else { continue };
        latencies.extend(caller.latencies);
        errors += caller.errors;
        first_error = first_error.or(caller.first_error);
    }
    latencies.sort_unstable();
    let calls = latencies.len() as u64;
    #[allow(clippy::cast_precision_loss)] // call counts far below 2^52
    let throughput = calls as f64 / elapsed.as_secs_f64();
    Sample {
        calls,
        errors,
        first_error,
        throughput,
        p50: micros(percentile(&latencies, 500)),
        p99: micros(percentile(&latencies, 990)),
        cpu: after.per_call(&before, calls),
    }
}

/// The `per_mille`-th value of a sorted sample (zero when empty).
fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    let index = (sorted.len().saturating_sub(1) * per_mille) / 1000;
    sorted.get(index).copied().unwrap_or_default()
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// The median of `values` (zero when empty).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}
