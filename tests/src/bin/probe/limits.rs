//! Resource-limit and violation scenarios. Each runs an offender next to a bystander child that
//! must keep answering while the offender misbehaves and after it ended.

use std::time::Duration;

use portcullis::policy::{Limits, Profile};
use portcullis::{Broker, ChildContext, ChildEnd, OnViolation, SpawnOptions};
use serde::{Deserialize, Serialize};

use crate::{spawn_echo, Down, Up, Verdict, SKIP_PREFIX};

/// What an offender child does once locked down.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum Offence {
    /// Burn CPU forever.
    Spin,
    /// Sleep forever.
    Sleep,
    /// Allocate and touch memory until something stops it.
    MemoryBomb,
    /// Start threads that park until something stops it.
    ThreadBomb,
    /// Call `ptrace` and `socket(AF_INET)`, then report what they returned.
    ForbiddenSyscalls,
    /// Close every fd it has (both channels too), scribble over its own heap, then call
    /// `ptrace`: the report must still reach the broker, from the kernel.
    GagThenPtrace,
}

/// The offender entry. Reports its results (if it lives to) as `Up::Outcome`.
pub fn offender(ctx: ChildContext<Up, Down>, offence: Offence) -> i32 {
    match offence {
        Offence::Spin => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        Offence::Sleep => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        Offence::MemoryBomb => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut block = vec![0u8; 8 << 20];
                for page in block.chunks_mut(4096) {
                    page[0] = 1;
                }
                hoard.push(std::hint::black_box(block));
            }
        }
        Offence::ThreadBomb => {
            let mut threads = Vec::new();
            loop {
                threads.push(std::thread::spawn(|| loop {
                    std::thread::park();
                }));
            }
        }
        Offence::GagThenPtrace => {
            drop(ctx);
            for fd in 0..256 {
                // SAFETY: closing our own fds; nothing of ours uses an fd afterwards.
                unsafe { libc::close(fd) };
            }
            let mut junk = vec![0xA5u8; 1 << 20];
            std::hint::black_box(&mut junk);
            // SAFETY: a raw syscall with integer arguments; the filter stops it.
            unsafe { libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) };
            3
        }
        Offence::ForbiddenSyscalls => {
            let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            // SAFETY: raw syscalls with integer arguments; the filter stops both.
            let ptrace = unsafe { libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) };
            let ptrace_errno = errno();
            // SAFETY: as above.
            let socket =
                unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) };
            let socket_errno = errno();
            let report = format!(
                "ptrace {ptrace} errno {ptrace_errno}; socket {socket} errno {socket_errno}"
            );
            if ctx.send(&Up::Outcome(Ok(report))).is_err() {
                return 2;
            }
            0
        }
    }
}

/// Runs `offence` with `options` next to a bystander; checks the offender's end with `expect`.
fn with_bystander(
    broker: &Broker,
    offence: Offence,
    options: &SpawnOptions,
    expect: impl Fn(&ChildEnd) -> bool,
) -> Verdict {
    with_bystander_id(broker, offence, options, expect).map(drop)
}

/// [`with_bystander`], returning the offender's child id.
fn with_bystander_id(
    broker: &Broker,
    offence: Offence,
    options: &SpawnOptions,
    expect: impl Fn(&ChildEnd) -> bool,
) -> Result<u64, String> {
    let bystander = spawn_echo(broker)?;
    let offender = broker
        .spawn_with::<Down, Up, _>("offender", &offence, options)
        .map_err(|e| format!("spawn offender: {e}: {:?}", std::error::Error::source(&e)))?;
    let mut answered = 0;
    let end = loop {
        match bystander.request(&Down::Echo(vec![9])) {
            Ok(Up::Echo(b)) if b == [9] => answered += 1,
            other => return Err(format!("bystander stopped answering: {other:?}")),
        }
        if let Some(end) = offender.wait_timeout(Duration::from_millis(20)) {
            break end;
        }
        if answered > 3000 {
            return Err(format!(
                "{offence:?} still running after {answered} bystander answers"
            ));
        }
    };
    match bystander.request(&Down::Echo(vec![10])) {
        Ok(Up::Echo(b)) if b == [10] => {}
        other => {
            return Err(format!(
                "bystander broken after the offender ended: {other:?}"
            ))
        }
    }
    println!("  {offence:?} ended {end:?}; bystander answered {answered} times meanwhile");
    if expect(&end) {
        Ok(offender.id())
    } else {
        Err(format!("{offence:?} ended {end:?}"))
    }
}

