//! The protocol of `portcullis serve`: what `portcullis run` sends a server of its user and
//! what the server answers, on a `SOCK_SEQPACKET` Unix socket framed as an [`crate::ipc::Channel`].
//! Data only; the command (`src/bin/portcullis/serve.rs`) owns both ends, and its tests speak it
//! to check what a server refuses.
//!
//! A connection carries one run: the client sends one [`RunRequest`] (data only); the server
//! answers [`RunReply::Accepted`] (or one [`RunReply::Refused`], and nothing runs); the client
//! sends [`RunGo`] with the fds — the program, its stdin, stdout and stderr, then `extra_fds`
//! connections — and only then does the server start the program and answer any number of
//! [`RunReply::Say`] lines and one [`RunReply::Ended`]. The two steps let a client that waited
//! too long for a stuck server run the program itself without the server ever starting it too
//! (a server that wakes up later finds the connection closed instead of a go), and no fd of the
//! client's (its stdout, which a shell waits on) stays with a server that never answered.
//!
//! The request's first field is its protocol version, so a server can tell another build's
//! request (and let its client run it itself) before decoding the rest.

use serde::{Deserialize, Serialize};

use crate::broker::ProgramRoot;
use crate::ipc::ChannelLimits;
use crate::policy::Limits;

/// The request format's version: a client and a server of different builds refuse each other
/// cleanly instead of misreading a request.
pub const PROTOCOL: u32 = 2;

/// The environment variable naming the socket, for `serve` and `run` alike.
pub const SOCKET_ENV: &str = "PORTCULLIS_SERVER";

/// Largest request: argv and environment as a kernel would take them (`ARG_MAX` is 2 MiB by
/// default), and a program root of up to 1,024 binds.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;
/// The program, stdin, stdout, stderr and the connections.
pub const MAX_REQUEST_FDS: usize = 4 + crate::MAX_EXTRA_FDS;
/// Longest one reply line.
pub const MAX_LINE_BYTES: usize = 4096;

/// What a client asks: one `portcullis run`, planned by the client.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunRequest {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// The program's path as the user gave it, for messages and audit records.
    pub name: String,
    /// `argv`, `argv[0]` included.
    pub argv: Vec<Vec<u8>>,
    /// The whole environment, `NAME=value` each.
    pub env: Vec<Vec<u8>>,
    /// The limits of the profile, with the command line's limit options applied.
    pub limits: Limits,
    /// The program's root, planned by the client; `None` for the empty root.
    pub program_root: Option<ProgramRoot>,
    /// How many connections follow the program and stdio fds (they become fds 3, 4, ...).
    pub extra_fds: u32,
    /// Say how Landlock was applied (`--verbose`).
    pub verbose: bool,
}

/// What the server answers, in order: `Accepted` (or `Refused`), then, after the client's
/// [`RunGo`], any number of `Say` and one `Ended`.
#[derive(Debug, Serialize, Deserialize)]
pub enum RunReply {
    /// The request was not run. `fall_back`: the client may run it itself (the server is busy
    /// or cannot serve it), rather than report an error.
    Refused {
        /// Why, for the user.
        message: String,
        /// Whether a standalone run would do.
        fall_back: bool,
    },
    /// The request passed every check; the server waits for the client's [`RunGo`].
    Accepted,
    /// One line for the client's stderr (after "portcullis: ").
    Say(String),
    /// The program ended; the client exits with `status`.
    Ended {
        /// The run's exit status.
        status: u8,
    },
}

/// The client's second message, with the run's fds: start the program now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunGo {
    /// Start it.
    Go,
}

/// The caps of a connection, both ways: a request's bytes and a go's fds (replies are a line
/// each).
pub fn limits() -> ChannelLimits {
    ChannelLimits {
        max_message_bytes: MAX_REQUEST_BYTES,
        max_fds_per_message: MAX_REQUEST_FDS,
    }
}
