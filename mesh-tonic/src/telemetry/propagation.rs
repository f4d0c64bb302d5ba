//! W3C Trace Context on outgoing attempts: the `traceparent`/`tracestate` of each attempt's span. `traceparent`
//! goes out as the telemetry's own spans send it (see `spans`): marked sensitive, so that the values, unique to each
//! request, do not fill the connection's HPACK table (mesh-tower's connection lets its first one teach the table
//! the name).

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use mesh_tower::metrics::TracePropagator;
use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Writes the W3C `traceparent` (and `tracestate`) of the attempt's span on its request, so the server's spans join
/// the call's trace with the attempt as their parent (each retry is its own parent). The span's OpenTelemetry
/// context comes from the `tracing-opentelemetry` layer of the subscriber; without one (or for a span no layer
/// records) nothing is written.
#[derive(Debug, Default)]
pub struct W3cPropagator {
    inner: TraceContextPropagator,
}

impl W3cPropagator {
    /// A propagator.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl TracePropagator for W3cPropagator {
    fn inject(&self, span: &tracing::Span, headers: &mut HeaderMap) {
        // The attempt span is at DEBUG: a subscriber filtering it out leaves the request's span as the parent.
        let context = if span.is_disabled() {
            tracing::Span::current().context()
        } else {
            span.context()
        };
        self.inner
            .inject_context(&context, &mut HeaderInjector(headers));
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes lowercase ASCII names and visible ASCII values; anything else is skipped.
        if let (Ok(name), Ok(mut value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::try_from(value),
        ) {
            if key == "traceparent" {
                value.set_sensitive(true);
            }
            self.0.insert(name, value);
        }
    }
}
