//! Serving children's requests (the service channel): decide by policy, perform the operation
//! (files beneath a pre-opened directory with `openat2`; connections and fetches to checked
//! addresses), audit, answer.
//!
//! Threads: a child's requests are served by the broker thread that watches its seccomp
//! listener ([`crate::supervise`]), when the child rings its doorbell: after writing a request
//! the child makes the reserved syscall `portcullis_ipc::service::DOORBELL_SYSCALL`, its filter
//! stops the calling thread and notifies that broker thread, which serves what the channel holds
//! ([`Doorbell::ring`]) and only then lets the syscall return. The kernel wakes the broker thread
//! on the child's CPU and the child on the broker thread's (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`),
//! so a round trip pays no wake-up of another, idle CPU — the cost that dominated a socket wake-up
//! (see `docs/BENCHMARKS.md`, open). A child has its own serving thread, so a child that floods,
//! stalls on a slow filesystem or does not take its answers holds only that thread; it is
//! additionally held to its profile's request rate (token bucket).
//!
//! A child's *turn* (an atomic per child: idle, serving, serving with more arrived, retired)
//! makes sure one thread at a time serves it: its own thread, or a network worker holding the
//! turn. An event that arrives while the turn is held is noted in the turn itself and served by
//! the holder before it lets go, so no request is lost. A request written without ringing waits
//! until the next ring: it delays only the child that wrote it.
//!
//! The mailbox: a child running a registered entry shares a sealed two-page memfd with its
//! thread (`portcullis_ipc::mailbox`), made when the child first asks for it and installed in
//! the child with the answer to that ring (`SECCOMP_IOCTL_NOTIF_ADDFD`). A request that fits is
//! written there instead of on the channel and the doorbell carries its length and a sequence
//! number; the thread copies it out once and decodes only its copy. An answer with no fd that fits goes back the same way, its
//! length the doorbell's return value; an fd, a long answer and a network answer go on the
//! channel (return value 0). A stat is then one syscall for the child instead of three, an open
//! two. A ring repeating the last sequence number (its syscall restarted after a signal) gets
//! the same answer without being served twice. A mailbox ring that finds the turn held by a
//! network worker (finishing the previous answer) is answered `EBUSY` and rung again.
//!
//! Network requests (connect, fetch) are decided by the child's thread and, when allowed, handed
//! with the child's turn to a small pool of network workers through a bounded queue
//! ([`NETWORK_WORKERS`], [`NETWORK_QUEUE`]): a slow name lookup or a black-holed connection holds
//! a network worker, and when the queue is full the child is answered `busy` at once. The doorbell
//! returns as soon as the request is handed off; the network worker answers and gives the turn
//! back, so a child's requests stay in order. Nothing a child sends reaches a worker but through
//! `Channel::try_recv`, which caps size and fds and never panics.
//!
//! Trust boundary: the policy decides on the path *string* only to pick a grant and a relative
//! path; whether that relative path really stays beneath the grant is the kernel's decision
//! (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
//! RESOLVE_NO_XDEV`), made on the directory fd at the moment of the open. A symlink swapped in
//! between the decision and the open is refused by that same call; there is no window.

use std::cell::Cell;
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use nix::sys::stat::{fstat, SFlag};
use portcullis_child::mailbox::Mailbox;
use portcullis_ipc::service::{
    Denied, DirEntry, Failure, FileKind, FileStat, OpenFlags, ServiceRequest, ServiceResponse,
    MAX_DIR_ENTRIES,
};
use portcullis_ipc::{mailbox, Channel, RecvError};
use portcullis_policy::{Access, Decision, DenyReason, OpenMode, Profile, RateLimiter};

use crate::audit::{bounded_target, AuditRecord, AuditSink};
use crate::sys::files as fs;

/// Default number of network workers ([`crate::BrokerConfig::network_workers`]).
pub const NETWORK_WORKERS: usize = 4;
/// Default number of allowed network requests that may wait for a network worker
/// ([`crate::BrokerConfig::network_queue`]); past that a connect or fetch is answered `busy`.
pub const NETWORK_QUEUE: usize = 8;
/// Longest a serving thread waits for a child to take an answer before it stops serving that
/// child.
const SERVICE_ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// A child's turn: nobody is serving it.
const IDLE: u8 = 0;
/// A worker holds the child's turn.
const SERVING: u8 = 1;
/// A worker holds the turn and an event arrived meanwhile: it serves again before letting go.
const SERVING_MORE: u8 = 2;
/// The child's service has ended; nobody serves it again.
const RETIRED: u8 = 3;

/// One child, as the service sees it.
struct Served {
    child: u64,
    kind: String,
    pid: u32,
    channel: Channel,
    profile: Profile,
    /// One pre-opened directory per grant (`None` if it could not be opened at spawn).
    roots: Vec<Option<OwnedFd>>,
    limiter: Mutex<RateLimiter>,
    /// Rate-limited denials not yet audited one by one, and when the last one was.
    rate_audit: Mutex<(u32, Option<Instant>)>,
    /// Whose turn it is to serve this child: `IDLE`, `SERVING`, `SERVING_MORE` or `RETIRED`.
    turn: AtomicU8,
    /// Set when the child broke the protocol on its service channel; the spawn side kills it.
    on_violation: Box<dyn Fn(portcullis_ipc::ProtocolViolation) + Send + Sync>,
}

/// How the service's threads are sized, and how it writes and answers.
#[derive(Debug, Clone)]
pub(crate) struct ServiceConfig {
    pub audit: AuditSink,
    pub send_timeout: Duration,
    pub network_workers: usize,
    pub network_queue: usize,
    pub tls_roots: crate::fetch::TlsRoots,
}

