//! End to end on loopback: the whole request path (`MeshService`: routing, balancing, retry, circuit breaker,
//! outlier detection; no faults) against the same hyper HTTP/2 client calling the same local server directly,
//! measured side by side in one run, on one runtime.
//!
//! Three sides: `direct` (a bare hyper client, hyper's defaults), `direct-as-mesh` (the same client with the
//! connection settings the mesh side uses: keep-alive pings on a timer, which make hyper lock and read the clock on every
//! frame received) and `mesh`. Each reports latency at concurrency 1 (p50, p99) and throughput at concurrency 64;
//! the ratios the request-path issue sets (throughput mesh/direct at least 0.95; p50 latency added at concurrency 1
//! at most 10 µs) are given against both direct sides. Sides take turns within each round so machine noise hits
//! all alike. Run with `cargo bench -p mesh-benches --bench request_path`.
//!
//! `--count` runs a fixed number of requests of one side instead (see [`count_mode`]), for instruction counts and
//! CPU time per request.
//!
//! `--telemetry` measures the cost of telemetry instead (issue #7 §5, see [`telemetry_overhead`]): the `mesh` side
//! with telemetry off, on with every trace sampled, and on with 1% sampled, taking turns in one run, with the
//! throughput ratios against telemetry off (targets: at least 0.9 sampled, 0.97 at 1%), and the same ratios from
//! the process's CPU time per call; `--telemetry --identical` runs three sides with telemetry off, for the noise
//! floor of those ratios on this machine.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use mesh_core::cluster::{Cluster, OutlierDetection};
use mesh_core::endpoint::{Endpoint, EndpointSet, LocalityEndpoints};
use mesh_core::listener::{HttpConnectionManager, Listener, RouteSource};
use mesh_core::locality::Locality;
use mesh_core::route::{
    RetryOn, RetryPolicy, Route, RouteAction, RouteConfig, RouteMatch, VirtualHost,
};
use mesh_core::snapshot::{ClusterConfig, ConfigSnapshot};
use mesh_tower::{MeshOptions, MeshService};
use tower::ServiceExt;

/// CPU time from `/proc`, shared with the sidecar bench (which uses the rest of it).
#[path = "sidecar/cpu.rs"]
#[allow(dead_code, unreachable_pub)]
mod cpu;

const URI: &str = "http://greeter/helloworld.Greeter/SayHello";
const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
const LATENCY_REQUESTS: usize = 5_000;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(2);
const CONCURRENCY: usize = 64;
const ROUNDS: usize = 3;
/// `--telemetry`: the slices each side's share of a round is cut into, the sides taking turns slice by slice (a
/// multiple of the three sides, so that each runs in each place of the order equally often).
const SLICES: u32 = 9;
/// `--telemetry`: the calls each side's new client makes before a round.
const WARM_UP: u64 = 200;

async fn serve() -> SocketAddr {
    serve_with(|_, _| {
        http::Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "0")
            .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")).boxed())
            .unwrap()
    })
    .await
}

/// An OTLP/gRPC collector that reads each export and throws it away, answering an empty
/// `Export*ServiceResponse`: the telemetry sides measure the mesh's cost of telemetry (recording, spans, encoding
/// and sending exports), not a collector's decoding and storing of every span on the same two threads. It counts
/// the spans it receives (walking the protobuf where its DATA frames left it, without decoding it or joining the
/// frames), so that spans the SDK dropped (its batch queue full) are seen: a ratio must not be bought with dropped
/// spans.
async fn otlp_sink(spans: Arc<AtomicU64>) -> String {
    let addr = serve_with(move |path, body| {
        if path.ends_with("TraceService/Export")
            && let Some(body) = body
        {
            spans.fetch_add(count_spans(body.aggregate()), Ordering::Relaxed);
        }
        let mut trailers = http::HeaderMap::new();
        trailers.insert(GRPC_STATUS, http::HeaderValue::from_static("0"));
        http::Response::builder()
            .header("content-type", "application/grpc")
            .body(
                Full::new(Bytes::from_static(b"\0\0\0\0\0"))
                    .with_trailers(async move { Some(Ok(trailers)) })
                    .boxed(),
            )
            .unwrap()
    })
    .await;
    format!("http://{addr}")
}

type ReplyBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The spans in a gRPC-framed OTLP `ExportTraceServiceRequest`: its `resource_spans` (1), their `scope_spans` (2),
/// their `spans` (2), counted by their keys and lengths.
fn count_spans(mut body: impl Buf) -> u64 {
    let mut total = 0;
    while body.remaining() >= 5 {
        body.advance(1);
        let len = usize::try_from(body.get_u32()).unwrap();
        total += count_fields(&mut body, len, &[1, 2, 2]);
    }
    total
}

/// How many fields at `path` (field numbers, one per nesting level) the `len`-byte message at the front of
/// `message` has; the message is consumed.
fn count_fields(message: &mut impl Buf, mut len: usize, path: &[u64]) -> u64 {
    let Some((&field, deeper)) = path.split_first() else {
        message.advance(len);
        return 1;
    };
    let mut count = 0;
    while len > 0 {
        let key = varint(message, &mut len);
        let skip = match key & 7 {
            0 => {
                varint(message, &mut len);
                0
            }
            1 => 8,
            2 => {
                let value = usize::try_from(varint(message, &mut len)).unwrap();
                if key >> 3 == field {
                    count += count_fields(message, value, deeper);
                    len -= value;
                    0
                } else {
                    value
                }
            }
            5 => 4,
            wire => unreachable!("wire type {wire} in an OTLP export"),
        };
        message.advance(skip);
        len -= skip;
    }
    count
}

/// A varint read from `message`, taken off `len`: from the current chunk at once when it holds the whole varint.
fn varint(message: &mut impl Buf, len: &mut usize) -> u64 {
    let mut value = 0_u64;
    let chunk = message.chunk();
    if let Some(end) = chunk.iter().take(10).position(|byte| *byte < 0x80) {
        for (shift, byte) in (0..64).step_by(7).zip(&chunk[..=end]) {
            value |= u64::from(byte & 0x7f) << shift;
        }
        message.advance(end + 1);
        *len -= end + 1;
        return value;
    }
    for shift in (0..64).step_by(7) {
        let byte = message.get_u8();
        *len -= 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            break;
        }
    }
    value
}

/// A local HTTP/2 server answering every request with `reply(path, body)` once it has read the request's body.
async fn serve_with(
    reply: impl Fn(&str, Option<http_body_util::Collected<Bytes>>) -> http::Response<ReplyBody>
    + Clone
    + Send
    + Sync
    + 'static,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let reply = reply.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let reply = reply.clone();
                        async move {
                            // A gRPC server reads the request message before it answers. Answering from the
                            // headers alone would make h2 reset each stream whose body is still coming and count
                            // the frames that arrive after the reset against its reset limits, ending the
                            // connection for any client.
                            let (parts, body) = req.into_parts();
                            let message = body.collect().await.ok();
                            Ok::<_, Infallible>(reply(parts.uri.path(), message))
                        }
                    });
                // hyper's default HTTP/2 settings, flood protections included.
                if let Err(e) = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    println!("server connection error: {e:?}");
                }
            });
        }
    });
    addr
}

/// A bare hyper HTTP/2 client: hyper's defaults, no keep-alive pings.
async fn direct_client(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    send
}

