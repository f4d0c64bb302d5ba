//! The mesh's metrics as a Prometheus scrape page, for users without an OpenTelemetry collector: a pull reader
//! (the SDK's `ManualReader`) on the telemetry's meter provider, next to the OTLP exporter or alone, and the
//! Prometheus text exposition format (version 0.0.4) written from what it collects. The admin endpoint serves it at
//! `GET /metrics` ([`crate::admin`]).
//!
//! Names and labels follow the OpenTelemetry-to-Prometheus compatibility rules: characters other than
//! `[a-zA-Z0-9_:]` become `_` (`grpc.client.attempt.duration` -> `grpc_client_attempt_duration`); the unit is a
//! suffix (`s` -> `_seconds`, `By` -> `_bytes`; annotations such as `{attempt}` are dropped); monotonic sums are
//! counters named `..._total`, other sums and gauges are gauges; histograms are `_bucket{le=..}` (cumulative, with
//! `+Inf`), `_sum` and `_count`. The resource (service name, attributes) is the `target_info` gauge. Temporality is
//! cumulative, as Prometheus expects.
//!
//! Collecting runs on the scrape, off the request path: the request path records into the same aggregations as
//! for OTLP and pays nothing more for a second reader but the reader's share of the aggregation.
//!
//! Not here: OpenMetrics (`application/openmetrics-text`), exemplars, exponential histograms (the mesh records
//! none), `otel_scope_*` labels.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

/// The content type of the page (the text exposition format, version 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The path the admin endpoint serves the page on.
pub const PROMETHEUS_PATH: &str = "/metrics";

/// A pull reader shared between the meter provider (which owns a reader) and the scrape handler.
#[derive(Debug, Clone)]
pub(super) struct PrometheusReader(Arc<ManualReader>);

impl PrometheusReader {
    pub(super) fn new() -> Self {
        Self(Arc::new(
            ManualReader::builder()
                .with_temporality(Temporality::Cumulative)
                .build(),
        ))
    }

    /// The current metrics in the exposition format; an error when the provider has shut down.
    pub(super) fn render(&self) -> Result<String, opentelemetry_sdk::error::OTelSdkError> {
        let mut collected = ResourceMetrics::default();
        self.0.collect(&mut collected)?;
        Ok(render(&collected))
    }
}

impl MetricReader for PrometheusReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// One metric family: its type, help and sample lines.
struct Family {
    kind: &'static str,
    help: String,
    samples: String,
}

/// Writes `metrics` in the text exposition format.
pub(super) fn render(metrics: &ResourceMetrics) -> String {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics() {
            add(&mut families, metric);
        }
    }
    let mut page = String::new();
    // The resource as an info metric (OpenTelemetry's `target_info`).
    let resource: Vec<KeyValue> = metrics
        .resource()
        .iter()
        .map(|(key, value)| KeyValue::new(key.clone(), value.clone()))
        .collect();
    if !resource.is_empty() {
        page.push_str("# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info");
        write_labels(&mut page, &resource, None);
        page.push_str(" 1\n");
    }
    for (name, family) in families {
        if !family.help.is_empty() {
            let _ = writeln!(page, "# HELP {name} {}", escape_help(&family.help));
        }
        let _ = writeln!(page, "# TYPE {name} {}", family.kind);
        page.push_str(&family.samples);
    }
    page
}

fn add(families: &mut BTreeMap<String, Family>, metric: &Metric) {
    match metric.data() {
        AggregatedMetrics::F64(data) => add_data(families, metric, data),
        AggregatedMetrics::U64(data) => add_data(families, metric, data),
        AggregatedMetrics::I64(data) => add_data(families, metric, data),
    }
}

/// A sample value as Prometheus writes numbers.
trait SampleValue: Copy {
    fn write(self, out: &mut String);
}

impl SampleValue for f64 {
    fn write(self, out: &mut String) {
        write_float(out, self);
    }
}

