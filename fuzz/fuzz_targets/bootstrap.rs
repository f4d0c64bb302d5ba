//! Bootstrap JSON from arbitrary bytes (as UTF-8, lossily): parsing and validation must never panic.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mesh_fuzz::bootstrap(data);
});
