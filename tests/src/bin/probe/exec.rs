//! Exec mode: a static C program (`tests/static/exec_probe.c`, built by `tests/build.rs` and
//! embedded here) executed by a fully locked-down child from an fd the broker opened, with an
//! empty root.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use portcullis::{Broker, ChildEnd, SpawnOptions};

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
            let path =
                std::env::temp_dir().join(format!("portcullis-exec-probe-{}", std::process::id()));
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
    let program = program_file()?;
    let (out_r, out_w) = pipe()?;
    let (in_r, in_w) = pipe()?;
    let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
    let mut argv = vec!["exec_probe".into()];
    argv.extend(args.iter().map(Into::into));
    let env: Vec<std::ffi::OsString> = env.iter().map(Into::into).collect();
    let child = broker
        .spawn_program(
            program.path(),
            &argv,
            &env,
            [in_r.as_fd(), out_w.as_fd(), null.as_fd()],
            &SpawnOptions::default(),
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
    Ok((out, end))
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
