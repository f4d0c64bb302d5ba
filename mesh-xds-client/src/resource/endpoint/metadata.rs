//! `config.core.v3.Metadata` to the model's [`Metadata`].

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Metadata as PbMetadata;
use envoy_types::pb::google::protobuf::{Struct as PbStruct, Value as PbValue, value::Kind};
use mesh_core::endpoint::{Metadata, MetadataStruct, MetadataValue};

/// `config.core.v3.Metadata` to the model: each `filter_metadata` entry becomes a [`MetadataValue::Struct`].
/// `typed_filter_metadata` has no generic model and is not kept.
pub(in crate::resource) fn metadata(pb: Option<&PbMetadata>) -> Metadata {
    let Some(pb) = pb else {
        return Metadata::default();
    };
    Metadata::new(pb.filter_metadata.iter().map(|(filter, value)| {
        (
            Arc::from(filter.as_str()),
            MetadataValue::Struct(struct_fields(value)),
        )
    }))
}

/// A `google.protobuf.Struct`'s fields. Nesting is bounded by prost's decode recursion limit.
fn struct_fields(value: &PbStruct) -> MetadataStruct {
    value
        .fields
        .iter()
        .map(|(key, value)| (Arc::from(key.as_str()), metadata_value(value)))
        .collect()
}

fn metadata_value(value: &PbValue) -> MetadataValue {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => MetadataValue::Null,
        Some(Kind::NumberValue(number)) => MetadataValue::Number(*number),
        Some(Kind::StringValue(string)) => MetadataValue::String(string.as_str().into()),
        Some(Kind::BoolValue(flag)) => MetadataValue::Bool(*flag),
        Some(Kind::StructValue(fields)) => MetadataValue::Struct(struct_fields(fields)),
        Some(Kind::ListValue(list)) => MetadataValue::List(
            list.values
                .iter()
                .map(metadata_value)
                .collect::<Vec<_>>()
                .into(),
        ),
    }
}
