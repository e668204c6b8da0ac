//! The command's only `unsafe` code: a system call that no safe binding covers, and taking
//! ownership of an fd a call returned.

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
