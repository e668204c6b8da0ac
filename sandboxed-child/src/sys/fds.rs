use std::io;
use std::os::fd::RawFd;

use super::{cvt, cvt_int};

/// Closes every fd numbered `first` or above. close_range(2).
pub fn close_fds_from(first: RawFd) -> io::Result<()> {
    let first =
        libc::c_uint::try_from(first).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: close_range only closes descriptors of this process; nothing in this process holds
    // an owned handle to them any more (the child forgets every fd it inherited before this).
    cvt(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        )
    })
    .map(drop)
}

/// Closes the fds numbered `first..=last`. close_range(2). Used for fds this process inherited
/// but holds no owned handle to.
pub fn close_fd_range(first: RawFd, last: RawFd) -> io::Result<()> {
    let first =
        libc::c_uint::try_from(first).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let last =
        libc::c_uint::try_from(last).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: close_range only closes descriptors of this process; the caller guarantees no
    // owned handle in this process refers to them.
    cvt(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0 as libc::c_uint) }).map(drop)
}

/// Makes `target` a copy of `fd` (closing what `target` was). dup2(2). The copy is not
/// close-on-exec.
pub fn dup_fd_onto(fd: RawFd, target: RawFd) -> io::Result<()> {
    if fd == target {
        return Ok(());
    }
    // SAFETY: dup2 only changes this process's fd table; `target` is one of the fixed slots
    // (0..=3) this child reserves for stdio and its channel.
    cvt_int(unsafe { libc::dup2(fd, target) }).map(drop)
}

/// Duplicates `fd` to the lowest free number ≥ `min`. fcntl(2) `F_DUPFD`.
pub fn dup_fd_above(fd: RawFd, min: RawFd) -> io::Result<RawFd> {
    // SAFETY: F_DUPFD takes an fd and an integer lower bound; no memory is passed.
    cvt_int(unsafe { libc::fcntl(fd, libc::F_DUPFD, min) })
}

/// Like [`dup_fd_above`], with close-on-exec on the copy. fcntl(2) `F_DUPFD_CLOEXEC` (which
/// the child's seccomp filter allows; plain `F_DUPFD` it does not).
pub fn dup_fd_above_cloexec(fd: RawFd, min: RawFd) -> io::Result<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an fd and an integer lower bound; no memory is passed.
    cvt_int(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })
}

/// True when every write end of the pipe or socket `fd` is closed. poll(2) with no timeout.
pub fn hung_up(fd: RawFd) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one live pollfd and the count passed is 1; timeout 0 never blocks.
    cvt_int(unsafe { libc::poll(&mut pfd, 1, 0) })?;
    Ok(pfd.revents & libc::POLLHUP != 0)
}

/// Takes ownership of an fd this process holds but no handle owns yet.
/// Preconditions: `fd` is open and nothing else in this process will close it.
pub fn owned_fd(fd: RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the caller guarantees `fd` is open and unowned, so the OwnedFd is its only owner.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}
