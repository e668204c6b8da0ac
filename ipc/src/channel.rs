//! The channel: a `SOCK_SEQPACKET` socket, its limits, and the locks that keep messages whole.

use crate::codec;
use crate::error::{ProtocolViolation, RecvError, SendError};
use crate::frame::{self, Assembly, Datagram, Progress, HEADER_LAST, HEADER_MORE};
use crate::wait::{self, WaitError};
use crate::{ChannelLimits, CHUNK_PAYLOAD_BYTES};
use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, shutdown, socketpair, AddressFamily, RecvAncillaryBuffer,
    RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags, Shutdown, SocketFlags, SocketType,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Instant;

/// Alignment of `struct cmsghdr` on Linux (that of its `size_t cmsg_len`).
const CMSG_ALIGN: usize = align_of::<usize>();
/// `sizeof(struct cmsghdr)` on Linux: `size_t cmsg_len; int cmsg_level; int cmsg_type;`,
/// padded to its alignment (16 bytes on 64-bit targets, 12 on 32-bit ones).
const CMSG_HEADER_BYTES: usize =
    (size_of::<usize>() + 2 * size_of::<i32>()).next_multiple_of(CMSG_ALIGN);

/// Control-buffer bytes a send keeps on the stack: `CMSG_SPACE` of 8 fds, plus alignment slack.
const SMALL_CONTROL_BYTES: usize = CMSG_HEADER_BYTES + size_of::<[RawFd; 8]>() + CMSG_ALIGN;

/// One end of a hardened `SOCK_SEQPACKET` channel.
///
/// `send*` and `recv*` take `&self` and may be called from several threads at once: one lock
/// keeps the datagrams of concurrent sends from interleaving, another does the same for
/// receives. The two directions do not block each other.
pub struct Channel {
    fd: OwnedFd,
    limits: ChannelLimits,
    /// Held for the whole of one outgoing message.
    send_lock: Mutex<()>,
    /// Held for the whole of one incoming message; owns the receive buffers.
    recv_state: Mutex<RecvState>,
}

