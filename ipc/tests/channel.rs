//! Channel behaviour over real socketpairs: round trips, fds, deadlines, concurrency, and a
//! hostile peer writing raw datagrams.

use portcullis_ipc::{
    Channel, ChannelLimits, ProtocolViolation, RecvError, SendError, CHUNK_PAYLOAD_BYTES,
};
use rustix::io::{fcntl_getfd, FdFlags};
use serde::{Deserialize, Serialize};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

const LAST: u8 = 0x00;
const MORE: u8 = 0x01;

/// A byte pattern with period 251, so chunk-sized shifts or swaps show up.
fn pattern_byte(i: usize) -> u8 {
    u8::try_from(i % 251).unwrap()
}

fn pair() -> (Channel, Channel) {
    Channel::pair(ChannelLimits::default()).expect("socketpair")
}

/// A generous deadline so a broken receive fails the test instead of hanging it.
fn soon() -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(10))
}

/// Shuts a receiving end down if its thread panics, so senders blocked on it fail instead of
/// hanging the test.
struct HangUpOnPanic<'a>(&'a Channel);

impl Drop for HangUpOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = rustix::net::shutdown(self.0, rustix::net::Shutdown::Both);
        }
    }
}

fn expect_violation<T: std::fmt::Debug>(result: Result<T, RecvError>) -> ProtocolViolation {
    match result {
        Err(RecvError::Violation(violation)) => violation,
        other => panic!("expected a protocol violation, got {other:?}"),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Request {
    Open { path: String, write: bool },
    Stat(u64),
    Log(Vec<String>),
    Ping,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Envelope {
    id: u32,
    request: Request,
    tags: Option<[u8; 3]>,
}

#[test]
fn typed_struct_and_enum_round_trip() {
    let (a, b) = pair();
    let sent = [
        Envelope {
            id: 1,
            request: Request::Open {
                path: "/srv/ümlaut".into(),
                write: true,
            },
            tags: Some([1, 2, 3]),
        },
        Envelope {
            id: u32::MAX,
            request: Request::Stat(u64::MAX),
            tags: None,
        },
        Envelope {
            id: 3,
            request: Request::Log(vec!["a".into(), String::new()]),
            tags: None,
        },
        Envelope {
            id: 4,
            request: Request::Ping,
            tags: None,
        },
    ];
    for msg in &sent {
        a.send(msg, &[], None).unwrap();
    }
    for msg in &sent {
        let (got, fds): (Envelope, _) = b.recv(soon()).unwrap();
        assert_eq!(&got, msg);
        assert!(fds.is_empty());
    }
    // And the other direction, with a bare enum and an unsized slice.
    b.send(&Request::Ping, &[], soon()).unwrap();
    assert_eq!(a.recv::<Request>(soon()).unwrap().0, Request::Ping);
    b.send::<[u16]>(&[1, 2, 3][..], &[], soon()).unwrap();
    assert_eq!(a.recv::<Vec<u16>>(soon()).unwrap().0, vec![1, 2, 3]);
}

#[test]
fn one_mib_message_round_trips_over_many_datagrams() {
    let (a, b) = pair();
    let payload: Vec<u8> = (0..1024 * 1024_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    std::thread::scope(|scope| {
        scope.spawn(|| a.send(&payload, &[], None).unwrap());
        let _hang_up = HangUpOnPanic(&b);
        let (got, fds): (Vec<u8>, _) = b.recv(soon()).unwrap();
        assert!(got == payload, "1 MiB payload corrupted");
        assert!(fds.is_empty());
    });
}

#[test]
fn chunk_boundaries_round_trip() {
    let (a, b) = pair();
    for len in [
        CHUNK_PAYLOAD_BYTES - 1,
        CHUNK_PAYLOAD_BYTES,
        CHUNK_PAYLOAD_BYTES + 1,
        2 * CHUNK_PAYLOAD_BYTES,
    ] {
        let payload: Vec<u8> = (0..len).map(pattern_byte).collect();
        a.send_bytes(&payload, &[], soon()).unwrap();
        assert_eq!(b.recv_bytes(soon()).unwrap().0, payload, "length {len}");
    }
}

#[test]
fn empty_message_round_trips() {
    let (a, b) = pair();
    a.send_bytes(&[], &[], None).unwrap();
    let (bytes, fds) = b.recv_bytes(soon()).unwrap();
    assert!(bytes.is_empty() && fds.is_empty());
    // `()` encodes to zero bytes.
    a.send(&(), &[], None).unwrap();
    b.recv::<()>(soon()).unwrap();
    // A bare header datagram is the same empty message.
    a.send_raw_datagram(&[LAST], &[]).unwrap();
    assert!(b.recv_bytes(soon()).unwrap().0.is_empty());
}

#[test]
fn fds_arrive_open_same_file_and_cloexec() {
    let (a, b) = pair();
    let exe = std::fs::File::open("/proc/self/exe").unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let payload = vec![7_u8; 3 * CHUNK_PAYLOAD_BYTES];
    std::thread::scope(|scope| {
        scope.spawn(|| {
            a.send(&payload, &[exe.as_fd(), null.as_fd()], None)
                .unwrap()
        });
        let _hang_up = HangUpOnPanic(&b);
        let (got, fds): (Vec<u8>, _) = b.recv(soon()).unwrap();
        assert_eq!(got, payload);
        assert_eq!(fds.len(), 2);
        for (received, original) in fds.iter().zip([&exe, &null]) {
            let received_stat = rustix::fs::fstat(received).expect("received fd is open");
            let original_stat = rustix::fs::fstat(original).unwrap();
            assert_eq!(
                (received_stat.st_dev, received_stat.st_ino),
                (original_stat.st_dev, original_stat.st_ino)
            );
            assert!(fcntl_getfd(received).unwrap().contains(FdFlags::CLOEXEC));
        }
    });
}

#[test]
fn sender_limits_are_checked_before_sending() {
    let limits = ChannelLimits {
        max_message_bytes: 100,
        max_fds_per_message: 1,
    };
    let (a, b) = Channel::pair(limits).unwrap();
    assert_eq!(a.limits(), limits);
    match a.send(&vec![0_u8; 200], &[], None) {
        Err(SendError::TooLarge { len, max }) => assert_eq!((len, max), (202, 100)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    match a.send_bytes(&[0; 101], &[], None) {
        Err(SendError::TooLarge { len, max }) => assert_eq!((len, max), (101, 100)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let null = std::fs::File::open("/dev/null").unwrap();
    match a.send(&1_u8, &[null.as_fd(), null.as_fd()], None) {
        Err(SendError::TooManyFds { count, max }) => assert_eq!((count, max), (2, 1)),
        other => panic!("expected TooManyFds, got {other:?}"),
    }
    // Nothing went out.
    assert!(matches!(
        b.recv_bytes(Some(Instant::now() + Duration::from_millis(20))),
        Err(RecvError::TimedOut)
    ));
    // Exactly at the limits is fine.
    a.send_bytes(&[9; 100], &[null.as_fd()], None).unwrap();
    let (bytes, fds) = b.recv_bytes(soon()).unwrap();
    assert_eq!((bytes.len(), fds.len()), (100, 1));
}

#[test]
fn garbage_payload_is_a_decode_violation() {
    let (a, b) = pair();
    // 0x07 is no bool.
    a.send_raw_datagram(&[LAST, 0x07], &[]).unwrap();
    assert!(matches!(
        expect_violation(b.recv::<bool>(soon())),
        ProtocolViolation::Decode { .. }
    ));
    // Variant 200 of a four-variant enum.
    a.send_raw_datagram(&[LAST, 0xc8, 0x01], &[]).unwrap();
    assert!(matches!(
        expect_violation(b.recv::<Request>(soon())),
        ProtocolViolation::Decode { .. }
    ));
    // A string claiming a huge length backed by three bytes.
    a.send_raw_datagram(&[LAST, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a', b'b', b'c'], &[])
        .unwrap();
    let violation = expect_violation(b.recv::<String>(soon()));
    let ProtocolViolation::Decode { reason } = violation else {
        panic!("expected Decode, got {violation:?}");
    };
    assert!(!reason.is_empty() && reason.chars().count() <= 200);
    // A message too short for its type.
    a.send_bytes(&[], &[], None).unwrap();
    assert!(matches!(
        expect_violation(b.recv::<u64>(soon())),
        ProtocolViolation::Decode { .. }
    ));
}

#[test]
fn trailing_bytes_are_a_violation() {
    let (a, b) = pair();
    a.send_bytes(&[5, 0, 0, 0], &[], None).unwrap();
    assert_eq!(
        expect_violation(b.recv::<u8>(soon())),
        ProtocolViolation::TrailingBytes { count: 3 }
    );
}

#[test]
fn bad_header_is_a_violation() {
    let (a, b) = pair();
    a.send_raw_datagram(&[0x02, 1, 2, 3], &[]).unwrap();
    assert_eq!(
        expect_violation(b.recv_bytes(soon())),
        ProtocolViolation::BadHeader { byte: 0x02 }
    );
    a.send_raw_datagram(&[0x80], &[]).unwrap();
    assert_eq!(
        expect_violation(b.recv_bytes(soon())),
        ProtocolViolation::BadHeader { byte: 0x80 }
    );
}

#[test]
fn zero_length_datagram_is_a_violation() {
    let (a, b) = pair();
    a.send_raw_datagram(&[], &[]).unwrap();
    assert_eq!(
        expect_violation(b.recv_bytes(soon())),
        ProtocolViolation::EmptyDatagram
    );
    // The peer is still there, and the next message is read normally.
    a.send(&17_u32, &[], None).unwrap();
    assert_eq!(b.recv::<u32>(soon()).unwrap().0, 17);
}

#[test]
fn oversized_datagrams_are_violations() {
    let (a, b) = pair();
    // One byte over: fits the receive buffer exactly, caught by length.
    let mut one_over = vec![LAST; 1 + CHUNK_PAYLOAD_BYTES + 1];
    one_over[1..].fill(0xaa);
    a.send_raw_datagram(&one_over, &[]).unwrap();
    assert_eq!(
        expect_violation(b.recv_bytes(soon())),
        ProtocolViolation::OversizedDatagram
    );
    // Far over: caught by MSG_TRUNC.
    let mut far_over = vec![0xaa_u8; 1 + CHUNK_PAYLOAD_BYTES + 1000];
    far_over[0] = MORE;
    a.send_raw_datagram(&far_over, &[]).unwrap();
    assert_eq!(
        expect_violation(b.recv_bytes(soon())),
        ProtocolViolation::OversizedDatagram
    );
    // A full-size datagram is fine.
    let mut full = vec![0x55_u8; 1 + CHUNK_PAYLOAD_BYTES];
    full[0] = LAST;
    a.send_raw_datagram(&full, &[]).unwrap();
    assert_eq!(b.recv_bytes(soon()).unwrap().0.len(), CHUNK_PAYLOAD_BYTES);
}

#[test]
fn message_over_the_cap_is_too_large() {
    let limits = ChannelLimits {
        max_message_bytes: 1024,
        max_fds_per_message: 8,
    };
    let (a, b) = Channel::pair(limits).unwrap();
    let mut chunk = vec![0x33_u8; 1 + 512];
    chunk[0] = MORE;
    // 3 KiB announced as "more follows" throughout.
    for _ in 0..6 {
        a.send_raw_datagram(&chunk, &[]).unwrap();
    }
    assert_eq!(
        expect_violation(b.recv_bytes(soon())),
        ProtocolViolation::TooLarge { max: 1024 }
    );
    // A sender of this crate refuses to build such a message in the first place.
    assert!(matches!(
        b.send_bytes(&[0; 1025], &[], None),
        Err(SendError::TooLarge { .. })
    ));
}

#[test]
fn close_after_a_more_datagram_is_ended_mid_message() {
    let (a, b) = pair();
    a.send_raw_datagram(&[MORE, 1, 2, 3], &[]).unwrap();
    drop(a);
    assert_eq!(
        expect_violation(b.recv_bytes(soon())),
        ProtocolViolation::EndedMidMessage
    );
}

#[test]
fn dropped_peer_is_closed() {
    let (a, b) = pair();
    a.send(&1_u8, &[], None).unwrap();
    drop(a);
    // Queued messages are still delivered, then Closed, and Closed again.
    assert_eq!(b.recv::<u8>(soon()).unwrap().0, 1);
    assert!(matches!(b.recv_bytes(soon()), Err(RecvError::Closed)));
    assert!(matches!(b.recv_bytes(None), Err(RecvError::Closed)));
    assert!(matches!(b.send(&1_u8, &[], None), Err(SendError::Closed)));
    assert!(matches!(b.send(&1_u8, &[], soon()), Err(SendError::Closed)));
}

#[test]
fn peer_dropped_with_our_data_unread_is_closed_not_reset() {
    let (a, b) = pair();
    b.send(&"unread", &[], None).unwrap();
    a.send(&2_u8, &[], None).unwrap();
    drop(a); // `a` never read `b`'s message: the kernel reports ECONNRESET to `b` once.
    assert_eq!(b.recv::<u8>(soon()).unwrap().0, 2);
    assert!(matches!(b.recv_bytes(soon()), Err(RecvError::Closed)));
}

#[test]
fn recv_with_deadline_and_no_sender_times_out() {
    let (_a, b) = pair();
    let deadline = Some(Instant::now() + Duration::from_millis(30));
    assert!(matches!(b.recv_bytes(deadline), Err(RecvError::TimedOut)));
    // A deadline already past returns at once, too.
    assert!(matches!(
        b.recv::<u8>(Some(Instant::now())),
        Err(RecvError::TimedOut)
    ));
}

#[test]
fn timed_out_receive_resumes_the_same_message() {
    let (a, b) = pair();
    let null = std::fs::File::open("/dev/null").unwrap();
    a.send_raw_datagram(&[MORE, 1, 2], &[null.as_fd()]).unwrap();
    let deadline = Some(Instant::now() + Duration::from_millis(20));
    assert!(matches!(b.recv_bytes(deadline), Err(RecvError::TimedOut)));
    a.send_raw_datagram(&[LAST, 3], &[]).unwrap();
    let (bytes, fds) = b.recv_bytes(soon()).unwrap();
    assert_eq!((bytes, fds.len()), (vec![1, 2, 3], 1));
}

#[test]
fn try_recv_reads_only_what_is_queued() {
    let (a, b) = pair();
    // Nothing queued: `TimedOut` at once.
    assert!(matches!(b.try_recv::<Vec<u8>>(), Err(RecvError::TimedOut)));
    // A message of several datagrams, all queued, is read whole by one call.
    let big: Vec<u8> = (0..3 * CHUNK_PAYLOAD_BYTES + 5).map(pattern_byte).collect();
    a.send(&big, &[], None).unwrap();
    let (got, fds) = b.try_recv::<Vec<u8>>().unwrap();
    assert_eq!((got == big, fds.len()), (true, 0));
    // Datagrams that trickle in: what is there is kept, and the next call resumes.
    let null = std::fs::File::open("/dev/null").unwrap();
    a.send_raw_datagram(&[MORE, 3, 1], &[null.as_fd()]).unwrap();
    assert!(matches!(b.try_recv::<Vec<u8>>(), Err(RecvError::TimedOut)));
    a.send_raw_datagram(&[LAST, 2, 3], &[]).unwrap();
    let (got, fds) = b.try_recv::<Vec<u8>>().unwrap();
    assert_eq!((got, fds.len()), (vec![1, 2, 3], 1));
    // Two queued messages: one per call, then nothing.
    a.send(&vec![1_u8], &[], None).unwrap();
    a.send(&vec![2_u8], &[], None).unwrap();
    assert_eq!(b.try_recv::<Vec<u8>>().unwrap().0, vec![1]);
    assert_eq!(b.try_recv::<Vec<u8>>().unwrap().0, vec![2]);
    assert!(matches!(b.try_recv::<Vec<u8>>(), Err(RecvError::TimedOut)));
    // End of stream and violations are reported as by `recv`.
    a.send_raw_datagram(&[0x07], &[]).unwrap();
    assert_eq!(
        expect_violation(b.try_recv::<Vec<u8>>()),
        ProtocolViolation::BadHeader { byte: 7 }
    );
    drop(a);
    assert!(matches!(b.try_recv::<Vec<u8>>(), Err(RecvError::Closed)));
}

#[test]
fn send_to_a_peer_that_never_reads_times_out() {
    let (a, _b) = pair();
    let chunk = vec![0_u8; CHUNK_PAYLOAD_BYTES];
    let mut timed_out = false;
    // The socket buffer holds a few hundred KiB; 10,000 datagrams is far past that.
    for _ in 0..10_000 {
        let deadline = Some(Instant::now() + Duration::from_millis(20));
        match a.send_bytes(&chunk, &[], deadline) {
            Ok(()) => {}
            Err(SendError::TimedOut) => {
                timed_out = true;
                break;
            }
            Err(other) => panic!("expected TimedOut, got {other:?}"),
        }
    }
    assert!(timed_out, "send never hit the full socket buffer");
}

#[test]
fn send_timing_out_mid_message_ends_the_stream_cleanly() {
    let (a, b) = pair();
    let big = vec![0x42_u8; 4 * 1024 * 1024];
    let deadline = Some(Instant::now() + Duration::from_millis(50));
    assert!(matches!(
        a.send_bytes(&big, &[], deadline),
        Err(SendError::TimedOut)
    ));
    // The peer sees the partial message end, never a misframed one.
    assert_eq!(
        expect_violation(b.recv_bytes(soon())),
        ProtocolViolation::EndedMidMessage
    );
    assert!(matches!(a.send(&1_u8, &[], soon()), Err(SendError::Closed)));
}

#[test]
fn concurrent_senders_never_interleave() {
    const THREADS: u32 = 4;
    const PER_THREAD: u32 = 200;
    // Spans three datagrams.
    const LEN: usize = 2 * CHUNK_PAYLOAD_BYTES + 100;

    /// A pattern shifted per message, with the message's identity stamped at the start of every
    /// chunk-sized stretch, so a datagram of another message cannot pass for one of this one.
    fn body(thread: u32, seq: u32) -> Vec<u8> {
        let shift = usize::try_from(thread * 17 + seq).unwrap();
        let mut bytes: Vec<u8> = (0..LEN).map(|i| pattern_byte(i + shift)).collect();
        let stamp = [thread.to_le_bytes(), seq.to_le_bytes()].concat();
        for start in (0..LEN).step_by(CHUNK_PAYLOAD_BYTES) {
            bytes[start..start + stamp.len()].copy_from_slice(&stamp);
        }
        bytes
    }

    let (a, b) = pair();
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let a = &a;
            scope.spawn(move || {
                for seq in 0..PER_THREAD {
                    a.send(&(thread, seq, body(thread, seq)), &[], None)
                        .unwrap();
                }
            });
        }
        let _hang_up = HangUpOnPanic(&b);
        let mut next = [0_u32; THREADS as usize];
        for _ in 0..THREADS * PER_THREAD {
            let ((thread, seq, bytes), _): ((u32, u32, Vec<u8>), _) = b.recv(soon()).unwrap();
            assert_eq!(seq, next[thread as usize], "thread {thread} out of order");
            assert!(
                bytes == body(thread, seq),
                "message {thread}/{seq} corrupted"
            );
            next[thread as usize] += 1;
        }
        assert_eq!(next, [PER_THREAD; THREADS as usize]);
    });
}

#[test]
fn concurrent_receivers_each_get_whole_messages() {
    let (a, b) = pair();
    const MESSAGES: u32 = 200;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..MESSAGES {
                a.send(
                    &(i, vec![i.to_le_bytes()[0]; CHUNK_PAYLOAD_BYTES + 10]),
                    &[],
                    None,
                )
                .unwrap();
            }
        });
        let receivers: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    let _hang_up = HangUpOnPanic(&b);
                    let mut got = Vec::new();
                    loop {
                        let deadline = Some(Instant::now() + Duration::from_millis(500));
                        match b.recv::<(u32, Vec<u8>)>(deadline) {
                            Ok(((i, bytes), _)) => {
                                assert!(bytes.iter().all(|&byte| byte == i.to_le_bytes()[0]));
                                assert_eq!(bytes.len(), CHUNK_PAYLOAD_BYTES + 10);
                                got.push(i);
                            }
                            Err(RecvError::TimedOut) => return got,
                            Err(other) => panic!("receive failed: {other:?}"),
                        }
                    }
                })
            })
            .collect();
        let mut all: Vec<u32> = receivers
            .into_iter()
            .flat_map(|receiver| receiver.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..MESSAGES).collect::<Vec<_>>());
    });
}

