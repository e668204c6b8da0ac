//! The supervisor: a broker thread per child ("portcullis-child-N") that watches it from
//! outside — its seccomp violations — and serves its requests when it rings its doorbell; and
//! one thread ("portcullis-supervisor") for wall-clock deadlines.
//!
//! **Violations.** Each child's seccomp filter answers every syscall outside the allowlist with
//! `SECCOMP_RET_USER_NOTIF`. The child passed the filter's listener fd to the broker with its
//! `LockedDown` report and kept no copy, so the kernel, not the child, tells the child's thread
//! the syscall number, architecture, arguments and the calling thread; the calling thread stays
//! stopped in the kernel until the broker answers. A report therefore arrives even if the
//! child's memory is corrupt, and the child cannot forge or suppress it. The profile decides what
//! follows ([`OnViolation`]): `Kill` (the default) has the zygote SIGKILL the child while
//! the thread is still stopped, so the syscall never runs; `Deny` answers the syscall with
//! `EPERM` and the child goes on. Either way the violation is recorded on the child and written
//! to the audit log (at most [`AUDIT_BURST`] records, then one a second with a count, so a child
//! looping on a denied syscall cannot flood the log).
//!
//! **The doorbell.** One call outside the allowlist is not a violation: the reserved syscall
//! `portcullis_ipc::service::DOORBELL_SYSCALL` with `DOORBELL_TAG` as its first argument, of the
//! native architecture. The child makes it after writing a service request; its thread serves the
//! child's channel ([`crate::serve::Doorbell::ring`]) and answers the syscall with 0, never
//! running it. The listener is switched to synchronous wake-ups
//! (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`, Linux 6.6): the kernel wakes the thread waiting on it
//! (in `SECCOMP_IOCTL_NOTIF_RECV`, or in `poll` before it) on the CPU the child was running on,
//! and the child on the thread's, so neither waits for another CPU to wake. That is why each
//! child has a thread of its own rather than one thread waiting on them all: an epoll wake-up
//! drops that hint. On an older kernel the doorbell works the same, with ordinary wake-ups. When
//! the child's last task ends, a blocked `NOTIF_RECV` fails with ENOENT from Linux 6.11 on, and
//! the listener hangs up, which ends the thread; before 6.11 only a `poll` sees the hang-up, so
//! there the thread waits in `poll` before each read. Any other failure to listen has the child
//! killed ([`Event::SupervisionLost`]): unwatched, its forbidden calls would fail unreported.
//!
//! **Wall clock.** A child spawned with a wall-clock limit is killed at its deadline; its end is
//! reported as a wall timeout.
//!
//! Must never: answer a notification with "continue" (the syscall would run unchecked), take a
//! call for the doorbell on anything but its number, tag and the native architecture, or keep a
//! child's listener after the child ended (its thread ends when the filter has no task left),
//! or leave a child running that no thread listens to.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use libseccomp::{ScmpArch, ScmpSyscall};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use portcullis_ipc::mailbox;
use serde::Serialize;

use crate::audit::{AuditRecord, AuditSink};
use crate::serve::{Doorbell, Rung};
use crate::sys::seccomp_notify::{self, Notification};

/// What the broker does when a child makes a syscall outside its allowlist: the child's policy
/// profile says (`limits.on_violation`).
pub use portcullis_policy::OnViolation;

/// One syscall a child made outside its allowlist, as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The syscall's name (`"ptrace"`), `"x32:<name>"`/`"i386:<name>"` for another
    /// architecture's call, or `"unknown"` when the number has no name.
    pub syscall: String,
    /// The raw syscall number as the kernel saw it.
    pub number: i32,
    /// The call's architecture (`x86_64`, `x32`, `i386`, or `0x…` for any other).
    pub arch: String,
    /// The six argument registers.
    pub args: [u64; 6],
    /// The instruction pointer at the call.
    pub instruction_pointer: u64,
    /// The calling thread, in the broker's PID namespace.
    pub thread: u32,
    /// What the broker did.
    pub mode: OnViolation,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}(", self.syscall)?;
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{a:#x}")?;
        }
        write!(f, ") [{} #{}]", self.arch, self.number)
    }
}

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: i32 = 0x4000_0000;

