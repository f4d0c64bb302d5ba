//! The encoder's bytes decode, with opentelemetry-proto's prost messages, to exactly what opentelemetry-proto's own
//! conversion of the same batch builds (what opentelemetry-otlp's exporter sends).

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use proptest::prelude::*;
use prost::Message as _;

use super::SpanEncoder;

fn every_kind_of_value() -> Vec<KeyValue> {
    vec![
        KeyValue::new("string", "value"),
        KeyValue::new("empty", ""),
        KeyValue::new("long", "x".repeat(300)),
        KeyValue::new("true", true),
        KeyValue::new("false", false),
        KeyValue::new("int", -42_i64),
        KeyValue::new("zero", 0_i64),
        KeyValue::new("double", 2.5_f64),
        KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
        KeyValue::new("ints", Value::Array(Array::I64(vec![1, -1, i64::MAX]))),
        KeyValue::new("doubles", Value::Array(Array::F64(vec![0.0, -1.5]))),
        KeyValue::new(
            "strings",
            Value::Array(Array::String(vec![
                StringValue::from("a"),
                StringValue::from(""),
            ])),
        ),
        KeyValue::new("no strings", Value::Array(Array::String(vec![]))),
    ]
}

fn time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn scope(name: &'static str) -> InstrumentationScope {
    InstrumentationScope::builder(name)
        .with_version("1.2.3")
        .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
        .with_attributes([KeyValue::new("scope.attribute", 7_i64)])
        .build()
}

/// A span with every field set: remote parent, trace state, events, links, dropped counts, an error status.
fn full_span(scope: InstrumentationScope, attributes: Vec<KeyValue>) -> SpanData {
    let trace_state = TraceState::from_key_value([("vendor", "opaque")]).unwrap();
    let linked = SpanContext::new(
        TraceId::from(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10_u128),
        SpanId::from(0x1112_1314_1516_1718_u64),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("linked", "state")]).unwrap(),
    );
    let mut events = SpanEvents::default();
    events.events.push(Event::new(
        "retry",
        time(1_700_000_000_100_000_000),
        attributes.clone(),
        2,
    ));
    events.dropped_count = 4;
    let mut links = SpanLinks::default();
    links.links.push(Link::new(linked, attributes.clone(), 1));
    links.dropped_count = 5;
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(0xa1a2_a3a4_a5a6_a7a8_a9aa_abac_adae_afb0_u128),
            SpanId::from(0xb1b2_b3b4_b5b6_b7b8_u64),
            TraceFlags::SAMPLED,
            false,
            trace_state,
        ),
        parent_span_id: SpanId::from(0xc1c2_c3c4_c5c6_c7c8_u64),
        parent_span_is_remote: true,
        span_kind: SpanKind::Client,
        name: Cow::Borrowed("svc/Method"),
        start_time: time(1_700_000_000_000_000_001),
        end_time: time(1_700_000_000_500_000_002),
        attributes,
        dropped_attributes_count: 3,
        events,
        links,
        status: Status::error("deadline exceeded"),
        instrumentation_scope: scope,
    }
}

/// A span with nothing but what every span has: no parent, no attributes, unset status.
fn bare_span(scope: InstrumentationScope) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(9_u128),
            SpanId::from(10_u64),
            TraceFlags::default(),
            false,
            TraceState::NONE,
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Server,
        name: Cow::Borrowed(""),
        start_time: UNIX_EPOCH,
        end_time: UNIX_EPOCH,
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: scope,
    }
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_schema_url(
            [
                KeyValue::new("service.name", "frontend"),
                KeyValue::new("mesh.cluster", "east"),
            ],
            "https://opentelemetry.io/schemas/1.29.0",
        )
        .build()
}

/// What opentelemetry-proto's conversion makes of `batch`.
fn reference(batch: &[SpanData], resource: &Resource) -> ExportTraceServiceRequest {
    let resource = ResourceAttributesWithSchema::from(resource);
    ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(batch.to_vec(), &resource),
    }
}

fn encode(batch: &[SpanData], resource: &Resource) -> ExportTraceServiceRequest {
    let mut encoder = SpanEncoder::default();
    encoder.set_resource(resource);
    ExportTraceServiceRequest::decode(encoder.encode(batch)).unwrap()
}