/// What every serving thread shares.
struct Core {
    served: Mutex<HashMap<u64, Arc<Served>>>,
    audit: AuditSink,
    started: Instant,
    send_timeout: Duration,
    /// Network requests queued or being performed.
    network_pending: AtomicUsize,
    /// The certificate authorities HTTPS fetches trust.
    tls_roots: ureq::tls::RootCerts,
}

/// The broker's request service: register each child's service channel; its doorbell serves it.
pub(crate) struct Service {
    core: Arc<Core>,
    /// Handed to each child's [`Doorbell`]. Once the service and every doorbell are gone, the
    /// queue disconnects and the network workers end.
    network: Sender<NetJob>,
}

/// What a child's serving thread holds to serve it when it rings: see [`Doorbell::ring`].
pub(crate) struct Doorbell {
    core: Arc<Core>,
    served: Arc<Served>,
    network: Sender<NetJob>,
    /// The child may have a mailbox (it runs a registered entry), made when it first asks.
    offer: bool,
    /// The child's mailbox, once made: only this doorbell's thread touches it.
    mailbox: Option<Mailbox>,
    /// The child's fd of its mailbox, until it is installed in the child.
    handing: Option<OwnedFd>,
    /// The last mailbox request served: its sequence number and what the ring returned.
    last: Cell<(u64, u64)>,
}

/// What a ring is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rung {
    /// The syscall returns this: the length of an answer in the mailbox, or 0 (on the channel).
    Value(u64),
    /// `EBUSY`: a network worker holds the child's turn; ring again.
    Busy,
}

