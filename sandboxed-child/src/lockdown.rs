//! The per-child lockdown recipe, run by a child on itself right after the zygote forked it.
//!
//! By the time this runs, the zygote has already put the child in its own namespaces (user,
//! mount with an empty read-only root, net, ipc, uts, cgroup shared with the zygote; a PID
//! namespace of its own, where it is PID 1). What is left is per process and runs here, in this
//! order, each step failing closed:
//!
//! 0. [`LockdownStep::ChildIds`]: the child's own uid and gid of the namespace, when the broker
//!    mapped more than one (a root broker: one host id per child);
//! 1. [`LockdownStep::ParentDeathSignal`]: die with the zygote (which dies with the broker);
//! 2. [`LockdownStep::LifelineCheck`]: the zygote may have died before step 1; check its pipe;
//! 3. [`LockdownStep::NewSession`]: leave the broker's session and controlling terminal;
//! 4. [`LockdownStep::SignalMask`]: undo the zygote's blocked SIGCHLD;
//!    - exec mode with a program root only ([`crate::program_root`]):
//!      [`LockdownStep::CloneProgramPaths`], [`LockdownStep::ProgramMountNamespace`],
//!      [`LockdownStep::MountProgramRoot`], [`LockdownStep::BindProgramPaths`],
//!      [`LockdownStep::SealProgramRoot`]: a read-only root of exactly the planned binds, in a
//!      mount namespace of the child's own (here, while the host tree's fd is still open and the
//!      child still holds its capabilities);
//! 5. [`LockdownStep::StdioToNull`], [`LockdownStep::CloseFds`]: fds 0–2 are `/dev/null`, fd 3 is
//!    the channel, fd 4 the service channel, nothing else is open (seccomp cannot stop `read` on
//!    an inherited fd);
//! 6. [`LockdownStep::Rlimits`]: the resource-limit baseline;
//! 7. [`LockdownStep::Dumpable`]: no core dumps, no `/proc/<pid>` access without privilege;
//! 8. [`LockdownStep::DropCapabilities`]: ambient, then inheritable/permitted/effective. The
//!    bounding set is already empty and securebits are locked: the zygote did both once for
//!    itself with [`lock_inherited_privileges`] (both are inherited across `fork`, and neither
//!    limits the zygote's own effective set, which it needs to create PID namespaces);
//! 9. [`LockdownStep::NoNewPrivs`];
//!    - with a program root: [`LockdownStep::Landlock`], file access only below the binds;
//! 10. [`LockdownStep::SeccompFilter`], last: every earlier step needs syscalls the filter forbids.
//!
//! Step 1 runs first rather than after the rlimits (as the design recipe lists it) so that the
//! window in which a dying zygote could leave an orphan is as small as it can be.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

use crate::program_root::{self, LandlockStatus, ProgramRoot};
use crate::seccomp_program::SeccompProgram;
use crate::sys;
use crate::{CHANNEL_FD, SERVICE_FD};

