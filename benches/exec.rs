//! `cargo bench --workspace --bench exec -- --json [--rounds N]`
//!
//! The whole cost of running a program sandboxed from the command line: `portcullis run --
//! STATIC_TRUE` (start a broker and its zygote, lock a child down, execute the program from an
//! fd, reap it, report) against `bwrap --unshare-all --die-with-parent --cap-drop ALL` of the
//! same static binary, interleaved round by round; medians and their ratio. Also interleaved:
//! `portcullis run --no-cgroup` (`run_no_cgroup_ms`), which shows what the child's cgroup costs
//! (on cgroup v1, the first attach waits for an RCU grace period), and `benches/exec_floor.c`
//! (`floor_ms`): the least a sandbox with an empty root does, in C, with no seccomp, cgroup or
//! supervision — what the target's "minimal C sandbox" reaches on this machine. Needs `cc` (for
//! the static `true` and the floor) and `bwrap`; without bwrap only the times are reported. The
//! last stdout line is one JSON object.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{json_line, median_us, r2, Options};

fn portcullis_run(true_bin: &std::path::Path, flags: &[&str]) -> Duration {
    let start = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("run")
        .args(flags)
        .arg("--")
        .arg(true_bin)
        .status()
        .expect("portcullis runs");
    assert!(status.success(), "portcullis run failed: {status}");
    start.elapsed()
}

/// `benches/exec_floor.c`, built with `cc`: the least a sandbox with an empty root does.
fn exec_floor() -> Option<std::path::PathBuf> {
    let bin = std::env::temp_dir().join(format!("portcullis-exec-floor-{}", std::process::id()));
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/exec_floor.c");
    let built = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&bin)
        .arg(source)
        .status()
        .ok()?
        .success();
    built.then_some(bin)
}

fn timed(command: &mut Command) -> Option<Duration> {
    let start = Instant::now();
    let status = command.status().ok()?;
    status.success().then(|| start.elapsed())
}

fn main() {
    let options = Options::from_args(60);
    let true_bin = common::static_true().expect("cc builds a static true");
    let bwrap_works = common::bwrap(&true_bin).is_some();
    let floor = exec_floor().filter(|bin| timed(Command::new(bin).arg(&true_bin)).is_some());
    portcullis_run(&true_bin, &[]);
    let (mut runs, mut bwraps, mut bare, mut floors) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..options.rounds {
        // Alternate which goes first.
        if round % 2 == 0 {
            runs.push(portcullis_run(&true_bin, &[]));
        }
        // The same without a cgroup: what the cgroup costs, measured beside it.
        bare.push(portcullis_run(&true_bin, &["--no-cgroup"]));
        if bwrap_works {
            bwraps.extend(common::bwrap(&true_bin));
        }
        if let Some(floor) = &floor {
            floors.extend(timed(Command::new(floor).arg(&true_bin)));
        }
        if round % 2 == 1 {
            runs.push(portcullis_run(&true_bin, &[]));
        }
    }
    let run_ms = median_us(&mut runs) / 1e3;
    let bare_ms = median_us(&mut bare) / 1e3;
    let mut pairs = vec![
        ("bench", "\"exec\"".to_owned()),
        ("rounds", options.rounds.to_string()),
        ("run_ms", r2(run_ms).to_string()),
        ("run_no_cgroup_ms", r2(bare_ms).to_string()),
    ];
    let floor_ms = (!floors.is_empty()).then(|| median_us(&mut floors) / 1e3);
    if let Some(floor_ms) = floor_ms {
        pairs.push(("floor_ms", r2(floor_ms).to_string()));
    }
    if !bwraps.is_empty() {
        let bwrap_ms = median_us(&mut bwraps) / 1e3;
        pairs.push(("bwrap_ms", r2(bwrap_ms).to_string()));
        pairs.push(("run_over_bwrap", r2(run_ms / bwrap_ms).to_string()));
        pairs.push((
            "run_no_cgroup_over_bwrap",
            r2(bare_ms / bwrap_ms).to_string(),
        ));
        if let Some(floor_ms) = floor_ms {
            pairs.push(("floor_over_bwrap", r2(floor_ms / bwrap_ms).to_string()));
        }
        if !options.json {
            println!("portcullis run {run_ms:.2} ms, bwrap {bwrap_ms:.2} ms");
        }
    }
    println!("{}", json_line(&pairs));
}
