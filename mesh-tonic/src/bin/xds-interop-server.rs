//! `xds-interop-server`: gRPC's xDS interop test server (../shared/XDS-FEATURES.md, "The interop contract";
//! grpc/grpc `doc/xds-test-descriptions.md`).
//!
//! Serves `grpc.testing.TestService` on `--port`, and `grpc.testing.XdsUpdateHealthService` with
//! `grpc.health.v1.Health` on `--maintenance_port` (on `--port` too when the two are the same). Prints
//! `listening test=ADDR maintenance=ADDR` on stdout once bound.
//!
//! With `--secure_mode=true`, as grpc-go's interop server does, the test port is an xDS-enabled server (gRFC A36,
//! [`mesh_tonic::server`]) configured by the control plane named in `GRPC_XDS_BOOTSTRAP` /
//! `GRPC_XDS_BOOTSTRAP_CONFIG` (which must have `server_listener_resource_name_template`); it serves only under its
//! server Listener. The maintenance port stays plain, must differ from `--port`, and also serves CSDS. Filter
//! chains with a `DownstreamTlsContext` terminate (mutual) TLS with the bootstrap's `certificate_providers`.
//!
//! Telemetry: in secure mode, with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the test port records gRFC A66's server
//! metrics and a span per call (continuing the caller's `traceparent`) and exports them over OTLP, configured by the
//! standard `OTEL_*` variables (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`,
//! `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_BSP_SCHEDULE_DELAY`, ...); the destination is printed on stderr. Exports
//! are periodic: a killed server loses what it had not sent yet. Without secure mode the server is a plain tonic
//! server and records nothing.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool reports on stdout and stderr

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use mesh_tonic::Mesh;
use mesh_tonic::interop::{TestServiceServer, XdsUpdateHealthServer};
use mesh_xds_client::csds::CsdsService;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

const USAGE: &str = "\
usage: xds-interop-server [flags]
  --port=N               port for grpc.testing.TestService (default 8080)
  --maintenance_port=N   port for XdsUpdateHealthService and grpc.health.v1.Health (default: --port)
  --server_id=ID         server id in UnaryCall responses (default: the hostname)
  --hostname=NAME        hostname in responses and the `hostname` header (default: --server_id, else the
                         machine's hostname)
  --secure_mode[=BOOL]   serve --port as an xDS-enabled server (gRFC A36) under the bootstrap in
                         GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG (default false)
  --bind_address=IP      address to listen on (default 0.0.0.0)
  --address_type=TYPE    accepted and ignored
  --enable_csm_observability[=BOOL]  accepted and ignored
Flags take `--flag=value` or `--flag value`; booleans also take the bare `--flag`.";

/// The default `--port` of gRPC's interop servers.
const DEFAULT_PORT: u16 = 8080;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Flags {
    port: u16,
    maintenance_port: u16,
    server_id: String,
    hostname: String,
    bind_address: IpAddr,
    secure_mode: bool,
    notes: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Run(Flags),
    Help,
}

/// A usage error: what is wrong, naming the flag.
#[derive(Debug, PartialEq, Eq)]
struct UsageError(String);

fn parse_bool(flag: &str, value: Option<&str>) -> Result<bool, UsageError> {
    match value {
        None | Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(UsageError(format!(
            "--{flag}: expected true or false, got {other:?}"
        ))),
    }
}

fn parse_port(flag: &str, value: &str) -> Result<u16, UsageError> {
    value.parse().map_err(|_| {
        UsageError(format!(
            "--{flag}: expected a port (0-65535), got {value:?}"
        ))
    })
}

/// Parses the arguments (without the program name). `machine_hostname` is the default hostname.
fn parse(
    args: impl IntoIterator<Item = String>,
    machine_hostname: impl FnOnce() -> String,
) -> Result<Parsed, UsageError> {
    let mut port = DEFAULT_PORT;
    let mut maintenance_port = None;
    let mut server_id = None;
    let mut hostname = None;
    let mut bind_address = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let mut secure_mode = false;
    let mut notes = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" || arg == "-help" {
            return Ok(Parsed::Help);
        }
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(UsageError(format!("unexpected argument {arg:?}")));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (flag.to_owned(), None),
        };
        let name = name.as_str();
        match name {
            "secure_mode" | "enable_csm_observability" => {
                let on = parse_bool(name, inline.as_deref())?;
                if name == "secure_mode" {
                    secure_mode = on;
                }
                if name == "enable_csm_observability" && on {
                    notes.push("--enable_csm_observability is ignored".to_owned());
                }
                continue;
            }
            "nosecure_mode" if inline.is_none() => {
                secure_mode = false;
                continue;
            }
            "port" | "maintenance_port" | "server_id" | "hostname" | "bind_address"
            | "address_type" => {}
            _ => return Err(UsageError(format!("unknown flag --{name}"))),
        }
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .ok_or_else(|| UsageError(format!("--{name}: missing value")))?,
        };
        match name {
            "port" => port = parse_port(name, &value)?,
            "maintenance_port" => maintenance_port = Some(parse_port(name, &value)?),
            "server_id" | "hostname" if value.is_empty() => {
                return Err(UsageError(format!("--{name}: must not be empty")));
            }
            "server_id" => server_id = Some(value),
            "hostname" => hostname = Some(value),
            "bind_address" => {
                bind_address = value.parse().map_err(|_| {
                    UsageError(format!(
                        "--bind_address: expected an IP address, got {value:?}"
                    ))
                })?;
            }
            // "address_type"
            _ => notes.push(format!(
                "--address_type={value} is ignored: the server listens on --bind_address"
            )),
        }
    }
    // Either flag names the peer.
    let hostname = hostname
        .or_else(|| server_id.clone())
        .unwrap_or_else(machine_hostname);
    if hostname.parse::<http::HeaderValue>().is_err() {
        return Err(UsageError(format!(
            "--hostname: {hostname:?} is not a valid header value"
        )));
    }
    let maintenance_port = maintenance_port.unwrap_or(port);
    // grpc-go: the maintenance server stays outside the control plane's reach, so it needs its own port.
    if secure_mode && maintenance_port == port && port != 0 {
        return Err(UsageError(
            "--secure_mode=true: --maintenance_port must differ from --port".to_owned(),
        ));
    }
    Ok(Parsed::Run(Flags {
        port,
        maintenance_port,
        server_id: server_id.unwrap_or_else(|| hostname.clone()),
        hostname,
        bind_address,
        secure_mode,
        notes,
    }))
}

