//! `cargo bench --workspace --bench spawn -- --json [--pin] [--rounds N]`
//!
//! Interleaves, round by round: a bare `fork` + `_exit` + `waitpid` from this process
//! (`fork_us`); a Portcullis spawn — request → child fully locked down and its first message
//! received → end reaped (`spawn_us`); and, when `bwrap` is installed, `bwrap --unshare-all
//! --die-with-parent --cap-drop ALL` of a static `true` (`bwrap_us`). Prints medians and the
//! ratios measured in this run; the last stdout line is one JSON object.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{json_line, median_us, r2, Options};
use portcullis::{Broker, BrokerConfig, ChildContext, ChildEnd, Entries};

/// The smallest useful child: say hello, exit.
fn hello(ctx: ChildContext<u8, u8>, _: ()) -> i32 {
    i32::from(ctx.send(&1).is_err())
}

fn bare_fork() -> Duration {
    let start = Instant::now();
    // SAFETY: the child only calls _exit (async-signal-safe); the parent reaps it.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(0);
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
    start.elapsed()
}

fn sandboxed_spawn(broker: &Broker) -> Duration {
    let start = Instant::now();
    let child = broker.spawn::<u8, u8, _>("hello", &()).expect("spawn");
    assert_eq!(child.recv().expect("first message"), 1);
    assert_eq!(child.wait(), ChildEnd::Exited { code: 0 });
    start.elapsed()
}

/// A static `true` for bwrap (bwrap needs the program inside its sandbox). Built with cc.
fn static_true() -> Option<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("portcullis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let src = dir.join("true.c");
    let bin = dir.join("true");
    std::fs::write(&src, "int main(void){return 0;}\n").ok()?;
    let ok = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .ok()?
        .success();
    ok.then_some(bin)
}

fn bwrap(true_bin: &std::path::Path) -> Option<Duration> {
    let start = Instant::now();
    let status = Command::new("bwrap")
        .args([
            "--unshare-all",
            "--die-with-parent",
            "--cap-drop",
            "ALL",
            "--ro-bind",
        ])
        .arg(true_bin)
        .args(["/true", "/true"])
        .status()
        .ok()?;
    status.success().then(|| start.elapsed())
}

fn main() {
    let options = Options::from_args(300);
    if options.pin {
        common::pin_to_cpu0();
    }
    // In the zygote (a re-exec of this binary) this never returns.
    let broker = Broker::start(
        Entries::new().register("hello", hello),
        BrokerConfig::default(),
    )
    .expect("start broker");
    let true_bin = static_true();
    let bwrap_works = true_bin.as_deref().and_then(bwrap).is_some();

    // Warm up each path.
    for _ in 0..20 {
        bare_fork();
        sandboxed_spawn(&broker);
    }
    let (mut forks, mut spawns, mut bwraps) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..options.rounds {
        forks.push(bare_fork());
        spawns.push(sandboxed_spawn(&broker));
        // bwrap is ~10x slower; sample it every third round to keep the run short.
        if bwrap_works && round % 3 == 0 {
            if let Some(d) = true_bin.as_deref().and_then(bwrap) {
                bwraps.push(d);
            }
        }
    }
    let fork_us = median_us(&mut forks);
    let spawn_us = median_us(&mut spawns);
    let mut pairs = vec![
        ("bench", "\"spawn\"".to_string()),
        ("rounds", options.rounds.to_string()),
        ("pinned", options.pin.to_string()),
        ("fork_us", r2(fork_us).to_string()),
        ("spawn_us", r2(spawn_us).to_string()),
        ("spawn_over_fork", r2(spawn_us / fork_us).to_string()),
    ];
    if !bwraps.is_empty() {
        let bwrap_us = median_us(&mut bwraps);
        pairs.push(("bwrap_us", r2(bwrap_us).to_string()));
        pairs.push(("bwrap_over_spawn", r2(bwrap_us / spawn_us).to_string()));
    }
    if let Some(t) = true_bin {
        let _ = std::fs::remove_dir_all(t.parent().unwrap_or(&t));
    }
    if !options.json {
        println!(
            "fork {fork_us:.1} us, spawn {spawn_us:.1} us, spawn/fork {:.2}",
            spawn_us / fork_us
        );
    }
    println!("{}", json_line(&pairs));
}
