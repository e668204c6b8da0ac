//! `cargo bench --workspace --bench open -- --json [--pin] [--rounds N]`
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

/// A forked minimal broker, the floor of this design in any language: per request it waits for
/// the socket (blocking `recvmsg`, or `epoll_wait` first when `epoll`), resolves the relative
/// path beneath `dir` with `openat2` and the same `RESOLVE_*` flags as the broker, `fstat`s the
/// result (the broker's type and link-count check), sends the fd back and closes it. No policy,
/// no decoding, no audit, no sandbox on the client.
fn floor_broker(dir: &std::path::Path, epoll: bool) -> (std::os::fd::OwnedFd, libc::pid_t) {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    let dir = std::fs::File::open(dir).expect("open dir");
    // SAFETY: the child only makes syscalls on its own fds, a stack buffer and structures built
    // before the fork (async-signal-safe), and leaves with `_exit`.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::close(ours.as_raw_fd());
            let fd = theirs.as_raw_fd();
            let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            let mut event = libc::epoll_event {
                // The flag bits as the kernel's u32 (EPOLLET is bit 31).
                events: u32::from_ne_bytes((libc::EPOLLIN | libc::EPOLLET).to_ne_bytes()),
                u64: 1,
            };
            libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut event);
            let mut path = [0u8; 256];
            loop {
                if epoll {
                    let mut ready = [libc::epoll_event { events: 0, u64: 0 }; 4];
                    if libc::epoll_wait(ep, ready.as_mut_ptr(), 4, -1) < 1 {
                        continue;
                    }
                }
                let n = libc::recv(fd, path.as_mut_ptr().cast(), path.len() - 1, 0);
                if n <= 0 {
                    libc::_exit(0);
                }
                path[n.unsigned_abs()] = 0;
                let mut how: libc::open_how = std::mem::zeroed();
                how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64;
                how.resolve = libc::RESOLVE_BENEATH
                    | libc::RESOLVE_NO_SYMLINKS
                    | libc::RESOLVE_NO_MAGICLINKS
                    | libc::RESOLVE_NO_XDEV;
                let Ok(file) = libc::c_int::try_from(libc::syscall(
                    libc::SYS_openat2,
                    dir.as_raw_fd(),
                    path.as_ptr(),
                    &how as *const libc::open_how,
                    std::mem::size_of::<libc::open_how>(),
                )) else {
                    libc::_exit(0);
                };
                let mut st: libc::stat = std::mem::zeroed();
                libc::fstat(file, &mut st);
                let mut byte = [1u8; 1];
                let mut iov = libc::iovec {
                    iov_base: byte.as_mut_ptr().cast(),
                    iov_len: 1,
                };
                let mut cmsg = [0u64; 4];
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = cmsg.as_mut_ptr().cast();
                msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
                let header = libc::CMSG_FIRSTHDR(&msg);
                (*header).cmsg_level = libc::SOL_SOCKET;
                (*header).cmsg_type = libc::SCM_RIGHTS;
                (*header).cmsg_len = libc::CMSG_LEN(4) as usize;
                *libc::CMSG_DATA(header).cast::<libc::c_int>() = file;
                if libc::sendmsg(fd, &msg, 0) != 1 {
                    libc::_exit(0);
                }
                libc::close(file);
            }
        }
        (ours, pid)
    }
}

/// One request to a [`floor_broker`]: the relative path out, the fd back, closed.
fn floor_open(sock: &std::os::fd::OwnedFd, relative: &str) -> Duration {
    use nix::sys::socket::{recvmsg, send, ControlMessageOwned, MsgFlags};
    let start = Instant::now();
    send(sock.as_raw_fd(), relative.as_bytes(), MsgFlags::empty()).expect("send");
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recv");
    for cmsg in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                let _ = nix::unistd::close(fd);
            }
        }
    }
    start.elapsed()
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
    let broker = Broker::start(
        Entries::new().register("opener", opener),
        BrokerConfig::default(),
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
    let (floor_sock, floor_pid) = floor_broker(&dir, false);
    let (epoll_sock, epoll_pid) = floor_broker(&dir, true);

    let (mut natives, mut raws, mut brokered) = (Vec::new(), Vec::new(), Vec::new());
    let (mut floors, mut epoll_floors) = (Vec::new(), Vec::new());
    for round in 0..=options.rounds {
        let warm_up = round == 0;
        let n: Vec<Duration> = (0..BLOCK).map(|_| native_open(&path)).collect();
        let r: Vec<Duration> = (0..BLOCK).map(|_| raw_fd_rtt(&sock, &file)).collect();
        let f: Vec<Duration> = (0..BLOCK)
            .map(|_| floor_open(&floor_sock, "small.txt"))
            .collect();
        let e: Vec<Duration> = (0..BLOCK)
            .map(|_| floor_open(&epoll_sock, "small.txt"))
            .collect();
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
            floors.extend(f);
            epoll_floors.extend(e);
        }
    }
    drop((sock, floor_sock, epoll_sock));
    for pid in [peer, floor_pid, epoll_pid] {
        // SAFETY: reaping our own forked peers.
        unsafe {
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let native_us = median_us(&mut natives);
    let raw_us = median_us(&mut raws);
    let brokered_us = median_us(&mut brokered);
    let floor_us = median_us(&mut floors);
    let epoll_floor_us = median_us(&mut epoll_floors);
    if !options.json {
        println!(
            "native {native_us:.2} us, raw fd rtt {raw_us:.2} us, floor {floor_us:.2} us, \
             epoll floor {epoll_floor_us:.2} us, brokered {brokered_us:.2} us"
        );
    }
    println!(
        "{}",
        json_line(&[
            ("bench", "\"open\"".into()),
            ("samples", natives.len().to_string()),
            ("pinned", options.pin.to_string()),
            ("native_open_us", r2(native_us).to_string()),
            ("raw_fd_rtt_us", r2(raw_us).to_string()),
            ("floor_open_us", r2(floor_us).to_string()),
            ("epoll_floor_open_us", r2(epoll_floor_us).to_string()),
            ("brokered_open_us", r2(brokered_us).to_string()),
            (
                "brokered_over_native",
                r2(brokered_us / native_us).to_string()
            ),
            (
                "brokered_over_raw_fd_rtt",
                r2(brokered_us / raw_us).to_string()
            ),
            ("floor_over_native", r2(floor_us / native_us).to_string()),
            (
                "epoll_floor_over_native",
                r2(epoll_floor_us / native_us).to_string()
            ),
            (
                "brokered_over_floor",
                r2(brokered_us / floor_us).to_string()
            ),
        ])
    );
}
