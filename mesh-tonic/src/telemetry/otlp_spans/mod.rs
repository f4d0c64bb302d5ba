//! The mesh's span pipeline: its batch processor ([`SpanBatcher`], `batch.rs`), which takes the SDK's ended spans
//! and the request path's [`SpanRecord`]s (`record.rs`), and its OTLP/gRPC exporter: each batch encoded straight
//! into an `ExportTraceServiceRequest` (see `encode.rs`) and sent as one unary call of
//! `opentelemetry.proto.collector.trace.v1.TraceService/Export` over a tonic channel, the encoded buffer being the
//! request's body as it is.
//!
//! Why not opentelemetry-otlp's exporter: it copies every batch, converts each span into opentelemetry-proto's
//! structs (an allocation per string, a hash of the scope per span) and only then encodes them; at sampling 1.0 that
//! was two thirds of what telemetry cost per call. Why not the SDK's batch processor for the request path: each
//! span would first be a `SpanData` built attribute by attribute (see `record.rs`).
//!
//! What it does as opentelemetry-otlp's gRPC exporter does for the mesh: the endpoint given (else
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT`, `http://localhost:4317`; an endpoint without
//! a scheme is `https://` unless `OTEL_EXPORTER_OTLP_[TRACES_]INSECURE` is `true`); the headers of
//! `OTEL_EXPORTER_OTLP_TRACES_HEADERS` or else `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, values
//! percent-decoded, malformed pairs skipped); the timeout of `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or else
//! `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds, 10 s by default) bounding each export, retries included; retries of
//! `UNAVAILABLE` (3, backing off from 100 ms); the partial-success answer's rejected count logged. Not here, as in
//! the mesh's build of opentelemetry-otlp: TLS (an `https` endpoint is refused when the exporter is built) and
//! compression (`OTEL_EXPORTER_OTLP_*COMPRESSION` is ignored); nor `RetryInfo` throttling.

mod batch;
pub(crate) mod clock;
mod encode;
mod env;
mod record;
mod transport;

use std::sync::{Mutex, PoisonError};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::SpanData;

pub(crate) use batch::{BatchSettings, SpanBatcher};
use encode::SpanEncoder;
pub(crate) use env::ExporterSettings;
pub(crate) use record::{RecordKind, RecordStatus, RpcMethod, SpanName, SpanRecord};
use transport::Transport;

/// The OTLP/gRPC span exporter of [`SpanBatcher`]; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct OtlpSpanExporter {
    encoder: Mutex<SpanEncoder>,
    /// `None` once shut down.
    transport: Mutex<Option<Transport>>,
}

impl OtlpSpanExporter {
    /// An exporter sending to `settings.endpoint`; connects lazily (on the first export).
    ///
    /// # Errors
    /// The endpoint is not a valid `http://` URI (`https` is not supported in this build).
    pub(crate) fn new(
        settings: &ExporterSettings,
    ) -> Result<Self, opentelemetry_otlp::ExporterBuildError> {
        Ok(Self {
            encoder: Mutex::new(SpanEncoder::default()),
            transport: Mutex::new(Some(Transport::new(settings)?)),
        })
    }

    /// Exports the SDK's `spans` and the request path's `records` (spans of `scope`) in one request.
    pub(crate) async fn export_parts(
        &self,
        spans: &[SpanData],
        records: &[SpanRecord],
        scope: &InstrumentationScope,
    ) -> OTelSdkResult {
        let transport = self.transport()?;
        let request = self
            .encoder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .grpc_message(spans, records, scope);
        transport.export(request).await
    }

    /// Sets the resource every batch is reported under, through a shared reference.
    pub(crate) fn set_shared_resource(&self, resource: &Resource) {
        self.encoder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_resource(resource);
    }

    /// Stops exporting: later exports fail as shut down. An error when it was stopped already.
    pub(crate) fn close(&self) -> OTelSdkResult {
        self.transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(drop)
            .ok_or(OTelSdkError::AlreadyShutdown)
    }

    fn transport(&self) -> Result<Transport, OTelSdkError> {
        self.transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(OTelSdkError::AlreadyShutdown)
    }
}

#[cfg(test)]
#[path = "exporter_tests.rs"]
mod tests;
