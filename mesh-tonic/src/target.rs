//! Target URIs: what a channel reaches and how its endpoints are found.
//!
//! The forms gRPC's resolvers accept for the two schemes this crate serves:
//! - `xds:///NAME` and `xds://AUTHORITY/NAME` (gRFC A27, A47): the target's configuration comes from the xDS client;
//!   `NAME` also selects the virtual host. `xds:NAME` is accepted too, as C-core does.
//! - `dns:///HOST:PORT` and `dns:HOST:PORT`: the host's addresses, resolved by the system resolver. A target
//!   without a scheme (`HOST:PORT`) is a `dns` target, as in gRPC. Unlike gRPC, the port is required (gRPC
//!   defaults it to 443, which is rarely what a plaintext mesh wants), and DNS server authorities
//!   (`dns://8.8.8.8/HOST:PORT`) are rejected.
//!
//! Not here: other schemes (`unix:`, `ipv4:`); use [`Mesh::static_channel`](crate::Mesh::static_channel) for fixed
//! addresses.

use std::fmt;
use std::net::IpAddr;

use crate::error::ChannelError;

/// A parsed target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Configuration from xDS.
    Xds {
        /// The target's authority (`xds://AUTHORITY/NAME`), `None` for `xds:///NAME`.
        authority: Option<String>,
        /// The name: the URI path without its leading `/`.
        name: String,
    },
    /// Addresses from DNS.
    Dns {
        /// The host name or IP literal (IPv6 without brackets).
        host: String,
        /// The port.
        port: u16,
    },
}

impl Target {
    /// Parses `target`; see the [module docs](self).
    pub(crate) fn parse(target: &str) -> Result<Self, ChannelError> {
        let invalid = |problem: &str| ChannelError::InvalidTarget {
            target: target.to_owned(),
            problem: problem.to_owned(),
        };
        let (scheme, rest) = match target.split_once(':') {
            Some((scheme, rest)) if scheme == "xds" || scheme == "dns" => (scheme, rest),
            Some((scheme, rest)) if rest.starts_with("//") => {
                return Err(invalid(&format!(
                    "scheme {scheme:?} is not supported (use xds: or dns:)"
                )));
            }
            _ => ("dns", target),
        };
        // `scheme://authority/path` or `scheme:path`.
        let (authority, path) = match rest.strip_prefix("//") {
            Some(after) => match after.split_once('/') {
                Some((authority, path)) => (Some(authority), path),
                None => return Err(invalid("expected a path after the authority")),
            },
            None => (None, rest),
        };
        let authority = authority.filter(|a| !a.is_empty());
        match scheme {
            "xds" => {
                if path.is_empty() {
                    return Err(invalid("the xDS target has no name"));
                }
                Ok(Self::Xds {
                    authority: authority.map(str::to_owned),
                    name: path.to_owned(),
                })
            }
            _ => {
                if let Some(authority) = authority {
                    return Err(invalid(&format!(
                        "DNS server authority {authority:?} is not supported; use dns:///HOST:PORT"
                    )));
                }
                let (host, port) = split_host_port(path).map_err(invalid)?;
                Ok(Self::Dns {
                    host: host.to_owned(),
                    port,
                })
            }
        }
    }

    /// The host as an IP address, for `dns` targets that name one.
    pub(crate) fn ip_literal(&self) -> Option<IpAddr> {
        match self {
            Self::Dns { host, .. } => host.parse().ok(),
            Self::Xds { .. } => None,
        }
    }
}

impl fmt::Display for Target {
    /// The canonical form, which keys shared channels: `xds://AUTHORITY/NAME`, `xds:///NAME`, `dns:///HOST:PORT`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xds { authority, name } => {
                write!(f, "xds://{}/{name}", authority.as_deref().unwrap_or(""))
            }
            Self::Dns { host, port } if host.contains(':') => write!(f, "dns:///[{host}]:{port}"),
            Self::Dns { host, port } => write!(f, "dns:///{host}:{port}"),
        }
    }
}

/// `host:port` or `[v6]:port`.
fn split_host_port(text: &str) -> Result<(&str, u16), &'static str> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("unclosed '[' in an IPv6 address")?;
        let port = after
            .strip_prefix(':')
            .ok_or("expected HOST:PORT; the port is missing")?;
        (host, port)
    } else {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or("expected HOST:PORT; the port is missing")?;
        if host.contains(':') {
            return Err("an IPv6 address must be in brackets: [ADDRESS]:PORT");
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("the host is empty");
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| "the port is not a number from 0 to 65535")?;
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xds(authority: Option<&str>, name: &str) -> Target {
        Target::Xds {
            authority: authority.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    fn dns(host: &str, port: u16) -> Target {
        Target::Dns {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn xds_targets_take_grpcs_forms() {
        assert_eq!(
            Target::parse("xds:///greeter").unwrap(),
            xds(None, "greeter")
        );
        assert_eq!(
            Target::parse("xds://mesh.example/greeter").unwrap(),
            xds(Some("mesh.example"), "greeter")
        );
        assert_eq!(Target::parse("xds:greeter").unwrap(), xds(None, "greeter"));
        assert_eq!(
            Target::parse("xds:///greeter").unwrap().to_string(),
            "xds:///greeter"
        );
    }

    #[test]
    fn dns_targets_and_bare_host_ports() {
        assert_eq!(
            Target::parse("dns:///localhost:50051").unwrap(),
            dns("localhost", 50051)
        );
        assert_eq!(
            Target::parse("dns:127.0.0.1:80").unwrap(),
            dns("127.0.0.1", 80)
        );
        assert_eq!(
            Target::parse("example.com:443").unwrap(),
            dns("example.com", 443)
        );
        let v6 = Target::parse("dns:///[::1]:8080").unwrap();
        assert_eq!(v6, dns("::1", 8080));
        assert_eq!(v6.to_string(), "dns:///[::1]:8080");
        assert!(v6.ip_literal().is_some());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let message = |target: &str| Target::parse(target).unwrap_err().to_string();
        assert_eq!(
            message("xds:///"),
            "target \"xds:///\": the xDS target has no name"
        );
        assert_eq!(
            message("dns:///localhost"),
            "target \"dns:///localhost\": expected HOST:PORT; the port is missing"
        );
        assert_eq!(
            message("http://example.com/x"),
            "target \"http://example.com/x\": scheme \"http\" is not supported (use xds: or dns:)"
        );
        assert!(message("dns://8.8.8.8/example.com:80").contains("DNS server authority"));
        assert!(message("dns:///host:99999").contains("port"));
        assert!(message("dns:///::1:80").contains("brackets"));
    }
}
