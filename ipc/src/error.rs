//! Errors of [`Channel`](crate::Channel) sends and receives.

use crate::CHUNK_PAYLOAD_BYTES;

/// Why [`Channel::send`](crate::Channel::send) or
/// [`Channel::send_bytes`](crate::Channel::send_bytes) failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The encoded message is longer than `max_message_bytes`; nothing was sent.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Encoded length of the message.
        len: usize,
        /// The channel's `max_message_bytes`.
        max: usize,
    },
    /// More fds than `max_fds_per_message`; nothing was sent.
    #[error("{count} fds exceed the limit of {max} per message")]
    TooManyFds {
        /// Fds passed to the send.
        count: usize,
        /// The channel's `max_fds_per_message`.
        max: usize,
    },
    /// postcard could not encode the message; nothing was sent.
    #[error("cannot encode message")]
    Encode(#[source] postcard::Error),
    /// The deadline passed before the whole message was sent. If part of a multi-datagram
    /// message had already gone out, the channel's sending half was shut down so the peer sees
    /// `EndedMidMessage` instead of a misframed stream, and later sends fail with `Closed`.
    #[error("send deadline passed")]
    TimedOut,
    /// The peer has closed its end (`EPIPE`/`ECONNRESET`).
    #[error("peer closed the channel")]
    Closed,
    /// Any other error from `sendmsg(2)` or `poll(2)`.
    #[error("cannot send on channel")]
    Io(#[source] std::io::Error),
}

/// Why [`Channel::recv`](crate::Channel::recv) or
/// [`Channel::recv_bytes`](crate::Channel::recv_bytes) failed.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The peer closed its end at a message boundary.
    #[error("peer closed the channel")]
    Closed,
    /// The deadline passed first. Datagrams already read of an unfinished message are kept, and
    /// the next receive resumes that message.
    #[error("receive deadline passed")]
    TimedOut,
    /// An error from `recvmsg(2)` or `poll(2)`, or no memory for a message within the limits.
    #[error("cannot receive from channel")]
    Io(#[source] std::io::Error),
    /// A whole message arrived, but the fds attached to it could not be installed in this
    /// process: the kernel reported `MSG_CTRUNC` with room left in the control buffer, which
    /// means this process's fd table is full (`RLIMIT_NOFILE`, `EMFILE`; or the system's,
    /// `ENFILE`; or a security module refused the fds). The message is discarded and any of its fds that were installed are closed;
    /// the channel stays in step and the next receive reads the next message. Not the peer's
    /// fault, so not a violation.
    #[error("fds attached to a message could not be received: too many open files")]
    FdsDropped,
    /// The peer broke the protocol. Every fd of the offending message has been closed; the
    /// channel's framing is no longer trustworthy, so end the peer.
    #[error("peer broke the channel protocol")]
    Violation(#[from] ProtocolViolation),
}

impl RecvError {
    /// Whether the peer broke the protocol (as opposed to closing, timing out or an I/O error).
    pub fn is_violation(&self) -> bool {
        matches!(self, Self::Violation(_))
    }

    /// The violation, if the peer broke the protocol.
    pub fn violation(&self) -> Option<&ProtocolViolation> {
        match self {
            Self::Violation(violation) => Some(violation),
            _ => None,
        }
    }
}

/// How a peer broke the channel protocol. Each is grounds to end the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolViolation {
    /// A datagram without even a header byte.
    #[error("zero-length datagram")]
    EmptyDatagram,
    /// A header byte other than `0x00` (last) or `0x01` (more follow).
    #[error("bad frame header byte {byte:#04x}")]
    BadHeader {
        /// The header byte received.
        byte: u8,
    },
    /// A datagram longer than one header byte plus [`CHUNK_PAYLOAD_BYTES`].
    #[error("datagram longer than {} bytes", CHUNK_PAYLOAD_BYTES + 1)]
    OversizedDatagram,
    /// The first datagram carried more fds than `max_fds_per_message`.
    #[error("more than {max} fds attached to one message")]
    TooManyFds {
        /// The channel's `max_fds_per_message`.
        max: usize,
    },
    /// A datagram after the first of its message carried fds.
    #[error("fds attached after the first datagram of a message")]
    FdsAfterFirstDatagram,
    /// A control message other than `SCM_RIGHTS`.
    #[error("control message other than SCM_RIGHTS")]
    UnexpectedControlMessage,
    /// The message grew past `max_message_bytes`.
    #[error("message exceeds the limit of {max} bytes")]
    TooLarge {
        /// The channel's `max_message_bytes`.
        max: usize,
    },
    /// The peer closed its end after a datagram announcing more.
    #[error("peer closed the channel in the middle of a message")]
    EndedMidMessage,
    /// The payload is not a valid postcard encoding of the expected type.
    #[error("cannot decode message: {reason}")]
    Decode {
        /// postcard's error text, at most 200 characters.
        reason: String,
    },
    /// The payload decoded with bytes left over.
    #[error("{count} trailing bytes after the decoded message")]
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },
}
