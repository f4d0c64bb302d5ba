//! A request-path span's record encodes to exactly what opentelemetry-proto's conversion makes of the `SpanData`
//! the SDK would have built for the same span (attributes in the order the SDK path set them).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use mesh_core::locality::Locality;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use proptest::prelude::*;
use prost::Message as _;

use super::super::SpanEncoder;
use super::{RecordKind, RecordStatus, RpcMethod, SpanName, SpanRecord};

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("mesh-tonic")
        .with_version("0.1.0")
        .build()
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_attributes([KeyValue::new("service.name", "frontend")])
        .build()
}

/// The `SpanData` the SDK path built for `record`.
fn as_sdk(record: &SpanRecord, scope: &InstrumentationScope) -> SpanData {
    let mut attributes = Vec::new();
    let name = match &record.name {
        SpanName::Rpc(rpc) => {
            let (service, method) = rpc.name.split_once('/').unwrap();
            attributes.push(KeyValue::new("rpc.system", "grpc"));
            attributes.push(KeyValue::new("rpc.service", service.to_owned()));
            attributes.push(KeyValue::new("rpc.method", method.to_owned()));
            rpc.name.to_string()
        }
        SpanName::Http(name) => (*name).to_owned(),
        SpanName::Owned(name) => name.to_string(),
    };
    if let Some((attempt, locality, endpoint)) = &record.attempt {
        attributes.push(KeyValue::new("attempt", i64::from(*attempt)));
        attributes.push(KeyValue::new("cluster", record.cluster.to_string()));
        attributes.push(KeyValue::new("locality", locality.to_string()));
        attributes.push(KeyValue::new("endpoint", endpoint.to_string()));
    } else {
        attributes.push(KeyValue::new("cluster", record.cluster.to_string()));
        if let Some(route) = &record.route {
            attributes.push(KeyValue::new("route", route.to_string()));
        }
    }
    if let Some(code) = record.grpc_status {
        attributes.push(KeyValue::new("rpc.grpc.status_code", i64::from(code)));
    }
    if let Some(status) = record.http_status {
        attributes.push(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
    }
    let trace_state = record
        .trace_state
        .as_deref()
        .map_or(TraceState::NONE, |state| state.parse().unwrap());
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(record.trace_id),
            SpanId::from_bytes(record.span_id),
            TraceFlags::new(record.trace_flags),
            false,
            trace_state,
        ),
        parent_span_id: SpanId::from_bytes(record.parent_span_id),
        parent_span_is_remote: record.parent_is_remote,
        span_kind: match record.kind {
            RecordKind::Internal => SpanKind::Internal,
            RecordKind::Client => SpanKind::Client,
        },
        name: Cow::Owned(name),
        start_time: UNIX_EPOCH + Duration::from_nanos(record.start),
        end_time: UNIX_EPOCH + Duration::from_nanos(record.end),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match &record.status {
            RecordStatus::Unset => Status::Unset,
            RecordStatus::Error(message) => Status::error(message.to_string()),
        },
        instrumentation_scope: scope.clone(),
    }
}

fn check(records: &[SpanRecord]) {
    let (scope, resource) = (scope(), resource());
    let mut encoder = SpanEncoder::default();
    encoder.set_resource(&resource);
    let decoded =
        ExportTraceServiceRequest::decode(encoder.encode_with_records(&[], records, &scope))
            .unwrap();
    let sdk: Vec<SpanData> = records
        .iter()
        .map(|record| as_sdk(record, &scope))
        .collect();
    let reference = ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(
            sdk,
            &ResourceAttributesWithSchema::from(&resource),
        ),
    };
    assert_eq!(decoded, reference);
}

fn call() -> SpanRecord {
    SpanRecord {
        trace_id: 0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128.to_be_bytes(),
        span_id: 0xb7ad_6b71_6920_3331_u64.to_be_bytes(),
        parent_span_id: 0x00f0_67aa_0ba9_02b7_u64.to_be_bytes(),
        parent_is_remote: true,
        trace_flags: 1,
        trace_state: Some(Arc::from("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")),
        kind: RecordKind::Internal,
        name: SpanName::Rpc(Arc::new(RpcMethod::new("helloworld.Greeter", "SayHello"))),
        start: 1_700_000_000_000_000_001,
        end: 1_700_000_000_000_500_002,
        cluster: Arc::from("main"),
        route: Some(Arc::from("canary")),
        attempt: None,
        grpc_status: Some(14),
        http_status: None,
        status: RecordStatus::Error("".into()),
    }
}

