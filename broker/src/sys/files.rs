use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{cvt, cvt_int};

/// `RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`: the path
/// must stay beneath the directory fd, on its mount, without following any symlink or
/// `/proc` magic link. openat2(2).
pub const RESOLVE_STRICTLY_BENEATH: u64 = 0x01 | 0x02 | 0x04 | 0x08;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn cpath(path: &str) -> io::Result<CString> {
    CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Opens `path` relative to and strictly beneath `dir` (see [`RESOLVE_STRICTLY_BENEATH`]).
/// `flags` are open(2) flags (`O_CLOEXEC` is always added); `mode` applies with `O_CREAT`.
/// openat2(2). Escapes fail with `EXDEV` (outside, other mount) or `ELOOP` (a symlink).
pub fn open_beneath(
    dir: BorrowedFd<'_>,
    path: &str,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let path = cpath(if path.is_empty() { "." } else { path })?;
    let flags = u64::try_from(flags | libc::O_CLOEXEC)
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let how = OpenHow {
        flags,
        mode: u64::from(mode),
        resolve: RESOLVE_STRICTLY_BENEATH,
    };
    // SAFETY: `path` is NUL-terminated and `how` is a live, correctly laid out `struct open_how`
    // whose size we pass; the kernel copies both and keeps no pointer.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    })?;
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: openat2 returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates directory `name` (one component) in `dir`. mkdirat(2).
pub fn mkdir_in(dir: BorrowedFd<'_>, name: &str, mode: libc::mode_t) -> io::Result<()> {
    let name = cpath(name)?;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    cvt_int(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

/// Unlinks file `name` (one component) in `dir`; a symlink is removed, never followed.
/// unlinkat(2).
pub fn unlink_in(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let name = cpath(name)?;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    cvt_int(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

/// Renames `from_dir/from` to `to_dir/to` (single components); with `replace` false the
/// rename fails with `EEXIST` instead of replacing an existing destination. renameat2(2)
/// (`RENAME_NOREPLACE`).
pub fn rename_in(
    from_dir: BorrowedFd<'_>,
    from: &str,
    to_dir: BorrowedFd<'_>,
    to: &str,
    replace: bool,
) -> io::Result<()> {
    let (from, to) = (cpath(from)?, cpath(to)?);
    let flags = if replace { 0 } else { libc::RENAME_NOREPLACE };
    // SAFETY: both names are NUL-terminated and outlive the call.
    cvt_int(unsafe {
        libc::renameat2(
            from_dir.as_raw_fd(),
            from.as_ptr(),
            to_dir.as_raw_fd(),
            to.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// Truncates the file behind `fd` to zero length. ftruncate(2).
pub fn truncate(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: ftruncate takes an fd and a length by value.
    cvt_int(unsafe { libc::ftruncate(fd.as_raw_fd(), 0) }).map(drop)
}
