//! seccomp user notifications, read by the broker's thread for a child from the child's listener
//! fd. seccomp_unotify(2).

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

/// Receives one pending notification. `SECCOMP_IOCTL_NOTIF_RECV`. Blocks until one is pending
/// (call it after [`wait`]). `ENOENT`: the caller died or was interrupted before it could be
/// read, or (Linux 6.11 on) no task uses the filter any more.
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
    send(listener, id, 0, -errno)
}

/// Answers notification `id`: the syscall returns `val` in the child without running.
/// `SECCOMP_IOCTL_NOTIF_SEND`. `ENOENT`: the caller is gone (nothing to answer).
pub fn answer_value(listener: BorrowedFd<'_>, id: u64, val: i64) -> io::Result<()> {
    send(listener, id, val, 0)
}

/// Answers notification `id` by installing a copy of `fd` in the child's fd table
/// (close-on-exec): the syscall returns the copy's number, atomically with the install.
/// `SECCOMP_IOCTL_NOTIF_ADDFD` with `SECCOMP_ADDFD_FLAG_SEND` (Linux 5.14; `EINVAL` before).
/// `ENOENT`: the caller is gone or was interrupted (nothing was installed).
pub fn answer_with_fd(listener: BorrowedFd<'_>, id: u64, fd: BorrowedFd<'_>) -> io::Result<i32> {
    let srcfd =
        u32::try_from(fd.as_raw_fd()).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    let mut addfd = libc::seccomp_notif_addfd {
        id,
        flags: u32::try_from(libc::SECCOMP_ADDFD_FLAG_SEND).unwrap_or(0),
        srcfd,
        newfd: 0,
        newfd_flags: u32::try_from(libc::O_CLOEXEC).unwrap_or(0),
    };
    // SAFETY: the ioctl reads one `seccomp_notif_addfd` from `addfd`, which lives across the
    // call; the request number encodes that struct's size.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ADDFD as _,
            &mut addfd as *mut libc::seccomp_notif_addfd,
        )
    };
    cvt_int(ret)
}

fn send(listener: BorrowedFd<'_>, id: u64, val: i64, error: i32) -> io::Result<()> {
    // No `SECCOMP_USER_NOTIF_FLAG_CONTINUE`, ever: the syscall never runs.
    let mut resp = libc::seccomp_notif_resp {
        id,
        val,
        error,
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

/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS`: `_IOW('!', 4, __u64)` (Linux 6.6; not in the libc crate).
const SECCOMP_IOCTL_NOTIF_SET_FLAGS: libc::c_ulong = 0x4008_2104;
/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`.
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: libc::c_ulong = 1;

/// Asks the kernel to wake the reader of `listener` on the notifying task's CPU, and the task on
/// the answering thread's, for a supervisor that answers at once
/// (`SECCOMP_IOCTL_NOTIF_SET_FLAGS` with `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`). `EINVAL`: the
/// kernel is older than 6.6.
pub fn set_sync_wakeup(listener: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: this ioctl takes its flags by value and touches no memory of ours.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            SECCOMP_IOCTL_NOTIF_SET_FLAGS as _,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        )
    };
    cvt_int(ret).map(drop)
}

/// What [`wait`] found on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// A notification is pending.
    Notification,
    /// No task uses the filter any more (`POLLHUP`): no notification can come again.
    HungUp,
    /// `POLLERR` without a hang-up: the kernel could not tell (its lock wait was interrupted).
    Error,
}

/// True when the filter behind `listener` has no task left: poll(2) without waiting.
pub fn hung_up(listener: BorrowedFd<'_>) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(listener, PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => Ok(fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP))),
        Err(nix::Error::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Blocks until `listener` has a notification pending or hangs up. poll(2): unlike a blocked
/// `SECCOMP_IOCTL_NOTIF_RECV` before Linux 6.11, it wakes when the filter's last task exits, and
/// unlike epoll its wake-up keeps `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`'s same-CPU hint. Retries
/// on `EINTR`.
pub fn wait(listener: BorrowedFd<'_>) -> io::Result<Ready> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        let mut fds = [PollFd::new(listener, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {
                let revents = fds[0].revents().unwrap_or(PollFlags::empty());
                return Ok(if revents.contains(PollFlags::POLLHUP) {
                    Ready::HungUp
                } else if revents.contains(PollFlags::POLLIN) {
                    Ready::Notification
                } else {
                    Ready::Error
                });
            }
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
