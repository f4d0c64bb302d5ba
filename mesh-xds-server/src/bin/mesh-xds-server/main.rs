//! `mesh-xds-server --config mesh.yaml --listen 127.0.0.1:18000`: serve a mesh file over ADS, reloading it when
//! it changes, until SIGINT or SIGTERM.

mod args;

use std::path::Path;
use std::process::ExitCode;

use mesh_xds_server::XdsServer;
use mesh_xds_server::mesh::MeshConfig;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::args::{Command, USAGE};

// A command-line tool talks to its user on the terminal: help and results on stdout, usage errors on stderr.
#[allow(clippy::print_stdout, clippy::print_stderr)]
fn main() -> ExitCode {
    let command = match args::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(usage_error) => {
            eprintln!("mesh-xds-server: {usage_error}\nRun `mesh-xds-server --help` for usage.");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("mesh-xds-server {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Check { config } => match MeshConfig::from_file(&config) {
            Ok(mesh) => {
                println!(
                    "{}: ok ({} services, {} clusters, {} server listeners)",
                    config.display(),
                    mesh.services.len(),
                    mesh.clusters.len(),
                    mesh.servers.len()
                );
                ExitCode::SUCCESS
            }
            Err(mesh_error) => {
                eprintln!("mesh-xds-server: {mesh_error}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { config, listen } => {
            init_logging();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(io_error) => {
                    error!(error = %io_error, "cannot start the async runtime");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(serve(&config, listen))
        }
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

// The bound address goes to stdout so that scripts using `--listen 127.0.0.1:0` can learn the port.
#[allow(clippy::print_stdout)]
async fn serve(config: &Path, listen: std::net::SocketAddr) -> ExitCode {
    // Listen for the stop signals before anyone learns the address: a supervisor may send SIGTERM as soon as it
    // sees the listening line, and a signal that arrived before its handler would kill the process outright
    // (the default action), with no graceful shutdown.
    let stop = StopSignals::listen();
    let server = match XdsServer::builder().config_file(config).bind(listen).await {
        Ok(server) => server,
        Err(server_error) => {
            error!(error = %server_error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    println!("mesh-xds-server listening on {}", server.local_addr());
    info!(config = %config.display(), "serving; stop with SIGINT or SIGTERM");
    stop.wait().await;
    info!("shutting down");
    match server.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(server_error) => {
            error!(error = %server_error, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM and SIGINT, caught from [`listen`](Self::listen) on.
struct StopSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let catch = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(caught) => Some(caught),
                Err(signal_error) => {
                    warn!(error = %signal_error, "cannot listen for {name}");
                    None
                }
            };
            Self {
                terminate: catch(SignalKind::terminate(), "SIGTERM"),
                interrupt: catch(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Returns when either signal arrives, or at once when neither can be listened for.
    async fn wait(self) {
        #[cfg(unix)]
        {
            async fn arrival(signal: Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            if self.terminate.is_none() && self.interrupt.is_none() {
                warn!("cannot listen for SIGINT or SIGTERM; stopping");
                return;
            }
            tokio::select! {
                () = arrival(self.terminate) => {}
                () = arrival(self.interrupt) => {}
            }
        }
        #[cfg(not(unix))]
        if let Err(signal_error) = tokio::signal::ctrl_c().await {
            warn!(error = %signal_error, "cannot listen for SIGINT; stopping");
        }
    }
}
