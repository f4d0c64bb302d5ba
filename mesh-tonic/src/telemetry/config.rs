//! [`TelemetryConfig`]: where telemetry goes and how traces are sampled, given in code or read from the standard
//! `OTEL_*` variables.

use std::time::Duration;

use super::TelemetryError;

/// The metric export interval when none is given (the OpenTelemetry SDK's default).
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(60);

/// The service name when none is given (as the OpenTelemetry SDKs name an unnamed service).
pub const DEFAULT_SERVICE_NAME: &str = "unknown_service";

/// How traces are sampled (the OpenTelemetry `OTEL_TRACES_SAMPLER` choices).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Sampling {
    /// Follow the caller's sampling decision (from `traceparent`); root spans are kept with this probability.
    ParentBasedRatio(f64),
    /// Keep this fraction of traces whatever the caller decided.
    Ratio(f64),
}

impl Default for Sampling {
    fn default() -> Self {
        Self::ParentBasedRatio(1.0)
    }
}

/// Where the mesh's telemetry goes: an OTLP/gRPC collector and/or a Prometheus scrape page, the resource that names
/// this process, and the trace sampling. Start it with [`Telemetry::start`](super::Telemetry::start), or give it to
/// [`MeshBuilder::with_otlp`](crate::MeshBuilder::with_otlp).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TelemetryConfig {
    /// The collector's OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`; `None` sends nothing over OTLP (metrics
    /// are then only on the Prometheus page, spans only carried in `traceparent`).
    pub endpoint: Option<String>,
    /// Whether the metrics are also kept for a Prometheus scrape ([`Telemetry::prometheus_page`](super::Telemetry::prometheus_page),
    /// served by the admin endpoint at `GET /metrics`).
    pub prometheus: bool,
    /// `service.name` of the resource; [`DEFAULT_SERVICE_NAME`] when `None`.
    pub service_name: Option<String>,
    /// Further resource attributes (`deployment.environment`, `cloud.region`, ...).
    pub resource_attributes: Vec<(String, String)>,
    /// Trace sampling.
    pub sampling: Sampling,
    /// How often metrics are exported.
    pub metrics_interval: Duration,
    /// How many finished spans wait for export at most: the span processor drops spans beyond that (it never
    /// blocks a call). `None`: the SDK's default, 2048, or `OTEL_BSP_MAX_QUEUE_SIZE` (read as the SDK reads its
    /// `OTEL_BSP_*` variables). At every call sampled, 2048 spans are some tens of milliseconds of a busy channel's
    /// calls; a process whose export task can be kept off the CPU longer loses spans unless this is larger (each
    /// queued span holds some hundreds of bytes).
    pub max_queued_spans: Option<usize>,
}

