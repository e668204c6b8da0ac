//! Exec mode: a static C program (`tests/static/exec_probe.c`, built by `tests/build.rs` and
//! embedded here) executed by a fully locked-down child from an fd the broker opened, with an
//! empty root.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use portcullis::policy::{Limits, Profile};
use portcullis::{Broker, ChildEnd, OnViolation, SpawnOptions};

use crate::{Verdict, SKIP_PREFIX};

/// The static program, or empty when this host could not build it.
const EXEC_PROBE: &[u8] = include_bytes!(env!("PORTCULLIS_EXEC_PROBE"));

/// Writes the embedded program to a file of our own in the temp dir (the build directory may be
/// out of reach of an unprivileged test user).
fn program_file() -> Result<tempfile_path::TempProgram, String> {
    if EXEC_PROBE.is_empty() {
        return Err(format!(
            "{SKIP_PREFIX}the static exec probe was not built (no C compiler or static libc)"
        ));
    }
    tempfile_path::TempProgram::write(EXEC_PROBE).map_err(|e| format!("write program: {e}"))
}

mod tempfile_path {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    /// A file removed when dropped.
    pub struct TempProgram(PathBuf);

    impl TempProgram {
        pub fn write(bytes: &[u8]) -> std::io::Result<Self> {
            // One file per call: a program still running from an earlier copy keeps it busy
            // (ETXTBSY), and dropping one copy must not remove another's.
            static COPIES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let copy = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "portcullis-exec-probe-{}-{copy}",
                std::process::id()
            ));
            std::fs::write(&path, bytes)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
            Ok(Self(path))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempProgram {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix_pipe().map_err(|e| format!("pipe: {e}"))
}

fn nix_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new fds into `fds`, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Runs the program with `args` (after argv[0]) and `env`, stdin from `input`; returns its
/// stdout and its end.
fn run(
    broker: &Broker,
    args: &[&str],
    env: &[&str],
    input: &[u8],
) -> Result<(String, ChildEnd), String> {
    run_with(broker, args, env, input, &SpawnOptions::default())
}

/// [`run`] with spawn options (a profile's limits, its violation action).
fn run_with(
    broker: &Broker,
    args: &[&str],
    env: &[&str],
    input: &[u8],
    options: &SpawnOptions,
) -> Result<(String, ChildEnd), String> {
    let program = program_file()?;
    run_at(broker, program.path(), args, env, input, options)
}

/// [`run_with`] of the program at `program`.
fn run_at(
    broker: &Broker,
    program: &std::path::Path,
    args: &[&str],
    env: &[&str],
    input: &[u8],
    options: &SpawnOptions,
) -> Result<(String, ChildEnd), String> {
    run_at_pid(broker, program, (args, env), input, options).map(|(_, out, end)| (out, end))
}

/// [`run_at`], with the pid the program ran as.
fn run_at_pid(
    broker: &Broker,
    program: &std::path::Path,
    (args, env): (&[&str], &[&str]),
    input: &[u8],
    options: &SpawnOptions,
) -> Result<(u32, String, ChildEnd), String> {
    let (out_r, out_w) = pipe()?;
    let (in_r, in_w) = pipe()?;
    let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
    let mut argv = vec!["exec_probe".into()];
    argv.extend(args.iter().map(Into::into));
    let env: Vec<std::ffi::OsString> = env.iter().map(Into::into).collect();
    let child = broker
        .spawn_program(
            program,
            &argv,
            &env,
            [in_r.as_fd(), out_w.as_fd(), null.as_fd()],
            options,
        )
        .map_err(|e| format!("spawn program: {e}: {:?}", std::error::Error::source(&e)))?;
    drop((in_r, out_w));
    let mut in_w = std::fs::File::from(in_w);
    std::io::Write::write_all(&mut in_w, input).map_err(|e| e.to_string())?;
    drop(in_w);
    let mut out = String::new();
    std::fs::File::from(out_r)
        .read_to_string(&mut out)
        .map_err(|e| e.to_string())?;
    let end = child
        .wait_timeout(Duration::from_secs(20))
        .ok_or("program did not end")?;
    LAST_VIOLATIONS.with(|v| *v.borrow_mut() = child.violations().0);
    Ok((child.pid(), out, end))
}

thread_local! {
    /// The violations the broker recorded for the last program [`run_with`] ran.
    static LAST_VIOLATIONS: std::cell::RefCell<Vec<portcullis::Violation>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn last_violation_names() -> Vec<String> {
    LAST_VIOLATIONS.with(|v| v.borrow().iter().map(|v| v.syscall.clone()).collect())
}

/// The pair: a static program runs, gets its arguments, writes to the stdout we gave it, and
/// its exit status comes back.
pub fn runs_static_program(broker: &Broker) -> Verdict {
    match run(broker, &["hello", "world"], &[], b"")? {
        (out, ChildEnd::Exited { code: 3 })
            if out == "hello from a static program, argv[2]=world\n" =>
        {
            Ok(())
        }
        other => Err(format!("expected the greeting and exit 3, got {other:?}")),
    }
}

/// stdin passes through too.
pub fn stdin_passes_through(broker: &Broker) -> Verdict {
    match run(broker, &["echo"], &[], b"ping through the sandbox")? {
        (out, ChildEnd::Exited { code: 0 }) if out == "ping through the sandbox" => Ok(()),
        other => Err(format!("expected the echo, got {other:?}")),
    }
}

/// The program sees exactly the environment given, and only fds 0–2 (no channel, nothing of
/// ours).
pub fn environment_and_fds_are_only_what_was_given(broker: &Broker) -> Verdict {
    match run(broker, &["env"], &["ONLY=this"], b"")? {
        (out, ChildEnd::Exited { code: 0 }) if out == "ONLY=this\n" => {}
        other => return Err(format!("expected only ONLY=this, got {other:?}")),
    }
    match run(broker, &["fds"], &[], b"")? {
        (out, ChildEnd::Exited { code: 0 }) if out == "0\n1\n2\n" => Ok(()),
        other => Err(format!("expected fds 0 1 2 only, got {other:?}")),
    }
}

/// Must fail: the program cannot open a host file (the root is empty and `openat` is refused).
pub fn cannot_read_host_files(broker: &Broker) -> Verdict {
    match run(broker, &["passwd"], &[], b"")? {
        (out, ChildEnd::Exited { code: 0 }) if out == "open /etc/passwd: Permission denied\n" => {
            Ok(())
        }
        other => Err(format!("expected EACCES, got {other:?}")),
    }
}

/// Must fail: a socket ends the program as a violation naming `socket`.
pub fn socket_is_a_named_violation(broker: &Broker) -> Verdict {
    match run(broker, &["socket"], &[], b"")? {
        (out, ChildEnd::SeccompViolation { violation: Some(v) })
            if out.is_empty() && v.syscall == "socket" =>
        {
            Ok(())
        }
        other => Err(format!("expected a socket violation, got {other:?}")),
    }
}

// --- The must-fail list of issue 5, from an exec'd static program ---

/// How one escape attempt must be stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// A seccomp violation naming this syscall (kill mode: the program dies before the call
    /// runs; deny mode: it fails with EPERM and is reported).
    Violation(&'static str),
    /// The call fails with this errno and is not a violation (the filter answers it, or the
    /// empty root has nothing there).
    Errno(i32),
}

/// Every escape `exec_probe escape NAME HOST_PID` knows, and what stops it.
const ESCAPES: &[(&str, Stop)] = &[
    ("read-passwd", Stop::Errno(libc::EACCES)),
    ("list-root", Stop::Errno(libc::EACCES)),
    ("create-file", Stop::Errno(libc::EACCES)),
    ("socket-inet", Stop::Violation("socket")),
    ("socket-netlink", Stop::Violation("socket")),
    ("kill-host-pid", Stop::Violation("kill")),
    ("ptrace-host-pid", Stop::Violation("ptrace")),
    ("setpriority-host-pid", Stop::Violation("setpriority")),
    ("sethostname", Stop::Violation("sethostname")),
    ("mount", Stop::Violation("mount")),
    ("unshare-user", Stop::Violation("unshare")),
    ("clone-newuser", Stop::Violation("clone")),
    // clone3's flags sit behind a pointer: the filter answers ENOSYS so libcs fall back to clone.
    ("clone3-newuser", Stop::Errno(libc::ENOSYS)),
    ("io_uring_setup", Stop::Violation("io_uring_setup")),
    ("bpf", Stop::Violation("bpf")),
    ("keyctl", Stop::Violation("keyctl")),
    ("perf_event_open", Stop::Violation("perf_event_open")),
    ("userfaultfd", Stop::Violation("userfaultfd")),
    ("open_by_handle_at", Stop::Violation("open_by_handle_at")),
    ("chroot", Stop::Violation("chroot")),
    ("fchdir", Stop::Violation("fchdir")),
    ("write-proc-sys", Stop::Errno(libc::EACCES)),
    ("write-sys", Stop::Errno(libc::EACCES)),
    ("tiocsti", Stop::Violation("ioctl")),
    ("tioclinux", Stop::Violation("ioctl")),
];

fn options_with(limits: Limits) -> SpawnOptions {
    SpawnOptions {
        profile: Some(Profile {
            limits,
            ..Profile::default()
        }),
        ..SpawnOptions::default()
    }
}

fn deny_mode() -> SpawnOptions {
    options_with(Limits {
        on_violation: OnViolation::Deny,
        ..Limits::default()
    })
}

/// Each escape in deny mode: the program survives to say what it met — EPERM and a report naming
/// the syscall, or the errno the filter or the empty root gives and no report.
pub fn must_fail_list_deny_mode(broker: &Broker) -> Verdict {
    let host_pid = std::process::id().to_string();
    let mut failures = Vec::new();
    for &(name, stop) in ESCAPES {
        let (out, end) = run_with(broker, &["escape", name, &host_pid], &[], b"", &deny_mode())?;
        let reported = last_violation_names();
        let ok = match stop {
            Stop::Violation(syscall) => {
                out == format!("{name}: -1 {}\n", libc::EPERM)
                    && reported.iter().any(|r| r == syscall)
            }
            Stop::Errno(errno) => out == format!("{name}: -1 {errno}\n") && reported.is_empty(),
        };
        let ended_well = matches!(end, ChildEnd::Exited { code: 0 });
        println!(
            "  deny {name:>22}: {} reported {reported:?}",
            out.trim_end()
        );
        if !(ok && ended_well) {
            failures.push(format!(
                "{name}: expected {stop:?}, got {out:?} {end:?} {reported:?}"
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// Each escape in kill mode (the default): a violation ends the program before the call runs,
/// named from outside; the others fail with their errno and the program carries on.
pub fn must_fail_list_kill_mode(broker: &Broker) -> Verdict {
    let host_pid = std::process::id().to_string();
    let mut failures = Vec::new();
    for &(name, stop) in ESCAPES {
        let (out, end) = run(broker, &["escape", name, &host_pid], &[], b"")?;
        let ok = match (stop, &end) {
            (Stop::Violation(syscall), ChildEnd::SeccompViolation { violation: Some(v) }) => {
                out.is_empty() && v.syscall == syscall
            }
            (Stop::Errno(errno), ChildEnd::Exited { code: 0 }) => {
                out == format!("{name}: -1 {errno}\n")
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: expected {stop:?}, got {out:?} {end:?}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// A pseudo-terminal pair (master, slave), both close-on-exec.
fn pty() -> Result<(OwnedFd, OwnedFd), String> {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new fds into `master` and `slave`; the name, termios and
    // window-size pointers may be NULL.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(format!("openpty: {}", std::io::Error::last_os_error()));
    }
    for fd in [master, slave] {
        // SAFETY: F_SETFD on an fd we just got.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // Raw mode: input is readable byte by byte (in canonical mode an injected byte would wait
    // for a newline and the check could not see it).
    // SAFETY: `termios` is a live struct for tcgetattr to fill, then read by cfmakeraw and
    // tcsetattr; `slave` is the terminal we just opened.
    unsafe {
        let mut termios: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(slave, &mut termios) == 0 {
            libc::cfmakeraw(&mut termios);
            libc::tcsetattr(slave, libc::TCSANOW, &termios);
        }
    }
    // SAFETY: both fds are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) })
}

/// TIOCSTI (and TIOCLINUX) on a terminal the program was given as stdin, stdout and stderr: the
/// program writes to the terminal (the pair: it may use it), but nothing it tries to push into
/// the terminal's input arrives there, in kill and in deny mode.
pub fn terminal_input_cannot_be_injected(broker: &Broker) -> Verdict {
    let program = program_file()?;
    let host_pid = std::process::id().to_string();
    // Control: where this process may inject (root: CAP_SYS_ADMIN), an injected byte is seen by
    // the check below, so the check can fail.
    {
        let (_master, slave) = pty()?;
        let byte = b'z';
        // SAFETY: TIOCSTI reads one byte through the pointer, which is live.
        let injected_here = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSTI, &byte) } == 0;
        if injected_here {
            let seen = read_available(slave.as_fd())?;
            if seen != "z" {
                return Err(format!("control: injected 'z' but read {seen:?}"));
            }
            println!("  control: an injection by this process is seen ({seen:?})");
        } else {
            println!("  control: this process may not inject either (not root, or TIOCSTI is off)");
        }
    }
    for (escape, options) in [
        ("tiocsti", SpawnOptions::default()),
        ("tiocsti", deny_mode()),
        ("tioclinux", deny_mode()),
    ] {
        let (master, slave) = pty()?;
        let argv: Vec<std::ffi::OsString> = ["exec_probe", "escape", escape, &host_pid]
            .iter()
            .map(Into::into)
            .collect();
        let child = broker
            .spawn_program(
                program.path(),
                &argv,
                &[],
                [slave.as_fd(), slave.as_fd(), slave.as_fd()],
                &options,
            )
            .map_err(|e| format!("spawn program: {e}"))?;
        let end = child
            .wait_timeout(Duration::from_secs(20))
            .ok_or("program did not end")?;
        // What the program wrote, read from the master side.
        let written = read_available(master.as_fd())?;
        // What it injected would be input waiting on the slave side.
        let injected = read_available(slave.as_fd())?;
        let deny = options
            .profile
            .as_ref()
            .is_some_and(|p| p.limits.on_violation == OnViolation::Deny);
        let wrote_as_expected = if deny {
            written.contains(&format!("{escape}: -1 {}", libc::EPERM))
        } else {
            matches!(&end, ChildEnd::SeccompViolation { violation: Some(v) } if v.syscall == "ioctl")
        };
        println!(
            "  {escape} (deny {deny}): ended {end:?}, wrote {written:?}, injected {injected:?}"
        );
        if !injected.is_empty() || !wrote_as_expected {
            return Err(format!(
                "{escape} (deny {deny}): ended {end:?}, terminal output {written:?}, input \
                 injected {injected:?}"
            ));
        }
    }
    Ok(())
}

/// Everything readable on `fd` right now (it is made non-blocking).
fn read_available(fd: std::os::fd::BorrowedFd<'_>) -> Result<String, String> {
    let raw = fd.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on an fd we hold.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `buf` is a live buffer of its length.
        let n = unsafe { libc::read(raw, buf.as_mut_ptr().cast(), buf.len()) };
        match usize::try_from(n) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The pair for processes: with `allow_processes` a program forks a child and reaps it; without
/// it the same fork is a violation naming `clone`.
pub fn processes_only_when_allowed(broker: &Broker) -> Verdict {
    let allowed = options_with(Limits {
        allow_processes: true,
        ..Limits::default()
    });
    match run_with(broker, &["fork-and-wait"], &[], b"", &allowed)? {
        (out, ChildEnd::Exited { code: 0 }) if out == "child exited 7\n" => {}
        other => {
            return Err(format!(
                "allowed: expected the child's exit 7, got {other:?}"
            ))
        }
    }
    match run(broker, &["fork-and-wait"], &[], b"")? {
        (_, ChildEnd::SeccompViolation { violation: Some(v) }) if v.syscall == "clone" => Ok(()),
        other => Err(format!(
            "not allowed: expected a clone violation, got {other:?}"
        )),
    }
}

/// A fork bomb allowed to create processes under a 16-task limit: the 16th task is refused
/// (EAGAIN), the program says after how many, and its end is `ProcessLimit`. A bystander
/// program started before the bomb still answers after it, and the broker still spawns.
pub fn fork_bomb_is_capped_by_the_pids_limit(broker: &Broker) -> Verdict {
    crate::limits::need_cgroup(broker, "pids")?;
    let program = program_file()?;
    // The bystander: `echo` blocks reading its stdin until the bomb is over.
    let (by_in_r, by_in_w) = pipe()?;
    let (by_out_r, by_out_w) = pipe()?;
    let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
    let bystander = broker
        .spawn_program(
            program.path(),
            &["exec_probe".into(), "echo".into()],
            &[],
            [by_in_r.as_fd(), by_out_w.as_fd(), null.as_fd()],
            &SpawnOptions::default(),
        )
        .map_err(|e| format!("spawn bystander: {e}"))?;
    drop((by_in_r, by_out_w));
    let options = options_with(Limits {
        allow_processes: true,
        processes: 16,
        ..Limits::default()
    });
    match run_with(broker, &["forkbomb"], &[], b"", &options)? {
        (out, ChildEnd::ProcessLimit)
            if out == "fork refused after 15 children: Resource temporarily unavailable\n" => {}
        other => {
            return Err(format!(
                "expected 15 children then ProcessLimit, got {other:?}"
            ))
        }
    }
    let mut by_in_w = std::fs::File::from(by_in_w);
    std::io::Write::write_all(&mut by_in_w, b"still here").map_err(|e| {
        format!(
            "bystander's stdin: {e}; it ended {:?}",
            bystander.wait_timeout(Duration::from_secs(1))
        )
    })?;
    drop(by_in_w);
    let mut out = String::new();
    std::fs::File::from(by_out_r)
        .read_to_string(&mut out)
        .map_err(|e| e.to_string())?;
    match bystander.wait_timeout(Duration::from_secs(20)) {
        Some(ChildEnd::Exited { code: 0 }) if out == "still here" => {}
        other => return Err(format!("bystander: {out:?} {other:?}")),
    }
    // And the broker still starts programs.
    match run(broker, &["hello", "after"], &[], b"")? {
        (out, ChildEnd::Exited { code: 3 }) if out.ends_with("argv[2]=after\n") => Ok(()),
        other => Err(format!("spawn after the bomb: {other:?}")),
    }
}

/// A directory as the program's stdin is refused at spawn: files beneath it would be
/// reachable by relative path. The pair: a regular file as stdin is fine.
pub fn directory_stdio_is_refused(broker: &Broker) -> Verdict {
    let program = program_file()?;
    let dir = std::fs::File::open("/").map_err(|e| e.to_string())?;
    let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
    let argv = ["exec_probe".into(), "hello".into()];
    match broker.spawn_program(
        program.path(),
        &argv,
        &[],
        [dir.as_fd(), null.as_fd(), null.as_fd()],
        &SpawnOptions::default(),
    ) {
        Err(portcullis::SpawnError::InvalidOptions(why)) if why.contains("directory") => {}
        Err(e) => return Err(format!("expected InvalidOptions, got {e}")),
        Ok(child) => {
            return Err(format!(
                "a directory stdin was accepted: {:?}",
                child.wait_timeout(Duration::from_secs(20))
            ))
        }
    }
    // The same for an extra fd (it would become the program's fd 3).
    match broker.spawn_program_with_fds(
        program.path(),
        (&argv, &[]),
        [null.as_fd(), null.as_fd(), null.as_fd()],
        &[dir.as_fd()],
        &SpawnOptions::default(),
    ) {
        Err(portcullis::SpawnError::InvalidOptions(why)) if why.contains("directory") => {}
        Err(e) => return Err(format!("extra fd: expected InvalidOptions, got {e}")),
        Ok(child) => {
            return Err(format!(
                "a directory as an extra fd was accepted: {:?}",
                child.wait_timeout(Duration::from_secs(20))
            ))
        }
    }
    let child = broker
        .spawn_program(
            program.path(),
            &argv,
            &[],
            [null.as_fd(), null.as_fd(), null.as_fd()],
            &SpawnOptions::default(),
        )
        .map_err(|e| format!("regular stdio: {e}"))?;
    match child.wait_timeout(Duration::from_secs(20)) {
        Some(ChildEnd::Exited { code: 3 }) => Ok(()),
        other => Err(format!("regular stdio: {other:?}")),
    }
}

/// A memory bomb under a 64 MiB limit ends `OutOfMemory` (the cgroup's own OOM count).
pub fn memory_bomb_is_capped_by_the_memory_limit(broker: &Broker) -> Verdict {
    crate::limits::need_cgroup(broker, "memory")?;
    let options = options_with(Limits {
        memory_bytes: 64 << 20,
        ..Limits::default()
    });
    match run_with(broker, &["membomb"], &[], b"", &options)? {
        (_, ChildEnd::OutOfMemory) => Ok(()),
        other => Err(format!("expected OutOfMemory, got {other:?}")),
    }
}

// --- Program roots: dynamic programs in a read-only minimal root, under Landlock ---------------

/// The program-root scenarios (`exec-root-*`).
pub fn handles_root(scenario: &str) -> bool {
    scenario.starts_with("exec-root-")
}

/// Runs one program-root scenario.
pub fn run_root(broker: &Broker, scenario: &str) -> Verdict {
    match scenario {
        "exec-root-echo" => root::echo_runs_with_the_automatic_root(broker),
        "exec-root-replaced" => root::replaced_program_is_refused(broker),
        "exec-root-files-pair" => root::reads_inside_the_root_only(broker),
        "exec-root-landlock" => root::landlock_refuses_what_is_mounted_but_not_granted(broker),
        "exec-root-write-pair" => root::writes_only_below_a_read_write_bind(broker),
        "exec-root-no-auto-root" => root::no_auto_root_has_no_loader(broker),
        "exec-root-symlinked-source" => root::a_symlinked_source_is_refused(broker),
        "exec-root-must-fail-kill" => must_fail_list_with_a_root(broker, false),
        "exec-root-must-fail-deny" => must_fail_list_with_a_root(broker, true),
        other => Err(format!("unknown scenario {other:?}")),
    }
}

/// What stops each escape when the program has a root of mounts (a wider filter: read-only
/// opens, chdir/fchdir, AF_UNIX sockets answered EACCES): the same list, where the answer
/// differs from the empty root's.
fn stop_with_a_root(name: &str, empty: Stop) -> Stop {
    match name {
        // Not in the root at all.
        "read-passwd" => Stop::Errno(libc::ENOENT),
        // `/` of the root is the tmpfs holding the mount points: Landlock has no rule for it.
        "list-root" => Stop::Errno(libc::EACCES),
        // O_CREAT, O_WRONLY: the filter's EACCES, before any path is looked up (/proc and /sys
        // are not in the root either).
        "create-file" | "write-proc-sys" | "write-sys" => Stop::Errno(libc::EACCES),
        // fchdir is allowed with a root; fd 0 here is a pipe, not a directory.
        "fchdir" => Stop::Errno(libc::ENOTDIR),
        _ => empty,
    }
}

/// The must-fail list from the static program given a root of mounts (a granted directory):
/// every escape still fails — a violation naming the syscall, or the errno the mounts, Landlock
/// or the filter give — in kill or deny mode.
fn must_fail_list_with_a_root(broker: &Broker, deny: bool) -> Verdict {
    use portcullis::broker::elf::LibrarySearch;
    use portcullis::broker::mounts::MountPlan;
    use portcullis::broker::LandlockRequirement;
    let program = program_file()?;
    let granted = std::env::temp_dir().join(format!("portcullis-root-mf-{}", std::process::id()));
    let _ = std::fs::create_dir(&granted);
    let mut plan = MountPlan::new();
    plan.grant(&granted, false)
        .map_err(|e| format!("grant: {e}"))?;
    plan.add_program(program.path(), true, &LibrarySearch::default())
        .map_err(|e| format!("plan: {e}"))?;
    let root = plan
        .into_root(LandlockRequirement::Required)
        .map_err(|e| format!("plan: {e}"))?;
    let mut options = if deny {
        deny_mode()
    } else {
        SpawnOptions::default()
    };
    options.program_root = Some(root);
    let host_pid = std::process::id().to_string();
    let mut failures = Vec::new();
    for &(name, empty) in ESCAPES {
        let stop = stop_with_a_root(name, empty);
        // The same copy of the program the plan binds: Landlock lets it execute only that.
        let (out, end) = run_at(
            broker,
            program.path(),
            &["escape", name, &host_pid],
            &[],
            b"",
            &options,
        )?;
        let reported = last_violation_names();
        let ok = match (stop, &end, deny) {
            (
                Stop::Violation(syscall),
                ChildEnd::SeccompViolation { violation: Some(v) },
                false,
            ) => out.is_empty() && v.syscall == syscall,
            (Stop::Violation(syscall), ChildEnd::Exited { code: 0 }, true) => {
                out == format!("{name}: -1 {}\n", libc::EPERM)
                    && reported.iter().any(|r| r == syscall)
            }
            (Stop::Errno(errno), ChildEnd::Exited { code: 0 }, _) => {
                out == format!("{name}: -1 {errno}\n") && reported.is_empty()
            }
            _ => false,
        };
        println!(
            "  root (deny {deny}) {name:>22}: {} {end:?} {reported:?}",
            out.trim_end()
        );
        if !ok {
            failures.push(format!(
                "{name}: expected {stop:?}, got {out:?} {end:?} {reported:?}"
            ));
        }
    }
    let _ = std::fs::remove_dir(&granted);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

mod root {
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use portcullis::broker::elf::LibrarySearch;
    use portcullis::broker::mounts::MountPlan;
    use portcullis::broker::{LandlockRequirement, LandlockStatus};
    use portcullis::{Broker, ChildEnd, SpawnOptions};

    use super::pipe;
    use crate::{Verdict, SKIP_PREFIX};

    /// A host program, or a skip when this host lacks it (or it is not a dynamic ELF).
    fn host_program(name: &str) -> Result<PathBuf, String> {
        let path = ["/bin", "/usr/bin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.exists())
            .ok_or(format!("{SKIP_PREFIX}no {name} on this host"))?;
        match portcullis::broker::elf::read_elf(&path) {
            Ok(info) if info.interpreter.is_some() => Ok(path),
            _ => Err(format!(
                "{SKIP_PREFIX}{} is not a dynamic ELF here",
                path.display()
            )),
        }
    }

    /// A directory (and a file in it) the sandbox's host id may read (and, `0o777`, write): the
    /// sandbox runs as an unprivileged id on the host, not as the test's user.
    struct Shared(PathBuf);

    impl Shared {
        fn new(tag: &str, mode: u32) -> Result<Self, String> {
            let dir =
                std::env::temp_dir().join(format!("portcullis-root-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).map_err(|e| format!("mkdir: {e}"))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
                .map_err(|e| e.to_string())?;
            let file = dir.join("inside.txt");
            std::fs::write(&file, b"inside the root\n").map_err(|e| e.to_string())?;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))
                .map_err(|e| e.to_string())?;
            Ok(Self(
                std::fs::canonicalize(&dir).map_err(|e| e.to_string())?,
            ))
        }
    }

    impl Drop for Shared {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    struct Ran {
        out: String,
        err: String,
        end: ChildEnd,
        landlock: Option<LandlockStatus>,
    }

    /// Runs `program args` with an automatic root (unless `auto` is false) plus `grants`
    /// (path, writable); returns its stdout, stderr, end and Landlock status.
    fn run(
        broker: &Broker,
        program: &Path,
        args: &[&str],
        grants: &[(&Path, bool)],
        auto: bool,
    ) -> Result<Ran, String> {
        let mut plan = MountPlan::new();
        for (path, writable) in grants {
            plan.grant(path, *writable)
                .map_err(|e| format!("grant: {e}"))?;
        }
        plan.add_program(program, auto, &LibrarySearch::default())
            .map_err(|e| format!("plan: {e}: {:?}", std::error::Error::source(&e)))?;
        let root = plan
            .into_root(LandlockRequirement::Required)
            .map_err(|e| format!("plan: {e}"))?;
        let options = SpawnOptions {
            program_root: Some(root),
            ..SpawnOptions::default()
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
        let mut argv: Vec<std::ffi::OsString> = vec![program.into()];
        argv.extend(args.iter().map(Into::into));
        let child = broker
            .spawn_program(
                program,
                &argv,
                &[],
                [null.as_fd(), out_w.as_fd(), err_w.as_fd()],
                &options,
            )
            .map_err(|e| format!("spawn program: {e}: {:?}", std::error::Error::source(&e)))?;
        drop((out_w, err_w));
        let mut out = String::new();
        std::fs::File::from(out_r)
            .read_to_string(&mut out)
            .map_err(|e| e.to_string())?;
        let mut err = String::new();
        std::fs::File::from(err_r)
            .read_to_string(&mut err)
            .map_err(|e| e.to_string())?;
        let end = child
            .wait_timeout(Duration::from_secs(20))
            .ok_or("program did not end")?;
        Ok(Ran {
            out,
            err,
            end,
            landlock: child.landlock(),
        })
    }

    /// Landlock was applied: fully on a kernel with every filesystem right this code asks for
    /// (ABI 5 added the last one, device ioctls), partially only on an older one.
    fn enforced(ran: &Ran) -> Result<(), String> {
        match ran.landlock {
            Some(LandlockStatus::Enforced { abi }) if abi >= 1 => Ok(()),
            Some(LandlockStatus::PartiallyEnforced { abi }) if (1..5).contains(&abi) => Ok(()),
            other => Err(format!("expected Landlock enforced, got {other:?}")),
        }
    }

    /// `/bin/echo hello` runs with the automatic root and prints hello, under Landlock.
    pub fn echo_runs_with_the_automatic_root(broker: &Broker) -> Verdict {
        let echo = host_program("echo")?;
        let ran = run(broker, &echo, &["hello"], &[], true)?;
        match (&ran.out[..], &ran.end) {
            ("hello\n", ChildEnd::Exited { code: 0 }) => enforced(&ran),
            _ => Err(format!(
                "expected hello and exit 0, got {:?} {:?} {:?}",
                ran.out, ran.err, ran.end
            )),
        }
    }

    /// A program replaced between the plan of its root and the spawn is refused: the root was
    /// planned from the first file's ELF headers (its interpreter, its libraries), and running
    /// another file with it would let a decoy choose the mounts. The pair: the same copy, not
    /// replaced, runs.
    pub fn replaced_program_is_refused(broker: &Broker) -> Verdict {
        let echo = host_program("echo")?;
        let shared = Shared::new("replaced", 0o755)?;
        let copy = shared.0.join("echo");
        std::fs::copy(&echo, &copy).map_err(|e| format!("copy echo: {e}"))?;
        let plan = |program: &Path| -> Result<SpawnOptions, String> {
            let mut plan = MountPlan::new();
            plan.add_program(program, true, &LibrarySearch::default())
                .map_err(|e| format!("plan: {e}"))?;
            Ok(SpawnOptions {
                program_root: Some(
                    plan.into_root(LandlockRequirement::Required)
                        .map_err(|e| format!("plan: {e}"))?,
                ),
                ..SpawnOptions::default()
            })
        };
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|e| e.to_string())?;
        let stdio = [null.as_fd(), null.as_fd(), null.as_fd()];
        let argv = [std::ffi::OsString::from("echo")];
        let options = plan(&copy)?;
        let child = broker
            .spawn_program(&copy, &argv, &[], stdio, &options)
            .map_err(|e| format!("the unreplaced copy: {e}"))?;
        match child.wait_timeout(Duration::from_secs(20)) {
            Some(ChildEnd::Exited { code: 0 }) => {}
            other => return Err(format!("the unreplaced copy ended {other:?}")),
        }
        // Replaced by another file (a new inode at the same path) after the plan.
        let options = plan(&copy)?;
        let other = shared.0.join("other");
        std::fs::copy(&echo, &other).map_err(|e| e.to_string())?;
        std::fs::rename(&other, &copy).map_err(|e| e.to_string())?;
        match broker.spawn_program(&copy, &argv, &[], stdio, &options) {
            Err(portcullis::SpawnError::Program(e)) if e.to_string().contains("replaced") => Ok(()),
            Err(e) => Err(format!("expected the replaced program refused, got {e}")),
            Ok(child) => Err(format!(
                "a replaced program ran with the first one's root: {:?}",
                child.wait_timeout(Duration::from_secs(20))
            )),
        }
    }

    /// The pair: `cat` reads a file of a granted directory, and cannot read /etc/passwd (not in
    /// the root).
    pub fn reads_inside_the_root_only(broker: &Broker) -> Verdict {
        let cat = host_program("cat")?;
        let shared = Shared::new("files", 0o755)?;
        let inside = shared.0.join("inside.txt");
        let inside = inside.to_str().ok_or("temp path")?;
        let ran = run(broker, &cat, &[inside], &[(&shared.0, false)], true)?;
        match (&ran.out[..], &ran.end) {
            ("inside the root\n", ChildEnd::Exited { code: 0 }) => enforced(&ran)?,
            _ => {
                return Err(format!(
                    "allowed read: got {:?} {:?} {:?}",
                    ran.out, ran.err, ran.end
                ))
            }
        }
        let ran = run(broker, &cat, &["/etc/passwd"], &[(&shared.0, false)], true)?;
        match (&ran.out[..], &ran.end) {
            ("", ChildEnd::Exited { code: 1 }) if ran.err.contains("No such file or directory") => {
                Ok(())
            }
            _ => Err(format!(
                "denied read: got {:?} {:?} {:?}",
                ran.out, ran.err, ran.end
            )),
        }
    }

    /// Landlock, the second layer: `/` of the program root is a real, world-readable directory
    /// (the tmpfs that holds the mount points), yet listing it is refused with EACCES because no
    /// rule grants it; a granted directory lists, and /etc is simply not there.
    pub fn landlock_refuses_what_is_mounted_but_not_granted(broker: &Broker) -> Verdict {
        let ls = host_program("ls")?;
        let shared = Shared::new("ls", 0o755)?;
        let dir = shared.0.to_str().ok_or("temp path")?;
        let ran = run(broker, &ls, &[dir], &[(&shared.0, false)], true)?;
        match (&ran.out[..], &ran.end) {
            ("inside.txt\n", ChildEnd::Exited { code: 0 }) => enforced(&ran)?,
            _ => {
                return Err(format!(
                    "granted listing: got {:?} {:?} {:?}",
                    ran.out, ran.err, ran.end
                ))
            }
        }
        let ran = run(broker, &ls, &["/"], &[(&shared.0, false)], true)?;
        match (&ran.out[..], &ran.end) {
            ("", ChildEnd::Exited { code: 2 }) if ran.err.contains("Permission denied") => {}
            _ => {
                return Err(format!(
                    "listing /: got {:?} {:?} {:?}",
                    ran.out, ran.err, ran.end
                ))
            }
        }
        let ran = run(broker, &ls, &["/etc"], &[(&shared.0, false)], true)?;
        match (&ran.out[..], &ran.end) {
            ("", ChildEnd::Exited { code: 2 }) if ran.err.contains("No such file or directory") => {
                Ok(())
            }
            _ => Err(format!(
                "listing /etc: got {:?} {:?} {:?}",
                ran.out, ran.err, ran.end
            )),
        }
    }

    /// The pair: `touch` cannot create a file below a read-only bind, and can below a read-write
    /// one (the file then exists on the host).
    pub fn writes_only_below_a_read_write_bind(broker: &Broker) -> Verdict {
        let touch = host_program("touch")?;
        let shared = Shared::new("write", 0o777)?;
        let new = shared.0.join("new.txt");
        let new_str = new.to_str().ok_or("temp path")?;
        let ran = run(broker, &touch, &[new_str], &[(&shared.0, false)], true)?;
        match &ran.end {
            ChildEnd::Exited { code: 1 } if !new.exists() => {}
            _ => {
                return Err(format!(
                    "read-only: got {:?} {:?} {:?}",
                    ran.out, ran.err, ran.end
                ))
            }
        }
        let ran = run(broker, &touch, &[new_str], &[(&shared.0, true)], true)?;
        match &ran.end {
            ChildEnd::Exited { code: 0 } if new.exists() => enforced(&ran),
            _ => Err(format!(
                "read-write: got {:?} {:?} {:?}",
                ran.out, ran.err, ran.end
            )),
        }
    }

    /// The child resolves each planned source again without following symlinks: a source path
    /// that holds one (as after a swap between the broker's plan and the child's mount) fails
    /// the lockdown with ELOOP; the pair, the same file by its real path, runs.
    pub fn a_symlinked_source_is_refused(broker: &Broker) -> Verdict {
        use portcullis::broker::Bind;
        let cat = host_program("cat")?;
        let shared = Shared::new("symlink", 0o755)?;
        let real = shared.0.join("real");
        std::fs::create_dir(&real).map_err(|e| e.to_string())?;
        std::fs::write(real.join("f"), b"through the real path\n").map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink("real", shared.0.join("link")).map_err(|e| e.to_string())?;
        let plan_with = |source: &Path| -> Result<SpawnOptions, String> {
            let mut plan = MountPlan::new();
            plan.add_program(&cat, true, &LibrarySearch::default())
                .map_err(|e| format!("plan: {e}"))?;
            let mut root = plan
                .into_root(LandlockRequirement::Required)
                .map_err(|e| format!("plan: {e}"))?;
            root.binds.push(Bind {
                target: PathBuf::from("/data/f"),
                source: source.to_owned(),
                dir: false,
                writable: false,
            });
            Ok(SpawnOptions {
                program_root: Some(root),
                ..SpawnOptions::default()
            })
        };
        let spawn = |options: &SpawnOptions| {
            let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
            let (out_r, out_w) = pipe()?;
            let argv: Vec<std::ffi::OsString> = vec![cat.clone().into(), "/data/f".into()];
            let result = broker.spawn_program(
                &cat,
                &argv,
                &[],
                [null.as_fd(), out_w.as_fd(), null.as_fd()],
                options,
            );
            drop(out_w);
            Ok::<_, String>((result, out_r))
        };
        let (result, _) = spawn(&plan_with(&shared.0.join("link/f"))?)?;
        match result {
            Err(portcullis::SpawnError::Lockdown(e))
                if e.step == portcullis::broker::LockdownStep::CloneProgramPaths
                    && e.errno == libc::ELOOP => {}
            Err(e) => {
                return Err(format!(
                    "symlinked source: expected ELOOP, got {e}: {:?}",
                    std::error::Error::source(&e)
                ))
            }
            Ok(child) => {
                return Err(format!(
                    "symlinked source was mounted: {:?}",
                    child.wait_timeout(Duration::from_secs(20))
                ))
            }
        }
        let (result, out_r) = spawn(&plan_with(&real.join("f"))?)?;
        let child = result.map_err(|e| format!("real source: {e}"))?;
        let mut out = String::new();
        std::fs::File::from(out_r)
            .read_to_string(&mut out)
            .map_err(|e| e.to_string())?;
        match child.wait_timeout(Duration::from_secs(20)) {
            Some(ChildEnd::Exited { code: 0 }) if out == "through the real path\n" => Ok(()),
            other => Err(format!("real source: {out:?} {other:?}")),
        }
    }

    /// Without the automatic root a dynamic program has no loader: the exec fails (127), and
    /// nothing of it ran.
    pub fn no_auto_root_has_no_loader(broker: &Broker) -> Verdict {
        let echo = host_program("echo")?;
        let ran = run(broker, &echo, &["hello"], &[], false)?;
        match (&ran.out[..], &ran.end) {
            ("", ChildEnd::Exited { code: 127 }) => Ok(()),
            _ => Err(format!(
                "expected exit 127, got {:?} {:?} {:?}",
                ran.out, ran.err, ran.end
            )),
        }
    }
}

/// The pids whose parent is `pid` (`/proc/PID/task/*/children`).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Waits up to 10 s until `want` pre-forked exec-mode children wait; the zygote's children then.
fn settled_program_pool(broker: &Broker, want: usize) -> Result<Vec<u32>, String> {
    crate::wait_for_pool("pre-forked exec children", want, || {
        broker.pooled_programs()
    })?;
    Ok(children_of(broker.zygote_pid()))
}

/// `BrokerConfig::prefork_programs` (this scenario's broker keeps 2): a static program with a
/// default profile starts in a pre-forked child (one of the zygote's children before the
/// spawn), runs exactly as one forked on request, and the pool refills; a spawn whose rlimits
/// differ (a CPU-time limit) gets a child forked for it (the pair); pre-forked children are
/// locked down and supervised like any other (the whole must-fail list, and a violation named).
pub fn program_pool(broker: &Broker) -> Verdict {
    let program = program_file()?;
    let spawn = |options: &SpawnOptions| {
        run_at_pid(
            broker,
            program.path(),
            (&["hello", "pool"], &[]),
            b"",
            options,
        )
    };
    let greeting = "hello from a static program, argv[2]=pool\n";
    for round in 0..3 {
        let waiting = settled_program_pool(broker, 2)?;
        let (pid, out, end) = spawn(&SpawnOptions::default())?;
        if out != greeting || !matches!(end, ChildEnd::Exited { code: 3 }) {
            return Err(format!("round {round}: a pooled run gave {out:?} {end:?}"));
        }
        if !waiting.contains(&pid) {
            return Err(format!(
                "round {round}: the program ran as {pid}, not in one of the waiting children \
                 {waiting:?}"
            ));
        }
    }
    // The pair: other rlimits than the pool's, so a child forked for this spawn.
    let waiting = settled_program_pool(broker, 2)?;
    let cpu_limited = SpawnOptions {
        profile: Some(Profile {
            limits: Limits {
                cpu_seconds: 30,
                ..Limits::default()
            },
            ..Profile::default()
        }),
        ..SpawnOptions::default()
    };
    let (pid, out, end) = spawn(&cpu_limited)?;
    if out != greeting || !matches!(end, ChildEnd::Exited { code: 3 }) {
        return Err(format!("a forked run gave {out:?} {end:?}"));
    }
    if waiting.contains(&pid) {
        return Err(format!(
            "a spawn with a CPU limit took a pre-forked child ({pid}), whose rlimits are others"
        ));
    }
    if broker.pooled_programs() != 2 {
        return Err(format!(
            "{} pre-forked children left after a spawn that must not take one",
            broker.pooled_programs()
        ));
    }
    // Pre-forked children are locked down and supervised like any: the whole must-fail list
    // (each from a pre-forked child whenever the pool has refilled), a violation by name.
    settled_program_pool(broker, 2)?;
    must_fail_list_kill_mode(broker)?;
    settled_program_pool(broker, 2)?;
    socket_is_a_named_violation(broker)
}
