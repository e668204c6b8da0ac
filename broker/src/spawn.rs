//! The broker's half: start the zygote, ask it for children, and hold each child's channel and
//! end.
//!
//! Threads: one reader thread per broker ("portcullis-zygote") starts the zygote process — so
//! the zygote's parent-death signal is tied to a thread that lives exactly as long as the
//! broker — then reads every zygote message and routes it to the spawn or child waiting for it.
//! Any number of application threads may call [`Broker::spawn`] at once.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use portcullis_child::protocol::{
    BrokerToChild, ChildToBroker, StartChild, MAX_PANIC_MESSAGE_BYTES,
};
use portcullis_child::{
    Entries, LandlockStatus, LockdownError, LockdownStep, ProgramRoot, Rlimit, RlimitResource,
};
use portcullis_ipc::{Channel, ChannelLimits, ProtocolViolation, RecvError, SendError};
use portcullis_policy::{Limits, Profile};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::audit::AuditSink;
use crate::cgroup::{
    self, CgroupError, CgroupEvents, CgroupLimits, Cgroups, ChildCgroup, Controller,
};
use crate::limits::{child_limits, ChildLimits};
use crate::namespaces::{write_id_maps, IdLease, IdMapError};
use crate::seccomp::{
    compile_child_filter, compile_exec_filter, ExecShape, RootShape, SeccompCompileError,
};
use crate::serve::{Registration, Service, ServiceConfig};
use crate::supervise::{Event, OnViolation, Supervisor, Violation, Watch};
use crate::zygote::{self, FromZygote, SpawnFailure, ToZygote, ZygoteInit};
use portcullis_child::SeccompProgram;

/// Host uid/gid a root broker maps a sandbox's root to: an id no host account or file uses, so
/// no host process (not even one running as `nobody`) shares it and may signal the zygote or a
/// child. Never host root. Below 2^31 for tools that treat ids as signed.
pub const DEFAULT_SANDBOX_HOST_ID: u32 = 2_147_000_000;

/// How many consecutive host ids a root broker maps by default, all of its leased block
/// ([`crate::namespaces::ID_BLOCK`]): the zygote is the first, and each child gets one of the
/// others for its own, as Android gives each isolated process its own uid. Root brokers on one
/// host lease disjoint blocks from [`DEFAULT_SANDBOX_HOST_ID`] up (118 fit below 2^31).
pub const DEFAULT_SANDBOX_HOST_IDS: u32 = crate::namespaces::ID_BLOCK;

/// Most extra fds [`Broker::spawn_program_with_fds`] passes: the start message also carries the
/// program and its stdio, within a channel's default 8 fds per message.
pub const MAX_EXTRA_FDS: usize = 4;

/// How a broker starts its zygote and children.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// How long a spawn may take, from request to the child's `LockedDown`.
    pub spawn_timeout: Duration,
    /// How long a send to a child may block before it fails (a child that stops reading never
    /// blocks the broker forever).
    pub send_timeout: Duration,
    /// Size and fd caps of every child channel.
    pub channel_limits: ChannelLimits,
    /// The rlimit baseline of every child.
    pub rlimits: Vec<Rlimit>,
    /// How many locked-down children the zygote keeps forked ahead, waiting for a spawn with
    /// default options (Android's "unspecialised app process" pool does the same). Each costs an
    /// idle process; 0 forks every child on request.
    pub prefork: usize,
    /// How many locked-down exec-mode children the zygote keeps forked ahead for
    /// [`Broker::spawn_program`] and its kin: children with the exec filter of an empty root
    /// and no processes, the rlimit baseline and default cgroup limits, waiting for a program.
    /// A spawn of a static program (no program root) whose profile allows no processes and
    /// gives the default rlimits takes one, so its fork, namespaces and lockdown are already
    /// done (`portcullis serve` keeps some); other spawns fork on request. Default 0.
    pub prefork_programs: usize,
    /// Where the audit records of brokered requests go.
    pub audit: AuditSink,
    /// When the broker runs as root: the lowest unprivileged host uid/gid its sandbox may map
    /// to. The broker leases the first free block of 4,096 ids at or above it (a lock file per
    /// block in `/run/portcullis/host-ids`, held while it runs), so no two root brokers share
    /// one. Its zygote runs as the block's first id; each child as one of the next
    /// `sandbox_host_ids - 1`, its own while it lives (taken in turn, so two live children share
    /// one only past that many), so the kernel's per-user accounting (fds in flight in unix
    /// sockets, `RLIMIT_NPROC`) and signal permissions separate children as they separate
    /// users. An unprivileged broker can map only its own ids: its zygote and children all run
    /// as the broker's uid.
    pub sandbox_host_id: u32,
    /// How many ids of its block a root broker maps (1 to 4,096: with 1, every child shares the
    /// zygote's id).
    pub sandbox_host_ids: u32,
    /// Threads that perform allowed connects and fetches (name lookup, connection, HTTP), so a
    /// slow one never holds a child's serving thread (at least 1). File requests are served by
    /// each child's own thread when it rings its doorbell (see `serve`).
    pub network_workers: usize,
    /// Allowed network requests that may wait for a network worker; past that, a connect or
    /// fetch fails at once with `busy` (`io::ErrorKind::ResourceBusy` in the child). 0: a
    /// request starts only if a network worker is idle.
    pub network_queue: usize,
    /// Where children's cgroups go.
    pub cgroups: CgroupSetting,
    /// Which certificate authorities HTTPS fetches trust (default: Mozilla's, built in).
    pub tls_roots: crate::fetch::TlsRoots,
}

/// Where a broker puts its children's cgroups.
#[derive(Debug, Clone, Default)]
pub enum CgroupSetting {
    /// Find the hierarchies this process may use (v2, or v1 memory/pids/cpu) from
    /// `/proc/self`; without one, say so in the log and limit by rlimits only.
    #[default]
    Auto,
    /// No cgroups: rlimits only (memory as address space, no task limit, no CPU share).
    Off,
    /// Use this layout (e.g. a delegated v2 subtree from the service manager).
    At(cgroup::Layout),
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            spawn_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(5),
            channel_limits: ChannelLimits::default(),
            rlimits: default_rlimits(),
            prefork: 2,
            prefork_programs: 0,
            audit: AuditSink::default(),
            sandbox_host_id: DEFAULT_SANDBOX_HOST_ID,
            sandbox_host_ids: DEFAULT_SANDBOX_HOST_IDS,
            cgroups: CgroupSetting::Auto,
            tls_roots: crate::fetch::TlsRoots::Mozilla,
            network_workers: crate::serve::NETWORK_WORKERS,
            network_queue: crate::serve::NETWORK_QUEUE,
        }
    }
}

/// The rlimit baseline: no core dumps, no locked memory, no message queues, 256 fds.
pub fn default_rlimits() -> Vec<Rlimit> {
    vec![
        Rlimit {
            resource: RlimitResource::Core,
            value: 0,
        },
        Rlimit {
            resource: RlimitResource::MemLock,
            value: 0,
        },
        Rlimit {
            resource: RlimitResource::MsgQueue,
            value: 0,
        },
        Rlimit {
            resource: RlimitResource::OpenFiles,
            value: 256,
        },
    ]
}

/// Counts from [`Broker::tracked_children`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackedChildren {
    /// Children whose end the broker waits for (pooled children included).
    pub awaiting_end: usize,
    /// Children whose violations and deadline the supervisor watches.
    pub supervised: usize,
    /// Spawns waiting for the zygote's answer.
    pub spawns_in_flight: usize,
}

/// Per-spawn options.
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    /// Replaces the broker's rlimit baseline for this child when set. The profile's limits
    /// (`open_fds`, `cpu_seconds`, `file_size_bytes`, and `memory_bytes` without a memory
    /// cgroup) then narrow it, never widen it.
    pub rlimits: Option<Vec<Rlimit>>,
    /// Let the child keep the zygote's stderr (the broker's) instead of `/dev/null`. For
    /// debugging only: a child can then write to the broker's terminal.
    pub keep_stderr: bool,
    /// What the child may reach through the broker (files, network). `None` grants nothing:
    /// every request is denied `not-granted` and audited.
    pub profile: Option<Profile>,
    /// Exec mode only: a read-only minimal root (binds of host paths, computed by
    /// [`crate::mounts::MountPlan`]) instead of the empty root, and a Landlock ruleset limiting
    /// file access to it. The program then gets the exec-with-root filter
    /// ([`crate::seccomp::EXEC_ROOT_EXTRA`]).
    pub program_root: Option<ProgramRoot>,
}

