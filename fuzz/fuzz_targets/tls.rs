//! Certificates, PEM and SPIFFE trust bundle maps from arbitrary bytes: parsing and verification must never panic.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mesh_fuzz::tls(data);
});
