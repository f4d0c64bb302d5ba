//! `SpanData` batches straight into an OTLP `ExportTraceServiceRequest` (protobuf), with no intermediate structs.
//!
//! Field numbers are those of opentelemetry-proto's `collector/trace/v1/trace_service.proto`,
//! `trace/v1/trace.proto`, `common/v1/common.proto` and `resource/v1/resource.proto`. Values are written as the
//! opentelemetry-proto crate's conversion would build them (so a receiver decodes the same messages): defaults of
//! plain fields are left out as proto3 does, message fields the conversion always sets (the resource, the scope, a
//! span's status, a key's value) are always written, and a `oneof` value is written even when it is a default.
//!
//! A nested message's length is not known before its body is written: the body goes right after a one-byte
//! placeholder, which is patched with the length when the body is done (bodies of 128 bytes or more move up by the
//! varint's extra bytes). Spans are grouped by instrumentation scope with an equality check against the scopes seen
//! in the batch (usually one), never by hashing.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes};
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, Key, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

use super::record::{SpanRecord, span_record};
use prost::encoding::{WireType, encode_varint};

/// `Span.flags`: the `is_remote` bit of the parent is known (trace.proto `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`).
pub(super) const FLAG_HAS_IS_REMOTE: u32 = 0x100;
/// `Span.flags`: the parent is remote (`SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`).
pub(super) const FLAG_IS_REMOTE: u32 = 0x200;

/// Encodes batches: [`grpc_message`](Self::grpc_message) hands its buffer over as the request, and gets it back
/// for a later batch once the request is sent and dropped.
#[derive(Debug, Default)]
pub(crate) struct SpanEncoder {
    /// The encoded request.
    buf: Vec<u8>,
    /// Where the last request's buffer comes back to when the request is dropped.
    returned: Arc<Mutex<Option<Vec<u8>>>>,
    /// The `Resource` message body (and `ResourceSpans.schema_url`), encoded once.
    resource: Vec<u8>,
    resource_schema_url: String,
    /// Per span of the batch being encoded, the index of its scope in `scopes`.
    span_scopes: Vec<usize>,
    /// Per distinct scope of the batch, the index of its first span.
    scopes: Vec<usize>,
}

impl SpanEncoder {
    /// Sets the resource every batch is reported under.
    pub(crate) fn set_resource(&mut self, resource: &Resource) {
        self.resource.clear();
        for (key, value) in resource {
            key_value(&mut self.resource, 1, key, value);
        }
        resource
            .schema_url()
            .unwrap_or_default()
            .clone_into(&mut self.resource_schema_url);
    }

    /// `batch` as an `ExportTraceServiceRequest`, valid until the next call.
    #[cfg(test)]
    pub(crate) fn encode(&mut self, batch: &[SpanData]) -> &[u8] {
        self.encode_with_records(batch, &[], &InstrumentationScope::default())
    }

    /// `batch` and the request path's `records` (spans of `records_scope`) as one `ExportTraceServiceRequest`,
    /// valid until the next call.
    #[cfg(test)]
    pub(crate) fn encode_with_records(
        &mut self,
        batch: &[SpanData],
        records: &[SpanRecord],
        records_scope: &InstrumentationScope,
    ) -> &[u8] {
        self.buf.clear();
        self.write(batch, records, records_scope);
        &self.buf
    }

