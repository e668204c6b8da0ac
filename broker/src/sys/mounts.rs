use std::ffi::CStr;
use std::io;

use super::{cvt, cvt_int};

/// Marks every mount of this mount namespace private, recursively, so nothing done here
/// propagates to the host. mount(2) `MS_REC | MS_PRIVATE` on `/`.
pub fn make_mounts_private() -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated literals; the null fs type and data are allowed
    // for a propagation change.
    cvt_int(unsafe {
        libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
    .map(drop)
}

/// Mounts an empty read-only tmpfs at `target` (no suid, no devices, no exec; one page, two
/// inodes). mount(2).
pub fn mount_empty_readonly_tmpfs(target: &CStr) -> io::Result<()> {
    // SAFETY: every pointer is a NUL-terminated string that outlives the call; the kernel copies
    // them.
    cvt_int(unsafe {
        libc::mount(
            c"portcullis-root".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"size=4k,nr_inodes=2,mode=0555".as_ptr().cast(),
        )
    })
    .map(drop)
}

/// Changes the working directory. chdir(2).
pub fn chdir(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    cvt_int(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// Makes the working directory the root of this mount namespace and lazily detaches the old
/// root, which `pivot_root(".", ".")` stacks on top of the new one. pivot_root(2), umount2(2).
/// Preconditions: mounts are private; the working directory is a mount point.
pub fn pivot_root_here_and_detach_old() -> io::Result<()> {
    // SAFETY: both arguments point at the NUL-terminated literal "."; the kernel reads the path
    // and keeps no pointer to it.
    cvt(unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) })?;
    // SAFETY: "." is a NUL-terminated literal. After pivot_root(".", ".") the old root is
    // mounted on top of "." and MNT_DETACH removes it with everything below it.
    cvt_int(unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) })?;
    chdir(c"/")
}

/// A detached, close-on-exec copy of this mount namespace's whole tree from `/` (an anonymous
/// mount namespace the returned fd keeps alive). open_tree(2) with `OPEN_TREE_CLONE |
/// AT_RECURSIVE`. Needs `CAP_SYS_ADMIN` over this mount namespace's user namespace.
pub fn clone_whole_tree() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let flags = OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: "/" is a NUL-terminated literal; the kernel returns a new fd or -1.
    let fd =
        cvt(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c"/".as_ptr(), flags) })?;
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}
