//! Serving children's requests for files (the service channel): decide by policy, perform the
//! operation beneath a pre-opened directory with `openat2`, answer, audit.
//!
//! Threads: [`SERVICE_WORKERS`] workers wait on one epoll set holding every child's service
//! channel with `EPOLLONESHOT`: a child's channel is armed again only after its request was
//! answered, so each child has at most one request in flight, whatever it sends, and the epoll
//! ready list serves children in turn. A flooding child is additionally held to its profile's
//! request rate (token bucket). Nothing a child sends reaches a worker but through
//! `Channel::recv`, which caps size and fds and never panics.
//!
//! Trust boundary: the policy decides on the path *string* only to pick a grant and a relative
//! path; whether that relative path really stays beneath the grant is the kernel's decision
//! (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
//! RESOLVE_NO_XDEV`), made on the directory fd at the moment of the open. A symlink swapped in
//! between the decision and the open is refused by that same call; there is no window.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::stat::{fstat, SFlag};
use portcullis_ipc::service::{
    Denied, DirEntry, Failure, FileKind, FileStat, OpenFlags, ServiceRequest, ServiceResponse,
    MAX_DIR_ENTRIES,
};
use portcullis_ipc::{Channel, RecvError};
use portcullis_policy::{Access, Decision, DenyReason, OpenMode, Profile, RateLimiter};

use crate::audit::{bounded_target, AuditRecord, AuditSink};
use crate::sys::files as fs;

/// Worker threads serving requests.
pub const SERVICE_WORKERS: usize = 2;
/// Longest a worker waits for a child to take an answer before it stops serving that child.
const SERVICE_ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

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
    /// Set when the child broke the protocol on its service channel; the spawn side kills it.
    on_violation: Box<dyn Fn(portcullis_ipc::ProtocolViolation) + Send + Sync>,
}

/// The broker's request service: register each child's service channel; workers answer.
pub(crate) struct Service {
    epoll: Arc<Epoll>,
    served: Arc<Mutex<HashMap<u64, Arc<Served>>>>,
    audit: AuditSink,
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
    started: Instant,
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
}

impl Service {
    pub(crate) fn start(audit: AuditSink, send_timeout: Duration) -> std::io::Result<Arc<Service>> {
        let epoll = Arc::new(Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?);
        let mut service = Service {
            epoll,
            served: Arc::new(Mutex::new(HashMap::new())),
            audit,
            stop: Arc::new(AtomicBool::new(false)),
            workers: Vec::new(),
            started: Instant::now(),
        };
        for n in 0..SERVICE_WORKERS {
            let worker = Worker {
                epoll: Arc::clone(&service.epoll),
                served: Arc::clone(&service.served),
                audit: service.audit.clone(),
                stop: Arc::clone(&service.stop),
                started: service.started,
                // A child waiting for its answer reads it at once (its client blocks in recv);
                // one that does not would hold a worker, so it gets at most a second.
                send_timeout: send_timeout.min(SERVICE_ANSWER_TIMEOUT),
            };
            let handle = std::thread::Builder::new()
                .name(format!("portcullis-serve-{n}"))
                .spawn(move || worker.run())?;
            service.workers.push(handle);
        }
        Ok(Arc::new(service))
    }

