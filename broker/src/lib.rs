//! `portcullis-broker`: the trusted side of Portcullis.
//!
//! Owns: starting the single-threaded zygote ([`Broker::start`]), the child's seccomp allowlist
//! and its compilation ([`seccomp`]), the id maps of the sandbox's user namespace, spawning
//! children through the zygote (and its pool of pre-forked, locked-down children), each child's
//! typed channel and its end ([`Child`], [`ChildEnd`]), and serving each child's service channel
//! on a thread of the child's own, woken by the child's seccomp doorbell (module `supervise`):
//! files beneath pre-opened grant directories with `openat2`, TCP connections and HTTP(S)
//! fetches to checked addresses, every request decided by the child's policy profile and written
//! to the audit log ([`audit`]); and supervising each child from outside: its limits (rlimits,
//! its own cgroup — [`cgroup`] — and a wall-clock deadline), the seccomp violations the kernel
//! reports on the filter's listener (named, with arguments; killed or failed with `EPERM` as the
//! profile says), and why it ended ([`ChildEnd`]); for exec mode, the plan of a dynamic
//! program's read-only minimal root ([`mounts::MountPlan`], from its ELF dependencies
//! ([`elf`]) and the granted paths).
//!
//! Must never: fork itself except to exec at once (the zygote forks), trust a byte or fd a child
//! sends (every receive is size- and fd-capped, decoding never panics, a protocol violation kills
//! that child only), block forever on a child (sends have a deadline), map sandbox root to host
//! root, open a path by checking its string (the kernel resolves beneath the grant's fd),
//! connect to an address it did not check, let a child run its entry before it is in its cgroup,
//! answer a seccomp notification with "continue", or take a child's word for why it ended.
//!
//! The zygote's code lives here too (module `zygote`, private) because it is the broker's own
//! binary re-executed; it hands each forked child to `portcullis_child`, which finishes the
//! lockdown.

pub mod audit;
pub mod cgroup;
pub mod elf;
pub mod fetch;
pub mod limits;
pub mod mounts;
pub mod namespaces;
pub mod seccomp;
mod serve;
mod spawn;
mod supervise;
mod sys;
mod zygote;

pub use audit::{AuditRecord, AuditSink};
pub use fetch::TlsRoots;
pub use portcullis_child::{
    Bind, Entries, LandlockRequirement, LandlockStatus, LockdownError, LockdownStep, ProgramRoot,
    Rlimit, RlimitResource,
};
pub use portcullis_ipc::{ChannelLimits, ProtocolViolation};
#[doc(hidden)]
pub use serve::{connect_for, to_access, ConnectRefused};
pub use spawn::{
    default_rlimits, Broker, BrokerConfig, CgroupSetting, Child, ChildEnd, ChildError, SpawnError,
    SpawnOptions, StartError, TrackedChildren, DEFAULT_SANDBOX_HOST_ID, DEFAULT_SANDBOX_HOST_IDS,
    MAX_EXTRA_FDS, MAX_KEPT_VIOLATIONS,
};
pub use supervise::{OnViolation, Violation};
pub use zygote::SpawnFailure;
