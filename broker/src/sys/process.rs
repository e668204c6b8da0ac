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
    cvt_int(unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
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

/// Takes ownership of an fd this process inherited across exec at a known number.
/// Preconditions: `fd` is open and nothing else in this process owns it (the broker's pre-exec
/// hook or the zygote's stage 1 placed it there for us).
pub fn take_inherited_fd(fd: RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: per the precondition, the new OwnedFd is the only owner of this open fd.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// Opens this process's own executable as an `O_PATH` fd, for a later [`reexec`] when no path
/// to it is visible any more. open(2) of `/proc/self/exe`.
pub fn open_own_executable() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: the path is a NUL-terminated literal; the returned fd is new and ours alone.
    let fd =
        cvt_int(unsafe { libc::open(c"/proc/self/exe".as_ptr(), libc::O_PATH | libc::O_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by open and is owned by nothing else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Executes the program behind `exe` with `argv0` as its only argument, an environment of the
/// single variable `key=value`, and `keep` inheritable across the exec. Returns only on failure.
/// execveat(2) with `AT_EMPTY_PATH`.
pub fn reexec(
    exe: &std::os::fd::OwnedFd,
    argv0: &str,
    key: &str,
    value: &str,
    keep: &[RawFd],
) -> io::Error {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    for &fd in keep {
        // SAFETY: F_SETFD with 0 clears FD_CLOEXEC on an fd this process holds open.
        if let Err(e) = cvt_int(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }) {
            return e;
        }
    }
    let (Ok(arg), Ok(env)) = (CString::new(argv0), CString::new(format!("{key}={value}"))) else {
        return io::Error::from_raw_os_error(libc::EINVAL);
    };
    let argv = [arg.as_ptr(), std::ptr::null()];
    let envp = [env.as_ptr(), std::ptr::null()];
    // SAFETY: `argv` and `envp` are null-terminated arrays of pointers to NUL-terminated strings
    // that outlive the call; the empty path with AT_EMPTY_PATH makes the kernel use `exe` itself.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_execveat,
            exe.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    let err = io::Error::last_os_error();
    debug_assert_eq!(ret, -1);
    // The exec failed: put close-on-exec back so nothing leaks into children by accident.
    for &fd in keep {
        // SAFETY: as above, with FD_CLOEXEC.
        let _ = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    err
}

/// Asks for SIGKILL when the parent (the broker's zygote thread) ends. prctl(2)
/// `PR_SET_PDEATHSIG`. Needed again after the zygote changes its euid, which clears it.
pub fn die_with_parent() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number by value.
    cvt_int(unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    })
    .map(drop)
}

/// Raises this process's soft limit on open files to its hard limit: the broker holds two
/// channel fds per child, so the usual soft limit of 1,024 would cap it near 500 children.
/// getrlimit(2), setrlimit(2).
pub fn raise_open_files_limit() -> io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live rlimit for the kernel to fill.
    cvt_int(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    if limit.rlim_cur >= limit.rlim_max {
        return Ok(());
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a live rlimit the kernel only reads.
    cvt_int(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }).map(drop)
}

/// A pidfd for process `pid` (close-on-exec by the kernel). pidfd_open(2)
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags by value and returns a new fd or -1.
    let fd = super::cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// A duplicate, in this process (close-on-exec by the kernel), of fd `target` of the process
/// behind `pidfd`. Needs ptrace access (`PTRACE_MODE_ATTACH_REALCREDS`) to that process: the
/// broker has it over its children as the owner of their user namespace. pidfd_getfd(2)
pub fn pidfd_getfd(
    pidfd: std::os::fd::BorrowedFd<'_>,
    target: RawFd,
) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_getfd takes two fds and flags (0) by value and returns a new fd or -1.
    let fd =
        super::cvt(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) })?;
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}