impl Violation {
    fn from_notification(n: &Notification, mode: OnViolation) -> Self {
        let named = |arch: ScmpArch, nr: i32| {
            ScmpSyscall::from(nr)
                .get_name_by_arch(arch)
                .unwrap_or_else(|_| "unknown".to_owned())
        };
        let (arch, syscall) = match n.arch {
            AUDIT_ARCH_X86_64 if n.nr & X32_SYSCALL_BIT != 0 => (
                "x32".to_owned(),
                format!("x32:{}", named(ScmpArch::X32, n.nr)),
            ),
            AUDIT_ARCH_X86_64 => ("x86_64".to_owned(), named(ScmpArch::X8664, n.nr)),
            AUDIT_ARCH_I386 => (
                "i386".to_owned(),
                format!("i386:{}", named(ScmpArch::X86, n.nr)),
            ),
            other => (format!("{other:#x}"), "unknown".to_owned()),
        };
        Self {
            syscall,
            number: n.nr,
            arch,
            args: n.args,
            instruction_pointer: n.instruction_pointer,
            thread: n.pid,
            mode,
        }
    }
}

/// What the supervisor tells a child's owner.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// The child made a forbidden syscall. In `Kill` mode the owner must kill the child now.
    Violation(Violation),
    /// The child's wall-clock deadline passed; the owner must kill it.
    WallTimeout,
    /// The broker can no longer read the child's listener; the owner must kill it.
    SupervisionLost,
}

/// A child to watch.
pub(crate) struct Watch {
    pub child: u64,
    pub kind: String,
    pub pid: u32,
    pub listener: OwnedFd,
    pub mode: OnViolation,
    pub wall_deadline: Option<Instant>,
    pub on_event: Box<dyn Fn(Event) + Send + Sync>,
    /// Serves the child's service channel when it rings.
    pub doorbell: Doorbell,
}

/// Stack of a child's thread: it decodes one small request at a time, performs one file
/// operation and writes one audit record; 256 KiB leaves room for a debug build.
const CHILD_THREAD_STACK: usize = 256 * 1024;

/// Longest [`Supervisor::forget`] waits for a child's thread to end (the child being killed).
const FORGET_WAIT: Duration = Duration::from_secs(1);

/// Violation records written one by one per child before the rest are counted.
pub const AUDIT_BURST: u32 = 16;

struct Watched {
    /// The child's thread (see [`Supervisor::watch`]); `None` until it is started.
    thread: Option<std::thread::JoinHandle<()>>,
    kind: String,
    pid: u32,
    mode: OnViolation,
    wall_deadline: Option<Instant>,
    on_event: Arc<dyn Fn(Event) + Send + Sync>,
    audited: u32,
    suppressed: u32,
    last_audit: Option<Instant>,
}

/// Epoll data of the wake-up eventfd, the only fd in the supervisor's epoll set.
const WAKE: u64 = u64::MAX;

/// `AUDIT_ARCH_*` of this build's own syscalls: the only architecture a doorbell rings in.
#[cfg(target_arch = "x86_64")]
const NATIVE_AUDIT_ARCH: u32 = AUDIT_ARCH_X86_64;
#[cfg(target_arch = "aarch64")]
const NATIVE_AUDIT_ARCH: u32 = 0xC000_00B7;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("the service doorbell needs this architecture's AUDIT_ARCH_* (supervise.rs)");