/// Starting the broker failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Compiling the child's seccomp filter failed.
    #[error("compile seccomp filter")]
    Seccomp(#[from] SeccompCompileError),
    /// Creating the control socketpair failed.
    #[error("create zygote control channel")]
    ControlChannel(#[source] std::io::Error),
    /// Starting the request service's threads failed.
    #[error("start request service")]
    Service(#[source] std::io::Error),
    /// Starting the zygote process failed.
    #[error("start zygote process")]
    SpawnZygote(#[source] std::io::Error),
    /// Writing the zygote's id maps failed.
    #[error("write zygote id maps")]
    IdMaps(#[from] IdMapError),
    /// A zygote set-up step failed.
    #[error("zygote set-up failed")]
    Step(#[source] LockdownError),
    /// The zygote died or answered out of order during its start.
    #[error("zygote handshake failed: {what}")]
    Handshake {
        /// What was expected.
        what: &'static str,
    },
}

impl StartError {
    /// True when the host forbids what the sandbox needs (e.g. unprivileged user namespaces are
    /// disabled), rather than a bug: tests skip on this, unless told they must run.
    pub fn is_host_restriction(&self) -> bool {
        matches!(self, Self::Step(e) if e.step == LockdownStep::EnterNamespaces && matches!(e.errno, libc::EPERM | libc::ENOSPC | libc::EACCES))
    }
}

/// Spawning a child failed. The child never ran user code.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The arguments did not encode.
    #[error("encode spawn arguments")]
    EncodeArgs(#[source] postcard::Error),
    /// No entry of this name is registered.
    #[error("no entry function named {name:?}")]
    UnknownEntry {
        /// The name asked for.
        name: String,
    },
    /// Creating the child's channel failed.
    #[error("create child channel")]
    Channel(#[source] std::io::Error),
    /// The zygote is gone.
    #[error("zygote is gone")]
    ZygoteGone,
    /// A lockdown step failed (in the zygote or in the child); the child never ran user code.
    #[error("child lockdown failed")]
    Lockdown(#[source] LockdownError),
    /// The child did not report `LockedDown` in time; it was killed.
    #[error("child did not lock down within {timeout:?}")]
    TimedOut {
        /// The configured spawn timeout.
        timeout: Duration,
    },
    /// The child ended before reporting `LockedDown`.
    #[error("child ended during lockdown: {end:?}")]
    EndedDuringLockdown {
        /// How it ended.
        end: ChildEnd,
    },
    /// Sending the start message to the locked-down child failed; it was killed.
    #[error("send start message to child")]
    Start(#[source] SendError),
    /// Compiling an exec-mode seccomp filter failed.
    #[error("compile the exec-mode seccomp filter")]
    Seccomp(#[source] SeccompCompileError),
    /// The options ask for something this kind of spawn cannot give.
    #[error("invalid spawn options: {0}")]
    InvalidOptions(&'static str),
    /// The child's first message was not a lockdown report; it was killed.
    #[error("child broke the lockdown handshake")]
    Handshake(#[source] RecvError),
    /// The broker could not take the child's seccomp listener (`pidfd_open` + `pidfd_getfd`,
    /// which need ptrace access to the child: a Yama `ptrace_scope` of 2 or more refuses it to
    /// an unprivileged broker), or what the child named is not one; it was killed before it ran
    /// anything.
    #[error("take the child's seccomp listener")]
    TakeListener(#[source] std::io::Error),
    /// Exec mode: the program could not be opened, or an argument is not a C string.
    #[error("open the program to execute")]
    Program(#[source] std::io::Error),
    /// The child's cgroup could not be made, limited or joined; it was killed before it ran
    /// anything.
    #[error("set up the child's cgroup")]
    Cgroup(#[source] CgroupError),
}

/// A channel operation with a child failed.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// Sending failed (too large, too many fds, timed out, or the child is gone).
    #[error("send to child failed")]
    Send(#[from] SendError),
    /// No message arrived in time.
    #[error("receive from child timed out")]
    TimedOut,
    /// The child's end of the channel is closed (it ended or closed it).
    #[error("child closed its channel")]
    Closed,
    /// The child broke the protocol; it has been killed.
    #[error("child broke the protocol; it was killed")]
    ProtocolViolation(#[source] ProtocolViolation),
    /// Receiving failed with an OS error. `EMFILE`: the child attached fds this process had no
    /// room for; that message is dropped and the next receive reads the next one.
    #[error("receive from child failed")]
    Io(#[source] std::io::Error),
}

/// How a child ended. Everything here comes from the kernel's wait status (through the zygote)
/// and from what the broker itself did, except `panic_message`, which is the child's own word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEnd {
    /// Returned from its entry function (or exited) with this status.
    Exited {
        /// Exit status.
        code: i32,
    },
    /// Died of a signal it did not ask for: a fault, or a panic (SIGILL).
    Crashed {
        /// The signal.
        signal: i32,
        /// The panic message the child sent before crashing, if it panicked (untrusted, bounded).
        panic_message: Option<String>,
    },
    /// Made a syscall outside its seccomp allowlist and was killed for it before the syscall ran
    /// (the profile's violation mode is `Kill`). The report comes from the kernel through the
    /// filter's listener (the broker's thread for the child), not from the child. `None` only if the kernel
    /// killed the child itself (SIGSYS) without a report, which the filter is built never to do;
    /// a child cannot fake a SIGSYS end: as PID 1 of its namespace it cannot kill itself with a
    /// default-action signal.
    SeccompViolation {
        /// The syscall, its number and arguments.
        violation: Option<Violation>,
    },
    /// Killed by the kernel's OOM killer inside its memory cgroup (counted in the cgroup's own
    /// events, not guessed from the signal).
    OutOfMemory,
    /// Hit its cgroup's process (task) limit and then failed (a crash or non-zero exit).
    ProcessLimit,
    /// Used up its CPU-time limit (`RLIMIT_CPU`; the kernel's own accounting says so).
    CpuLimit {
        /// CPU time it used, in milliseconds.
        used_ms: u64,
    },
    /// Still ran at its wall-clock deadline and was killed by the broker.
    WallTimeout,
    /// Killed on the broker's request ([`Child::kill`], spawn timeout, drop).
    Killed,
    /// Broke the channel protocol and was killed by the broker.
    ProtocolViolation {
        /// What it sent.
        violation: ProtocolViolation,
    },
    /// Killed because the broker shut down.
    BrokerShutdown,
    /// The zygote died; the child died with it.
    ZygoteLost,
}

enum SpawnReply {
    Spawned { pid: u32 },
    Failed(SpawnFailure),
}

struct Shared {
    control: Channel,
    config: BrokerConfig,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, Sender<SpawnReply>>>,
    ends: Mutex<HashMap<u64, Arc<EndSlot>>>,
    /// Pre-forked, locked-down children waiting for a start message, oldest first.
    pool: Mutex<VecDeque<Forked>>,
    /// Pre-forked exec-mode children ([`BrokerConfig::prefork_programs`]).
    program_pool: Mutex<VecDeque<Forked>>,
    /// The rlimits pooled children locked down with: those of a default profile. A spawn whose
    /// profile gives the same can take a pooled child.
    pool_rlimits: Vec<Rlimit>,
    /// Children go into a memory cgroup (else `RLIMIT_AS` stands in for the memory limit).
    memory_cgroup: bool,
    /// This broker's cgroup instance directories, if it has any (taken at shutdown).
    cgroups: Mutex<Option<Arc<Cgroups>>>,
    /// The cgroup limits pooled children start with: those of a default profile.
    pool_cgroup_limits: CgroupLimits,
    /// CPUs of this machine (a CPU share of all of them is no throttling).
    cpus: u32,
    /// Exec-mode filters compiled so far, one per shape (compiled on first use: a broker that
    /// never executes a program never pays for them).
    exec_filters: Mutex<HashMap<ExecShape, SeccompProgram>>,
    /// Serves every child's service channel.
    service: Arc<Service>,
    /// Watches every child's seccomp violations and wall-clock deadline.
    supervisor: Arc<Supervisor>,
    zygote_alive: AtomicBool,
    shutting_down: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn send_to_zygote(&self, msg: &ToZygote, fds: &[BorrowedFd<'_>]) -> Result<(), SendError> {
        self.control
            .send(msg, fds, Some(Instant::now() + Duration::from_secs(10)))
    }

    fn kill(&self, id: u64) {
        let _ = self.send_to_zygote(&ToZygote::Kill { id }, &[]);
    }
}

/// The trusted broker: owns the zygote and starts sandboxed children through it.
///
/// Dropping the broker shuts the zygote down, which kills every child.
pub struct Broker {
    shared: Arc<Shared>,
    /// Names of the registered entries (an unknown name fails before any process is touched).
    entry_names: BTreeSet<String>,
    zygote_pid: u32,
    reader: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("zygote_pid", &self.zygote_pid)
            .finish()
    }
}

impl Broker {
    /// Starts the broker: compiles the seccomp filter, starts the zygote and waits until it is
    /// ready.
    ///
    /// Call this first in `main`, before any thread is started: the zygote is a re-exec of this
    /// binary, and in that process `start` runs the zygote and never returns. Register the same
    /// `entries` in every run.
    ///
    /// Side effect: raises this process's soft open-files limit to its hard limit (the broker
    /// holds two channel fds per child).
    ///
    /// Errors: [`StartError`] names the failing step; [`StartError::is_host_restriction`] tells a
    /// host that forbids user namespaces from a bug.
    pub fn start(entries: Entries, config: BrokerConfig) -> Result<Broker, StartError> {
        zygote::run_if_zygote(&entries);
        let entry_names: BTreeSet<String> = entries.names().map(str::to_owned).collect();
        drop(entries);
        // Best effort: a broker that cannot raise it still works, with fewer children.
        if let Err(e) = crate::sys::process::raise_open_files_limit() {
            tracing::warn!(error = %e, "could not raise the open-files limit");
        }
        let (control, zygote_end) =
            Channel::pair(ChannelLimits::default()).map_err(StartError::ControlChannel)?;
        let service = Service::start(ServiceConfig {
            audit: config.audit.clone(),
            send_timeout: config.send_timeout,
            network_workers: config.network_workers,
            network_queue: config.network_queue,
            tls_roots: config.tls_roots.clone(),
        })
        .map_err(StartError::Service)?;
        let supervisor = Supervisor::start(config.audit.clone()).map_err(StartError::Service)?;
        let cgroups = open_cgroups(&config.cgroups).map(Arc::new);
        let memory_cgroup = cgroups
            .as_ref()
            .is_some_and(|c| c.supports(Controller::Memory));
        let cpus = std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
        let pool_limits = child_limits(&config.rlimits, &Limits::default(), memory_cgroup, cpus);
        let shared = Arc::new(Shared {
            control,
            config,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            ends: Mutex::new(HashMap::new()),
            pool: Mutex::new(VecDeque::new()),
            program_pool: Mutex::new(VecDeque::new()),
            pool_rlimits: pool_limits.rlimits,
            memory_cgroup,
            cgroups: Mutex::new(cgroups),
            pool_cgroup_limits: pool_limits.cgroup,
            cpus,
            exec_filters: Mutex::new(HashMap::new()),
            service,
            supervisor,
            zygote_alive: AtomicBool::new(true),
            shutting_down: AtomicBool::new(false),
        });
        let (started_tx, started_rx) = bounded::<Result<u32, StartError>>(1);
        let (init_tx, init_rx) = bounded::<ZygoteInit>(1);
        let thread_shared = Arc::clone(&shared);
        let reader = std::thread::Builder::new()
            .name("portcullis-zygote".into())
            .spawn(move || zygote_thread(thread_shared, zygote_end, init_rx, started_tx))
            .map_err(StartError::SpawnZygote)?;
        // The filters compile here while the zygote starts (its exec and its namespaces
        // take longer): the child filter, which the zygote's configuration carries, only for a
        // broker with entries; a broker without (exec mode only, as `portcullis run`) compiles
        // the exec filter its spawns most likely need instead, into the cache `spawn_program`
        // reads.
        let seccomp = if entry_names.is_empty() {
            let _ = shared.exec_filter(ExecShape::default());
            Ok(None)
        } else {
            compile_child_filter().map(Some)
        };
        let program_pool = match shared.config.prefork_programs {
            0 => Ok(None),
            n => shared
                .exec_filter(ExecShape::default())
                .map(|filter| Some((filter, n))),
        };
        let seccomp = match (seccomp, program_pool) {
            (Ok(seccomp), Ok(program_pool)) => Ok((seccomp, program_pool)),
            (Err(e), _) => Err(StartError::from(e)),
            (_, Err(SpawnError::Seccomp(e))) => Err(StartError::from(e)),
            (_, Err(_)) => Err(StartError::Handshake {
                what: "the exec filter of the program pool",
            }),
        };
        match seccomp {
            Ok((seccomp, program_pool)) => {
                let _ = init_tx.send(ZygoteInit {
                    seccomp,
                    channel_limits: (
                        shared.config.channel_limits.max_message_bytes,
                        shared.config.channel_limits.max_fds_per_message,
                    ),
                    pool_size: shared.config.prefork,
                    default_rlimits: shared.pool_rlimits.clone(),
                    program_pool,
                    child_ids: if nix::unistd::geteuid().is_root() {
                        mapped_child_ids(&shared.config)
                    } else {
                        1
                    },
                });
            }
            Err(e) => {
                // The zygote thread sees the configuration's sender gone and ends the zygote.
                drop(init_tx);
                let _ = reader.join();
                return Err(e);
            }
        }
        match started_rx.recv() {
            Ok(Ok(zygote_pid)) => Ok(Broker {
                shared,
                entry_names,
                zygote_pid,
                reader: Some(reader),
            }),
            Ok(Err(e)) => {
                let _ = reader.join();
                Err(e)
            }
            Err(_) => {
                let _ = reader.join();
                Err(StartError::Handshake {
                    what: "zygote thread ended",
                })
            }
        }
    }

    /// For a `main` that does other work before [`Broker::start`] (parsing a command line, say):
    /// call this first. In the zygote (this binary re-executed by a broker) it runs the zygote
    /// and never returns; anywhere else it returns at once. [`Broker::start`] does the same
    /// check itself.
    pub fn serve_if_zygote(entries: &Entries) {
        zygote::run_if_zygote(entries);
    }

    /// The zygote's pid.
    pub fn zygote_pid(&self) -> u32 {
        self.zygote_pid
    }

    /// How many pre-forked, locked-down children are waiting for a spawn right now (at most
    /// [`BrokerConfig::prefork`]; the broker holds the fds of its two channels and its seccomp
    /// listener for each).
    pub fn pooled_children(&self) -> usize {
        waiting(&lock(&self.shared.pool))
    }

    /// How many pre-forked exec-mode children wait for a program right now (at most
    /// [`BrokerConfig::prefork_programs`]).
    pub fn pooled_programs(&self) -> usize {
        waiting(&lock(&self.shared.program_pool))
    }

    /// The cgroup controllers this broker limits children with (`memory`, `pids`, `cpu`), or
    /// `None` when it has no cgroup and limits by rlimits only.
    pub fn cgroup_controllers(&self) -> Option<Vec<&'static str>> {
        let cgroups = lock(&self.shared.cgroups).clone()?;
        Some(
            [Controller::Memory, Controller::Pids, Controller::Cpu]
                .into_iter()
                .filter(|c| cgroups.supports(*c))
                .map(|c| c.as_str())
                .collect(),
        )
    }

    /// This broker's cgroup instance directories (one per hierarchy), where each child's group
    /// is made.
    pub fn cgroup_dirs(&self) -> Vec<std::path::PathBuf> {
        lock(&self.shared.cgroups)
            .as_ref()
            .map(|c| {
                c.instance_dirs()
                    .map(std::path::Path::to_path_buf)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What the broker holds per child right now, for leak checks: children whose end it
    /// waits for (pooled ones included), children the supervisor watches, spawns in flight.
    pub fn tracked_children(&self) -> TrackedChildren {
        TrackedChildren {
            awaiting_end: lock(&self.shared.ends).len(),
            supervised: self.shared.supervisor.watched(),
            spawns_in_flight: lock(&self.shared.pending).len(),
        }
    }

    /// How many allowed network requests (connects and fetches) are queued for or being
    /// performed by the network workers right now.
    pub fn pending_network_requests(&self) -> usize {
        self.shared.service.network_pending()
    }

    /// Spawns a child running entry `entry` with `args`, and waits until it is fully locked
    /// down. `Down` is what the broker sends it, `Up` what it sends back.
    pub fn spawn<Down, Up, A>(&self, entry: &str, args: &A) -> Result<Child<Down, Up>, SpawnError>
    where
        Down: Serialize,
        Up: DeserializeOwned,
        A: Serialize + ?Sized,
    {
        self.spawn_with(entry, args, &SpawnOptions::default())
    }

    /// [`Broker::spawn`] with per-child options.
    ///
    /// A spawn with default options takes a pre-forked child from the zygote's pool when one is
    /// waiting (see [`BrokerConfig::prefork`]); otherwise the zygote forks one now. Either way
    /// the child is fully locked down before it learns which entry to run.
    pub fn spawn_with<Down, Up, A>(
        &self,
        entry: &str,
        args: &A,
        options: &SpawnOptions,
    ) -> Result<Child<Down, Up>, SpawnError>
    where
        Down: Serialize,
        Up: DeserializeOwned,
        A: Serialize + ?Sized,
    {
        let shared = &self.shared;
        if !self.entry_names.contains(entry) {
            return Err(SpawnError::UnknownEntry {
                name: entry.to_owned(),
            });
        }
        if !shared.zygote_alive.load(Ordering::Acquire) {
            return Err(SpawnError::ZygoteGone);
        }
        if options.program_root.is_some() {
            return Err(SpawnError::InvalidOptions(
                "a program root is for exec mode (spawn_program) only",
            ));
        }
        if options
            .profile
            .as_ref()
            .is_some_and(|p| p.limits.allow_processes)
        {
            return Err(SpawnError::InvalidOptions(
                "allow_processes is for exec mode (spawn_program) only: an entry function \
                 runs in a forked copy of the zygote, where a fork has nothing to execute",
            ));
        }
        let start = StartChild {
            entry: entry.to_owned(),
            args: postcard::to_allocvec(args).map_err(SpawnError::EncodeArgs)?,
        };
        let deadline = Instant::now() + shared.config.spawn_timeout;
        let limits = shared.limits_for(options);
        let poolable = !options.keep_stderr && limits.rlimits == shared.pool_rlimits;
        if let Some(pooled) = poolable.then(|| shared.claim_pooled(false)).flatten() {
            let id = pooled.id;
            let started =
                self.start_child(pooled, entry, (&start, &[]), options, &limits, deadline);
            shared.replace(id);
            match started {
                Ok(child) => return Ok(child),
                // A pre-forked child may have died while it waited: fork one instead.
                Err(SpawnError::EndedDuringLockdown { .. } | SpawnError::Start(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let forked =
            shared.fork_on_request(&limits.rlimits, options.keep_stderr, None, deadline)?;
        self.start_child(forked, entry, (&start, &[]), options, &limits, deadline)
    }

    /// Exec mode: spawns a child that, fully locked down, executes `program` instead of an entry
    /// function. The broker opens `program` on the host; the child executes it from that fd
    /// (`execveat` with `AT_EMPTY_PATH`), so nothing is mounted for it: the root stays empty,
    /// which suits a static program. `argv` is its argument vector (`argv[0]` included), `env`
    /// its whole environment (`NAME=value`; nothing of the broker's is passed), `stdio` what
    /// becomes its fds 0, 1 and 2. It gets the exec-mode filter ([`crate::seccomp::compile_exec_filter`]),
    /// the limits of `options.profile`, its own cgroup and the supervisor, like any child; it
    /// has no channel to the broker (`Child::recv` ends when it starts). Its end is its exit
    /// status, a signal, or a violation naming the syscall.
    ///
    /// Errors: [`SpawnError::Program`] when the program cannot be opened or an argument or
    /// environment entry holds a NUL byte (`InvalidInput`); otherwise as [`Broker::spawn`].
    pub fn spawn_program(
        &self,
        program: &std::path::Path,
        argv: &[std::ffi::OsString],
        env: &[std::ffi::OsString],
        stdio: [BorrowedFd<'_>; 3],
        options: &SpawnOptions,
    ) -> Result<Child<(), ()>, SpawnError> {
        self.spawn_exec(program, (argv, env), (stdio, &[]), options, false)
    }

    /// [`Broker::spawn_program`], with `extra` becoming the program's fds 3, 4, ... in order
    /// (at most [`MAX_EXTRA_FDS`]): connections the broker made for a program that cannot ask
    /// for them ([`crate::connect_for`]), say.
    ///
    /// Errors: as [`Broker::spawn_program`]; [`SpawnError::InvalidOptions`] for more than
    /// [`MAX_EXTRA_FDS`] extra fds.
    pub fn spawn_program_with_fds(
        &self,
        program: &std::path::Path,
        (argv, env): (&[std::ffi::OsString], &[std::ffi::OsString]),
        stdio: [BorrowedFd<'_>; 3],
        extra: &[BorrowedFd<'_>],
        options: &SpawnOptions,
    ) -> Result<Child<(), ()>, SpawnError> {
        self.spawn_exec(program, (argv, env), (stdio, extra), options, false)
    }

    /// [`Broker::spawn_program_with_fds`] for a program the caller opened already: `file` is
    /// executed as it is (the caller opened it with its own rights, e.g. a server for a client
    /// that passed the fd), `name` names the child in audit records and errors. With a program
    /// root planned for one file, `file` must be that file.
    ///
    /// Errors: as [`Broker::spawn_program_with_fds`].
    pub fn spawn_program_file(
        &self,
        file: std::fs::File,
        name: &str,
        (argv, env): (&[std::ffi::OsString], &[std::ffi::OsString]),
        stdio: [BorrowedFd<'_>; 3],
        extra: &[BorrowedFd<'_>],
        options: &SpawnOptions,
    ) -> Result<Child<(), ()>, SpawnError> {
        self.spawn_exec_file(file, name, (argv, env), (stdio, extra), options, false)
    }

    /// Exec mode for a program that speaks the Portcullis protocol (a plugin): as
    /// [`Broker::spawn_program`], but the child keeps its two channels across the exec, so the
    /// program talks to the broker like any child — typed messages (`Down`/`Up`) on its
    /// channel, files and network by its profile on its service channel — after taking them with
    /// `portcullis_child::ChildContext::inherited`. The program starts only after every lockdown
    /// step, so none of its code (not even a static constructor) ever runs unconfined.
    ///
    /// Errors: as [`Broker::spawn_program`].
    pub fn spawn_plugin<Down, Up>(
        &self,
        program: &std::path::Path,
        argv: &[std::ffi::OsString],
        env: &[std::ffi::OsString],
        stdio: [BorrowedFd<'_>; 3],
        options: &SpawnOptions,
    ) -> Result<Child<Down, Up>, SpawnError>
    where
        Down: Serialize,
        Up: DeserializeOwned,
    {
        self.spawn_exec(program, (argv, env), (stdio, &[]), options, true)
    }

    fn spawn_exec<Down, Up>(
        &self,
        program: &std::path::Path,
        (argv, env): (&[std::ffi::OsString], &[std::ffi::OsString]),
        (stdio, extra): ([BorrowedFd<'_>; 3], &[BorrowedFd<'_>]),
        options: &SpawnOptions,
        keep_channels: bool,
    ) -> Result<Child<Down, Up>, SpawnError>
    where
        Down: Serialize,
        Up: DeserializeOwned,
    {
        let file = std::fs::File::open(program).map_err(SpawnError::Program)?;
        let name = program.to_string_lossy();
        self.spawn_exec_file(
            file,
            &name,
            (argv, env),
            (stdio, extra),
            options,
            keep_channels,
        )
    }

    fn spawn_exec_file<Down, Up>(
        &self,
        file: std::fs::File,
        name: &str,
        (argv, env): (&[std::ffi::OsString], &[std::ffi::OsString]),
        (stdio, extra): ([BorrowedFd<'_>; 3], &[BorrowedFd<'_>]),
        options: &SpawnOptions,
        keep_channels: bool,
    ) -> Result<Child<Down, Up>, SpawnError>
    where
        Down: Serialize,
        Up: DeserializeOwned,
    {
        use std::os::unix::ffi::OsStrExt;
        let shared = &self.shared;
        if !shared.zygote_alive.load(Ordering::Acquire) {
            return Err(SpawnError::ZygoteGone);
        }
        let bytes = |v: &[std::ffi::OsString]| -> Result<Vec<Vec<u8>>, SpawnError> {
            v.iter()
                .map(|s| {
                    let b = s.as_bytes();
                    if b.contains(&0) {
                        Err(SpawnError::Program(std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            "an argument or environment entry holds a NUL byte",
                        )))
                    } else {
                        Ok(b.to_vec())
                    }
                })
                .collect()
        };
        if extra.len() > MAX_EXTRA_FDS || (keep_channels && !extra.is_empty()) {
            return Err(SpawnError::InvalidOptions(
                "at most MAX_EXTRA_FDS extra fds, and none for a plugin (its channels are fds 3 \
                 and 4)",
            ));
        }
        let args = portcullis_child::protocol::ExecArgs {
            argv: bytes(argv)?,
            env: bytes(env)?,
            keep_channels,
            extra_fds: u32::try_from(extra.len()).unwrap_or(u32::MAX),
        };
        // The root was planned from one file's ELF headers: start that file or nothing.
        if let Some((dev, ino)) = options.program_root.as_ref().and_then(|r| r.program) {
            use std::os::unix::fs::MetadataExt;
            let meta = file.metadata().map_err(SpawnError::Program)?;
            if (meta.dev(), meta.ino()) != (dev, ino) {
                return Err(SpawnError::Program(std::io::Error::other(
                    "the program file was replaced after its root was planned",
                )));
            }
        }
        let start = StartChild {
            entry: portcullis_child::protocol::EXEC_ENTRY.to_owned(),
            args: postcard::to_allocvec(&args).map_err(SpawnError::EncodeArgs)?,
        };
        let deadline = Instant::now() + shared.config.spawn_timeout;
        let limits = shared.limits_for(options);
        let shape = ExecShape {
            processes: options
                .profile
                .as_ref()
                .is_some_and(|p| p.limits.allow_processes),
            root: match &options.program_root {
                None => RootShape::Empty,
                Some(root) if root.binds.iter().any(|b| b.writable) => RootShape::ReadWrite,
                Some(_) => RootShape::ReadOnly,
            },
        };
        if let Some(root) = &options.program_root {
            root.validate().map_err(|errno| {
                SpawnError::Lockdown(LockdownError {
                    step: LockdownStep::CloneProgramPaths,
                    errno,
                })
            })?;
        }
        // A directory as stdin, stdout, stderr or an extra fd would let the program name host
        // files by a path relative to it (`openat(0, "passwd")`, `fchdir(0)`), beside its root,
        // and stat them even where Landlock runs (it does not restrict stat): refuse it.
        for fd in stdio.iter().chain(extra) {
            if nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            {
                return Err(SpawnError::InvalidOptions(
                    "a directory cannot be one of the program's fds (stdin, stdout, stderr or an \
                     extra one): files beneath it would be reachable by relative path",
                ));
            }
        }
        let pids_cgroup = lock(&shared.cgroups)
            .as_ref()
            .is_some_and(|c| c.supports(Controller::Pids));
        if shape.processes && !pids_cgroup {
            // Without a pids cgroup nothing would bound the processes (RLIMIT_NPROC counts a
            // whole host uid, which every child shares): fail closed.
            return Err(SpawnError::InvalidOptions(
                "allow_processes needs a pids cgroup to bound the processes, and this broker \
                 has none (see `portcullis doctor`)",
            ));
        }
        let [stdin, stdout, stderr] = stdio;
        let mut fds = vec![file.as_fd(), stdin, stdout, stderr];
        fds.extend_from_slice(extra);
        // The shape, root and rlimits the program pool's children locked down with.
        let poolable = shape == ExecShape::default()
            && options.program_root.is_none()
            && !options.keep_stderr
            && limits.rlimits == shared.pool_rlimits;
        if let Some(pooled) = poolable.then(|| shared.claim_pooled(true)).flatten() {
            let id = pooled.id;
            let started =
                self.start_child(pooled, name, (&start, &fds), options, &limits, deadline);
            shared.replace(id);
            match started {
                Ok(child) => return Ok(child),
                // A pre-forked child may have died while it waited: fork one instead.
                Err(SpawnError::EndedDuringLockdown { .. } | SpawnError::Start(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let filter = shared.exec_filter(shape)?;
        let forked = shared.fork_on_request(
            &limits.rlimits,
            options.keep_stderr,
            Some((filter, options.program_root.clone())),
            deadline,
        )?;
        self.start_child(forked, name, (&start, &fds), options, &limits, deadline)
    }

    /// Registers a forked child with the service, sends it its start message and waits for its
    /// lockdown report.
    fn start_child<Down, Up>(
        &self,
        forked: Forked,
        entry: &str,
        (start, start_fds): (&StartChild, &[BorrowedFd<'_>]),
        options: &SpawnOptions,
        limits: &ChildLimits,
        deadline: Instant,
    ) -> Result<Child<Down, Up>, SpawnError>
    where
        Down: Serialize,
        Up: DeserializeOwned,
    {
        let shared = &self.shared;
        let Forked {
            id,
            pid,
            channel,
            service,
            end,
            reported,
        } = forked;
        let state = Arc::new(Mutex::new(ChildState {
            cpu_limit_us: limits.cpu_limit_us,
            ..ChildState::default()
        }));
        let child = Child {
            id,
            pid,
            channel,
            end,
            shared: Arc::clone(shared),
            state: Arc::clone(&state),
            pending: Mutex::new(VecDeque::new()),
            send_timeout: shared.config.send_timeout,
            _types: std::marker::PhantomData,
        };
        let events_state = Arc::clone(&state);
        // A violation on the service channel ends the child like one on its own channel.
        let weak = Arc::downgrade(shared);
        let on_violation = Box::new(move |violation: ProtocolViolation| {
            tracing::warn!(child = id, pid, %violation, "protocol violation on service channel; killing child");
            {
                let mut state = lock(&state);
                state.violation.get_or_insert(violation);
                state.killed_by_broker = true;
            }
            if let Some(shared) = weak.upgrade() {
                shared.kill(id);
            }
        });
        let registration = Registration {
            child: id,
            kind: entry.to_owned(),
            pid,
            channel: service,
            profile: options.profile.clone().unwrap_or_default(),
            on_violation,
            mailbox: start.entry != portcullis_child::protocol::EXEC_ENTRY,
        };
        let wall_deadline = limits.wall.map(|wall| Instant::now() + wall);
        let doorbell = shared.service.register(registration);
        // Into its cgroup before it can read the start message: nothing the child was not built
        // with runs outside its limits. A pooled child is in one already, with a default
        // profile's limits.
        let joined = {
            let group = lock(&child.end.cgroup);
            match group.as_ref() {
                Some(group) if limits.cgroup != shared.pool_cgroup_limits => {
                    group.set_limits(&limits.cgroup)
                }
                Some(_) => Ok(()),
                None => {
                    drop(group);
                    shared.join_cgroup(id, pid, &child.end, &limits.cgroup)
                }
            }
        };
        match joined {
            Ok(()) => {}
            // The child is gone already (its lockdown failed, or it died): the handshake below
            // says why, which is the error that matters.
            Err(CgroupError::Write { source, .. })
                if source.raw_os_error() == Some(libc::ESRCH) =>
            {
                if matches!(reported, Report::Unread) {
                    child.wait_for_locked_down(deadline)?;
                }
                child.kill();
                return Err(SpawnError::EndedDuringLockdown {
                    end: child
                        .wait_timeout(Duration::from_secs(5))
                        .unwrap_or(ChildEnd::ZygoteLost),
                });
            }
            Err(e) => {
                child.kill();
                return Err(SpawnError::Cgroup(e));
            }
        }
        // The listener first, then the start message: the child runs nothing of the caller's
        // until the broker supervises it, and closes its own copy of the listener when the start
        // message arrives. A pooled child's was taken while it waited.
        let listener = match reported {
            Report::Read(LockedDown { listener, landlock }) => {
                lock(&child.state).landlock = landlock;
                listener
            }
            // Not claimed (`claim_pooled` passes over it); killed already.
            Report::Failed => {
                child.kill();
                return Err(SpawnError::EndedDuringLockdown {
                    end: child
                        .wait_timeout(Duration::from_secs(5))
                        .unwrap_or(ChildEnd::ZygoteLost),
                });
            }
            Report::Unread => {
                let listener_fd = child.wait_for_locked_down(deadline)?;
                match take_listener(pid, listener_fd, &child.channel) {
                    Ok(listener) => listener,
                    Err(source) => {
                        child.kill();
                        return Err(SpawnError::TakeListener(source));
                    }
                }
            }
        };
        if let Err(e) = child.channel.send(start, start_fds, Some(deadline)) {
            child.kill();
            return Err(SpawnError::Start(e));
        }
        // A syscall the child makes before this point waits in the listener (the calling thread
        // stays stopped), so nothing is missed by watching only now.
        let weak = Arc::downgrade(shared);
        let watch = Watch {
            child: id,
            kind: entry.to_owned(),
            pid,
            listener,
            mode: limits.on_violation,
            wall_deadline,
            doorbell,
            on_event: Box::new(move |event: Event| {
                let kill = {
                    let mut state = lock(&events_state);
                    let before = state.killed_by_broker;
                    state.record(&event);
                    state.killed_by_broker && !before
                };
                if kill {
                    if let Some(shared) = weak.upgrade() {
                        shared.kill(id);
                    }
                }
            }),
        };
        if let Err(e) = shared.supervisor.watch(watch) {
            child.kill();
            return Err(SpawnError::Channel(e));
        }
        Ok(child)
    }
}

/// A child the zygote forked: the broker's ends of its channels, and its end status.
struct Forked {
    id: u64,
    pid: u32,
    channel: Channel,
    service: Channel,
    end: Arc<EndSlot>,
    /// Its lockdown report, as far as the broker has read it.
    reported: Report,
}

/// The children of `pool` a claim would take (not those whose report failed).
fn waiting(pool: &VecDeque<Forked>) -> usize {
    pool.iter()
        .filter(|forked| !matches!(forked.reported, Report::Failed))
        .count()
}

/// A child's lockdown report, as far as the broker has read it.
enum Report {
    /// Not yet: the spawn reads it (a child forked on request).
    Unread,
    /// Read while the child waited in the pool, its listener taken
    /// ([`Shared::read_pooled_report`]).
    Read(LockedDown),
    /// Reading it failed while the child waited in the pool, and the child was killed. It stays
    /// in the pool until a claim passes over it and asks the zygote for its replacement: one per
    /// spawn, so a child that can never lock down cannot make the zygote fork in a loop.
    Failed,
}

/// What a child's lockdown report gave the broker: its seccomp listener, and how it applied
/// Landlock.
struct LockedDown {
    listener: OwnedFd,
    landlock: Option<LandlockStatus>,
}

impl Shared {
    /// The exec-mode filter of `shape`, compiled on first use.
    fn exec_filter(&self, shape: ExecShape) -> Result<SeccompProgram, SpawnError> {
        let mut filters = lock(&self.exec_filters);
        if let Some(program) = filters.get(&shape) {
            return Ok(program.clone());
        }
        let program = compile_exec_filter(shape).map_err(SpawnError::Seccomp)?;
        filters.insert(shape, program.clone());
        Ok(program)
    }

    /// The limits of a child spawned with `options`: its rlimit baseline narrowed by its
    /// profile's limits, for this broker's cgroups and CPUs.
    fn limits_for(&self, options: &SpawnOptions) -> ChildLimits {
        child_limits(
            options.rlimits.as_deref().unwrap_or(&self.config.rlimits),
            &options
                .profile
                .as_ref()
                .map(|p| p.limits)
                .unwrap_or_default(),
            self.memory_cgroup,
            self.cpus,
        )
    }

    /// Puts child `id` (`pid` in our PID namespace) into a new cgroup of its own with `limits`,
    /// kept in its end slot until it is reaped. Nothing to do without cgroups.
    fn join_cgroup(
        &self,
        id: u64,
        pid: u32,
        end: &EndSlot,
        limits: &CgroupLimits,
    ) -> Result<(), CgroupError> {
        let Some(cgroups) = lock(&self.cgroups).clone() else {
            return Ok(());
        };
        let group = cgroups.create(id, limits)?;
        let pid = i32::try_from(pid).unwrap_or(-1);
        if let Err(e) = group.attach(pid) {
            let _ = group.remove();
            return Err(e);
        }
        // Reaped meanwhile (its end went out without this group): nothing will remove it later.
        if let Some(group) = end.keep_cgroup(group) {
            remove_child_cgroup(group);
        }
        Ok(())
    }

    /// Takes a pre-forked child that is still alive (asking the zygote to replace each dead one
    /// on the way). The caller asks for the claimed one's replacement with [`Shared::replace`]
    /// once it has sent the start message: the zygote's wake-up then never runs before the
    /// child's start on a busy CPU.
    fn claim_pooled(&self, program: bool) -> Option<Forked> {
        let pool = if program {
            &self.program_pool
        } else {
            &self.pool
        };
        loop {
            let forked = lock(pool).pop_front()?;
            if !forked.end.is_set() && !matches!(forked.reported, Report::Failed) {
                return Some(forked);
            }
            self.replace(forked.id);
        }
    }

    /// Asks the zygote to fork a replacement for pooled child `id`, which left the pool.
    fn replace(&self, id: u64) {
        let _ = self.send_to_zygote(&ToZygote::Claimed { id }, &[]);
    }

    /// Asks the zygote to fork a child with `options` now.
    fn fork_on_request(
        &self,
        rlimits: &[Rlimit],
        keep_stderr: bool,
        exec: Option<(SeccompProgram, Option<ProgramRoot>)>,
        deadline: Instant,
    ) -> Result<Forked, SpawnError> {
        let (exec, root) = match exec {
            Some((filter, root)) => (Some(filter), root),
            None => (None, None),
        };
        let (channel, child_end) =
            Channel::pair(self.config.channel_limits).map_err(SpawnError::Channel)?;
        let (service, child_service) =
            Channel::pair(self.config.channel_limits).map_err(SpawnError::Channel)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = bounded(1);
        let end = Arc::new(EndSlot::default());
        lock(&self.pending).insert(id, reply_tx);
        lock(&self.ends).insert(id, Arc::clone(&end));
        let request = ToZygote::Spawn {
            id,
            rlimits: rlimits.to_vec(),
            keep_stderr,
            exec,
            root,
        };
        let forget = || {
            lock(&self.pending).remove(&id);
            lock(&self.ends).remove(&id);
        };
        if self
            .send_to_zygote(&request, &[child_end.as_fd(), child_service.as_fd()])
            .is_err()
        {
            forget();
            return Err(SpawnError::ZygoteGone);
        }
        drop((child_end, child_service));
        match reply_rx.recv_deadline(deadline) {
            Ok(SpawnReply::Spawned { pid }) => Ok(Forked {
                id,
                pid,
                channel,
                service,
                end,
                reported: Report::Unread,
            }),
            Ok(SpawnReply::Failed(failure)) => {
                forget();
                Err(match failure {
                    SpawnFailure::BadRequest => SpawnError::ZygoteGone,
                    SpawnFailure::Step { step, errno } => {
                        SpawnError::Lockdown(LockdownError { step, errno })
                    }
                })
            }
            Err(RecvTimeoutError::Timeout) => {
                forget();
                Err(SpawnError::TimedOut {
                    timeout: self.config.spawn_timeout,
                })
            }
            Err(RecvTimeoutError::Disconnected) => {
                forget();
                Err(SpawnError::ZygoteGone)
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.shared.shutting_down.store(true, Ordering::Release);
        // Closing our end of the control channel tells the zygote to kill every child and exit.
        let _ = rustix_shutdown(&self.shared.control);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn rustix_shutdown(channel: &Channel) -> std::io::Result<()> {
    nix::sys::socket::shutdown(
        channel.as_fd().as_raw_fd(),
        nix::sys::socket::Shutdown::Both,
    )
    .map_err(std::io::Error::from)
}

/// The zygote thread: start the zygote, do its handshake, then route its messages until it exits.
fn zygote_thread(
    shared: Arc<Shared>,
    zygote_end: Channel,
    init: Receiver<ZygoteInit>,
    started: Sender<Result<u32, StartError>>,
) {
    // The lease of host ids lives as long as the zygote, whose children use them.
    let (mut process, _lease) = match start_zygote_process(&shared, zygote_end, &init) {
        Ok((process, pid, lease)) => {
            let _ = started.send(Ok(pid));
            (process, lease)
        }
        Err((process, e)) => {
            shared.zygote_alive.store(false, Ordering::Release);
            let _ = started.send(Err(e));
            if let Some(mut p) = process {
                let _ = p.kill();
                let _ = p.wait();
            }
            return;
        }
    };
    drop(started);
    // Removing a group may wait for the kernel (rmdir retries while it answers EBUSY): never on
    // this thread, which routes every spawn and end.
    let janitor = CgroupJanitor::start(&shared);
    loop {
        match shared.control.recv::<FromZygote>(None) {
            Ok((FromZygote::Spawned { id, pid }, _)) => {
                if let Some(tx) = lock(&shared.pending).remove(&id) {
                    let _ = tx.send(SpawnReply::Spawned { pid });
                }
            }
            Ok((FromZygote::SpawnFailed { id, failure }, _)) => {
                if let Some(tx) = lock(&shared.pending).remove(&id) {
                    let _ = tx.send(SpawnReply::Failed(failure));
                }
            }
            Ok((FromZygote::Pooled { id, pid }, mut fds)) if fds.len() == 2 => {
                let limits = shared.config.channel_limits;
                let service = Channel::from_fd(fds.remove(1), limits);
                let channel = Channel::from_fd(fds.remove(0), limits);
                let end = Arc::new(EndSlot::default());
                lock(&shared.ends).insert(id, Arc::clone(&end));
                // A pooled child waits, locked down, for its start message. It joins its
                // cgroup (default limits; a claim narrows them) on the cgroup thread, then
                // enters the pool: a v1 attach can wait for an RCU grace period, which must
                // not hold up this thread's routing of spawns and ends.
                janitor.pool(Forked {
                    id,
                    pid,
                    channel,
                    service,
                    end,
                    reported: Report::Unread,
                });
            }
            Ok((FromZygote::Ended { id, status, cpu_us }, _)) => {
                if let Some(end) = lock(&shared.ends).remove(&id) {
                    // Its counters first (they say why it ended), then the end, then the
                    // group's removal, which no waiter needs to wait for.
                    // Under the group's lock, so a group joined concurrently is either taken
                    // here or sees the end set and removes itself (`EndSlot::keep_cgroup`).
                    let mut slot = lock(&end.cgroup);
                    let cgroup = slot.take();
                    // A clean exit (status 0) is an exit whatever the counters say (`classify`
                    // reads them only for a kill or a failure): no files to read on the way to
                    // its waiter.
                    let clean_exit = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
                    let counters = cgroup.as_ref().filter(|_| !clean_exit);
                    let events = counters.and_then(|c| match c.events() {
                        Ok(events) => Some(events),
                        Err(e) => {
                            tracing::warn!(child = id, error = %e, "reading cgroup counters failed");
                            None
                        }
                    });
                    end.set(Some(Exit {
                        status,
                        cpu_us,
                        events,
                    }));
                    drop(slot);
                    if let Some(cgroup) = cgroup {
                        janitor.remove(cgroup);
                    }
                }
            }
            Ok((other, _)) => tracing::warn!(?other, "unexpected zygote message"),
            Err(_) => break,
        }
    }
    shared.zygote_alive.store(false, Ordering::Release);
    // Cgroup work still queued finishes first (a pooled child it would add is dead by now: its
    // join fails, or the pool is cleared below).
    janitor.finish();
    // Every waiter sees its sender dropped: spawns fail, ends become ZygoteLost/BrokerShutdown.
    lock(&shared.pending).clear();
    for (_, end) in lock(&shared.ends).drain() {
        end.set(None);
    }
    lock(&shared.pool).clear();
    lock(&shared.program_pool).clear();
    let _ = process.kill();
    let _ = process.wait();
    // Every child died with the zygote: take the broker's cgroups away, with any child group
    // left in them.
    let cgroups = lock(&shared.cgroups).take();
    if let Some(cgroups) = cgroups.and_then(|c| Arc::try_unwrap(c).ok()) {
        if let Err(e) = cgroups.remove() {
            tracing::warn!(error = %e, "removing the broker's cgroups failed");
        }
    }
}

/// Work on children's cgroups that may wait for the kernel, on a thread of its own
/// ("portcullis-cgroups"): joining pooled children to their groups, and removing the groups of
/// reaped ones (an rmdir retries while the kernel answers EBUSY).
enum CgroupJob {
    /// Join this pooled child to a group with default limits, then put it in the pool.
    Pool(Box<Forked>),
    /// Remove a reaped child's group.
    Remove(ChildCgroup),
}

struct CgroupJanitor {
    jobs: Option<Sender<CgroupJob>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl CgroupJanitor {
    fn start(shared: &Arc<Shared>) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<CgroupJob>();
        let thread_shared = Arc::clone(shared);
        let thread = std::thread::Builder::new()
            .name("portcullis-cgroups".into())
            .spawn(move || {
                for job in rx {
                    thread_shared.do_cgroup_job(job);
                }
            });
        let (jobs, thread) = match thread {
            Ok(thread) => (Some(tx), Some(thread)),
            // No thread: do the work on the caller's thread instead (slower, still correct).
            Err(e) => {
                tracing::warn!(error = %e, "no cgroup thread; doing cgroup work inline");
                (None, None)
            }
        };
        Self {
            jobs,
            thread,
            shared: Arc::clone(shared),
        }
    }

    fn submit(&self, job: CgroupJob) {
        let job = match &self.jobs {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(crossbeam_channel::SendError(job)) => job,
            },
            None => job,
        };
        self.shared.do_cgroup_job(job);
    }

    fn pool(&self, forked: Forked) {
        self.submit(CgroupJob::Pool(Box::new(forked)));
    }

    fn remove(&self, group: ChildCgroup) {
        self.submit(CgroupJob::Remove(group));
    }

    /// Waits until every job handed over is done.
    fn finish(mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn do_cgroup_job(&self, job: CgroupJob) {
        match job {
            CgroupJob::Remove(group) => remove_child_cgroup(group),
            CgroupJob::Pool(mut forked) => {
                let joined =
                    self.join_cgroup(forked.id, forked.pid, &forked.end, &self.pool_cgroup_limits);
                if let Err(e) = joined {
                    tracing::warn!(child = forked.id, error = %e, "pooled child's cgroup failed; killing it");
                    self.kill(forked.id);
                    return;
                }
                forked.reported = match self.read_pooled_report(&forked) {
                    Ok(reported) => Report::Read(reported),
                    Err(e) => {
                        tracing::warn!(child = forked.id, error = %e, "pooled child's lockdown report failed; killing it");
                        self.kill(forked.id);
                        Report::Failed
                    }
                };
                // A child that died meanwhile is skipped when claimed (`claim_pooled`).
                let pool = if forked.id & crate::zygote::PROGRAM_POOL_ID_BIT != 0 {
                    &self.program_pool
                } else {
                    &self.pool
                };
                lock(pool).push_back(*forked);
            }
        }
    }
}

impl Shared {
    /// Reads a pooled child's lockdown report and takes its listener, off any spawn's path (on
    /// the cgroup thread, which pools it): a claim then only sends the start message. It is
    /// the same report a spawn reads from a child forked on request, and the same checks; a
    /// pooled child has run no code but the application's own, so waiting here for its lockdown
    /// to finish (at most the spawn timeout) is safe.
    fn read_pooled_report(&self, forked: &Forked) -> Result<LockedDown, SpawnError> {
        let timeout = self.config.spawn_timeout;
        let (listener, landlock) =
            read_lockdown_report(&forked.channel, Instant::now() + timeout, timeout)?;
        let listener = take_listener(forked.pid, listener, &forked.channel)
            .map_err(SpawnError::TakeListener)?;
        Ok(LockedDown { listener, landlock })
    }
}

/// A child's first message, which must be its lockdown report without fds: the number of the
/// fd at which it holds its seccomp listener, and how it applied Landlock. Any other first
/// message is a handshake violation; a report of a failed step is that step's error; a child
/// gone before it reported is `Handshake(Closed)`. No side effect: each caller decides what an
/// error does to the child. The report's variants carry no message of the child's own type, so
/// `()` reads it for any child.
fn read_lockdown_report(
    channel: &Channel,
    deadline: Instant,
    spawn_timeout: Duration,
) -> Result<(i32, Option<LandlockStatus>), SpawnError> {
    match channel.recv::<ChildToBroker<()>>(Some(deadline)) {
        Ok((ChildToBroker::LockedDown { listener, landlock }, fds)) if fds.is_empty() => {
            Ok((listener, landlock))
        }
        Ok((ChildToBroker::LockdownFailed { step, errno }, _)) => {
            Err(SpawnError::Lockdown(LockdownError { step, errno }))
        }
        Ok(_) => Err(SpawnError::Handshake(RecvError::Violation(
            ProtocolViolation::Decode {
                reason: "first message is not a lockdown report without fds".into(),
            },
        ))),
        Err(RecvError::TimedOut) => Err(SpawnError::TimedOut {
            timeout: spawn_timeout,
        }),
        Err(e) => Err(SpawnError::Handshake(e)),
    }
}

/// Takes a copy of the seccomp listener that child `pid` holds at fd `fd`: a pidfd for the
/// child, then `pidfd_getfd`. The pid names the child only while it lives (a reaped child's pid
/// may be reused): its channel's other end is held by the child alone, so a channel that has not
/// hung up *after* the pidfd was opened proves the pidfd is the child's. What comes back must be
/// a seccomp notification fd; a child naming any other fd is refused.
fn take_listener(pid: u32, fd: i32, channel: &Channel) -> Result<OwnedFd, std::io::Error> {
    use std::io::{Error, ErrorKind};
    let pid = libc::pid_t::try_from(pid).map_err(|_| Error::from_raw_os_error(libc::ESRCH))?;
    let pidfd = crate::sys::process::pidfd_open(pid)?;
    if channel.peer_hung_up()? {
        return Err(Error::from_raw_os_error(libc::ESRCH));
    }
    let listener = crate::sys::process::pidfd_getfd(pidfd.as_fd(), fd)?;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd()))?;
    if link.as_os_str() != "anon_inode:seccomp notify" {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!(
                "the child's fd {fd} is {}, not a seccomp listener",
                link.display()
            ),
        ));
    }
    Ok(listener)
}

fn remove_child_cgroup(group: ChildCgroup) {
    let id = group.id();
    if let Err(e) = group.remove() {
        tracing::warn!(child = id, error = %e, "removing a child's cgroup failed");
    }
}

/// Opens this broker's cgroup instance directories as `setting` says, and sweeps those of
/// brokers that died without removing theirs. `None` (logged) means rlimits only.
fn open_cgroups(setting: &CgroupSetting) -> Option<Cgroups> {
    let layout = match setting {
        CgroupSetting::Off => {
            tracing::info!("cgroups off: limits are enforced by rlimits only");
            return None;
        }
        CgroupSetting::Auto => cgroup::detect_host(),
        CgroupSetting::At(layout) => layout.clone(),
    };
    let floor = "limits are enforced by rlimits only: memory as address space (RLIMIT_AS), no \
                 task limit, no CPU share";
    if let cgroup::Layout::None { reason } = &layout {
        tracing::warn!(%reason, "no usable cgroup; {floor}");
        return None;
    }
    let proc_root = std::path::Path::new("/proc");
    let opened =
        cgroup::own_instance_name(proc_root).and_then(|instance| Cgroups::open(layout, &instance));
    let cgroups = match opened {
        Ok(cgroups) => cgroups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot make this broker's cgroups; {floor}");
            return None;
        }
    };
    let report = cgroups.sweep_stale(
        |pid, starttime| cgroup::broker_is_alive(proc_root, pid, starttime),
        |pid| crate::sys::namespaces::kill(pid, libc::SIGKILL),
    );
    if !report.removed.is_empty() || !report.failed.is_empty() {
        tracing::info!(
            removed = ?report.removed,
            killed = ?report.killed,
            failed = report.failed.len(),
            "swept the cgroups of brokers that are gone"
        );
    }
    Some(cgroups)
}

type ZygoteStartFailure = (Option<std::process::Child>, StartError);

fn start_zygote_process(
    shared: &Shared,
    zygote_end: Channel,
    init: &Receiver<ZygoteInit>,
) -> Result<(std::process::Child, u32, Option<IdLease>), ZygoteStartFailure> {
    let broker_pid = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    let control_fd = zygote_end.as_fd().as_raw_fd();
    let as_root = nix::unistd::geteuid().is_root();
    let lease = as_root.then(|| crate::namespaces::lease_host_ids(shared.config.sandbox_host_id));
    let (host_id, host_gid, ids) = if let Some(lease) = &lease {
        (lease.first, lease.first, mapped_child_ids(&shared.config))
    } else {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
            1,
        )
    };
    // The zygote is executed as the sandbox's host id (see `zygote_pre_exec`): a root broker's
    // binary that id may not execute is executed from a sealed copy instead.
    let copy = if as_root && !may_execute("/proc/self/exe", host_id, host_gid) {
        Some(
            crate::sys::process::sealed_copy_of_own_executable()
                .map_err(|e| (None, StartError::SpawnZygote(e)))?,
        )
    } else {
        None
    };
    let executable = copy.as_ref().map_or_else(
        || "/proc/self/exe".to_owned(),
        |fd| format!("/proc/self/fd/{}", fd.as_raw_fd()),
    );
    let mut command = Command::new(executable);
    command
        .arg0("portcullis-zygote")
        .env_clear()
        .env(zygote::ZYGOTE_ENV, zygote::ZYGOTE_CONTROL_FD.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| (None, StartError::SpawnZygote(std::io::Error::from(e))))
    };
    let (report_read, report_write) = pipe()?;
    let (go_read, go_write) = pipe()?;
    let maps = crate::sys::process::IdMapHandshake {
        report: report_write.as_raw_fd(),
        go: go_read.as_raw_fd(),
    };
    // SAFETY: the hook runs between fork and exec in the new child and only calls
    // async-signal-safe functions (see `zygote_pre_exec`); it allocates nothing and takes no
    // lock.
    unsafe {
        command.pre_exec(move || {
            crate::sys::process::zygote_pre_exec(
                (control_fd, zygote::ZYGOTE_CONTROL_FD),
                broker_pid,
                as_root,
                zygote::SHARED_NAMESPACES,
                maps,
            )
        });
    }
    // The new process enters its namespaces before its exec and waits there for its id maps,
    // while `spawn` waits for the exec: another thread writes them.
    let (spawned, mapped) = std::thread::scope(|scope| {
        let mapper = scope.spawn(move || {
            let mapped = read_new_pid(&report_read)
                .map_err(|source| IdMapError {
                    path: "the zygote's pid".into(),
                    source,
                })
                .and_then(|pid| write_id_maps(pid, host_id, host_gid, ids));
            let answer = [u8::from(mapped.is_ok())];
            let _ = nix::unistd::write(&go_write, &answer);
            mapped
        });
        let spawned = command.spawn();
        // Our copy closed: a process that died before reporting its pid leaves the mapper EOF.
        drop(report_write);
        drop(go_read);
        let mapped = mapper.join().unwrap_or_else(|_| {
            Err(IdMapError {
                path: "the zygote's id maps".into(),
                source: std::io::Error::other("the mapping thread panicked"),
            })
        });
        (spawned, mapped)
    });
    let process = spawned.map_err(|e| {
        use crate::sys::process::{decode_pre_exec_error, PreExecStep};
        let step = |step, errno| StartError::Step(LockdownError { step, errno });
        let error = match (decode_pre_exec_error(&e), mapped) {
            // The maps failed: the broker's own error says why.
            (Some((PreExecStep::IdMaps, _)), Err(e)) => StartError::IdMaps(e),
            (Some((PreExecStep::IdMaps, errno)), Ok(())) => step(LockdownStep::IdMaps, errno),
            (Some((PreExecStep::DropSupplementaryGroups, errno)), _) => {
                step(LockdownStep::DropSupplementaryGroups, errno)
            }
            (Some((PreExecStep::EnterNamespaces, errno)), _) => {
                step(LockdownStep::EnterNamespaces, errno)
            }
            (Some((PreExecStep::SetIds, errno)), _) => step(LockdownStep::SetIds, errno),
            (None, _) => StartError::SpawnZygote(e),
        };
        (None, error)
    })?;
    drop(zygote_end);
    // It runs inside its namespaces now, as their root (spawn returned once the exec succeeded).
    let pid = process.id();
    let fail = |process, e| Err((Some(process), e));
    let deadline = || Some(Instant::now() + Duration::from_secs(30));
    // Compiled meanwhile by `Broker::start`; gone if that failed.
    let Ok(init) = init.recv() else {
        return fail(
            process,
            StartError::Handshake {
                what: "configuration compiled",
            },
        );
    };
    if shared.send_to_zygote(&ToZygote::Init(init), &[]).is_err() {
        return fail(
            process,
            StartError::Handshake {
                what: "configuration sent",
            },
        );
    }
    match shared.control.recv::<FromZygote>(deadline()) {
        Ok((FromZygote::Ready, _)) => Ok((process, pid, lease)),
        Ok((FromZygote::StartFailed { step, errno }, _)) => {
            fail(process, StartError::Step(LockdownError { step, errno }))
        }
        _ => fail(
            process,
            StartError::Handshake {
                what: "zygote ready",
            },
        ),
    }
}

/// How many ids a root broker maps: `sandbox_host_ids`, within its leased block.
fn mapped_child_ids(config: &BrokerConfig) -> u32 {
    config
        .sandbox_host_ids
        .clamp(1, crate::namespaces::ID_BLOCK)
}

/// Whether `uid`/`gid` (no supplementary groups, no capability over the file) may execute the
/// file at `path`, by its mode bits.
fn may_execute(path: &str, uid: u32, gid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).is_ok_and(|meta| {
        let mode = meta.mode();
        if meta.uid() == uid {
            mode & 0o100 != 0
        } else if meta.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    })
}

/// Reads the pid a starting zygote reports from its pre-exec hook (4 bytes, native order),
/// waiting at most 30 s. EOF means it ended before reporting.
fn read_new_pid(report: &OwnedFd) -> std::io::Result<u32> {
    let mut fds = [nix::poll::PollFd::new(
        report.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(30_000u16)) {
        Ok(1) => {}
        Ok(_) => return Err(std::io::Error::from_raw_os_error(libc::ETIMEDOUT)),
        Err(e) => return Err(e.into()),
    }
    let mut pid = [0u8; 4];
    let n = nix::unistd::read(report, &mut pid)?;
    if n != pid.len() {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    u32::try_from(i32::from_ne_bytes(pid))
        .ok()
        .filter(|&pid| pid > 0)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// Seccomp violations kept per child; later ones are only counted.
pub const MAX_KEPT_VIOLATIONS: usize = 32;

#[derive(Default)]
struct ChildState {
    violation: Option<ProtocolViolation>,
    panic_message: Option<String>,
    killed_by_broker: bool,
    /// The violation the child was killed for (`Kill` mode).
    fatal_violation: Option<Violation>,
    /// The first [`MAX_KEPT_VIOLATIONS`] violations.
    violations: Vec<Violation>,
    /// Every violation, kept or not.
    violations_seen: u64,
    /// The wall-clock deadline passed and the broker killed the child.
    wall_timeout: bool,
    /// The CPU-time limit, if any.
    cpu_limit_us: Option<u64>,
    end: Option<ChildEnd>,
    /// How Landlock was applied (exec mode with a program root), as the child reported it.
    landlock: Option<LandlockStatus>,
}

impl ChildState {
    fn record(&mut self, event: &Event) {
        match event {
            Event::Violation(v) => {
                self.violations_seen += 1;
                if self.violations.len() < MAX_KEPT_VIOLATIONS {
                    self.violations.push(v.clone());
                }
                if v.mode == OnViolation::Kill && self.fatal_violation.is_none() {
                    self.fatal_violation = Some(v.clone());
                    self.killed_by_broker = true;
                }
            }
            Event::WallTimeout => {
                self.wall_timeout = true;
                self.killed_by_broker = true;
            }
            Event::SupervisionLost => self.killed_by_broker = true,
        }
    }
}

/// What the zygote reported of a reaped child.
#[derive(Debug, Clone, Copy)]
struct Exit {
    /// Raw wait status.
    status: i32,
    /// CPU time used, all threads.
    cpu_us: u64,
    /// Its cgroup's counters, read after it was reaped (`None` without a cgroup).
    events: Option<CgroupEvents>,
}

/// Where the zygote thread leaves a child's end: `Some(Some(exit))` once reaped,
/// `Some(None)` when the zygote is gone. Any number of threads may wait on it.
#[derive(Default)]
pub(crate) struct EndSlot {
    value: Mutex<Option<Option<Exit>>>,
    ended: Condvar,
    /// The child's cgroup until it is reaped.
    cgroup: Mutex<Option<ChildCgroup>>,
}

impl EndSlot {
    fn set(&self, status: Option<Exit>) {
        let mut value = lock(&self.value);
        if value.is_none() {
            *value = Some(status);
        }
        self.ended.notify_all();
    }

    fn is_set(&self) -> bool {
        lock(&self.value).is_some()
    }

    /// Keeps the child's cgroup until it is reaped. Gives it back when the child was reaped
    /// already (its end went out without it), for the caller to remove. Lock order: the group's
    /// lock, then the value's — as the reader thread takes them when the child is reaped.
    fn keep_cgroup(&self, group: ChildCgroup) -> Option<ChildCgroup> {
        let mut slot = lock(&self.cgroup);
        if self.is_set() {
            return Some(group);
        }
        *slot = Some(group);
        None
    }

    /// Waits until set (or the deadline passes: `None`).
    fn wait(&self, deadline: Option<Instant>) -> Option<Option<Exit>> {
        let mut value = lock(&self.value);
        loop {
            if let Some(status) = *value {
                return Some(status);
            }
            value = match deadline {
                None => self
                    .ended
                    .wait(value)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.checked_duration_since(Instant::now())?;
                    self.ended
                        .wait_timeout(value, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

/// How often a blocked receive looks whether the child has ended meanwhile (a child can keep
/// its own end of the channel open by sending it to us, so EOF alone is not enough).
const END_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// A message the broker read while looking for something else (a panic report), kept for the
/// application's next receive.
type Pending<Up> = VecDeque<(Up, Vec<OwnedFd>)>;

/// A running sandboxed child: its typed channel (`Down` to it, `Up` from it) and its end.
///
/// Dropping the handle kills the child if it still runs.
pub struct Child<Down, Up> {
    id: u64,
    pid: u32,
    channel: Channel,
    end: Arc<EndSlot>,
    shared: Arc<Shared>,
    state: Arc<Mutex<ChildState>>,
    pending: Mutex<Pending<Up>>,
    send_timeout: Duration,
    _types: std::marker::PhantomData<fn(Down) -> Up>,
}

impl<Down, Up> std::fmt::Debug for Child<Down, Up> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("id", &self.id)
            .field("pid", &self.pid)
            .finish()
    }
}

impl<Down: Serialize, Up: DeserializeOwned> Child<Down, Up> {
    /// The broker's id for this child (unique per broker).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The child's pid in the broker's PID namespace (inside its own namespace it is 1).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the child's `LockedDown` report and returns the fd number at which the child
    /// holds its seccomp listener (and keeps how Landlock was applied, if it was).
    fn wait_for_locked_down(&self, deadline: Instant) -> Result<i32, SpawnError> {
        match read_lockdown_report(&self.channel, deadline, self.shared.config.spawn_timeout) {
            Ok((listener, landlock)) => {
                lock(&self.state).landlock = landlock;
                Ok(listener)
            }
            // The child reported its failing step and exits: its end is the one to wait for.
            Err(e @ SpawnError::Lockdown(_)) => {
                let _ = self.wait_timeout(Duration::from_secs(5));
                Err(e)
            }
            Err(SpawnError::Handshake(RecvError::Closed)) => Err(SpawnError::EndedDuringLockdown {
                end: self
                    .wait_timeout(Duration::from_secs(5))
                    .unwrap_or(ChildEnd::ZygoteLost),
            }),
            Err(e) => {
                self.kill();
                Err(e)
            }
        }
    }

    /// Exec mode with a program root: how the child applied Landlock before its program
    /// started, as it reported in its lockdown handshake (before any code of the program ran).
    /// `None` for a child without a program root.
    pub fn landlock(&self) -> Option<LandlockStatus> {
        lock(&self.state).landlock
    }

    /// Sends one message; fails rather than block past the broker's send timeout.
    pub fn send(&self, msg: &Down) -> Result<(), ChildError> {
        self.send_with_fds(msg, &[])
    }

    /// Sends one message with fds attached (SCM_RIGHTS).
    pub fn send_with_fds(&self, msg: &Down, fds: &[BorrowedFd<'_>]) -> Result<(), ChildError> {
        let deadline = Instant::now() + self.send_timeout;
        self.channel
            .send(&BrokerToChild::App(msg), fds, Some(deadline))?;
        Ok(())
    }

    /// Receives the child's next message, blocking until it arrives or the child ends.
    pub fn recv(&self) -> Result<Up, ChildError> {
        Ok(self.recv_until(None)?.0)
    }

    /// Receives the child's next message, or [`ChildError::TimedOut`] after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Up, ChildError> {
        Ok(self.recv_until(Some(Instant::now() + timeout))?.0)
    }

    /// Receives the child's next message with the fds it attached. Do not keep an fd of the
    /// child's own channel: that holds its end open after it died (receives still end when the
    /// child does).
    pub fn recv_with_fds(
        &self,
        timeout: Option<Duration>,
    ) -> Result<(Up, Vec<OwnedFd>), ChildError> {
        self.recv_until(timeout.map(|t| Instant::now() + t))
    }

    /// Sends `msg` and waits for the child's next message.
    pub fn request(&self, msg: &Down) -> Result<Up, ChildError> {
        self.send(msg)?;
        self.recv()
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<(Up, Vec<OwnedFd>), ChildError> {
        if let Some(message) = lock(&self.pending).pop_front() {
            return Ok(message);
        }
        loop {
            // Wait in slices, so a child that ended while something keeps its socket open (an
            // fd of it in flight) cannot hold this receive forever.
            let slice = Instant::now() + END_CHECK_INTERVAL;
            let until = deadline.map_or(slice, |d| d.min(slice));
            match self.channel.recv::<ChildToBroker<Up>>(Some(until)) {
                Ok((ChildToBroker::App(msg), fds)) => return Ok((msg, fds)),
                Ok((ChildToBroker::Panicked { message }, _)) => self.note_panic(&message),
                Ok((
                    ChildToBroker::LockedDown { .. } | ChildToBroker::LockdownFailed { .. },
                    _,
                )) => {
                    return Err(self.violation(ProtocolViolation::Decode {
                        reason: "lockdown report after start".into(),
                    }))
                }
                Err(RecvError::Violation(v)) => return Err(self.violation(v)),
                Err(RecvError::Closed) => return Err(ChildError::Closed),
                Err(RecvError::TimedOut) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(ChildError::TimedOut);
                    }
                    if self.end.is_set() {
                        return Err(ChildError::Closed);
                    }
                }
                Err(RecvError::Io(e)) => return Err(ChildError::Io(e)),
                // The child attached fds this process had no room for: that message is gone,
                // the channel is in step.
                Err(RecvError::FdsDropped) => {
                    return Err(ChildError::Io(std::io::Error::from_raw_os_error(
                        libc::EMFILE,
                    )))
                }
            }
        }
    }

    fn note_panic(&self, message: &str) {
        let mut cut = message.len().min(MAX_PANIC_MESSAGE_BYTES);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        // A copy of the bounded part only: the child's message may be megabytes.
        lock(&self.state).panic_message = Some(message[..cut].to_owned());
    }

    /// Records a protocol violation, kills the child and logs it.
    fn violation(&self, violation: ProtocolViolation) -> ChildError {
        tracing::warn!(child = self.id, pid = self.pid, %violation, "protocol violation; killing child");
        lock(&self.state)
            .violation
            .get_or_insert_with(|| violation.clone());
        self.kill();
        ChildError::ProtocolViolation(violation)
    }

    /// The seccomp violations the kernel reported for this child so far (the first
    /// `MAX_KEPT_VIOLATIONS`), and how many there were in all. In `Deny` mode the child goes on
    /// after each; in `Kill` mode the first one ends it.
    pub fn violations(&self) -> (Vec<Violation>, u64) {
        let state = lock(&self.state);
        (state.violations.clone(), state.violations_seen)
    }

    /// Asks the zygote to SIGKILL the child (race-free: the zygote has not reaped it yet, so the
    /// pid cannot have been reused). Idempotent.
    pub fn kill(&self) {
        lock(&self.state).killed_by_broker = true;
        self.shared.kill(self.id);
    }

    /// Waits for the child to end and says how. Idempotent; any number of threads may wait.
    pub fn wait(&self) -> ChildEnd {
        self.wait_deadline(None).unwrap_or(ChildEnd::ZygoteLost)
    }

    /// Waits up to `timeout` for the child to end.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ChildEnd> {
        self.wait_deadline(Some(Instant::now() + timeout))
    }

    fn wait_deadline(&self, deadline: Option<Instant>) -> Option<ChildEnd> {
        if let Some(end) = lock(&self.state).end.clone() {
            return Some(end);
        }
        let status = self.end.wait(deadline)?;
        // A panicking child sends its message just before it crashes: collect it if unread.
        self.drain_unread();
        let mut state = lock(&self.state);
        if let Some(end) = state.end.clone() {
            return Some(end);
        }
        let end = classify(
            status,
            &state,
            self.shared.shutting_down.load(Ordering::Acquire),
        );
        state.end = Some(end.clone());
        Some(end)
    }

    /// Reads what the dead child left in its channel: keeps application messages for the next
    /// receive and notes a panic report.
    fn drain_unread(&self) {
        for _ in 0..64 {
            match self.channel.recv::<ChildToBroker<Up>>(Some(Instant::now())) {
                Ok((ChildToBroker::Panicked { message }, _)) => self.note_panic(&message),
                Ok((ChildToBroker::App(msg), fds)) => lock(&self.pending).push_back((msg, fds)),
                Ok(_) | Err(_) => break,
            }
        }
    }
}

/// Says how a child ended, from the kernel's wait status and accounting (through the zygote)
/// and what the broker itself saw and did. The order matters: what the broker did or the kernel
/// reported outside the child wins over the bare signal.
fn classify(exit: Option<Exit>, state: &ChildState, shutting_down: bool) -> ChildEnd {
    let Some(Exit {
        status,
        cpu_us,
        events,
    }) = exit
    else {
        return if shutting_down {
            ChildEnd::BrokerShutdown
        } else {
            ChildEnd::ZygoteLost
        };
    };
    if let Some(violation) = &state.violation {
        return ChildEnd::ProtocolViolation {
            violation: violation.clone(),
        };
    }
    let signal = libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status));
    if let Some(violation) = &state.fatal_violation {
        return ChildEnd::SeccompViolation {
            violation: Some(violation.clone()),
        };
    }
    if signal == Some(libc::SIGSYS) {
        return ChildEnd::SeccompViolation { violation: None };
    }
    if state.wall_timeout {
        return ChildEnd::WallTimeout;
    }
    if signal == Some(libc::SIGKILL) && state.killed_by_broker {
        return ChildEnd::Killed;
    }
    let events = events.unwrap_or_default();
    // The kernel's own count, not a guess from the signal.
    if events.oom_kills > 0 && signal == Some(libc::SIGKILL) {
        return ChildEnd::OutOfMemory;
    }
    if let Some(limit) = state.cpu_limit_us {
        // RLIMIT_CPU: SIGKILL at the hard limit (soft = hard), SIGXCPU if the soft one is lower.
        // The kernel checks the limit against tick-sampled user + system time, while wait4
        // reports the scheduler's exact runtime; on a loaded machine the ticks over-charge a
        // spinning task, and a child killed at its 1 s limit was seen to report less than 900
        // ms. So half the limit is enough to tell a CPU-limit kill from an early one. Nothing
        // else SIGKILLs a child behind the broker's back: as PID 1 of its namespace it cannot
        // signal itself, the broker's and the zygote's kills are flagged above, and an OOM kill
        // is told apart by its cgroup first.
        if matches!(signal, Some(libc::SIGKILL | libc::SIGXCPU)) && cpu_us >= limit / 2 {
            return ChildEnd::CpuLimit {
                used_ms: cpu_us / 1000,
            };
        }
    }
    // A refused fork/clone, then a failure (a panic on the failed thread spawn, an error exit).
    let clean_exit = signal.is_none() && libc::WEXITSTATUS(status) == 0;
    if events.pids_max_hits > 0 && !clean_exit {
        return ChildEnd::ProcessLimit;
    }
    match signal {
        None => ChildEnd::Exited {
            code: libc::WEXITSTATUS(status),
        },
        Some(libc::SIGKILL) if shutting_down => ChildEnd::BrokerShutdown,
        Some(signal) => ChildEnd::Crashed {
            signal,
            panic_message: state.panic_message.clone(),
        },
    }
}

impl<Down, Up> Drop for Child<Down, Up> {
    fn drop(&mut self) {
        let ended = lock(&self.state).end.is_some() || self.end.is_set();
        if !ended {
            lock(&self.state).killed_by_broker = true;
            self.shared.kill(self.id);
        }
        lock(&self.shared.ends).remove(&self.id);
        self.shared.service.deregister(self.id);
        self.shared.supervisor.forget(self.id, ended);
    }
}
