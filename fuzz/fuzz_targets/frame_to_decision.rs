//! cargo-fuzz target: see `portcullis_fuzz::frame_to_decision`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis_fuzz::frame_to_decision::run(data);
});
