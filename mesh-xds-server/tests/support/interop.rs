//! Interop fixtures: the xDS server on its own runtime (so a test can block on real peers while the server keeps
//! serving), grpcio backends, and a long-lived grpcio xDS client that sends calls in phases.
//!
//! Included with `#[path = "support/interop.rs"] mod interop;` by the interop test crates.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]
// A panic is how a test helper reports a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mesh_test_support::{ChildGuard, script, spawn_ready};
use mesh_xds_server::{ClientInfo, XdsServer, XdsServerBuilder, type_url};
use serde::{Deserialize, Serialize};

/// Every wait for the server or a peer is bounded by this.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(20);

/// The node id in [`grpcio_bootstrap`].
pub(crate) const GRPCIO_NODE: &str = "grpcio-client";

/// A gRPC C-core bootstrap pointing at `server` (for `GRPC_XDS_BOOTSTRAP_CONFIG`).
pub(crate) fn grpcio_bootstrap(server: SocketAddr) -> String {
    serde_json::json!({
        "xds_servers": [{
            "server_uri": server.to_string(),
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }],
        "node": {"id": GRPCIO_NODE, "locality": {}},
    })
    .to_string()
}

/// An [`XdsServer`] with the runtime it runs on. The test thread stays outside the runtime, so it can block on
/// peers (process output, HTTP polls) while the server keeps serving on the runtime's workers.
pub(crate) struct Harness {
    server: Option<XdsServer>,
    runtime: tokio::runtime::Runtime,
}

impl Harness {
    /// Binds `builder` on `127.0.0.1:0`.
    pub(crate) fn start(builder: XdsServerBuilder) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(builder.bind("127.0.0.1:0")).unwrap();
        Self {
            server: Some(server),
            runtime,
        }
    }

    pub(crate) fn server(&self) -> &XdsServer {
        self.server.as_ref().unwrap()
    }

    /// Waits (up to [`TIMEOUT`]) until `condition` holds for the connected streams.
    pub(crate) fn wait_for_clients<F>(&self, what: &str, condition: F) -> Vec<ClientInfo>
    where
        F: FnMut(&[ClientInfo]) -> bool,
    {
        let server = self.server();
        self.runtime
            .block_on(async {
                tokio::time::timeout(TIMEOUT, server.wait_for_clients(condition)).await
            })
            .unwrap_or_else(|_| {
                panic!(
                    "timed out after {TIMEOUT:?} waiting for {what}; clients: {:#?}",
                    server.clients()
                )
            })
    }

    /// Waits until the stream of `node` has ACKed `version` of `type_url`; returns that stream.
    pub(crate) fn wait_acked(&self, node: &str, type_url: &str, version: &str) -> ClientInfo {
        let clients = self.wait_for_clients(
            &format!("{node} to ACK version {version} of {type_url}"),
            |clients| {
                clients.iter().any(|client| {
                    client.is_node(node) && client.acked_version(type_url) == Some(version)
                })
            },
        );
        clients
            .into_iter()
            .find(|client| client.is_node(node))
            .unwrap()
    }

    /// Waits until `node` has ACKed `version` of all four resource types, and checks it NACKed nothing.
    pub(crate) fn assert_acked_everything(&self, node: &str, version: &str) -> ClientInfo {
        let clients = self.wait_for_clients(
            &format!("{node} to ACK version {version} of every type"),
            |clients| {
                clients.iter().any(|client| {
                    client.is_node(node)
                        && type_url::ALL
                            .iter()
                            .all(|type_url| client.acked_version(type_url) == Some(version))
                })
            },
        );
        let client = clients
            .into_iter()
            .find(|client| client.is_node(node))
            .unwrap();
        assert_no_nacks(&client);
        client
    }

    /// Shuts the server down and checks it had not failed. Stop the peers first, so no stream holds it open.
    pub(crate) fn shutdown(mut self) {
        let server = self.server.take().unwrap();
        self.runtime.block_on(server.shutdown()).unwrap();
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // A test that failed early still stops the server (bounded by the server's own grace period).
        if let Some(server) = self.server.take() {
            let _ = self.runtime.block_on(server.shutdown());
        }
    }
}

/// Checks that no resource type of `client` was ever NACKed.
pub(crate) fn assert_no_nacks(client: &ClientInfo) {
    for (type_url, status) in &client.types {
        assert_eq!(
            status.nack_count, 0,
            "{type_url} was NACKed: {:?}",
            status.last_nack
        );
    }
}

/// grpcio backends answering with their server id, each on `127.0.0.1` and a port of its own.
pub(crate) struct Backends {
    addresses: BTreeMap<String, SocketAddr>,
    _guards: Vec<ChildGuard>,
}

impl Backends {
    /// Starts one backend per id (answering `/helloworld.Greeter/SayHello`), in parallel.
    pub(crate) fn start(python: &Path, ids: &[&str]) -> Self {
        let specs: Vec<(&str, &[&str])> = ids.iter().map(|id| (*id, &[][..])).collect();
        Self::start_with_methods(python, &specs)
    }

