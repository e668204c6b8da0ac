use std::io;
use std::os::fd::RawFd;

use super::cvt_int;

/// The zygote's side of its start, run between fork and exec in the broker's child:
/// 1. put the control socket at `target` without close-on-exec;
/// 2. ask for SIGKILL when the broker thread that started it ends;
/// 3. if the broker already died (the parent is no longer `broker_pid`), exit at once.
///
/// Async-signal-safe: only dup2/fcntl/prctl/getppid/_exit, no allocation, no locks.
pub fn zygote_pre_exec(control: RawFd, target: RawFd, broker_pid: libc::pid_t) -> io::Result<()> {
    if control == target {
        // SAFETY: F_SETFD with 0 clears FD_CLOEXEC on an fd this process holds.
        cvt_int(unsafe { libc::fcntl(target, libc::F_SETFD, 0) })?;
    } else {
        // SAFETY: dup2 only changes this process's fd table; the new fd has no FD_CLOEXEC.
        cvt_int(unsafe { libc::dup2(control, target) })?;
    }
    // SAFETY: PR_SET_PDEATHSIG takes a signal number by value.
    cvt_int(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) })?;
    // SAFETY: getppid takes no arguments.
    if unsafe { libc::getppid() } != broker_pid {
        // SAFETY: _exit never returns; we are a forked child about to exec.
        unsafe { libc::_exit(1) };
    }
    Ok(())
}

/// Makes this process non-dumpable. prctl(2) `PR_SET_DUMPABLE`.
pub fn set_non_dumpable() -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes 0 by value.
    cvt_int(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) }).map(drop)
}

/// Ends the process at once, without destructors. _exit(2).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}
