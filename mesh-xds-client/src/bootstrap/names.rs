//! Listener resource names from targets and listening addresses (gRFC A47, A36).

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::Bootstrap;
use super::error::ListenerNameError;

impl Bootstrap {
    /// The Listener name a client subscribes to for the target `xds://<target_authority>/<target_path>`
    /// (gRFC A47, following C-core's `XdsResolver`):
    /// - One leading `/` of `target_path` is dropped (`xds:///greeter` has path `/greeter`).
    /// - Without an authority (`None` or `Some("")`, as in `xds:///name`), `%s` in
    ///   `client_default_listener_resource_name_template` is replaced by the path, percent-encoded when the template
    ///   starts with `xdstp:`. A resulting `xdstp:` name must name an authority the bootstrap has.
    /// - With an authority, which the bootstrap must have, its `client_listener_resource_name_template` (default
    ///   `xdstp://<authority>/envoy.config.listener.v3.Listener/%s`) is used, the path always percent-encoded.
    ///
    /// Percent-encoding keeps what RFC 3986 allows in a path (unreserved, sub-delims, `:`, `@` and `/`, as A47
    /// says) and encodes every other byte, as C-core's `URI::PercentEncodePath` does.
    ///
    /// # Errors
    /// [`ListenerNameError::UnknownAuthority`] when the authority is not in `authorities`.
    pub fn client_listener_name(
        &self,
        target_authority: Option<&str>,
        target_path: &str,
    ) -> Result<String, ListenerNameError> {
        let path = target_path.strip_prefix('/').unwrap_or(target_path);
        match target_authority.filter(|a| !a.is_empty()) {
            Some(authority) => {
                let entry = self.authorities.get(authority).ok_or_else(|| {
                    ListenerNameError::UnknownAuthority {
                        authority: authority.to_owned(),
                    }
                })?;
                let encoded = percent_encode(path, is_path_char);
                Ok(match &entry.client_listener_resource_name_template {
                    Some(template) => template.replace("%s", &encoded),
                    None => format!(
                        "xdstp://{}/envoy.config.listener.v3.Listener/{encoded}",
                        percent_encode(authority, is_authority_char)
                    ),
                })
            }
            None => {
                let template = &self.client_default_listener_resource_name_template;
                let name = expand(template, path);
                if let Some(authority) = xdstp_authority(&name)
                    && !self.authorities.contains_key(authority)
                {
                    return Err(ListenerNameError::UnknownAuthority {
                        authority: authority.to_owned(),
                    });
                }
                Ok(name)
            }
        }
    }

    /// The Listener name an xDS-enabled server listening on `addr` subscribes to (gRFC A36, A47): `%s` in
    /// `server_listener_resource_name_template` replaced by `ip:port` (`[::1]:8080` for IPv6), percent-encoded
    /// when the template starts with `xdstp:` (so `[` and `]` become `%5B` and `%5D`). `None` when the bootstrap
    /// has no template: gRFC A36 says an xDS-enabled server then fails to start.
    #[must_use]
    pub fn server_listener_name(&self, addr: SocketAddr) -> Option<String> {
        self.server_listener_resource_name_template
            .as_deref()
            .map(|template| expand(template, &addr.to_string()))
    }
}

/// Replaces `%s` in `template` by `value`, percent-encoded for `xdstp:` templates (gRFC A47).
fn expand(template: &str, value: &str) -> String {
    if template.starts_with("xdstp:") {
        template.replace("%s", &percent_encode(value, is_path_char))
    } else {
        template.replace("%s", value)
    }
}

/// The authority of a new-style (`xdstp:`) resource name, `""` when it has none (gRFC A47: such names use the empty
/// authority); `None` for old-style names.
#[must_use]
pub fn xdstp_authority(resource_name: &str) -> Option<&str> {
    let rest = resource_name.strip_prefix("xdstp:")?;
    let Some(rest) = rest.strip_prefix("//") else {
        return Some("");
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest.get(..end)
}

/// RFC 3986 `unreserved / sub-delims`.
fn is_unreserved_or_sub_delim(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&byte)
}

/// RFC 3986 section 3.3 path characters, with `/` (what A47 allows unencoded).
fn is_path_char(byte: u8) -> bool {
    is_unreserved_or_sub_delim(byte) || matches!(byte, b':' | b'@' | b'/')
}

/// RFC 3986 authority characters (C-core's `IsAuthorityChar`).
fn is_authority_char(byte: u8) -> bool {
    is_unreserved_or_sub_delim(byte) || matches!(byte, b':' | b'@' | b'[' | b']')
}

/// Percent-encodes every byte of `text` that `keep` rejects, as `%XX` in upper-case hex.
fn percent_encode(text: &str, keep: fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if keep(byte) {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}
