//! Framing: how datagrams make up a message, and the checks each received datagram must pass.
//!
//! This part does no I/O, so every rule can be tested on plain data. It trusts nothing in the
//! datagram: lengths come from what the kernel returned, never from the payload.

use crate::error::{ProtocolViolation, RecvError};
use crate::{ChannelLimits, CHUNK_PAYLOAD_BYTES};
use std::io;
use std::os::fd::OwnedFd;

/// Header byte of a message's last (or only) datagram.
pub(crate) const HEADER_LAST: u8 = 0x00;
/// Header byte of a datagram that more datagrams of the same message follow.
pub(crate) const HEADER_MORE: u8 = 0x01;
/// Longest valid datagram: one header byte and a full chunk.
pub(crate) const MAX_DATAGRAM_BYTES: usize = 1 + CHUNK_PAYLOAD_BYTES;
/// Receive buffer size: one byte more than the longest valid datagram, so an oversized datagram
/// shows up as a long read even if `MSG_TRUNC` were not reported.
pub(crate) const RECV_BUFFER_BYTES: usize = MAX_DATAGRAM_BYTES + 1;
/// The kernel's `SCM_MAX_FD`: no datagram carries more fds than this.
pub(crate) const KERNEL_MAX_FDS: usize = 253;

/// Fds the receive control buffer has room for. The kernel closes the rest and sets
/// `MSG_CTRUNC`.
pub(crate) fn receivable_fds(limits: ChannelLimits) -> usize {
    limits.max_fds_per_message.min(KERNEL_MAX_FDS)
}

/// One datagram as the kernel returned it.
#[derive(Debug)]
pub(crate) struct Datagram<'buf> {
    /// The bytes read, header included (at most [`RECV_BUFFER_BYTES`]).
    pub(crate) bytes: &'buf [u8],
    /// `MSG_TRUNC`: the datagram was longer than the buffer.
    pub(crate) truncated: bool,
    /// `MSG_CTRUNC`: the control data did not fit (or fds could not be installed).
    pub(crate) control_truncated: bool,
    /// Fds installed from `SCM_RIGHTS`; dropping them closes them.
    pub(crate) fds: Vec<OwnedFd>,
    /// Some control message other than `SCM_RIGHTS` arrived.
    pub(crate) unexpected_control: bool,
}

/// Whether a message is complete after a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// A `0x01` datagram: more follow.
    NeedMore,
    /// A `0x00` datagram: the message is whole.
    Complete,
}

/// A message being put together from its datagrams.
#[derive(Debug, Default)]
pub(crate) struct Assembly {
    payload: Vec<u8>,
    fds: Vec<OwnedFd>,
    started: bool,
    /// The kernel could not install the first datagram's fds here (this process's fd table is
    /// full): the message is read to its end, then reported as dropped.
    fds_dropped: bool,
}

impl Assembly {
    /// Whether at least one datagram of the message has been accepted.
    pub(crate) fn is_started(&self) -> bool {
        self.started
    }

    /// Whether the fds attached to this message could not be installed in this process.
    pub(crate) fn fds_dropped(&self) -> bool {
        self.fds_dropped
    }

    /// Checks `datagram` against the framing rules and `limits`, and adds it.
    ///
    /// Errors: a [`ProtocolViolation`] (the datagram's fds are closed on return; the caller
    /// must discard the assembly), or `Io(OutOfMemory)` if a within-limits payload cannot be
    /// allocated.
    pub(crate) fn push(
        &mut self,
        datagram: Datagram<'_>,
        limits: ChannelLimits,
    ) -> Result<Progress, RecvError> {
        let first = !self.started;
        let fds = check_control(&datagram, first, limits)?;
        if datagram.truncated || datagram.bytes.len() > MAX_DATAGRAM_BYTES {
            return Err(ProtocolViolation::OversizedDatagram.into());
        }
        let Some((&header, payload)) = datagram.bytes.split_first() else {
            return Err(ProtocolViolation::EmptyDatagram.into());
        };
        let progress = match header {
            HEADER_LAST => Progress::Complete,
            HEADER_MORE => Progress::NeedMore,
            byte => return Err(ProtocolViolation::BadHeader { byte }.into()),
        };
        self.append(payload, limits.max_message_bytes)?;
        if first {
            match fds {
                Fds::Received => self.fds = datagram.fds,
                // Those that were installed are closed with the datagram.
                Fds::Dropped => self.fds_dropped = true,
            }
            self.started = true;
        }
        Ok(progress)
    }

