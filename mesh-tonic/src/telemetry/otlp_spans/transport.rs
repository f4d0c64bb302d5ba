//! One encoded `ExportTraceServiceRequest` as a unary gRPC call on a lazily connected tonic channel: the request's
//! bytes go out as they are (a pass-through codec), and of the answer only the partial-success part is decoded.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use http::uri::PathAndQuery;
use opentelemetry_otlp::ExporterBuildError;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::ExporterSettings;

/// The OTLP trace service's one method (opentelemetry-proto's `collector/trace/v1/trace_service.proto`).
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// Retries after the first attempt (OTLP specification: retry transient failures with exponential backoff).
const MAX_RETRIES: u32 = 3;
/// The first backoff; doubled after each retry.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// Sends encoded requests. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct Transport {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    endpoint: String,
    channel: Channel,
    headers: MetadataMap,
    timeout: Duration,
    /// The batch processor exports from its own thread: the calls, their timers and backoffs run on this runtime.
    runtime: tokio::runtime::Handle,
}

impl Transport {
    /// A transport to `settings.endpoint`, connecting on the first export. Must be called inside a tokio runtime.
    pub(super) fn new(settings: &ExporterSettings) -> Result<Self, ExporterBuildError> {
        let invalid = |problem: String| {
            ExporterBuildError::InvalidConfiguration(format!(
                "endpoint {:?}: {problem}",
                settings.endpoint
            ))
        };
        let endpoint = Endpoint::from_shared(settings.endpoint.clone())
            .map_err(|error| invalid(error.to_string()))?;
        match endpoint.uri().scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(invalid(
                    "https is not supported by this build's span exporter (no TLS)".to_owned(),
                ));
            }
            _ => return Err(invalid("the scheme must be http".to_owned())),
        }
        let endpoint = endpoint
            .user_agent(concat!("mesh-tonic/", env!("CARGO_PKG_VERSION")))
            .map_err(|error| invalid(error.to_string()))?
            .timeout(settings.timeout);
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ExporterBuildError::InternalFailure(
                "the span exporter must be built inside a tokio runtime".to_owned(),
            )
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint: settings.endpoint.clone(),
                channel: endpoint.connect_lazy(),
                headers: MetadataMap::from_headers(settings.headers.clone()),
                timeout: settings.timeout,
                runtime,
            }),
        })
    }

    /// Sends `request` (an encoded `ExportTraceServiceRequest`), retrying transient failures, all within the
    /// timeout.
    pub(super) async fn export(&self, request: Bytes) -> OTelSdkResult {
        let inner = Arc::clone(&self.inner);
        let task = self.inner.runtime.spawn(async move {
            let timeout = inner.timeout;
            tokio::time::timeout(timeout, inner.export_with_retries(request))
                .await
                .unwrap_or(Err(OTelSdkError::Timeout(timeout)))
        });
        task.await.unwrap_or_else(|_| {
            Err(OTelSdkError::InternalFailure(
                "OTLP span export: the runtime stopped the export".to_owned(),
            ))
        })
    }
}

impl Inner {
    async fn export_with_retries(&self, request: Bytes) -> OTelSdkResult {
        let mut backoff = INITIAL_BACKOFF;
        let mut retries = 0;
        loop {
            match self.send(request.clone()).await {
                Ok(()) => return Ok(()),
                Err(status) if retries < MAX_RETRIES && retryable(status.code()) => {
                    retries += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
                Err(status) => return Err(self.failure(&status)),
            }
        }
    }

    async fn send(&self, request: Bytes) -> Result<(), Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?;
        let mut request = tonic::Request::new(request);
        *request.metadata_mut() = self.headers.clone();
        let response = grpc
            .unary(request, PathAndQuery::from_static(EXPORT_PATH), RawCodec)
            .await?;
        let partial = response.into_inner();
        if partial.rejected_spans > 0 || !partial.error_message.is_empty() {
            // OTLP specification: a partial success is not retried; the collector's reason is for the operator.
            tracing::warn!(
                endpoint = %self.endpoint,
                rejected_spans = partial.rejected_spans,
                error_message = %partial.error_message,
                "the OTLP collector rejected spans"
            );
        }
        Ok(())
    }

    /// The SDK error for a failed export: the gRPC code, and the local cause when there is one (the collector's
    /// message is left out, as opentelemetry-otlp does: it may echo credentials).
    fn failure(&self, status: &Status) -> OTelSdkError {
        let mut message = format!(
            "OTLP span export to {} failed with gRPC code {:?}",
            self.endpoint,
            status.code()
        );
        let mut source = std::error::Error::source(status);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        OTelSdkError::InternalFailure(message)
    }
}

/// OTLP specification ("OTLP/gRPC Throttling" and "Failures"): these codes are transient. RESOURCE_EXHAUSTED is
/// retried only with the server's `RetryInfo`, which this exporter does not read.
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// `ExportTraceServiceResponse.partial_success` (`ExportTracePartialSuccess`), the one part of the answer read.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<PartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PartialSuccess {
    #[prost(int64, tag = "1")]
    rejected_spans: i64,
    #[prost(string, tag = "2")]
    error_message: String,
}

/// Sends already encoded bytes; decodes the answer's partial success.
#[derive(Debug, Clone, Copy)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = PartialSuccess;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = PartialSuccess;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<PartialSuccess>, Status> {
        let response = <ExportResponse as prost::Message>::decode(src)
            .map_err(|error| Status::internal(format!("ExportTraceServiceResponse: {error}")))?;
        Ok(Some(response.partial_success.unwrap_or_default()))
    }
}
