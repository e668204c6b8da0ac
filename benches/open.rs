//! `cargo bench --workspace --bench open -- --json [--pin] [--rounds N]`
//!
//! Interleaves, in blocks of 200 operations per round:
//! - `native_open_us`: `open` + `close` of a small file by the bench process;
//! - `raw_fd_rtt_us`: a `SOCK_SEQPACKET` round trip carrying one fd between the bench process and
//!   a plain forked process (the floor of any fd broker);
//! - `brokered_open_us`: a sandboxed child's `ChildContext::open` of the same file — request,
//!   policy decision, `openat2` beneath the grant's directory fd, fd back, audit record — and
//!   `close`, timed inside the child;
//! - `floor_open_us` / `epoll_floor_open_us`: minimal brokers on a socket (see [`floor_broker`]);
//! - `doorbell_floor_open_us`: the broker's own mechanism with nothing else (see
//!   [`DoorbellFloor`]): what it costs here without a sandbox or any work of the broker's.
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
            loop {
                let Some(file) = recv_fd_raw(fd) else {
                    libc::_exit(0);
                };
                libc::close(file);
                if libc::write(fd, [1u8].as_ptr().cast(), 1) != 1 {
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
                let file = openat2_beneath(dir.as_raw_fd(), path.as_ptr().cast(), libc::O_RDONLY);
                if file < 0 {
                    libc::_exit(0);
                }
                let mut st: libc::stat = std::mem::zeroed();
                libc::fstat(file, &mut st);
                if !send_fd(fd, file) {
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

/// The broker's mechanism and nothing else, in its plainest form: a forked client writes the
/// relative path into a shared page and makes the doorbell syscall, which its one-rule seccomp
/// filter hands to a server thread of this process (listener switched to synchronous wake-ups,
/// as the broker's are); the thread reads the path, `openat2`s it beneath the directory with the
/// broker's flags, `fstat`s it, sends the fd on a socket, closes its copy and answers the
/// syscall; the client takes the fd with `recvmsg` and closes it. No sandbox, cgroup, framing,
/// policy or rate limit: what a brokered open costs beyond this is the broker's own work.
struct DoorbellFloor {
    /// Commands to the client (one byte: run a block) and its timings back.
    control: std::os::fd::OwnedFd,
    pid: libc::pid_t,
}

/// The doorbell's syscall number on this architecture (the broker's own).
const FLOOR_DOORBELL: i64 = portcullis::ipc::service::DOORBELL_SYSCALL;

impl DoorbellFloor {
    fn start(dir: &std::path::Path) -> DoorbellFloor {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let pair = || {
            socketpair(
                AddressFamily::Unix,
                SockType::SeqPacket,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .expect("socketpair")
        };
        let (control, control_theirs) = pair();
        let (files, files_theirs) = pair();
        let dir = std::fs::File::open(dir).expect("open dir");
        // SAFETY: a fresh anonymous shared mapping of one page; checked below.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED, "mmap");
        let page = page.cast::<u8>();
        // SAFETY: the child makes only async-signal-safe calls (prctl, seccomp, socket calls,
        // clock_gettime, close, _exit) on its own fds, the shared page and stack buffers.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: see above; the client never returns. Our copies of the bench's ends would
            // keep the client from seeing the bench go.
            unsafe {
                libc::close(control.as_raw_fd());
                libc::close(files.as_raw_fd());
                floor_client(control_theirs.as_raw_fd(), files_theirs.as_raw_fd(), page)
            }
        }
        drop((control_theirs, files_theirs));
        let listener = receive_fd(&control).expect("the client's listener");
        // SAFETY: this ioctl takes its flags by value (SECCOMP_IOCTL_NOTIF_SET_FLAGS,
        // SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP; Linux 6.6).
        if unsafe { libc::ioctl(listener.as_raw_fd(), 0x4008_2104 as _, 1 as libc::c_ulong) } < 0 {
            eprintln!("doorbell floor: no synchronous wake-ups (before Linux 6.6): ordinary ones");
        }
        let page = page as usize;
        // Ends when the client does (from Linux 6.11 its read of the listener then fails), else
        // with the bench.
        std::thread::spawn(move || floor_server(&listener, &files, &dir, page as *const u8));
        DoorbellFloor { control, pid }
    }

    /// Has the client open the file `BLOCK` times; their durations.
    fn block(&self) -> Vec<Duration> {
        nix::unistd::write(&self.control, &[1]).expect("command");
        let mut bytes = vec![0u8; BLOCK * 8];
        let n = nix::unistd::read(self.control.as_fd(), &mut bytes).expect("timings");
        assert_eq!(n, bytes.len(), "a whole block of timings");
        bytes
            .chunks_exact(8)
            .map(|c| Duration::from_nanos(u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect()
    }
}

/// One fd received on `sock`, if the next datagram carries one.
fn receive_fd(sock: &std::os::fd::OwnedFd) -> Option<std::os::fd::OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ok()?;
    let mut cmsgs = msg.cmsgs().ok()?;
    match cmsgs.next() {
        // SAFETY: the kernel just installed this fd for us; nothing else owns it.
        Some(ControlMessageOwned::ScmRights(fds)) => fds
            .first()
            .map(|&fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }),
        _ => None,
    }
}

/// `openat2` of `path` beneath `dir` with `flags | O_CLOEXEC | O_NOFOLLOW` and the broker's
/// `RESOLVE_*` flags: the new fd, or -1. In libc calls only (usable after a fork).
///
/// # Safety
/// `path` must be NUL-terminated.
unsafe fn openat2_beneath(
    dir: libc::c_int,
    path: *const libc::c_char,
    flags: libc::c_int,
) -> libc::c_int {
    // SAFETY: zeroed bytes are a valid `open_how`; the caller's path is NUL-terminated and
    // `how` lives across the call, whose size we pass.
    unsafe {
        let mut how: libc::open_how = std::mem::zeroed();
        how.flags = u64::try_from(flags | libc::O_CLOEXEC | libc::O_NOFOLLOW).unwrap_or(0);
        how.resolve = libc::RESOLVE_BENEATH
            | libc::RESOLVE_NO_SYMLINKS
            | libc::RESOLVE_NO_MAGICLINKS
            | libc::RESOLVE_NO_XDEV;
        let file = libc::syscall(
            libc::SYS_openat2,
            dir,
            path,
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        );
        libc::c_int::try_from(file).unwrap_or(-1)
    }
}

/// One datagram from `sock` and the fd it carries (`O_CLOEXEC`); `None` if the read failed or
/// no fd came. recvmsg(2), in libc calls only.
///
/// # Safety
/// `sock` must be an open fd.
unsafe fn recv_fd_raw(sock: libc::c_int) -> Option<libc::c_int> {
    // SAFETY: everything the call writes is on this frame and outlives it.
    unsafe {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut cmsg = [0u64; 8];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cmsg);
        if libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) != 1 {
            return None;
        }
        let header = libc::CMSG_FIRSTHDR(&msg);
        (!header.is_null()).then(|| *libc::CMSG_DATA(header).cast::<libc::c_int>())
    }
}

/// Sends `fd` as `SCM_RIGHTS` with one byte on `sock`. sendmsg(2), in libc calls only.
///
/// # Safety
/// `sock` and `fd` must be open fds.
unsafe fn send_fd(sock: libc::c_int, fd: libc::c_int) -> bool {
    // SAFETY: the caller passes open fds; everything else is on this stack frame.
    unsafe {
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
        *libc::CMSG_DATA(header).cast::<libc::c_int>() = fd;
        libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) == 1
    }
}

