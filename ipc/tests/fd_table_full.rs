//! A receiver whose fd table is full: a message carrying fds is read whole and reported as
//! `FdsDropped` (not a violation), its fds are gone, and the next message arrives as sent.
//!
//! This binary holds a single test: it lowers the whole process's `RLIMIT_NOFILE`.

use portcullis_ipc::{Channel, ChannelLimits, RecvError, CHUNK_PAYLOAD_BYTES};
use rustix::io::Errno;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

fn soon() -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(10))
}

fn open_fds() -> u64 {
    let count = std::fs::read_dir("/proc/self/fd").unwrap().count();
    u64::try_from(count).unwrap()
}

#[test]
fn full_fd_table_drops_the_fds_and_keeps_the_channel_in_step() {
    let (a, b) = Channel::pair(ChannelLimits::default()).unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let big: Vec<u8> = (0..2 * CHUNK_PAYLOAD_BYTES + 10)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();

    // Fill the fd table: a low soft limit, then duplicates until the kernel says EMFILE.
    let saved = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(open_fds() + 4),
            maximum: saved.maximum,
        },
    )
    .unwrap();
    let mut filler = Vec::new();
    loop {
        match rustix::io::dup(&null) {
            Ok(fd) => filler.push(fd),
            Err(Errno::MFILE) => break,
            Err(e) => panic!("dup: {e}"),
        }
    }

    // A message of three datagrams carrying an fd, then a plain one.
    a.send_bytes(&big, &[null.as_fd()], None).unwrap();
    a.send_bytes(b"next", &[], None).unwrap();
    let dropped = b.recv_bytes(soon());
    let next = b.recv_bytes(soon());

    // One slot free: the same message arrives with its fd.
    filler.pop();
    a.send_bytes(&big, &[null.as_fd()], None).unwrap();
    let whole = b.recv_bytes(soon());

    drop(filler);
    setrlimit(Resource::Nofile, saved).unwrap();
    assert!(
        matches!(dropped, Err(RecvError::FdsDropped)),
        "with a full fd table: {dropped:?}"
    );
    let (payload, fds) = next.expect("the next message after the dropped one");
    assert_eq!((payload.as_slice(), fds.len()), (&b"next"[..], 0));
    let (payload, fds) = whole.expect("the message once a slot is free");
    assert_eq!((payload == big, fds.len()), (true, 1));
}
