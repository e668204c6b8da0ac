//! `portcullis serve`: a long-running broker that runs `portcullis run` requests, so a run does
//! not pay for a broker's start (its zygote, filters, threads and cgroup setup) or, for a static
//! program with default limits, for its child's fork, namespaces and lockdown: the server keeps
//! locked-down children waiting for a program (`BrokerConfig::prefork_programs`).
//!
//! The trust model: the server serves exactly one user, the one it runs as, and only clients the
//! kernel reports exactly as confined as the server itself (`crate::peer`: a standalone run would
//! inherit its caller's confinement, a served one gets the server's). Its socket's directory is
//! the user's own (mode 0700), a lock file keeps a second server off the path, and every
//! connection's peer is checked before anything is read. The client checks the server's uid and
//! directory the same way before it sends anything, so a socket planted by someone else never
//! receives a terminal or a program. A request is data the client computed (argv, environment,
//! limits, the program's root); the server checks it as it would a policy file and accepts it,
//! and only then does the client send the fds (the program, opened with the client's own rights,
//! its stdio and connections) with a go; the run goes through the same code as a standalone
//! `run` ([`crate::run::execute`]). A client that goes away takes its program with it; one whose
//! server does not answer runs the program itself. The server starts a new broker when the
//! host's mounts change, so program roots come from the current mount tree.
//!
//! Must never: start a program before the client's go, run a request of a peer it could not
//! check, or hold a client's fds when it has not accepted its request.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    accept4, bind, connect, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
};
use portcullis::ipc::Channel;
use portcullis::serve_protocol::{limits, MAX_LINE_BYTES};
pub use portcullis::serve_protocol::{RunGo, RunReply, RunRequest, PROTOCOL, SOCKET_ENV};
use portcullis::{Broker, BrokerConfig, Entries};

use crate::peer::{self, Confinement, Peer};
use crate::{CommandError, Done};

/// How long a client may take to send its request once connected, and its go once accepted.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client waits for a server to accept its request before it runs the program itself
/// (or, with `--server`, gives up): a server answers in well under a millisecond unless it is
/// stuck.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the server listens when no `--socket` is given: `$PORTCULLIS_SERVER`, else
/// `$XDG_RUNTIME_DIR/portcullis/run.sock`, else `/tmp/portcullis-UID/run.sock`.
pub fn default_socket() -> PathBuf {
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
    {
        return dir.join("portcullis").join("run.sock");
    }
    PathBuf::from(format!("/tmp/portcullis-{}", nix::unistd::geteuid())).join("run.sock")
}

/// Run many `portcullis run` requests from one long-running sandbox broker.
///
/// `serve` starts a broker (its zygote, filters and service threads) once and listens on a Unix
/// socket; `portcullis run` finds it there and sends its run instead of starting a broker of its
/// own. A static program with default limits then starts in a child that was forked and fully
/// locked down before the request came (--warm of them wait at any time), which is most of a
/// run's cost. Every run gets exactly the sandbox a standalone run gets: the same filter,
/// namespaces, limits, cgroup and supervision; a program that outlives its `run` (the client was
/// killed) is killed.
///
/// Only the user the server runs as is served: each connection's credentials are checked, and
/// the socket's directory is private to that user. The server runs in the foreground until it
/// is killed; its children end with it.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Examples:
  portcullis serve &
  portcullis run -- ./static-tool            (served; the same output and exit status)
  portcullis serve --socket /run/user/1000/p.sock --warm 8
  PORTCULLIS_SERVER=/run/user/1000/p.sock portcullis run -- ./static-tool
  portcullis run --no-server -- ./static-tool   (a broker of its own, as without a server)