/// The same hyper client configured as the mesh side's connections are: keep-alive pings on a timer (hyper then
/// takes a lock and reads the clock on every frame it receives, whoever drives it).
async fn direct_client_as_mesh(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    builder
        .keep_alive_interval(MeshOptions::DEFAULT_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(MeshOptions::DEFAULT_KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    let (send, connection) = builder.handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    send
}

fn mesh_client(addr: SocketAddr) -> MeshService {
    mesh_client_with(addr, MeshOptions::default())
}

/// The mesh over `options`, its connections with keep-alive pings (off by default) as `direct-as-mesh`'s.
fn mesh_client_with(addr: SocketAddr, options: MeshOptions) -> MeshService {
    let options = options.with_keep_alive(
        Some(MeshOptions::DEFAULT_KEEP_ALIVE_INTERVAL),
        MeshOptions::DEFAULT_KEEP_ALIVE_TIMEOUT,
    );
    let endpoints = EndpointSet::new(
        "greeter",
        vec![LocalityEndpoints::new(
            Locality::new("local", "a", ""),
            0,
            1,
            vec![Endpoint::new(addr)],
        )],
    );
    let cluster = Cluster::eds("greeter").with_outlier_detection(OutlierDetection::default());
    let (retry_on, _) = RetryOn::parse("unavailable,reset,connect-failure");
    let action = RouteAction::cluster("greeter").with_retry_policy(RetryPolicy::new(retry_on, 2));
    let routes = Arc::new(RouteConfig::new(
        "routes",
        vec![VirtualHost::new(
            "greeter",
            &["*"],
            vec![Route::new(RouteMatch::prefix("/"), action)],
        )],
    ));
    let listener = Arc::new(Listener::client(
        "greeter",
        HttpConnectionManager::new(RouteSource::Rds("routes".into())),
    ));
    let snapshot = ConfigSnapshot::builder("greeter", listener, routes)
        .cluster(ClusterConfig::with_endpoints(
            Arc::new(cluster),
            Arc::new(endpoints),
        ))
        .build(1)
        .unwrap();
    let service = MeshService::new(options);
    service.update(Some(Ok(Arc::new(snapshot))));
    service
}

fn request() -> http::Request<Full<Bytes>> {
    http::Request::post(http::Uri::from_static(URI))
        .header(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        )
        .header(http::header::TE, http::HeaderValue::from_static("trailers"))
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")))
        .unwrap()
}

#[derive(Clone)]
enum Client {
    Direct(SendRequest<Full<Bytes>>),
    Mesh(MeshService),
    /// The mesh under this `tracing` subscriber (one per telemetry side: with telemetry, the telemetry's layer).
    Traced(MeshService, tracing::Dispatch),
}

impl Client {
    async fn call(&mut self) {
        match self {
            Self::Direct(send) => {
                send.ready().await.unwrap();
                let response = send.send_request(request()).await.unwrap();
                check(&response);
                response.into_body().collect().await.unwrap();
            }
            Self::Mesh(service) => {
                let response = service.clone().oneshot(request()).await.unwrap();
                check(&response);
                response.into_body().collect().await.unwrap();
            }
            Self::Traced(service, dispatch) => {
                use tracing::instrument::WithSubscriber;
                async {
                    let response = service.clone().oneshot(request()).await.unwrap();
                    check(&response);
                    response.into_body().collect().await.unwrap();
                }
                .with_subscriber(dispatch.clone())
                .await;
            }
        }
    }
}

/// Every side checks that the server answered (the mesh answers its own failures with a status too).
fn check<B>(response: &http::Response<B>) {
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get(&GRPC_STATUS).map(|v| v.as_bytes()),
        Some(&b"0"[..]),
        "the server must answer: {:?}",
        response.headers()
    );
}

async fn latencies(client: &mut Client) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(LATENCY_REQUESTS);
    for _ in 0..LATENCY_REQUESTS {
        let start = Instant::now();
        client.call().await;
        samples.push(start.elapsed());
    }
    samples.sort_unstable();
    samples
}

/// The `per_mille`-th value of a sorted, non-empty sample.
fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    let index = (sorted.len().saturating_sub(1) * per_mille) / 1000;
    sorted.get(index).copied().unwrap_or_default()
}

