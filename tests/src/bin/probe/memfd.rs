//! Sealed memfds: a child may create one with exactly `MFD_CLOEXEC | MFD_ALLOW_SEALING`, seal it
//! and pass it to the broker, which sees the seals and the bytes; a `memfd_create` with any
//! other flags is a seccomp violation.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use portcullis::{Broker, ChildContext, ChildEnd, OnViolation};
use serde::{Deserialize, Serialize};

use crate::Verdict;

/// Bytes the child writes into its memfd.
const SIZE: usize = 4096;
const ALL_SEALS: i32 =
    libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum MemfdUp {
    /// The memfd is attached; the seals the child read back.
    Sealed {
        seals: i32,
    },
    Failed {
        step: String,
        errno: i32,
    },
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `flags`: the `memfd_create` flags to try.
pub(crate) fn memfd_child(ctx: ChildContext<MemfdUp, ()>, flags: u32) -> i32 {
    let fail = |step: &str| {
        let _ = ctx.send(&MemfdUp::Failed {
            step: step.to_owned(),
            errno: errno(),
        });
        0
    };
    // SAFETY: the name is a NUL-terminated literal; the flags are an integer.
    let fd = unsafe { libc::syscall(libc::SYS_memfd_create, c"probe".as_ptr(), flags) };
    if fd < 0 {
        return fail("memfd_create");
    }
    // SAFETY: `fd` was just returned by memfd_create and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(i32::try_from(fd).unwrap_or(-1)) };
    let mut file = std::fs::File::from(fd);
    if std::io::Write::write_all(&mut file, &[0x5a; SIZE]).is_err() {
        return fail("write");
    }
    // SAFETY: fcntl on an fd this process owns, with integer arguments.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, ALL_SEALS) } < 0 {
        return fail("F_ADD_SEALS");
    }
    // SAFETY: as above; F_GET_SEALS takes no argument.
    let seals = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) };
    if seals < 0 {
        return fail("F_GET_SEALS");
    }
    match ctx.send_with_fds(&MemfdUp::Sealed { seals }, &[file.as_fd()]) {
        Ok(()) => 0,
        Err(_) => 3,
    }
}

/// Allowed: create, write, seal, pass; the broker sees all four seals, the size and the bytes,
/// and cannot write to it either.
pub(crate) fn create_and_seal(broker: &Broker) -> Verdict {
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    let child = broker
        .spawn::<(), MemfdUp, _>("memfd", &flags)
        .map_err(|e| format!("spawn: {e}"))?;
    let (message, mut fds) = child
        .recv_with_fds(Some(Duration::from_secs(20)))
        .map_err(|e| {
            format!(
                "recv: {e}; ended {:?}",
                child.wait_timeout(Duration::from_secs(5))
            )
        })?;
    let MemfdUp::Sealed { seals } = message else {
        return Err(format!("child failed: {message:?}"));
    };
    if seals & ALL_SEALS != ALL_SEALS || fds.len() != 1 {
        return Err(format!("seals {seals:#x}, {} fds", fds.len()));
    }
    let file = std::fs::File::from(fds.remove(0));
    // SAFETY: fcntl on an fd this process owns.
    let seen = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) };
    if seen & ALL_SEALS != ALL_SEALS {
        return Err(format!("broker sees seals {seen:#x}"));
    }
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut bytes = vec![0u8; SIZE];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut bytes, 0).map_err(|e| e.to_string())?;
    if len != SIZE as u64 || bytes.iter().any(|&b| b != 0x5a) {
        return Err(format!("memfd holds {len} bytes, not the child's"));
    }
    match std::os::unix::fs::FileExt::write_at(&file, b"x", 0) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        other => return Err(format!("write to a sealed memfd: {other:?}")),
    }
    match child.wait_timeout(Duration::from_secs(20)) {
        Some(ChildEnd::Exited { code: 0 }) => Ok(()),
        other => Err(format!("child ended {other:?}")),
    }
}

/// Denied: `memfd_create` with flags other than exactly `MFD_CLOEXEC | MFD_ALLOW_SEALING` (here
/// an unsealable one) is a violation that kills the child.
pub(crate) fn other_flags(broker: &Broker) -> Verdict {
    let child = broker
        .spawn::<(), MemfdUp, _>("memfd", &libc::MFD_CLOEXEC)
        .map_err(|e| format!("spawn: {e}"))?;
    let _ = child.recv_timeout(Duration::from_secs(20));
    match child.wait_timeout(Duration::from_secs(20)) {
        Some(ChildEnd::SeccompViolation { violation: Some(v) })
            if v.syscall == "memfd_create" && v.mode == OnViolation::Kill =>
        {
            println!("  reported: {v}");
            Ok(())
        }
        other => Err(format!(
            "expected a seccomp kill reported as memfd_create, got {other:?}"
        )),
    }
}
