//! A whole `DiscoveryResponse` from arbitrary bytes, each resource decoded and validated as the client's worker
//! does: must never panic.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mesh_fuzz::discovery_response(data);
});