    /// `batch` and the request path's `records` (spans of `records_scope`) as one `ExportTraceServiceRequest`, a
    /// whole gRPC message (its 5-byte prefix first): the buffer itself, handed over. Dropping the request (every
    /// clone of it) hands the buffer back for a later batch, so that exports do not allocate (and, for batches past
    /// the allocator's threshold, map and fault in) a buffer of a batch's size each.
    pub(crate) fn grpc_message(
        &mut self,
        batch: &[SpanData],
        records: &[SpanRecord],
        records_scope: &InstrumentationScope,
    ) -> Bytes {
        let returned = self
            .returned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(returned) = returned {
            self.buf = returned;
        }
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 5]);
        self.write(batch, records, records_scope);
        // Not compressed, then the length (a batch is far below 4 GiB).
        let length = u32::try_from(self.buf.len() - 5).unwrap_or(u32::MAX);
        if let Some(prefix) = self.buf.get_mut(1..5) {
            prefix.copy_from_slice(&length.to_be_bytes());
        }
        Bytes::from_owner(Request {
            buf: std::mem::take(&mut self.buf),
            returned: Arc::clone(&self.returned),
        })
    }

    fn write(
        &mut self,
        batch: &[SpanData],
        records: &[SpanRecord],
        records_scope: &InstrumentationScope,
    ) {
        self.group(batch);
        let buf = &mut self.buf;
        let resource_spans = begin_long(buf, 1, BATCH_LENGTH);
        let resource = begin(buf, 1);
        buf.extend_from_slice(&self.resource);
        end(buf, resource);
        for (scope_index, first) in self.scopes.iter().enumerate() {
            let Some(scope) = batch.get(*first).map(|span| &span.instrumentation_scope) else {
                continue;
            };
            let scope_spans = begin_long(buf, 2, BATCH_LENGTH);
            scope_message(buf, scope);
            let spans = batch
                .iter()
                .zip(&self.span_scopes)
                .filter(|(_, index)| **index == scope_index);
            for (span_data, _) in spans {
                span(buf, span_data);
            }
            string(buf, 3, scope.schema_url().unwrap_or_default());
            end_long(buf, scope_spans, BATCH_LENGTH);
        }
        if !records.is_empty() {
            let scope_spans = begin_long(buf, 2, BATCH_LENGTH);
            scope_message(buf, records_scope);
            for record in records {
                span_record(buf, 2, record);
            }
            string(buf, 3, records_scope.schema_url().unwrap_or_default());
            end_long(buf, scope_spans, BATCH_LENGTH);
        }
        string(buf, 3, &self.resource_schema_url);
        end_long(buf, resource_spans, BATCH_LENGTH);
    }

    fn group(&mut self, batch: &[SpanData]) {
        self.span_scopes.clear();
        self.scopes.clear();
        let mut last: Option<(usize, &InstrumentationScope)> = None;
        for (position, span) in batch.iter().enumerate() {
            let scope = &span.instrumentation_scope;
            let index = match last {
                Some((index, last_scope)) if last_scope == scope => index,
                _ => {
                    let seen = self.scopes.iter().position(|first| {
                        batch
                            .get(*first)
                            .is_some_and(|other| other.instrumentation_scope == *scope)
                    });
                    seen.unwrap_or_else(|| {
                        self.scopes.push(position);
                        self.scopes.len() - 1
                    })
                }
            };
            last = Some((index, scope));
            self.span_scopes.push(index);
        }
    }
}

/// An encoded request's buffer, given back to its encoder when the request is dropped.
struct Request {
    buf: Vec<u8>,
    returned: Arc<Mutex<Option<Vec<u8>>>>,
}

impl AsRef<[u8]> for Request {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        *self.returned.lock().unwrap_or_else(PoisonError::into_inner) = Some(buf);
    }
}

fn scope_message(buf: &mut Vec<u8>, scope: &InstrumentationScope) {
    let start = begin(buf, 1);
    string(buf, 1, scope.name());
    string(buf, 2, scope.version().unwrap_or_default());
    for attribute in scope.attributes() {
        key_value(buf, 3, &attribute.key, &attribute.value);
    }
    end(buf, start);
}

