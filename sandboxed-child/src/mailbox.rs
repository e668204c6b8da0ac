//! The service mailbox, mapped: see `portcullis_ipc::mailbox` for what travels through it. A
//! child that runs a registered entry asks for it on its first service call; its broker thread
//! makes one and installs an fd of it in the child; the child maps it and closes the fd.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::AtomicU64;

use crate::sys;

/// A mapped mailbox, shared by a child and its broker thread.
#[derive(Debug)]
pub struct Mailbox(sys::mailbox::Mapping);

impl Mailbox {
    /// Makes a sealed mailbox and maps it here; the fd is the child's copy to send it.
    pub fn create() -> io::Result<(Mailbox, OwnedFd)> {
        let (mapping, fd) = sys::mailbox::create()?;
        Ok((Mailbox(mapping), fd))
    }

    /// Maps the mailbox the broker installed in this process, if it is one (its size and its
    /// seals); the fd is closed either way.
    pub fn open(fd: OwnedFd) -> io::Result<Mailbox> {
        sys::mailbox::open(fd.as_fd()).map(Mailbox)
    }

    /// The mailbox as words, for `portcullis_ipc::mailbox`.
    pub fn words(&self) -> &[AtomicU64] {
        self.0.words()
    }
}