/// The forked client of [`DoorbellFloor`]: installs its filter, hands the listener over, then
/// runs a block of timed opens per command byte.
///
/// # Safety
/// Only in a freshly forked child; `page` is the shared page. Never returns.
unsafe fn floor_client(control: libc::c_int, files: libc::c_int, page: *mut u8) -> ! {
    // SAFETY: see the function's contract; only syscalls on our own fds, the shared page and
    // this frame's buffers.
    unsafe {
        // The filter: the doorbell goes to the listener, everything else runs.
        let filter = [
            // BPF_LD | BPF_W | BPF_ABS, seccomp_data.nr
            libc::sock_filter {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: 0,
            },
            // BPF_JMP | BPF_JEQ | BPF_K: the doorbell? next, else skip one
            libc::sock_filter {
                code: 0x15,
                jt: 0,
                jf: 1,
                k: u32::try_from(FLOOR_DOORBELL).unwrap_or(u32::MAX),
            },
            // BPF_RET | BPF_K
            libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: libc::SECCOMP_RET_USER_NOTIF,
            },
            libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: libc::SECCOMP_RET_ALLOW,
            },
        ];
        let program = libc::sock_fprog {
            len: u16::try_from(filter.len()).unwrap_or(0),
            filter: filter.as_ptr().cast_mut(),
        };
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        let listener = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &program as *const libc::sock_fprog,
        );
        let Ok(listener) = libc::c_int::try_from(listener) else {
            libc::_exit(1);
        };
        if listener < 0 || !send_fd(control, listener) {
            libc::_exit(1);
        }
        libc::close(listener);
        let now = || {
            let mut t: libc::timespec = std::mem::zeroed();
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t);
            u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000
                + u64::try_from(t.tv_nsec).unwrap_or(0)
        };
        let mut times = [0u64; BLOCK];
        let mut command = [0u8; 1];
        while libc::read(control, command.as_mut_ptr().cast(), 1) == 1 {
            for time in &mut times {
                let start = now();
                let path = c"small.txt".to_bytes_with_nul();
                std::ptr::copy_nonoverlapping(path.as_ptr(), page, path.len());
                // An error means the server could not open or send: stop rather than wait.
                if libc::syscall(FLOOR_DOORBELL as libc::c_long, 0) != 0 {
                    libc::_exit(1);
                }
                let Some(file) = recv_fd_raw(files) else {
                    libc::_exit(1);
                };
                libc::close(file);
                *time = now() - start;
            }
            let len = std::mem::size_of_val(&times);
            if libc::write(control, times.as_ptr().cast(), len) != len as isize {
                libc::_exit(1);
            }
        }
        libc::_exit(0)
    }
}