fn attempt(call: &SpanRecord) -> SpanRecord {
    SpanRecord {
        span_id: 0x1111_2222_3333_4444_u64.to_be_bytes(),
        parent_span_id: call.span_id,
        parent_is_remote: false,
        kind: RecordKind::Client,
        route: None,
        attempt: Some((
            1,
            Locality::new("us-east", "us-east-a", ""),
            Arc::from("10.0.0.1:50051"),
        )),
        grpc_status: None,
        http_status: Some(503),
        status: RecordStatus::Error("connection refused".into()),
        ..call.clone()
    }
}

#[test]
fn a_call_and_its_attempt_decode_as_the_sdk_spans_they_replace() {
    let call = call();
    let attempt = attempt(&call);
    check(&[call.clone(), attempt]);

    // A root call with an OK plain HTTP request: no parent, no trace state, an unnamed route, unset status.
    let root = SpanRecord {
        parent_span_id: [0; 8],
        parent_is_remote: false,
        trace_state: None,
        name: SpanName::Http("GET"),
        route: None,
        grpc_status: None,
        http_status: Some(200),
        status: RecordStatus::Unset,
        ..call
    };
    check(&[root]);
}

#[test]
fn a_request_hands_its_buffer_back_when_dropped_and_keeps_it_while_alive() {
    let (scope, resource) = (scope(), resource());
    let mut encoder = SpanEncoder::default();
    encoder.set_resource(&resource);
    let call = call();
    let message = |request: &bytes::Bytes| {
        let (prefix, body) = request.split_at(5);
        assert_eq!(prefix[0], 0, "not compressed");
        assert_eq!(
            u32::from_be_bytes(prefix[1..5].try_into().unwrap()) as usize,
            body.len()
        );
        ExportTraceServiceRequest::decode(body).unwrap()
    };

    let first = encoder.grpc_message(&[], std::slice::from_ref(&call), &scope);
    let decoded = message(&first);
    let first_buffer = first.as_ptr();
    // The request is still alive (being sent, or kept for a retry): the next batch goes in another buffer, and
    // this one is left as it is.
    let second = encoder.grpc_message(&[], &[call.clone(), attempt(&call)], &scope);
    assert_ne!(second.as_ptr(), first_buffer);
    assert_eq!(message(&first), decoded);
    assert_eq!(
        message(&second).resource_spans[0].scope_spans[0]
            .spans
            .len(),
        2
    );

    // Every clone of the first request dropped (a retry's clone too): its buffer is the next batch's.
    let retry = first.clone();
    drop(first);
    drop(retry);
    let third = encoder.grpc_message(&[], &[attempt(&call)], &scope);
    assert_eq!(third.as_ptr(), first_buffer);
    assert_eq!(
        message(&third).resource_spans[0].scope_spans[0].spans.len(),
        1
    );
    assert_eq!(
        message(&second).resource_spans[0].scope_spans[0]
            .spans
            .len(),
        2
    );
}

proptest! {
    /// Strings of any length (empty, and long enough that a span's length takes three bytes), any codes and
    /// times, a batch of any size.
    #[test]
    fn any_records_decode_as_the_sdk_spans_they_replace(
        spans in prop::collection::vec(
            (
                "[a-z./]{0,40}",
                prop::option::of(".{0,20}"),
                prop_oneof![Just(0_usize), 1_usize..200, Just(20_000_usize)],
                any::<u32>(),
                prop::option::of(any::<u16>()),
                any::<u64>(),
                any::<bool>(),
            ),
            1..20,
        )
    ) {
        let records: Vec<SpanRecord> = spans
            .into_iter()
            .enumerate()
            .map(|(index, (cluster, route, endpoint_length, code, http, time, is_attempt))| {
                let base = call();
                let mut record = SpanRecord {
                    cluster: Arc::from(cluster),
                    route: route.map(Arc::from),
                    grpc_status: Some(code),
                    http_status: http,
                    start: time / 2,
                    end: time,
                    name: if index % 3 == 0 { SpanName::Owned(Arc::from("PURGE")) } else { base.name.clone() },
                    ..base
                };
                if is_attempt {
                    record = SpanRecord {
                        attempt: Some((code, Locality::new(&record.cluster, "z", &"s".repeat(endpoint_length / 2)), Arc::from("e".repeat(endpoint_length)))),
                        ..attempt(&record)
                    };
                }
                record
            })
            .collect();
        check(&records);
    }
}
