use std::io;

use super::cvt;
use crate::seccomp_program::{SeccompProgram, SockFilter};

/// Installs a seccomp filter on this thread (and so on every thread it creates later).
/// seccomp(2) `SECCOMP_SET_MODE_FILTER`. Preconditions: `no_new_privs` is set or the caller
/// has `CAP_SYS_ADMIN`; the process is single-threaded (no TSYNC is asked for).
pub fn install_seccomp_filter(program: &SeccompProgram) -> io::Result<()> {
    let insns: &[SockFilter] = program.instructions();
    let len = u16::try_from(insns.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog {
        len,
        filter: insns.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `SockFilter` is #[repr(C)] with the same layout as `struct sock_filter`;
    // `fprog` points at `len` live instructions that outlive the call, and the kernel copies
    // the program before returning.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            &fprog as *const libc::sock_fprog,
        )
    })
    .map(drop)
}
