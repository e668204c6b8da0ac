//! The only place in this crate with `unsafe`: one safe wrapper per kernel operation the
//! child performs on itself. Callers add the lockdown step as context.

use std::io;

mod caps;
mod fds;
pub mod mailbox;
mod mounts;
mod prctl;
mod process;
mod seccomp;

pub use caps::{clear_all_capability_sets, drop_bounding_capability};
pub use fds::{
    close_fd_range, close_fds_from, dup_fd_above, dup_fd_above_cloexec, dup_fd_onto, hung_up,
    owned_fd,
};
pub use mounts::{
    attach_mount, clone_tree, fchdir, landlock_abi, make_dir, make_file, new_tmpfs,
    open_path_beneath, pivot_here_and_detach_old, restrict_mount, unshare_mount_namespace,
    MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};
pub use prctl::{
    clear_ambient_capabilities, set_dumpable, set_no_new_privs, set_parent_death_signal,
    set_securebits,
};
pub use process::{
    clear_cloexec, crash_now, exec_fd, exit_now, is_socket, new_session, set_cloexec, set_ids,
    set_rlimit, unblock_all_signals,
};
pub use seccomp::{install_seccomp_filter, ring_doorbell, ring_doorbell_with};

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