impl TelemetryConfig {
    /// Telemetry to the OTLP/gRPC collector at `endpoint` (`http://host:4317`), every trace sampled.
    #[must_use]
    pub fn otlp(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: Some(endpoint.into()),
            prometheus: false,
            ..Self::prometheus()
        }
    }

    /// Metrics for a Prometheus scrape only: no OTLP export.
    #[must_use]
    pub fn prometheus() -> Self {
        Self {
            endpoint: None,
            prometheus: true,
            service_name: None,
            resource_attributes: Vec::new(),
            sampling: Sampling::default(),
            metrics_interval: DEFAULT_METRICS_INTERVAL,
            max_queued_spans: None,
        }
    }

    /// Reads the OpenTelemetry SDK variables through `var` (the builder passes the environment):
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (required: `None` without it), `OTEL_SERVICE_NAME`,
    /// `OTEL_RESOURCE_ATTRIBUTES` (`key=value,key=value`, values percent-encoded), `OTEL_TRACES_SAMPLER`
    /// (`always_on`, `always_off`, `traceidratio`, `parentbased_always_on` (default), `parentbased_always_off`,
    /// `parentbased_traceidratio`) with `OTEL_TRACES_SAMPLER_ARG` (the ratio, default 1.0) and
    /// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds).
    ///
    /// # Errors
    /// [`TelemetryError::Variable`] naming the variable whose value is not understood.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, TelemetryError> {
        let Some(endpoint) = var("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|e| !e.trim().is_empty())
        else {
            return Ok(None);
        };
        let mut config = Self::otlp(endpoint.trim());
        config.service_name = var("OTEL_SERVICE_NAME").filter(|name| !name.is_empty());
        if let Some(attributes) = var("OTEL_RESOURCE_ATTRIBUTES") {
            config.resource_attributes = parse_resource_attributes(&attributes)?;
        }
        let ratio = match var("OTEL_TRACES_SAMPLER_ARG") {
            Some(arg) => Some(parse_ratio(&arg)?),
            None => None,
        };
        if let Some(sampler) = var("OTEL_TRACES_SAMPLER") {
            config.sampling = match sampler.trim() {
                "always_on" => Sampling::Ratio(1.0),
                "always_off" => Sampling::Ratio(0.0),
                "traceidratio" => Sampling::Ratio(ratio.unwrap_or(1.0)),
                "parentbased_always_on" => Sampling::ParentBasedRatio(1.0),
                "parentbased_always_off" => Sampling::ParentBasedRatio(0.0),
                "parentbased_traceidratio" => Sampling::ParentBasedRatio(ratio.unwrap_or(1.0)),
                other => {
                    return Err(TelemetryError::Variable {
                        name: "OTEL_TRACES_SAMPLER",
                        problem: format!("unknown sampler {other:?}"),
                    });
                }
            };
        }
        if let Some(interval) = var("OTEL_METRIC_EXPORT_INTERVAL") {
            let millis: u64 = interval
                .trim()
                .parse()
                .map_err(|_| TelemetryError::Variable {
                    name: "OTEL_METRIC_EXPORT_INTERVAL",
                    problem: format!("{interval:?} is not a number of milliseconds"),
                })?;
            config.metrics_interval = Duration::from_millis(millis.max(1));
        }
        Ok(Some(config))
    }
}

fn parse_ratio(arg: &str) -> Result<f64, TelemetryError> {
    arg.trim()
        .parse::<f64>()
        .ok()
        .filter(|ratio| (0.0..=1.0).contains(ratio))
        .ok_or_else(|| TelemetryError::Variable {
            name: "OTEL_TRACES_SAMPLER_ARG",
            problem: format!("{arg:?} is not a ratio between 0 and 1"),
        })
}

/// `key1=value1,key2=value2` (W3C Baggage form, values percent-encoded).
fn parse_resource_attributes(list: &str) -> Result<Vec<(String, String)>, TelemetryError> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| TelemetryError::Variable {
                    name: "OTEL_RESOURCE_ATTRIBUTES",
                    problem: format!("{item:?} is not key=value"),
                })?;
            let key = key.trim();
            if key.is_empty() {
                return Err(TelemetryError::Variable {
                    name: "OTEL_RESOURCE_ATTRIBUTES",
                    problem: format!("{item:?} has an empty key"),
                });
            }
            Ok((key.to_owned(), percent_decode(value.trim())))
        })
        .collect()
}

/// Decodes `%XX` escapes; a malformed escape is kept as it is.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escaped = (byte == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Option<TelemetryConfig>, TelemetryError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TelemetryConfig::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn no_endpoint_means_no_telemetry() {
        assert_eq!(read(&[("OTEL_SERVICE_NAME", "a")]).unwrap(), None);
    }

    #[test]
    fn the_standard_variables_are_read() {
        let config = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_SERVICE_NAME", "frontend"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod, cloud.region=us%2Deast1",
            ),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:4317"));
        assert!(!config.prometheus);
        assert_eq!(config.service_name.as_deref(), Some("frontend"));
        assert_eq!(
            config.resource_attributes,
            vec![
                ("deployment.environment".to_owned(), "prod".to_owned()),
                ("cloud.region".to_owned(), "us-east1".to_owned()),
            ]
        );
        assert_eq!(config.sampling, Sampling::ParentBasedRatio(0.25));
        assert_eq!(config.metrics_interval, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
        ] {
            let error = read(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4317"),
                (name, value),
            ])
            .unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
        }
    }
}
