//! One encoded `ExportTraceServiceRequest` as a unary gRPC call on a lazily connected tonic channel: the request's
//! bytes go out as they are (a pass-through codec), and of the answer only the partial-success part is decoded.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_otlp::ExporterBuildError;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tower::{Service, ServiceExt};

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
        // The lazy channel's worker is spawned on the current runtime.
        tokio::runtime::Handle::try_current().map_err(|_| {
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
            }),
        })
    }

    /// Sends `request` (an encoded `ExportTraceServiceRequest`), retrying transient failures, all within the
    /// timeout.
    pub(super) async fn export(&self, request: Bytes) -> OTelSdkResult {
        let timeout = self.inner.timeout;
        tokio::time::timeout(timeout, self.inner.export_with_retries(request))
            .await
            .unwrap_or(Err(OTelSdkError::Timeout(timeout)))
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

    /// One `Export` call: `request` is the whole gRPC message (its 5-byte prefix included), sent as the request
    /// body as it is. tonic's client would copy it into its own encoding buffer first.
    async fn send(&self, request: Bytes) -> Result<(), Status> {
        let mut http = http::Request::builder()
            .method(http::Method::POST)
            .uri(EXPORT_PATH)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .body(tonic::body::Body::new(Full::new(request)))
            .map_err(|error| Status::internal(error.to_string()))?;
        http.headers_mut()
            .extend(self.headers.clone().into_headers());
        let mut channel = self.channel.clone();
        let response = channel
            .ready()
            .await
            .map_err(|error| Status::from_error(Box::new(error)))?
            .call(http)
            .await
            .map_err(|error| Status::from_error(Box::new(error)))?;
        let (parts, body) = response.into_parts();
        if parts.status != http::StatusCode::OK {
            return Err(Status::unavailable(format!("HTTP status {}", parts.status)));
        }
        // A trailers-only answer carries its status in the headers.
        if let Some(status) = Status::from_header_map(&parts.headers) {
            return status_result(status);
        }
        let body = body
            .collect()
            .await
            .map_err(|error| Status::from_error(Box::new(error)))?;
        let trailers = body.trailers().cloned().unwrap_or_default();
        let status = Status::from_header_map(&trailers)
            .ok_or_else(|| Status::internal("the collector's answer has no grpc-status"))?;
        status_result(status)?;
        let partial = partial_success(&body.to_bytes())?;
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

/// `status` as the outcome of a call: OK, or the error it is.
fn status_result(status: Status) -> Result<(), Status> {
    if status.code() == Code::Ok {
        Ok(())
    } else {
        Err(status)
    }
}

/// The partial success of the answer's one message (`body`: its 5-byte gRPC prefix, then the message); an empty
/// body (no message) is no partial success.
fn partial_success(body: &[u8]) -> Result<PartialSuccess, Status> {
    let Some((prefix, message)) = body.split_first_chunk::<5>() else {
        return Ok(PartialSuccess::default());
    };
    let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if prefix[0] != 0 || message.len() != length {
        return Err(Status::internal(
            "ExportTraceServiceResponse: a compressed or malformed gRPC message",
        ));
    }
    let response = <ExportResponse as prost::Message>::decode(message)
        .map_err(|error| Status::internal(format!("ExportTraceServiceResponse: {error}")))?;
    Ok(response.partial_success.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn framed(flag: u8, message: &[u8], length: u32) -> Vec<u8> {
        let mut body = vec![flag];
        body.extend_from_slice(&length.to_be_bytes());
        body.extend_from_slice(message);
        body
    }

    #[test]
    fn the_answer_is_read_as_one_uncompressed_message_or_none() {
        let answer = ExportResponse {
            partial_success: Some(PartialSuccess {
                rejected_spans: 3,
                error_message: "too old".to_owned(),
            }),
        }
        .encode_to_vec();
        let length = u32::try_from(answer.len()).unwrap();
        let partial = partial_success(&framed(0, &answer, length)).unwrap();
        assert_eq!(
            (partial.rejected_spans, partial.error_message.as_str()),
            (3, "too old")
        );
        assert_eq!(partial_success(&[]).unwrap(), PartialSuccess::default());
        // Compressed (never asked for), cut short, or with bytes after the message: an error, not a guess.
        for body in [
            framed(1, &answer, length),
            framed(0, &answer, length + 1),
            framed(0, &answer, length - 1),
        ] {
            let error = partial_success(&body).unwrap_err();
            assert_eq!(error.code(), Code::Internal, "{error}");
        }
    }
}
