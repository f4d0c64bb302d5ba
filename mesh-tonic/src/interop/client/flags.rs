//! The interop client's command line (../shared/XDS-FEATURES.md, "The interop contract"; gRPC's
//! `doc/xds-test-descriptions.md`): `--flag=value` or `--flag value`; booleans also bare (`--flag`) or negated
//! (`--noflag`). A usage error names the flag.

use std::time::Duration;

use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};

use super::messages::RpcType;

/// Flags and their defaults, for `--help`.
pub const USAGE: &str = "\
usage: xds-interop-client [flags]
  --server=TARGET            target, e.g. xds:///NAME (default localhost:8080); the bootstrap comes from
                             GRPC_XDS_BOOTSTRAP or GRPC_XDS_BOOTSTRAP_CONFIG
  --stats_port=N             port on 127.0.0.1 for LoadBalancerStatsService, XdsUpdateClientConfigureService and
                             CSDS (default 8081; 0 picks one)
  --qps=N                    RPCs per second of each configured type, per channel (default 1)
  --num_channels=N           channels to send on (default 1)
  --rpc=TYPES                comma-separated UnaryCall, EmptyCall (default UnaryCall)
  --metadata=LIST            comma-separated TYPE:KEY:VALUE headers, e.g. EmptyCall:xds_md:exact_match
  --rpc_timeout_sec=N        deadline of every RPC in seconds (default 20)
  --fail_on_failed_rpcs[=BOOL]  exit 1 when an RPC fails after one has succeeded (default false)
  --secure_mode[=BOOL]       xDS credentials (default false): see the note printed when set
  --print_response[=BOOL]    print each RPC's peer or status (default false)
Prints `listening stats=ADDR` on stdout once the stats port is bound.";

/// The client's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFlags {
    /// The target, e.g. `xds:///NAME`.
    pub server: String,
    /// The stats port on 127.0.0.1.
    pub stats_port: u16,
    /// RPCs per second of each type, per channel.
    pub qps: u32,
    /// Channels to send on.
    pub num_channels: u32,
    /// RPC types to send.
    pub rpc: Vec<RpcType>,
    /// Headers per RPC type.
    pub metadata: Vec<(RpcType, AsciiMetadataKey, AsciiMetadataValue)>,
    /// The default deadline.
    pub rpc_timeout: Duration,
    /// Exit when an RPC fails after one has succeeded.
    pub fail_on_failed_rpcs: bool,
    /// `--secure_mode`.
    pub secure_mode: bool,
    /// Print each RPC's outcome.
    pub print_response: bool,
}

