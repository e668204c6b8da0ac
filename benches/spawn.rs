//! `cargo bench --workspace --bench spawn -- --json [--pin] [--rounds N]`
//!
//! Interleaves, round by round, each round starting after a 3 ms pause so every measurement
//! starts from a quiet machine:
//! - `fork_us`: a bare `fork` + `_exit` + `waitpid` from this process;
//! - `spawn_us`: a Portcullis spawn with the default configuration — request → child fully
//!   locked down and its first message received → end reaped (a pre-forked, already locked-down
//!   child is taken from the zygote's pool when one is waiting, as in a real application);
//! - `cold_spawn_us`: the same through a second broker with `prefork = 0`, so the zygote forks
//!   and the child locks down inside the measurement;
//! - `bwrap_us`, when `bwrap` is installed: `bwrap --unshare-all --die-with-parent --cap-drop
//!   ALL` of a static `true`.
//!
//! Prints medians and the ratios measured in this run; the last stdout line is one JSON object.

mod common;

use std::time::{Duration, Instant};

use common::{json_line, median_us, r2, Options};
use portcullis::{Broker, BrokerConfig, ChildContext, ChildEnd, Entries};

/// The smallest useful child: say hello, exit.
fn hello(ctx: ChildContext<u8, u8>, _: ()) -> i32 {
    i32::from(ctx.send(&1).is_err())
}

fn entries() -> Entries {
    Entries::new().register("hello", hello)
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

/// One spawn, split into its phases: (locked down, first message, reaped), each from start.
fn sandboxed_spawn(broker: &Broker) -> [Duration; 3] {
    let start = Instant::now();
    let child = broker.spawn::<u8, u8, _>("hello", &()).expect("spawn");
    let locked_down = start.elapsed();
    assert_eq!(child.recv().expect("first message"), 1);
    let first_message = start.elapsed();
    assert_eq!(child.wait(), ChildEnd::Exited { code: 0 });
    [locked_down, first_message, start.elapsed()]
}

fn main() {
    let options = Options::from_args(300);
    if options.pin {
        common::pin_to_cpu0();
    }
    // In the zygotes (re-execs of this binary) these never return.
    let pooled = Broker::start(entries(), BrokerConfig::default()).expect("start broker");
    let cold = Broker::start(
        entries(),
        BrokerConfig {
            prefork: 0,
            ..BrokerConfig::default()
        },
    )
    .expect("start broker");
    let true_bin = common::static_true();
    let bwrap_works = true_bin.as_deref().and_then(common::bwrap).is_some();

    for _ in 0..20 {
        bare_fork();
        sandboxed_spawn(&pooled);
        sandboxed_spawn(&cold);
    }
    let quiet = || std::thread::sleep(Duration::from_millis(3));
    let (mut forks, mut spawns, mut colds, mut bwraps) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut locked, mut first, mut cold_locked) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..options.rounds {
        quiet();
        forks.push(bare_fork());
        quiet();
        let [l, f, reaped] = sandboxed_spawn(&pooled);
        locked.push(l);
        first.push(f);
        spawns.push(reaped);
        quiet();
        let [l, _, reaped] = sandboxed_spawn(&cold);
        cold_locked.push(l);
        colds.push(reaped);
        // bwrap is ~10x slower; sample it every third round to keep the run short.
        if bwrap_works && round % 3 == 0 {
            quiet();
            if let Some(d) = true_bin.as_deref().and_then(common::bwrap) {
                bwraps.push(d);
            }
        }
    }
    let fork_us = median_us(&mut forks);
    let spawn_us = median_us(&mut spawns);
    let cold_us = median_us(&mut colds);
    let mut pairs = vec![
        ("bench", "\"spawn\"".to_string()),
        ("rounds", options.rounds.to_string()),
        ("pinned", options.pin.to_string()),
        ("fork_us", r2(fork_us).to_string()),
        ("spawn_us", r2(spawn_us).to_string()),
        ("spawn_over_fork", r2(spawn_us / fork_us).to_string()),
        ("cold_spawn_us", r2(cold_us).to_string()),
        ("cold_spawn_over_fork", r2(cold_us / fork_us).to_string()),
        ("locked_down_us", r2(median_us(&mut locked)).to_string()),
        ("first_message_us", r2(median_us(&mut first)).to_string()),
        (
            "cold_locked_down_us",
            r2(median_us(&mut cold_locked)).to_string(),
        ),
    ];
    if !bwraps.is_empty() {
        let bwrap_us = median_us(&mut bwraps);
        pairs.push(("bwrap_us", r2(bwrap_us).to_string()));
        pairs.push(("bwrap_over_spawn", r2(bwrap_us / spawn_us).to_string()));
        pairs.push(("bwrap_over_cold_spawn", r2(bwrap_us / cold_us).to_string()));
    }
    if let Some(t) = true_bin {
        let _ = std::fs::remove_dir_all(t.parent().unwrap_or(&t));
    }
    if !options.json {
        println!(
            "fork {fork_us:.1} us, spawn {spawn_us:.1} us ({:.2}x), cold spawn {cold_us:.1} us ({:.2}x)",
            spawn_us / fork_us,
            cold_us / fork_us
        );
    }
    println!("{}", json_line(&pairs));
}
