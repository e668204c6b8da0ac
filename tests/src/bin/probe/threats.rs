//! The mechanisms docs/THREATS.md compares, each shown on the real kernel, in pairs:
//!
//! - **chroot**: a plain `chroot` jail is escaped by a process holding `CAP_SYS_CHROOT` (root,
//!   or any user inside a user namespace it made) with the classic mkdir + chroot + `chdir("..")`
//!   walk, because the host's root is still in its mount namespace; a Portcullis child cannot
//!   even call `chroot` (a seccomp violation naming it), and its root is an empty tmpfs whose
//!   `..` is itself, with the host's root unmounted from its namespace.
//! - **LD_PRELOAD**: an interposer library that makes `open` and `socket` fail stops a dynamic
//!   program's libc calls, but not the same calls made with `syscall(2)`, and a static binary
//!   never loads it; under Portcullis the raw calls are stopped by seccomp in the kernel.
//!
//! The chroot escape runs in a fresh, single-threaded process: the probe re-executes itself
//! with [`HELPER_ROLE`] before any broker starts (see `main`).

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use portcullis::{Broker, ChildContext, ChildEnd, ChildError};
use serde::{Deserialize, Serialize};

use crate::{Verdict, SKIP_PREFIX};

/// `probe <HELPER_ROLE> chroot-escape <jail> <marker>`: the escape, in a fresh process.
pub const HELPER_ROLE: &str = "--threat-helper";

/// Exit status of the helper when the escape reached the real root.
const ESCAPED: i32 = 0;
/// Exit status of the helper when this host forbids the set-up (reason on stdout).
const HELPER_SKIP: i32 = 77;

/// Runs the helper role if this process was started as one; its exit status.
pub fn helper_role() -> Option<i32> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).map(|a| a.as_os_str()) != Some(OsStr::new(HELPER_ROLE)) {
        return None;
    }
    Some(match (args.get(2), args.get(3), args.get(4)) {
        (Some(what), Some(jail), Some(marker)) if what == "chroot-escape" => {
            chroot_escape(Path::new(jail), Path::new(marker))
        }
        _ => {
            println!("usage: probe {HELPER_ROLE} chroot-escape JAIL MARKER");
            2
        }
    })
}

/// In this (fresh, single-threaded) process: get `CAP_SYS_CHROOT` (root already has it;
/// otherwise a new user namespace gives it), chroot into `jail`, check the jail hides `marker`,
/// then escape and check `marker` — an absolute host path outside the jail — is visible.
fn chroot_escape(jail: &Path, marker: &Path) -> i32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        // SAFETY: unshare takes flags only; this process is single-threaded (a fresh exec that
        // started no thread), which CLONE_NEWUSER requires.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
            println!(
                "unprivileged user namespaces are not available here: {}",
                std::io::Error::last_os_error()
            );
            return HELPER_SKIP;
        }
        println!("not root: made a user namespace, which holds every capability in it");
    }
    let step = |what: &str, r: std::io::Result<()>| {
        r.map_err(|e| {
            println!("{what}: {e}");
        })
    };
    let escaped = (|| -> Result<bool, ()> {
        step("chroot into the jail", std::os::unix::fs::chroot(jail))?;
        step("chdir /", std::env::set_current_dir("/"))?;
        if marker.exists() {
            println!("the jail does not hide {}", marker.display());
            return Err(());
        }
        println!("jailed: {} is not visible", marker.display());
        // The escape: make a directory, chroot into it without entering it, so the working
        // directory is now outside the root; `..` from there is never stopped by the root, so
        // walk up to the real root and make it the root again.
        step("mkdir esc", std::fs::create_dir("esc"))?;
        step("chroot esc", std::os::unix::fs::chroot("esc"))?;
        for _ in 0..64 {
            step("chdir ..", std::env::set_current_dir(".."))?;
        }
        step("chroot .", std::os::unix::fs::chroot("."))?;
        Ok(marker.exists())
    })();
    match escaped {
        Ok(true) => {
            let top: Vec<String> = std::fs::read_dir("/")
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            println!(
                "escaped: {} is visible again; / holds {} entries ({})",
                marker.display(),
                top.len(),
                top.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
            );
            ESCAPED
        }
        Ok(false) => {
            println!("still jailed after the escape attempt");
            1
        }
        Err(()) => 1,
    }
}

