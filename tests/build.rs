//! Builds the static C program the exec-mode tests run (`static/exec_probe.c`) with the
//! system's C compiler. If it cannot be built (no compiler, no static libc), the probe gets no
//! program (an empty file) and those tests skip with the reason — which fails them under
//! `PORTCULLIS_TESTS_REQUIRED=1`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "static/exec_probe.c";
    println!("cargo:rerun-if-changed={source}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let program = out.join("exec_probe");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let built = Command::new(&cc)
        .args(["-static", "-O1", "-o"])
        .arg(&program)
        .arg(source)
        .status();
    if !matches!(built, Ok(status) if status.success()) {
        println!(
            "cargo:warning=static exec probe not built ({cc}: {built:?}); exec tests will skip"
        );
        // An empty file stands for "not built" (the probe embeds whatever is there).
        std::fs::write(&program, b"").expect("write OUT_DIR");
    }
    println!(
        "cargo:rustc-env=PORTCULLIS_EXEC_PROBE={}",
        program.display()
    );
}
