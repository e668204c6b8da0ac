//! cargo-fuzz target: see `portcullis_fuzz::path_beneath`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis_fuzz::path_beneath::run(data);
});
