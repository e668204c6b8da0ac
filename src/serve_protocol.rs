//! The protocol of `portcullis serve`: what `portcullis run` sends a server of its user and
//! what the server answers, on a `SOCK_SEQPACKET` Unix socket framed as an [`crate::ipc::Channel`].
//! Data only; the command (`src/bin/portcullis/serve.rs`) owns both ends, and its tests speak it
//! to check what a server refuses.
//!
//! A connection carries one run: the client sends one [`RunRequest`] with the program, its stdin,
//! stdout and stderr, then `extra_fds` connections, as fds; the server answers any number of
//! [`RunReply::Say`] lines and then one [`RunReply::Ended`], or one [`RunReply::Refused`] before
//! anything ran.

use serde::{Deserialize, Serialize};

use crate::broker::ProgramRoot;
use crate::ipc::ChannelLimits;
use crate::policy::Limits;

/// The request format's version: a client and a server of different builds refuse each other
/// cleanly instead of misreading a request.
pub const PROTOCOL: u32 = 1;

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

/// What the server answers, in order: any number of `Say`, then one `Ended` (or one `Refused`
/// before anything ran).
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
    /// One line for the client's stderr (after "portcullis: ").
    Say(String),
    /// The program ended; the client exits with `status`.
    Ended {
        /// The run's exit status.
        status: u8,
    },
}

/// The caps of a connection's replies (a line each, no fds).
pub fn reply_limits() -> ChannelLimits {
    ChannelLimits {
        max_message_bytes: MAX_LINE_BYTES + 64,
        max_fds_per_message: 0,
    }
}

/// The caps of a connection's request (its bytes and fds).
pub fn request_limits() -> ChannelLimits {
    ChannelLimits {
        max_message_bytes: MAX_REQUEST_BYTES,
        max_fds_per_message: MAX_REQUEST_FDS,
    }
}