impl SampleValue for u64 {
    fn write(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl SampleValue for i64 {
    fn write(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

fn add_data<T: SampleValue>(
    families: &mut BTreeMap<String, Family>,
    metric: &Metric,
    data: &MetricData<T>,
) {
    let base = metric_name(metric.name(), metric.unit());
    let (name, kind) = match data {
        MetricData::Sum(sum) if sum.is_monotonic() => (format!("{base}_total"), "counter"),
        MetricData::Sum(_) | MetricData::Gauge(_) => (base, "gauge"),
        MetricData::Histogram(_) => (base, "histogram"),
        // Not recorded by the mesh; no faithful text form.
        MetricData::ExponentialHistogram(_) => return,
    };
    let family = families.entry(name.clone()).or_insert_with(|| Family {
        kind,
        help: metric.description().to_owned(),
        samples: String::new(),
    });
    if family.kind != kind {
        // Two instruments of one name and different kinds: the page keeps the first.
        return;
    }
    let out = &mut family.samples;
    match data {
        MetricData::Sum(sum) => {
            for point in sum.data_points() {
                sample(
                    out,
                    &name,
                    "",
                    &labels(point.attributes()),
                    None,
                    point.value(),
                );
            }
        }
        MetricData::Gauge(gauge) => {
            for point in gauge.data_points() {
                sample(
                    out,
                    &name,
                    "",
                    &labels(point.attributes()),
                    None,
                    point.value(),
                );
            }
        }
        MetricData::Histogram(histogram) => {
            for point in histogram.data_points() {
                let attributes = labels(point.attributes());
                let mut cumulative = 0_u64;
                let mut counts = point.bucket_counts();
                for bound in point.bounds() {
                    cumulative = cumulative.saturating_add(counts.next().unwrap_or(0));
                    sample(out, &name, "_bucket", &attributes, Some(bound), cumulative);
                }
                sample(
                    out,
                    &name,
                    "_bucket",
                    &attributes,
                    Some(f64::INFINITY),
                    point.count(),
                );
                sample(out, &name, "_sum", &attributes, None, point.sum());
                sample(out, &name, "_count", &attributes, None, point.count());
            }
        }
        MetricData::ExponentialHistogram(_) => {}
    }
}

fn labels<'a>(attributes: impl Iterator<Item = &'a KeyValue>) -> Vec<KeyValue> {
    attributes.cloned().collect()
}

fn sample<T: SampleValue>(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[KeyValue],
    le: Option<f64>,
    value: T,
) {
    out.push_str(name);
    out.push_str(suffix);
    write_labels(out, labels, le);
    out.push(' ');
    value.write(out);
    out.push('\n');
}

fn write_labels(out: &mut String, labels: &[KeyValue], le: Option<f64>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    // Keys that become one label name (`a.b` and `a_b`) share it, their values joined with `;` in key order (the
    // OpenTelemetry-to-Prometheus rule); keys are few, so a linear search does.
    let mut merged: Vec<(String, String)> = Vec::with_capacity(labels.len());
    let mut sorted: Vec<&KeyValue> = labels.iter().collect();
    sorted.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    for label in sorted {
        let name = label_name(label.key.as_str());
        let value = value_text(&label.value);
        match merged.iter_mut().find(|(existing, _)| *existing == name) {
            Some((_, values)) => {
                values.push(';');
                values.push_str(&value);
            }
            None => merged.push((name, value.into_owned())),
        }
    }
    out.push('{');
    let mut first = true;
    for (name, value) in &merged {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        escape_value(out, value);
        out.push('"');
    }
    if let Some(le) = le {
        if !first {
            out.push(',');
        }
        out.push_str("le=\"");
        write_float(out, le);
        out.push('"');
    }
    out.push('}');
}

fn value_text(value: &Value) -> std::borrow::Cow<'_, str> {
    value.as_str()
}

/// `name` and `unit` as a Prometheus metric name (without a counter's `_total`).
pub(super) fn metric_name(name: &str, unit: &str) -> String {
    let mut out = sanitize(name, true);
    let suffix = match unit {
        "s" => Some("seconds"),
        "ms" => Some("milliseconds"),
        "By" => Some("bytes"),
        "1" => Some("ratio"),
        // Annotations (`{attempt}`) and empty units add nothing.
        unit if unit.is_empty() || unit.starts_with('{') => None,
        unit => Some(unit),
    };
    if let Some(suffix) = suffix {
        let suffix = sanitize(suffix, true);
        if !out.ends_with(&format!("_{suffix}")) {
            out.push('_');
            out.push_str(&suffix);
        }
    }
    out
}

fn label_name(key: &str) -> String {
    sanitize(key, false)
}

/// Characters outside `[a-zA-Z0-9_]` (and `:` in metric names) as `_`; a leading digit gets a `_` in front.
fn sanitize(name: &str, metric: bool) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || (metric && c == ':') {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Label values escape `\`, `"` and line feeds.
fn escape_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Help text escapes `\` and line feeds.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn write_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::metrics::SdkMeterProvider;

    use super::*;

    #[test]
    fn names_take_unit_suffixes_and_lose_dots() {
        assert_eq!(
            metric_name("grpc.client.attempt.duration", "s"),
            "grpc_client_attempt_duration_seconds"
        );
        assert_eq!(
            metric_name(
                "grpc.client.attempt.sent_total_compressed_message_size",
                "By"
            ),
            "grpc_client_attempt_sent_total_compressed_message_size_bytes"
        );
        assert_eq!(
            metric_name("grpc.client.attempt.started", "{attempt}"),
            "grpc_client_attempt_started"
        );
        assert_eq!(metric_name("already_seconds", "s"), "already_seconds");
        assert_eq!(metric_name("9lives", ""), "_9lives");
    }

    #[test]
    fn keys_that_sanitize_alike_share_one_label() {
        let mut out = String::new();
        write_labels(
            &mut out,
            &[
                KeyValue::new("a_b", "2"),
                KeyValue::new("a.b", "1"),
                KeyValue::new("c", "3"),
            ],
            Some(0.5),
        );
        assert_eq!(out, "{a_b=\"1;2\",c=\"3\",le=\"0.5\"}");
    }

    #[test]
    fn a_page_has_counters_histograms_and_escaped_labels() {
        let reader = PrometheusReader::new();
        let provider = SdkMeterProvider::builder()
            .with_reader(reader.clone())
            .with_resource(Resource::builder_empty().with_service_name("svc").build())
            .build();
        let meter = provider.meter("test");
        let counter = meter
            .u64_counter("mesh.things")
            .with_unit("{thing}")
            .with_description("Things.\nCounted.")
            .build();
        counter.add(3, &[KeyValue::new("a.b", "say \"hi\"\\\n")]);
        let histogram = meter
            .f64_histogram("op.duration")
            .with_unit("s")
            .with_boundaries(vec![0.5, 1.0])
            .build();
        for value in [0.25, 0.75, 0.75, 2.0] {
            histogram.record(value, &[]);
        }
        let page = reader.render().unwrap();
        let expected = "\
# HELP target_info Target metadata
# TYPE target_info gauge
target_info{service_name=\"svc\"} 1
# HELP mesh_things_total Things.\\nCounted.
# TYPE mesh_things_total counter
mesh_things_total{a_b=\"say \\\"hi\\\"\\\\\\n\"} 3
# TYPE op_duration_seconds histogram
op_duration_seconds_bucket{le=\"0.5\"} 1
op_duration_seconds_bucket{le=\"1\"} 3
op_duration_seconds_bucket{le=\"+Inf\"} 4
op_duration_seconds_sum 3.75
op_duration_seconds_count 4
";
        assert_eq!(page, expected);
    }
}
