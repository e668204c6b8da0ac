//! Portcullis wire layer: one hardened `SOCK_SEQPACKET` channel per sandboxed child.
//!
//! # What this crate owns
//!
//! - **Framing:** a logical message is one or more datagrams. Each datagram is one header byte
//!   (`0x01` = more follow, `0x00` = last) and at most [`CHUNK_PAYLOAD_BYTES`] of
//!   payload. File descriptors travel as `SCM_RIGHTS` on the first datagram only.
//! - **Caps:** every message is held to [`ChannelLimits`] (payload bytes and fds per message), on
//!   both the sending and the receiving side.
//! - **Encode/decode:** messages are serde types encoded with postcard; a message must decode
//!   completely, with no trailing bytes.
//! - **The service mailbox's layout** ([`mailbox`]): where a short request and a short answer
//!   sit in the shared area a child and its broker thread both map, and copying them in and out
//!   with the same caps and decoding (mapping the area is the caller's).
//!
//! # What it must never do
//!
//! - **Make trust decisions.** It reports what the peer sent, or how the peer broke the protocol
//!   ([`ProtocolViolation`]); mapping a request to an access and deciding is the broker's job.
//! - **Panic or allocate from a peer-written length.** Receive buffers are sized from our own
//!   constants and limits; a message grows only by bytes actually received and never beyond
//!   `max_message_bytes`. (Inside postcard, serde may pre-size a collection from a decoded length,
//!   but postcard bounds sequence hints by the bytes left and serde caps every hint at 1 MiB.)
//! - **Leak a peer's fds.** Surplus fds are closed by the kernel (the control buffer holds only
//!   `max_fds_per_message`) and every fd of a rejected message is closed before the error returns.
//!   Received fds are `O_CLOEXEC` (`MSG_CMSG_CLOEXEC`).
//! - **Block forever when given a deadline.** With `Some(deadline)` every call uses
//!   `MSG_DONTWAIT` and waits in `poll(2)` for the time left; a dead peer never raises `SIGPIPE`
//!   (`MSG_NOSIGNAL`).
//!
//! ```
//! use portcullis_ipc::{Channel, ChannelLimits};
//! use std::time::{Duration, Instant};
//!
//! let (broker, child) = Channel::pair(ChannelLimits::default())?;
//! child.send(&("open", 42_u32), &[], None)?;
//! let deadline = Some(Instant::now() + Duration::from_secs(5));
//! let ((verb, id), fds): ((String, u32), _) = broker.recv(deadline)?;
//! assert_eq!((verb.as_str(), id, fds.len()), ("open", 42, 0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod channel;
mod codec;
mod error;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod mailbox;
pub mod service;
mod wait;

pub use channel::Channel;
pub use error::{ProtocolViolation, RecvError, SendError};

/// Payload bytes carried by one datagram, not counting its one-byte header.
pub const CHUNK_PAYLOAD_BYTES: usize = 32 * 1024;

/// Per-message caps a [`Channel`] enforces on what it sends and what it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLimits {
    /// Largest encoded message, in payload bytes (headers excluded).
    pub max_message_bytes: usize,
    /// Most file descriptors one message may carry. The kernel accepts at most 253
    /// (`SCM_MAX_FD`) per datagram whatever this says.
    pub max_fds_per_message: usize,
}

impl Default for ChannelLimits {
    /// 16 MiB and 8 fds per message.
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024 * 1024,
            max_fds_per_message: 8,
        }
    }
}