/// Answers a child's ask for its mailbox (`portcullis_ipc::mailbox::ASK`): installs its fd of
/// the mailbox in the child with the answer, or answers why not (the child then sends
/// everything on its channel). The fd is never in flight on a socket, where it would count
/// against the fds the child's host user may have in flight.
fn hand_over_mailbox(listener: &OwnedFd, doorbell: &mut Doorbell, id: u64) {
    let handed = match doorbell.mailbox_fd() {
        Ok(fd) => seccomp_notify::answer_with_fd(listener.as_fd(), id, fd).map_err(|e| {
            // ENOENT: the ask was interrupted (nothing installed); the child asks again.
            e.raw_os_error().unwrap_or(libc::EIO)
        }),
        Err(errno) => Err(errno),
    };
    match handed {
        Ok(_) => doorbell.mailbox_handed(),
        // A failed install costs a token like an empty ring: a child cannot make its thread
        // try again faster than its profile allows.
        Err(libc::ENOENT) => doorbell.throttle(),
        // EINVAL: a kernel before 5.14 (no SECCOMP_ADDFD_FLAG_SEND); EMFILE: the child's fd
        // table is full.
        Err(errno) => {
            doorbell.throttle();
            let _ = seccomp_notify::answer_error(listener.as_fd(), id, errno);
        }
    }
}

/// Whether a thread blocked in `SECCOMP_IOCTL_NOTIF_RECV` is woken (with ENOENT) when the
/// filter's last task exits: Linux 6.11 and later. Read once from the running kernel's release.
fn recv_ends_with_filter() -> bool {
    static ENDS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENDS.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .and_then(|release| kernel_version(&release))
            .is_some_and(|version| version >= (6, 11))
    })
}

/// `6.18.44-fc-v657` → (6, 18).
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?;
    let digits = minor
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(minor.len());
    let minor = minor[..digits].parse().ok()?;
    Some((major, minor))
}

/// Whether `n` is the child's doorbell (see the module docs), not a violation.
fn is_doorbell(n: &Notification) -> bool {
    use portcullis_ipc::service::{DOORBELL_SYSCALL, DOORBELL_TAG};
    n.arch == NATIVE_AUDIT_ARCH && i64::from(n.nr) == DOORBELL_SYSCALL && n.args[0] == DOORBELL_TAG
}

pub(crate) struct Supervisor {
    epoll: Epoll,
    wake: EventFd,
    watched: Mutex<HashMap<u64, Watched>>,
    deadlines: Mutex<BTreeSet<(Instant, u64)>>,
    audit: AuditSink,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Supervisor {
    /// Starts the supervisor thread. It runs until the process exits.
    pub(crate) fn start(audit: AuditSink) -> std::io::Result<Arc<Self>> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        epoll.add(wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
        let supervisor = Arc::new(Self {
            epoll,
            wake,
            watched: Mutex::new(HashMap::new()),
            deadlines: Mutex::new(BTreeSet::new()),
            audit,
        });
        let weak = Arc::downgrade(&supervisor);
        std::thread::Builder::new()
            .name("portcullis-supervisor".into())
            .spawn(move || {
                while let Some(supervisor) = weak.upgrade() {
                    supervisor.turn();
                }
            })?;
        Ok(supervisor)
    }

    /// Starts watching a child: its own thread reads its listener until the child is gone.
    pub(crate) fn watch(self: &Arc<Self>, watch: Watch) -> std::io::Result<()> {
        let Watch {
            child,
            kind,
            pid,
            listener,
            mode,
            wall_deadline,
            on_event,
            doorbell,
        } = watch;
        if let Err(e) = seccomp_notify::set_sync_wakeup(listener.as_fd()) {
            // Linux before 6.6: the doorbell works with ordinary wake-ups.
            tracing::debug!(child, error = %e, "no synchronous seccomp wake-ups");
        }
        lock(&self.watched).insert(
            child,
            Watched {
                thread: None,
                kind,
                pid,
                mode,
                wall_deadline,
                on_event: Arc::from(on_event),
                audited: 0,
                suppressed: 0,
                last_audit: None,
            },
        );
        let supervisor = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("portcullis-child-{child}"))
            .stack_size(CHILD_THREAD_STACK)
            .spawn(move || {
                let mut doorbell = doorbell;
                supervisor.serve_child(child, &listener, &mut doorbell);
            });
        match spawned {
            Ok(thread) => {
                if let Some(w) = lock(&self.watched).get_mut(&child) {
                    w.thread = Some(thread);
                }
            }
            Err(e) => {
                lock(&self.watched).remove(&child);
                return Err(e);
            }
        }
        if let Some(deadline) = wall_deadline {
            lock(&self.deadlines).insert((deadline, child));
            let _ = self.wake.write(1);
        }
        Ok(())
    }

