//! The renderer's raw system calls: the deliberate crash of about:crash and the escape attempts
//! of about:escape. Every one of them is expected to be refused by the sandbox (the seccomp
//! filter in deny mode answers `EPERM`); each probe passes arguments that do no harm if a call
//! were ever to run. This is the only module of the crate with `unsafe`.

use std::io;

fn result(ret: libc::c_long) -> io::Result<i64> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Faults on purpose (about:crash): a write through a null pointer, a SIGSEGV the kernel
/// delivers however the process is set up (a PID-namespace init cannot ignore it).
pub fn crash() -> ! {
    let null: *mut u64 = std::ptr::null_mut();
    // SAFETY: deliberately undefined: a volatile store to address 0, which is never mapped, so
    // the CPU faults and the kernel kills this process with SIGSEGV before anything else runs.
    unsafe { std::ptr::write_volatile(std::hint::black_box(null), 0xdead) };
    std::process::abort()
}

/// `socket(AF_INET, SOCK_STREAM, 0)`.
pub fn socket_inet() -> io::Result<i64> {
    // SAFETY: integer arguments only; a socket, if made, is an fd this process owns (closed
    // below).
    let ret =
        result(unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) })?;
    // SAFETY: `ret` is the fd the call just returned, owned by nobody else.
    unsafe { libc::close(i32::try_from(ret).unwrap_or(-1)) };
    Ok(ret)
}

/// `kill(pid, 0)`: asks whether `pid` may be signalled (signal 0 delivers nothing).
pub fn kill_probe(pid: i32) -> io::Result<i64> {
    // SAFETY: integer arguments; signal 0 only checks permission and existence.
    result(unsafe { libc::syscall(libc::SYS_kill, pid, 0) })
}

/// `ptrace(PTRACE_ATTACH, pid)`.
pub fn ptrace_attach(pid: i32) -> io::Result<i64> {
    // SAFETY: integer arguments; addr and data are unused by PTRACE_ATTACH.
    result(unsafe {
        libc::syscall(
            libc::SYS_ptrace,
            libc::PTRACE_ATTACH,
            pid,
            std::ptr::null::<u8>(),
            std::ptr::null::<u8>(),
        )
    })
}

/// `unshare(CLONE_NEWUSER)`.
pub fn unshare_user() -> io::Result<i64> {
    // SAFETY: an integer flag; a new user namespace, if made, changes only this process.
    result(unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) })
}

/// `mount("none", "/", "tmpfs", 0, NULL)`.
pub fn mount_tmpfs() -> io::Result<i64> {
    // SAFETY: the strings are NUL-terminated literals that outlive the call; data is NULL.
    result(unsafe {
        libc::syscall(
            libc::SYS_mount,
            c"none".as_ptr(),
            c"/".as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null::<u8>(),
        )
    })
}

/// `fork()`. A child, if one were ever made, exits at once.
pub fn fork() -> io::Result<i64> {
    // SAFETY: the child side (0) only calls `_exit`, which is async-signal-safe.
    let ret = unsafe { libc::fork() };
    if ret == 0 {
        // SAFETY: ends the forked child at once, running nothing else.
        unsafe { libc::_exit(0) };
    }
    result(libc::c_long::from(ret))
}

/// `execve("/bin/sh", ["/bin/sh", NULL], [NULL])`.
pub fn execve_shell() -> io::Result<i64> {
    let argv = [c"/bin/sh".as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    // SAFETY: path, argv and envp are NUL-terminated and live across the call; on success the
    // process image is replaced (the filter refuses it first).
    result(unsafe {
        libc::syscall(
            libc::SYS_execve,
            c"/bin/sh".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
        )
    })
}

/// `io_uring_setup(1, NULL)`: the params pointer is NULL, so even an allowed call fails EFAULT.
pub fn io_uring_setup() -> io::Result<i64> {
    // SAFETY: a NULL params pointer the kernel only checks; nothing is written.
    result(unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, std::ptr::null::<u8>()) })
}
