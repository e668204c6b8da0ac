//! Mount wrappers for an exec-mode child's program root: the new mount API (open_tree,
//! fsopen/fsconfig/fsmount, move_mount, mount_setattr), unshare, pivot_root and the few file
//! operations that create mount points. Each takes typed arguments and returns `io::Result`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{cvt, cvt_int};

// From <linux/mount.h> (uapi; stable since Linux 5.2, mount_setattr since 5.12).
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x0000_0004;
const FSOPEN_CLOEXEC: libc::c_uint = 0x0000_0001;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x0000_0001;

/// `MOUNT_ATTR_RDONLY`.
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
/// `MOUNT_ATTR_NOSUID`.
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
/// `MOUNT_ATTR_NODEV`.
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
/// `MOUNT_ATTR_NOEXEC`.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn owned(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = cvt(ret)?;
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned `fd` as a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS` of openat2(2).
const RESOLVE_BENEATH_WITHOUT_LINKS: u64 = 0x08 | 0x04 | 0x02;

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// An `O_PATH` fd of `path` (relative) beneath `dir`, resolved without following any symlink
/// (`ELOOP`), `/proc` magic link or `..` out of `dir` (`EXDEV`). openat2(2).
pub fn open_path_beneath(dir: BorrowedFd<'_>, path: &CStr) -> io::Result<OwnedFd> {
    let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let how = OpenHow {
        flags: u64::try_from(flags).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
        mode: 0,
        resolve: RESOLVE_BENEATH_WITHOUT_LINKS,
    };
    // SAFETY: `path` is NUL-terminated and `how` is a live `struct open_how` whose size is
    // passed with it; the kernel copies both and keeps no pointer.
    owned(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    })
}

/// A detached, close-on-exec copy of the mount (tree, when `recursive`) at `at`, an `O_PATH` fd
/// which may lie in an anonymous mount tree made by this mount namespace. open_tree(2) with
/// `OPEN_TREE_CLONE | AT_EMPTY_PATH`.
pub fn clone_tree(at: BorrowedFd<'_>, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    flags |= libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: the path is an empty NUL-terminated literal; `at` is a live fd.
    owned(unsafe { libc::syscall(libc::SYS_open_tree, at.as_raw_fd(), c"".as_ptr(), flags) })
}

/// Moves this process into a new mount namespace (a copy of its current one). unshare(2)
/// `CLONE_NEWNS`. Needs `CAP_SYS_ADMIN` over the owning user namespace.
pub fn unshare_mount_namespace() -> io::Result<()> {
    // SAFETY: unshare takes a flag word only.
    cvt_int(unsafe { libc::unshare(libc::CLONE_NEWNS) }).map(drop)
}

/// A new, detached tmpfs mount with these `options` (`key`, `value`) and mount attributes.
/// fsopen(2), fsconfig(2), fsmount(2).
pub fn new_tmpfs(options: &[(&CStr, &CStr)], attributes: u64) -> io::Result<OwnedFd> {
    // SAFETY: the name is a NUL-terminated literal.
    let context =
        owned(unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) })?;
    for (key, value) in options {
        // SAFETY: `key` and `value` are NUL-terminated and outlive the call; the aux is unused.
        cvt(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                context.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        })?;
    }
    // SAFETY: the create command takes no key, value or aux.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    // SAFETY: `context` is a live filesystem context fd; attributes are plain flags.
    owned(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            context.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attributes,
        )
    })
}

/// Attaches the detached mount `mount` at `target` (relative to the working directory when not
/// absolute). move_mount(2) with `MOVE_MOUNT_F_EMPTY_PATH`.
pub fn attach_mount(mount: BorrowedFd<'_>, target: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated and outlive the call; `mount` is a live fd.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// Sets `attributes` on the mount `mount` refers to (and every mount below it when
/// `recursive`). mount_setattr(2) with `AT_EMPTY_PATH`. Only adds restrictions here: a mount
/// locked by a less privileged user namespace can be made more restrictive, never less.
pub fn restrict_mount(mount: BorrowedFd<'_>, attributes: u64, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: attributes,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: the path is an empty NUL-terminated literal; `attr` is a live mount_attr whose size
    // is passed with it; the kernel only reads it.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// Makes the working directory (a mount point) the root of this mount namespace and lazily
/// detaches the old root. pivot_root(2) `(".", ".")`, umount2(2) `MNT_DETACH`, chdir(2) `/`.
pub fn pivot_here_and_detach_old() -> io::Result<()> {
    // SAFETY: both arguments are the NUL-terminated literal "."; the kernel keeps no pointer.
    cvt(unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) })?;
    // SAFETY: "." is a NUL-terminated literal; after pivot_root(".", ".") the old root is stacked
    // on "." and MNT_DETACH takes it away with everything below it.
    cvt_int(unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) })?;
    // SAFETY: "/" is a NUL-terminated literal.
    cvt_int(unsafe { libc::chdir(c"/".as_ptr()) }).map(drop)
}

/// Changes the working directory to the directory `dir`. fchdir(2).
pub fn fchdir(dir: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `dir` is a live fd.
    cvt_int(unsafe { libc::fchdir(dir.as_raw_fd()) }).map(drop)
}

/// Creates the directory `path` (mode 0755); an existing directory is fine. mkdir(2).
pub fn make_dir(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    match cvt_int(unsafe { libc::mkdir(path.as_ptr(), 0o755) }) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
            // SAFETY: `path` is NUL-terminated; `st` is written by the kernel before it is read.
            cvt_int(unsafe { libc::lstat(path.as_ptr(), st.as_mut_ptr()) })?;
            // SAFETY: lstat succeeded, so `st` is initialised.
            let mode = unsafe { st.assume_init() }.st_mode;
            if mode & libc::S_IFMT == libc::S_IFDIR {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(libc::ENOTDIR))
            }
        }
        Err(e) => Err(e),
    }
}

/// Creates the empty regular file `path` (mode 0444) as a mount point; it must not exist.
/// mknod(2) `S_IFREG`.
pub fn make_file(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    cvt_int(unsafe { libc::mknod(path.as_ptr(), libc::S_IFREG | 0o444, 0) }).map(drop)
}

/// The Landlock ABI version this kernel offers, 0 when it has none (or it is disabled).
/// landlock_create_ruleset(2) with `LANDLOCK_CREATE_RULESET_VERSION`.
pub fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with the VERSION flag the attribute pointer must be NULL and its size 0; the
    // kernel reads nothing.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    i32::try_from(ret).unwrap_or(0).max(0)
}