    /// Starts serving a child: pre-opens every grant's directory and arms its channel.
    pub(crate) fn register(&self, r: Registration) -> std::io::Result<()> {
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
            on_violation: r.on_violation,
        });
        let event = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT, r.child);
        lock(&self.served).insert(r.child, Arc::clone(&served));
        if let Err(e) = self.epoll.add(served.channel.as_fd(), event) {
            // Not armed, so never served: do not keep its channel and grant fds either.
            lock(&self.served).remove(&r.child);
            return Err(e.into());
        }
        Ok(())
    }

    /// Stops serving a child (it ended or its handle was dropped).
    pub(crate) fn deregister(&self, child: u64) {
        // Flushing under the map's lock: when this returns, every record is written, even if
        // a worker was removing the child at the same moment.
        let mut map = lock(&self.served);
        if let Some(served) = map.remove(&child) {
            let _ = self.epoll.delete(served.channel.as_fd());
            flush_rate_audit(&served, &self.audit);
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
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

struct Worker {
    epoll: Arc<Epoll>,
    served: Arc<Mutex<HashMap<u64, Arc<Served>>>>,
    audit: AuditSink,
    stop: Arc<AtomicBool>,
    started: Instant,
    send_timeout: Duration,
}

impl Worker {
    fn run(self) {
        let mut events = [EpollEvent::empty(); 8];
        while !self.stop.load(Ordering::Acquire) {
            // A bounded wait, so a stopping service is noticed.
            let n = match self.epoll.wait(&mut events, EpollTimeout::from(100u8)) {
                Ok(n) => n,
                Err(nix::Error::EINTR) => continue,
                Err(_) => return,
            };
            for event in &events[..n] {
                let child = event.data();
                let served = lock(&self.served).get(&child).cloned();
                if let Some(served) = served {
                    if self.serve_one(&served) {
                        let rearm =
                            EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT, child);
                        let _ = self
                            .epoll
                            .modify(served.channel.as_fd(), &mut rearm.clone());
                    } else {
                        let mut map = lock(&self.served);
                        if map.remove(&child).is_some() {
                            flush_rate_audit(&served, &self.audit);
                        }
                        drop(map);
                        let _ = self.epoll.delete(served.channel.as_fd());
                    }
                }
            }
        }
    }

    /// Reads and answers one request. False when the child's service channel is finished.
    fn serve_one(&self, served: &Served) -> bool {
        let request = match served.channel.recv::<ServiceRequest>(Some(Instant::now())) {
            Ok((request, _fds)) => request,
            Err(RecvError::TimedOut) => return true,
            // The child attached fds this process had no room for; a client never does.
            Err(RecvError::FdsDropped) => return true,
            Err(RecvError::Violation(v)) => {
                (served.on_violation)(v);
                return false;
            }
            Err(RecvError::Closed | RecvError::Io(_)) => return false,
        };
        let received = Instant::now();
        let (response, fd, op, outcome) = self.answer(served, &request);
        // The record is written before the answer leaves: once a child sees a decision, its
        // audit record exists.
        let suppressed = match outcome.1 {
            Some(reason) if reason == Denied::RateLimited.as_str() => {
                match rate_limited_audit(served) {
                    Some(suppressed) => suppressed,
                    None => {
                        let fds: Vec<BorrowedFd<'_>> = fd.iter().map(AsFd::as_fd).collect();
                        return served
                            .channel
                            .send(&response, &fds, Some(Instant::now() + self.send_timeout))
                            .is_ok();
                    }
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
                target: audit_target(&request),
                decision: outcome.0,
                reason: outcome.1,
                latency_us: u64::try_from(received.elapsed().as_micros()).unwrap_or(u64::MAX),
            });
        }
        let fds: Vec<BorrowedFd<'_>> = fd.iter().map(AsFd::as_fd).collect();
        served
            .channel
            .send(&response, &fds, Some(Instant::now() + self.send_timeout))
            .is_ok()
    }

    /// Decides and performs one request: the answer, its fd, the operation's name, and the
    /// audit outcome (decision, reason).
    fn answer(&self, served: &Served, request: &ServiceRequest) -> Answer {
        let op = describe(request).0;
        let deny = |d: Denied| {
            (
                ServiceResponse::Denied(d),
                None,
                op,
                ("deny", Some(d.as_str())),
            )
        };
        if !lock(&served.limiter).try_acquire(self.started.elapsed()) {
            return deny(Denied::RateLimited);
        }
        let access = to_access(request);
        let decision = served.profile.decide(&access);
        let result = match decision {
            Decision::Deny(reason) => return deny(denied(reason)),
            Decision::AllowPath { grant, relative } => perform(served, request, grant, &relative),
            Decision::AllowRename { grant, from, to } => rename(served, grant, &from, &to),
            Decision::AllowNet {
                grant, host, port, ..
            } => match request {
                ServiceRequest::Fetch(fetch) => {
                    let addrs = resolve_checked(served, grant, &host, port);
                    let max_message = served.channel.limits().max_message_bytes;
                    addrs.and_then(|addrs| {
                        crate::fetch::fetch(fetch, addrs, &served.profile.limits, max_message)
                            .map(|response| (ServiceResponse::Fetched(response), None))
                            .map_err(Outcome::Failed)
                    })
                }
                _ => connect(served, grant, &host, port),
            },
        };
        match result {
            Ok((response, fd)) => (response, fd, op, ("allow", None)),
            Err(Outcome::Denied(d)) => deny(d),
            Err(Outcome::Failed(f)) => (
                ServiceResponse::Failed(f),
                None,
                op,
                ("error", Some(failure_name(f))),
            ),
        }
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

/// Only the broker maps a wire request to a policy access.
fn to_access(request: &ServiceRequest) -> Access<'_> {
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
    served: &Served,
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
        .filter(
            |addr| match served.profile.check_address(grant, addr.ip()) {
                Ok(()) => true,
                Err(reason) => {
                    refusal.get_or_insert(reason);
                    false
                }
            },
        )
        .collect();
    if allowed.is_empty() {
        return Err(Outcome::Denied(denied(
            refusal.unwrap_or(DenyReason::NotGranted),
        )));
    }
    Ok(allowed)
}

/// Connects to the first checked address that answers and passes the socket to the child.
fn connect(served: &Served, grant: usize, host: &str, port: u16) -> Performed {
    let timeout = Duration::from_millis(served.profile.limits.fetch_timeout_ms.max(1));
    let mut last = Outcome::Failed(Failure::Other);
    for addr in resolve_checked(served, grant, host, port)? {
        match std::net::TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok((ServiceResponse::Connected, Some(OwnedFd::from(stream)))),
            Err(e) => last = os_outcome(&e),
        }
    }
    Err(last)
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