fn span(buf: &mut Vec<u8>, span: &SpanData) {
    let start = begin_long(buf, 2, SPAN_LENGTH);
    let context = &span.span_context;
    bytes_field(buf, 1, &context.trace_id().to_bytes());
    bytes_field(buf, 2, &context.span_id().to_bytes());
    string(buf, 3, &context.trace_state().header());
    if span.parent_span_id != SpanId::INVALID {
        bytes_field(buf, 4, &span.parent_span_id.to_bytes());
    }
    string(buf, 5, &span.name);
    varint(buf, 6, kind(&span.span_kind));
    fixed64(buf, 7, nanos(span.start_time));
    fixed64(buf, 8, nanos(span.end_time));
    attributes(buf, 9, &span.attributes);
    varint(buf, 10, span.dropped_attributes_count.into());
    for event in span.events.iter() {
        let event_start = begin(buf, 11);
        fixed64(buf, 1, nanos(event.timestamp));
        string(buf, 2, &event.name);
        attributes(buf, 3, &event.attributes);
        varint(buf, 4, event.dropped_attributes_count.into());
        end(buf, event_start);
    }
    varint(buf, 12, span.events.dropped_count.into());
    for link in span.links.iter() {
        let link_start = begin(buf, 13);
        let linked = &link.span_context;
        bytes_field(buf, 1, &linked.trace_id().to_bytes());
        bytes_field(buf, 2, &linked.span_id().to_bytes());
        string(buf, 3, &linked.trace_state().header());
        attributes(buf, 4, &link.attributes);
        varint(buf, 5, link.dropped_attributes_count.into());
        fixed32(buf, 6, flags(linked, linked.is_remote()));
        end(buf, link_start);
    }
    varint(buf, 14, span.links.dropped_count.into());
    let status_start = begin(buf, 15);
    let (code, message) = match &span.status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error { description } => (2, description.as_ref()),
    };
    string(buf, 2, message);
    varint(buf, 3, code);
    end(buf, status_start);
    fixed32(buf, 16, flags(context, span.parent_span_is_remote));
    end_long(buf, start, SPAN_LENGTH);
}

/// trace.proto's `SpanFlags`: the W3C trace flags in the low byte, and whether the parent is remote.
fn flags(context: &SpanContext, remote: bool) -> u32 {
    let mut flags = u32::from(context.trace_flags().to_u8()) | FLAG_HAS_IS_REMOTE;
    if remote {
        flags |= FLAG_IS_REMOTE;
    }
    flags
}

/// trace.proto's `Span.SpanKind`.
fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// Nanoseconds since the epoch; 0 before it (as opentelemetry-proto does), saturated past 2554.
fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    })
}

fn attributes(buf: &mut Vec<u8>, tag: u32, attributes: &[KeyValue]) {
    for attribute in attributes {
        key_value(buf, tag, &attribute.key, &attribute.value);
    }
}

/// common.proto's `KeyValue`.
fn key_value(buf: &mut Vec<u8>, tag: u32, key: &Key, value: &Value) {
    let start = begin(buf, tag);
    string(buf, 1, key.as_str());
    let value_start = begin(buf, 2);
    any_value(buf, value);
    end(buf, value_start);
    end(buf, start);
}

/// The body of common.proto's `AnyValue` (a `oneof`: written even when its value is a default).
fn any_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(text) => string_always(buf, 1, text.as_str()),
        Value::Bool(flag) => bool_always(buf, *flag),
        Value::I64(number) => int_always(buf, *number),
        Value::F64(number) => double_always(buf, *number),
        Value::Array(array) => {
            let start = begin(buf, 5);
            match array {
                Array::Bool(values) => array_values(buf, values, |buf, flag| {
                    bool_always(buf, *flag);
                }),
                Array::I64(values) => array_values(buf, values, |buf, number| {
                    int_always(buf, *number);
                }),
                Array::F64(values) => array_values(buf, values, |buf, number| {
                    double_always(buf, *number);
                }),
                Array::String(values) => {
                    array_values(buf, values, |buf, text: &StringValue| {
                        string_always(buf, 1, text.as_str());
                    });
                }
                // A kind of array added to the API after this encoder: sent empty rather than failing the batch.
                _ => {}
            }
            end(buf, start);
        }
        // A kind of value added to the API after this encoder: an `AnyValue` with no value, as for an unset one.
        _ => {}
    }
}

/// common.proto's `ArrayValue` body: each element an `AnyValue` (field 1).
fn array_values<T>(buf: &mut Vec<u8>, values: &[T], mut element: impl FnMut(&mut Vec<u8>, &T)) {
    for value in values {
        let start = begin(buf, 1);
        element(buf, value);
        end(buf, start);
    }
}

fn bool_always(buf: &mut Vec<u8>, flag: bool) {
    key(2, WireType::Varint, buf);
    buf.push(u8::from(flag));
}

fn int_always(buf: &mut Vec<u8>, number: i64) {
    key(3, WireType::Varint, buf);
    // int64 is the two's complement as a varint (negative numbers take ten bytes).
    varint_value(buf, number.cast_unsigned());
}

fn double_always(buf: &mut Vec<u8>, number: f64) {
    key(4, WireType::SixtyFourBit, buf);
    buf.put_f64_le(number);
}

