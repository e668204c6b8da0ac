//! `cargo bench --workspace --bench exec -- --json [--rounds N]`
//!
//! The whole cost of running a program sandboxed from the command line: `portcullis run --
//! STATIC_TRUE` against `bwrap --unshare-all --die-with-parent --cap-drop ALL` of the same
//! static binary, interleaved round by round (the order rotating each round); medians and their
//! ratios. `run_ms` is the command as a user types it with a `portcullis serve` of theirs
//! listening (found through `PORTCULLIS_SERVER`; the bench starts one with two warm children):
//! the client's own start, the request, a pre-forked locked-down child executing the program,
//! its end, the answer. Also interleaved:
//! - `run_standalone_ms`: `portcullis run --no-server`, a broker of the run's own (its zygote,
//!   filters, cgroup setup, a child forked and locked down for it, the shutdown);
//! - `run_no_cgroup_ms`: the same with `--no-cgroup` (what the child's cgroup costs; on cgroup
//!   v1 the first attach waits for an RCU grace period);
//! - `client_start_ms`: `portcullis --version`, the command's own start and exit, which every run
//!   pays before it can ask anything;
//! - `floor_ms`: `benches/exec_floor.c`, the least a sandbox with an empty root does, in C, with
//!   no seccomp, cgroup or supervision — what the target's "minimal C sandbox" reaches here.
//!
//! Needs `cc` (for the static `true` and the floor) and `bwrap`; without bwrap only the times
//! are reported. The last stdout line is one JSON object.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{json_line, median_us, r2, Options};

const PORTCULLIS: &str = env!("CARGO_BIN_EXE_portcullis");

fn portcullis_run(true_bin: &Path, flags: &[&str], server: Option<&Path>) -> Duration {
    let mut command = Command::new(PORTCULLIS);
    command.arg("run").args(flags).arg("--").arg(true_bin);
    match server {
        Some(socket) => command.env("PORTCULLIS_SERVER", socket),
        None => command.env_remove("PORTCULLIS_SERVER"),
    };
    let start = Instant::now();
    let status = command.status().expect("portcullis runs");
    let took = start.elapsed();
    assert!(
        status.success(),
        "portcullis run {flags:?} failed: {status}"
    );
    took
}

/// `benches/exec_floor.c`, built with `cc`: the least a sandbox with an empty root does.
fn exec_floor() -> Option<PathBuf> {
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

/// A `portcullis serve` for the bench's runs, killed on drop.
struct Server {
    process: std::process::Child,
    socket: PathBuf,
}

impl Server {
    fn start(true_bin: &Path) -> Server {
        let socket = std::env::temp_dir()
            .join(format!("portcullis-bench-exec-{}", std::process::id()))
            .join("run.sock");
        let process = Command::new(PORTCULLIS)
            .args(["serve", "--warm", "2", "--socket"])
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("portcullis serve starts");
        let server = Server { process, socket };
        // Ready once a run through it succeeds (`--server`: no silent standalone run).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let served = Command::new(PORTCULLIS)
                .arg("run")
                .arg("--server")
                .arg(&server.socket)
                .arg("--")
                .arg(true_bin)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if served {
                return server;
            }
            assert!(Instant::now() < deadline, "portcullis serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        if let Some(dir) = self.socket.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn main() {
    let options = Options::from_args(60);
    let true_bin = common::static_true().expect("cc builds a static true");
    let bwrap_works = common::bwrap(&true_bin).is_some();
    let floor = exec_floor().filter(|bin| timed(Command::new(bin).arg(&true_bin)).is_some());
    let server = Server::start(&true_bin);
    let socket = server.socket.clone();
    portcullis_run(&true_bin, &["--no-server"], None);
    const KINDS: usize = 6;
    let mut samples: [Vec<Duration>; KINDS] = Default::default();
    let names = [
        "run",
        "standalone",
        "no cgroup",
        "client start",
        "floor",
        "bwrap",
    ];
    for round in 0..options.rounds {
        for turn in 0..KINDS {
            let kind = (round + turn) % KINDS;
            let took = match kind {
                0 => Some(portcullis_run(&true_bin, &[], Some(&socket))),
                1 => Some(portcullis_run(&true_bin, &["--no-server"], None)),
                2 => Some(portcullis_run(&true_bin, &["--no-cgroup"], None)),
                3 => timed(
                    Command::new(PORTCULLIS)
                        .arg("--version")
                        .stdout(Stdio::null()),
                ),
                4 => floor
                    .as_ref()
                    .and_then(|floor| timed(Command::new(floor).arg(&true_bin))),
                _ => bwrap_works.then(|| common::bwrap(&true_bin)).flatten(),
            };
            samples[kind].extend(took);
        }
        if !options.json && round % 10 == 9 {
            eprintln!("round {}", round + 1);
        }
    }
    drop(server);
    let medians: Vec<Option<f64>> = samples
        .iter_mut()
        .map(|s| (!s.is_empty()).then(|| median_us(s) / 1e3))
        .collect();
    let [run, standalone, bare, client, floor_ms, bwrap] = [0, 1, 2, 3, 4, 5].map(|k| medians[k]);
    let mut pairs = vec![
        ("bench", "\"exec\"".to_owned()),
        ("rounds", options.rounds.to_string()),
    ];
    for (key, value) in [
        ("run_ms", run),
        ("run_standalone_ms", standalone),
        ("run_no_cgroup_ms", bare),
        ("client_start_ms", client),
        ("floor_ms", floor_ms),
        ("bwrap_ms", bwrap),
    ] {
        if let Some(value) = value {
            pairs.push((key, r2(value).to_string()));
        }
    }
    if let Some(bwrap) = bwrap {
        for (key, value) in [
            ("run_over_bwrap", run),
            ("run_standalone_over_bwrap", standalone),
            ("run_no_cgroup_over_bwrap", bare),
            ("client_start_over_bwrap", client),
            ("floor_over_bwrap", floor_ms),
        ] {
            if let Some(value) = value {
                pairs.push((key, r2(value / bwrap).to_string()));
            }
        }
    }
    if !options.json {
        for (name, median) in names.iter().zip(&medians) {
            if let Some(ms) = median {
                println!("{name}: {ms:.2} ms");
            }
        }
    }
    println!("{}", json_line(&pairs));
}
