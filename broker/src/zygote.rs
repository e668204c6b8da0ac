//! The zygote: a fresh, single-threaded exec of the application binary, started inside the
//! shared namespaces, that forks every child on request.
//!
//! Why a zygote: the broker may be multithreaded, and forking a multithreaded process copies
//! locks other threads hold. The zygote is single-threaded, so after its fork the child may
//! allocate and run normal Rust. It also pays for the user, mount, net, ipc, uts and cgroup
//! namespaces and the empty root once, not per child.
//!
//! Trust: the zygote is trusted code (the application's own binary) and talks to the broker over
//! its control channel; it never reads a byte a sandboxed child wrote.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use portcullis_child::{Entries, LockdownPlan, LockdownStep, ProgramRoot, Rlimit, SeccompProgram};
use portcullis_ipc::{Channel, ChannelLimits};
use serde::{Deserialize, Serialize};

use crate::sys;

/// Environment variable that marks a process as the zygote; its value is the control fd.
pub(crate) const ZYGOTE_ENV: &str = "PORTCULLIS_ZYGOTE_FD";
/// The fd number the control channel has in the zygote.
pub(crate) const ZYGOTE_CONTROL_FD: RawFd = 3;
/// Exit status of a zygote that could not set itself up (the step went to the broker).
const EXIT_ZYGOTE_FAILED: i32 = 70;

/// Namespaces the zygote enters once; every child shares them. The user namespace is created
/// first and owns the others (one `unshare` call does both in the kernel's order).
pub const SHARED_NAMESPACES: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP;

/// Where the empty root is mounted before `pivot_root` (inside the zygote's own mount namespace;
/// the host's directory is untouched).
const EMPTY_ROOT_MOUNT_POINT: &std::ffi::CStr = c"/tmp";

/// Broker → zygote.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToZygote {
    /// Id maps are written; here is what every child gets.
    Init(ZygoteInit),
    /// Fork a locked-down child with these options; its channel end and service channel end come
    /// as the two fds. What it runs, the broker tells the child itself once it is locked down.
    Spawn {
        id: u64,
        rlimits: Vec<Rlimit>,
        keep_stderr: bool,
        /// Exec mode: lock it down with this filter instead of the child filter (it will
        /// execute a program). The broker compiles one per shape of exec filter and sends it
        /// with each exec spawn, so the zygote needs no list of them.
        exec: Option<SeccompProgram>,
        /// Exec mode with a read-only minimal root: the child mounts these binds, cloned from
        /// the zygote's copy of the host tree, before it drops its capabilities.
        root: Option<ProgramRoot>,
    },
    /// The broker took pre-forked child `id` out of the pool: fork a replacement.
    Claimed { id: u64 },
    /// SIGKILL the child `id` if it has not been reaped yet.
    Kill { id: u64 },
}

/// The zygote's configuration, sent once.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ZygoteInit {
    /// The filter of children that run an entry function; `None` for a broker with no entries
    /// (exec mode only: every spawn brings its own filter), which then has no pool.
    pub seccomp: Option<SeccompProgram>,
    pub channel_limits: (usize, usize),
    /// Pre-forked, locked-down children kept waiting for a spawn with default options.
    pub pool_size: usize,
    /// The rlimits of pre-forked children (the broker's baseline).
    pub default_rlimits: Vec<Rlimit>,
    /// The exec filter of pre-forked exec-mode children (an empty root, no processes: the
    /// shape a static program with a default profile gets), and how many the zygote keeps
    /// waiting; `None` for no such pool.
    pub program_pool: Option<(SeccompProgram, usize)>,
    /// How many ids the broker mapped into the user namespace: the zygote is 0, and each child
    /// takes the next of `1..child_ids` in turn. 1: every child keeps 0.
    pub child_ids: u32,
}

/// Ids the zygote gives pre-forked children; the broker's own ids never have this bit.
pub(crate) const POOL_ID_BIT: u64 = 1 << 63;
/// With [`POOL_ID_BIT`]: a pre-forked exec-mode child (see [`ZygoteInit::program_pool`]).
pub(crate) const PROGRAM_POOL_ID_BIT: u64 = 1 << 62;

/// Zygote → broker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromZygote {
    /// Ready to fork children.
    Ready,
    /// Set-up failed at `step`; the zygote exits.
    StartFailed { step: LockdownStep, errno: i32 },
    /// Child `id` runs as `pid` (in the broker's PID namespace).
    Spawned { id: u64, pid: u32 },
    /// A pre-forked child `id` runs as `pid`; the broker's ends of its channel and service
    /// channel are the two fds.
    Pooled { id: u64, pid: u32 },
    /// Child `id` could not be started.
    SpawnFailed { id: u64, failure: SpawnFailure },
    /// Child `id` ended with this raw wait status, having used `cpu_us` of CPU time (user +
    /// system, all its threads, from the kernel's accounting).
    Ended { id: u64, status: i32, cpu_us: u64 },
}

