//! seccomp user notifications, read by the broker's supervisor from a child's listener fd.
//! seccomp_unotify(2).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::cvt_int;

/// One notification: a syscall the child's filter answered with `SECCOMP_RET_USER_NOTIF`. The
/// kernel filled every field; nothing here is the child's own word (the arguments are the
/// register values the child passed, i.e. what it asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    /// The notification's cookie, for the answer.
    pub id: u64,
    /// The calling thread, in the broker's PID namespace (0 if it is not visible there).
    pub pid: u32,
    /// `AUDIT_ARCH_*` of the call.
    pub arch: u32,
    /// The syscall number (for x32, with `__X32_SYSCALL_BIT`).
    pub nr: i32,
    /// Instruction pointer at the call.
    pub instruction_pointer: u64,
    /// The six argument registers.
    pub args: [u64; 6],
}

/// Receives one pending notification. `SECCOMP_IOCTL_NOTIF_RECV`. Blocks until one is pending;
/// call it when the listener polled readable. `ENOENT`: the caller died or was interrupted
/// before it could be read.
pub fn receive(listener: BorrowedFd<'_>) -> io::Result<Notification> {
    // SAFETY: all-zero bytes are a valid `seccomp_notif` (plain integers), and the kernel
    // requires the buffer zeroed.
    let mut raw: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: the ioctl writes one `seccomp_notif` into `raw`, which lives across the call;
        // the request number encodes that struct's size.
        let ret = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV as _,
                &mut raw as *mut libc::seccomp_notif,
            )
        };
        match cvt_int(ret) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Notification {
        id: raw.id,
        pid: raw.pid,
        arch: raw.data.arch,
        nr: raw.data.nr,
        instruction_pointer: raw.data.instruction_pointer,
        args: raw.data.args,
    })
}

/// Answers notification `id`: the syscall fails with `errno` in the child without running.
/// `SECCOMP_IOCTL_NOTIF_SEND`. `ENOENT`: the caller is gone (nothing to answer).
pub fn answer_error(listener: BorrowedFd<'_>, id: u64, errno: i32) -> io::Result<()> {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: -errno,
        flags: 0,
    };
    // SAFETY: the ioctl reads one `seccomp_notif_resp` from `resp`, which lives across the call.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND as _,
            &mut resp as *mut libc::seccomp_notif_resp,
        )
    };
    cvt_int(ret).map(drop)
}
