//! A `ClusterLoadAssignment` (EDS) from arbitrary bytes: decoding and validation must never panic.

#![no_main]

use mesh_xds_client::resource::ResourceKind;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mesh_fuzz::resource(ResourceKind::ClusterLoadAssignment, data);
});
