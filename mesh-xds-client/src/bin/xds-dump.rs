//! `xds-dump`: subscribe to one target through an xDS management server and print what arrived.
//!
//! ```text
//! xds-dump --bootstrap FILE --target xds:///NAME [--wait-secs N]
//! ```
//!
//! Prints one JSON document: the target, whether its configuration became complete (gRFC A74), the error if not,
//! and the config dump of every resource involved (status, version, NACK errors, values). Exits 0 when the target's
//! configuration is complete, 1 when it is not within the wait (the reason is in the JSON and on stderr), and 2 on
//! bad arguments or an unusable bootstrap.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool reports on stdout and stderr

use std::process::ExitCode;
use std::time::Duration;

use mesh_xds_client::bootstrap::Bootstrap;
use mesh_xds_client::client::XdsClient;

const USAGE: &str = "usage: xds-dump --bootstrap FILE --target xds:///NAME [--wait-secs N]";

struct Args {
    bootstrap: String,
    target: String,
    wait: Duration,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut bootstrap, mut target, mut wait) = (None, None, Duration::from_secs(10));
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--bootstrap" => bootstrap = Some(value("--bootstrap")?),
            "--target" => target = Some(value("--target")?),
            "--wait-secs" => {
                let text = value("--wait-secs")?;
                let secs: f64 = text
                    .parse()
                    .map_err(|_| format!("--wait-secs: {text:?} is not a number of seconds"))?;
                wait = Duration::try_from_secs_f64(secs)
                    .map_err(|_| format!("--wait-secs: {text:?} is not a valid duration"))?;
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        bootstrap: bootstrap.ok_or("--bootstrap is required")?,
        target: target.ok_or("--target is required")?,
        wait,
    })
}

/// Splits `xds://[authority]/name` into the authority (if any) and the name.
fn parse_target(target: &str) -> Result<(Option<&str>, &str), String> {
    let rest = target
        .strip_prefix("xds://")
        .ok_or_else(|| format!("--target {target:?}: must start with xds://"))?;
    let (authority, name) = rest.split_once('/').ok_or_else(|| {
        format!("--target {target:?}: expected xds:///NAME or xds://AUTHORITY/NAME")
    })?;
    if name.is_empty() {
        return Err(format!("--target {target:?}: the name is empty"));
    }
    Ok(((!authority.is_empty()).then_some(authority), name))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("xds-dump: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (authority, name) = match parse_target(&args.target) {
        Ok(parts) => parts,
        Err(message) => {
            eprintln!("xds-dump: {message}");
            return ExitCode::from(2);
        }
    };
    let bootstrap = match Bootstrap::from_file(&args.bootstrap) {
        Ok(bootstrap) => bootstrap,
        Err(e) => {
            eprintln!("xds-dump: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match bootstrap.client_listener_name(authority, name) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("xds-dump: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("xds-dump: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run(bootstrap, &args, &listener, name))
}

async fn run(bootstrap: Bootstrap, args: &Args, listener: &str, authority: &str) -> ExitCode {
    let client = match XdsClient::start(bootstrap) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("xds-dump: {e}");
            return ExitCode::from(2);
        }
    };
    let mut target = client.watch_target(listener, authority);
    let outcome = tokio::time::timeout(args.wait, target.changed()).await;
    let dump = client.config_dump().await.unwrap_or_default();
    let (status, error, version) = match outcome {
        Ok(Some(Ok(snapshot))) => ("complete", None, Some(snapshot.version())),
        Ok(Some(Err(e))) => ("error", Some(e.to_string()), None),
        Ok(None) => ("error", Some("the xDS client stopped".to_owned()), None),
        Err(_) => (
            "incomplete",
            Some(format!(
                "the configuration of {} did not become complete within {:?}",
                args.target, args.wait
            )),
            None,
        ),
    };
    let report = serde_json::json!({
        "target": args.target,
        "listener": listener,
        "status": status,
        "error": error,
        "snapshot_version": version,
        "resources": dump.resources,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    match error {
        None => ExitCode::SUCCESS,
        Some(reason) => {
            eprintln!("xds-dump: {reason}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_authority_and_name() {
        assert_eq!(parse_target("xds:///greeter"), Ok((None, "greeter")));
        assert_eq!(
            parse_target("xds://auth.example/greeter"),
            Ok((Some("auth.example"), "greeter"))
        );
        assert!(
            parse_target("dns:///greeter")
                .unwrap_err()
                .contains("must start with xds://")
        );
        assert!(
            parse_target("xds:///")
                .unwrap_err()
                .contains("name is empty")
        );
    }

    #[test]
    fn arguments_name_what_is_missing_or_wrong() {
        let args = |list: &[&str]| parse_args(list.iter().map(|s| (*s).to_owned()));
        assert_eq!(
            args(&["--target", "xds:///a"]).err().as_deref(),
            Some("--bootstrap is required")
        );
        assert!(
            args(&["--bootstrap", "b", "--target", "t", "--wait-secs", "x"])
                .err()
                .unwrap()
                .contains("--wait-secs")
        );
        let ok = args(&[
            "--bootstrap=b.json",
            "--target",
            "xds:///a",
            "--wait-secs",
            "0.5",
        ])
        .unwrap();
        assert_eq!(
            (ok.bootstrap.as_str(), ok.target.as_str(), ok.wait),
            ("b.json", "xds:///a", Duration::from_millis(500))
        );
        assert!(
            args(&["--bogus"])
                .err()
                .unwrap()
                .contains("unknown argument")
        );
    }
}