/// Why the zygote did not start a child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpawnFailure {
    /// The request came without exactly two channel fds.
    BadRequest,
    /// A step failed in the zygote.
    Step {
        /// The step.
        step: LockdownStep,
        /// Its errno.
        errno: i32,
    },
}

/// A set-up step failed: report `(step, errno)`, or `None` when the broker is unreachable.
type SetUpError = Option<(LockdownStep, i32)>;

/// If this process was started as a zygote, runs the zygote and never returns.
///
/// By the time this runs the zygote is already its namespaces' root: the broker's pre-exec hook
/// ([`crate::sys::process::zygote_pre_exec`]) entered them and took the namespace's root ids
/// before this binary was executed, so the one exec ran inside the new user namespace, which
/// therefore owns the zygote's (and every child's) memory map, and kept that namespace's
/// capabilities. The first is what lets an unprivileged broker take a non-dumpable child's
/// seccomp listener (`pidfd_getfd`) and read its `/proc/<pid>/{ns,fd,smaps}`.
pub(crate) fn run_if_zygote(entries: &Entries) {
    let Some(value) = std::env::var_os(ZYGOTE_ENV) else {
        return;
    };
    if value != "3" {
        sys::process::exit_now(EXIT_ZYGOTE_FAILED);
    }
    let control = Channel::from_fd(
        sys::process::take_inherited_fd(ZYGOTE_CONTROL_FD),
        ChannelLimits::default(),
    );
    let set_up = enter_sandbox().and_then(|stage| {
        let host_tree = pivot_into_empty_root()?;
        finish_set_up(
            &control,
            stage.dev_null,
            stage.lifeline_read,
            stage.lifeline_write,
            host_tree,
        )
    });
    let code = match set_up {
        Ok(shared) => Zygote {
            control,
            shared,
            children: HashMap::new(),
            ids: HashMap::new(),
            pooled: 0,
            pooled_programs: 0,
            next_pool_id: 0,
            next_child_id: 1,
            refill_pending: false,
        }
        .serve(entries),
        Err(e) => report_start_failure(&control, e),
    };
    sys::process::exit_now(code)
}

fn report_start_failure(control: &Channel, err: SetUpError) -> i32 {
    if let Some((step, errno)) = err {
        let _ = send_to_broker(control, &FromZygote::StartFailed { step, errno });
    }
    EXIT_ZYGOTE_FAILED
}

/// What the zygote opens while the host's filesystem is still visible.
struct Stage1 {
    dev_null: OwnedFd,
    lifeline_read: OwnedFd,
    lifeline_write: OwnedFd,
}