/// One step of a child's lockdown, or of the zygote's shared set-up. Named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockdownStep {
    // --- done once by the zygote for every child ---
    /// Drop supplementary groups before entering the user namespace.
    DropSupplementaryGroups,
    /// `unshare` of the user, mount, net, ipc, uts and cgroup namespaces.
    EnterNamespaces,
    /// The broker writes `setgroups`, `uid_map` and `gid_map`.
    IdMaps,
    /// Become root of the new user namespace (an unprivileged id on the host).
    SetIds,
    /// `mount("/", MS_REC | MS_PRIVATE)`.
    MakeMountsPrivate,
    /// Mount the empty read-only tmpfs that becomes `/`.
    MountEmptyRoot,
    /// `pivot_root` into it and detach the old root.
    PivotRoot,
    /// Fork the child as PID 1 of a new PID namespace.
    NewPidNamespace,
    // --- done by each child on itself ---
    /// Take the child's own uid and gid of the user namespace (a root broker maps one host id
    /// per child); before the parent-death signal, which an id change clears.
    ChildIds,
    /// `PR_SET_PDEATHSIG(SIGKILL)`.
    ParentDeathSignal,
    /// The zygote is still alive.
    LifelineCheck,
    /// `setsid`.
    NewSession,
    /// Unblock all signals.
    SignalMask,
    /// fds 0, 1, 2 onto `/dev/null`, the channels onto fds 3 and 4.
    StdioToNull,
    /// `close_range(5, ~0)`.
    CloseFds,
    /// `setrlimit` baseline.
    Rlimits,
    /// `PR_SET_DUMPABLE(0)`.
    Dumpable,
    /// Lock securebits (no root magic, no ambient raise); once, in the zygote.
    SecureBits,
    /// Empty the bounding set; once, in the zygote.
    DropBoundingSet,
    /// Empty the ambient, inheritable, permitted and effective sets.
    DropCapabilities,
    /// `PR_SET_NO_NEW_PRIVS`.
    NoNewPrivs,
    /// Exec mode with a program root: clone each bind's source from the zygote's copy of the
    /// host tree (`open_tree(OPEN_TREE_CLONE)`).
    CloneProgramPaths,
    /// Exec mode with a program root: `unshare(CLONE_NEWNS)`, a mount namespace of its own.
    ProgramMountNamespace,
    /// Exec mode with a program root: a fresh tmpfs becomes the root (`pivot_root`).
    MountProgramRoot,
    /// Exec mode with a program root: attach each clone at its target, read-only unless
    /// granted read-write, always nosuid and nodev.
    BindProgramPaths,
    /// Exec mode with a program root: the tmpfs root becomes read-only.
    SealProgramRoot,
    /// Exec mode with a program root: a Landlock ruleset allowing file access only below the
    /// binds.
    Landlock,
    /// Install the pre-compiled seccomp filter.
    SeccompFilter,
    /// Send `LockedDown` to the broker.
    ReportLockedDown,
    /// Receive which entry to run (after lockdown, so no user code ever runs before it).
    ReceiveStart,
}

impl std::fmt::Display for LockdownStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::DropSupplementaryGroups => "drop supplementary groups",
            Self::EnterNamespaces => "enter namespaces",
            Self::IdMaps => "write id maps",
            Self::SetIds => "set ids",
            Self::MakeMountsPrivate => "make mounts private",
            Self::MountEmptyRoot => "mount empty root",
            Self::PivotRoot => "pivot root",
            Self::NewPidNamespace => "new pid namespace",
            Self::ChildIds => "child ids",
            Self::ParentDeathSignal => "parent death signal",
            Self::LifelineCheck => "lifeline check",
            Self::NewSession => "new session",
            Self::SignalMask => "signal mask",
            Self::StdioToNull => "stdio to /dev/null",
            Self::CloseFds => "close fds",
            Self::Rlimits => "rlimits",
            Self::Dumpable => "dumpable",
            Self::SecureBits => "securebits",
            Self::DropBoundingSet => "drop bounding set",
            Self::DropCapabilities => "drop capabilities",
            Self::NoNewPrivs => "no_new_privs",
            Self::CloneProgramPaths => "clone program paths",
            Self::ProgramMountNamespace => "program mount namespace",
            Self::MountProgramRoot => "mount program root",
            Self::BindProgramPaths => "bind program paths",
            Self::SealProgramRoot => "seal program root",
            Self::Landlock => "landlock",
            Self::SeccompFilter => "seccomp filter",
            Self::ReportLockedDown => "report locked down",
            Self::ReceiveStart => "receive start",
        };
        f.write_str(name)
    }
}

/// A lockdown step failed with an OS error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("lockdown step '{step}' failed: {}", std::io::Error::from_raw_os_error(*errno))]
pub struct LockdownError {
    /// The step.
    pub step: LockdownStep,
    /// The errno it failed with.
    pub errno: i32,
}

