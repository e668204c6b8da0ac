//! Shared pieces of the real-kernel tests: the probe broker binary (`src/bin/probe.rs`) runs
//! one scenario per process; `tests/*.rs` start it and check its verdict.
//!
//! Why a separate process per scenario: libtest runs every test on a spawned thread, where
//! `unshare(CLONE_NEWUSER)` fails and `fork` inherits other threads' locks. The probe binary is
//! a plain `main`, so its zygote is a clean re-exec.

use std::process::Command;

/// Exit status of a scenario that cannot run on this host (reason on stdout).
pub const EXIT_SKIP: u8 = 77;

/// True when `PORTCULLIS_TESTS_REQUIRED=1`: a skip is then a failure.
pub fn tests_required() -> bool {
    std::env::var("PORTCULLIS_TESTS_REQUIRED").is_ok_and(|v| v == "1")
}

/// Runs `probe <scenario>` and panics unless it passed (or skipped while skips are allowed).
/// `PORTCULLIS_PROBE` overrides the probe's path (the unprivileged CI run uses a copy).
pub fn run_scenario(built_probe: &str, scenario: &str) {
    let probe = std::env::var("PORTCULLIS_PROBE").unwrap_or_else(|_| built_probe.to_string());
    let output = Command::new(&probe)
        .arg(scenario)
        .output()
        .expect("start probe binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        // What the scenario measured; shown with `--nocapture` or on failure.
        Some(0) => print!("{stdout}"),
        Some(code) if code == i32::from(EXIT_SKIP) && !tests_required() => {
            eprintln!("SKIPPED {scenario}: {}", stdout.trim());
        }
        Some(code) if code == i32::from(EXIT_SKIP) => {
            panic!(
                "{scenario} skipped but PORTCULLIS_TESTS_REQUIRED=1: {}",
                stdout.trim()
            );
        }
        _ => panic!(
            "{scenario} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            output.status
        ),
    }
}

/// One `#[test]` per `name => "scenario"` pair, each running that probe scenario in a fresh
/// broker process ([`run_scenario`]). Use it in a test file of this crate (where
/// `CARGO_BIN_EXE_probe` is set).
#[macro_export]
macro_rules! scenarios {
    ($($name:ident => $scenario:literal,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::run_scenario(env!("CARGO_BIN_EXE_probe"), $scenario);
            }
        )*
    };
}
