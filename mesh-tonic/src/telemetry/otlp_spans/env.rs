//! The span exporter's settings: the endpoint given, and the `OTEL_EXPORTER_OTLP_*` variables opentelemetry-otlp's
//! gRPC exporter reads (OpenTelemetry's "OTLP Exporter Configuration" specification), read once when the telemetry
//! starts.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

/// The specification's default gRPC endpoint.
pub(crate) const DEFAULT_ENDPOINT: &str = "http://localhost:4317";
/// The specification's default export timeout.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how spans are exported.
#[derive(Debug, Clone)]
pub(crate) struct ExporterSettings {
    /// The collector, `http://host:port`.
    pub(crate) endpoint: String,
    /// Sent with every export (authentication, tenancy, ...).
    pub(crate) headers: HeaderMap,
    /// Bounds each export, retries included.
    pub(crate) timeout: Duration,
}

impl ExporterSettings {
    /// `endpoint` (if not empty) and the process's environment.
    pub(crate) fn from_env(endpoint: &str) -> Self {
        Self::from_lookup(endpoint, |name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), with variables from `lookup`.
    pub(crate) fn from_lookup(endpoint: &str, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let either = |signal: &str, general: &str| {
            lookup(signal)
                .filter(|value| !value.is_empty())
                .or_else(|| lookup(general).filter(|value| !value.is_empty()))
        };
        let endpoint = Some(endpoint.to_owned())
            .filter(|endpoint| !endpoint.is_empty())
            .or_else(|| {
                either(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                )
            })
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let insecure = either(
            "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
            "OTEL_EXPORTER_OTLP_INSECURE",
        )
        .is_some_and(|value| value.eq_ignore_ascii_case("true"));
        // The timeout variables: an unparsable value counts as unset (as opentelemetry-otlp does).
        let timeout = [
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ]
        .into_iter()
        .find_map(|name| lookup(name).and_then(|value| value.trim().parse::<u64>().ok()))
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let headers = lookup("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| lookup("OTEL_EXPORTER_OTLP_HEADERS"))
            .map(|list| parse_headers(&list))
            .unwrap_or_default();
        Self {
            endpoint: with_scheme(endpoint, insecure),
            headers,
            timeout,
        }
    }
}

/// The specification's header list, `key=value` pairs separated by commas, values percent-decoded (W3C Baggage's
/// form without its properties). Pairs with no `=`, an empty key or value, or a name or value HTTP does not allow
/// are skipped.
pub(crate) fn parse_headers(list: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for pair in list.split(',').map(str::trim) {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || value.is_empty() {
            continue;
        }
        let decoded = percent_decode(value);
        let value = decoded.as_deref().unwrap_or(value);
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    headers
}

/// `value` with `%XX` escapes decoded; `None` when an escape is malformed or decodes to invalid UTF-8 (the value
/// is then taken as written).
fn percent_decode(value: &str) -> Option<String> {
    if !value.contains('%') {
        return Some(value.to_owned());
    }
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = tail.get(..2)?;
            let hex = std::str::from_utf8(hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// An endpoint without a scheme is `https` unless the insecure variable says otherwise (the specification).
fn with_scheme(endpoint: String, insecure: bool) -> String {
    let has_scheme = endpoint
        .split_once("://")
        .is_some_and(|(scheme, _)| !scheme.contains(['/', '?', '#']));
    match (has_scheme, insecure) {
        (true, _) => endpoint,
        (false, true) => format!("http://{endpoint}"),
        (false, false) => format!("https://{endpoint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: &str, vars: &[(&str, &str)]) -> ExporterSettings {
        ExporterSettings::from_lookup(endpoint, |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn the_endpoint_given_wins_over_the_variables() {
        let vars = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://elsewhere:4317")];
        assert_eq!(
            settings("http://collector:4317", &vars).endpoint,
            "http://collector:4317"
        );
        assert_eq!(settings("", &vars).endpoint, "http://elsewhere:4317");
        assert_eq!(settings("", &[]).endpoint, DEFAULT_ENDPOINT);
        assert_eq!(
            settings("collector:4317", &[]).endpoint,
            "https://collector:4317"
        );
        let insecure = [("OTEL_EXPORTER_OTLP_INSECURE", "TRUE")];
        assert_eq!(
            settings("collector:4317", &insecure).endpoint,
            "http://collector:4317"
        );
    }

    #[test]
    fn headers_come_from_the_traces_variable_first_and_are_percent_decoded() {
        let vars = [
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "api-key=se%20cret, tenant = a%2Cb ,broken,=x,empty=",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "other=1"),
        ];
        let headers = settings("http://c:1", &vars).headers;
        assert_eq!(headers.len(), 2, "{headers:?}");
        assert_eq!(headers["api-key"], "se cret");
        assert_eq!(headers["tenant"], "a,b");
        let general = settings("http://c:1", &[("OTEL_EXPORTER_OTLP_HEADERS", "other=1")]);
        assert_eq!(general.headers["other"], "1");
        let malformed = settings("http://c:1", &[("OTEL_EXPORTER_OTLP_HEADERS", "k=50%")]);
        assert_eq!(malformed.headers["k"], "50%");
    }

    #[test]
    fn timeout_is_in_milliseconds_with_the_traces_variable_first() {
        assert_eq!(settings("", &[]).timeout, DEFAULT_TIMEOUT);
        let vars = [
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "250"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "7000"),
        ];
        assert_eq!(settings("", &vars).timeout, Duration::from_millis(250));
        let general = [("OTEL_EXPORTER_OTLP_TIMEOUT", "7000")];
        assert_eq!(settings("", &general).timeout, Duration::from_secs(7));
        let bad = [("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")];
        assert_eq!(settings("", &bad).timeout, DEFAULT_TIMEOUT);
    }
}