impl LockdownError {
    fn from_io(step: LockdownStep, err: &std::io::Error) -> Self {
        Self {
            step,
            errno: err.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

/// A resource that [`Rlimit`] can limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RlimitResource {
    /// `RLIMIT_AS`: bytes of address space.
    AddressSpace,
    /// `RLIMIT_CORE`: core file size.
    Core,
    /// `RLIMIT_CPU`: CPU seconds.
    CpuSeconds,
    /// `RLIMIT_FSIZE`: largest file the child may write.
    FileSize,
    /// `RLIMIT_MEMLOCK`: locked memory bytes.
    MemLock,
    /// `RLIMIT_MSGQUEUE`: POSIX message queue bytes.
    MsgQueue,
    /// `RLIMIT_NOFILE`: one more than the highest fd number.
    OpenFiles,
    /// `RLIMIT_STACK`: main-thread stack bytes.
    Stack,
}

impl RlimitResource {
    fn raw(self) -> libc::__rlimit_resource_t {
        match self {
            Self::AddressSpace => libc::RLIMIT_AS,
            Self::Core => libc::RLIMIT_CORE,
            Self::CpuSeconds => libc::RLIMIT_CPU,
            Self::FileSize => libc::RLIMIT_FSIZE,
            Self::MemLock => libc::RLIMIT_MEMLOCK,
            Self::MsgQueue => libc::RLIMIT_MSGQUEUE,
            Self::OpenFiles => libc::RLIMIT_NOFILE,
            Self::Stack => libc::RLIMIT_STACK,
        }
    }
}

/// One resource limit (soft = hard, so the child cannot raise it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// What is limited.
    pub resource: RlimitResource,
    /// The limit.
    pub value: u64,
}

/// Everything a child needs to lock itself down, as data.
#[derive(Debug)]
pub struct LockdownPlan<'a> {
    /// The child's end of its channel (any fd number; it ends up at [`CHANNEL_FD`]).
    pub channel: BorrowedFd<'a>,
    /// The child's end of its service channel (files and network through the broker; it ends
    /// up at [`SERVICE_FD`]).
    pub service: BorrowedFd<'a>,
    /// An open `/dev/null` for fds 0–2.
    pub dev_null: BorrowedFd<'a>,
    /// The read end of the zygote's lifeline pipe; `POLLHUP` means the zygote is gone.
    pub lifeline_read: BorrowedFd<'a>,
    /// The lifeline's write end, inherited from the zygote: closed first, or it would keep the
    /// pipe open forever.
    pub lifeline_write: RawFd,
    /// Keep the inherited fd 2 instead of `/dev/null` (debugging only).
    pub keep_stderr: bool,
    /// The rlimit baseline.
    pub rlimits: &'a [Rlimit],
    /// The pre-compiled filter.
    pub seccomp: &'a SeccompProgram,
    /// Exec mode with a read-only minimal root: the plan, executed before the capabilities go.
    pub program_root: Option<&'a ProgramRoot>,
    /// The zygote's detached copy of the host's mount tree, the only place a program root's
    /// sources can be cloned from, or the errno the kernel refused it with.
    pub host_tree: Result<BorrowedFd<'a>, i32>,
    /// The child's own uid and gid in the user namespace; 0 keeps the zygote's (an unprivileged
    /// broker maps only one id).
    pub id: u32,
}

/// What a successful lockdown leaves for the child's next steps.
#[derive(Debug)]
pub struct LockedDown {
    /// The seccomp filter's notification listener (hand it to the broker, then close it).
    pub listener: OwnedFd,
    /// How Landlock was applied, when the plan had a program root.
    pub landlock: Option<LandlockStatus>,
}

/// Locked securebits: uid 0 gets no capability magic on execve, setuid does not fix up caps,
/// ambient caps can never be raised; each with its lock bit. capabilities(7).
const SECUREBITS_LOCKED_DOWN: libc::c_ulong = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80;