/// A directory of our own in the temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Result<Scratch, String> {
        let dir = std::env::temp_dir().join(format!("portcullis-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The must-escape half: a plain chroot jail, escaped by a privileged process.
pub fn chroot_escape_scenario() -> Verdict {
    let scratch = Scratch::new("chroot")?;
    let jail = scratch.0.join("jail");
    let marker = scratch.0.join("outside-the-jail");
    std::fs::create_dir(&jail).map_err(|e| e.to_string())?;
    std::fs::write(&marker, "host file").map_err(|e| e.to_string())?;
    let output = Command::new("/proc/self/exe")
        .arg(HELPER_ROLE)
        .arg("chroot-escape")
        .arg(&jail)
        .arg(&marker)
        .output()
        .map_err(|e| format!("start helper: {e}"))?;
    let said = String::from_utf8_lossy(&output.stdout);
    for line in said.lines() {
        println!("  {line}");
    }
    match output.status.code() {
        Some(ESCAPED) => Ok(()),
        Some(HELPER_SKIP) => Err(format!("{SKIP_PREFIX}{}", said.trim())),
        _ => Err(format!(
            "the classic chroot escape did not work ({}): {said}",
            output.status
        )),
    }
}

/// What a threats child tries once locked down.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum Try {
    /// `chroot(".")`, the first step of the escape above (the child has no capability and
    /// seccomp does not allow the call).
    Chroot,
    /// `syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY)`: what bypasses an LD_PRELOAD
    /// interposer.
    RawOpenat,
    /// `syscall(SYS_socket, AF_INET, SOCK_STREAM, 0)`.
    RawSocket,
    /// Wait for any message (for checks from outside).
    Idle,
}

/// The threats child: tries one thing and reports the raw result (or errno).
pub fn threats_child(ctx: ChildContext<Result<i64, i32>, ()>, what: Try) -> i32 {
    // SAFETY: each call passes constants and a NUL-terminated literal that outlives it; the
    // sandbox is expected to kill the child or refuse, and nothing relies on the call's effect.
    let ret = unsafe {
        match what {
            Try::Chroot => libc::syscall(libc::SYS_chroot, c".".as_ptr()),
            Try::RawOpenat => libc::syscall(
                libc::SYS_openat,
                libc::AT_FDCWD,
                c"/etc/passwd".as_ptr(),
                libc::O_RDONLY,
            ),
            Try::RawSocket => libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0),
            Try::Idle => {
                let _ = ctx.recv();
                return 0;
            }
        }
    };
    let result = if ret < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(ret)
    };
    i32::from(ctx.send(&result).is_err())
}

fn run_try(broker: &Broker, what: Try) -> Result<(Option<Result<i64, i32>>, ChildEnd), String> {
    let child = broker
        .spawn::<(), Result<i64, i32>, _>("threats", &what)
        .map_err(|e| format!("spawn: {e}"))?;
    let reported = match child.recv_timeout(Duration::from_secs(20)) {
        Ok(r) => Some(r),
        Err(ChildError::Closed) => None,
        Err(e) => return Err(format!("recv: {e}")),
    };
    let end = child
        .wait_timeout(Duration::from_secs(20))
        .ok_or("child did not end")?;
    Ok((reported, end))
}

fn expect_violation(broker: &Broker, what: Try, syscall: &str) -> Verdict {
    match run_try(broker, what)? {
        (None, ChildEnd::SeccompViolation { violation: Some(v) }) if v.syscall == syscall => {
            println!("  {what:?}: killed before the call ran; reported from outside: {v}");
            Ok(())
        }
        other => Err(format!(
            "{what:?}: expected a violation naming {syscall}, got {other:?}"
        )),
    }
}

