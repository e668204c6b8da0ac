use std::io;
use std::os::fd::OwnedFd;

use super::cvt;
use crate::seccomp_program::{SeccompProgram, SockFilter};

/// Installs a seccomp filter on this thread (and so on every thread it creates later) and
/// returns its user-notification listener: the fd on which a supervisor receives every syscall
/// the filter answers with `SECCOMP_RET_USER_NOTIF`. seccomp(2) `SECCOMP_SET_MODE_FILTER` with
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`, and `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` where the
/// kernel has it (Linux 5.19; asked first, left out on `EINVAL`): once the supervisor has read a
/// notification, only a fatal signal ends the wait for its answer, so a signal handler cannot
/// restart a doorbell the broker is still serving (which, for an answer larger than the socket,
/// would leave the broker waiting for a reader that is back in the doorbell). Preconditions:
/// `no_new_privs` is set or the caller has `CAP_SYS_ADMIN`; the process is single-threaded (no
/// TSYNC is asked for).
pub fn install_seccomp_filter(program: &SeccompProgram) -> io::Result<OwnedFd> {
    let killable =
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    match install_with_flags(program, killable) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            install_with_flags(program, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER)
        }
        other => other,
    }
}

fn install_with_flags(program: &SeccompProgram, flags: libc::c_ulong) -> io::Result<OwnedFd> {
    let insns: &[SockFilter] = program.instructions();
    let len = u16::try_from(insns.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog {
        len,
        filter: insns.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `SockFilter` is #[repr(C)] with the same layout as `struct sock_filter`;
    // `fprog` points at `len` live instructions that outlive the call, and the kernel copies
    // the program before returning.
    let listener = cvt(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    })?;
    let listener =
        libc::c_int::try_from(listener).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // With NEW_LISTENER, success returns a new fd that nothing else owns (close-on-exec).
    Ok(super::owned_fd(listener))
}

/// Rings the service doorbell: tells the broker's thread for this child that a request is
/// waiting on the service channel, and returns once the broker has answered what it found
/// there (a network request's answer, or the rest of one too long for the socket, may come
/// later). The syscall never runs: the child's seccomp filter hands it to the broker, which lets
/// it return 0. Restarted when a signal interrupts it. Any other result is left to the read of
/// the answer: a broker that can no longer listen kills the child, and one that is gone has
/// closed the channel.
pub fn ring_doorbell() {
    let _ = ring_doorbell_with(0, 0);
}

/// Rings the service doorbell for a request of `len` bytes in the mailbox, numbered `seq` (see
/// `portcullis_ipc::mailbox`); `len` 0 means the request is on the service channel. Returns
/// what the broker answered: the length of the answer in the mailbox, or 0 when the answer is
/// on the channel. Restarted when a signal interrupts it (the broker answers a repeated `seq`
/// without serving it again).
pub fn ring_doorbell_with(len: u64, seq: u64) -> io::Result<u64> {
    use portcullis_ipc::service::{DOORBELL_SYSCALL, DOORBELL_TAG};
    loop {
        // SAFETY: the doorbell syscall takes no pointers; seccomp stops it before the kernel
        // would look at it, and it is reserved and unimplemented besides.
        let ret =
            unsafe { libc::syscall(DOORBELL_SYSCALL as libc::c_long, DOORBELL_TAG, len, seq) };
        if ret >= 0 {
            return Ok(u64::try_from(ret).unwrap_or(0));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}