/// Spawn options whose profile grants nothing and has `limits`.
fn limited(limits: Limits) -> SpawnOptions {
    SpawnOptions {
        profile: Some(Profile {
            limits,
            ..Profile::default()
        }),
        ..SpawnOptions::default()
    }
}

/// A spinning child with a 1-second CPU-time limit ends as `CpuLimit`, having used about a
/// second: the kernel kills at 1 s of tick-sampled time, which on a loaded machine may be
/// 10–20 % more than the exact runtime `wait4` reports, so the window is 0.5–1.5 s (a child
/// killed early, or never, fails either way).
pub fn cpu_limit(broker: &Broker) -> Verdict {
    let options = limited(Limits {
        cpu_seconds: 1,
        ..Limits::default()
    });
    with_bystander(
        broker,
        Offence::Spin,
        &options,
        |end| matches!(end, ChildEnd::CpuLimit { used_ms } if (500..=1500).contains(used_ms)),
    )
}

/// Skips (exit 77 through the caller) when the broker has no cgroup with `controller`.
pub fn need_cgroup(broker: &Broker, controller: &str) -> Result<(), String> {
    match broker.cgroup_controllers() {
        Some(c) if c.contains(&controller) => Ok(()),
        other => Err(format!(
            "{SKIP_PREFIX}this broker has no {controller} cgroup (it has {other:?}): the host or \
             user gives it none"
        )),
    }
}

/// A child allocating without end under a 64 MiB memory limit is killed by the kernel's OOM
/// killer inside its cgroup and ends as `OutOfMemory` (from the cgroup's own counter).
pub fn memory_bomb(broker: &Broker) -> Verdict {
    need_cgroup(broker, "memory")?;
    let options = limited(Limits {
        memory_bytes: 64 << 20,
        ..Limits::default()
    });
    with_bystander(broker, Offence::MemoryBomb, &options, |end| {
        matches!(end, ChildEnd::OutOfMemory)
    })
}

/// A child starting threads without end under a 16-task limit ends as `ProcessLimit` (the
/// cgroup counted the refused clone; the child's failed thread spawn panicked).
pub fn thread_bomb(broker: &Broker) -> Verdict {
    need_cgroup(broker, "pids")?;
    let options = limited(Limits {
        processes: 16,
        ..Limits::default()
    });
    with_bystander(broker, Offence::ThreadBomb, &options, |end| {
        matches!(end, ChildEnd::ProcessLimit)
    })
}

/// A sleeping child with a 300 ms wall-clock limit ends as `WallTimeout`.
pub fn wall_timeout(broker: &Broker) -> Verdict {
    let options = limited(Limits {
        wall_ms: 300,
        ..Limits::default()
    });
    with_bystander(broker, Offence::Sleep, &options, |end| {
        matches!(end, ChildEnd::WallTimeout)
    })
}

/// In `kill` mode the first forbidden syscall (`ptrace`) ends the child as a violation naming
/// it; the `socket` after it never runs.
pub fn violation_kill(broker: &Broker) -> Verdict {
    let options = limited(Limits::default());
    let id = with_bystander_id(broker, Offence::ForbiddenSyscalls, &options, |end| {
        matches!(end, ChildEnd::SeccompViolation { violation: Some(v) }
            if v.syscall == "ptrace" && v.mode == OnViolation::Kill
                && v.args[0] == libc::PTRACE_TRACEME as u64)
    })?;
    expect_violation_records(id, &["ptrace("], "seccomp-kill")
}

