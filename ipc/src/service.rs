//! The framework's own requests on a child's service channel: files and network through the
//! broker. These are plain data; the broker maps each to a policy access and decides. Nothing
//! here is a trust decision.

use serde::{Deserialize, Serialize};

/// Longest path or URL a child may send in one request, in bytes. The broker rejects longer ones
/// without looking at them.
pub const MAX_PATH_BYTES: usize = 4096;
/// Most directory entries one `ReadDir` answer carries.
pub const MAX_DIR_ENTRIES: usize = 4096;

/// The service doorbell's syscall number. After writing a request to its service channel, a
/// child makes this syscall with [`DOORBELL_TAG`] as its first argument. It is outside every
/// allowlist, so the child's seccomp filter stops the calling thread and notifies the broker's
/// thread for that child, which reads the channel, answers what it found and then lets the
/// syscall return 0 without running it. The broker thread is woken, and wakes the child, on the
/// CPU the other was running on (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`), which a socket wake-up
/// cannot ask for. On x86-64 this is `tuxcall` (184), reserved and never implemented; elsewhere
/// a number no architecture assigns.
///
/// Its second and third arguments name a request in the child's mailbox
/// ([`crate::mailbox`]): its length and its sequence number; a length of 0 means the request is
/// on the service channel. It returns the length of the answer left in the mailbox, or 0 when
/// the answer is on the channel. A length of [`crate::mailbox::ASK`] asks for the mailbox
/// itself: the call returns an fd of it, installed in the child by the broker.
#[cfg(target_arch = "x86_64")]
pub const DOORBELL_SYSCALL: i64 = 184;
/// The service doorbell's syscall number (see the x86-64 definition).
#[cfg(not(target_arch = "x86_64"))]
pub const DOORBELL_SYSCALL: i64 = 1023;
/// The doorbell's first argument ("portcull"): the same syscall with any other first argument is
/// a seccomp violation like any call outside the allowlist.
pub const DOORBELL_TAG: u64 = 0x706f_7274_6375_6c6c;

/// How a child wants a file opened (open(2) semantics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenFlags {
    /// Open for reading.
    pub read: bool,
    /// Open for writing.
    pub write: bool,
    /// Create the file if missing.
    pub create: bool,
    /// Truncate it to zero length.
    pub truncate: bool,
    /// Append on every write.
    pub append: bool,
    /// Fail if it exists (with `create`).
    pub exclusive: bool,
}

/// A request from a child to the broker's service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceRequest {
    /// Open a file; answered with [`ServiceResponse::Opened`] and the fd.
    Open {
        /// Absolute path as the child sees it.
        path: String,
        /// Open mode.
        flags: OpenFlags,
    },
    /// File metadata without opening for I/O.
    Stat {
        /// Absolute path.
        path: String,
    },
    /// List a directory.
    ReadDir {
        /// Absolute path.
        path: String,
    },
    /// Create a directory.
    CreateDir {
        /// Absolute path.
        path: String,
    },
    /// Unlink a file.
    RemoveFile {
        /// Absolute path.
        path: String,
    },
    /// Rename a file or directory.
    Rename {
        /// Absolute path now.
        from: String,
        /// Absolute path after.
        to: String,
    },
    /// An HTTP(S) request the broker performs itself; answered with [`ServiceResponse::Fetched`].
    Fetch(FetchRequest),
    /// Open a TCP connection; answered with [`ServiceResponse::Connected`] and the socket. The
    /// broker resolves `host` itself and checks every address it resolves to.
    Connect {
        /// A DNS name or IP address.
        host: String,
        /// The port.
        port: u16,
    },
}

/// Most request or response headers carried, and their longest value, in bytes.
pub const MAX_HEADERS: usize = 64;

/// The HTTP method of a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchMethod {
    /// GET.
    Get,
    /// POST with the request's body.
    Post,
}

/// An HTTP(S) request for the broker to perform. Redirects are never followed by the broker: a
/// 3xx comes back as it is, and following it is a new request the policy decides again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    /// `http://` or `https://` URL.
    pub url: String,
    /// The method.
    pub method: FetchMethod,
    /// Body for POST.
    pub body: Vec<u8>,
    /// `Content-Type` of the body, if any.
    pub content_type: Option<String>,
}

