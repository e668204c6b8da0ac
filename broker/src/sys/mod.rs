//! The only place in this crate with `unsafe`: one safe wrapper per kernel operation the broker
//! and zygote perform. Callers add the step as context.

use std::io;

pub mod files;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod seccomp_notify;

/// Maps a libc-style `-1` return to the thread's errno.
fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Same as [`cvt`] for calls returning `c_int`.
fn cvt_int(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
