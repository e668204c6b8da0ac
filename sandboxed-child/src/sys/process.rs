use std::io;

use super::cvt_int;

/// Starts a new session, detaching from the broker's controlling terminal. setsid(2).
pub fn new_session() -> io::Result<()> {
    // SAFETY: setsid takes no arguments.
    cvt_int(unsafe { libc::setsid() }).map(drop)
}

/// Unblocks every signal (the zygote blocks SIGCHLD for its signalfd). sigprocmask(2).
pub fn unblock_all_signals() -> io::Result<()> {
    // SAFETY: `set` is a live sigset_t initialised by sigemptyset before use; the old-set
    // pointer is null.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        cvt_int(libc::sigprocmask(
            libc::SIG_SETMASK,
            &set,
            std::ptr::null_mut(),
        ))
        .map(drop)
    }
}

/// Sets one resource limit. setrlimit(2).
pub fn set_rlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `limit` is a live rlimit the kernel only reads.
    cvt_int(unsafe { libc::setrlimit(resource, &limit) }).map(drop)
}

/// Ends the process at once with `code`, without running destructors or atexit handlers.
/// _exit(2).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Crashes the process with an illegal instruction (SIGILL), as Chromium's IMMEDIATE_CRASH
/// does. A child is PID 1 of its PID namespace, where `kill`/`raise` of a default-action signal
/// to itself is ignored; a fault raised by the CPU is not.
pub fn crash_now() -> ! {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    // SAFETY: `ud2` raises #UD, which the kernel turns into a forced SIGILL that ends the
    // process; it never returns and touches no memory.
    unsafe {
        std::arch::asm!("ud2", options(noreturn, nomem, nostack));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    {
        std::process::abort()
    }
}

/// Executes the program open at `program` with `argv` and `envp` (each a NUL-terminated
/// string), in place of this process. execveat(2) with `AT_EMPTY_PATH`. Returns only on
/// failure.
pub fn exec_fd(
    program: std::os::fd::BorrowedFd<'_>,
    argv: &[std::ffi::CString],
    envp: &[std::ffi::CString],
) -> io::Error {
    use std::os::fd::AsRawFd;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: both pointer arrays are NULL-terminated and point at live NUL-terminated strings
    // that outlive the call; the path is an empty C string; on success nothing of this process
    // remains to be used.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            program.as_raw_fd(),
            c"".as_ptr(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    io::Error::last_os_error()
}

/// Clears close-on-exec on `fd`. fcntl(2) `F_SETFD`.
pub fn clear_cloexec(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: fcntl F_SETFD on an fd number takes an integer flag only.
    cvt_int(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(drop)
}

/// True when `fd` is an open socket. fstat(2)
pub fn is_socket(fd: std::os::fd::RawFd) -> bool {
    // SAFETY: an all-zero `stat` is a valid value for fstat to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live stat struct for the kernel to fill; `fd` is only read.
    let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
    ok && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
}

/// Marks `fd` close-on-exec. fcntl(2) `F_SETFD`.
pub fn set_cloexec(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: fcntl F_SETFD on an fd number takes an integer flag only.
    cvt_int(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }).map(drop)
}

/// Sets real, effective and saved gid, then uid, to `id` (of the caller's user namespace).
/// setresgid(2), setresuid(2). Preconditions: `CAP_SETGID` and `CAP_SETUID` there; with the
/// `NO_SETUID_FIXUP` securebit the capabilities survive the change (the caller drops them
/// itself later).
pub fn set_ids(id: u32) -> io::Result<()> {
    // SAFETY: setresgid/setresuid take ids by value; no memory is passed.
    super::cvt_int(unsafe { libc::setresgid(id, id, id) })?;
    // SAFETY: as above.
    super::cvt_int(unsafe { libc::setresuid(id, id, id) }).map(drop)
}