/// The cannot-escape half: `chroot` is a violation, and from outside the child's root is empty
/// and its parent is itself (the host root is not in its mount namespace).
pub fn portcullis_root_scenario(broker: &Broker) -> Verdict {
    expect_violation(broker, Try::Chroot, "chroot")?;
    let child = broker
        .spawn::<(), Result<i64, i32>, _>("threats", &Try::Idle)
        .map_err(|e| format!("spawn: {e}"))?;
    let pid = child.pid();
    let listing = |path: String| -> Result<Vec<String>, String> {
        std::fs::read_dir(&path)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .map_err(|e| format!("{path}: {e}"))
    };
    let root = listing(format!("/proc/{pid}/root"));
    let parent = listing(format!("/proc/{pid}/root/.."));
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .map(|m| m.lines().count())
        .map_err(|e| format!("mountinfo: {e}"));
    let _ = child.send(&());
    let _ = child.wait_timeout(Duration::from_secs(20));
    match (root?, parent?, mounts?) {
        (root, parent, 1) if root.is_empty() && parent.is_empty() => {
            println!("  its / and /.. are empty; its mount namespace holds one mount (that tmpfs)");
            Ok(())
        }
        other => Err(format!(
            "root, parent and mount count from outside: {other:?}"
        )),
    }
}

/// The C source of the interposer: `open`, `open64`, `openat`, `openat64`, `fopen`, `fopen64`
/// and `socket` all fail with `EPERM`.
const INTERPOSER_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
int open(const char *p, int f, ...) { (void)p; (void)f; errno = EPERM; return -1; }
int open64(const char *p, int f, ...) { (void)p; (void)f; errno = EPERM; return -1; }
int openat(int d, const char *p, int f, ...) { (void)d; (void)p; (void)f; errno = EPERM; return -1; }
int openat64(int d, const char *p, int f, ...) { (void)d; (void)p; (void)f; errno = EPERM; return -1; }
FILE *fopen(const char *p, const char *m) { (void)p; (void)m; errno = EPERM; return NULL; }
FILE *fopen64(const char *p, const char *m) { (void)p; (void)m; errno = EPERM; return NULL; }
int socket(int d, int t, int p) { (void)d; (void)t; (void)p; errno = EPERM; return -1; }
"#;

/// A dynamic program: `libc-open PATH`, `raw-open PATH`, `libc-socket`, `raw-socket`; prints
/// `ok` or the error.
const PROGRAM_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "";
    const char *path = argc > 2 ? argv[2] : "/";
    long r = -1;
    if (strcmp(what, "libc-open") == 0) r = open(path, O_RDONLY);
    else if (strcmp(what, "raw-open") == 0) r = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY);
    else if (strcmp(what, "libc-socket") == 0) r = socket(AF_INET, SOCK_STREAM, 0);
    else if (strcmp(what, "raw-socket") == 0) r = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    else { printf("unknown %s\n", what); return 2; }
    printf("%s\n", r < 0 ? strerror(errno) : "ok");
    return 0;
}
"#;

/// The static program tests/build.rs builds (`passwd` opens /etc/passwd, `socket` makes one).
const STATIC_PROBE: &[u8] = include_bytes!(env!("PORTCULLIS_EXEC_PROBE"));

/// The interposer, a dynamic program and the static program, built in a scratch directory.
struct Built {
    scratch: Scratch,
}

