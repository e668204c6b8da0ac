//! The command's only `unsafe` code: the system calls no safe binding covers (Landlock's ABI
//! version, a socket peer's pidfd, `pidfd_open`, `pidfd_send_signal`, `prlimit` of another
//! process), taking ownership of an fd a call returned, and the two steps of std's runtime start
//! the command does itself (its standard fds, SIGPIPE).

use nix::errno::Errno;

/// `LANDLOCK_CREATE_RULESET_VERSION` from `<linux/landlock.h>`: ask for the ABI version instead
/// of creating a ruleset.
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;

/// The highest Landlock ABI version this kernel supports: landlock_create_ruleset(2) with
/// `LANDLOCK_CREATE_RULESET_VERSION`, a NULL attribute and size 0. Creates nothing and changes
/// nothing about the calling process.
///
/// Errors: `ENOSYS` (the kernel has no Landlock, or a seccomp filter hides the call),
/// `EOPNOTSUPP` (built in but not enabled at boot: the `lsm=` list lacks `landlock`).
pub fn landlock_abi_version() -> Result<i64, Errno> {
    // SAFETY: with LANDLOCK_CREATE_RULESET_VERSION the kernel requires a NULL attribute pointer
    // and size 0 and reads no memory; it returns a number and creates no file descriptor, so
    // nothing is left to own or close.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0_usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(rc)
    }
}

/// Takes ownership of `fd`, which a system call (accept4) returned just now.
pub fn owned_fd(fd: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the caller passes an fd a call returned to it just now, open and owned by nothing
    // else; it is owned exactly once from here.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// A pidfd of the peer of the connected Unix socket `socket` (`SO_PEERPIDFD`, Linux 6.5): of the
/// process that connected, taken at `connect`.
///
/// Errors: `ENOPROTOOPT` before Linux 6.5; `ESRCH` when the peer is gone.
pub fn peer_pidfd(socket: std::os::fd::BorrowedFd<'_>) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;
    let mut fd: libc::c_int = -1;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: the kernel writes at most `len` bytes (one int) into `fd`, and `len` back.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERPIDFD,
            std::ptr::addr_of_mut!(fd).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(owned_fd(fd))
}

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: libc::pid_t) -> std::io::Result<std::os::fd::OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is passed.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = std::os::fd::RawFd::try_from(rc)
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?;
    Ok(owned_fd(fd))
}

/// Whether the process `pidfd` names still runs (or is a zombie, which keeps its pid):
/// `pidfd_send_signal` with signal 0 checks without sending anything.
pub fn pidfd_alive(pidfd: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: signal 0 sends nothing; a NULL siginfo and flags 0 are allowed; no memory is
    // written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    rc == 0
}

/// The soft and hard limit of `resource` of process `pid` (0: this process), by prlimit(2),
/// which needs the caller to share the target's uids.
pub fn prlimit_of(pid: libc::pid_t, resource: i32) -> std::io::Result<(u64, u64)> {
    let mut old = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let resource = libc::__rlimit_resource_t::try_from(resource)
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a NULL new limit reads only; the kernel writes one rlimit64 into `old`.
    let rc = unsafe { libc::prlimit64(pid, resource, std::ptr::null(), &mut old) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((old.rlim_cur, old.rlim_max))
}

/// Opens `/dev/null` on each of fds 0, 1 and 2 that is closed, as std's runtime start does
/// (which this command skips: see `main`), so that no file, socket or pipe opened later takes
/// a standard stream's number. One `poll` with no events tells which are closed (`POLLNVAL`);
/// `open` returns the lowest free fd, so opening in order fills exactly those.
pub fn open_standard_fds() -> Result<(), Errno> {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    loop {
        // SAFETY: `fds` is an array of three initialised pollfd structs that outlives the call;
        // a timeout of 0 returns at once.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
        if rc >= 0 {
            break;
        }
        match Errno::last() {
            Errno::EINTR => {}
            // poll itself cannot run (an open-files limit below 3, no memory): ask each fd.
            _ => {
                for pollfd in &mut fds {
                    // SAFETY: F_GETFD reads the fd's flags and changes nothing.
                    let closed = unsafe { libc::fcntl(pollfd.fd, libc::F_GETFD) } == -1
                        && Errno::last() == Errno::EBADF;
                    pollfd.revents = if closed { libc::POLLNVAL } else { 0 };
                }
                break;
            }
        }
    }
    for pollfd in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
        // SAFETY: the path is a NUL-terminated string literal; the fd the call returns is a
        // standard stream's from now on, owned by the process like the others.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if fd != pollfd.fd {
            return Err(if fd < 0 { Errno::last() } else { Errno::EBADF });
        }
    }
    Ok(())
}

/// Ignores SIGPIPE, as std's runtime start does (skipped: see `main`): a write to a pipe or
/// socket whose reader is gone fails with `EPIPE`, which the writer handles, instead of ending
/// the process.
pub fn ignore_sigpipe() {
    // SAFETY: SIG_IGN installs no handler code; this runs first thing in `main`, before any
    // thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