    /// Hands over the payload and fds and resets the assembly.
    pub(crate) fn take(&mut self) -> (Vec<u8>, Vec<OwnedFd>) {
        let whole = std::mem::take(self);
        (whole.payload, whole.fds)
    }

    /// Appends `bytes`, growing the buffer geometrically but never past `max` bytes of capacity.
    fn append(&mut self, bytes: &[u8], max: usize) -> Result<(), RecvError> {
        let new_len = self
            .payload
            .len()
            .checked_add(bytes.len())
            .filter(|&len| len <= max)
            .ok_or(ProtocolViolation::TooLarge { max })?;
        if new_len > self.payload.capacity() {
            let target = new_len
                .max(self.payload.capacity().saturating_mul(2))
                .min(max);
            self.payload
                .try_reserve_exact(target - self.payload.len())
                .map_err(|_| RecvError::Io(io::ErrorKind::OutOfMemory.into()))?;
        }
        self.payload.extend_from_slice(bytes);
        Ok(())
    }
}

/// What became of a first datagram's fds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fds {
    /// All of them are in the datagram (possibly none).
    Received,
    /// The kernel could not install them in this process.
    Dropped,
}

/// The control-data rules: only `SCM_RIGHTS`, only on the first datagram, at most
/// `max_fds_per_message` fds. A truncation (`MSG_CTRUNC`) of a full control buffer means the
/// peer sent too many; of a buffer with room left, that this process could not take them.
fn check_control(
    datagram: &Datagram<'_>,
    first: bool,
    limits: ChannelLimits,
) -> Result<Fds, ProtocolViolation> {
    if datagram.unexpected_control {
        return Err(ProtocolViolation::UnexpectedControlMessage);
    }
    if !first && (datagram.control_truncated || !datagram.fds.is_empty()) {
        return Err(ProtocolViolation::FdsAfterFirstDatagram);
    }
    let max = limits.max_fds_per_message;
    if datagram.control_truncated {
        // A full control buffer means the peer sent more fds than we make room for. Fewer
        // means the kernel stopped installing them: this process's fd table is full
        // (`RLIMIT_NOFILE`), which is ours to report, not the peer's violation. The datagram
        // itself arrived whole, so the framing holds.
        return if datagram.fds.len() >= receivable_fds(limits) {
            Err(ProtocolViolation::TooManyFds { max })
        } else {
            Ok(Fds::Dropped)
        };
    }
    if datagram.fds.len() > max {
        return Err(ProtocolViolation::TooManyFds { max });
    }
    Ok(Fds::Received)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ChannelLimits = ChannelLimits {
        max_message_bytes: 1000,
        max_fds_per_message: 2,
    };

    fn datagram(bytes: &[u8]) -> Datagram<'_> {
        Datagram {
            bytes,
            truncated: false,
            control_truncated: false,
            fds: Vec::new(),
            unexpected_control: false,
        }
    }

    fn dev_null() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    fn violation(result: Result<Progress, RecvError>) -> ProtocolViolation {
        match result {
            Err(RecvError::Violation(violation)) => violation,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn chunks_join_into_one_message() {
        let mut assembly = Assembly::default();
        assert_eq!(
            assembly
                .push(datagram(&[HEADER_MORE, 1, 2]), LIMITS)
                .unwrap(),
            Progress::NeedMore
        );
        assert!(assembly.is_started());
        assert_eq!(
            assembly.push(datagram(&[HEADER_LAST, 3]), LIMITS).unwrap(),
            Progress::Complete
        );
        let (payload, fds) = assembly.take();
        assert_eq!((payload, fds.len()), (vec![1, 2, 3], 0));
        assert!(!assembly.is_started());
    }

    #[test]
    fn header_only_datagram_is_an_empty_message() {
        let mut assembly = Assembly::default();
        assert_eq!(
            assembly.push(datagram(&[HEADER_LAST]), LIMITS).unwrap(),
            Progress::Complete
        );
        assert!(assembly.take().0.is_empty());
    }

    #[test]
    fn header_byte_rules() {
        let cases: &[(&[u8], ProtocolViolation)] = &[
            (&[], ProtocolViolation::EmptyDatagram),
            (&[0x02, 1], ProtocolViolation::BadHeader { byte: 0x02 }),
            (&[0xff], ProtocolViolation::BadHeader { byte: 0xff }),
        ];
        for (bytes, expected) in cases {
            let mut assembly = Assembly::default();
            assert_eq!(&violation(assembly.push(datagram(bytes), LIMITS)), expected);
        }
    }

    #[test]
    fn oversized_datagrams_are_rejected() {
        let long = vec![HEADER_LAST; RECV_BUFFER_BYTES];
        let mut assembly = Assembly::default();
        assert_eq!(
            violation(assembly.push(datagram(&long), LIMITS)),
            ProtocolViolation::OversizedDatagram
        );
        let mut truncated = datagram(&[HEADER_LAST]);
        truncated.truncated = true;
        assert_eq!(
            violation(Assembly::default().push(truncated, LIMITS)),
            ProtocolViolation::OversizedDatagram
        );
    }

    #[test]
    fn fd_rules() {
        let mut later = Assembly::default();
        later.push(datagram(&[HEADER_MORE]), LIMITS).unwrap();
        let mut with_fd = datagram(&[HEADER_LAST]);
        with_fd.fds.push(dev_null());
        assert_eq!(
            violation(later.push(with_fd, LIMITS)),
            ProtocolViolation::FdsAfterFirstDatagram
        );

        let mut full = datagram(&[HEADER_LAST]);
        full.fds = vec![dev_null(), dev_null()];
        full.control_truncated = true;
        assert_eq!(
            violation(Assembly::default().push(full, LIMITS)),
            ProtocolViolation::TooManyFds { max: 2 }
        );

        // Room left in the buffer: the kernel could not install the fds here (a full fd
        // table). The message completes, its fds are closed, and it is marked dropped.
        let mut short = datagram(&[HEADER_MORE, 1]);
        short.fds = vec![dev_null()];
        short.control_truncated = true;
        let mut dropped = Assembly::default();
        assert_eq!(dropped.push(short, LIMITS).unwrap(), Progress::NeedMore);
        assert!(dropped.fds_dropped());
        assert_eq!(
            dropped.push(datagram(&[HEADER_LAST, 2]), LIMITS).unwrap(),
            Progress::Complete
        );
        assert!(dropped.fds_dropped());
        let (payload, fds) = dropped.take();
        assert_eq!((payload, fds.len()), (vec![1, 2], 0));
        assert!(!dropped.fds_dropped(), "take resets the assembly");

        let mut too_many = datagram(&[HEADER_LAST]);
        too_many.fds = vec![dev_null(), dev_null(), dev_null()];
        assert_eq!(
            violation(Assembly::default().push(too_many, LIMITS)),
            ProtocolViolation::TooManyFds { max: 2 }
        );

        let mut credentials = datagram(&[HEADER_LAST]);
        credentials.unexpected_control = true;
        assert_eq!(
            violation(Assembly::default().push(credentials, LIMITS)),
            ProtocolViolation::UnexpectedControlMessage
        );

        let mut ok = datagram(&[HEADER_LAST]);
        ok.fds = vec![dev_null(), dev_null()];
        let mut assembly = Assembly::default();
        assert_eq!(assembly.push(ok, LIMITS).unwrap(), Progress::Complete);
        assert_eq!(assembly.take().1.len(), 2);
    }

    #[test]
    fn growth_stops_at_the_cap_and_capacity_never_exceeds_it() {
        let chunk = [HEADER_MORE; 301];
        let mut assembly = Assembly::default();
        for _ in 0..3 {
            assembly.push(datagram(&chunk), LIMITS).unwrap();
            assert!(assembly.payload.capacity() <= LIMITS.max_message_bytes);
        }
        assert_eq!(
            violation(assembly.push(datagram(&chunk), LIMITS)),
            ProtocolViolation::TooLarge { max: 1000 }
        );
        assert!(assembly.payload.capacity() <= LIMITS.max_message_bytes);
        assert_eq!(assembly.payload.len(), 900);
    }

    #[test]
    fn exactly_the_cap_is_allowed() {
        let mut assembly = Assembly::default();
        let mut bytes = vec![HEADER_LAST];
        bytes.resize(1 + LIMITS.max_message_bytes, 7);
        assert_eq!(
            assembly.push(datagram(&bytes), LIMITS).unwrap(),
            Progress::Complete
        );
        assert_eq!(assembly.take().0.len(), LIMITS.max_message_bytes);
    }
}