/// xorshift64: enough randomness to shake the receiver, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> usize {
        usize::try_from(self.next() % n).unwrap()
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

#[test]
fn random_datagrams_never_panic_the_receiver() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let limits = ChannelLimits {
        max_message_bytes: 64 * 1024,
        max_fds_per_message: 2,
    };
    let null = std::fs::File::open("/dev/null").unwrap();
    let (mut oks, mut violations) = (0, 0);
    for case in 0..2_000 {
        let (a, b) = Channel::pair(limits).unwrap();
        for _ in 0..1 + rng.below(3) {
            let len = match rng.below(10) {
                0 => rng.below(1 + CHUNK_PAYLOAD_BYTES as u64 + 16),
                _ => rng.below(48),
            };
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            // Mostly valid headers, so the payload reaches the decoder.
            if let Some(header) = bytes.first_mut() {
                if rng.below(4) != 0 {
                    *header = if rng.below(2) == 0 { LAST } else { MORE };
                }
            }
            let fds = vec![null.as_fd(); rng.below(4)];
            let fds = if rng.below(8) == 0 { &fds[..] } else { &[] };
            a.send_raw_datagram(&bytes, fds).unwrap();
        }
        drop(a);
        // Read until the stream ends; a finished peer never leaves us waiting.
        for _ in 0..8 {
            let result = if case % 2 == 0 {
                b.recv_bytes(soon()).map(drop)
            } else {
                b.recv::<Envelope>(soon()).map(drop)
            };
            match result {
                Ok(()) => oks += 1,
                Err(RecvError::Violation(_)) => violations += 1,
                Err(RecvError::Closed) => break,
                Err(other) => panic!("case {case}: expected Ok or a violation, got {other:?}"),
            }
        }
    }
    assert!(
        oks > 0 && violations > 0,
        "oks {oks}, violations {violations}"
    );
}