/// A child that closed both its channels and every other fd, then calls `ptrace`, is still
/// reported by name: the report comes from the kernel through the listener the broker holds.
pub fn violation_reported_without_the_childs_help(broker: &Broker) -> Verdict {
    let options = limited(Limits::default());
    with_bystander(
        broker,
        Offence::GagThenPtrace,
        &options,
        |end| matches!(end, ChildEnd::SeccompViolation { violation: Some(v) } if v.syscall == "ptrace"),
    )
}

/// In `deny` mode both forbidden syscalls fail with `EPERM` in the child, which goes on and
/// exits normally; the broker has both reports, by name, with their arguments.
pub fn violation_deny(broker: &Broker) -> Verdict {
    let options = limited(Limits {
        on_violation: OnViolation::Deny,
        ..Limits::default()
    });
    let child = broker
        .spawn_with::<Down, Up, _>("offender", &Offence::ForbiddenSyscalls, &options)
        .map_err(|e| format!("spawn offender: {e}"))?;
    let report = child
        .recv_timeout(Duration::from_secs(10))
        .map_err(|e| format!("no report from the child: {e}"))?;
    let end = child.wait();
    let (violations, seen) = child.violations();
    let eperm = libc::EPERM;
    let want = format!("ptrace -1 errno {eperm}; socket -1 errno {eperm}");
    match (&report, &end) {
        (Up::Outcome(Ok(r)), ChildEnd::Exited { code: 0 }) if *r == want => {}
        other => return Err(format!("expected {want:?} and a clean exit, got {other:?}")),
    }
    let names: Vec<&str> = violations.iter().map(|v| v.syscall.as_str()).collect();
    println!("  child saw: {want}; broker has {seen} reports: {violations:?}");
    if names != ["ptrace", "socket"] || seen != 2 {
        return Err(format!(
            "expected reports [ptrace, socket], got {names:?} ({seen})"
        ));
    }
    let socket = &violations[1];
    if socket.args[0] != libc::AF_INET as u64 || socket.mode != OnViolation::Deny {
        return Err(format!(
            "socket report has the wrong arguments or mode: {socket:?}"
        ));
    }
    expect_violation_records(child.id(), &["ptrace(", "socket(0x2, "], "seccomp-eperm")
}

/// The audit log holds exactly one `syscall` record per violation of child `id`, in order.
fn expect_violation_records(id: u64, targets: &[&str], reason: &str) -> Verdict {
    let records: Vec<_> = crate::files::AUDIT
        .lock()
        .map_err(|_| "audit lock poisoned")?
        .iter()
        .filter(|r| r.child == id && r.op == "syscall")
        .cloned()
        .collect();
    let fits = records.len() == targets.len()
        && records.iter().zip(targets).all(|(r, t)| {
            r.target.starts_with(t) && r.decision == "deny" && r.reason == Some(reason)
        });
    if fits {
        Ok(())
    } else {
        Err(format!(
            "expected {targets:?} audited as {reason}, got {records:?}"
        ))
    }
}

/// The pair of the violation tests: an allowed syscall is never reported.
pub fn no_violation_when_allowed(broker: &Broker) -> Verdict {
    let child = spawn_echo(broker)?;
    match child.request(&Down::Echo(vec![1, 2, 3])) {
        Ok(Up::Echo(b)) if b == [1, 2, 3] => {}
        other => return Err(format!("echo: {other:?}")),
    }
    child.send(&Down::Quit).map_err(|e| e.to_string())?;
    let end = child.wait();
    let (violations, seen) = child.violations();
    if seen != 0 || !violations.is_empty() || end != (ChildEnd::Exited { code: 0 }) {
        return Err(format!(
            "expected no violation and a clean exit: {end:?} {violations:?}"
        ));
    }
    Ok(())
}