/// common.proto's `KeyValue` with a string value, field `tag`: written with its lengths known up front.
pub(super) fn string_attribute(buf: &mut Vec<u8>, tag: u32, key_text: &str, value: &str) {
    string_attribute_head(buf, tag, key_text, value.len());
    buf.extend_from_slice(value.as_bytes());
}

/// A string-valued `KeyValue` up to its value's bytes (`length` of them), which the caller writes next.
pub(super) fn string_attribute_head(buf: &mut Vec<u8>, tag: u32, key_text: &str, length: usize) {
    let any_value = 1 + varint_length(length) + length;
    // The common case, every length below 128 and a one-byte key: the head in one go.
    let body = 2 + key_text.len() + 2 + any_value;
    if let (Ok(tag @ 1..=15), Ok(body @ 0..=127)) = (u8::try_from(tag), u8::try_from(body)) {
        buf.reserve(usize::from(body) + 2);
        // Lengths below `body` fit in a byte too.
        #[allow(clippy::cast_possible_truncation)]
        let head = [tag << 3 | 2, body, 1 << 3 | 2, key_text.len() as u8];
        buf.extend_from_slice(&head);
        buf.extend_from_slice(key_text.as_bytes());
        #[allow(clippy::cast_possible_truncation)]
        buf.extend_from_slice(&[2 << 3 | 2, any_value as u8, 1 << 3 | 2, length as u8]);
        return;
    }
    key_value_head(buf, tag, key_text, any_value);
    buf.push(1 << 3 | WireType::LengthDelimited as u8);
    varint_value(buf, length as u64);
}

/// common.proto's `KeyValue` with an integer value, field `tag`: written with its lengths known up front.
pub(super) fn int_attribute(buf: &mut Vec<u8>, tag: u32, key_text: &str, value: i64) {
    let number = value.cast_unsigned();
    let any_value = 1 + varint_length_u64(number);
    // The common case, a short key and a one-byte tag: the head in one go.
    let body = 2 + key_text.len() + 2 + any_value;
    if let (Ok(tag @ 1..=15), Ok(body @ 0..=127)) = (u8::try_from(tag), u8::try_from(body)) {
        // Lengths below `body` fit in a byte too.
        #[allow(clippy::cast_possible_truncation)]
        let head = [tag << 3 | 2, body, 1 << 3 | 2, key_text.len() as u8];
        buf.extend_from_slice(&head);
        buf.extend_from_slice(key_text.as_bytes());
        #[allow(clippy::cast_possible_truncation)]
        buf.extend_from_slice(&[2 << 3 | 2, any_value as u8, 3 << 3]);
        varint_value(buf, number);
        return;
    }
    key_value_head(buf, tag, key_text, any_value);
    buf.push(3 << 3 | WireType::Varint as u8);
    varint_value(buf, number);
}

/// A `KeyValue`'s key, length and `key` field, and its `value` field's key and length (the `AnyValue` body of
/// `any_value` bytes follows).
fn key_value_head(buf: &mut Vec<u8>, tag: u32, key_text: &str, any_value: usize) {
    let body = 1
        + varint_length(key_text.len())
        + key_text.len()
        + 1
        + varint_length(any_value)
        + any_value;
    buf.reserve(body + 4);
    key(tag, WireType::LengthDelimited, buf);
    varint_value(buf, body as u64);
    buf.push(1 << 3 | WireType::LengthDelimited as u8);
    varint_value(buf, key_text.len() as u64);
    buf.extend_from_slice(key_text.as_bytes());
    buf.push(2 << 3 | WireType::LengthDelimited as u8);
    varint_value(buf, any_value as u64);
}

/// How many bytes `value` takes as a varint.
fn varint_length(value: usize) -> usize {
    varint_length_u64(value as u64)
}