/// Calls per second at concurrency 64 over the window, and every call made (those in flight as it closed too).
async fn throughput(client: &Client, window: Duration) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let mut client = client.clone();
        let done = Arc::clone(&done);
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                client.call().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let counted = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    for task in tasks {
        task.await.unwrap();
    }
    #[allow(clippy::cast_precision_loss)] // a request count far below 2^52
    let rate = counted as f64 / elapsed.as_secs_f64();
    (rate, done.load(Ordering::Relaxed))
}

/// A slice of a telemetry side's run: its calls over the window (and the calls in flight as it closes), the time
/// they and the export of their spans took (so that a side's export backlog is its own, not the next side's), and
/// the process's CPU time over the same stretch (`None` where `/proc` cannot be read). CPU time is what the calls
/// cost whatever else the machine runs; throughput moves with the machine's load too.
#[derive(Debug, Clone, Copy, Default)]
struct Slice {
    calls: u64,
    elapsed: Duration,
    cpu: Option<Duration>,
}

impl std::ops::AddAssign for Slice {
    fn add_assign(&mut self, other: Self) {
        self.calls += other.calls;
        self.elapsed += other.elapsed;
        self.cpu = self.cpu.zip(other.cpu).map(|(a, b)| a + b);
    }
}

impl Slice {
    /// Calls a second.
    fn rate(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)] // a request count far below 2^52
        let calls = self.calls as f64;
        calls / self.elapsed.as_secs_f64()
    }
}

async fn exported_throughput(side: &TelemetrySide, window: Duration) -> Slice {
    let cpu_before = cpu::process(std::process::id());
    let start = Instant::now();
    let (_, calls) = throughput(&side.client, window).await;
    side.calls.fetch_add(calls, Ordering::Relaxed);
    // Its spans, not its metrics: those go every minute, not per call.
    if let Some(telemetry) = &side.telemetry {
        telemetry.flush_spans().await.unwrap();
    }
    let elapsed = start.elapsed();
    let cpu = cpu_before
        .zip(cpu::process(std::process::id()))
        .map(|(before, after)| after.saturating_sub(before));
    Slice {
        calls,
        elapsed,
        cpu,
    }
}

fn median(values: Vec<f64>) -> f64 {
    quartiles(values)[1]
}

/// The first quartile, the median and the third quartile of `values` (nearest rank).
fn quartiles(mut values: Vec<f64>) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    let at = |quarter: usize| {
        values
            .get(values.len() * quarter / 4)
            .copied()
            .unwrap_or_default()
    };
    [at(1), at(2), at(3)]
}

/// The three sides.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// A bare hyper client.
    Direct,
    /// The same hyper client with the mesh's connection settings.
    DirectAsMesh,
    /// `MeshService`.
    Mesh,
}

impl Side {
    const ALL: [Self; 3] = [Self::Direct, Self::DirectAsMesh, Self::Mesh];

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|side| side.name() == name)
    }

    const fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::DirectAsMesh => "direct-as-mesh",
            Self::Mesh => "mesh",
        }
    }

    async fn client(self, addr: SocketAddr) -> Client {
        match self {
            Self::Direct => Client::Direct(direct_client(addr).await),
            Self::DirectAsMesh => Client::Direct(direct_client_as_mesh(addr).await),
            Self::Mesh => Client::Mesh(mesh_client(addr)),
        }
    }
}