/// The server thread of [`DoorbellFloor`]: per doorbell, the path from the shared page,
/// `openat2` + `fstat` beneath `dir`, the fd on `files`, then the answer.
fn floor_server(
    listener: &std::os::fd::OwnedFd,
    files: &std::os::fd::OwnedFd,
    dir: &std::fs::File,
    page: *const u8,
) {
    loop {
        // SAFETY: zeroed bytes are a valid `seccomp_notif`, which the kernel requires zeroed.
        let mut request: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: the ioctl fills `request`, which outlives the call.
        let received = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV as _,
                &mut request as *mut libc::seccomp_notif,
            )
        };
        if received < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        let mut path = [0u8; 256];
        // SAFETY: the page is 4096 bytes and mapped for the bench's life; the client wrote a
        // NUL-terminated path, and the copy's last byte stays NUL whatever it wrote.
        unsafe { std::ptr::copy_nonoverlapping(page, path.as_mut_ptr(), path.len() - 1) };
        // SAFETY: a NUL-terminated path on this frame, and our own directory fd.
        let file = unsafe {
            openat2_beneath(
                dir.as_raw_fd(),
                path.as_ptr().cast(),
                libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
            )
        };
        // SAFETY: zeroed bytes are a valid `stat`; the fd is ours; we close our copy once sent.
        let sent = file >= 0
            && unsafe {
                let mut st: libc::stat = std::mem::zeroed();
                libc::fstat(file, &mut st);
                let sent = send_fd(files.as_raw_fd(), file);
                libc::close(file);
                sent
            };
        let mut answer = libc::seccomp_notif_resp {
            id: request.id,
            val: 0,
            error: if sent { 0 } else { -libc::EIO },
            flags: 0,
        };
        // SAFETY: the ioctl reads `answer`, which outlives the call.
        unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND as _,
                &mut answer as *mut libc::seccomp_notif_resp,
            )
        };
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
    let doorbell = DoorbellFloor::start(&dir);

    let (mut natives, mut raws, mut brokered) = (Vec::new(), Vec::new(), Vec::new());
    let (mut floors, mut epoll_floors, mut doorbell_floors) = (Vec::new(), Vec::new(), Vec::new());
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
        let d = doorbell.block();
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
            doorbell_floors.extend(d);
        }
    }
    let DoorbellFloor {
        control,
        pid: doorbell_pid,
    } = doorbell;
    drop((sock, floor_sock, epoll_sock, control));
    for pid in [peer, floor_pid, epoll_pid, doorbell_pid] {
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
    let doorbell_floor_us = median_us(&mut doorbell_floors);
    if !options.json {
        println!(
            "native {native_us:.2} us, raw fd rtt {raw_us:.2} us, floor {floor_us:.2} us, \
             epoll floor {epoll_floor_us:.2} us, doorbell floor {doorbell_floor_us:.2} us, \
             brokered {brokered_us:.2} us"
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
            ("doorbell_floor_open_us", r2(doorbell_floor_us).to_string()),
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
            (
                "doorbell_floor_over_native",
                r2(doorbell_floor_us / native_us).to_string()
            ),
            (
                "brokered_over_doorbell_floor",
                r2(brokered_us / doorbell_floor_us).to_string()
            ),
        ])
    );
}