/// Runs the per-child recipe on the calling process. On success the channel is at
/// [`CHANNEL_FD`], the seccomp filter is installed and its notification listener is returned
/// (the caller must hand it to the broker and close it before running user code). On failure the caller reports the error
/// on the fd that `channel_fd_now` holds by then (the channel moves during the recipe) and exits
/// without running user code.
///
/// Preconditions: the calling process was just forked from the single-threaded zygote and is
/// itself single-threaded.
pub fn lock_down(
    plan: &LockdownPlan<'_>,
    channel_fd_now: &mut RawFd,
) -> Result<LockedDown, LockdownError> {
    use LockdownStep as S;
    let step = |s: LockdownStep| move |e: std::io::Error| LockdownError::from_io(s, &e);

    // Its own ids first: changing them clears the parent-death signal set next. The
    // capabilities stay (the zygote locked NO_SETUID_FIXUP) until DropCapabilities.
    if plan.id != 0 {
        sys::set_ids(plan.id).map_err(step(S::ChildIds))?;
    }
    sys::set_parent_death_signal(libc::SIGKILL).map_err(step(S::ParentDeathSignal))?;
    // The write end we inherited would keep the lifeline open: close ours, then look.
    close_one(plan.lifeline_write).map_err(step(S::LifelineCheck))?;
    if sys::hung_up(plan.lifeline_read.as_raw_fd()).map_err(step(S::LifelineCheck))? {
        return Err(LockdownError {
            step: S::LifelineCheck,
            errno: libc::ESRCH,
        });
    }
    sys::new_session().map_err(step(S::NewSession))?;
    sys::unblock_all_signals().map_err(step(S::SignalMask))?;

    // The program root, while the host tree is open (CloseFds closes it) and the capabilities
    // of the zygote's user namespace are still ours (DropCapabilities takes them).
    if let Some(root) = plan.program_root {
        let clones = program_root::clone_program_paths(plan.host_tree, root)?;
        program_root::mount_program_root(root, clones)?;
    }

    // Park both channels above the stdio slots, point 0–2 at /dev/null, then put the channels
    // at fds 3 and 4 and close everything above them.
    let parked = sys::dup_fd_above(plan.channel.as_raw_fd(), 10).map_err(step(S::StdioToNull))?;
    *channel_fd_now = parked;
    let parked_service =
        sys::dup_fd_above(plan.service.as_raw_fd(), 10).map_err(step(S::StdioToNull))?;
    let null = plan.dev_null.as_raw_fd();
    sys::dup_fd_onto(null, 0).map_err(step(S::StdioToNull))?;
    sys::dup_fd_onto(null, 1).map_err(step(S::StdioToNull))?;
    if !plan.keep_stderr {
        sys::dup_fd_onto(null, 2).map_err(step(S::StdioToNull))?;
    }
    sys::dup_fd_onto(parked, CHANNEL_FD).map_err(step(S::StdioToNull))?;
    *channel_fd_now = CHANNEL_FD;
    sys::dup_fd_onto(parked_service, SERVICE_FD).map_err(step(S::StdioToNull))?;
    sys::close_fds_from(SERVICE_FD + 1).map_err(step(S::CloseFds))?;

    for limit in plan.rlimits {
        sys::set_rlimit(limit.resource.raw(), limit.value, limit.value)
            .map_err(step(S::Rlimits))?;
    }
    sys::set_dumpable(false).map_err(step(S::Dumpable))?;

    sys::clear_ambient_capabilities().map_err(step(S::DropCapabilities))?;
    sys::clear_all_capability_sets().map_err(step(S::DropCapabilities))?;

    sys::set_no_new_privs().map_err(step(S::NoNewPrivs))?;
    // After the mounts (its rules are opened by path in the program root), before seccomp
    // (which forbids the Landlock syscalls).
    let landlock = match plan.program_root {
        Some(root) => Some(program_root::restrict_to_binds(root)?),
        None => None,
    };
    // Last: from here on only the allowlisted syscalls exist.
    let listener = sys::install_seccomp_filter(plan.seccomp).map_err(step(S::SeccompFilter))?;
    Ok(LockedDown { listener, landlock })
}

/// Locks securebits and empties the bounding set of the calling process, once, in the zygote:
/// every child forked afterwards inherits both, so no child can ever gain a capability through
/// `execve`. The zygote keeps its effective set (it needs `CAP_SYS_ADMIN` in its user namespace
/// to create each child's PID namespace); each child empties that itself
/// ([`LockdownStep::DropCapabilities`]).
///
/// Every capability number from 0 up is dropped until the kernel answers `EINVAL` (past its last
/// capability), so a capability newer than this code is dropped too.
///
/// Preconditions: `CAP_SETPCAP` in the effective set.
pub fn lock_inherited_privileges() -> Result<(), LockdownError> {
    let step = |s: LockdownStep| move |e: std::io::Error| LockdownError::from_io(s, &e);
    sys::set_securebits(SECUREBITS_LOCKED_DOWN).map_err(step(LockdownStep::SecureBits))?;
    for cap in 0..=u8::MAX {
        match sys::drop_bounding_capability(cap) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && cap > 0 => return Ok(()),
            Err(e) => return Err(LockdownError::from_io(LockdownStep::DropBoundingSet, &e)),
        }
    }
    Ok(())
}

fn close_one(fd: RawFd) -> std::io::Result<()> {
    if fd < 0 {
        return Ok(());
    }
    sys::close_fd_range(fd, fd)
}
