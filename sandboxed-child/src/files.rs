//! Files through the broker: the child has no filesystem of its own, so every path goes to the
//! broker (through the service mailbox when it fits, else over the service channel), which
//! checks it against the child's policy and, when allowed, opens it beneath a pre-opened
//! directory and passes the fd back on the channel.
//!
//! A denial arrives as `io::ErrorKind::PermissionDenied` whose message is one of a closed set of
//! reasons (`portcullis: denied: not-granted`, …); the broker never sends its own error text.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use portcullis_ipc::service::{
    DirEntry, Failure, FetchRequest, FetchResponse, FileStat, OpenFlags, ServiceRequest,
    ServiceResponse, MAX_PATH_BYTES,
};
use portcullis_ipc::{mailbox, Channel, RecvError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::context::ChildContext;
use crate::mailbox::Mailbox;

/// The child's end of its service channel and its mailbox. One request at a time: a second
/// thread waits. A request that fits the mailbox is written there and the doorbell is rung
/// with its length; any other is written to the channel and announced with the doorbell. The
/// doorbell's return value says where the answer is.
#[derive(Debug)]
pub struct ServiceClient {
    channel: Mutex<Channel>,
    /// The child's mailbox, asked for on the first call (`None` inside if the broker gave
    /// none). Set to `None` at once for a child that has none to ask for (a plugin program that
    /// took its inherited channels): everything goes on the channel then.
    mailbox: OnceLock<Option<Mailbox>>,
    /// The last mailbox request's number (used under `channel`'s lock).
    seq: AtomicU64,
}

/// How long a child waits between rings the broker answered `EBUSY` (a network worker still
/// finishing the previous answer), and how many it makes before it gives up.
const BUSY_PAUSE: Duration = Duration::from_micros(50);
const BUSY_RINGS: u32 = 200_000;

impl ServiceClient {
    /// `mailbox`: the broker's thread for this child will hand it a mailbox when asked.
    pub(crate) fn new(channel: Channel, mailbox: bool) -> Self {
        let cell = OnceLock::new();
        if !mailbox {
            let _ = cell.set(None);
        }
        Self {
            channel: Mutex::new(channel),
            mailbox: cell,
            seq: AtomicU64::new(0),
        }
    }

    /// The channel, locked, and the mailbox (asked for on the first call).
    fn lock(&self) -> (MutexGuard<'_, Channel>, Option<&Mailbox>) {
        let channel = self.channel.lock().unwrap_or_else(PoisonError::into_inner);
        let mailbox = self.mailbox.get_or_init(ask_for_mailbox).as_ref();
        (channel, mailbox)
    }

    fn call(
        &self,
        request: &ServiceRequest,
    ) -> io::Result<(ServiceResponse, Vec<std::os::fd::OwnedFd>)> {
        let (channel, mailbox) = self.lock();
        let in_mailbox = mailbox.and_then(|m| Some((m, mailbox::put_request(m.words(), request)?)));
        if let Some((mailbox, len)) = in_mailbox {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            match ring_mailbox(len as u64, seq) {
                // 0: the answer is on the channel (it carries an fd, or is long).
                Ok(0) => {}
                Ok(len) => {
                    let answer = mailbox::take_answer(mailbox.words(), len)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    return Ok((answer, Vec::new()));
                }
                // Not served (busy past every retry, or a broker no longer listening): nothing
                // is queued for it on the channel, so do not wait there.
                Err(e) => return Err(io::Error::new(io::ErrorKind::BrokenPipe, e)),
            }
        } else {
            // The broker reads a child's service channel when its doorbell rings (see
            // `portcullis_ipc::service::DOORBELL_SYSCALL`), so each datagram is announced: a
            // request larger than the socket's buffer (a POST body) is read as it is written.
            // After the last ring a file request's answer is already queued.
            channel
                .send_announced(request, &[], None, &mut crate::sys::ring_doorbell)
                .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))?;
        }
        match channel.recv::<ServiceResponse>(None) {
            Ok(answer) => Ok(answer),
            // The answer carried an fd (an open file, a socket) and this process's fd table is
            // full (RLIMIT_NOFILE): the kernel could not install it. The answer was read whole,
            // so the channel is in step for the next request.
            Err(RecvError::FdsDropped) => Err(io::Error::from_raw_os_error(libc::EMFILE)),
            Err(e) => Err(io::Error::new(io::ErrorKind::BrokenPipe, e)),
        }
    }
}

