//! Where the demo's telemetry goes, said at the start and summed up at the end: the client's admin endpoint (with
//! the Prometheus page, always on, on 127.0.0.1) and, when the OpenTelemetry variables name a collector, OTLP.

use std::io::{self, Write};

use mesh_tonic::Mesh;

/// The collector the demo's help suggests.
const EXAMPLE_ENDPOINT: &str = "http://127.0.0.1:4317";

/// Tells where metrics and traces go, and starts exporting the request path's spans when there is a collector.
pub(super) fn announce(
    mesh: &Mesh,
    read_env: bool,
    out: &mut (dyn Write + Send),
) -> io::Result<()> {
    let endpoint = mesh
        .telemetry()
        .and_then(|telemetry| telemetry.config().endpoint.clone());
    match (&endpoint, mesh.telemetry()) {
        (Some(endpoint), Some(telemetry)) => {
            let tracing = match telemetry.init_tracing() {
                Ok(()) => "the request path's spans too",
                Err(_) => {
                    "spans only if the process's tracing subscriber has Telemetry::tracing_layer"
                }
            };
            writeln!(
                out,
                "Telemetry: OTLP/gRPC to {endpoint} (from OTEL_EXPORTER_OTLP_ENDPOINT): gRPC's client metrics \
                 (gRFC A66/A78) and {tracing}."
            )?;
        }
        _ if read_env => writeln!(
            out,
            "Telemetry: no OTLP collector (set OTEL_EXPORTER_OTLP_ENDPOINT={EXAMPLE_ENDPOINT}, and OTEL_SERVICE_NAME, \
             to export metrics and traces)."
        )?,
        _ => writeln!(
            out,
            "Telemetry: no OTLP collector (the OpenTelemetry variables are not read in this run)."
        )?,
    }
    if let Some(admin) = mesh.admin_addr() {
        writeln!(
            out,
            "Metrics for Prometheus: http://{admin}/metrics (config dump: http://{admin}/config_dump), while the \
             demo runs."
        )?;
    }
    Ok(())
}

/// Sums up what the Prometheus page counted and flushes OTLP.
pub(super) async fn summarize(mesh: &Mesh, out: &mut (dyn Write + Send)) -> io::Result<()> {
    let Some(telemetry) = mesh.telemetry() else {
        return Ok(());
    };
    if let Some(page) = telemetry.prometheus_page() {
        let calls = count(&page, "grpc_client_call_duration_seconds_count", None);
        let ok = count(
            &page,
            "grpc_client_call_duration_seconds_count",
            Some("grpc_status=\"OK\""),
        );
        let retries = count(&page, "mesh_client_retries_total", None);
        writeln!(
            out,
            "The Prometheus page counted {calls} calls ({ok} OK) and {retries} retries \
             (grpc_client_call_duration_seconds_count, mesh_client_retries_total)."
        )?;
    }
    if telemetry.config().endpoint.is_some() {
        match telemetry.shutdown().await {
            Ok(()) => writeln!(out, "Telemetry flushed to the collector.")?,
            Err(error) => writeln!(out, "Telemetry could not be flushed: {error}")?,
        }
    }
    Ok(())
}

/// The sum of the samples of `name` on `page` (whose labels contain `label`, when given).
fn count(page: &str, name: &str, label: Option<&str>) -> u64 {
    page.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| label.is_none_or(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_summed_by_name_and_label() {
        let page = "# TYPE a_count counter\na_count{s=\"OK\"} 3\na_count{s=\"X\"} 2\na_count_more 9\nb 1\n";
        assert_eq!(count(page, "a_count", None), 5);
        assert_eq!(count(page, "a_count", Some("s=\"OK\"")), 3);
        assert_eq!(count(page, "b", None), 1);
    }
}