/// Opens what children need from the host, still visible (the new mount namespace is a copy of
/// the broker's). Everything before ran in the broker's pre-exec hook, in order:
/// `DropSupplementaryGroups`, `EnterNamespaces`, `IdMaps` (the broker writes them) and
/// `SetIds`, so this process is its user namespace's root, holding that namespace's
/// capabilities.
fn enter_sandbox() -> Result<Stage1, SetUpError> {
    use LockdownStep as S;
    let at = |step: LockdownStep| {
        move |e: std::io::Error| Some((step, e.raw_os_error().unwrap_or(libc::EIO)))
    };
    let nix_at = |step: LockdownStep| move |e: nix::Error| Some((step, e as i32));

    let dev_null: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(at(S::StdioToNull))?
        .into();
    let (lifeline_read, lifeline_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(nix_at(S::LifelineCheck))?;
    Ok(Stage1 {
        dev_null,
        lifeline_read,
        lifeline_write,
    })
}

/// Makes an empty read-only tmpfs the root of the zygote's mount namespace. Runs after the
/// `/dev/null` open and the id maps, before any child exists. Returns the zygote's detached copy of the host tree (see below), or the
/// errno the kernel refused it with.
fn pivot_into_empty_root() -> Result<Result<OwnedFd, i32>, SetUpError> {
    use LockdownStep as S;
    let at = |step: LockdownStep| {
        move |e: std::io::Error| Some((step, e.raw_os_error().unwrap_or(libc::EIO)))
    };
    // Private first, so nothing below propagates to the host's mounts.
    sys::mounts::make_mounts_private().map_err(at(S::MakeMountsPrivate))?;
    // The host's tree, cloned once while it is still this namespace's root: after the pivot no
    // process here can name a host path, and an exec-mode child with a program root clones
    // exactly its binds from this copy (portcullis_child::program_root). A copy rather than the
    // host's own mounts: nothing done with it reaches the host, and it holds only what the
    // zygote's (unprivileged on the host) ids may read. Without it (a kernel before 5.2, say)
    // every other child works and a program root fails at its first step.
    let host_tree =
        sys::mounts::clone_whole_tree().map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
    sys::mounts::mount_empty_readonly_tmpfs(EMPTY_ROOT_MOUNT_POINT)
        .map_err(at(S::MountEmptyRoot))?;
    sys::mounts::chdir(EMPTY_ROOT_MOUNT_POINT).map_err(at(S::PivotRoot))?;
    sys::mounts::pivot_root_here_and_detach_old().map_err(at(S::PivotRoot))?;
    Ok(host_tree)
}

/// The last of the set-up: take the configuration, become non-dumpable, watch for ended
/// children, and tell the broker we are ready.
fn finish_set_up(
    control: &Channel,
    dev_null: OwnedFd,
    lifeline_read: OwnedFd,
    lifeline_write: OwnedFd,
    host_tree: Result<OwnedFd, i32>,
) -> Result<SharedSetUp, SetUpError> {
    use LockdownStep as S;
    let at = |step: LockdownStep| {
        move |e: std::io::Error| Some((step, e.raw_os_error().unwrap_or(libc::EIO)))
    };
    let nix_at = |step: LockdownStep| move |e: nix::Error| Some((step, e as i32));

    let init = match control.recv::<ToZygote>(Some(Instant::now() + Duration::from_secs(30))) {
        Ok((ToZygote::Init(init), _)) => init,
        _ => return Err(Some((S::IdMaps, libc::EPROTO))),
    };
    if let Some(filter) = &init.seccomp {
        filter
            .validate()
            .map_err(|_| Some((S::SeccompFilter, libc::EINVAL)))?;
    }
    // Becoming the namespace's root changed our euid, which cleared the parent-death signal
    // the broker set; set it again. (If the broker died in between, the control channel's EOF
    // ends us in the serve loop.)
    sys::process::die_with_parent().map_err(at(S::ParentDeathSignal))?;
    sys::process::set_non_dumpable().map_err(at(S::Dumpable))?;
    // Securebits and an empty bounding set, once, for every child to inherit.
    portcullis_child::lock_inherited_privileges().map_err(|e| Some((e.step, e.errno)))?;

    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(nix_at(S::SignalMask))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(nix_at(S::SignalMask))?;

    send_to_broker(control, &FromZygote::Ready).map_err(|()| None)?;
    Ok(SharedSetUp {
        init,
        dev_null,
        lifeline_read,
        lifeline_write,
        signals,
        host_tree,
    })
}

struct Zygote {
    control: Channel,
    shared: SharedSetUp,
    /// Live children: pid → broker id, and back.
    children: HashMap<libc::pid_t, u64>,
    ids: HashMap<u64, libc::pid_t>,
    /// Pre-forked children the broker has not claimed yet.
    pooled: usize,
    /// Pre-forked exec-mode children the broker has not claimed yet.
    pooled_programs: usize,
    next_pool_id: u64,
    /// The namespace id the next child takes (see [`ZygoteInit::child_ids`]).
    next_child_id: u32,
    /// The pool is short and waits for [`pool_refill_after_idle`] without events.
    refill_pending: bool,
}

/// How long the zygote must be idle before it forks replacements for claimed pool children:
/// one millisecond (poll's unit).
fn pool_refill_after_idle() -> PollTimeout {
    PollTimeout::from(1u8)
}

/// What the one-time set-up leaves for every child.
struct SharedSetUp {
    init: ZygoteInit,
    dev_null: OwnedFd,
    lifeline_read: OwnedFd,
    /// Never written: when the zygote dies, children see POLLHUP on the read end.
    lifeline_write: OwnedFd,
    signals: SignalFd,
    /// The detached copy of the host's mount tree (close-on-exec; every child closes its copy
    /// at `CloseFds`, after a program root was cloned from it), or why the kernel refused it
    /// (a program root then fails at its first step with this errno).
    host_tree: Result<OwnedFd, i32>,
}

fn send_to_broker(control: &Channel, msg: &FromZygote) -> Result<(), ()> {
    control
        .send(msg, &[], Some(Instant::now() + Duration::from_secs(10)))
        .map_err(drop)
}

impl Zygote {
    /// Serves spawn and kill requests until the broker goes away, then kills every child.
    fn serve(&mut self, entries: &Entries) -> i32 {
        if self.fill_pool(entries).is_err() {
            return self.kill_all();
        }
        loop {
            // A pool refill waits for a quiet moment, so its fork never delays the spawn, the
            // first messages or the reaping that made it necessary.
            let timeout = if self.refill_pending {
                pool_refill_after_idle()
            } else {
                PollTimeout::NONE
            };
            let (control_ready, child_ended) = {
                let mut fds = [
                    PollFd::new(self.control.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.shared.signals.as_fd(), PollFlags::POLLIN),
                ];
                match nix::poll::poll(&mut fds, timeout) {
                    Ok(0) => {
                        self.refill_pending = false;
                        if self.fill_pool(entries).is_err() {
                            break;
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(nix::Error::EINTR) => continue,
                    Err(_) => break,
                }
                let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
                (ready(&fds[0]), ready(&fds[1]))
            };
            if child_ended && self.reap_children().is_err() {
                break;
            }
            if control_ready {
                match self.control.recv::<ToZygote>(None) {
                    Ok((request, fds)) => {
                        if self.handle(entries, request, fds).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        self.kill_all()
    }

    /// The broker is gone (or unreachable): no child may outlive it.
    fn kill_all(&self) -> i32 {
        for &pid in self.children.keys() {
            let _ = sys::namespaces::kill(pid, libc::SIGKILL);
        }
        0
    }

    /// Forks pre-forked children until both pools are full (entry children with the child
    /// filter, exec-mode children with the pool's exec filter). Each locks itself down and waits
    /// for the broker's start message; the broker gets its channel end now.
    fn fill_pool(&mut self, entries: &Entries) -> Result<(), ()> {
        // Pre-forked entry children run entries: none without the child filter.
        let entry_pool = if self.shared.init.seccomp.is_some() {
            self.shared.init.pool_size
        } else {
            0
        };
        while self.pooled < entry_pool {
            if !self.fork_pooled(entries, false)? {
                return Ok(());
            }
        }
        let program_pool = self.shared.init.program_pool.as_ref().map_or(0, |p| p.1);
        while self.pooled_programs < program_pool {
            if !self.fork_pooled(entries, true)? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Forks one pre-forked child (an exec-mode one with `program`) and hands the broker its
    /// ends. `Ok(false)`: the fork failed (out of processes or memory), and the broker falls
    /// back to forking on request.
    fn fork_pooled(&mut self, entries: &Entries, program: bool) -> Result<bool, ()> {
        let (ours, theirs) = Channel::pair(self.child_channel_limits()).map_err(drop)?;
        let (our_service, their_service) =
            Channel::pair(self.child_channel_limits()).map_err(drop)?;
        let rlimits = self.shared.init.default_rlimits.clone();
        let filter = if program {
            self.shared.init.program_pool.as_ref().map(|p| p.0.clone())
        } else {
            None
        };
        let forked = self.fork_child(
            entries,
            &rlimits,
            (false, filter.as_ref(), None),
            &theirs.into_fd(),
            &their_service.into_fd(),
        );
        let Ok(pid) = forked else {
            return Ok(false);
        };
        let id = if program {
            self.pooled_programs += 1;
            POOL_ID_BIT | PROGRAM_POOL_ID_BIT | self.next_pool_id
        } else {
            self.pooled += 1;
            POOL_ID_BIT | self.next_pool_id
        };
        self.next_pool_id += 1;
        self.children.insert(pid, id);
        self.ids.insert(id, pid);
        let pid = u32::try_from(pid).map_err(drop)?;
        self.control
            .send(
                &FromZygote::Pooled { id, pid },
                &[ours.as_fd(), our_service.as_fd()],
                Some(Instant::now() + Duration::from_secs(10)),
            )
            .map_err(drop)?;
        Ok(true)
    }

    fn child_channel_limits(&self) -> ChannelLimits {
        let (max_message_bytes, max_fds_per_message) = self.shared.init.channel_limits;
        ChannelLimits {
            max_message_bytes,
            max_fds_per_message,
        }
    }

    fn handle(
        &mut self,
        entries: &Entries,
        request: ToZygote,
        mut fds: Vec<OwnedFd>,
    ) -> Result<(), ()> {
        match request {
            ToZygote::Init(_) => Err(()),
            ToZygote::Kill { id } => {
                if let Some(&pid) = self.ids.get(&id) {
                    let _ = sys::namespaces::kill(pid, libc::SIGKILL);
                }
                Ok(())
            }
            ToZygote::Claimed { id } => {
                let count = if id & PROGRAM_POOL_ID_BIT != 0 {
                    &mut self.pooled_programs
                } else {
                    &mut self.pooled
                };
                if id & POOL_ID_BIT != 0 && *count > 0 {
                    *count -= 1;
                    self.refill_pending = true;
                }
                Ok(())
            }
            ToZygote::Spawn {
                id,
                rlimits,
                keep_stderr,
                exec,
                root,
            } => {
                let failure = if fds.len() != 2
                    || exec
                        .as_ref()
                        .is_some_and(|program| program.validate().is_err())
                    || (root.is_some() && exec.is_none())
                    || (exec.is_none() && self.shared.init.seccomp.is_none())
                    || root.as_ref().is_some_and(|root| root.validate().is_err())
                {
                    Some(SpawnFailure::BadRequest)
                } else {
                    let service = fds.remove(1);
                    let channel = fds.remove(0);
                    let flags = (keep_stderr, exec.as_ref(), root.as_ref());
                    match self.fork_child(entries, &rlimits, flags, &channel, &service) {
                        Ok(pid) => {
                            self.children.insert(pid, id);
                            self.ids.insert(id, pid);
                            let pid = u32::try_from(pid).map_err(drop)?;
                            return send_to_broker(&self.control, &FromZygote::Spawned { id, pid });
                        }
                        Err(errno) => Some(SpawnFailure::Step {
                            step: LockdownStep::NewPidNamespace,
                            errno,
                        }),
                    }
                };
                match failure {
                    Some(failure) => {
                        send_to_broker(&self.control, &FromZygote::SpawnFailed { id, failure })
                    }
                    None => Ok(()),
                }
            }
        }
    }

    /// Forks one child into its own PID namespace. In the child this never returns.
    /// `(keep_stderr, exec, root)`: keep the zygote's stderr; lock down with this exec-mode
    /// filter; mount this program root.
    /// The namespace id for the next child: `1..child_ids` in turn, or 0 with one id.
    fn take_child_id(&mut self) -> u32 {
        let ids = self.shared.init.child_ids;
        if ids <= 1 {
            return 0;
        }
        let id = self.next_child_id;
        self.next_child_id = if id + 1 >= ids { 1 } else { id + 1 };
        id
    }

    fn fork_child(
        &mut self,
        entries: &Entries,
        rlimits: &[Rlimit],
        (keep_stderr, exec, root): (bool, Option<&SeccompProgram>, Option<&ProgramRoot>),
        channel: &OwnedFd,
        service: &OwnedFd,
    ) -> Result<libc::pid_t, i32> {
        if exec.is_none() && self.shared.init.seccomp.is_none() {
            return Err(libc::EINVAL);
        }
        let id = self.take_child_id();
        let Some(seccomp) = exec.or(self.shared.init.seccomp.as_ref()) else {
            return Err(libc::EINVAL);
        };
        let pid = sys::namespaces::fork_into_new_pid_namespace()
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        if pid == 0 {
            // The child: a copy of this single-threaded process, PID 1 of a new namespace.
            let shared = &self.shared;
            let plan = LockdownPlan {
                channel: channel.as_fd(),
                service: service.as_fd(),
                dev_null: shared.dev_null.as_fd(),
                lifeline_read: shared.lifeline_read.as_fd(),
                lifeline_write: shared.lifeline_write.as_raw_fd(),
                keep_stderr,
                rlimits,
                seccomp,
                program_root: root,
                host_tree: shared
                    .host_tree
                    .as_ref()
                    .map(AsFd::as_fd)
                    .map_err(|&errno| errno),
                id,
            };
            entries.run_child(&plan, self.child_channel_limits());
        }
        Ok(pid)
    }

    /// Reaps every ended child and tells the broker.
    fn reap_children(&mut self) -> Result<(), ()> {
        // Drain the signalfd; the reaping below is what counts (signals coalesce).
        while let Ok(Some(_)) = self.shared.signals.read_signal() {}
        loop {
            match sys::namespaces::reap_one() {
                Ok(Some(sys::namespaces::Reaped {
                    pid,
                    status,
                    cpu_us,
                })) => {
                    if let Some(id) = self.children.remove(&pid) {
                        self.ids.remove(&id);
                        // A pre-forked child that died unclaimed leaves the pool smaller: no
                        // refill here, so a child that can never lock down cannot fork-loop.
                        let ended = FromZygote::Ended { id, status, cpu_us };
                        send_to_broker(&self.control, &ended)?;
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return Ok(()),
                Err(_) => return Err(()),
            }
        }
    }
}