/// Asks the broker for this child's mailbox: the doorbell with the length `ASK` returns an fd
/// of it, installed in this process by the broker. Any failure means no mailbox.
fn ask_for_mailbox() -> Option<Mailbox> {
    let fd = crate::sys::ring_doorbell_with(mailbox::ASK, 0).ok()?;
    // Only the broker's install answers this ring with a value, and it is an fd number.
    let fd = i32::try_from(fd)
        .ok()
        .filter(|&fd| fd > libc::STDERR_FILENO)?;
    Mailbox::open(crate::sys::owned_fd(fd)).ok()
}

/// Rings for the mailbox request `seq` of `len` bytes, again while the broker answers `EBUSY`.
fn ring_mailbox(len: u64, seq: u64) -> io::Result<u64> {
    for _ in 0..BUSY_RINGS {
        match crate::sys::ring_doorbell_with(len, seq) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => std::thread::sleep(BUSY_PAUSE),
            other => return other,
        }
    }
    Err(io::Error::from_raw_os_error(libc::EBUSY))
}

/// Options for [`ChildContext::open`], like `std::fs::OpenOptions`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions(OpenFlags);

impl OpenOptions {
    /// No access at all (set at least `read` or `write`).
    pub fn new() -> Self {
        Self::default()
    }
    /// Open for reading.
    pub fn read(mut self, yes: bool) -> Self {
        self.0.read = yes;
        self
    }
    /// Open for writing.
    pub fn write(mut self, yes: bool) -> Self {
        self.0.write = yes;
        self
    }
    /// Create the file if it is missing.
    pub fn create(mut self, yes: bool) -> Self {
        self.0.create = yes;
        self
    }
    /// Create the file, failing if it exists.
    pub fn create_new(mut self, yes: bool) -> Self {
        self.0.create = yes;
        self.0.exclusive = yes;
        self
    }
    /// Truncate to zero length.
    pub fn truncate(mut self, yes: bool) -> Self {
        self.0.truncate = yes;
        self
    }
    /// Append on every write.
    pub fn append(mut self, yes: bool) -> Self {
        self.0.append = yes;
        self
    }
}

fn path_string(path: &Path) -> io::Result<String> {
    let s = path.to_str().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "portcullis: path is not UTF-8")
    })?;
    if s.len() > MAX_PATH_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "portcullis: path too long",
        ));
    }
    Ok(s.to_owned())
}

fn failure(response: ServiceResponse) -> io::Error {
    match response {
        ServiceResponse::Denied(reason) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("portcullis: denied: {}", reason.as_str()),
        ),
        ServiceResponse::Failed(f) => {
            let kind = match f {
                Failure::NotFound => io::ErrorKind::NotFound,
                Failure::AlreadyExists => io::ErrorKind::AlreadyExists,
                Failure::NotADirectory => io::ErrorKind::NotADirectory,
                Failure::IsADirectory => io::ErrorKind::IsADirectory,
                Failure::DirectoryNotEmpty => io::ErrorKind::DirectoryNotEmpty,
                Failure::HostPermission => io::ErrorKind::PermissionDenied,
                Failure::NoSpace => io::ErrorKind::StorageFull,
                Failure::ConnectionRefused => io::ErrorKind::ConnectionRefused,
                Failure::TimedOut => io::ErrorKind::TimedOut,
                Failure::NameNotResolved => io::ErrorKind::NotFound,
                Failure::Busy => io::ErrorKind::ResourceBusy,
                Failure::Tls => io::ErrorKind::InvalidData,
                Failure::Other => io::ErrorKind::Other,
            };
            io::Error::new(kind, format!("portcullis: {f:?}"))
        }
        other => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("portcullis: unexpected answer {other:?}"),
        ),
    }
}

impl<Up: Serialize, Down: DeserializeOwned> ChildContext<Up, Down> {
    /// Opens `path` through the broker. The fd carries exactly the access asked for, never more
    /// than the policy grants. With this process's fd table full, fails with `EMFILE` ("too
    /// many open files"); close an fd and ask again.
    pub fn open(&self, path: impl AsRef<Path>, options: &OpenOptions) -> io::Result<File> {
        let request = ServiceRequest::Open {
            path: path_string(path.as_ref())?,
            flags: options.0,
        };
        match self.service.call(&request)? {
            (ServiceResponse::Opened, mut fds) if fds.len() == 1 => Ok(File::from(fds.remove(0))),
            (response, _) => Err(failure(response)),
        }
    }

