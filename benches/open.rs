//! `cargo bench --workspace --bench open -- --json [--pin] [--rounds N] [--workers N]`
//!
//! Interleaves, in blocks of 200 operations per round:
//! - `native_open_us`: `open` + `close` of a small file by the bench process;
//! - `raw_fd_rtt_us`: a `SOCK_SEQPACKET` round trip carrying one fd between the bench process and
//!   a plain forked process (the floor of any fd broker);
//! - `brokered_open_us`: a sandboxed child's `ChildContext::open` of the same file — request,
//!   policy decision, `openat2` beneath the grant's directory fd, fd back, audit record — and
//!   `close`, timed inside the child.
//!
//! Prints medians and `brokered_over_native`; the last stdout line is one JSON object.

mod common;

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use common::{json_line, median_us, r2, Options};
use portcullis::{Broker, BrokerConfig, ChildContext, Entries, OpenOptions};

const BLOCK: usize = 200;

/// Opens `path` `BLOCK` times through the broker; answers each request with the durations (ns).
fn opener(ctx: ChildContext<Vec<u64>, String>, _: ()) -> i32 {
    while let Ok(path) = ctx.recv() {
        let mut samples = Vec::with_capacity(BLOCK);
        for _ in 0..BLOCK {
            let start = Instant::now();
            match ctx.open(&path, &OpenOptions::new().read(true)) {
                Ok(file) => drop(file),
                Err(_) => return 2,
            }
            samples.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        if ctx.send(&samples).is_err() {
            return 1;
        }
    }
    0
}

fn native_open(path: &std::path::Path) -> Duration {
    let start = Instant::now();
    drop(std::fs::File::open(path).expect("open"));
    start.elapsed()
}

/// A forked peer that receives one fd per datagram, closes it, and answers one byte.
fn raw_fd_peer() -> (std::os::fd::OwnedFd, libc::pid_t) {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    // SAFETY: the child only calls recvmsg/close/write/_exit (async-signal-safe) on its own fds
    // and a stack buffer.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            // Our copy of the bench's end would keep the socket open after the bench drops it.
            libc::close(ours.as_raw_fd());
            let fd = theirs.as_raw_fd();
            let mut byte = [0u8; 1];
            let mut cmsg = [0u64; 8];
            loop {
                let mut iov = libc::iovec {
                    iov_base: byte.as_mut_ptr().cast(),
                    iov_len: 1,
                };
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = cmsg.as_mut_ptr().cast();
                msg.msg_controllen = std::mem::size_of_val(&cmsg);
                if libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC) != 1 {
                    libc::_exit(0);
                }
                let header = libc::CMSG_FIRSTHDR(&msg);
                if !header.is_null() {
                    libc::close(*libc::CMSG_DATA(header).cast::<libc::c_int>());
                }
                if libc::write(fd, byte.as_ptr().cast(), 1) != 1 {
                    libc::_exit(0);
                }
            }
        }
        (ours, pid)
    }
}

fn raw_fd_rtt(sock: &std::os::fd::OwnedFd, file: &std::fs::File) -> Duration {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [file.as_raw_fd()];
    let start = Instant::now();
    let iov = [std::io::IoSlice::new(&[1u8])];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .expect("send");
    let mut byte = [0u8; 1];
    nix::unistd::read(sock.as_fd(), &mut byte).expect("read");
    start.elapsed()
}

fn main() {
    let options = Options::from_args(50);
    if options.pin {
        common::pin_to_cpu0();
    }
    let workers = std::env::args()
        .skip_while(|a| a != "--workers")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(BrokerConfig::default().service_workers);
    let broker = Broker::start(
        Entries::new().register("opener", opener),
        BrokerConfig {
            service_workers: workers,
            ..BrokerConfig::default()
        },
    )
    .expect("start broker");
    let dir = std::env::temp_dir().join(format!("portcullis-bench-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("small.txt");
    std::fs::write(&path, "small").expect("file");
    let spawn_options = common::read_grant_options(&dir);
    let child = broker
        .spawn_with::<String, Vec<u64>, _>("opener", &(), &spawn_options)
        .expect("spawn");
    let (sock, peer) = raw_fd_peer();
    let file = std::fs::File::open(&path).expect("open");
    let path_str = path.display().to_string();

    let (mut natives, mut raws, mut brokered) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=options.rounds {
        let warm_up = round == 0;
        let n: Vec<Duration> = (0..BLOCK).map(|_| native_open(&path)).collect();
        let r: Vec<Duration> = (0..BLOCK).map(|_| raw_fd_rtt(&sock, &file)).collect();
        let b: Vec<Duration> = child
            .request(&path_str)
            .expect("brokered opens")
            .into_iter()
            .map(Duration::from_nanos)
            .collect();
        assert_eq!(b.len(), BLOCK, "every brokered open succeeded");
        if !warm_up {
            natives.extend(n);
            raws.extend(r);
            brokered.extend(b);
        }
    }
    drop(sock);
    // SAFETY: reaping our own forked peer.
    unsafe {
        libc::waitpid(peer, std::ptr::null_mut(), 0);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let native_us = median_us(&mut natives);
    let raw_us = median_us(&mut raws);
    let brokered_us = median_us(&mut brokered);
    if !options.json {
        println!(
            "native {native_us:.2} us, raw fd rtt {raw_us:.2} us, brokered {brokered_us:.2} us"
        );
    }
    println!(
        "{}",
        json_line(&[
            ("bench", "\"open\"".into()),
            ("samples", natives.len().to_string()),
            ("pinned", options.pin.to_string()),
            ("workers", workers.to_string()),
            ("native_open_us", r2(native_us).to_string()),
            ("raw_fd_rtt_us", r2(raw_us).to_string()),
            ("brokered_open_us", r2(brokered_us).to_string()),
            (
                "brokered_over_native",
                r2(brokered_us / native_us).to_string()
            ),
            (
                "brokered_over_raw_fd_rtt",
                r2(brokered_us / raw_us).to_string()
            ),
        ])
    );
}