impl Doorbell {
    /// The child's fd of its mailbox, to install in the child in answer to its ask
    /// (`portcullis_ipc::mailbox::ASK`): the mailbox is made on the first ask. Else the errno
    /// to answer the ask with: `EPERM` for a child that has none (an executed program),
    /// `EEXIST` once it has its fd (an ask again costs a token, like an empty ring), or why it
    /// could not be made (the child then sends everything on its channel: slower, not less
    /// safe).
    pub(crate) fn mailbox_fd(&mut self) -> Result<BorrowedFd<'_>, i32> {
        if !self.offer {
            self.throttle();
            return Err(libc::EPERM);
        }
        if self.mailbox.is_some() && self.handing.is_none() {
            self.throttle();
            return Err(libc::EEXIST);
        }
        if self.mailbox.is_none() {
            match Mailbox::create() {
                Ok((mailbox, fd)) => {
                    self.mailbox = Some(mailbox);
                    self.handing = Some(fd);
                }
                Err(e) => {
                    tracing::warn!(child = self.served.child, error = %e, "no service mailbox");
                    self.offer = false;
                    return Err(e.raw_os_error().unwrap_or(libc::ENOMEM));
                }
            }
        }
        self.handing.as_ref().map(AsFd::as_fd).ok_or(libc::EEXIST)
    }

    /// The child's fd of its mailbox is installed in the child: serve mailbox rings from now on.
    pub(crate) fn mailbox_handed(&mut self) {
        self.handing = None;
    }

    /// Serves what a ring announced: a request of `len` bytes in the mailbox numbered `seq`, or
    /// with `len` 0 what the channel holds (unless another thread holds the child's turn — a
    /// network worker, which then serves it before it lets go — or its service has ended).
    /// Called by the child's serving thread while the child's doorbell syscall waits; returns
    /// when the request it found is answered, with what the syscall returns. `release` answers
    /// the doorbell with 0: it is called if an answer does not fit in the socket (a long
    /// directory listing), so the child can read it while it is sent.
    ///
    /// A ring that finds no whole request (a hostile child's, or one datagram of a long
    /// request) costs a token of the child's request rate like a request does; without one,
    /// the ring is answered only once a token has come back and been taken (waiting at most
    /// 100 ms), so a child cannot keep its broker thread busy faster than its profile allows.
    pub(crate) fn ring(&self, len: u64, seq: u64, release: &mut dyn FnMut()) -> Rung {
        match &self.mailbox {
            Some(mailbox) if len > 0 && self.handing.is_none() => {
                self.ring_mailbox(mailbox, len, seq, release)
            }
            _ => {
                self.ring_channel(release);
                Rung::Value(0)
            }
        }
    }

    /// A ring for what the channel holds.
    fn ring_channel(&self, release: &mut dyn FnMut()) {
        if !take_turn(&self.served.turn) {
            // The holder serves what it finds; this ring brought no work of its own.
            self.throttle();
            return;
        }
        if self
            .core
            .serve_turn(&self.served, Some(&self.network), release)
        {
            return;
        }
        self.throttle();
    }

    /// A ring for the request of `len` bytes in the mailbox, numbered `seq`.
    fn ring_mailbox(
        &self,
        mailbox: &Mailbox,
        len: u64,
        seq: u64,
        release: &mut dyn FnMut(),
    ) -> Rung {
        let (last_seq, last_value) = self.last.get();
        if seq == last_seq {
            // The same ring again (its syscall was restarted after a signal): the answer it
            // missed, not a second performing. Costs a token like an empty ring.
            self.throttle();
            return Rung::Value(last_value);
        }
        match self
            .served
            .turn
            .compare_exchange(IDLE, SERVING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {}
            // Neither is served, so each costs a token like an empty ring. Its service ended:
            // the channel is shut, so the child's read of it says so. A network worker holds
            // the turn: ring again.
            Err(RETIRED) => {
                self.throttle();
                return Rung::Value(0);
            }
            Err(_) => {
                self.throttle();
                return Rung::Busy;
            }
        }
        let (turn, value) = match mailbox::take_request::<ServiceRequest>(mailbox.words(), len) {
            Ok(request) => self.core.serve_request(
                &self.served,
                Some(&self.network),
                request,
                Some(mailbox),
                release,
            ),
            Err(violation) => {
                (self.served.on_violation)(violation);
                (Turn::Finished, 0)
            }
        };
        self.core
            .finish_turn(&self.served, turn, Some(&self.network), release);
        self.last.set((seq, value));
        Rung::Value(value)
    }

    /// After a ring that brought no request: waits until the child's request rate has a token
    /// for it (at most 100 ms).
    pub(crate) fn throttle(&self) {
        let per_token = 1.0 / f64::from(self.served.profile.limits.requests_per_second.max(1));
        let per_token = Duration::from_secs_f64(per_token.min(0.1));
        let until = Instant::now() + Duration::from_millis(100);
        loop {
            let now = Instant::now();
            let since_start = now.saturating_duration_since(self.core.started);
            if lock(&self.served.limiter).try_acquire(since_start) || now >= until {
                return;
            }
            std::thread::sleep(per_token);
        }
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

/// What a registration needs to know about its child.
pub(crate) struct Registration {
    pub child: u64,
    pub kind: String,
    pub pid: u32,
    pub channel: Channel,
    pub profile: Profile,
    pub on_violation: Box<dyn Fn(portcullis_ipc::ProtocolViolation) + Send + Sync>,
    /// Give the child a mailbox (a child running a registered entry; an executed program has
    /// no use for one).
    pub mailbox: bool,
}

/// An allowed network request on its way to a network worker, with the child's turn.
struct NetJob {
    served: Arc<Served>,
    request: ServiceRequest,
    target: NetTarget,
    received: Instant,
}

/// The grant, host and port a network request was allowed for.
struct NetTarget {
    grant: usize,
    host: String,
    port: u16,
}

impl Service {
    pub(crate) fn start(config: ServiceConfig) -> std::io::Result<Arc<Service>> {
        let core = Arc::new(Core {
            served: Mutex::new(HashMap::new()),
            audit: config.audit,
            started: Instant::now(),
            // A child waiting for its answer reads it at once (its client blocks in recv); one
            // that does not would hold a worker, so it gets at most a second.
            send_timeout: config.send_timeout.min(SERVICE_ANSWER_TIMEOUT),
            network_pending: AtomicUsize::new(0),
            tls_roots: config.tls_roots.to_ureq(),
        });
        let (network, jobs) = crossbeam_channel::bounded::<NetJob>(config.network_queue);
        for n in 0..config.network_workers.max(1) {
            let worker = NetWorker {
                core: Arc::clone(&core),
                jobs: jobs.clone(),
            };
            // Not joined when the service stops: one may be inside a name lookup the resolver
            // will not cut short. It ends when its request does.
            std::thread::Builder::new()
                .name(format!("portcullis-net-{n}"))
                .spawn(move || worker.run())?;
        }
        Ok(Arc::new(Service { core, network }))
    }

    /// Starts serving a child: pre-opens every grant's directory. The returned doorbell serves
    /// the child whenever it rings, from the child's own thread, and makes its mailbox when it
    /// asks ([`Doorbell::mailbox_fd`]).
    pub(crate) fn register(&self, r: Registration) -> Doorbell {
        let roots = r
            .profile
            .fs
            .iter()
            .map(|grant| open_grant_root(&grant.root))
            .collect();
        let limiter = Mutex::new(RateLimiter::new(&r.profile.limits));
        let served = Arc::new(Served {
            child: r.child,
            kind: r.kind,
            pid: r.pid,
            channel: r.channel,
            profile: r.profile,
            roots,
            limiter,
            rate_audit: Mutex::new((0, None)),
            turn: AtomicU8::new(IDLE),
            on_violation: r.on_violation,
        });
        lock(&self.core.served).insert(r.child, Arc::clone(&served));
        Doorbell {
            core: Arc::clone(&self.core),
            served,
            network: self.network.clone(),
            offer: r.mailbox,
            mailbox: None,
            handing: None,
            last: Cell::new((0, 0)),
        }
    }

    /// Stops serving a child (it ended or its handle was dropped). A thread in the middle of
    /// one of its requests finishes that one and serves it no more.
    pub(crate) fn deregister(&self, child: u64) {
        let served = lock(&self.core.served).get(&child).cloned();
        if let Some(served) = served {
            self.core.retire(&served);
        }
    }

    /// Network requests queued or being performed right now.
    pub(crate) fn network_pending(&self) -> usize {
        self.core.network_pending.load(Ordering::Acquire)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Opens a grant's directory as an `O_PATH` handle every request is resolved beneath.
fn open_grant_root(root: &str) -> Option<OwnedFd> {
    use nix::fcntl::{open, OFlag};
    open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()
}

/// Takes `turn` for the calling worker (true), or notes for the worker holding it that another
/// event arrived (false; that worker serves again before it lets go).
fn take_turn(turn: &AtomicU8) -> bool {
    let mut current = turn.load(Ordering::Acquire);
    loop {
        let next = match current {
            IDLE => SERVING,
            SERVING => SERVING_MORE,
            _ => return false,
        };
        match turn.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return current == IDLE,
            Err(actual) => current = actual,
        }
    }
}

/// What one request did to the child's turn.
enum Turn {
    /// Answered: the holder may let go.
    Served,
    /// No whole request was waiting: the holder may let go.
    Nothing,
    /// A network worker holds the turn now.
    HandedOff,
    /// The child's service ended (closed, broke the protocol, or did not take its answer).
    Finished,
}

struct NetWorker {
    core: Arc<Core>,
    jobs: Receiver<NetJob>,
}

impl NetWorker {
    fn run(self) {
        while let Ok(job) = self.jobs.recv() {
            let answer = perform_network(&self.core, &job.served, &job.request, &job.target);
            let answered = self
                .core
                .answer(
                    &job.served,
                    &job.request,
                    job.received,
                    answer,
                    None,
                    &mut || {},
                )
                .is_some();
            self.core.network_pending.fetch_sub(1, Ordering::AcqRel);
            if !answered {
                self.core.retire(&job.served);
            } else if self.core.more_to_serve(&job.served) {
                // Network requests met while holding the turn are performed here, inline. The
                // child is not stopped in its doorbell meanwhile: nothing to release.
                self.core.serve_turn(&job.served, None, &mut || {});
            }
        }
    }
}

impl Core {
    /// Serves the child whose turn the caller holds, one request at a time, until nothing more
    /// arrived, a network request was handed off, or its service ended. `network: None` means
    /// the caller is a network worker and performs network requests itself. `release`: see
    /// [`Doorbell::ring`]. True if a whole request was read.
    fn serve_turn(
        &self,
        served: &Arc<Served>,
        network: Option<&Sender<NetJob>>,
        release: &mut dyn FnMut(),
    ) -> bool {
        let first = self.serve_one(served, network, release);
        self.finish_turn(served, first, network, release)
    }

    /// [`Core::serve_turn`] after its first request, whose outcome is `turn` (read from the
    /// channel or the mailbox): ends or hands off the turn, or serves what else arrived on the
    /// channel meanwhile until nothing more did. True if a whole request was read.
    fn finish_turn(
        &self,
        served: &Arc<Served>,
        mut turn: Turn,
        network: Option<&Sender<NetJob>>,
        release: &mut dyn FnMut(),
    ) -> bool {
        let mut read = false;
        loop {
            match turn {
                Turn::Served => read = true,
                Turn::Nothing => {}
                Turn::HandedOff => return true,
                Turn::Finished => {
                    self.retire(served);
                    return true;
                }
            }
            if !self.more_to_serve(served) {
                return read;
            }
            turn = self.serve_one(served, network, release);
        }
    }

    /// Gives the child's turn back, unless an event arrived while it was held: then keeps it
    /// and says so (serve again).
    fn more_to_serve(&self, served: &Served) -> bool {
        match served
            .turn
            .compare_exchange(SERVING, IDLE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => false,
            Err(SERVING_MORE) => served
                .turn
                .compare_exchange(SERVING_MORE, SERVING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok(),
            Err(_) => {
                // Retired while we served it: what its last requests owe the log is written.
                flush_rate_audit(served, &self.audit);
                false
            }
        }
    }

    /// Stops serving a child whose service ended (or whose handle was dropped). Its channel is
    /// shut down, so the child's next read sees the end at once rather than waiting on a channel
    /// its thread still holds. The rate audit is flushed under the map's lock: when this
    /// returns, every record is written, even if another thread was retiring it at that moment.
    fn retire(&self, served: &Served) {
        served.turn.store(RETIRED, Ordering::Release);
        served.channel.shut_down();
        let mut map = lock(&self.served);
        if map.remove(&served.child).is_some() {
            flush_rate_audit(served, &self.audit);
        }
    }

    /// Reads and answers one request from the channel, or hands it to a network worker.
    fn serve_one(
        &self,
        served: &Arc<Served>,
        network: Option<&Sender<NetJob>>,
        release: &mut dyn FnMut(),
    ) -> Turn {
        // One request per ring (the client writes one, then rings); a ring with nothing queued
        // (a hostile child's) answers nothing.
        let request = match served.channel.try_recv::<ServiceRequest>() {
            // A request carries no fds; any the child attached are closed here.
            Ok((request, _fds)) => request,
            // Nothing whole waiting: an empty ring, or one datagram of a longer request.
            Err(RecvError::TimedOut) => return Turn::Nothing,
            // The child attached fds this process had no room for; a client never does.
            Err(RecvError::FdsDropped) => {
                tracing::warn!(
                    child = served.child,
                    "service request with fds this process could not take; not answered"
                );
                return Turn::Served;
            }
            Err(RecvError::Violation(v)) => {
                (served.on_violation)(v);
                return Turn::Finished;
            }
            Err(RecvError::Closed | RecvError::Io(_)) => return Turn::Finished,
        };
        self.serve_request(served, network, request, None, release)
            .0
    }

    /// Decides and answers one request (in `mailbox` when it fits there), or hands it to a
    /// network worker. Also returns what the doorbell returns: the length of an answer left in
    /// the mailbox, else 0.
    fn serve_request(
        &self,
        served: &Arc<Served>,
        network: Option<&Sender<NetJob>>,
        request: ServiceRequest,
        mailbox: Option<&Mailbox>,
        release: &mut dyn FnMut(),
    ) -> (Turn, u64) {
        let received = Instant::now();
        let answer = match self.decide(served, &request, received) {
            Step::Answer(answer) => answer,
            Step::Network(target) => match network {
                None => perform_network(self, served, &request, &target),
                Some(queue) => {
                    self.network_pending.fetch_add(1, Ordering::AcqRel);
                    let job = NetJob {
                        served: Arc::clone(served),
                        request,
                        target,
                        received,
                    };
                    match queue.try_send(job) {
                        Ok(()) => return (Turn::HandedOff, 0),
                        Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                            self.network_pending.fetch_sub(1, Ordering::AcqRel);
                            let busy = failed(describe(&job.request).0, Failure::Busy);
                            return self.answered(
                                served,
                                &job.request,
                                received,
                                busy,
                                mailbox,
                                release,
                            );
                        }
                    }
                }
            },
        };
        self.answered(served, &request, received, answer, mailbox, release)
    }

    fn answered(
        &self,
        served: &Served,
        request: &ServiceRequest,
        received: Instant,
        answer: Answer,
        mailbox: Option<&Mailbox>,
        release: &mut dyn FnMut(),
    ) -> (Turn, u64) {
        match self.answer(served, request, received, answer, mailbox, release) {
            Some(value) => (Turn::Served, value),
            None => (Turn::Finished, 0),
        }
    }

    /// Audits and sends one answer: into `mailbox` when it carries no fd and fits there (the
    /// answer's length is returned), else on the channel (0). `None` when the child did not
    /// take it (its service ends). `release`: see [`Doorbell::ring`].
    fn answer(
        &self,
        served: &Served,
        request: &ServiceRequest,
        received: Instant,
        answer: Answer,
        mailbox: Option<&Mailbox>,
        release: &mut dyn FnMut(),
    ) -> Option<u64> {
        let (response, fd, op, outcome) = answer;
        let deliver = |release: &mut dyn FnMut()| -> Option<u64> {
            if fd.is_none() {
                if let Some(len) = mailbox.and_then(|m| mailbox::put_answer(m.words(), &response)) {
                    return Some(len as u64);
                }
            }
            let fd_ref = fd.as_ref().map(AsFd::as_fd);
            // A fetched body may be megabytes, which a busy child takes a while to read: its
            // answer may take as long as the profile lets a fetch take. It holds a network
            // worker, never the child's serving thread, meanwhile; every other answer is small
            // and gets the short deadline.
            let timeout = match &response {
                // Capped at a day: a policy may say u64::MAX ms, and `Instant + Duration`
                // panics on overflow.
                ServiceResponse::Fetched(_) => self.send_timeout.max(
                    Duration::from_millis(served.profile.limits.fetch_timeout_ms)
                        .min(Duration::from_secs(86_400)),
                ),
                _ => self.send_timeout,
            };
            served
                .channel
                .send_releasing(
                    &response,
                    fd_ref.as_slice(),
                    Instant::now() + timeout,
                    release,
                )
                .is_ok()
                .then_some(0)
        };
        // The record is written before the answer leaves: once a child sees a decision, its
        // audit record exists.
        let suppressed = match outcome.1 {
            Some(reason) if reason == Denied::RateLimited.as_str() => {
                match rate_limited_audit(served) {
                    Some(suppressed) => suppressed,
                    None => return deliver(release),
                }
            }
            _ => 0,
        };
        if self.audit.wants_records() {
            self.audit.write(&AuditRecord {
                suppressed,
                time_ms: AuditRecord::now_ms(),
                child: served.child,
                kind: served.kind.clone(),
                pid: served.pid,
                op,
                target: audit_target(request),
                decision: outcome.0,
                reason: outcome.1,
                latency_us: u64::try_from(received.elapsed().as_micros()).unwrap_or(u64::MAX),
            });
        }
        deliver(release)
    }

    /// Takes a token and decides. File operations are performed here; an allowed network
    /// request is returned for a network worker.
    fn decide(&self, served: &Served, request: &ServiceRequest, received: Instant) -> Step {
        let op = describe(request).0;
        let now = received.saturating_duration_since(self.started);
        if !lock(&served.limiter).try_acquire(now) {
            return Step::Answer(deny(op, Denied::RateLimited));
        }
        let access = to_access(request);
        let result = match served.profile.decide(&access) {
            Decision::Deny(reason) => return Step::Answer(deny(op, denied(reason))),
            Decision::AllowPath { grant, relative } => perform(served, request, grant, &relative),
            Decision::AllowRename { grant, from, to } => rename(served, grant, &from, &to),
            Decision::AllowNet {
                grant, host, port, ..
            } => return Step::Network(NetTarget { grant, host, port }),
        };
        Step::Answer(outcome(op, result))
    }
}

/// What deciding a request leads to.
enum Step {
    /// The answer is ready.
    Answer(Answer),
    /// An allowed network request, to be performed by a network worker.
    Network(NetTarget),
}

/// Resolves, checks and connects (or fetches) for an allowed network request.
fn perform_network(
    core: &Core,
    served: &Served,
    request: &ServiceRequest,
    target: &NetTarget,
) -> Answer {
    let NetTarget { grant, host, port } = target;
    let result = match request {
        ServiceRequest::Fetch(fetch) => {
            let addrs = resolve_checked(&served.profile, *grant, host, *port);
            let max_message = served.channel.limits().max_message_bytes;
            addrs.and_then(|addrs| {
                let roots = &core.tls_roots;
                crate::fetch::fetch(fetch, addrs, &served.profile.limits, max_message, roots)
                    .map(|response| (ServiceResponse::Fetched(response), None))
                    .map_err(Outcome::Failed)
            })
        }
        _ => connect(&served.profile, *grant, host, *port),
    };
    outcome(describe(request).0, result)
}

fn deny(op: &'static str, d: Denied) -> Answer {
    (
        ServiceResponse::Denied(d),
        None,
        op,
        ("deny", Some(d.as_str())),
    )
}

fn failed(op: &'static str, f: Failure) -> Answer {
    (
        ServiceResponse::Failed(f),
        None,
        op,
        ("error", Some(failure_name(f))),
    )
}

fn outcome(op: &'static str, result: Performed) -> Answer {
    match result {
        Ok((response, fd)) => (response, fd, op, ("allow", None)),
        Err(Outcome::Denied(d)) => deny(op, d),
        Err(Outcome::Failed(f)) => failed(op, f),
    }
}

/// An answer, its fd, the operation's name and the audit outcome (decision, reason).
type Answer = (
    ServiceResponse,
    Option<OwnedFd>,
    &'static str,
    (&'static str, Option<&'static str>),
);

/// What an audit record names: the path, both paths of a rename, the host and port of a
/// connection, the method and URL of a fetch — each part bounded.
fn audit_target(request: &ServiceRequest) -> String {
    match request {
        ServiceRequest::Rename { from, to } => {
            format!("{} -> {}", bounded_target(from), bounded_target(to))
        }
        ServiceRequest::Connect { host, port } => format!("{}:{port}", bounded_target(host)),
        ServiceRequest::Fetch(f) => format!("{:?} {}", f.method, bounded_target(&f.url)),
        other => bounded_target(describe(other).1),
    }
}

fn describe(request: &ServiceRequest) -> (&'static str, &str) {
    match request {
        ServiceRequest::Open { path, .. } => ("open", path),
        ServiceRequest::Stat { path } => ("stat", path),
        ServiceRequest::ReadDir { path } => ("read_dir", path),
        ServiceRequest::CreateDir { path } => ("create_dir", path),
        ServiceRequest::RemoveFile { path } => ("remove_file", path),
        ServiceRequest::Rename { from, .. } => ("rename", from),
        ServiceRequest::Connect { host, .. } => ("connect", host),
        ServiceRequest::Fetch(request) => ("fetch", &request.url),
    }
}

/// Only the broker maps a wire request to a policy access; this is the one place it does.
/// Public (hidden) so the fuzz target decides exactly what the service decides.
#[doc(hidden)]
pub fn to_access(request: &ServiceRequest) -> Access<'_> {
    match request {
        ServiceRequest::Open { path, flags } => Access::Open {
            path,
            mode: open_mode(*flags),
        },
        ServiceRequest::Stat { path } => Access::Stat { path },
        ServiceRequest::ReadDir { path } => Access::ReadDir { path },
        ServiceRequest::CreateDir { path } => Access::CreateDir { path },
        ServiceRequest::RemoveFile { path } => Access::Remove { path },
        ServiceRequest::Rename { from, to } => Access::Rename { from, to },
        ServiceRequest::Connect { host, port } => Access::Connect { host, port: *port },
        ServiceRequest::Fetch(request) => Access::Fetch { url: &request.url },
    }
}

fn open_mode(f: OpenFlags) -> OpenMode {
    OpenMode {
        read: f.read,
        write: f.write,
        create: f.create,
        truncate: f.truncate,
        append: f.append,
        exclusive: f.exclusive,
    }
}

fn denied(reason: DenyReason) -> Denied {
    match reason {
        DenyReason::NotGranted => Denied::NotGranted,
        DenyReason::MissingRight => Denied::MissingRight,
        DenyReason::BadPath => Denied::BadPath,
        DenyReason::BadUrl => Denied::BadUrl,
        DenyReason::BadRequest => Denied::BadRequest,
        DenyReason::CrossGrant => Denied::CrossGrant,
        DenyReason::PrivateAddress => Denied::PrivateAddress,
        DenyReason::RateLimited => Denied::RateLimited,
        DenyReason::TooManyFds => Denied::BadRequest,
    }
}

enum Outcome {
    Denied(Denied),
    Failed(Failure),
}

fn os_outcome(e: &std::io::Error) -> Outcome {
    match e.raw_os_error() {
        // openat2 refuses every escape: beneath (EXDEV), a symlink or magic link (ELOOP).
        Some(libc::EXDEV | libc::ELOOP) => Outcome::Denied(Denied::Escape),
        Some(libc::ENOENT) => Outcome::Failed(Failure::NotFound),
        Some(libc::EEXIST) => Outcome::Failed(Failure::AlreadyExists),
        Some(libc::ENOTDIR) => Outcome::Failed(Failure::NotADirectory),
        Some(libc::EISDIR) => Outcome::Failed(Failure::IsADirectory),
        Some(libc::ENOTEMPTY) => Outcome::Failed(Failure::DirectoryNotEmpty),
        Some(libc::EACCES | libc::EPERM) => Outcome::Failed(Failure::HostPermission),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS | libc::EFBIG) => {
            Outcome::Failed(Failure::NoSpace)
        }
        Some(libc::ECONNREFUSED) => Outcome::Failed(Failure::ConnectionRefused),
        Some(libc::ETIMEDOUT | libc::EAGAIN) => Outcome::Failed(Failure::TimedOut),
        _ => Outcome::Failed(Failure::Other),
    }
}

