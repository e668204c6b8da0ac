//! Portcullis fuzz targets, as plain functions of the input bytes.
//!
//! Owns: what each target does with its input and the properties it checks (a failed property
//! panics, which is what libFuzzer reports). The `fuzz_targets/` binaries only call these; the
//! stable replay tests include the same files (`#[path]`) and call the same functions on the
//! checked-in corpus (`corpus/<target>/`) and on seeded random inputs, so the properties are
//! checked on every `cargo test`, nightly or not.
//!
//! Must never: hold state between inputs beyond the fixed profile, do I/O, or catch a panic.
//!
//! - [`frame_to_decision`]: bytes → channel datagrams → framing checks and postcard decode →
//!   `ServiceRequest` → the broker's request-to-access mapping → `Profile::decide`.
//! - [`path_beneath`]: hostile path strings (`..`, `//`, `.`, symlink-like and magic-link
//!   names, NUL, over-long names) → every path access and rename → `Profile::decide`.
//!
//! Both check every decision with [`invariants::check`]: an allow names a grant, its relative
//! path is clean, and root + relative is exactly the path asked for (so lexically beneath the
//! granted root), with the rights the access needs.

pub mod frame_to_decision;
pub mod invariants;
pub mod path_beneath;