/// `--count direct|direct-as-mesh|mesh REQUESTS CONCURRENCY [THREADS]`: a fixed number of requests (after a
/// warm-up), on one thread unless `THREADS` runtime worker threads are asked for. With `--sampling RATIO` the
/// `mesh` side has telemetry on, sampling that ratio (as the `--telemetry` sides, for profiles of its cost); a
/// negative ratio is the `--telemetry` side with telemetry off. For instruction counts
/// (`valgrind --tool=callgrind --toggle-collect='*measured*'` on one thread, or the difference of two runs of
/// different lengths on several) and CPU time per request (`perf stat -e task-clock`), which a busy machine
/// disturbs far less than wall-clock throughput.
fn count_mode() -> Option<(Side, usize, usize, usize)> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "--count")?;
    let side = args
        .get(at + 1)
        .and_then(|name| Side::parse(name))
        .expect("--count direct|direct-as-mesh|mesh REQUESTS CONCURRENCY [THREADS]");
    let requests = args
        .get(at + 2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let concurrency = args.get(at + 3).and_then(|n| n.parse().ok()).unwrap_or(1);
    let threads = args.get(at + 4).and_then(|n| n.parse().ok()).unwrap_or(0);
    Some((side, requests, concurrency, threads))
}

#[inline(never)]
fn measured(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    requests: usize,
    concurrency: usize,
) {
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let mut client = client.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..requests / concurrency {
                    client.call().await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

fn count(side: Side, requests: usize, concurrency: usize, threads: usize) {
    let runtime = if threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .unwrap()
    };
    let sampling = std::env::args()
        .skip_while(|a| a != "--sampling")
        .nth(1)
        .map(|ratio| ratio.parse::<f64>().expect("--sampling RATIO"));
    let (client, telemetry) = runtime.block_on(async {
        let addr = serve().await;
        let (mut client, telemetry) = match (side, sampling) {
            // `--sampling 0`... and `--sampling off`: the telemetry sides' subscriber plumbing, telemetry off.
            (Side::Mesh, Some(ratio)) => {
                let sampling = (ratio >= 0.0).then_some(ratio);
                let side = telemetry_side(addr, "on", sampling).await;
                (side.client.clone(), Some(side))
            }
            _ => (side.client(addr).await, None),
        };
        for _ in 0..500 {
            client.call().await;
        }
        (client, telemetry)
    });
    measured(&runtime, &client, requests, concurrency);
    if let Some(side) = &telemetry {
        let made = 500 + requests / concurrency * concurrency;
        side.calls
            .fetch_add(u64::try_from(made).unwrap(), Ordering::Relaxed);
    }
    println!(
        "request_path --count: {requests} requests, {}, concurrency {concurrency}, telemetry sampling {sampling:?}",
        side.name()
    );
    if let Some(side) = telemetry {
        runtime.block_on(side.finish());
    }
}

fn main() {
    if let Some((side, requests, concurrency, threads)) = count_mode() {
        count(side, requests, concurrency, threads);
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run a short smoke pass then.
    let smoke = !std::env::args().any(|a| a == "--bench");
    if std::env::args().any(|a| a == "--telemetry") {
        telemetry_overhead(smoke);
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let addr = serve().await;
        let mut clients = Vec::new();
        for side in Side::ALL {
            clients.push(side.client(addr).await);
        }
        // Warm up all (connections, EWMA, allocator).
        for _ in 0..500 {
            for client in &mut clients {
                client.call().await;
            }
        }
        if smoke {
            println!("request_path: smoke run ok (use `cargo bench` for figures)");
            return;
        }
        let mut p50 = vec![Vec::new(); clients.len()];
        let mut p99 = vec![Vec::new(); clients.len()];
        let mut rps = vec![Vec::new(); clients.len()];
        for _ in 0..ROUNDS {
            for (index, client) in clients.iter_mut().enumerate() {
                let sorted = latencies(client).await;
                p50[index].push(percentile(&sorted, 500).as_secs_f64() * 1e6);
                p99[index].push(percentile(&sorted, 990).as_secs_f64() * 1e6);
            }
            for (index, client) in clients.iter().enumerate() {
                rps[index].push(throughput(client, THROUGHPUT_WINDOW).await.0);
            }
        }
        let p50: Vec<f64> = p50.into_iter().map(median).collect();
        let p99: Vec<f64> = p99.into_iter().map(median).collect();
        let rps: Vec<f64> = rps.into_iter().map(median).collect();
        println!(
            "request_path (loopback, 2 runtime threads, medians of {ROUNDS} rounds, sides taking turns)"
        );
        for (index, side) in Side::ALL.into_iter().enumerate() {
            println!(
                "  {:<15} c=1 p50 {:6.1} us p99 {:6.1} us | c={CONCURRENCY} {:7.0} req/s",
                side.name(),
                p50[index],
                p99[index],
                rps[index]
            );
        }
        let [direct, as_mesh, mesh] = [0, 1, 2];
        println!(
            "  c=1  p50 added by the mesh: {:.1} us over direct-as-mesh, {:.1} us over direct (target <= 10 us)",
            p50[mesh] - p50[as_mesh],
            p50[mesh] - p50[direct]
        );
        println!(
            "  c={CONCURRENCY} throughput mesh/direct-as-mesh {:.3}, mesh/direct {:.3} (target >= 0.95)",
            rps[mesh] / rps[as_mesh],
            rps[mesh] / rps[direct]
        );
    });
}

/// The telemetry sides: `MeshService` with telemetry off, and on (OpenTelemetry metrics with gRPC's instruments,
/// a span per call and per attempt made by the telemetry's tracer, `traceparent` on every attempt) with sampling
/// 1.0 and 0.01. Each side with telemetry has its own pipeline exporting to its own in-process OTLP sink
/// ([`otlp_sink`]: metrics every 60 s, spans in the SDK's batches, counted); every side has its own `tracing` subscriber
/// (the telemetry's layer over a registry, or a registry at INFO), installed around each call.
struct TelemetrySide {
    name: &'static str,
    client: Client,
    /// What its client is built from, for [`reconnect`](Self::reconnect).
    addr: SocketAddr,
    options: MeshOptions,
    telemetry: Option<mesh_tonic::telemetry::Telemetry>,
    /// The side's calls, as counted by the code that makes them (not per call: a shared counter would cost every
    /// call a contended atomic).
    calls: AtomicU64,
    /// The spans its sink received.
    spans: Arc<AtomicU64>,
    sampling: Option<f64>,
}

impl TelemetrySide {
    /// A new client for the side (a new mesh over the same options and telemetry, so a new connection to the
    /// server, and a new subscriber), warmed up. What a side's connection and objects land on stays with them
    /// (which runtime thread runs its connection's tasks, next to which of the server's; which cache lines its
    /// reference counts share): that moved identical sides' throughput up to 8% apart for a whole run. Each round
    /// rebuilds them, so that the rounds' median is not one placement's.
    async fn reconnect(&mut self) {
        self.client = Client::Traced(
            mesh_client_with(self.addr, self.options.clone()),
            side_dispatch(self.telemetry.as_ref()),
        );
        for _ in 0..WARM_UP {
            self.client.call().await;
        }
        self.calls.fetch_add(WARM_UP, Ordering::Relaxed);
    }

    /// Shuts the side's telemetry down (exporting what is left) and says how many spans reached its sink: with
    /// every call sampled, two per call (the call's and its attempt's); fewer means the SDK dropped spans.
    async fn finish(self) {
        let Some(telemetry) = self.telemetry else {
            return;
        };
        let _ = telemetry.shutdown().await;
        let calls = self.calls.load(Ordering::Relaxed);
        let spans = self.spans.load(Ordering::Relaxed);
        match self.sampling {
            Some(ratio) if ratio >= 1.0 => println!(
                "  telemetry {:<9} spans received {spans} of {} ended (2 per call): {} dropped",
                self.name,
                2 * calls,
                (2 * calls).saturating_sub(spans)
            ),
            _ => println!(
                "  telemetry {:<9} spans received {spans} for {calls} calls",
                self.name
            ),
        }
    }
}

/// A side's subscriber: the telemetry's layer over a registry, or without telemetry a registry that takes INFO and
/// above as the telemetry's layer does (so the request path's DEBUG spans are off on both).
fn side_dispatch(telemetry: Option<&mesh_tonic::telemetry::Telemetry>) -> tracing::Dispatch {
    use tracing_subscriber::layer::SubscriberExt;

    match telemetry {
        Some(telemetry) => {
            tracing::Dispatch::new(tracing_subscriber::registry().with(telemetry.tracing_layer()))
        }
        None => tracing::Dispatch::new(
            tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::INFO),
        ),
    }
}