Exit status:
  1  the socket cannot be made (a server is listening there already, or its directory is
     someone else's or open to others), or the broker cannot start
  2  usage error")]
pub struct ServeArgs {
    /// The socket to listen on. Default: $PORTCULLIS_SERVER, else
    /// $XDG_RUNTIME_DIR/portcullis/run.sock, else /tmp/portcullis-UID/run.sock. Its directory
    /// is made (mode 0700) if missing.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Locked-down children kept waiting for a static program with default limits; 0 for none
    /// (every run then forks its child when it comes).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(0..=64))]
    warm: u16,
    /// Most runs at once; a run beyond it is refused and the client starts its own broker.
    #[arg(long = "max-runs", value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    max_runs: u16,
}

fn failed(message: String) -> Result<Done, CommandError> {
    eprintln!("portcullis serve: {message}");
    Ok(Done {
        stdout: String::new(),
        status: crate::status::FAILED,
    })
}

/// Makes `dir` (mode 0700) if missing; refuses one owned by another user or open to others.
fn private_dir(dir: &Path) -> Result<(), String> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => check_private_dir(dir),
        Err(e) => Err(format!("cannot make {}: {e}", dir.display())),
    }
}

/// `dir` is a directory (not a symlink) of this user that no one else may write to: nobody
/// else can have put a socket there or replace ours.
fn check_private_dir(dir: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let uid = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "{} must be a directory of uid {uid} that no one else may write to (found uid {}, \
             mode {:o}); remove it or give --socket elsewhere",
            dir.display(),
            meta.uid(),
            meta.permissions().mode() & 0o7777
        ));
    }
    Ok(())
}

/// Holds `PATH.lock` (in the socket's private directory) for the server's life: a second server
/// on the same path is refused before it could take a socket it saw as stale while the first
/// was still starting.
fn lock_socket_path(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, String> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&name)
        .map_err(|e| format!("cannot open {}: {e}", Path::new(&name).display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        format!(
            "a server is listening at {} already (or starting there)",
            path.display()
        )
    })
}

fn seqpacket() -> nix::Result<OwnedFd> {
    socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
}

