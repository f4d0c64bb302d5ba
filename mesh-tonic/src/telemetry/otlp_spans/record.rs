//! [`SpanRecord`]: a span of the request path (a call's or an attempt's) as it is kept until export, and its
//! encoding as trace.proto's `Span`.
//!
//! The SDK keeps every span as a `SpanData`: a `Vec` of `KeyValue` attributes built as the span starts, a name, an
//! instrumentation scope and event and link lists, moved through its span processor's channel and then converted
//! again by the exporter. A request-path span has a fixed shape (the attributes the semantic conventions for RPC
//! give it, and the mesh's `cluster`, `locality`, `endpoint`), so it is kept as typed fields (shared strings
//! counted, not copied) and written straight into protobuf at export.

use std::sync::Arc;

use mesh_core::locality::Locality;

use super::encode::{
    FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE, SPAN_LENGTH, begin, begin_long, bytes_field, end, end_long,
    fixed32, fixed64, int_attribute, string, string_attribute, string_attribute_head, varint,
};

/// A span's kind (trace.proto's `Span.SpanKind`): the request path makes calls and attempts only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// A call: `SPAN_KIND_INTERNAL`.
    Internal,
    /// An attempt: `SPAN_KIND_CLIENT`.
    Client,
}

/// The method of a gRPC call: its span name and its `rpc.system`, `rpc.service` and `rpc.method` attributes,
/// encoded once and shared by every span of the method.
#[derive(Debug)]
pub(crate) struct RpcMethod {
    /// `service/method`.
    name: Box<str>,
    /// The three attributes as `Span.attributes` fields.
    attributes: Box<[u8]>,
}

impl RpcMethod {
    /// The method `method` of `service`.
    pub(crate) fn new(service: &str, method: &str) -> Self {
        let mut attributes = Vec::new();
        string_attribute(&mut attributes, ATTRIBUTES, "rpc.system", "grpc");
        string_attribute(&mut attributes, ATTRIBUTES, "rpc.service", service);
        string_attribute(&mut attributes, ATTRIBUTES, "rpc.method", method);
        Self {
            name: format!("{service}/{method}").into(),
            attributes: attributes.into(),
        }
    }
}

/// `Span.attributes`.
const ATTRIBUTES: u32 = 9;

/// What a span is named after: a gRPC method (with its attributes) or an HTTP method.
#[derive(Debug, Clone)]
pub(crate) enum SpanName {
    Rpc(Arc<RpcMethod>),
    Http(&'static str),
    /// An HTTP method outside the standard ones.
    Owned(Arc<str>),
}

/// How a span ended: trace.proto's `Status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum RecordStatus {
    #[default]
    Unset,
    /// An error, with its description (empty for a status the attributes describe already).
    Error(Box<str>),
}

/// A request-path span, ended; see the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct SpanRecord {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    /// All zeros for a root span.
    pub(crate) parent_span_id: [u8; 8],
    pub(crate) parent_is_remote: bool,
    /// The W3C trace flags.
    pub(crate) trace_flags: u8,
    /// The W3C `tracestate`, empty when there is none.
    pub(crate) trace_state: Option<Arc<str>>,
    pub(crate) kind: RecordKind,
    pub(crate) name: SpanName,
    /// Nanoseconds since the Unix epoch.
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// `cluster`.
    pub(crate) cluster: Arc<str>,
    /// `route` (calls, when the route is named).
    pub(crate) route: Option<Arc<str>>,
    /// `attempt`, `locality` (written in gRFC A78's form) and `endpoint` (attempts).
    pub(crate) attempt: Option<(u32, Locality, Arc<str>)>,
    /// `rpc.grpc.status_code`.
    pub(crate) grpc_status: Option<u32>,
    /// `http.response.status_code`.
    pub(crate) http_status: Option<u16>,
    pub(crate) status: RecordStatus,
}