fn failure_name(f: Failure) -> &'static str {
    match f {
        Failure::NotFound => "not-found",
        Failure::AlreadyExists => "already-exists",
        Failure::NotADirectory => "not-a-directory",
        Failure::IsADirectory => "is-a-directory",
        Failure::DirectoryNotEmpty => "directory-not-empty",
        Failure::HostPermission => "host-permission",
        Failure::NoSpace => "no-space",
        Failure::ConnectionRefused => "connection-refused",
        Failure::TimedOut => "timed-out",
        Failure::NameNotResolved => "name-not-resolved",
        Failure::Busy => "busy",
        Failure::Tls => "tls",
        Failure::Other => "other",
    }
}

type Performed = Result<(ServiceResponse, Option<OwnedFd>), Outcome>;

fn root(served: &Served, grant: usize) -> Result<BorrowedFd<'_>, Outcome> {
    match served.roots.get(grant) {
        Some(Some(fd)) => Ok(fd.as_fd()),
        _ => Err(Outcome::Failed(Failure::NotFound)),
    }
}

/// Splits a clean relative path into (parent, last component); the root itself has none.
fn split_last(relative: &str) -> Result<(&str, &str), Outcome> {
    match relative.rsplit_once('/') {
        Some((parent, name)) => Ok((parent, name)),
        None if !relative.is_empty() => Ok(("", relative)),
        None => Err(Outcome::Denied(Denied::BadRequest)),
    }
}