    /// Metadata of `path` (symlinks are never followed).
    pub fn metadata(&self, path: impl AsRef<Path>) -> io::Result<FileStat> {
        match self.service.call(&ServiceRequest::Stat {
            path: path_string(path.as_ref())?,
        })? {
            (ServiceResponse::Stat(stat), _) => Ok(stat),
            (response, _) => Err(failure(response)),
        }
    }

    /// The entries of directory `path`.
    pub fn read_dir(&self, path: impl AsRef<Path>) -> io::Result<Vec<DirEntry>> {
        match self.service.call(&ServiceRequest::ReadDir {
            path: path_string(path.as_ref())?,
        })? {
            (ServiceResponse::Entries { entries, .. }, _) => Ok(entries),
            (response, _) => Err(failure(response)),
        }
    }

    /// Creates directory `path`.
    pub fn create_dir(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.done(ServiceRequest::CreateDir {
            path: path_string(path.as_ref())?,
        })
    }

    /// Removes file `path`.
    pub fn remove_file(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.done(ServiceRequest::RemoveFile {
            path: path_string(path.as_ref())?,
        })
    }

    /// Renames `from` to `to` (both under one grant).
    pub fn rename(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
        self.done(ServiceRequest::Rename {
            from: path_string(from.as_ref())?,
            to: path_string(to.as_ref())?,
        })
    }

    /// Opens a TCP connection through the broker, which resolves `host`, checks every address
    /// against the policy (loopback and private ranges only when granted explicitly) and passes
    /// the connected socket back. Reading, writing, `shutdown` and the read/write timeouts work;
    /// other socket options are outside the sandbox's allowlist. With this process's fd table
    /// full, fails with `EMFILE`; with the broker's network workers all busy, with
    /// `ResourceBusy`.
    pub fn connect(&self, host: &str, port: u16) -> io::Result<std::net::TcpStream> {
        if host.len() > MAX_PATH_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "portcullis: host too long",
            ));
        }
        match self.service.call(&ServiceRequest::Connect {
            host: host.to_owned(),
            port,
        })? {
            (ServiceResponse::Connected, mut fds) if fds.len() == 1 => {
                Ok(std::net::TcpStream::from(fds.remove(0)))
            }
            (response, _) => Err(failure(response)),
        }
    }

    /// Has the broker perform an HTTP(S) request (GET or POST) within the profile's network
    /// grants, size cap and time cap. Redirects come back as they are (3xx); following one is a
    /// new fetch the policy decides again. With the broker's network workers all busy, fails at
    /// once with `ResourceBusy`.
    pub fn fetch(&self, request: FetchRequest) -> io::Result<FetchResponse> {
        if request.url.len() > MAX_PATH_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "portcullis: url too long",
            ));
        }
        match self.service.call(&ServiceRequest::Fetch(request))? {
            (ServiceResponse::Fetched(response), _) => Ok(response),
            (response, _) => Err(failure(response)),
        }
    }

    fn done(&self, request: ServiceRequest) -> io::Result<()> {
        match self.service.call(&request)? {
            (ServiceResponse::Done, _) => Ok(()),
            (response, _) => Err(failure(response)),
        }
    }

    /// Rings the service doorbell, for tests that play a hostile child on the raw channel.
    #[doc(hidden)]
    pub fn ring_service_doorbell(&self) {
        crate::sys::ring_doorbell();
    }

    /// Rings the doorbell for a request of `len` bytes in the mailbox numbered `seq`, for tests
    /// that play a hostile child: what the broker answered (see `portcullis_ipc::mailbox`).
    #[doc(hidden)]
    pub fn ring_service_doorbell_with(&self, len: u64, seq: u64) -> io::Result<u64> {
        crate::sys::ring_doorbell_with(len, seq)
    }

    /// The service mailbox (asked for if not yet), for tests that play a hostile child
    /// (`None` without one).
    #[doc(hidden)]
    pub fn raw_service_mailbox(&self) -> Option<&Mailbox> {
        self.service.lock().1
    }

    /// The raw service channel, for tests that play a hostile child.
    #[doc(hidden)]
    pub fn raw_service_channel(&self) -> std::sync::MutexGuard<'_, Channel> {
        self.service
            .channel
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
