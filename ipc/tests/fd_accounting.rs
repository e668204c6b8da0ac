//! A hostile peer's surplus fds are closed, never leaked.
//!
//! This binary holds a single test, so no other test thread opens or closes fds while it counts
//! the entries of `/proc/self/fd`.

use portcullis_ipc::{Channel, ChannelLimits, ProtocolViolation, RecvError};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn soon() -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(10))
}

fn violation(result: Result<(Vec<u8>, Vec<std::os::fd::OwnedFd>), RecvError>) -> ProtocolViolation {
    match result {
        Err(RecvError::Violation(violation)) => violation,
        other => panic!("expected a protocol violation, got {other:?}"),
    }
}

#[test]
fn surplus_and_misplaced_fds_are_closed() {
    let (a, b) = Channel::pair(ChannelLimits::default()).unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let many: Vec<BorrowedFd<'_>> = vec![null.as_fd(); 64];
    let baseline = open_fds();

    // 64 fds on an otherwise valid empty message: the kernel installs 8 and closes 56.
    a.send_raw_datagram(&[0x00], &many).unwrap();
    assert_eq!(
        violation(b.recv_bytes(soon())),
        ProtocolViolation::TooManyFds { max: 8 }
    );
    assert_eq!(open_fds(), baseline, "fds leaked after TooManyFds");

    // Fds on the second datagram: both datagrams' fds are closed.
    a.send_raw_datagram(&[0x01, 1], &many[..3]).unwrap();
    a.send_raw_datagram(&[0x00, 2], &many[..2]).unwrap();
    assert_eq!(
        violation(b.recv_bytes(soon())),
        ProtocolViolation::FdsAfterFirstDatagram
    );
    assert_eq!(
        open_fds(),
        baseline,
        "fds leaked after FdsAfterFirstDatagram"
    );

    // Fds with a message that then breaks the framing.
    a.send_raw_datagram(&[0x01, 1], &many[..8]).unwrap();
    a.send_raw_datagram(&[0x07], &[]).unwrap();
    assert_eq!(
        violation(b.recv_bytes(soon())),
        ProtocolViolation::BadHeader { byte: 7 }
    );
    assert_eq!(open_fds(), baseline, "fds leaked after BadHeader");

    // Fds with a message that fails to decode.
    a.send_raw_datagram(&[0x00, 0x09], &many[..8]).unwrap();
    assert!(matches!(
        b.recv::<bool>(soon()),
        Err(RecvError::Violation(ProtocolViolation::Decode { .. }))
    ));
    assert_eq!(open_fds(), baseline, "fds leaked after Decode");

    // Fds on a zero-length datagram.
    a.send_raw_datagram(&[], &many[..4]).unwrap();
    assert_eq!(
        violation(b.recv_bytes(soon())),
        ProtocolViolation::EmptyDatagram
    );
    assert_eq!(open_fds(), baseline, "fds leaked after EmptyDatagram");

    // Fds with a half message when the peer hangs up.
    a.send_raw_datagram(&[0x01, 1], &many[..8]).unwrap();
    drop(a);
    assert_eq!(
        violation(b.recv_bytes(soon())),
        ProtocolViolation::EndedMidMessage
    );
    // One fewer than the baseline: `a` itself is gone.
    assert_eq!(open_fds(), baseline - 1, "fds leaked after EndedMidMessage");

    // A channel that accepts no fds at all still closes what it is sent.
    let limits = ChannelLimits {
        max_fds_per_message: 0,
        ..ChannelLimits::default()
    };
    let (c, d) = Channel::pair(limits).unwrap();
    let baseline = open_fds();
    c.send_raw_datagram(&[0x00], &many[..5]).unwrap();
    assert_eq!(
        violation(d.recv_bytes(soon())),
        ProtocolViolation::TooManyFds { max: 0 }
    );
    assert_eq!(open_fds(), baseline, "fds leaked with a zero fd limit");

    // And a well-behaved message's fds are the caller's to keep and close.
    c.send_raw_datagram(&[0x00], &[]).unwrap();
    let (_, fds) = d.recv_bytes(soon()).unwrap();
    assert!(fds.is_empty());
}