    /// Stops watching a child (its handle was dropped or it ended). Its thread ends, closing
    /// the listener and the child's service channel, once no task of the child is left. For a
    /// child that has `ended` already that is a moment away, and this waits for it (at most
    /// [`FORGET_WAIT`]) so the fds are gone when the child's handle is; a child being killed
    /// now is not waited for (dropping a thousand live children would wait for each kill in
    /// turn): its thread ends, and closes them, when the kill lands.
    pub(crate) fn forget(&self, child: u64, ended: bool) {
        let Some(w) = lock(&self.watched).remove(&child) else {
            return;
        };
        if let Some(deadline) = w.wall_deadline {
            lock(&self.deadlines).remove(&(deadline, child));
        }
        if let Some(thread) = w.thread.filter(|_| ended) {
            let until = Instant::now() + FORGET_WAIT;
            while !thread.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_micros(200));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }

    /// How many children are watched (for leak checks).
    pub(crate) fn watched(&self) -> usize {
        lock(&self.watched).len()
    }

    /// One wait on the epoll set (at most 100 ms, so the thread notices when the broker is gone).
    fn turn(&self) {
        let now = Instant::now();
        let next = lock(&self.deadlines).first().map(|&(d, _)| d);
        let wait = next.map_or(Duration::from_millis(100), |d| {
            d.saturating_duration_since(now)
                .min(Duration::from_millis(100))
        });
        // Round up so a deadline 0.4 ms away does not spin.
        let ms = u16::try_from(wait.as_millis() + u128::from(wait.subsec_nanos() % 1_000_000 != 0))
            .unwrap_or(100);
        let mut events = [EpollEvent::empty(); 16];
        let n = match self.epoll.wait(&mut events, EpollTimeout::from(ms)) {
            Ok(n) => n,
            Err(nix::Error::EINTR) => 0,
            Err(e) => {
                tracing::error!(error = %e, "supervisor epoll failed");
                std::thread::sleep(Duration::from_millis(10));
                0
            }
        };
        for event in &events[..n] {
            if event.data() == WAKE {
                let _ = self.wake.read();
            }
        }
        self.expire(Instant::now());
    }