/// The machine's hostname, from the kernel, `/etc/hostname`, `$HOSTNAME` or the `hostname` command.
fn machine_hostname() -> String {
    let from_file = |path: &str| std::fs::read_to_string(path).ok();
    let from_command = || {
        std::process::Command::new("hostname")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
    };
    [
        from_file("/proc/sys/kernel/hostname"),
        from_file("/etc/hostname"),
        std::env::var("HOSTNAME").ok(),
    ]
    .into_iter()
    .flatten()
    .chain(
        std::iter::from_fn(|| Some(from_command()))
            .take(1)
            .flatten(),
    )
    .map(|name| name.trim().to_owned())
    .find(|name| !name.is_empty())
    .unwrap_or_else(|| "localhost".to_owned())
}

async fn run(flags: Flags) -> Result<(), String> {
    let test = TestServiceServer::new(&flags.hostname, &flags.server_id)?;
    let (reporter, health) = tonic_health::server::health_reporter();
    let update_health = XdsUpdateHealthServer::new(reporter);
    update_health
        .set(tonic_health::ServingStatus::Serving)
        .await;

    let bind = |port: u16| async move {
        let address = SocketAddr::new(flags.bind_address, port);
        TcpListener::bind(address)
            .await
            .map_err(|error| format!("cannot listen on {address}: {error}"))
    };
    let listener = bind(flags.port).await?;
    let test_address = listener.local_addr().map_err(|error| error.to_string())?;
    let incoming = |listener: TcpListener| TcpIncoming::from(listener).with_nodelay(Some(true));

    if flags.secure_mode {
        let mesh = Mesh::builder()
            .bootstrap_from_env()
            .telemetry_from_env()
            .build()
            .await
            .map_err(|error| error.to_string())?;
        match mesh.telemetry() {
            Some(telemetry) => eprintln!(
                "xds-interop-server: metrics and traces go to {} over OTLP/gRPC",
                telemetry.config().endpoint.as_deref().unwrap_or("nowhere")
            ),
            None => eprintln!(
                "xds-interop-server: telemetry off (set OTEL_EXPORTER_OTLP_ENDPOINT to export metrics and traces)"
            ),
        }
        let server = mesh
            .server()
            .on_serving_state(|state| eprintln!("xds-interop-server: test port {state}"))
            .serve_with_listener(listener, Routes::new(test))
            .await
            .map_err(|error| error.to_string())?;
        let maintenance = bind(flags.maintenance_port).await?;
        let maintenance_address = maintenance
            .local_addr()
            .map_err(|error| error.to_string())?;
        println!("listening test={test_address} maintenance={maintenance_address}");
        let result = Server::builder()
            .add_service(update_health)
            .add_service(health)
            .add_optional_service(mesh.csds_service().map(CsdsService::into_server))
            .serve_with_incoming(incoming(maintenance))
            .await
            .map_err(|error| format!("maintenance server failed: {error}"));
        server.shutdown().await;
        return result;
    }

    if flags.maintenance_port == flags.port {
        println!("listening test={test_address} maintenance={test_address}");
        Server::builder()
            .add_service(test)
            .add_service(update_health)
            .add_service(health)
            .serve_with_incoming(incoming(listener))
            .await
            .map_err(|error| format!("server failed: {error}"))
    } else {
        let maintenance = bind(flags.maintenance_port).await?;
        let maintenance_address = maintenance
            .local_addr()
            .map_err(|error| error.to_string())?;
        println!("listening test={test_address} maintenance={maintenance_address}");
        let serving = Server::builder()
            .add_service(test)
            .serve_with_incoming(incoming(listener));
        let maintaining = Server::builder()
            .add_service(update_health)
            .add_service(health)
            .serve_with_incoming(incoming(maintenance));
        tokio::select! {
            result = serving => result.map_err(|error| format!("test server failed: {error}")),
            result = maintaining => {
                result.map_err(|error| format!("maintenance server failed: {error}"))
            }
        }
    }
}