impl Default for ClientFlags {
    fn default() -> Self {
        Self {
            server: "localhost:8080".to_owned(),
            stats_port: 8081,
            qps: 1,
            num_channels: 1,
            rpc: vec![RpcType::UnaryCall],
            metadata: Vec::new(),
            rpc_timeout: Duration::from_secs(20),
            fail_on_failed_rpcs: false,
            secure_mode: false,
            print_response: false,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run with these flags.
    Run(ClientFlags),
    /// Print [`USAGE`].
    Help,
}

/// A usage error, naming the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

const BOOLEANS: [&str; 3] = ["fail_on_failed_rpcs", "secure_mode", "print_response"];
const VALUED: [&str; 7] = [
    "server",
    "stats_port",
    "qps",
    "num_channels",
    "rpc",
    "metadata",
    "rpc_timeout_sec",
];

fn parse_bool(flag: &str, value: Option<&str>) -> Result<bool, UsageError> {
    match value {
        None | Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(UsageError(format!(
            "--{flag}: expected true or false, got {other:?}"
        ))),
    }
}

fn parse_number<T: std::str::FromStr>(
    flag: &str,
    value: &str,
    what: &str,
) -> Result<T, UsageError> {
    value
        .parse()
        .map_err(|_| UsageError(format!("--{flag}: expected {what}, got {value:?}")))
}

/// Parses `UnaryCall,EmptyCall`.
fn parse_rpc_types(value: &str) -> Result<Vec<RpcType>, UsageError> {
    let mut types = Vec::new();
    for name in value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let rpc = RpcType::from_method(name).ok_or_else(|| {
            UsageError(format!(
                "--rpc: unknown RPC {name:?}; expected UnaryCall or EmptyCall"
            ))
        })?;
        if !types.contains(&rpc) {
            types.push(rpc);
        }
    }
    Ok(types)
}

/// Parses `EmptyCall:key:value,UnaryCall:key:value`. Values cannot hold commas (use `Configure` for those).
fn parse_metadata(
    value: &str,
) -> Result<Vec<(RpcType, AsciiMetadataKey, AsciiMetadataValue)>, UsageError> {
    let mut headers = Vec::new();
    for entry in value.split(',').filter(|entry| !entry.is_empty()) {
        let mut parts = entry.splitn(3, ':');
        let (Some(rpc), Some(key), Some(header_value)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(UsageError(format!(
                "--metadata: {entry:?} is not TYPE:KEY:VALUE"
            )));
        };
        let rpc = RpcType::from_method(rpc).ok_or_else(|| {
            UsageError(format!(
                "--metadata: unknown RPC {rpc:?} in {entry:?}; expected UnaryCall or EmptyCall"
            ))
        })?;
        let key = key.to_ascii_lowercase().parse().map_err(|_| {
            UsageError(format!(
                "--metadata: {key:?} is not a valid ASCII header name"
            ))
        })?;
        let header_value = header_value.parse().map_err(|_| {
            UsageError(format!(
                "--metadata: {header_value:?} is not a valid header value"
            ))
        })?;
        headers.push((rpc, key, header_value));
    }
    Ok(headers)
}

/// Parses the arguments (without the program name).
///
/// # Errors
/// A [`UsageError`] naming the flag that is unknown, lacks a value or has a bad one.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, UsageError> {
    let mut flags = ClientFlags::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" || arg == "-help" {
            return Ok(Command::Help);
        }
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(UsageError(format!("unexpected argument {arg:?}")));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (flag, None),
        };
        if BOOLEANS.contains(&name) {
            let on = parse_bool(name, inline)?;
            match name {
                "fail_on_failed_rpcs" => flags.fail_on_failed_rpcs = on,
                "secure_mode" => flags.secure_mode = on,
                _ => flags.print_response = on,
            }
            continue;
        }
        if let Some(negated) = name.strip_prefix("no")
            && BOOLEANS.contains(&negated)
            && inline.is_none()
        {
            match negated {
                "fail_on_failed_rpcs" => flags.fail_on_failed_rpcs = false,
                "secure_mode" => flags.secure_mode = false,
                _ => flags.print_response = false,
            }
            continue;
        }
        if !VALUED.contains(&name) {
            return Err(UsageError(format!("unknown flag --{name}")));
        }
        let value = match inline {
            Some(value) => value.to_owned(),
            None => args
                .next()
                .ok_or_else(|| UsageError(format!("--{name}: missing value")))?,
        };
        match name {
            "server" if value.is_empty() => {
                return Err(UsageError("--server: must not be empty".to_owned()));
            }
            "server" => flags.server = value,
            "stats_port" => flags.stats_port = parse_number(name, &value, "a port (0-65535)")?,
            "qps" => flags.qps = parse_number(name, &value, "a number of RPCs per second")?,
            "num_channels" => {
                flags.num_channels = parse_number(name, &value, "a number of channels")?;
                if flags.num_channels == 0 {
                    return Err(UsageError("--num_channels: must be at least 1".to_owned()));
                }
            }
            "rpc" => flags.rpc = parse_rpc_types(&value)?,
            "metadata" => flags.metadata = parse_metadata(&value)?,
            // "rpc_timeout_sec"
            _ => {
                let seconds: u64 = parse_number(name, &value, "a number of seconds")?;
                if seconds == 0 {
                    return Err(UsageError(
                        "--rpc_timeout_sec: must be at least 1".to_owned(),
                    ));
                }
                flags.rpc_timeout = Duration::from_secs(seconds);
            }
        }
    }
    Ok(Command::Run(flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<ClientFlags, UsageError> {
        match parse(args.iter().map(|arg| (*arg).to_owned()))? {
            Command::Run(flags) => Ok(flags),
            Command::Help => Err(UsageError("help".to_owned())),
        }
    }

    #[test]
    fn defaults() {
        assert_eq!(run(&[]).unwrap(), ClientFlags::default());
    }

    #[test]
    fn every_flag_in_both_forms() {
        let flags = run(&[
            "--server=xds:///svc",
            "--stats_port",
            "0",
            "--qps=50",
            "--num_channels=2",
            "--rpc=EmptyCall,UnaryCall",
            "--metadata=EmptyCall:xds_md:empty_ytpme,UnaryCall:X-Num:159",
            "--rpc_timeout_sec=3",
            "--fail_on_failed_rpcs=true",
            "--secure_mode=false",
            "--print_response",
        ])
        .unwrap();
        assert_eq!(flags.server, "xds:///svc");
        assert_eq!(
            (flags.stats_port, flags.qps, flags.num_channels),
            (0, 50, 2)
        );
        assert_eq!(flags.rpc, [RpcType::EmptyCall, RpcType::UnaryCall]);
        assert_eq!(flags.metadata.len(), 2);
        assert_eq!(flags.metadata[1].1.as_str(), "x-num");
        assert_eq!(flags.rpc_timeout, Duration::from_secs(3));
        assert!(flags.fail_on_failed_rpcs && !flags.secure_mode && flags.print_response);
        let flags = run(&["--fail_on_failed_rpcs", "--nofail_on_failed_rpcs"]).unwrap();
        assert!(!flags.fail_on_failed_rpcs);
    }

    #[test]
    fn usage_errors_name_the_flag() {
        for (args, flag) in [
            (&["--qps=fast"][..], "--qps"),
            (&["--stats_port=70000"][..], "--stats_port"),
            (&["--num_channels=0"][..], "--num_channels"),
            (&["--rpc=StreamingCall"][..], "--rpc"),
            (&["--metadata=EmptyCall:novalue"][..], "--metadata"),
            (&["--metadata=Bogus:k:v"][..], "--metadata"),
            (&["--rpc_timeout_sec=-1"][..], "--rpc_timeout_sec"),
            (&["--secure_mode=maybe"][..], "--secure_mode"),
            (&["--server"][..], "--server"),
            (&["--colour=red"][..], "--colour"),
        ] {
            let UsageError(message) = run(args).unwrap_err();
            assert!(message.contains(flag), "{args:?}: {message}");
        }
    }
}