/// The broker's answer to a fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers (at most [`MAX_HEADERS`], names lowercase).
    pub headers: Vec<(String, String)>,
    /// The body, at most the profile's `fetch_bytes`.
    pub body: Vec<u8>,
    /// True when the body was cut at the size cap or the time cap.
    pub truncated: bool,
}

/// What kind of file a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed by the broker).
    Symlink,
    /// Anything else (fifo, socket, device).
    Other,
}

/// File metadata the broker passes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// Kind.
    pub kind: FileKind,
    /// Size in bytes.
    pub len: u64,
    /// Last modification, seconds since the Unix epoch.
    pub modified_secs: i64,
    /// Permission bits (the low 12 bits of st_mode).
    pub permissions: u32,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// The entry's name (UTF-8 names only; others are left out and counted).
    pub name: String,
    /// Its kind.
    pub kind: FileKind,
}

/// Why the broker refused: a closed set, safe to show to the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Denied {
    /// No grant of the child's profile covers the path or destination.
    NotGranted,
    /// A grant covers it, but without the right asked for (e.g. write on a read grant).
    MissingRight,
    /// The path is not absolute and clean (`..`, `.`, `//`, NUL, too long).
    BadPath,
    /// The URL is not one the broker accepts.
    BadUrl,
    /// The request is malformed (e.g. an open with neither read nor write).
    BadRequest,
    /// The two paths of a rename are under different grants.
    CrossGrant,
    /// The destination resolved to a loopback, private or link-local address.
    PrivateAddress,
    /// The child exceeded its request rate.
    RateLimited,
    /// The path leads through a symlink, a mount point or outside the grant.
    Escape,
    /// The path names something other than a regular file or directory.
    NotAFile,
}

impl Denied {
    /// A short stable name, used in audit records and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotGranted => "not-granted",
            Self::MissingRight => "missing-right",
            Self::BadPath => "bad-path",
            Self::BadUrl => "bad-url",
            Self::BadRequest => "bad-request",
            Self::CrossGrant => "cross-grant",
            Self::PrivateAddress => "private-address",
            Self::RateLimited => "rate-limited",
            Self::Escape => "escape",
            Self::NotAFile => "not-a-file",
        }
    }
}

/// An allowed operation that the OS refused: a closed set of errno classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// ENOENT.
    NotFound,
    /// EEXIST.
    AlreadyExists,
    /// ENOTDIR.
    NotADirectory,
    /// EISDIR.
    IsADirectory,
    /// ENOTEMPTY.
    DirectoryNotEmpty,
    /// EACCES/EPERM from the host's own permissions.
    HostPermission,
    /// ENOSPC/EDQUOT/EROFS/EFBIG.
    NoSpace,
    /// ECONNREFUSED.
    ConnectionRefused,
    /// The connection or name lookup timed out.
    TimedOut,
    /// The name did not resolve.
    NameNotResolved,
    /// Anything else.
    Other,
    /// The broker's network workers are all busy and their queue is full: the request was not
    /// attempted. Asking again later may work.
    Busy,
    /// An HTTPS fetch's TLS handshake failed: the server's certificate is not trusted by the
    /// broker, does not name the host, or the server spoke no acceptable TLS.
    Tls,
}

/// The broker's answer to a [`ServiceRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceResponse {
    /// The fd is attached.
    Opened,
    /// Metadata.
    Stat(FileStat),
    /// Directory entries, and how many were left out (non-UTF-8 names, and at least one more
    /// when the listing stopped at [`MAX_DIR_ENTRIES`]).
    Entries {
        /// The entries.
        entries: Vec<DirEntry>,
        /// Entries not listed.
        omitted: u32,
    },
    /// Done (mkdir, unlink, rename).
    Done,
    /// A connected TCP socket is attached.
    Connected,
    /// The response of a fetch.
    Fetched(FetchResponse),
    /// The policy refused.
    Denied(Denied),
    /// The OS refused an allowed operation.
    Failed(Failure),
}