#[test]
fn every_field_of_a_span_decodes_as_opentelemetry_proto_converts_it() {
    let batch = vec![
        full_span(scope("mesh-tonic"), every_kind_of_value()),
        bare_span(scope("application")),
        full_span(scope("mesh-tonic"), Vec::new()),
    ];
    // One resource for both: its attributes are a hash map, iterated in an order of its own.
    let resource = resource();
    let decoded = encode(&batch, &resource);
    assert_eq!(decoded, reference(&batch, &resource));

    // Field by field, for the reader (and in case the reference conversion itself changed).
    let [resource_spans] = decoded.resource_spans.as_slice() else {
        panic!("one ResourceSpans: {decoded:?}");
    };
    assert_eq!(
        resource_spans.schema_url,
        "https://opentelemetry.io/schemas/1.29.0"
    );
    assert_eq!(
        resource_spans.resource.as_ref().unwrap().attributes.len(),
        2
    );
    let [mesh, application] = resource_spans.scope_spans.as_slice() else {
        panic!("spans grouped by scope: {resource_spans:?}");
    };
    let scope = mesh.scope.as_ref().unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("mesh-tonic", "1.2.3")
    );
    assert_eq!(scope.attributes.len(), 1);
    assert_eq!(mesh.schema_url, "https://opentelemetry.io/schemas/1.30.0");
    assert_eq!(mesh.spans.len(), 2);
    assert_eq!(application.spans.len(), 1);
    let span = &mesh.spans[0];
    assert_eq!(
        span.trace_id,
        0xa1a2_a3a4_a5a6_a7a8_a9aa_abac_adae_afb0_u128.to_be_bytes()
    );
    assert_eq!(span.span_id, 0xb1b2_b3b4_b5b6_b7b8_u64.to_be_bytes());
    assert_eq!(span.parent_span_id, 0xc1c2_c3c4_c5c6_c7c8_u64.to_be_bytes());
    assert_eq!(span.trace_state, "vendor=opaque");
    assert_eq!(span.flags, 0x301, "sampled, parent known to be remote");
    assert_eq!((span.name.as_str(), span.kind), ("svc/Method", 3));
    assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_001);
    assert_eq!(span.end_time_unix_nano, 1_700_000_000_500_000_002);
    assert_eq!(span.attributes.len(), every_kind_of_value().len());
    assert_eq!(
        span.attributes[2].value.as_ref().unwrap().value,
        Some(any_value::Value::StringValue("x".repeat(300)))
    );
    assert_eq!(
        span.attributes[5].value.as_ref().unwrap().value,
        Some(any_value::Value::IntValue(-42))
    );
    assert_eq!(
        (
            span.dropped_attributes_count,
            span.dropped_events_count,
            span.dropped_links_count
        ),
        (3, 4, 5)
    );
    assert_eq!(span.events[0].name, "retry");
    assert_eq!(span.events[0].dropped_attributes_count, 2);
    assert_eq!(span.links[0].trace_state, "linked=state");
    assert_eq!(span.links[0].flags, 0x301);
    let status = span.status.as_ref().unwrap();
    assert_eq!(
        (status.code, status.message.as_str()),
        (2, "deadline exceeded")
    );
    let bare = &application.spans[0];
    assert!(bare.parent_span_id.is_empty());
    assert_eq!((bare.flags, bare.kind), (0x100, 2));
}

#[test]
fn the_buffer_is_reused_and_holds_only_the_last_batch() {
    let resource = resource();
    let mut encoder = SpanEncoder::default();
    encoder.set_resource(&resource);
    let big = vec![full_span(scope("mesh-tonic"), every_kind_of_value()); 20];
    let _ = encoder.encode(&big);
    let small = vec![bare_span(scope("mesh-tonic"))];
    let decoded = ExportTraceServiceRequest::decode(encoder.encode(&small)).unwrap();
    assert_eq!(decoded, reference(&small, &resource));
}