async fn telemetry_side(
    addr: SocketAddr,
    name: &'static str,
    sampling: Option<f64>,
) -> TelemetrySide {
    use mesh_tonic::telemetry::{Sampling, Telemetry, TelemetryConfig};

    // Each side's subscriber is installed around each of its calls (the sides share the runtime's threads), which
    // costs every poll a dispatcher switch: the side without telemetry pays it too (see `side_dispatch`).
    let Some(ratio) = sampling else {
        return TelemetrySide {
            name,
            client: Client::Traced(mesh_client(addr), side_dispatch(None)),
            addr,
            options: MeshOptions::default(),
            telemetry: None,
            calls: AtomicU64::new(0),
            spans: Arc::default(),
            sampling,
        };
    };
    let spans = Arc::new(AtomicU64::new(0));
    let mut config = TelemetryConfig::otlp(otlp_sink(Arc::clone(&spans)).await);
    config.sampling = Sampling::ParentBasedRatio(ratio);
    // A queue that holds a second of spans: the SDK's 2048 are some 20 ms of this bench's calls, and spans it
    // drops when the export thread is kept off the CPU would flatter the ratio (the sides report what was dropped).
    config.max_queued_spans = Some(1 << 17);
    let telemetry = Telemetry::start(&config).unwrap();
    let options = telemetry.apply(MeshOptions::default());
    let service = mesh_client_with(addr, options.clone());
    TelemetrySide {
        name,
        client: Client::Traced(service, side_dispatch(Some(&telemetry))),
        addr,
        options,
        telemetry: Some(telemetry),
        calls: AtomicU64::new(0),
        spans,
        sampling,
    }
}

