//! Resource-limit and violation scenarios. Each runs an offender next to a bystander child that
//! must keep answering while the offender misbehaves and after it ended.

use std::time::Duration;

use portcullis::{Broker, ChildContext, ChildEnd, Rlimit, RlimitResource, SpawnOptions};
use serde::{Deserialize, Serialize};

use crate::{spawn_echo, Down, Up, Verdict};

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
        Ok(())
    } else {
        Err(format!("{offence:?} ended {end:?}"))
    }
}

/// A spinning child with a 1-second CPU limit ends as `CpuLimit`.
pub fn cpu_limit(broker: &Broker) -> Verdict {
    let mut rlimits = portcullis::default_rlimits();
    rlimits.push(Rlimit {
        resource: RlimitResource::CpuSeconds,
        value: 1,
    });
    let options = SpawnOptions {
        rlimits: Some(rlimits),
        ..SpawnOptions::default()
    };
    with_bystander(
        broker,
        Offence::Spin,
        &options,
        |end| matches!(end, ChildEnd::CpuLimit { used_ms } if *used_ms >= 1000),
    )
}