fn main() -> ExitCode {
    let flags = match parse(std::env::args().skip(1), machine_hostname) {
        Ok(Parsed::Run(flags)) => flags,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(UsageError(message)) => {
            eprintln!("xds-interop-server: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    for note in &flags.notes {
        eprintln!("xds-interop-server: note: {note}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("xds-interop-server: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xds-interop-server: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_flags(args: &[&str]) -> Result<Flags, UsageError> {
        match parse(args.iter().map(|arg| (*arg).to_owned()), || {
            "machine".to_owned()
        })? {
            Parsed::Run(flags) => Ok(flags),
            Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn defaults() {
        let flags = run_flags(&[]).unwrap();
        assert_eq!((flags.port, flags.maintenance_port), (8080, 8080));
        assert_eq!(
            (flags.hostname.as_str(), flags.server_id.as_str()),
            ("machine", "machine")
        );
        assert_eq!(flags.bind_address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert!(!flags.secure_mode);
    }

    #[test]
    fn secure_mode_needs_its_own_maintenance_port() {
        let flags = run_flags(&["--secure_mode=true", "--port=1", "--maintenance_port=2"]).unwrap();
        assert!(flags.secure_mode);
        assert!(
            run_flags(&["--secure_mode", "--port=0"])
                .unwrap()
                .secure_mode
        );
        assert!(
            !run_flags(&["--secure_mode", "--nosecure_mode", "--port=3"])
                .unwrap()
                .secure_mode
        );
    }

    #[test]
    fn both_forms_and_either_name() {
        let flags = run_flags(&[
            "--port=1",
            "--maintenance_port",
            "2",
            "--server_id=s",
            "--secure_mode=false",
            "--bind_address=127.0.0.1",
        ])
        .unwrap();
        assert_eq!((flags.port, flags.maintenance_port), (1, 2));
        assert_eq!(
            (flags.hostname.as_str(), flags.server_id.as_str()),
            ("s", "s")
        );
        let flags = run_flags(&["--hostname=h", "--address_type=ipv4"]).unwrap();
        assert_eq!(
            (flags.hostname.as_str(), flags.server_id.as_str()),
            ("h", "h")
        );
        assert_eq!(flags.notes.len(), 1);
    }

    #[test]
    fn usage_errors_name_the_flag() {
        for (args, flag) in [
            (&["--port=x"][..], "--port"),
            (&["--maintenance_port"][..], "--maintenance_port"),
            (&["--secure_mode", "--port=5"][..], "--maintenance_port"),
            (&["--secure_mode=maybe"][..], "--secure_mode"),
            (&["--bind_address=nowhere"][..], "--bind_address"),
            (&["--colour=red"][..], "--colour"),
        ] {
            let UsageError(message) = run_flags(args).unwrap_err();
            assert!(message.contains(flag), "{args:?}: {message}");
        }
    }
}
