//! Builds the two example plugins as **static** executables and embeds them in `plugin-host`.
//!
//! Static, because a plugin runs in a child whose root is empty: a static program needs nothing
//! mounted. Rust builds a static glibc program with `-C target-feature=+crt-static`, which must
//! not reach the workspace's other crates (proc-macros cannot be built that way), so this runs a
//! second cargo for just the plugin binaries — `cargo rustc ... -- -C target-feature=+crt-static`
//! gives the flag to the final binary only — in a target directory of its own beside the
//! workspace's (`target/plugins`), where it is cached between builds.
//!
//! If the plugins cannot be built (no static C library), `plugin-host` gets empty files and says
//! so when run; its tests then skip (and fail under `PORTCULLIS_TESTS_REQUIRED=1`).

use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGINS: [(&str, &str); 2] = [
    ("portcullis-plugin-thumbnailer", "thumbnailer"),
    ("portcullis-plugin-evil", "evil"),
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = manifest
        .ancestors()
        .nth(2)
        .expect("examples/plugin-host sits two levels below the workspace")
        .to_path_buf();
    for watched in ["plugins", "api"] {
        println!(
            "cargo:rerun-if-changed={}",
            manifest.join(watched).display()
        );
    }
    for watched in ["sandboxed-child/src", "ipc/src", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out.
    let target = out
        .ancestors()
        .nth(4)
        .map_or_else(|| workspace.join("target"), Path::to_path_buf);
    let plugin_target = target.join("plugins");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for (package, bin) in PLUGINS {
        let built = Command::new(&cargo)
            .current_dir(&workspace)
            .args(["rustc", "--quiet", "--release", "-p", package, "--bin", bin])
            .arg("--target-dir")
            .arg(&plugin_target)
            .args(["--", "-C", "target-feature=+crt-static"])
            // The outer build's jobserver and flags are not this build's.
            .env_remove("CARGO_MAKEFLAGS")
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env("CARGO_BUILD_JOBS", "2")
            .status();
        let program = out.join(bin);
        let source = plugin_target.join("release").join(bin);
        match built {
            Ok(status) if status.success() => {
                std::fs::copy(&source, &program).expect("copy the plugin into OUT_DIR");
            }
            other => {
                println!(
                    "cargo:warning=plugin {bin} not built as a static program ({other:?}); \
                     plugin-host will say so"
                );
                std::fs::write(&program, b"").expect("write OUT_DIR");
            }
        }
        let name = format!("PORTCULLIS_PLUGIN_{}", bin.to_uppercase());
        println!("cargo:rustc-env={name}={}", program.display());
    }
}