impl Built {
    fn new() -> Result<Built, String> {
        let scratch = Scratch::new("ld-preload")?;
        let dir = &scratch.0;
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let compile = |source: &str, name: &str, extra: &[&str]| -> Result<(), String> {
            let src = dir.join(format!("{name}.c"));
            std::fs::write(&src, source).map_err(|e| e.to_string())?;
            let out = Command::new(&cc)
                .args(extra)
                .arg("-o")
                .arg(dir.join(name))
                .arg(&src)
                .output()
                .map_err(|e| format!("{SKIP_PREFIX}no C compiler ({cc}): {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{SKIP_PREFIX}{cc} could not build {name}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        };
        compile(INTERPOSER_C, "interposer.so", &["-shared", "-fPIC", "-O1"])?;
        compile(PROGRAM_C, "dynamic", &["-O1"])?;
        if STATIC_PROBE.is_empty() {
            return Err(format!(
                "{SKIP_PREFIX}the static exec probe was not built (no static libc)"
            ));
        }
        let static_path = dir.join("static");
        std::fs::write(&static_path, STATIC_PROBE).map_err(|e| e.to_string())?;
        std::fs::set_permissions(
            &static_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| e.to_string())?;
        // A file both programs may read, so only the interposer can stop the open.
        std::fs::write(dir.join("readable"), "readable").map_err(|e| e.to_string())?;
        Ok(Built { scratch })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.scratch.0.join(name)
    }

    /// Runs `program args` with the interposer preloaded; its first stdout line.
    fn run_preloaded(&self, program: &str, args: &[&OsStr]) -> Result<String, String> {
        let out = Command::new(self.path(program))
            .args(args)
            .env_clear()
            .env("LD_PRELOAD", self.path("interposer.so"))
            .output()
            .map_err(|e| format!("run {program}: {e}"))?;
        let mut stderr = std::io::stderr();
        let _ = stderr.write_all(&out.stderr);
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned())
    }
}

/// The interposer does stop a dynamic program's libc `open` and `socket` (what it is for).
pub fn ld_preload_works_scenario() -> Verdict {
    let built = Built::new()?;
    let readable = built.path("readable");
    let open = built.run_preloaded("dynamic", &["libc-open".as_ref(), readable.as_os_str()])?;
    let socket = built.run_preloaded("dynamic", &["libc-socket".as_ref()])?;
    println!("  LD_PRELOAD, dynamic program, libc open: {open}; libc socket: {socket}");
    if open == "Operation not permitted" && socket == "Operation not permitted" {
        Ok(())
    } else {
        Err(format!(
            "the interposer did not stop libc calls: open {open:?}, socket {socket:?}"
        ))
    }
}

/// ...but it is not a boundary: the same calls as raw syscalls, and a static binary, bypass it.
pub fn ld_preload_bypassed_scenario() -> Verdict {
    let built = Built::new()?;
    let readable = built.path("readable");
    let raw_open = built.run_preloaded("dynamic", &["raw-open".as_ref(), readable.as_os_str()])?;
    let raw_socket = built.run_preloaded("dynamic", &["raw-socket".as_ref()])?;
    // The static program opens /etc/passwd and makes a socket with libc calls, but it has no
    // dynamic loader: LD_PRELOAD means nothing to it.
    let static_open = built.run_preloaded("static", &["passwd".as_ref()])?;
    let static_socket = built.run_preloaded("static", &["socket".as_ref()])?;
    println!(
        "  LD_PRELOAD: raw openat {raw_open}; raw socket {raw_socket}; static program: \
         {static_open}; {static_socket}"
    );
    let passwd_readable = std::fs::File::open("/etc/passwd").is_ok();
    let want_static_open = if passwd_readable {
        "open /etc/passwd: opened"
    } else {
        static_open.as_str()
    };
    if raw_open == "ok"
        && raw_socket == "ok"
        && static_open == want_static_open
        && static_socket == "socket: created"
    {
        Ok(())
    } else {
        Err(format!(
            "expected every bypass to work: raw open {raw_open:?}, raw socket {raw_socket:?}, \
             static {static_open:?} / {static_socket:?}"
        ))
    }
}

/// Under Portcullis the raw calls are stopped in the kernel: `openat` is refused (`EACCES`, the
/// filter's errno for it) and `socket` kills the child, reported by name.
pub fn seccomp_raw_scenario(broker: &Broker) -> Verdict {
    match run_try(broker, Try::RawOpenat)? {
        (Some(Err(libc::EACCES)), ChildEnd::Exited { code: 0 }) => {
            println!("  raw openat of /etc/passwd: EACCES from the filter");
        }
        other => return Err(format!("raw openat: expected EACCES, got {other:?}")),
    }
    expect_violation(broker, Try::RawSocket, "socket")
}
