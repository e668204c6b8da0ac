//! `cargo bench --workspace --bench syscall -- --json [--pin] [--rounds N]`
//!
//! What the child's seccomp filter costs an allowed syscall. Interleaves, round by round, the
//! same timed loop of syscalls in a plain forked process (`unfiltered_ns`) and in a sandboxed
//! child under the real filter (`filtered_ns`); each process times itself, so no IPC is inside a
//! measurement. Two syscalls:
//!
//! - `getpid`, allowed whatever its arguments: the kernel's seccomp action cache (Linux 5.11+)
//!   answers it from a bitmap without running the BPF program — the common case;
//! - `fcntl(F_GETFD)`, allowed only for some commands: the filter program runs on every call
//!   (`cond_*` keys).
//!
//! The last stdout line is one JSON object.

mod common;

use std::time::Instant;

use common::{json_line, r2, Options};
use portcullis::{Broker, BrokerConfig, ChildContext, Entries};
use serde::{Deserialize, Serialize};

/// Syscalls per timed batch.
const BATCH: u32 = 20_000;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Which {
    Getpid,
    FcntlGetfd,
}

/// Runs `BATCH` calls of `which` and returns nanoseconds per call.
fn timed_batch(which: Which) -> f64 {
    let start = Instant::now();
    for _ in 0..BATCH {
        // SAFETY: getpid takes no arguments; fcntl(F_GETFD) on fd 0 only reads its flags.
        unsafe {
            match which {
                Which::Getpid => libc::syscall(libc::SYS_getpid),
                Which::FcntlGetfd => libc::syscall(libc::SYS_fcntl, 0, libc::F_GETFD),
            };
        }
    }
    start.elapsed().as_nanos() as f64 / f64::from(BATCH)
}

fn child(ctx: ChildContext<f64, Which>, _: ()) -> i32 {
    while let Ok(which) = ctx.recv() {
        if ctx.send(&timed_batch(which)).is_err() {
            return 1;
        }
    }
    0
}

/// A plain forked process that runs a batch per command byte and answers with the ns/call.
fn unfiltered_peer() -> (libc::c_int, libc::pid_t) {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two fds into `fds`; fork is followed in the child by plain
    // syscalls and _exit only (the bench is single-threaded at this point).
    unsafe {
        assert_eq!(
            libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, fds.as_mut_ptr()),
            0
        );
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            libc::close(fds[0]);
            let mut cmd = [0u8; 1];
            while libc::read(fds[1], cmd.as_mut_ptr().cast(), 1) == 1 {
                let which = if cmd[0] == 0 {
                    Which::Getpid
                } else {
                    Which::FcntlGetfd
                };
                let ns = timed_batch(which).to_le_bytes();
                libc::write(fds[1], ns.as_ptr().cast(), ns.len());
            }
            libc::_exit(0);
        }
        libc::close(fds[1]);
        (fds[0], pid)
    }
}

fn ask_unfiltered(fd: libc::c_int, which: Which) -> f64 {
    let cmd = [u8::from(matches!(which, Which::FcntlGetfd))];
    let mut ns = [0u8; 8];
    // SAFETY: both buffers are live for the calls; `fd` is our open socket.
    unsafe {
        assert_eq!(libc::write(fd, cmd.as_ptr().cast(), 1), 1);
        assert_eq!(libc::read(fd, ns.as_mut_ptr().cast(), 8), 8);
    }
    f64::from_le_bytes(ns)
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
}

fn main() {
    let options = Options::from_args(60);
    if options.pin {
        common::pin_to_cpu0();
    }
    let broker = Broker::start(
        Entries::new().register("syscalls", child),
        BrokerConfig::default(),
    )
    .expect("start broker");
    let sandboxed = broker
        .spawn::<Which, f64, _>("syscalls", &())
        .expect("spawn child");
    let (peer, peer_pid) = unfiltered_peer();

    let mut results: [(Vec<f64>, Vec<f64>); 2] = Default::default();
    for round in 0..options.rounds + 2 {
        for (i, which) in [Which::Getpid, Which::FcntlGetfd].into_iter().enumerate() {
            // Alternate which side goes first, so neither always runs on a warmer CPU.
            let (unfiltered, filtered) = if round % 2 == 0 {
                let u = ask_unfiltered(peer, which);
                (u, sandboxed.request(&which).expect("child batch"))
            } else {
                let f = sandboxed.request(&which).expect("child batch");
                (ask_unfiltered(peer, which), f)
            };
            // The first two rounds warm up both processes.
            if round >= 2 {
                results[i].0.push(unfiltered);
                results[i].1.push(filtered);
            }
        }
    }
    // SAFETY: closing our end ends the peer's loop; waitpid reaps it.
    unsafe {
        libc::close(peer);
        libc::waitpid(peer_pid, std::ptr::null_mut(), 0);
    }
    let [(mut u, mut f), (mut cu, mut cf)] = results;
    let (unfiltered_ns, filtered_ns) = (median(&mut u), median(&mut f));
    let (cond_unfiltered_ns, cond_filtered_ns) = (median(&mut cu), median(&mut cf));
    if !options.json {
        println!(
            "getpid: unfiltered {unfiltered_ns:.1} ns, filtered {filtered_ns:.1} ns ({:.2}x); \
             fcntl(F_GETFD): unfiltered {cond_unfiltered_ns:.1} ns, filtered {cond_filtered_ns:.1} ns ({:.2}x)",
            filtered_ns / unfiltered_ns,
            cond_filtered_ns / cond_unfiltered_ns
        );
    }
    println!(
        "{}",
        json_line(&[
            ("bench", "\"syscall\"".into()),
            ("rounds", options.rounds.to_string()),
            ("calls_per_batch", BATCH.to_string()),
            ("pinned", options.pin.to_string()),
            ("unfiltered_ns", r2(unfiltered_ns).to_string()),
            ("filtered_ns", r2(filtered_ns).to_string()),
            (
                "filtered_over_unfiltered",
                r2(filtered_ns / unfiltered_ns).to_string()
            ),
            ("cond_unfiltered_ns", r2(cond_unfiltered_ns).to_string()),
            ("cond_filtered_ns", r2(cond_filtered_ns).to_string()),
            (
                "cond_filtered_over_unfiltered",
                r2(cond_filtered_ns / cond_unfiltered_ns).to_string(),
            ),
        ])
    );
}