fn perform(served: &Served, request: &ServiceRequest, grant: usize, relative: &str) -> Performed {
    let dir = root(served, grant)?;
    let os = |e: std::io::Error| os_outcome(&e);
    match request {
        ServiceRequest::Open { flags, .. } => open_file(dir, relative, *flags),
        ServiceRequest::Stat { .. } => {
            let fd =
                fs::open_beneath(dir, relative, libc::O_PATH | libc::O_NOFOLLOW, 0).map_err(os)?;
            let stat = stat_of(fd.as_fd()).map_err(os)?;
            // A hard-linked file may be an outside inode: not even its metadata.
            if stat.kind == FileKind::File && stat.links > 1 {
                return Err(Outcome::Denied(Denied::Escape));
            }
            Ok((ServiceResponse::Stat(stat.stat), None))
        }
        ServiceRequest::ReadDir { .. } => {
            let fd = fs::open_beneath(dir, relative, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .map_err(os)?;
            list(fd)
        }
        ServiceRequest::CreateDir { .. } => {
            let (parent, name) = split_last(relative)?;
            let parent =
                fs::open_beneath(dir, parent, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(os)?;
            fs::mkdir_in(parent.as_fd(), name, 0o700).map_err(os)?;
            Ok((ServiceResponse::Done, None))
        }
        ServiceRequest::RemoveFile { .. } => {
            let (parent, name) = split_last(relative)?;
            let parent =
                fs::open_beneath(dir, parent, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(os)?;
            fs::unlink_in(parent.as_fd(), name).map_err(os)?;
            Ok((ServiceResponse::Done, None))
        }
        ServiceRequest::Rename { .. }
        | ServiceRequest::Connect { .. }
        | ServiceRequest::Fetch(_) => Err(Outcome::Denied(Denied::BadRequest)),
    }
}

fn rename(served: &Served, grant: usize, from: &str, to: &str) -> Performed {
    let dir = root(served, grant)?;
    let os = |e: std::io::Error| os_outcome(&e);
    let (from_parent, from_name) = split_last(from)?;
    let (to_parent, to_name) = split_last(to)?;
    let from_dir =
        fs::open_beneath(dir, from_parent, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(os)?;
    let to_dir =
        fs::open_beneath(dir, to_parent, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(os)?;
    // Replacing an existing destination is a write and a delete of it: only when its grant
    // allows both.
    let replace = served
        .profile
        .fs
        .get(grant)
        .is_some_and(|g| g.rights.write && g.rights.delete);
    fs::rename_in(
        from_dir.as_fd(),
        from_name,
        to_dir.as_fd(),
        to_name,
        replace,
    )
    .map_err(os)?;
    Ok((ServiceResponse::Done, None))
}

/// Opens a regular file with exactly the access asked for (the policy already checked it is
/// within the grant's rights). Opened non-blocking so a FIFO, a device or a file lease held by
/// another process cannot stall a worker, then refused unless it is a regular file with a single
/// link: a hard link may name an inode outside the grant, and the broker cannot prove otherwise.
fn open_file(dir: BorrowedFd<'_>, relative: &str, f: OpenFlags) -> Performed {
    let os = |e: std::io::Error| os_outcome(&e);
    let mut flags = match (f.read, f.write || f.append || f.truncate) {
        (true, true) => libc::O_RDWR,
        (false, true) => libc::O_WRONLY,
        (true, false) => libc::O_RDONLY,
        (false, false) => return Err(Outcome::Denied(Denied::BadRequest)),
    };
    flags |= libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_NOFOLLOW;
    if f.create {
        flags |= libc::O_CREAT;
    }
    if f.exclusive {
        flags |= libc::O_EXCL;
    }
    // No O_TRUNC here: truncating must wait until the file is known to be ours to change
    // (a regular file with one link), or a hard link could empty an outside file.
    if f.append {
        flags |= libc::O_APPEND;
    }
    // openat2 insists on mode 0 unless the open may create.
    let mode = if f.create { 0o600 } else { 0 };
    let fd = fs::open_beneath(dir, relative, flags, mode).map_err(os)?;
    let st = fstat(fd.as_fd()).map_err(|e| os_outcome(&e.into()))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(Outcome::Denied(Denied::NotAFile));
    }
    if st.st_nlink > 1 {
        return Err(Outcome::Denied(Denied::Escape));
    }
    if f.truncate {
        fs::truncate(fd.as_fd()).map_err(os)?;
    }
    // O_NONBLOCK stays set: on a regular file Linux ignores it for read and write (the kernel
    // derives a read's or write's flags from O_APPEND, O_DIRECT, O_DSYNC and O_SYNC only, never
    // from O_NONBLOCK; only RWF_NOWAIT asks for non-blocking file I/O), so clearing it would
    // cost an `fcntl` per open for nothing the child can observe but `F_GETFL`.
    Ok((ServiceResponse::Opened, Some(fd)))
}

fn kind_of(mode: u32) -> FileKind {
    match SFlag::from_bits_truncate(mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => FileKind::File,
        SFlag::S_IFDIR => FileKind::Dir,
        SFlag::S_IFLNK => FileKind::Symlink,
        _ => FileKind::Other,
    }
}

/// File metadata plus the link count (which the child is not told).
struct Stat {
    stat: FileStat,
    kind: FileKind,
    links: u64,
}

fn stat_of(fd: BorrowedFd<'_>) -> std::io::Result<Stat> {
    let st = fstat(fd)?;
    let kind = kind_of(st.st_mode);
    Ok(Stat {
        stat: FileStat {
            kind,
            len: u64::try_from(st.st_size).unwrap_or(0),
            modified_secs: st.st_mtime,
            permissions: st.st_mode & 0o7777,
        },
        kind,
        links: st.st_nlink,
    })
}

fn list(fd: OwnedFd) -> Performed {
    let mut dir = nix::dir::Dir::from_fd(fd).map_err(|e| os_outcome(&e.into()))?;
    let mut entries = Vec::new();
    let mut omitted = 0u32;
    for entry in dir.iter() {
        let Ok(entry) = entry else {
            omitted = omitted.saturating_add(1);
            continue;
        };
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        match (std::str::from_utf8(name), entries.len() < MAX_DIR_ENTRIES) {
            (Ok(name), true) => {
                let kind = match entry.file_type() {
                    Some(nix::dir::Type::File) => FileKind::File,
                    Some(nix::dir::Type::Directory) => FileKind::Dir,
                    Some(nix::dir::Type::Symlink) => FileKind::Symlink,
                    _ => FileKind::Other,
                };
                entries.push(DirEntry {
                    name: name.to_owned(),
                    kind,
                });
            }
            (Ok(_), false) => {
                // Past the cap, stop reading: a huge directory must not cost a worker its whole
                // length (`omitted` then says "at least this many more").
                omitted = omitted.saturating_add(1);
                break;
            }
            (Err(_), _) => omitted = omitted.saturating_add(1),
        }
    }
    Ok((ServiceResponse::Entries { entries, omitted }, None))
}

/// Resolves `host` in the broker (the child has no resolver and no network) and keeps only the
/// addresses the grant allows. What the broker then connects to is one of these: the child never
/// names an address the broker did not check, and a name cannot re-resolve in between.
fn resolve_checked(
    profile: &Profile,
    grant: usize,
    host: &str,
    port: u16,
) -> Result<Vec<std::net::SocketAddr>, Outcome> {
    use std::net::ToSocketAddrs;
    let resolved: Vec<std::net::SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(addrs) => addrs.take(16).collect(),
        Err(_) => return Err(Outcome::Failed(Failure::NameNotResolved)),
    };
    let mut refusal = None;
    let allowed: Vec<std::net::SocketAddr> = resolved
        .into_iter()
        .filter(|addr| match profile.check_address(grant, addr.ip()) {
            Ok(()) => true,
            Err(reason) => {
                refusal.get_or_insert(reason);
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(Outcome::Denied(denied(
            refusal.unwrap_or(DenyReason::NotGranted),
        )));
    }
    Ok(allowed)
}

/// Connects to the first checked address that answers and passes the socket to the child.
fn connect(profile: &Profile, grant: usize, host: &str, port: u16) -> Performed {
    connected(profile, grant, host, port)
        .map(|stream| (ServiceResponse::Connected, Some(OwnedFd::from(stream))))
}

/// Resolves `host` here, checks every address against `profile.net[grant]`, and connects to the
/// first checked address that answers within the profile's fetch time cap.
fn connected(
    profile: &Profile,
    grant: usize,
    host: &str,
    port: u16,
) -> Result<std::net::TcpStream, Outcome> {
    let timeout = Duration::from_millis(profile.limits.fetch_timeout_ms.max(1));
    let mut last = Outcome::Failed(Failure::Other);
    for addr in resolve_checked(profile, grant, host, port)? {
        match std::net::TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = os_outcome(&e),
        }
    }
    Err(last)
}

/// Why [`connect_for`] made no connection: the words a child would get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectRefused {
    /// The profile does not allow it (`private-address`: the name resolved only to
    /// non-public addresses, which a grant by name does not cover).
    #[error("denied: {}", .0.as_str())]
    Denied(Denied),
    /// Allowed, and it failed (`name-not-resolved`, `connection-refused`, ...).
    #[error("failed: {}", failure_name(*.0))]
    Failed(Failure),
}

/// A TCP connection made exactly as the broker makes one for a child's `connect`: `profile`
/// decides `host:port`, the name is resolved here, every address is checked against the grant
/// (a non-public one only when the grant names that address, or allows private ones), and the
/// first that answers within the profile's fetch time cap is connected. For a program that cannot
/// ask (exec mode: `portcullis run --connect`), made before it starts and passed to it.
pub fn connect_for(
    profile: &Profile,
    host: &str,
    port: u16,
) -> Result<std::net::TcpStream, ConnectRefused> {
    match profile.decide(&Access::Connect { host, port }) {
        Decision::AllowNet { grant, .. } => {
            connected(profile, grant, host, port).map_err(|outcome| match outcome {
                Outcome::Denied(d) => ConnectRefused::Denied(d),
                Outcome::Failed(f) => ConnectRefused::Failed(f),
            })
        }
        Decision::Deny(reason) => Err(ConnectRefused::Denied(denied(reason))),
        _ => Err(ConnectRefused::Denied(Denied::BadRequest)),
    }
}

/// A flood of rate-limited requests would otherwise make one audit record each: write one a
/// second per child, carrying how many were not written. `None`: skip this one.
fn rate_limited_audit(served: &Served) -> Option<u32> {
    let mut state = lock(&served.rate_audit);
    let now = Instant::now();
    match state.1 {
        Some(last) if now.duration_since(last) < Duration::from_secs(1) => {
            state.0 = state.0.saturating_add(1);
            None
        }
        _ => {
            let suppressed = state.0;
            *state = (0, Some(now));
            Some(suppressed)
        }
    }
}

/// Writes the rate-limited denials a child's service still owes the audit log (when it ends).
fn flush_rate_audit(served: &Served, audit: &AuditSink) {
    let pending = std::mem::take(&mut lock(&served.rate_audit).0);
    if pending == 0 || !audit.wants_records() {
        return;
    }
    audit.write(&AuditRecord {
        time_ms: AuditRecord::now_ms(),
        child: served.child,
        kind: served.kind.clone(),
        pid: served.pid,
        op: "rate-limited",
        target: String::new(),
        decision: "deny",
        reason: Some(Denied::RateLimited.as_str()),
        suppressed: pending.saturating_sub(1),
        latency_us: 0,
    });
}