fn varint_length_u64(value: u64) -> usize {
    // Seven bits a byte; zero takes one.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// A span's body is usually 128 to 16,383 bytes long: its length takes two bytes.
pub(super) const SPAN_LENGTH: usize = 2;
/// A batch's (and its scope's) body is usually 16 KiB to 2 MiB long: its length takes three bytes.
pub(super) const BATCH_LENGTH: usize = 3;

/// Starts a length-delimited field whose length is expected to take `width` bytes: its key and a placeholder of
/// that many, so that the body need not move when its length is written. Returns where the body starts.
pub(super) fn begin_long(buf: &mut Vec<u8>, tag: u32, width: usize) -> usize {
    key(tag, WireType::LengthDelimited, buf);
    buf.resize(buf.len() + width, 0);
    buf.len()
}

/// Ends the field [`begin_long`] started at `start` with a placeholder of `width` bytes: its length goes in the
/// placeholder when it takes that many bytes (varints are written minimal), else the body moves once.
pub(super) fn end_long(buf: &mut Vec<u8>, start: usize, width: usize) {
    let length = buf.len() - start;
    let placeholder = start - width;
    // A span's usual case, written as it is: seven bits with the continuation bit, then the rest (below 128).
    if width == 2
        && (128..16_384).contains(&length)
        && let Some(slot) = buf.get_mut(placeholder..start)
    {
        #[allow(clippy::cast_possible_truncation)] // Both below 256, as the range says.
        slot.copy_from_slice(&[(length & 0x7f) as u8 | 0x80, (length >> 7) as u8]);
        return;
    }
    let mut varint_bytes = [0_u8; 10];
    let mut cursor = &mut varint_bytes[..];
    encode_varint(length as u64, &mut cursor);
    let written = 10 - cursor.len();
    let head = varint_bytes.get(..written).unwrap_or_default();
    match buf.get_mut(placeholder..start) {
        Some(slot) if written == width => slot.copy_from_slice(head),
        _ => {
            buf.splice(placeholder..start, head.iter().copied());
        }
    }
}

/// Starts a length-delimited field: its key and a one-byte length placeholder. Returns where the body starts.
pub(super) fn begin(buf: &mut Vec<u8>, tag: u32) -> usize {
    key(tag, WireType::LengthDelimited, buf);
    buf.push(0);
    buf.len()
}

/// Ends the field [`begin`] started at `start`: writes its body's length in front of it.
pub(super) fn end(buf: &mut Vec<u8>, start: usize) {
    let length = buf.len() - start;
    let placeholder = start - 1;
    if let Ok(short @ 0..=127) = u8::try_from(length) {
        if let Some(byte) = buf.get_mut(placeholder) {
            *byte = short;
        }
        return;
    }
    let mut varint_bytes = [0_u8; 10];
    let mut cursor = &mut varint_bytes[..];
    encode_varint(length as u64, &mut cursor);
    let written = 10 - cursor.len();
    buf.splice(
        placeholder..start,
        varint_bytes.iter().take(written).copied(),
    );
}

/// A field's key; one byte for the field numbers of these messages (all below 16).
fn key(tag: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    match u8::try_from(tag) {
        Ok(small @ 1..=15) => buf.push(small << 3 | wire_type as u8),
        _ => prost::encoding::encode_key(tag, wire_type, buf),
    }
}

/// A varint; the common one-byte case without prost's general loop.
fn varint_value(buf: &mut Vec<u8>, value: u64) {
    match u8::try_from(value) {
        Ok(small @ 0..=127) => buf.push(small),
        _ => encode_varint(value, buf),
    }
}

pub(super) fn string(buf: &mut Vec<u8>, tag: u32, text: &str) {
    if !text.is_empty() {
        string_always(buf, tag, text);
    }
}

fn string_always(buf: &mut Vec<u8>, tag: u32, text: &str) {
    bytes_field_always(buf, tag, text.as_bytes());
}

pub(super) fn bytes_field(buf: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        bytes_field_always(buf, tag, bytes);
    }
}

fn bytes_field_always(buf: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    key(tag, WireType::LengthDelimited, buf);
    varint_value(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

pub(super) fn varint(buf: &mut Vec<u8>, tag: u32, value: u64) {
    if value != 0 {
        key(tag, WireType::Varint, buf);
        varint_value(buf, value);
    }
}

pub(super) fn fixed64(buf: &mut Vec<u8>, tag: u32, value: u64) {
    if value != 0 {
        key(tag, WireType::SixtyFourBit, buf);
        buf.put_u64_le(value);
    }
}

pub(super) fn fixed32(buf: &mut Vec<u8>, tag: u32, value: u32) {
    if value != 0 {
        key(tag, WireType::ThirtyTwoBit, buf);
        buf.put_u32_le(value);
    }
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
