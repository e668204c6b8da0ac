use std::io;

use super::{cvt, cvt_int};

/// Forks the calling process into a new PID namespace, where the child is PID 1. Returns 0 in
/// the child and the child's pid (in the caller's namespace) in the parent. clone(2) with
/// `CLONE_NEWPID | SIGCHLD` and no new stack, which behaves like fork(2).
///
/// Preconditions: the caller is single-threaded (the zygote), so the child inherits no lock held
/// by another thread and may allocate.
pub fn fork_into_new_pid_namespace() -> io::Result<libc::pid_t> {
    let flags = libc::c_ulong::try_from(libc::CLONE_NEWPID | libc::SIGCHLD)
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: with a null stack the child runs on a copy-on-write copy of the caller's stack,
    // exactly as after fork(2); the caller is single-threaded, and the null parent/child tid
    // pointers and tls are unused without the matching flags.
    let pid =
        cvt(unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) })?;
    libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))
}

/// Reaps one ended child if there is one, without blocking, with the CPU time it used.
/// wait4(2) with `WNOHANG`.
pub fn reap_one() -> io::Result<Option<Reaped>> {
    let mut status: libc::c_int = 0;
    // SAFETY: all-zero bytes are a valid `rusage` (plain integers).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `status` and `usage` are live values the kernel writes into.
    let pid = cvt_int(unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, &mut usage) })?;
    let micros = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_usec).unwrap_or(0)
    };
    Ok((pid > 0).then(|| Reaped {
        pid,
        status,
        cpu_us: micros(usage.ru_utime) + micros(usage.ru_stime),
    }))
}

/// A child [`reap_one`] collected.
#[derive(Debug, Clone, Copy)]
pub struct Reaped {
    /// Its pid.
    pub pid: libc::pid_t,
    /// Its raw wait status.
    pub status: libc::c_int,
    /// User + system CPU time it used (all its threads), in microseconds.
    pub cpu_us: u64,
}

/// Sends `signal` to `pid`. kill(2).
pub fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes a pid and signal by value; no memory is passed.
    cvt_int(unsafe { libc::kill(pid, signal) }).map(drop)
}
