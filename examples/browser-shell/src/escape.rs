//! about:escape, the renderer's half: try each way out of the sandbox and say what came back.
//! It runs in a renderer whose profile says `on_violation = "deny"`, so a forbidden system call
//! fails with `EPERM` (and is reported to the broker by the kernel) instead of ending it, and
//! every attempt gets its turn.

use portcullis::ipc::service::{FetchMethod, FetchRequest};
use portcullis::{ChildContext, OpenOptions};

use crate::protocol::{EscapeAttempt, FromRenderer, ToRenderer};
use crate::sys;

fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM (operation not permitted)".into(),
        Some(libc::EACCES) => "EACCES (permission denied)".into(),
        Some(libc::ENOSYS) => "ENOSYS (function not implemented)".into(),
        Some(libc::ESRCH) => "ESRCH (no such process)".into(),
        Some(libc::ENOENT) => "ENOENT (no such file or directory)".into(),
        _ => e.to_string(),
    }
}

fn attempt<T: std::fmt::Debug>(what: &str, result: std::io::Result<T>) -> EscapeAttempt {
    match result {
        Ok(value) => EscapeAttempt {
            what: what.to_owned(),
            saw: format!("it worked: {value:?}"),
            blocked: false,
        },
        Err(e) => EscapeAttempt {
            what: what.to_owned(),
            saw: errno_text(&e),
            blocked: true,
        },
    }
}

/// Tries every escape in turn. `broker_pid` is the broker's pid on the host (invisible here),
/// `loopback_port` a loopback port this renderer was granted nothing on.
pub fn try_escapes(
    ctx: &ChildContext<FromRenderer, ToRenderer>,
    broker_pid: i32,
    loopback_port: u16,
) -> Vec<EscapeAttempt> {
    let read = OpenOptions::new().read(true);
    vec![
        attempt(
            "read /etc/passwd directly",
            std::fs::read("/etc/passwd").map(|b| format!("{} bytes", b.len())),
        ),
        attempt(
            "list / directly",
            std::fs::read_dir("/").map(|d| format!("{} entries", d.count())),
        ),
        attempt(
            "open /etc/passwd through the broker",
            ctx.open("/etc/passwd", &read).map(|_| "an fd"),
        ),
        attempt(
            "open /root through the broker",
            ctx.read_dir("/root")
                .map(|e| format!("{} entries", e.len())),
        ),
        attempt("socket(AF_INET, SOCK_STREAM)", sys::socket_inet()),
        attempt(
            &format!("connect to 127.0.0.1:{loopback_port} through the broker (no grant)"),
            ctx.connect("127.0.0.1", loopback_port).map(|_| "a socket"),
        ),
        attempt(
            "fetch http://example.com/ through the broker (another site)",
            ctx.fetch(FetchRequest {
                url: "http://example.com/".into(),
                method: FetchMethod::Get,
                body: Vec::new(),
                content_type: None,
            })
            .map(|r| format!("HTTP {}", r.status)),
        ),
        attempt(
            &format!("signal the broker (kill({broker_pid}, 0))"),
            sys::kill_probe(broker_pid),
        ),
        attempt(
            &format!("ptrace(PTRACE_ATTACH, {broker_pid})"),
            sys::ptrace_attach(broker_pid),
        ),
        attempt("unshare(CLONE_NEWUSER)", sys::unshare_user()),
        attempt("mount a tmpfs on /", sys::mount_tmpfs()),
        attempt("fork()", sys::fork()),
        attempt("execve(\"/bin/sh\")", sys::execve_shell()),
        attempt("io_uring_setup()", sys::io_uring_setup()),
    ]
}