    /// The child's thread: waits for each notification of its listener and serves it, until
    /// the listener hangs up (no task of the child is left). If it cannot go on for any other
    /// reason, the child is killed: a child nobody watches would have every call outside its
    /// allowlist fail with `ENOSYS` unreported, and its requests unanswered.
    fn serve_child(&self, child: u64, listener: &OwnedFd, doorbell: &mut Doorbell) {
        // Errors in a row that did not block (poll's EPOLLERR, an interrupted lock in the
        // kernel): a few are retried, a stream of them is a listener gone wrong.
        let mut failures = 0u32;
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            tracing::error!(child, error = %e, "{what} failed; killing the child");
            let on_event = lock(&self.watched)
                .get(&child)
                .map(|w| Arc::clone(&w.on_event));
            if let Some(on_event) = on_event {
                on_event(Event::SupervisionLost);
            }
        };
        let recv_ends = recv_ends_with_filter();
        loop {
            // Before Linux 6.11 a thread blocked in `SECCOMP_IOCTL_NOTIF_RECV` is not woken when
            // the last task of the filter exits; only poll sees the hang-up, so it waits in poll
            // first (whose wake-up keeps the synchronous flag; epoll's would not). From 6.11 the
            // blocked read itself fails with ENOENT then, and the poll (~0.5 µs a ring) is left
            // out.
            if !recv_ends {
                match seccomp_notify::wait(listener.as_fd()) {
                    Ok(seccomp_notify::Ready::HungUp) => return,
                    Ok(seccomp_notify::Ready::Notification) => {}
                    Ok(seccomp_notify::Ready::Error) | Err(_) if failures < 16 => {
                        failures += 1;
                        continue;
                    }
                    Ok(seccomp_notify::Ready::Error) => {
                        return failed("waiting on the seccomp listener", &"POLLERR");
                    }
                    Err(e) => return failed("waiting on the seccomp listener", &e),
                }
            }
            let notification = match seccomp_notify::receive(listener.as_fd()) {
                Ok(n) => n,
                // The child is gone (its filter has no task left), or the caller died or was
                // interrupted before the read.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    match seccomp_notify::hung_up(listener.as_fd()) {
                        Ok(true) => return,
                        Ok(false) => continue,
                        Err(e) => return failed("waiting on the seccomp listener", &e),
                    }
                }
                Err(e) => return failed("reading a seccomp notification", &e),
            };
            failures = 0;
            if is_doorbell(&notification) && notification.args[1] == mailbox::ASK {
                hand_over_mailbox(listener, doorbell, notification.id);
            } else if is_doorbell(&notification) {
                let mut answered = false;
                let [_, len, seq, ..] = notification.args;
                let rung = doorbell.ring(len, seq, &mut || {
                    if !answered {
                        answered = true;
                        // ENOENT: the ringing thread is gone (killed); nothing to answer.
                        let _ = seccomp_notify::answer_value(listener.as_fd(), notification.id, 0);
                    }
                });
                if !answered {
                    let id = notification.id;
                    // ENOENT, as above.
                    let _ = match rung {
                        Rung::Value(value) => seccomp_notify::answer_value(
                            listener.as_fd(),
                            id,
                            i64::try_from(value).unwrap_or(0),
                        ),
                        Rung::Busy => {
                            seccomp_notify::answer_error(listener.as_fd(), id, libc::EBUSY)
                        }
                    };
                }
            } else {
                self.violated(child, listener, &notification);
            }
        }
    }

    /// Handles a syscall of `child` outside its allowlist.
    fn violated(&self, child: u64, listener: &OwnedFd, notification: &Notification) {
        let (mode, on_event) = {
            let watched = lock(&self.watched);
            let Some(w) = watched.get(&child) else {
                // Forgotten: the owner is killing it. The call stays stopped until it dies.
                return;
            };
            (w.mode, Arc::clone(&w.on_event))
        };
        let violation = Violation::from_notification(notification, mode);
        // Recorded before the answer: once the child sees EPERM it may report and exit, and its
        // owner must find the violation recorded by then.
        self.audit_violation(child, &violation);
        on_event(Event::Violation(violation));
        if mode == OnViolation::Deny {
            // ENOENT: the caller is gone already; nothing to answer.
            let _ = seccomp_notify::answer_error(listener.as_fd(), notification.id, libc::EPERM);
        }
        // In Kill mode the thread stays stopped in the kernel (never answered) until the zygote
        // has killed the child, so the syscall never runs.
    }

    fn audit_violation(&self, child: u64, violation: &Violation) {
        let now = Instant::now();
        let (kind, pid, suppressed) = {
            let mut watched = lock(&self.watched);
            let Some(w) = watched.get_mut(&child) else {
                return;
            };
            if w.audited >= AUDIT_BURST
                && w.last_audit
                    .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
            {
                w.suppressed = w.suppressed.saturating_add(1);
                return;
            }
            w.audited = w.audited.saturating_add(1);
            w.last_audit = Some(now);
            (w.kind.clone(), w.pid, std::mem::take(&mut w.suppressed))
        };
        tracing::warn!(
            child,
            kind = %kind,
            pid,
            syscall = %violation.syscall,
            number = violation.number,
            args = ?violation.args,
            mode = ?violation.mode,
            "seccomp violation"
        );
        if !self.audit.wants_records() {
            return;
        }
        self.audit.write(&AuditRecord {
            time_ms: AuditRecord::now_ms(),
            child,
            kind,
            pid,
            op: "syscall",
            target: violation.to_string(),
            decision: "deny",
            reason: Some(match violation.mode {
                OnViolation::Kill => "seccomp-kill",
                OnViolation::Deny => "seccomp-eperm",
            }),
            suppressed,
            latency_us: 0,
        });
    }

    /// Fires every wall-clock deadline that has passed.
    fn expire(&self, now: Instant) {
        loop {
            let due = {
                let mut deadlines = lock(&self.deadlines);
                match deadlines.first() {
                    Some(&(d, child)) if d <= now => {
                        deadlines.pop_first();
                        Some(child)
                    }
                    _ => None,
                }
            };
            let Some(child) = due else {
                return;
            };
            let on_event = {
                let mut watched = lock(&self.watched);
                watched.get_mut(&child).map(|w| {
                    w.wall_deadline = None;
                    Arc::clone(&w.on_event)
                })
            };
            if let Some(on_event) = on_event {
                on_event(Event::WallTimeout);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_ipc::service::{DOORBELL_SYSCALL, DOORBELL_TAG};

    fn call(arch: u32, nr: i64, first: u64) -> Notification {
        Notification {
            id: 1,
            pid: 2,
            arch,
            nr: i32::try_from(nr).unwrap(),
            instruction_pointer: 0,
            args: [first, 0, 0, 0, 0, 0],
        }
    }

    #[test]
    fn kernel_releases_are_read_to_major_and_minor() {
        assert_eq!(kernel_version("6.18.44-fc-v657\n"), Some((6, 18)));
        assert_eq!(kernel_version("6.11.0"), Some((6, 11)));
        assert_eq!(kernel_version("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(kernel_version("6.10rc3"), Some((6, 10)));
        assert_eq!(kernel_version("4.4"), Some((4, 4)));
        assert_eq!(kernel_version("garbage"), None);
        assert_eq!(kernel_version(""), None);
        assert!((6, 10) < (6, 11) && (5, 19) < (6, 11) && (7, 0) > (6, 11));
    }

    #[test]
    fn only_the_native_call_with_its_tag_is_the_doorbell() {
        assert!(is_doorbell(&call(
            NATIVE_AUDIT_ARCH,
            DOORBELL_SYSCALL,
            DOORBELL_TAG
        )));
        // Denied: another tag, another number, the x32 and i386 forms of the same number.
        assert!(!is_doorbell(&call(
            NATIVE_AUDIT_ARCH,
            DOORBELL_SYSCALL,
            DOORBELL_TAG ^ 1
        )));
        assert!(!is_doorbell(&call(NATIVE_AUDIT_ARCH, DOORBELL_SYSCALL, 0)));
        assert!(!is_doorbell(&call(
            NATIVE_AUDIT_ARCH,
            DOORBELL_SYSCALL + 1,
            DOORBELL_TAG
        )));
        let x32 = DOORBELL_SYSCALL | i64::from(X32_SYSCALL_BIT);
        assert!(!is_doorbell(&call(NATIVE_AUDIT_ARCH, x32, DOORBELL_TAG)));
        assert!(!is_doorbell(&call(
            AUDIT_ARCH_I386,
            DOORBELL_SYSCALL,
            DOORBELL_TAG
        )));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_doorbell_is_a_syscall_no_allowlist_has() {
        // If an allowlist ever named it, the call would run (ENOSYS) instead of reaching the
        // broker, and the child would wait for answers nobody announced.
        let named = ScmpSyscall::from(i32::try_from(DOORBELL_SYSCALL).unwrap())
            .get_name_by_arch(ScmpArch::X8664)
            .unwrap();
        assert_eq!(named, "tuxcall");
        use crate::seccomp::{exec_rules, ExecShape, RootShape, CHILD_ALLOWLIST};
        assert!(CHILD_ALLOWLIST.iter().all(|r| r.name != named));
        for root in [RootShape::Empty, RootShape::ReadOnly, RootShape::ReadWrite] {
            for processes in [false, true] {
                let rules = exec_rules(ExecShape { processes, root });
                assert!(
                    rules.iter().all(|r| r.name != named),
                    "{root:?} names the doorbell"
                );
            }
        }
    }
}