thread_local! {
    /// The datagram buffer ([`frame::RECV_BUFFER_BYTES`]) of every channel this thread reads:
    /// each datagram is copied into its message's assembly before the next read, so one buffer
    /// per receiving thread serves them all. A broker holding thousands of channels keeps a few
    /// 32 KiB buffers, not one per channel.
    static DATAGRAM_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Receive-side buffers and the message in progress.
#[derive(Debug, Default)]
struct RecvState {
    /// Backing store for the control buffer, with slack to align it for `cmsghdr`.
    control: Vec<MaybeUninit<u8>>,
    /// The message being received. It survives a `TimedOut` so the next receive resumes it.
    assembly: Assembly,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("fd", &self.fd)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Channel {
    /// Creates a connected pair of channel ends, both with `limits`.
    ///
    /// Both fds are `SOCK_CLOEXEC`: hand one to a child by clearing the flag (or `dup2`) on the
    /// child's side only. Errors: those of socketpair(2), e.g. `EMFILE`.
    pub fn pair(limits: ChannelLimits) -> io::Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        Ok((Self::from_fd(a, limits), Self::from_fd(b, limits)))
    }

    /// Wraps an inherited end, e.g. the fd a child found at a known number.
    ///
    /// Precondition: `fd` is a connected `AF_UNIX` `SOCK_SEQPACKET` socket whose peer speaks this
    /// framing. It may be blocking or non-blocking.
    pub fn from_fd(fd: OwnedFd, limits: ChannelLimits) -> Channel {
        Channel {
            fd,
            limits,
            send_lock: Mutex::new(()),
            recv_state: Mutex::new(RecvState::default()),
        }
    }

    /// Gives up the socket. Datagrams of a partly received message, and their fds, are
    /// discarded.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// The limits this end enforces on what it sends and what it accepts.
    pub fn limits(&self) -> ChannelLimits {
        self.limits
    }

    /// Encodes `msg` with postcard and sends it, with `fds` attached to its first datagram.
    ///
    /// `deadline: None` blocks until the message is sent; `Some(t)` never blocks past `t`.
    /// The caller keeps its `fds`; the peer receives duplicates.
    ///
    /// Errors: `TooLarge`, `TooManyFds` or `Encode` (nothing sent), `TimedOut`, `Closed`, `Io`;
    /// see [`SendError`].
    pub fn send<T: Serialize + ?Sized>(
        &self,
        msg: &T,
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        self.check_fd_count(fds)?;
        let payload = codec::encode(msg, self.limits.max_message_bytes)?;
        self.send_bytes(&payload, fds, deadline)
    }

    /// Sends like [`Channel::send`], calling `announce` after each datagram is queued — for a
    /// peer that reads only when told to (a child's service channel, read when the child rings
    /// its doorbell). A message larger than the socket's buffer would otherwise block its
    /// sender forever: the peer reads nothing until it is told, and it is told only after the
    /// send. Announced datagram by datagram, the buffer never fills.
    pub fn send_announced<T: Serialize + ?Sized>(
        &self,
        msg: &T,
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
        announce: &mut dyn FnMut(),
    ) -> Result<(), SendError> {
        self.check_fd_count(fds)?;
        let payload = codec::encode(msg, self.limits.max_message_bytes)?;
        self.send_bytes_with(&payload, fds, deadline, announce, &mut || {})
    }

    /// Sends like [`Channel::send`] with a deadline, calling `on_full` the first time the
    /// socket has no room, before waiting for it — for a sender that holds its peer stopped
    /// (the broker answering a child stopped in its doorbell): the peer must be let go to read
    /// a message larger than the socket's buffer, or both would wait for each other until the
    /// deadline.
    pub fn send_releasing<T: Serialize + ?Sized>(
        &self,
        msg: &T,
        fds: &[BorrowedFd<'_>],
        deadline: Instant,
        on_full: &mut dyn FnMut(),
    ) -> Result<(), SendError> {
        self.check_fd_count(fds)?;
        let payload = codec::encode(msg, self.limits.max_message_bytes)?;
        self.send_bytes_with(&payload, fds, Some(deadline), &mut || {}, on_full)
    }

    /// Shuts the socket down both ways: the peer's reads see the end of the stream and its
    /// writes fail, while this end stays open (another thread may still hold it).
    pub fn shut_down(&self) {
        // Fails only on a socket already shut down or not connected: nothing left to end.
        let _ = shutdown(&self.fd, Shutdown::Both);
    }

    /// Receives one whole message and decodes it as a `T`, with the fds that came with it.
    ///
    /// `deadline: None` blocks until a message arrives; `Some(t)` never blocks past `t`. The fds
    /// are `O_CLOEXEC`. A message that fails to decode, or leaves bytes over, is a
    /// [`ProtocolViolation`] and its fds are closed.
    pub fn recv<T: DeserializeOwned>(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(T, Vec<OwnedFd>), RecvError> {
        let (payload, fds) = self.recv_bytes(deadline)?;
        let value = codec::decode(&payload)?;
        Ok((value, fds))
    }

    /// Sends `payload` as one message, split into datagrams of at most
    /// [`CHUNK_PAYLOAD_BYTES`], with `fds` on the first.
    ///
    /// Errors: as [`Channel::send`], except `Encode`. On an error after the first datagram of a
    /// multi-datagram message went out, the sending half is shut down (shutdown(2)), so the peer
    /// sees `EndedMidMessage` rather than a misframed stream, and later sends fail with `Closed`.
    pub fn send_bytes(
        &self,
        payload: &[u8],
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        self.send_bytes_with(payload, fds, deadline, &mut || {}, &mut || {})
    }

    /// Sends `payload` datagram by datagram, calling `announce` after each is queued and
    /// `on_full` whenever the socket has no room, before waiting for it.
    fn send_bytes_with(
        &self,
        payload: &[u8],
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
        announce: &mut dyn FnMut(),
        on_full: &mut dyn FnMut(),
    ) -> Result<(), SendError> {
        let max = self.limits.max_message_bytes;
        if payload.len() > max {
            return Err(SendError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        self.check_fd_count(fds)?;
        let _sending = wait::lock_until(&self.send_lock, deadline, |()| {})
            .map_err(|_| SendError::TimedOut)?;

        let mut offset: usize = 0;
        loop {
            let end = payload
                .len()
                .min(offset.saturating_add(CHUNK_PAYLOAD_BYTES));
            let last = end == payload.len();
            let header = if last { HEADER_LAST } else { HEADER_MORE };
            let chunk = &payload[offset..end];
            let chunk_fds = if offset == 0 { fds } else { &[] };
            let iov = [
                IoSlice::new(std::slice::from_ref(&header)),
                IoSlice::new(chunk),
            ];
            let sent = self
                .send_datagram_with(&iov, chunk_fds, deadline, on_full)
                .and_then(|sent| check_whole_datagram(sent, 1 + chunk.len()));
            if let Err(err) = sent {
                if offset > 0 {
                    // Part of this message is already queued. Any later datagram would be read
                    // as its continuation, so end the stream here. A failing shutdown is not
                    // reported: the send error is the one the caller needs.
                    let _ = shutdown(&self.fd, Shutdown::Write);
                }
                return Err(send_error(err));
            }
            announce();
            if last {
                return Ok(());
            }
            offset = end;
        }
    }

    /// Receives one whole message from what is already queued, never waiting, and decodes it
    /// as a `T`.
    ///
    /// Reads the datagrams waiting on the socket until a message is whole, or fails with
    /// `TimedOut` once none is left (the datagrams read so far stay buffered and the next
    /// receive resumes the message). A peer cannot make one call read more than one message,
    /// which `max_message_bytes` bounds. After `TimedOut` the socket has been read until it
    /// reported `EAGAIN`, so an edge-triggered epoll reports the next datagram that arrives
    /// (unless another thread was receiving at that moment: then `TimedOut` comes at once).
    ///
    /// Errors: as [`Channel::recv`].
    pub fn try_recv<T: DeserializeOwned>(&self) -> Result<(T, Vec<OwnedFd>), RecvError> {
        let (payload, fds) = self.receive_locked(Wait::Never)?;
        let value = codec::decode(&payload)?;
        Ok((value, fds))
    }

    /// Receives one whole message as bytes, with the fds of its first datagram.
    ///
    /// `deadline: None` blocks until a message arrives; `Some(t)` never blocks past `t`. After
    /// `TimedOut` the datagrams already read stay buffered and the next call resumes the same
    /// message. After a `Violation` the framing is lost: end the peer.
    ///
    /// Errors: `Closed` (EOF at a message boundary), `TimedOut`, `Io`, `Violation`,
    /// `FdsDropped`; see [`RecvError`].
    pub fn recv_bytes(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(Vec<u8>, Vec<OwnedFd>), RecvError> {
        self.receive_locked(deadline.map_or(Wait::Forever, Wait::Until))
    }

    fn receive_locked(&self, wait: Wait) -> Result<(Vec<u8>, Vec<OwnedFd>), RecvError> {
        // A receiver that panicked mid-message left a half-built assembly: drop it.
        let reset = |state: &mut RecvState| state.assembly = Assembly::default();
        let mut state = match wait {
            Wait::Forever => wait::lock_until(&self.recv_state, None, reset),
            Wait::Until(deadline) => wait::lock_until(&self.recv_state, Some(deadline), reset),
            Wait::Never => wait::try_lock(&self.recv_state, reset),
        }
        .map_err(|_| RecvError::TimedOut)?;
        self.receive_message(&mut state, wait)
    }

    /// True when the peer has closed its end (every copy of it): poll(2) without waiting.
    pub fn peer_hung_up(&self) -> io::Result<bool> {
        wait::peer_hung_up(self.fd.as_fd())
    }

    /// For hostile-peer tests only: sends `bytes` as one datagram exactly as given, with `fds`
    /// attached, no header and no checks. Blocks until sent.
    #[doc(hidden)]
    pub fn send_raw_datagram(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        let _sending = wait::lock_until(&self.send_lock, None, |()| {})
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?;
        match self.send_datagram(&[IoSlice::new(bytes)], fds, None) {
            Ok(_) => Ok(()),
            Err(WaitError::Io(err)) => Err(err),
            Err(WaitError::TimedOut) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Refuses more fds than the limit, or than the kernel takes in one datagram.
    fn check_fd_count(&self, fds: &[BorrowedFd<'_>]) -> Result<(), SendError> {
        let max = self.limits.max_fds_per_message.min(frame::KERNEL_MAX_FDS);
        if fds.len() > max {
            return Err(SendError::TooManyFds {
                count: fds.len(),
                max,
            });
        }
        Ok(())
    }

    /// Sends one datagram gathered from `iov`, with `fds` as `SCM_RIGHTS`, and returns the bytes
    /// sent. Always `MSG_NOSIGNAL`; with a deadline, `MSG_DONTWAIT` and poll(2) for `POLLOUT`.
    /// Loops on `EINTR`. sendmsg(2)
    fn send_datagram(
        &self,
        iov: &[IoSlice<'_>],
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
    ) -> Result<usize, WaitError> {
        self.send_datagram_with(iov, fds, deadline, &mut || {})
    }

    /// [`Channel::send_datagram`], calling `on_full` before each wait for room.
    fn send_datagram_with(
        &self,
        iov: &[IoSlice<'_>],
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
        on_full: &mut dyn FnMut(),
    ) -> Result<usize, WaitError> {
        // Room for a few fds on the stack (the common case: none or one), else on the heap.
        let mut small = [MaybeUninit::<u8>::uninit(); SMALL_CONTROL_BYTES];
        let mut large = Vec::new();
        let needed = if fds.is_empty() {
            0
        } else {
            SendAncillaryMessage::ScmRights(fds).size()
        };
        // `SendAncillaryBuffer::new` aligns the start of the buffer for `cmsghdr`, which may
        // take up to `CMSG_ALIGN - 1` bytes of it.
        let space: &mut [MaybeUninit<u8>] = if needed + CMSG_ALIGN <= SMALL_CONTROL_BYTES {
            &mut small
        } else {
            large.resize(needed + CMSG_ALIGN, MaybeUninit::uninit());
            &mut large
        };
        let mut control = SendAncillaryBuffer::new(space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(WaitError::Io(io::Error::other(
                "control buffer too small for the fds",
            )));
        }
        let mut flags = SendFlags::NOSIGNAL;
        if deadline.is_some() {
            flags |= SendFlags::DONTWAIT;
        }
        loop {
            match sendmsg(&self.fd, iov, &mut control, flags) {
                Ok(sent) => return Ok(sent),
                Err(Errno::INTR) => continue,
                // With no deadline this only happens on a non-blocking fd; wait without limit.
                Err(Errno::AGAIN) => {
                    on_full();
                    wait::wait_ready(self.fd.as_fd(), PollFlags::OUT, deadline)?;
                }
                Err(errno) => return Err(WaitError::Io(errno.into())),
            }
        }
    }

    /// Reads datagrams into `state.assembly` until a message is whole.
    fn receive_message(
        &self,
        state: &mut RecvState,
        wait: Wait,
    ) -> Result<(Vec<u8>, Vec<OwnedFd>), RecvError> {
        DATAGRAM_BUFFER.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buffer) => self.receive_message_into(state, &mut buffer, wait),
            // Not reachable (a receive never runs inside another on one thread); stay correct
            // anyway with a buffer of its own.
            Err(_) => self.receive_message_into(state, &mut Vec::new(), wait),
        })
    }

    fn receive_message_into(
        &self,
        state: &mut RecvState,
        buffer: &mut Vec<u8>,
        wait: Wait,
    ) -> Result<(Vec<u8>, Vec<OwnedFd>), RecvError> {
        if buffer.len() != frame::RECV_BUFFER_BYTES {
            buffer.resize(frame::RECV_BUFFER_BYTES, 0);
        }
        let control_len = control_len(self.limits);
        let mut read_any = false;
        loop {
            // A peer streaming `0x01` datagrams never makes us wait, so check the deadline
            // between datagrams too. The assembly is kept and the next call resumes it.
            if let Wait::Until(deadline) = wait {
                if read_any && Instant::now() >= deadline {
                    return Err(RecvError::TimedOut);
                }
            }
            let control = aligned_control(&mut state.control, control_len);
            let datagram = self.recv_datagram(buffer, control, wait)?;
            read_any = true;
            if self.is_end_of_stream(&datagram)? {
                let started = state.assembly.is_started();
                state.assembly = Assembly::default();
                return Err(if started {
                    ProtocolViolation::EndedMidMessage.into()
                } else {
                    RecvError::Closed
                });
            }
            match state.assembly.push(datagram, self.limits) {
                Ok(Progress::NeedMore) => continue,
                Ok(Progress::Complete) => {
                    let dropped = state.assembly.fds_dropped();
                    let message = state.assembly.take();
                    // The fds did not fit in this process: the whole message has been read, so
                    // the channel is in step; report it instead of a message missing its fds.
                    return if dropped {
                        Err(RecvError::FdsDropped)
                    } else {
                        Ok(message)
                    };
                }
                Err(err) => {
                    // Closes the fds already received for this message.
                    state.assembly = Assembly::default();
                    return Err(err);
                }
            }
        }
    }

    /// A read of zero bytes is either end-of-stream or a zero-length datagram; recvmsg(2) reports
    /// both alike. A datagram may carry control data; end-of-stream never does. Otherwise the
    /// peer's hang-up tells them apart: a live peer sent an empty datagram (a violation). An
    /// empty datagram sent just before the peer closed reads as end-of-stream, which ends the
    /// peer all the same.
    fn is_end_of_stream(&self, datagram: &Datagram<'_>) -> Result<bool, RecvError> {
        let nothing = datagram.bytes.is_empty()
            && !datagram.truncated
            && !datagram.control_truncated
            && datagram.fds.is_empty()
            && !datagram.unexpected_control;
        if !nothing {
            return Ok(false);
        }
        wait::peer_hung_up(self.fd.as_fd()).map_err(RecvError::Io)
    }

    /// Receives one datagram into `data`, with control data into `control`. Always
    /// `MSG_CMSG_CLOEXEC`; unless waiting forever, `MSG_DONTWAIT` and, until a deadline, poll(2)
    /// for `POLLIN`. Loops on `EINTR`. recvmsg(2)
    fn recv_datagram<'buf>(
        &self,
        data: &'buf mut [u8],
        control: &mut [MaybeUninit<u8>],
        wait: Wait,
    ) -> Result<Datagram<'buf>, RecvError> {
        let mut flags = RecvFlags::CMSG_CLOEXEC;
        let deadline = match wait {
            Wait::Forever => None,
            Wait::Until(deadline) => Some(deadline),
            Wait::Never => {
                flags |= RecvFlags::DONTWAIT;
                None
            }
        };
        if deadline.is_some() {
            flags |= RecvFlags::DONTWAIT;
        }
        loop {
            let mut ancillary = RecvAncillaryBuffer::new(&mut *control);
            let received = recvmsg(
                &self.fd,
                &mut [IoSliceMut::new(&mut *data)],
                &mut ancillary,
                flags,
            );
            match received {
                Ok(msg) => {
                    // Take ownership of every fd at once, so each is closed on any return path.
                    let mut fds = Vec::new();
                    let mut unexpected_control = false;
                    for message in ancillary.drain() {
                        match message {
                            RecvAncillaryMessage::ScmRights(received) => fds.extend(received),
                            _ => unexpected_control = true,
                        }
                    }
                    let len = msg.bytes.min(data.len());
                    return Ok(Datagram {
                        bytes: &data[..len],
                        truncated: msg.flags.contains(ReturnFlags::TRUNC),
                        control_truncated: msg.flags.contains(ReturnFlags::CTRUNC),
                        fds,
                        unexpected_control,
                    });
                }
                Err(Errno::INTR) => continue,
                // A peer that closed with our data unread reports ECONNRESET once, ahead of the
                // datagrams it queued before closing; read on to get those, then end-of-stream.
                Err(Errno::CONNRESET) => continue,
                Err(Errno::AGAIN) if matches!(wait, Wait::Never) => {
                    return Err(RecvError::TimedOut)
                }
                Err(Errno::AGAIN) => {
                    match wait::wait_ready(self.fd.as_fd(), PollFlags::IN, deadline) {
                        Ok(()) => continue,
                        Err(WaitError::TimedOut) => return Err(RecvError::TimedOut),
                        Err(WaitError::Io(err)) => return Err(RecvError::Io(err)),
                    }
                }
                Err(errno) => return Err(RecvError::Io(errno.into())),
            }
        }
    }
}

/// How long a receive may wait for a datagram.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// Until one arrives.
    Forever,
    /// Until this deadline.
    Until(Instant),
    /// Not at all: only what is already queued.
    Never,
}

/// A `SOCK_SEQPACKET` send is all or nothing; anything else is reported, not retried.
fn check_whole_datagram(sent: usize, expected: usize) -> Result<(), WaitError> {
    if sent == expected {
        Ok(())
    } else {
        Err(WaitError::Io(io::Error::other(format!(
            "sendmsg sent {sent} of {expected} bytes"
        ))))
    }
}

/// Maps a failed datagram send to the caller's error: a gone peer is `Closed`.
fn send_error(err: WaitError) -> SendError {
    match err {
        WaitError::TimedOut => SendError::TimedOut,
        WaitError::Io(err) => match err.raw_os_error().map(Errno::from_raw_os_error) {
            Some(Errno::PIPE | Errno::CONNRESET) => SendError::Closed,
            _ => SendError::Io(err),
        },
    }
}

/// `CMSG_LEN` for the fds a message may carry, or 0 when it may carry none.
///
/// `CMSG_LEN` rather than `CMSG_SPACE`: the kernel fits `(msg_controllen - sizeof(cmsghdr)) / 4`
/// fds, so the padding `CMSG_SPACE` adds for an odd count would admit one fd too many.
fn control_len(limits: ChannelLimits) -> usize {
    match frame::receivable_fds(limits) {
        0 => 0,
        fds => CMSG_HEADER_BYTES + fds * size_of::<RawFd>(),
    }
}

/// A `len`-byte slice of `storage` aligned for `cmsghdr`, growing `storage` if needed.
///
/// Aligning here rather than leaving it to `RecvAncillaryBuffer::new` keeps the slice exactly
/// `len` bytes long, so the kernel's fd cap is exactly the limit.
fn aligned_control(storage: &mut Vec<MaybeUninit<u8>>, len: usize) -> &mut [MaybeUninit<u8>] {
    if len == 0 {
        return &mut [];
    }
    let needed = len + CMSG_ALIGN;
    if storage.len() < needed {
        storage.resize(needed, MaybeUninit::uninit());
    }
    let offset = storage.as_ptr().addr().wrapping_neg() % CMSG_ALIGN;
    &mut storage[offset..offset + len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_len_is_cmsg_len_of_the_fd_cap() {
        let limits = |fds| ChannelLimits {
            max_message_bytes: 1,
            max_fds_per_message: fds,
        };
        assert_eq!(control_len(limits(0)), 0);
        assert_eq!(control_len(limits(1)), CMSG_HEADER_BYTES + 4);
        assert_eq!(control_len(limits(8)), CMSG_HEADER_BYTES + 32);
        assert_eq!(
            control_len(limits(usize::MAX)),
            CMSG_HEADER_BYTES + 4 * frame::KERNEL_MAX_FDS
        );
        if cfg!(target_pointer_width = "64") {
            assert_eq!(CMSG_HEADER_BYTES, 16);
        }
    }

    #[test]
    fn aligned_control_is_aligned_and_exact() {
        let mut storage = Vec::new();
        for len in [0, 1, 20, 48, 1028] {
            let slice = aligned_control(&mut storage, len);
            assert_eq!(slice.len(), len);
            if len > 0 {
                assert_eq!(slice.as_ptr().addr() % CMSG_ALIGN, 0);
            }
        }
    }

    #[test]
    fn odd_fd_limits_admit_exactly_the_limit() {
        let limits = ChannelLimits {
            max_message_bytes: 64,
            max_fds_per_message: 1,
        };
        let (a, b) = Channel::pair(limits).unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        let two = [file.as_fd(), file.as_fd()];
        a.send_raw_datagram(&[HEADER_LAST], &two).unwrap();
        let mut state = RecvState::default();
        let mut buffer = vec![0; frame::RECV_BUFFER_BYTES];
        let control = aligned_control(&mut state.control, control_len(limits));
        let datagram = b
            .recv_datagram(&mut buffer, control, Wait::Forever)
            .unwrap();
        assert_eq!(datagram.fds.len(), 1, "the kernel must install only one fd");
        assert!(datagram.control_truncated);
    }
}