/// Writes `record` as trace.proto's `Span`, field `tag` of the enclosing `ScopeSpans`, as opentelemetry-proto's
/// conversion of the same span's `SpanData` would (see `encode.rs`).
pub(super) fn span_record(buf: &mut Vec<u8>, tag: u32, record: &SpanRecord) {
    // Room for the whole span, usually: the writes below then never grow the buffer.
    buf.reserve(RESERVE);
    let start = begin_long(buf, tag, SPAN_LENGTH);
    buf.extend_from_slice(&ids(record.trace_id, record.span_id));
    if let Some(state) = &record.trace_state {
        string(buf, 3, state);
    }
    if record.parent_span_id != [0; 8] {
        bytes_field(buf, 4, &record.parent_span_id);
    }
    let name = match &record.name {
        SpanName::Rpc(rpc) => &*rpc.name,
        SpanName::Http(name) => name,
        SpanName::Owned(name) => &**name,
    };
    string(buf, 5, name);
    let kind = match record.kind {
        RecordKind::Internal => 1,
        RecordKind::Client => 3,
    };
    if record.start != 0 && record.end != 0 {
        buf.extend_from_slice(&kind_and_times(kind, record.start, record.end));
    } else {
        varint(buf, 6, u64::from(kind));
        fixed64(buf, 7, record.start);
        fixed64(buf, 8, record.end);
    }
    if let SpanName::Rpc(rpc) = &record.name {
        buf.extend_from_slice(&rpc.attributes);
    }
    if let Some((attempt, locality, endpoint)) = &record.attempt {
        int_attribute(buf, ATTRIBUTES, "attempt", i64::from(*attempt));
        string_attribute(buf, ATTRIBUTES, "cluster", &record.cluster);
        locality_attribute(buf, locality);
        string_attribute(buf, ATTRIBUTES, "endpoint", endpoint);
    } else {
        string_attribute(buf, ATTRIBUTES, "cluster", &record.cluster);
        if let Some(route) = &record.route {
            string_attribute(buf, ATTRIBUTES, "route", route);
        }
    }
    if let Some(code) = record.grpc_status {
        int_attribute(buf, ATTRIBUTES, "rpc.grpc.status_code", i64::from(code));
    }
    if let Some(status) = record.http_status {
        int_attribute(
            buf,
            ATTRIBUTES,
            "http.response.status_code",
            i64::from(status),
        );
    }
    let status = begin(buf, 15);
    if let RecordStatus::Error(message) = &record.status {
        string(buf, 2, message);
        varint(buf, 3, 2);
    }
    end(buf, status);
    let mut flags = u32::from(record.trace_flags) | FLAG_HAS_IS_REMOTE;
    if record.parent_is_remote {
        flags |= FLAG_IS_REMOTE;
    }
    fixed32(buf, 16, flags);
    end_long(buf, start, SPAN_LENGTH);
}

/// What a span takes, but for long strings.
const RESERVE: usize = 512;

/// `Span.trace_id` and `Span.span_id` (fields 1 and 2, 16 and 8 bytes), in one piece.
fn ids(trace_id: [u8; 16], span_id: [u8; 8]) -> [u8; 28] {
    let mut fields = [0_u8; 28];
    fields[0] = 1 << 3 | 2;
    fields[1] = 16;
    for (slot, byte) in fields.iter_mut().skip(2).zip(trace_id) {
        *slot = byte;
    }
    fields[18] = 2 << 3 | 2;
    fields[19] = 8;
    for (slot, byte) in fields.iter_mut().skip(20).zip(span_id) {
        *slot = byte;
    }
    fields
}

/// `Span.kind` (a one-byte varint) and the non-zero `start_time_unix_nano` and `end_time_unix_nano` (fixed64), in
/// one piece.
fn kind_and_times(kind: u8, start: u64, end: u64) -> [u8; 20] {
    let mut fields = [0_u8; 20];
    fields[0] = 6 << 3;
    fields[1] = kind;
    fields[2] = 7 << 3 | 1;
    for (slot, byte) in fields.iter_mut().skip(3).zip(start.to_le_bytes()) {
        *slot = byte;
    }
    fields[11] = 8 << 3 | 1;
    for (slot, byte) in fields.iter_mut().skip(12).zip(end.to_le_bytes()) {
        *slot = byte;
    }
    fields
}

/// `locality` as `{region="..", zone="..", sub_zone=".."}` (its `Display`, gRFC A78's label), written in place.
fn locality_attribute(buf: &mut Vec<u8>, locality: &Locality) {
    const PARTS: [&str; 4] = ["{region=\"", "\", zone=\"", "\", sub_zone=\"", "\"}"];
    let values = [&*locality.region, &*locality.zone, &*locality.sub_zone];
    let length = PARTS.iter().map(|part| part.len()).sum::<usize>()
        + values.iter().map(|value| value.len()).sum::<usize>();
    string_attribute_head(buf, ATTRIBUTES, "locality", length);
    for (part, value) in PARTS.iter().zip(values.iter().map(Some).chain([None])) {
        buf.extend_from_slice(part.as_bytes());
        if let Some(value) = value {
            buf.extend_from_slice(value.as_bytes());
        }
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