/// `--telemetry [--rounds N] [--identical]`: throughput at concurrency 64 (and p50 at concurrency 1) of the mesh
/// with telemetry off and on. Each round (3 unless `--rounds` says) gives every side a new connection, then cuts
/// each side's share into [`SLICES`] slices that the sides take turns in, in a rotating order; each side's time
/// includes the export of its spans (flushed after each slice). The ratios are of the median throughputs and, the
/// figure to read, the median of each round's ratios. `--identical` runs three sides with telemetry off instead:
/// their ratios, which would be 1 on a quiet machine, show how far apart this machine puts sides that do the same.
fn telemetry_overhead(smoke: bool) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let addr = serve().await;
        let mut sides = Vec::new();
        let identical = std::env::args().any(|a| a == "--identical");
        let sides_run = if identical {
            [("off", None), ("off (2)", None), ("off (3)", None)]
        } else {
            [("off", None), ("on, 1.0", Some(1.0)), ("on, 0.01", Some(0.01))]
        };
        for (name, sampling) in sides_run {
            sides.push(telemetry_side(addr, name, sampling).await);
        }
        for _ in 0..500 {
            for side in &mut sides {
                side.client.call().await;
            }
        }
        for side in &sides {
            side.calls.fetch_add(500, Ordering::Relaxed);
        }
        if smoke {
            println!("request_path --telemetry: smoke run ok (use `cargo bench` for figures)");
        } else {
            let rounds = std::env::args()
                .skip_while(|a| a != "--rounds")
                .nth(1)
                .map_or(ROUNDS, |n| n.parse().expect("--rounds N"));
            let mut p50 = vec![Vec::new(); sides.len()];
            let mut rps = vec![Vec::new(); sides.len()];
            let mut cpu_per_call: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
            for round in 0..rounds {
                // New connections and the latency runs, in an order rotated every round as well.
                let order: Vec<usize> = (0..sides.len()).map(|turn| (round + turn) % sides.len()).collect();
                for &index in &order {
                    sides[index].reconnect().await;
                }
                for &index in &order {
                    let side = &mut sides[index];
                    let sorted = latencies(&mut side.client).await;
                    side.calls
                        .fetch_add(u64::try_from(sorted.len()).unwrap(), Ordering::Relaxed);
                    p50[index].push(percentile(&sorted, 500).as_secs_f64() * 1e6);
                }
                // The sides take turns in short slices, so that the machine's load, which comes and goes over
                // seconds on a shared machine, falls on all of them alike within the round; and each goes first,
                // second and third equally often (the order the sides run in is rotated every slice): a side
                // running after another pays for some of what that one left behind, which measured identical
                // sides 2% apart when the order was fixed.
                let mut round = vec![Slice { cpu: Some(Duration::ZERO), ..Slice::default() }; sides.len()];
                for slice in 0..SLICES as usize {
                    for turn in 0..sides.len() {
                        let index = (slice + turn) % sides.len();
                        round[index] +=
                            exported_throughput(&sides[index], THROUGHPUT_WINDOW / SLICES).await;
                    }
                }
                for (index, slice) in round.iter().enumerate() {
                    rps[index].push(slice.rate());
                    cpu_per_call[index]
                        .extend(slice.cpu.map(|cpu| cpu::micros_per_call(cpu, slice.calls)));
                }
            }
            // Each round's ratio to the side without telemetry, which ran just before: load that comes and goes
            // (a busy machine) moves a round's sides together more than it moves whole runs.
            // With the middle half of the rounds' ratios, for how far one round's figure is from another's.
            let ratios: Vec<[f64; 3]> = rps
                .iter()
                .map(|side| quartiles(side.iter().zip(&rps[0]).map(|(on, off)| on / off).collect()))
                .collect();
            // The same from CPU time per call: what the side without telemetry spends per call over what this side
            // spends, the throughput ratio a machine doing nothing else would see.
            let cpu_ratios: Vec<[f64; 3]> = cpu_per_call
                .iter()
                .map(|side| {
                    quartiles(side.iter().zip(&cpu_per_call[0]).map(|(on, off)| off / on).collect())
                })
                .collect();
            let cpu_per_call: Vec<f64> = cpu_per_call.into_iter().map(median).collect();
            let p50: Vec<f64> = p50.into_iter().map(median).collect();
            let rps: Vec<f64> = rps.into_iter().map(median).collect();
            println!(
                "request_path --telemetry (loopback, 2 runtime threads, medians of {rounds} rounds, sides taking turns \
                 in {SLICES} slices a round, spans exported within each side's time)"
            );
            for (index, side) in sides.iter().enumerate() {
                println!(
                    "  telemetry {:<9} c=1 p50 {:6.1} us | c={CONCURRENCY} {:7.0} req/s | ratio to off {:.3} \
                     (median of rounds {:.3}, middle half {:.3}-{:.3}) | CPU {:5.2} us/call, ratio {:.3} \
                     ({:.3}-{:.3})",
                    side.name,
                    p50[index],
                    rps[index],
                    rps[index] / rps[0],
                    ratios[index][1],
                    ratios[index][0],
                    ratios[index][2],
                    cpu_per_call[index],
                    cpu_ratios[index][1],
                    cpu_ratios[index][0],
                    cpu_ratios[index][2],
                );
            }
            if identical {
                println!("  identical sides: the ratios are this machine's noise between sides that do the same");
            } else {
                println!("  targets: >= 0.9 with sampling 1.0, >= 0.97 with 0.01");
            }
        }
        for side in sides {
            side.finish().await;
        }
    });
}
