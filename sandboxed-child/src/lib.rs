//! `portcullis-child`: the untrusted side of Portcullis.
//!
//! Owns: the per-child lockdown executor ([`lockdown::lock_down`]), the registry of entry
//! functions a zygote can start ([`Entries`]), the typed client a child uses to talk to the
//! broker ([`ChildContext`]), the shared memory of its service mailbox ([`mailbox`]: made and
//! sealed by the broker with this code, mapped by both; no trust decision rests on its bytes),
//! and, for an exec-mode program, the executor of its read-only minimal root and Landlock
//! ruleset ([`program_root`]; the plan comes from the broker as data).
//!
//! Must never: decide what a child may do (it links no policy, and mounts exactly the binds it
//! is handed), build a seccomp filter (it only
//! installs the pre-compiled bytes it is handed), or run a single instruction of user code before
//! every lockdown step has succeeded. If a step fails, the child reports the step and errno on its
//! channel and exits; the entry function is never called.
//!
//! Lockdown work runs in a process freshly forked from the single-threaded zygote, never on a
//! thread of a multithreaded process: that is what makes allocation after `fork` safe here.

pub mod context;
pub mod entry;
pub mod files;
pub mod lockdown;
pub mod mailbox;
pub mod program_root;
pub mod protocol;
pub mod seccomp_program;
mod sys;

pub use context::{ChildChannelError, ChildContext};
pub use entry::{Entries, EntryFn, EXIT_BAD_ARGS, EXIT_UNKNOWN_ENTRY};
pub use files::OpenOptions;
pub use lockdown::{
    lock_inherited_privileges, LockdownError, LockdownPlan, LockdownStep, Rlimit, RlimitResource,
};
pub use program_root::{Bind, LandlockRequirement, LandlockStatus, ProgramRoot};
pub use seccomp_program::{SeccompProgram, SeccompProgramError, SockFilter};

/// Exit status a child uses when a lockdown step failed (the step and errno went to the broker).
pub const EXIT_LOCKDOWN_FAILED: i32 = 126;
/// The fd number of the channel inside a locked-down child.
pub const CHANNEL_FD: i32 = 3;
/// The fd number of the service channel (files and network through the broker).
pub const SERVICE_FD: i32 = 4;
