//! The handshake and envelope types on a child's channel.
//!
//! Every value of [`ChildToBroker`] is decoded by the broker from hostile bytes: the broker
//! treats `Panicked` as the child's own (untrusted) word and bounds it before keeping it.

use serde::{Deserialize, Serialize};

use crate::lockdown::LockdownStep;

/// Longest panic message a child sends; the broker cuts anything longer again.
pub const MAX_PANIC_MESSAGE_BYTES: usize = 1024;

/// A message from a child to the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildToBroker<U> {
    /// Every lockdown step succeeded; the entry function starts next. Always the first message.
    /// Carries no fd: `listener` is the number of the fd at which the child holds its seccomp
    /// filter's user-notification listener. The broker takes its own copy with
    /// `pidfd_getfd(2)` before it sends [`StartChild`], and the child closes its copy when
    /// `StartChild` arrives. Why not `SCM_RIGHTS`: the kernel limits the fds a *user* has in
    /// flight in unix sockets, every child shares one host uid, and a child keeping fds queued on
    /// a channel nobody reads would otherwise make every other child's lockdown report fail
    /// (`ETOOMANYREFS`).
    LockedDown {
        /// The listener's fd number in the child.
        listener: i32,
        /// Exec mode with a program root: how Landlock was applied (`None` without a root).
        landlock: Option<crate::program_root::LandlockStatus>,
    },
    /// A lockdown step failed; the child exits without running user code.
    LockdownFailed {
        /// The step that failed.
        step: LockdownStep,
        /// The OS error number it failed with.
        errno: i32,
    },
    /// The child panicked and is about to crash (sent before the crash, best effort).
    Panicked {
        /// The panic message, at most [`MAX_PANIC_MESSAGE_BYTES`].
        message: String,
    },
    /// An application message.
    App(U),
}

/// The broker's first message to every child: which entry to run, with what arguments. A child
/// receives it only after it reported `LockedDown`, so choosing and decoding what to run never
/// happens in an unlocked process; a pre-forked child waits here until the broker needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartChild {
    /// The registered entry's name.
    pub entry: String,
    /// Its arguments, postcard-encoded by the broker.
    pub args: Vec<u8>,
}

/// A message from the broker to a child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BrokerToChild<D> {
    /// An application message.
    App(D),
}

/// The entry name that makes a child execute a program instead of running a registered entry
/// (exec mode). Only a child locked down with the exec-mode filter can: in any other child the
/// `execveat` is a violation.
pub const EXEC_ENTRY: &str = "portcullis::exec";

/// The arguments of [`EXEC_ENTRY`]. Its start message carries four fds and then `extra_fds`
/// more: the program (opened by the broker), what becomes the program's stdin, stdout and
/// stderr, then what becomes its fds 3, 4, ... in order (connections the broker made for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecArgs {
    /// `argv`, each without NUL bytes.
    pub argv: Vec<Vec<u8>>,
    /// The whole environment, `NAME=value` each, without NUL bytes.
    pub env: Vec<Vec<u8>>,
    /// Keep the child's two channels open across the exec, at fds [`crate::CHANNEL_FD`] and
    /// [`crate::SERVICE_FD`], for a program that speaks the Portcullis protocol (a plugin:
    /// [`crate::ChildContext::inherited`]). Otherwise they close at the exec.
    pub keep_channels: bool,
    /// How many fds after stdio the start message carries, to become the program's fds from 3
    /// up (never with `keep_channels`, whose channels are fds 3 and 4).
    pub extra_fds: u32,
}
