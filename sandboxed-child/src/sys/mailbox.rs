//! The service mailbox's memory: a sealed memfd (made by the broker) mapped shared by the broker
//! and by its child. The layout and the copies are `portcullis_ipc::mailbox`'s.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use portcullis_ipc::mailbox::{MAILBOX_BYTES, MAILBOX_WORDS};

/// The seals a mailbox carries: its size can never change (so no mapping of it can fault past
/// its end) and no seal can be added or removed (so its child cannot make it read-only for the
/// broker).
const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// A mailbox mapped read-write and shared. Unmapped when dropped.
#[derive(Debug)]
pub struct Mapping {
    words: NonNull<AtomicU64>,
}

// SAFETY: the mapping is only ever reached as `&[AtomicU64]`, which may be shared between
// threads; nothing else refers to it.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// The mailbox as words.
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: `words` points to `MAILBOX_BYTES` of shared memory mapped read-write for as
        // long as `self` lives, page-aligned (so aligned for u64), and a memfd whose size is
        // sealed never truncates under it. Another process may write it at any time; that is
        // why it is seen only as atomics.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr(), MAILBOX_WORDS) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the range `map` mapped; no reference from `words()` outlives
        // `self`.
        unsafe {
            libc::munmap(self.words.as_ptr().cast(), MAILBOX_BYTES);
        }
    }
}

/// `MFD_NOEXEC_SEAL` (Linux 6.3; not in the libc crate): never executable, sealed so.
const MFD_NOEXEC_SEAL: libc::c_uint = 0x0008;

/// Makes a mailbox: a memfd of `MAILBOX_BYTES`, sealed, and this process's mapping of it. The fd
/// is for the child (close-on-exec).
pub fn create() -> io::Result<(Mapping, OwnedFd)> {
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // Not executable where the kernel can say so (and required where `vm.memfd_noexec` = 2);
    // before Linux 6.3 the flag is unknown (EINVAL) and the memfd is made without it.
    let mut fd = memfd(flags | MFD_NOEXEC_SEAL);
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        fd = memfd(flags);
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = libc::off_t::try_from(MAILBOX_BYTES).map_err(|_| io::Error::other("size"))?;
    // SAFETY: `fd` is our open memfd.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is our open memfd; F_ADD_SEALS takes an int.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mapping = map(fd.as_fd())?;
    Ok((mapping, fd))
}

fn memfd(flags: libc::c_uint) -> libc::c_int {
    // SAFETY: the name is a NUL-terminated literal; the flags ask for close-on-exec, sealing and
    // at most no-exec.
    unsafe { libc::memfd_create(c"portcullis-mailbox".as_ptr(), flags) }
}

/// Maps the mailbox the broker installed in this process, after checking it is one: exactly
/// `MAILBOX_BYTES`, with its size and its seals sealed.
pub fn open(fd: BorrowedFd<'_>) -> io::Result<Mapping> {
    // SAFETY: `fd` is a borrowed open fd; F_GET_SEALS takes no argument.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if seals < 0 {
        return Err(io::Error::last_os_error());
    }
    if seals & SEALS != SEALS {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    // SAFETY: an all-zero `stat` is a valid out-buffer for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` is a live, writable `stat`.
    if unsafe { libc::fstat(fd.as_raw_fd(), &raw mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if usize::try_from(st.st_size).ok() != Some(MAILBOX_BYTES) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    map(fd)
}

fn map(fd: BorrowedFd<'_>) -> io::Result<Mapping> {
    // SAFETY: a new shared read-write mapping of `MAILBOX_BYTES` of `fd` at an address the
    // kernel picks; it aliases no Rust object.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            MAILBOX_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let words = NonNull::new(ptr.cast::<AtomicU64>()).ok_or_else(|| io::Error::other("mmap"))?;
    Ok(Mapping { words })
}
