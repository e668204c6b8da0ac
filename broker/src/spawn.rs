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

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use portcullis_child::protocol::{
    BrokerToChild, ChildToBroker, StartChild, MAX_PANIC_MESSAGE_BYTES,
};
use portcullis_child::{Entries, LockdownError, LockdownStep, Rlimit, RlimitResource};
use portcullis_ipc::{Channel, ChannelLimits, ProtocolViolation, RecvError, SendError};
use portcullis_policy::Profile;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::audit::AuditSink;
use crate::namespaces::{write_id_maps, IdMapError};
use crate::seccomp::{compile_child_filter, SeccompCompileError};
use crate::serve::{Registration, Service, ServiceConfig};
use crate::zygote::{self, FromZygote, SpawnFailure, ToZygote, ZygoteInit};

/// Host uid/gid a root broker maps a sandbox's root to: an id no host account or file uses, so
/// no host process (not even one running as `nobody`) shares it and may signal the zygote or a
/// child. Never host root. Below 2^31 for tools that treat ids as signed.
pub const DEFAULT_SANDBOX_HOST_ID: u32 = 2_147_000_000;

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
    /// Where the audit records of brokered requests go.
    pub audit: AuditSink,
    /// When the broker runs as root: the unprivileged host uid/gid that sandbox root maps to.
    /// An unprivileged broker always maps its own ids.
    pub sandbox_host_id: u32,
    /// Threads that read every child's service requests, decide them and perform file
    /// operations (at least 1).
    pub service_workers: usize,
    /// Threads that perform allowed connects and fetches (name lookup, connection, HTTP), so a
    /// slow one never holds a file worker (at least 1).
    pub network_workers: usize,
    /// Allowed network requests that may wait for a network worker; past that, a connect or
    /// fetch fails at once with `busy` (`io::ErrorKind::ResourceBusy` in the child). 0: a
    /// request starts only if a network worker is idle.
    pub network_queue: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            spawn_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(5),
            channel_limits: ChannelLimits::default(),
            rlimits: default_rlimits(),
            prefork: 2,
            audit: AuditSink::default(),
            sandbox_host_id: DEFAULT_SANDBOX_HOST_ID,
            service_workers: crate::serve::SERVICE_WORKERS,
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