/// Binds the listening socket at `path`, replacing a stale socket nobody listens on.
fn listen_at(path: &Path) -> Result<OwnedFd, String> {
    let addr = UnixAddr::new(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(format!("{} exists and is not a socket", path.display()));
        }
        let probe = seqpacket().map_err(|e| format!("socket: {e}"))?;
        match connect(probe.as_raw_fd(), &addr) {
            Ok(()) => {
                return Err(format!(
                    "a server is listening at {} already",
                    path.display()
                ))
            }
            // Left by a server that was killed: nobody listens.
            Err(nix::errno::Errno::ECONNREFUSED) => {
                std::fs::remove_file(path)
                    .map_err(|e| format!("cannot remove the stale {}: {e}", path.display()))?;
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    let listener = seqpacket().map_err(|e| format!("socket: {e}"))?;
    bind(listener.as_raw_fd(), &addr).map_err(|e| format!("bind {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    listen(&listener, Backlog::new(128).unwrap_or(Backlog::MAXCONN))
        .map_err(|e| format!("listen {}: {e}", path.display()))?;
    Ok(listener)
}

/// Runs the server until it is killed.
pub fn serve(args: &ServeArgs) -> Result<Done, CommandError> {
    // Absolute, so its directory is always checked.
    let path = crate::run::absolute(&args.socket.clone().unwrap_or_else(default_socket));
    if let Some(dir) = path.parent() {
        if let Err(message) = private_dir(dir) {
            return failed(message);
        }
    }
    let _lock = match lock_socket_path(&path) {
        Ok(lock) => lock,
        Err(message) => return failed(message),
    };
    let warm = usize::from(args.warm);
    let broker = match start_broker(warm) {
        Ok(broker) => Arc::new(RwLock::new(Arc::new(broker))),
        Err(message) => return failed(message),
    };
    // A broker's zygote clones the host's mount tree once, when it starts, and mounts a dynamic
    // program's root from that copy: a long-running server follows the host's mounts by
    // starting a new broker when they change (runs under way finish on the old one, whose copy
    // then goes, so an unmounted filesystem is not kept busy).
    let stale = Arc::new(AtomicBool::new(false));
    let mounts = match std::fs::File::open("/proc/self/mountinfo") {
        Ok(mounts) => mounts,
        Err(e) => return failed(format!("cannot watch /proc/self/mountinfo: {e}")),
    };
    // The server's own confinement, to compare each client's with: read once its broker has
    // started (which raised its open-files limit, as a client's own broker would).
    let ours = match Confinement::of_self() {
        Ok(ours) => Arc::new(ours),
        Err(message) => return failed(message),
    };
    let listener = match listen_at(&path) {
        Ok(listener) => listener,
        Err(message) => return failed(message),
    };
    eprintln!(
        "portcullis serve: listening on {} ({} warm children, at most {} runs at once)",
        path.display(),
        args.warm,
        args.max_runs
    );
    // Each run is served on a thread of its own, kept for the next run once it is done: an idle
    // thread takes a new connection at once; with none idle, a new one starts, up to
    // --max-runs; past that the run is refused and the client starts its own broker.
    let (handoff, idle) = crossbeam_channel::bounded::<Channel>(0);
    let threads = Arc::new(AtomicUsize::new(0));
    let max_runs = usize::from(args.max_runs);
    loop {
        let retry = stale.load(Ordering::Acquire);
        match wait_for_connection(&listener, &mounts, retry) {
            Ok(Wake::Connection) => {}
            Ok(Wake::MountsChanged) => {
                settle(&mounts);
                renew(&broker, &stale, warm);
                continue;
            }
            // The retry of a failed renewal (see `renew`).
            Ok(Wake::Retry) => {
                renew(&broker, &stale, warm);
                continue;
            }
            Err(e) => {
                eprintln!("portcullis serve: poll: {e}; waiting");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        }
        let conn = match accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
            Ok(fd) => crate::sys::owned_fd(fd),
            Err(
                nix::errno::Errno::EINTR
                | nix::errno::Errno::ECONNABORTED
                | nix::errno::Errno::EAGAIN,
            ) => continue,
            // Out of fds or memory, say: the runs under way go on; accept again in a moment.
            Err(e) => {
                eprintln!("portcullis serve: accept: {e}; waiting");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let conn = Channel::from_fd(conn, limits());
        let conn = match handoff.try_send(conn) {
            Ok(()) => continue,
            // Disconnected cannot happen (this loop holds a receiver); either way no thread
            // took it.
            Err(
                crossbeam_channel::TrySendError::Full(conn)
                | crossbeam_channel::TrySendError::Disconnected(conn),
            ) => conn,
        };
        if threads.load(Ordering::Acquire) >= max_runs {
            refuse(&conn, "the server runs its most runs at once already", true);
            continue;
        }
        let (broker, next, ours) = (Arc::clone(&broker), idle.clone(), Arc::clone(&ours));
        let stale = Arc::clone(&stale);
        threads.fetch_add(1, Ordering::AcqRel);
        // Counted out however the thread ends, a panic included, or if it never starts (the
        // closure is dropped then, and the client, answered by a closed connection, runs the
        // program itself).
        let counted = Counted(Arc::clone(&threads));
        let spawned = std::thread::Builder::new()
            .name("portcullis-run".into())
            .spawn(move || {
                let _counted = counted;
                serve_one((&current(&broker), &stale), &ours, &conn);
                drop(conn);
                for conn in next {
                    serve_one((&current(&broker), &stale), &ours, &conn);
                }
            });
        if let Err(e) = spawned {
            eprintln!("portcullis serve: cannot start a thread for a run: {e}");
        }
    }
}

/// The broker new runs start on.
fn current(broker: &RwLock<Arc<Broker>>) -> Arc<Broker> {
    Arc::clone(&broker.read().unwrap_or_else(PoisonError::into_inner))
}

/// Starts the server's broker, with `warm` pre-forked exec-mode children.
fn start_broker(warm: usize) -> Result<Broker, String> {
    Broker::start(
        Entries::new(),
        BrokerConfig {
            prefork: 0,
            prefork_programs: warm,
            network_workers: 1,
            ..BrokerConfig::default()
        },
    )
    .map_err(|e| {
        format!(
            "cannot start the sandbox broker: {}; run `portcullis doctor`",
            crate::text::error_chain(&e)
        )
    })
}

/// What woke the accept loop.
enum Wake {
    /// A client is connecting.
    Connection,
    /// The host's mounts changed (`/proc/self/mountinfo` reports `POLLPRI`).
    MountsChanged,
    /// A second passed since a renewal failed: try again.
    Retry,
}

/// Waits for a connection or a change of the host's mounts; with `retry`, at most a second
/// (then [`Wake::Retry`]).
fn wait_for_connection(
    listener: &OwnedFd,
    mounts: &std::fs::File,
    retry: bool,
) -> nix::Result<Wake> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [
        PollFd::new(listener.as_fd(), PollFlags::POLLIN),
        PollFd::new(mounts.as_fd(), PollFlags::POLLPRI),
    ];
    let timeout = if retry {
        PollTimeout::from(1000u16)
    } else {
        PollTimeout::NONE
    };
    loop {
        match poll(&mut fds, timeout) {
            Ok(0) => return Ok(Wake::Retry),
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    let changed = fds[1]
        .revents()
        .is_some_and(|r| r.intersects(PollFlags::POLLPRI | PollFlags::POLLERR));
    Ok(if changed {
        Wake::MountsChanged
    } else {
        Wake::Connection
    })
}

/// Waits until the mounts have not changed for 50 ms, a second at most: one new broker for a
/// burst of changes (a container starting, say), not one each, and never a wait without end.
fn settle(mounts: &std::fs::File) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let mut fds = [PollFd::new(mounts.as_fd(), PollFlags::POLLPRI)];
        match poll(&mut fds, PollTimeout::from(50u8)) {
            Ok(0) => return,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// Starts a new broker for the runs to come (the host's mounts changed). The old one serves the
/// runs under way and goes with the last of them, outside the lock. If the new one cannot start,
/// the old one stays, marked stale: its copy of the mount tree is out of date, so runs with a
/// program root are refused (their clients start brokers of their own) until a retry, every
/// second, succeeds.
fn renew(broker: &RwLock<Arc<Broker>>, stale: &AtomicBool, warm: usize) {
    // The new broker must limit as the old one did: one that got fewer cgroup controllers (say,
    // a directory it could not make) would run programs with weaker limits, silently.
    let controllers = current(broker).cgroup_controllers();
    let fresh = start_broker(warm).and_then(|fresh| {
        if fresh.cgroup_controllers() == controllers {
            Ok(fresh)
        } else {
            Err(format!(
                "its new broker has the cgroup controllers {:?}, not {controllers:?}",
                fresh.cgroup_controllers()
            ))
        }
    });
    match fresh {
        Ok(fresh) => {
            let old = std::mem::replace(
                &mut *broker.write().unwrap_or_else(PoisonError::into_inner),
                Arc::new(fresh),
            );
            stale.store(false, Ordering::Release);
            drop(old);
        }
        Err(message) => {
            if !stale.swap(true, Ordering::AcqRel) {
                eprintln!(
                    "portcullis serve: the host's mounts changed and {message}; runs with a \
                     program root go to brokers of their own until a new one starts"
                );
            }
        }
    }
}

/// Counts a run thread out when dropped.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn send_reply(conn: &Channel, reply: &RunReply) -> bool {
    conn.send(reply, &[], Some(Instant::now() + Duration::from_secs(1)))
        .is_ok()
}

fn refuse(conn: &Channel, message: &str, fall_back: bool) {
    let _ = send_reply(
        conn,
        &RunReply::Refused {
            message: message.to_owned(),
            fall_back,
        },
    );
}

/// Serves one connection: checks the peer, reads and checks its request, runs it, reports.
fn serve_one((broker, stale): (&Broker, &AtomicBool), ours: &Confinement, conn: &Channel) {
    let uid = nix::unistd::geteuid().as_raw();
    let peer = match Peer::of(conn) {
        Ok(peer) => peer,
        Err(message) => {
            refuse(conn, &message, true);
            return;
        }
    };
    if peer.uid != uid || peer.uid == peer::overflow_uid() {
        refuse(conn, &format!("this server serves uid {uid} only"), false);
        return;
    }
    // A client confined otherwise than the server runs its own broker, which inherits it all.
    if let Err(message) = peer.confined_as(ours) {
        refuse(conn, &message, true);
        return;
    }
    let (payload, fds) = match conn.recv_bytes(Some(Instant::now() + REQUEST_TIMEOUT)) {
        Ok(got) => got,
        // A client that connected, then took its time to plan (it connects before it parses
        // its arguments): it has sent nothing, so it may as well run the program itself.
        Err(e @ portcullis::ipc::RecvError::TimedOut) => {
            refuse(conn, &format!("no request: {e}"), true);
            return;
        }
        Err(e) => {
            refuse(conn, &format!("bad request: {e}"), false);
            return;
        }
    };
    // The version first: another build's request (an old server still running after an
    // upgrade, say) is for the client to run itself, whatever the rest looks like.
    match postcard::take_from_bytes::<u32>(&payload) {
        Ok((PROTOCOL, _)) => {}
        Ok((protocol, _)) => {
            let message = format!(
                "protocol {protocol} (this server speaks {PROTOCOL}: client and server are \
                 different builds)"
            );
            refuse(conn, &message, true);
            return;
        }
        Err(_) => {
            refuse(conn, "bad request: no protocol version", false);
            return;
        }
    }
    let request = match postcard::from_bytes::<RunRequest>(&payload) {
        Ok(request) if fds.is_empty() => request,
        Ok(_) => {
            refuse(
                conn,
                "bad request: fds come with the go, not the request",
                false,
            );
            return;
        }
        Err(e) => {
            refuse(conn, &format!("bad request: {e}"), false);
            return;
        }
    };
    if let Err(message) = check_request(&request) {
        refuse(conn, &format!("bad request: {message}"), false);
        return;
    }
    if request.program_root.is_some() && stale.load(Ordering::Acquire) {
        refuse(
            conn,
            "the host's mounts changed and the server has no broker with the new ones yet",
            true,
        );
        return;
    }
    // Nothing starts until the client says go, with the fds: a client that gave up waiting (and
    // runs the program itself) has closed the connection instead.
    if !send_reply(conn, &RunReply::Accepted) {
        return;
    }
    let fds = match conn.recv::<RunGo>(Some(Instant::now() + REQUEST_TIMEOUT)) {
        Ok((RunGo::Go, fds)) => fds,
        Err(_) => return,
    };
    let extra_fds = usize::try_from(request.extra_fds).unwrap_or(usize::MAX);
    if fds.len() != 4 + extra_fds {
        let message = format!(
            "bad request: {} fds for {extra_fds} connections (expected the program, stdio and \
             each connection)",
            fds.len()
        );
        refuse(conn, &message, false);
        return;
    }
    let mut fds = fds.into_iter();
    let (Some(program), Some(stdin), Some(stdout), Some(stderr)) =
        (fds.next(), fds.next(), fds.next(), fds.next())
    else {
        return;
    };
    let extra: Vec<OwnedFd> = fds.collect();
    let done = AtomicBool::new(false);
    let hangup = watch_hangup(conn, &done);
    let mut say = |line: String| {
        let line = crate::text::truncate_utf8(&line, MAX_LINE_BYTES).to_owned();
        let _ = send_reply(conn, &RunReply::Say(line));
    };
    let (status, child) = crate::run::execute(
        broker,
        crate::run::Launch {
            request: &request,
            program: std::fs::File::from(program),
            stdio: [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()],
            extra: &extra.iter().map(AsFd::as_fd).collect::<Vec<_>>(),
            client_gone: Some(&hangup),
        },
        &mut say,
    );
    done.store(true, Ordering::Release);
    let _ = send_reply(conn, &RunReply::Ended { status });
    conn.shut_down();
    drop(child);
}

/// A check the run's wait makes: true once the client hung up (it was killed, say), when the
/// program must not outlive it.
fn watch_hangup<'a>(conn: &'a Channel, done: &'a AtomicBool) -> impl Fn() -> bool + 'a {
    move || {
        if done.load(Ordering::Acquire) {
            return false;
        }
        // No events asked: a unix socket whose peer closed reports POLLHUP regardless, and
        // anything the client might still send (it should send nothing) wakes nothing.
        let mut fds = [nix::poll::PollFd::new(
            conn.as_fd(),
            nix::poll::PollFlags::empty(),
        )];
        matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0)
    }
}

/// The checks a request gets before anything runs, as a policy file's values would.
fn check_request(request: &RunRequest) -> Result<(), String> {
    if request.argv.is_empty() {
        return Err("an empty argv".into());
    }
    if usize::try_from(request.extra_fds).map_or(true, |n| n > portcullis::MAX_EXTRA_FDS) {
        return Err(format!(
            "{} connections (at most {})",
            request.extra_fds,
            portcullis::MAX_EXTRA_FDS
        ));
    }
    request.limits.check()?;
    if let Some(root) = &request.program_root {
        root.validate()
            .map_err(|errno| format!("a program root that fails its checks ({errno})"))?;
    }
    Ok(())
}

/// How a client's attempt to use a server ended.
pub enum Remote {
    /// No server to use (none listening, or it refused with `fall_back`): run standalone.
    Absent,
    /// The server ran the request (or refused it for good): exit with this status.
    Ran(u8),
}

/// A connection to the server a run is for, checked to be this user's ([`connect_to`]); the
/// server checks the client ([`Peer::confined_as`], ~0.15 ms of `/proc` reads) as soon as it
/// accepts, which is why a run usually connects before it parses its arguments
/// (`crate::run::connect_early`).
pub struct Server {
    path: PathBuf,
    /// The user named the server, so its absence is an error rather than a reason to run
    /// standalone.
    explicit: bool,
    conn: Channel,
}

/// What a run does when the server it wanted cannot be used: a standalone run, or, when the
/// user named that server (`explicit`), exit 126 (having said why).
fn instead(explicit: bool) -> Remote {
    if explicit {
        Remote::Ran(crate::run::CANNOT_RUN)
    } else {
        Remote::Absent
    }
}

/// [`instead`], saying `message` first when the user named the server (a server found without
/// being named that cannot be used is no news: the run goes standalone quietly).
fn unusable(explicit: bool, say: &mut dyn FnMut(&str), message: String) -> Remote {
    if explicit {
        say(&message);
    }
    instead(explicit)
}

/// Connects to the server at `path` if one listens there and runs as this user. `Err`: what the
/// run does instead (standalone, or exit with an error when `explicit`).
pub fn connect_to(
    path: &Path,
    explicit: bool,
    say: &mut dyn FnMut(&str),
) -> Result<Server, Remote> {
    let Ok(addr) = UnixAddr::new(path) else {
        return Err(unusable(
            explicit,
            say,
            format!("{}: not a socket path", path.display()),
        ));
    };
    // Only a socket in a directory of this user: nobody else can have put it there.
    if let Some(dir) = path.parent() {
        match check_private_dir(dir) {
            Ok(()) => {}
            Err(_) if !dir.exists() => {
                return Err(unusable(
                    explicit,
                    say,
                    format!("no server at {}", path.display()),
                ))
            }
            Err(message) => {
                say(&format!(
                    "warning: not using the server at {}: {message}",
                    path.display()
                ));
                return Err(instead(explicit));
            }
        }
    }
    // Non-blocking: a server too busy to take connections (its backlog full) is no reason to
    // wait.
    let Ok(fd) = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    ) else {
        return Err(Remote::Absent);
    };
    if let Err(e) = connect(fd.as_raw_fd(), &addr) {
        return Err(unusable(
            explicit,
            say,
            format!("no server at {}: {e}", path.display()),
        ));
    }
    let uid = nix::unistd::geteuid().as_raw();
    match peer::uid_of(&fd) {
        // The overflow uid stands for any user this namespace does not map: not ours.
        Ok(server_uid) if server_uid == uid && uid != peer::overflow_uid() => {}
        Ok(server_uid) => {
            // Someone else's socket where ours should be: never hand it a terminal or program.
            say(&format!(
                "warning: the server at {} runs as uid {server_uid}, not as this user ({uid}); \
                 not using it",
                path.display()
            ));
            return Err(instead(explicit));
        }
        Err(message) => return Err(unusable(explicit, say, message)),
    }
    Ok(Server {
        path: path.to_owned(),
        explicit,
        conn: Channel::from_fd(fd, limits()),
    })
}

/// Sends `request` to `server` and waits for the end of its run.
pub fn run_remote(
    server: Server,
    request: &RunRequest,
    fds: &[BorrowedFd<'_>],
    say: &mut dyn FnMut(&str),
) -> Remote {
    let Server {
        path,
        explicit,
        conn,
    } = server;
    let path = path.as_path();
    // One deadline for sending the request and hearing back.
    let accept_by = Instant::now() + ACCEPT_TIMEOUT;
    let sending = conn.send(request, &[], Some(accept_by));
    // The server answers at once (it has read and checked the request); one that does not within
    // ACCEPT_TIMEOUT is stuck (stopped, say), and closing the connection without a go makes sure
    // it never starts the program, so this run can. Only a server that answered gets the fds.
    match conn.recv::<RunReply>(Some(accept_by)) {
        Ok((RunReply::Accepted, _)) if sending.is_ok() => {}
        Ok((RunReply::Refused { message, fall_back }, _)) => {
            return refused(say, path, explicit, &message, fall_back)
        }
        Ok((other, _)) => {
            return unusable(
                explicit,
                say,
                format!("the server at {} answered {other:?} first", path.display()),
            )
        }
        Err(e) => {
            let why = match &sending {
                Err(e) => format!("cannot send the run to {}: {e}", path.display()),
                Ok(()) => format!("the server at {} did not answer: {e}", path.display()),
            };
            return unusable(explicit, say, why);
        }
    }
    if let Err(e) = conn.send(&RunGo::Go, fds, Some(Instant::now() + ACCEPT_TIMEOUT)) {
        return unusable(
            explicit,
            say,
            format!("the server at {} went: {e}", path.display()),
        );
    }
    if request.verbose {
        say(&format!("run by the server at {}", path.display()));
    }
    loop {
        match conn.recv::<RunReply>(None) {
            Ok((RunReply::Say(line), _)) => say(&line),
            Ok((RunReply::Ended { status }, _)) => return Remote::Ran(status),
            Ok((RunReply::Accepted, _)) => {}
            Ok((RunReply::Refused { message, fall_back }, _)) => {
                return refused(say, path, explicit, &message, fall_back)
            }
            Err(e) => {
                say(&format!(
                    "the server at {} ended before the program did: {e}",
                    path.display()
                ));
                return Remote::Ran(crate::run::CANNOT_RUN);
            }
        }
    }
}

/// A refusal: a standalone run instead where it may be one (the server is busy or cannot
/// serve this client, and the user named no server), otherwise the server's reason and 126.
fn refused(
    say: &mut dyn FnMut(&str),
    path: &Path,
    explicit: bool,
    message: &str,
    fall_back: bool,
) -> Remote {
    if fall_back && !explicit {
        return Remote::Absent;
    }
    say(&format!(
        "the server at {} refused: {message}",
        path.display()
    ));
    Remote::Ran(crate::run::CANNOT_RUN)
}

/// `argv` or `env` as the request carries them.
pub fn to_bytes(list: &[OsString]) -> Vec<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    list.iter().map(|s| s.as_bytes().to_vec()).collect()
}
