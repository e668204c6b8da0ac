use std::io;

use super::cvt_int;

/// Asks the kernel to send `signal` to this process when its parent exits. prctl(2)
/// `PR_SET_PDEATHSIG`. Preconditions: the parent is single-threaded (the signal follows the
/// parent *thread*), which holds for the zygote.
pub fn set_parent_death_signal(signal: libc::c_int) -> io::Result<()> {
    let signal =
        libc::c_ulong::try_from(signal).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: PR_SET_PDEATHSIG takes a signal number by value; no memory is passed.
    cvt_int(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal, 0, 0, 0) }).map(drop)
}

/// Makes this process non-dumpable: no core dump, and `/proc/<pid>` files and `ptrace` need
/// privilege over its user namespace. prctl(2) `PR_SET_DUMPABLE`.
pub fn set_dumpable(dumpable: bool) -> io::Result<()> {
    let value = libc::c_ulong::from(dumpable);
    // SAFETY: PR_SET_DUMPABLE takes 0 or 1 by value; no memory is passed.
    cvt_int(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, value, 0, 0, 0) }).map(drop)
}

/// Sets and locks securebits. prctl(2) `PR_SET_SECUREBITS`, capabilities(7).
/// Preconditions: `CAP_SETPCAP` in the effective set.
pub fn set_securebits(bits: libc::c_ulong) -> io::Result<()> {
    // SAFETY: PR_SET_SECUREBITS takes the bit mask by value; no memory is passed.
    cvt_int(unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) }).map(drop)
}

/// Empties the ambient capability set. prctl(2) `PR_CAP_AMBIENT_CLEAR_ALL`.
pub fn clear_ambient_capabilities() -> io::Result<()> {
    // SAFETY: PR_CAP_AMBIENT with CLEAR_ALL takes only integer arguments (zeros here).
    cvt_int(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map(drop)
}

/// Sets `no_new_privs`: execve can never grant privileges again, and an unprivileged process
/// may install seccomp filters. prctl(2) `PR_SET_NO_NEW_PRIVS`.
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes 1 and zeros by value; no memory is passed.
    cvt_int(unsafe {
        libc::prctl(
            libc::PR_SET_NO_NEW_PRIVS,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map(drop)
}
