//! Command-line parsing (by hand: the workspace has no argument-parsing dependency).

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The address served when `--listen` is not given.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:18000";

pub(crate) const USAGE: &str = "\
mesh-xds-server: an xDS v3 (state-of-the-world ADS) management server for development and tests.

Usage:
  mesh-xds-server --config FILE [--listen ADDR]
  mesh-xds-server --check --config FILE
  mesh-xds-server --help | --version

Options:
  -c, --config FILE   The YAML mesh file to serve. It is watched: a valid change is pushed to clients as a new
                      version; an invalid one is logged and the previous version keeps serving.
  -l, --listen ADDR   The address to serve ADS on (default 127.0.0.1:18000; port 0 picks a free one).
      --check         Validate the mesh file, print a summary and exit (1 when invalid).
  -h, --help          Print this help.
  -V, --version       Print the version.

Logging: RUST_LOG (default \"info\"), to standard error. Stops on SIGINT or SIGTERM.
The mesh file format is described in the README of the mesh-xds-server crate.
";

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Help,
    Version,
    Check { config: PathBuf },
    Serve { config: PathBuf, listen: SocketAddr },
}

/// A usage error: printed with a hint, exit status 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// Parses the arguments after the program name.
pub(crate) fn parse<I>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut config: Option<PathBuf> = None;
    let mut listen: Option<String> = None;
    let mut check = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            return Err(usage(format!("argument {arg:?} is not valid UTF-8")));
        };
        let (flag, inline) = match text.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (text, None),
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--check" if inline.is_none() => check = true,
            "-c" | "--config" => {
                let value = value(flag, inline, &mut args)?;
                if config.replace(PathBuf::from(value)).is_some() {
                    return Err(usage("--config given more than once"));
                }
            }
            "-l" | "--listen" => {
                let value = value(flag, inline, &mut args)?;
                if listen.replace(value).is_some() {
                    return Err(usage("--listen given more than once"));
                }
            }
            _ if text.starts_with('-') => return Err(usage(format!("unknown option {text:?}"))),
            _ => return Err(usage(format!("unexpected argument {text:?}"))),
        }
    }
    let config = config.ok_or_else(|| usage("--config FILE is required"))?;
    if check {
        if listen.is_some() {
            return Err(usage("--listen has no effect with --check"));
        }
        return Ok(Command::Check { config });
    }
    let listen_text = listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen = listen_text.parse().map_err(|_| {
        usage(format!(
            "--listen {listen_text:?} is not an IP:PORT address (e.g. 127.0.0.1:18000 or [::1]:18000)"
        ))
    })?;
    Ok(Command::Serve { config, listen })
}

fn value<I>(flag: &str, inline: Option<String>, args: &mut I) -> Result<String, UsageError>
where
    I: Iterator<Item = OsString>,
{
    let value = match inline {
        Some(value) => value,
        None => args
            .next()
            .ok_or_else(|| usage(format!("{flag} needs a value")))?
            .into_string()
            .map_err(|arg| usage(format!("the value of {flag}, {arg:?}, is not valid UTF-8")))?,
    };
    if value.is_empty() {
        return Err(usage(format!("{flag} needs a non-empty value")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn serve_with_defaults_and_both_flag_forms() {
        assert_eq!(
            parse_strs(&["--config", "mesh.yaml"]).unwrap(),
            Command::Serve {
                config: "mesh.yaml".into(),
                listen: DEFAULT_LISTEN.parse().unwrap()
            }
        );
        assert_eq!(
            parse_strs(&["--config=m.yaml", "-l", "[::1]:0"]).unwrap(),
            Command::Serve {
                config: "m.yaml".into(),
                listen: "[::1]:0".parse().unwrap()
            }
        );
    }

    #[test]
    fn help_version_and_check() {
        assert_eq!(
            parse_strs(&["--config", "x", "--help"]).unwrap(),
            Command::Help
        );
        assert_eq!(parse_strs(&["-V"]).unwrap(), Command::Version);
        assert_eq!(
            parse_strs(&["--check", "-c", "x"]).unwrap(),
            Command::Check { config: "x".into() }
        );
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "--config FILE is required"),
            (&["--config"], "--config needs a value"),
            (&["--config="], "--config needs a non-empty value"),
            (&["--config", "a", "--config", "b"], "more than once"),
            (
                &["--config", "a", "--listen", "localhost"],
                "is not an IP:PORT address",
            ),
            (
                &["--config", "a", "--port", "1"],
                "unknown option \"--port\"",
            ),
            (&["--config", "a", "extra"], "unexpected argument \"extra\""),
            (
                &["--check", "--config", "a", "--listen", "127.0.0.1:1"],
                "no effect with --check",
            ),
        ];
        for (args, expected) in cases {
            let error = parse_strs(args).unwrap_err().to_string();
            assert!(error.contains(expected), "{args:?}: {error}");
        }
    }
}