fn value() -> impl Strategy<Value = Value> {
    let text = prop_oneof![".{0,8}", ".{120,200}"];
    let double = any::<f64>().prop_filter("NaN is not equal to itself", |d| !d.is_nan());
    prop_oneof![
        text.clone().prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        double.clone().prop_map(Value::F64),
        prop::collection::vec(any::<bool>(), 0..4).prop_map(|v| Value::Array(Array::Bool(v))),
        prop::collection::vec(any::<i64>(), 0..4).prop_map(|v| Value::Array(Array::I64(v))),
        prop::collection::vec(double, 0..4).prop_map(|v| Value::Array(Array::F64(v))),
        prop::collection::vec(text, 0..20).prop_map(|v| {
            Value::Array(Array::String(
                v.into_iter().map(StringValue::from).collect(),
            ))
        }),
    ]
}

proptest! {
    #[test]
    fn any_attribute_values_decode_as_opentelemetry_proto_converts_them(
        values in prop::collection::vec((".{0,12}", value()), 0..12),
    ) {
        let attributes: Vec<KeyValue> =
            values.into_iter().map(|(key, value)| KeyValue::new(key, value)).collect();
        let batch = vec![full_span(scope("mesh-tonic"), attributes)];
        let resource = resource();
        prop_assert_eq!(encode(&batch, &resource), reference(&batch, &resource));
    }
}

/// Any span: ids, flags, remote parent or none, kind, name, times, dropped counts, status, events and links, and
/// one of three scopes (so batches mix scopes in any order).
fn any_span() -> impl Strategy<Value = SpanData> {
    let ids = (
        any::<u128>(),
        any::<u64>(),
        any::<u64>(),
        any::<u8>(),
        any::<bool>(),
    );
    let kind = prop_oneof![
        Just(SpanKind::Internal),
        Just(SpanKind::Server),
        Just(SpanKind::Client),
        Just(SpanKind::Producer),
        Just(SpanKind::Consumer),
    ];
    let status = prop_oneof![
        Just(Status::Unset),
        Just(Status::Ok),
        ".{0,40}".prop_map(Status::error),
    ];
    let counts = (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        0..3_usize,
        0..3_usize,
    );
    let scope_index = 0..3_usize;
    let times = (any::<u64>(), any::<u64>());
    (ids, kind, status, counts, scope_index, times, ".{0,30}").prop_map(
        |(ids, kind, status, counts, scope_index, times, name)| {
            let (trace, span_id, parent, flags, remote) = ids;
            let (dropped_attributes, dropped_events, dropped_links, events, links) = counts;
            let scope = ["mesh-tonic", "application", "other"][scope_index];
            let state = [
                TraceState::NONE,
                TraceState::from_key_value([("k", "v")]).unwrap(),
            ][usize::from(flags % 2)]
            .clone();
            let mut span = full_span(
                scope_of(scope, scope_index),
                vec![KeyValue::new("n", 1_i64)],
            );
            span.span_context = SpanContext::new(
                TraceId::from(trace),
                SpanId::from(span_id),
                TraceFlags::new(flags),
                false,
                state,
            );
            span.parent_span_id = SpanId::from(parent % 3);
            span.parent_span_is_remote = remote;
            span.span_kind = kind;
            span.name = Cow::Owned(name);
            span.start_time = time(times.0);
            span.end_time = time(times.1);
            span.dropped_attributes_count = dropped_attributes;
            span.events.dropped_count = dropped_events;
            span.events.events.truncate(events);
            span.links.dropped_count = dropped_links;
            span.links.links.truncate(links);
            span.status = status;
            span
        },
    )
}

/// Scopes that differ in version or attributes only, too.
fn scope_of(name: &'static str, index: usize) -> InstrumentationScope {
    match index {
        0 => scope(name),
        1 => InstrumentationScope::builder(name).build(),
        _ => InstrumentationScope::builder(name)
            .with_attributes([KeyValue::new("a", true)])
            .build(),
    }
}

proptest! {
    #[test]
    fn any_batch_of_spans_decodes_as_opentelemetry_proto_converts_it(
        batch in prop::collection::vec(any_span(), 0..6),
    ) {
        let resource = resource();
        prop_assert_eq!(encode(&batch, &resource), reference(&batch, &resource));
    }
}