    /// Starts one backend per `(id, methods)`: it answers `methods`, or `SayHello` when `methods` is empty.
    pub(crate) fn start_with_methods(python: &Path, specs: &[(&str, &[&str])]) -> Self {
        let started: Vec<(String, SocketAddr, ChildGuard)> = std::thread::scope(|scope| {
            let handles: Vec<_> = specs
                .iter()
                .map(|(id, methods)| {
                    scope.spawn(move || {
                        let mut command = Command::new(python);
                        command.arg(script("greeter_server.py")).args([
                            "--address",
                            "127.0.0.1:0",
                            "--server-id",
                            id,
                        ]);
                        for method in *methods {
                            command.args(["--method", method]);
                        }
                        let (guard, ready, _lines) =
                            spawn_ready(&format!("backend {id}"), &mut command, TIMEOUT).unwrap();
                        let port: u16 = ready.trim_start_matches("READY ").trim().parse().unwrap();
                        (
                            (*id).to_owned(),
                            SocketAddr::from(([127, 0, 0, 1], port)),
                            guard,
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .collect()
        });
        let mut addresses = BTreeMap::new();
        let mut guards = Vec::new();
        for (id, address, guard) in started {
            addresses.insert(id, address);
            guards.push(guard);
        }
        Self {
            addresses,
            _guards: guards,
        }
    }

    /// The backend's `IP:PORT`.
    pub(crate) fn address(&self, id: &str) -> String {
        self.socket_address(id).to_string()
    }

    pub(crate) fn socket_address(&self, id: &str) -> SocketAddr {
        *self
            .addresses
            .get(id)
            .unwrap_or_else(|| panic!("no backend {id}"))
    }
}

/// One phase of calls for [`PhasedClient::run`] (see `test-support/python/xds_phases.py`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Phase {
    calls: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<String>,
    metadata: BTreeMap<String, String>,
    wait_for: Vec<String>,
    wait_timeout: f64,
    warmup: bool,
}

impl Phase {
    /// `calls` calls to `SayHello`, counted after a first successful call.
    pub(crate) fn calls(calls: u32) -> Self {
        Self {
            calls,
            method: None,
            metadata: BTreeMap::new(),
            wait_for: Vec::new(),
            wait_timeout: TIMEOUT.as_secs_f64(),
            warmup: true,
        }
    }

    /// Counts from the first call on, with no wait for a first success (for calls expected to fail; the channel
    /// must already have its config).
    pub(crate) fn without_warmup(mut self) -> Self {
        self.warmup = false;
        self
    }

    /// Counts only once one of `servers` answered: a config change reaches the client asynchronously.
    pub(crate) fn after_reply_from(mut self, servers: &[&str]) -> Self {
        self.wait_for = servers.iter().map(|&server| server.to_owned()).collect();
        self
    }

    /// Calls `method` (a path) instead of `SayHello`.
    pub(crate) fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_owned());
        self
    }

    /// Sends the request header `name: value`.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.metadata.insert(name.to_owned(), value.to_owned());
        self
    }
}

/// Calls by answering server and errors by status code.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Counts {
    pub(crate) by_server: BTreeMap<String, u64>,
    pub(crate) errors: BTreeMap<String, u64>,
}

/// What a phase did: the counted calls, and the calls made while waiting for the first wanted reply.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Outcome {
    pub(crate) by_server: BTreeMap<String, u64>,
    pub(crate) errors: BTreeMap<String, u64>,
    /// The first counted call's error, `CODE: details`.
    pub(crate) first_error: Option<String>,
    pub(crate) warmup: Counts,
    pub(crate) waited: f64,
    #[serde(default)]
    pub(crate) timeout: Option<String>,
}

impl Outcome {
    /// Checks the counted calls all succeeded and were served by `servers` only, each at least once; returns the
    /// counts.
    pub(crate) fn assert_served_by(&self, servers: &[&str]) -> &BTreeMap<String, u64> {
        assert!(
            self.timeout.is_none() && self.errors.is_empty(),
            "calls failed: {self:?}"
        );
        let served: Vec<&str> = self.by_server.keys().map(String::as_str).collect();
        let mut expected = servers.to_vec();
        expected.sort_unstable();
        assert_eq!(served, expected, "unexpected servers: {self:?}");
        &self.by_server
    }

    /// Calls served by `server` among the counted calls.
    pub(crate) fn count(&self, server: &str) -> u64 {
        self.by_server.get(server).copied().unwrap_or(0)
    }
}

/// `test-support/python/xds_phases.py`: one grpcio channel kept across phases, so config pushes are seen by a
/// running client.
pub(crate) struct PhasedClient {
    // Dropped first: closing stdin ends the script; the guard then kills and reaps it in any case.
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    _guard: ChildGuard,
}

impl PhasedClient {
    /// Starts a client of `target` with `bootstrap` in `GRPC_XDS_BOOTSTRAP_CONFIG`.
    pub(crate) fn start(python: &Path, target: &str, bootstrap: &str) -> Self {
        let mut child = Command::new(python)
            .arg(script("xds_phases.py"))
            .args(["--target", target])
            .env_remove("GRPC_XDS_BOOTSTRAP")
            .env("GRPC_XDS_BOOTSTRAP_CONFIG", bootstrap)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let guard = ChildGuard::new("xds_phases.py", child);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let client = Self {
            stdin,
            lines,
            _guard: guard,
        };
        let ready = client.next_line(TIMEOUT);
        assert_eq!(ready, "READY", "xds_phases.py did not start");
        client
    }

    /// Runs one phase and returns what happened.
    pub(crate) fn run(&mut self, phase: &Phase) -> Outcome {
        let command = serde_json::to_string(phase).unwrap();
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        // The wait, plus generous time for the counted calls (each is a local round trip).
        let limit = TIMEOUT + Duration::from_secs(20);
        let line = self.next_line(limit);
        serde_json::from_str(&line)
            .unwrap_or_else(|error| panic!("bad phase output {line:?}: {error}"))
    }

    fn next_line(&self, limit: Duration) -> String {
        self.lines.recv_timeout(limit).unwrap_or_else(|error| {
            panic!("no output from xds_phases.py within {limit:?}: {error}")
        })
    }
}
