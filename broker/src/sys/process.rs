use std::io;
use std::os::fd::RawFd;

use super::cvt_int;

/// The zygote's side of its start, run between fork and exec in the broker's child:
/// 1. put the control socket at `target` without close-on-exec;
/// 2. ask for SIGKILL when the broker thread that started it ends;
/// 3. if the broker already died (the parent is no longer `broker_pid`), exit at once;
/// 4. as root (`drop_groups`), leave every supplementary group while still privileged
///    (`LockdownStep::DropSupplementaryGroups`);
/// 5. `unshare(namespaces)` (`LockdownStep::EnterNamespaces`);
/// 6. write its pid on `maps.report` and wait for one byte on `maps.go`: the broker writes the
///    id maps in between and answers 1 (`LockdownStep::IdMaps` otherwise);
/// 7. become root of the new user namespace (`LockdownStep::SetIds`),
///
/// so that the exec which follows runs as that namespace's root: it keeps its capabilities
/// there (an exec by any other id would drop them), and the namespace owns the zygote's memory
/// map, and so every child's.
///
/// A failure of steps 4–7 comes back from `Command::spawn` as an OS error whose code carries
/// the step as well as the errno: [`decode_pre_exec_error`] reads it.
///
/// Async-signal-safe: only dup2/fcntl/prctl/getppid/setgroups/unshare/getpid/write/read/
/// setresgid/setresuid/_exit, no allocation, no locks. Preconditions: called in a freshly forked
/// (so single-threaded) child; both pipe ends are close-on-exec.
pub fn zygote_pre_exec(
    (control, target): (RawFd, RawFd),
    broker_pid: libc::pid_t,
    drop_groups: bool,
    namespaces: libc::c_int,
    maps: IdMapHandshake,
) -> io::Result<()> {
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
    let failed = |step: PreExecStep, errno: i32| {
        io::Error::from_raw_os_error(((step as i32) << PRE_EXEC_STEP_SHIFT) | errno)
    };
    let last_errno = || {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    // SAFETY: a zero-length list with a null pointer is the documented way to clear the list.
    if drop_groups && unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(failed(PreExecStep::DropSupplementaryGroups, last_errno()));
    }
    // SAFETY: unshare takes a flag word by value; this process is single-threaded (a fresh
    // fork), as CLONE_NEWUSER requires.
    if unsafe { libc::unshare(namespaces) } != 0 {
        return Err(failed(PreExecStep::EnterNamespaces, last_errno()));
    }
    // SAFETY: getpid takes no arguments; write reads 4 bytes from a live local.
    let pid = unsafe { libc::getpid() }.to_ne_bytes();
    // SAFETY: as above.
    if unsafe { libc::write(maps.report, pid.as_ptr().cast(), pid.len()) } != 4 {
        return Err(failed(PreExecStep::IdMaps, libc::EPIPE));
    }
    let mut go = [0u8; 1];
    // SAFETY: read writes at most 1 byte into a live local; it blocks until the broker answers
    // (or dies: then this process gets SIGKILL from step 2, or EOF).
    if unsafe { libc::read(maps.go, go.as_mut_ptr().cast(), 1) } != 1 || go[0] != 1 {
        return Err(failed(PreExecStep::IdMaps, libc::EPERM));
    }
    // SAFETY: setresgid/setresuid take ids by value; no memory is passed.
    if unsafe { libc::setresgid(0, 0, 0) } != 0 || unsafe { libc::setresuid(0, 0, 0) } != 0 {
        return Err(failed(PreExecStep::SetIds, last_errno()));
    }
    Ok(())
}

/// The two pipe ends [`zygote_pre_exec`] uses to have its id maps written: it writes its pid
/// (4 bytes, native order) on `report` and waits for the byte 1 on `go`.
#[derive(Debug, Clone, Copy)]
pub struct IdMapHandshake {
    /// Write end: the new process's pid.
    pub report: RawFd,
    /// Read end: 1 once the maps are written.
    pub go: RawFd,
}

/// Where [`zygote_pre_exec`] puts its step in an error code: above every errno (< 4096).
const PRE_EXEC_STEP_SHIFT: i32 = 16;

/// The steps of [`zygote_pre_exec`] that report themselves (an earlier failure is a plain errno).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum PreExecStep {
    /// setgroups(2) with an empty list.
    DropSupplementaryGroups = 1,
    /// unshare(2) of the zygote's namespaces.
    EnterNamespaces = 2,
    /// The broker did not write the id maps.
    IdMaps = 3,
    /// setresgid(2)/setresuid(2) to the namespace's root.
    SetIds = 4,
}

/// The step and errno of a [`zygote_pre_exec`] failure, from the error `Command::spawn` returned;
/// `None` for any other error (a failed fork or exec, or an earlier step of the hook).
pub fn decode_pre_exec_error(err: &io::Error) -> Option<(PreExecStep, i32)> {
    let code = err.raw_os_error()?;
    let errno = code & ((1 << PRE_EXEC_STEP_SHIFT) - 1);
    let step = match code >> PRE_EXEC_STEP_SHIFT {
        1 => PreExecStep::DropSupplementaryGroups,
        2 => PreExecStep::EnterNamespaces,
        3 => PreExecStep::IdMaps,
        4 => PreExecStep::SetIds,
        _ => return None,
    };
    Some((step, errno))
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

/// A sealed in-memory copy of this process's own executable (`/proc/self/exe`), executable by
/// anyone: for a root broker whose binary the sandbox's host id may not execute (mode 0700,
/// say). The zygote is executed as that id, from `/proc/self/fd/<this fd>`. memfd_create(2)
/// with `MFD_CLOEXEC | MFD_ALLOW_SEALING` (its mode is 0777), then every write seal.
pub fn sealed_copy_of_own_executable() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: the name is a NUL-terminated literal; the returned fd is new and ours alone.
    let fd = cvt_int(unsafe {
        libc::memfd_create(
            c"portcullis-zygote".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    })?;
    // SAFETY: `fd` was just returned by memfd_create and is owned by nothing else.
    let copy = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut source = std::fs::File::open("/proc/self/exe")?;
    std::io::copy(&mut source, &mut &copy)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS takes a seal mask by value on an fd we own.
    cvt_int(unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(copy.into())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pre_exec_step_and_its_errno_survive_the_error_code() {
        let code = ((PreExecStep::EnterNamespaces as i32) << PRE_EXEC_STEP_SHIFT) | libc::ENOSPC;
        let err = io::Error::from_raw_os_error(code);
        assert_eq!(
            decode_pre_exec_error(&err),
            Some((PreExecStep::EnterNamespaces, libc::ENOSPC))
        );
        let code =
            ((PreExecStep::DropSupplementaryGroups as i32) << PRE_EXEC_STEP_SHIFT) | libc::EPERM;
        assert_eq!(
            decode_pre_exec_error(&io::Error::from_raw_os_error(code)),
            Some((PreExecStep::DropSupplementaryGroups, libc::EPERM))
        );
        // A plain errno (a failed fork or exec) and a non-OS error are not steps.
        assert_eq!(
            decode_pre_exec_error(&io::Error::from_raw_os_error(libc::ENOENT)),
            None
        );
        assert_eq!(decode_pre_exec_error(&io::Error::other("x")), None);
    }
}