/// Per-spawn options.
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    /// Replaces the broker's rlimit baseline for this child when set.
    pub rlimits: Option<Vec<Rlimit>>,
    /// Let the child keep the zygote's stderr (the broker's) instead of `/dev/null`. For
    /// debugging only: a child can then write to the broker's terminal.
    pub keep_stderr: bool,
    /// What the child may reach through the broker (files, network). `None` grants nothing:
    /// every request is denied `not-granted` and audited.
    pub profile: Option<Profile>,
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
    /// The child's first message was not a lockdown report; it was killed.
    #[error("child broke the lockdown handshake")]
    Handshake(#[source] RecvError),
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
    /// Killed by the kernel for a syscall outside its seccomp allowlist (SIGSYS). A child cannot
    /// fake this: as PID 1 of its namespace it cannot kill itself with a default-action signal.
    SeccompViolation,
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
    /// Serves every child's service channel.
    service: Arc<Service>,
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
        let entry_names = entries.names().map(str::to_owned).collect();
        drop(entries);
        let seccomp = compile_child_filter()?;
        // Best effort: a broker that cannot raise it still works, with fewer children.
        if let Err(e) = crate::sys::process::raise_open_files_limit() {
            tracing::warn!(error = %e, "could not raise the open-files limit");
        }
        let (control, zygote_end) =
            Channel::pair(ChannelLimits::default()).map_err(StartError::ControlChannel)?;
        let service = Service::start(ServiceConfig {
            audit: config.audit.clone(),
            send_timeout: config.send_timeout,
            file_workers: config.service_workers,
            network_workers: config.network_workers,
            network_queue: config.network_queue,
        })
        .map_err(StartError::Service)?;
        let shared = Arc::new(Shared {
            control,
            config,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            ends: Mutex::new(HashMap::new()),
            pool: Mutex::new(VecDeque::new()),
            service,
            zygote_alive: AtomicBool::new(true),
            shutting_down: AtomicBool::new(false),
        });
        let (started_tx, started_rx) = bounded::<Result<u32, StartError>>(1);
        let thread_shared = Arc::clone(&shared);
        let init = ZygoteInit {
            seccomp,
            channel_limits: (
                shared.config.channel_limits.max_message_bytes,
                shared.config.channel_limits.max_fds_per_message,
            ),
            pool_size: shared.config.prefork,
            default_rlimits: shared.config.rlimits.clone(),
        };
        let reader = std::thread::Builder::new()
            .name("portcullis-zygote".into())
            .spawn(move || zygote_thread(thread_shared, zygote_end, init, started_tx))
            .map_err(StartError::SpawnZygote)?;
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

    /// The zygote's pid.
    pub fn zygote_pid(&self) -> u32 {
        self.zygote_pid
    }

    /// How many pre-forked, locked-down children are waiting for a spawn right now (at most
    /// [`BrokerConfig::prefork`]; the broker holds one channel fd for each).
    pub fn pooled_children(&self) -> usize {
        lock(&self.shared.pool).len()
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
        let start = StartChild {
            entry: entry.to_owned(),
            args: postcard::to_allocvec(args).map_err(SpawnError::EncodeArgs)?,
        };
        let deadline = Instant::now() + shared.config.spawn_timeout;
        let poolable = options.rlimits.is_none() && !options.keep_stderr;
        if let Some(pooled) = poolable.then(|| shared.claim_pooled()).flatten() {
            match self.start_child(pooled, entry, &start, options, deadline) {
                Ok(child) => return Ok(child),
                // A pre-forked child may have died while it waited: fork one instead.
                Err(SpawnError::EndedDuringLockdown { .. } | SpawnError::Start(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let forked = shared.fork_on_request(options, deadline)?;
        self.start_child(forked, entry, &start, options, deadline)
    }

    /// Registers a forked child with the service, sends it its start message and waits for its
    /// lockdown report.
    fn start_child<Down, Up>(
        &self,
        forked: Forked,
        entry: &str,
        start: &StartChild,
        options: &SpawnOptions,
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
        } = forked;
        let state = Arc::new(Mutex::new(ChildState::default()));
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
        };
        if let Err(e) = shared.service.register(registration) {
            child.kill();
            return Err(SpawnError::Channel(e));
        }
        // The start message waits in the socket until the child, locked down, reads it; sending
        // it first saves a round trip for a child forked on request.
        let sent = child.channel.send(start, &[], Some(deadline));
        child.wait_for_locked_down(deadline)?;
        if let Err(e) = sent {
            child.kill();
            return Err(SpawnError::Start(e));
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
}

impl Shared {
    /// Takes a pre-forked child that is still alive, and asks the zygote for a replacement.
    fn claim_pooled(&self) -> Option<Forked> {
        loop {
            let forked = lock(&self.pool).pop_front()?;
            let _ = self.send_to_zygote(&ToZygote::Claimed { id: forked.id }, &[]);
            if !forked.end.is_set() {
                return Some(forked);
            }
        }
    }

    /// Asks the zygote to fork a child with `options` now.
    fn fork_on_request(
        &self,
        options: &SpawnOptions,
        deadline: Instant,
    ) -> Result<Forked, SpawnError> {
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
            rlimits: options
                .rlimits
                .clone()
                .unwrap_or_else(|| self.config.rlimits.clone()),
            keep_stderr: options.keep_stderr,
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
    init: ZygoteInit,
    started: Sender<Result<u32, StartError>>,
) {
    let mut process = match start_zygote_process(&shared, zygote_end, init) {
        Ok((process, pid)) => {
            let _ = started.send(Ok(pid));
            process
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
                lock(&shared.pool).push_back(Forked {
                    id,
                    pid,
                    channel,
                    service,
                    end,
                });
            }
            Ok((FromZygote::Ended { id, status }, _)) => {
                if let Some(end) = lock(&shared.ends).remove(&id) {
                    end.set(Some(status));
                }
            }
            Ok((other, _)) => tracing::warn!(?other, "unexpected zygote message"),
            Err(_) => break,
        }
    }
    shared.zygote_alive.store(false, Ordering::Release);
    // Every waiter sees its sender dropped: spawns fail, ends become ZygoteLost/BrokerShutdown.
    lock(&shared.pending).clear();
    for (_, end) in lock(&shared.ends).drain() {
        end.set(None);
    }
    lock(&shared.pool).clear();
    let _ = process.kill();
    let _ = process.wait();
}

type ZygoteStartFailure = (Option<std::process::Child>, StartError);

fn start_zygote_process(
    shared: &Shared,
    zygote_end: Channel,
    init: ZygoteInit,
) -> Result<(std::process::Child, u32), ZygoteStartFailure> {
    let broker_pid = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    let control_fd = zygote_end.as_fd().as_raw_fd();
    let mut command = Command::new("/proc/self/exe");
    command
        .arg0("portcullis-zygote")
        .env_clear()
        .env(zygote::ZYGOTE_ENV, zygote::ZYGOTE_CONTROL_FD.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: the hook runs between fork and exec in the new child and only calls
    // async-signal-safe functions (dup2, fcntl, prctl, getppid, _exit); it allocates nothing and
    // takes no lock.
    unsafe {
        command.pre_exec(move || {
            crate::sys::process::zygote_pre_exec(control_fd, zygote::ZYGOTE_CONTROL_FD, broker_pid)
        });
    }
    let process = command
        .spawn()
        .map_err(|e| (None, StartError::SpawnZygote(e)))?;
    drop(zygote_end);
    let pid = process.id();
    let fail = |process, e| Err((Some(process), e));
    let deadline = || Some(Instant::now() + Duration::from_secs(30));
    match shared.control.recv::<FromZygote>(deadline()) {
        Ok((FromZygote::Unshared, _)) => {}
        Ok((FromZygote::StartFailed { step, errno }, _)) => {
            return fail(process, StartError::Step(LockdownError { step, errno }))
        }
        _ => {
            return fail(
                process,
                StartError::Handshake {
                    what: "namespaces entered",
                },
            )
        }
    }
    let host_id = if nix::unistd::geteuid().is_root() {
        shared.config.sandbox_host_id
    } else {
        nix::unistd::geteuid().as_raw()
    };
    let host_gid = if nix::unistd::geteuid().is_root() {
        shared.config.sandbox_host_id
    } else {
        nix::unistd::getegid().as_raw()
    };
    if let Err(e) = write_id_maps(pid, host_id, host_gid) {
        return fail(process, StartError::IdMaps(e));
    }
    if shared.send_to_zygote(&ToZygote::Init(init), &[]).is_err() {
        return fail(
            process,
            StartError::Handshake {
                what: "configuration sent",
            },
        );
    }
    match shared.control.recv::<FromZygote>(deadline()) {
        Ok((FromZygote::Ready, _)) => Ok((process, pid)),
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

#[derive(Default)]
struct ChildState {
    violation: Option<ProtocolViolation>,
    panic_message: Option<String>,
    killed_by_broker: bool,
    end: Option<ChildEnd>,
}

/// Where the zygote thread leaves a child's end: `Some(Some(status))` once reaped,
/// `Some(None)` when the zygote is gone. Any number of threads may wait on it.
#[derive(Default)]
pub(crate) struct EndSlot {
    value: Mutex<Option<Option<i32>>>,
    ended: Condvar,
}

impl EndSlot {
    fn set(&self, status: Option<i32>) {
        let mut value = lock(&self.value);
        if value.is_none() {
            *value = Some(status);
        }
        self.ended.notify_all();
    }

    fn is_set(&self) -> bool {
        lock(&self.value).is_some()
    }

    /// Waits until set (or the deadline passes: `None`).
    fn wait(&self, deadline: Option<Instant>) -> Option<Option<i32>> {
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

    fn wait_for_locked_down(&self, deadline: Instant) -> Result<(), SpawnError> {
        match self.channel.recv::<ChildToBroker<Up>>(Some(deadline)) {
            Ok((ChildToBroker::LockedDown, _)) => Ok(()),
            Ok((ChildToBroker::LockdownFailed { step, errno }, _)) => {
                let _ = self.wait_timeout(Duration::from_secs(5));
                Err(SpawnError::Lockdown(LockdownError { step, errno }))
            }
            Ok(_) => {
                self.kill();
                Err(SpawnError::Handshake(RecvError::Violation(
                    ProtocolViolation::Decode {
                        reason: "first message is not a lockdown report".into(),
                    },
                )))
            }
            Err(RecvError::TimedOut) => {
                self.kill();
                Err(SpawnError::TimedOut {
                    timeout: self.shared.config.spawn_timeout,
                })
            }
            Err(RecvError::Closed) => Err(SpawnError::EndedDuringLockdown {
                end: self
                    .wait_timeout(Duration::from_secs(5))
                    .unwrap_or(ChildEnd::ZygoteLost),
            }),
            Err(e) => {
                self.kill();
                Err(SpawnError::Handshake(e))
            }
        }
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
                Ok((ChildToBroker::LockedDown | ChildToBroker::LockdownFailed { .. }, _)) => {
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

fn classify(status: Option<i32>, state: &ChildState, shutting_down: bool) -> ChildEnd {
    let Some(status) = status else {
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
    if libc::WIFEXITED(status) {
        return ChildEnd::Exited {
            code: libc::WEXITSTATUS(status),
        };
    }
    let signal = libc::WTERMSIG(status);
    match signal {
        libc::SIGSYS => ChildEnd::SeccompViolation,
        libc::SIGKILL if state.killed_by_broker => ChildEnd::Killed,
        libc::SIGKILL if shutting_down => ChildEnd::BrokerShutdown,
        _ => ChildEnd::Crashed {
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
    }
}
