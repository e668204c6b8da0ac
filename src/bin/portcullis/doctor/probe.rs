//! Trials `doctor` runs in a fresh process of this binary (`portcullis __doctor-probe TRIAL`),
//! because they change the process that makes them (namespaces, mounts, a seccomp filter) and
//! because `unshare(CLONE_NEWUSER)` works only in a single-threaded process. The parent only
//! spawns, waits and reads one line: `ok`, or `failed STEP ERRNO`.

use std::io::Read;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use portcullis_broker::namespaces::SHARED_NAMESPACES;

use crate::{status, Done};

/// A trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Trial {
    /// The zygote's steps: user namespace, id maps, the other shared namespaces, a PID
    /// namespace, private mounts and an empty read-only tmpfs.
    Namespaces,
    /// A seccomp filter with a user-notification listener, as each child installs.
    SeccompListener,
    /// Wait until standard input closes (a process to move into a trial cgroup).
    Park,
}

/// Arguments of the hidden probe subcommand.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Which trial to run.
    #[arg(value_enum)]
    trial: Trial,
}

/// How a trial went, as the parent reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Every step worked.
    Ok,
    /// `step` failed with `errno`.
    Failed {
        /// The step's name, as the trial names it.
        step: String,
        /// The OS error.
        errno: i32,
    },
    /// The trial process could not be run or said something else.
    NotRun {
        /// What happened instead.
        problem: String,
    },
}

/// Runs `trial` in this process and reports it on standard output (always exit 0: the report
/// is the answer).
pub fn run(args: &ProbeArgs) -> Done {
    let report = match args.trial {
        Trial::Namespaces => namespaces(),
        Trial::SeccompListener => seccomp_listener(),
        Trial::Park => {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            Ok(())
        }
    };
    Done {
        stdout: match report {
            Ok(()) => "ok\n".to_owned(),
            Err((step, errno)) => format!("failed {step} {}\n", errno as i32),
        },
        status: status::OK,
    }
}

type StepResult = Result<(), (&'static str, Errno)>;

/// The zygote's set-up, in its order where it matters: the user namespace first (it owns the
/// others), then this process's own id maps (as an unprivileged broker writes them), the other
/// shared namespaces, a PID namespace for children, private mounts, and the empty root's tmpfs
/// (over `/tmp` of this private mount namespace; the host's `/tmp` is untouched). Split into
/// steps, so a user namespace that is created but has no power (Ubuntu's AppArmor restriction)
/// is told apart from one that is refused outright.
fn namespaces() -> StepResult {
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| ("user", e))?;
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text)
            .map_err(|e| ("id-maps", Errno::from_raw(e.raw_os_error().unwrap_or(0))))
    };
    write("setgroups", "deny".to_owned())?;
    write("uid_map", format!("0 {uid} 1\n"))?;
    write("gid_map", format!("0 {gid} 1\n"))?;
    let others = CloneFlags::from_bits_retain(SHARED_NAMESPACES & !libc::CLONE_NEWUSER);
    nix::sched::unshare(others).map_err(|e| ("namespaces", e))?;
    nix::sched::unshare(CloneFlags::CLONE_NEWPID).map_err(|e| ("pid", e))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| ("private-mounts", e))?;
    nix::mount::mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=4k,nr_inodes=2,mode=0555"),
    )
    .map_err(|e| ("empty-root", e))
}

/// Loads a filter that allows everything but sends `getppid` to a listener, and takes the
/// listener: what each child does with its real filter (and what fails with `EBUSY` under an
/// outer sandbox whose own filter already has a listener). This process gets `no_new_privs`
/// and the filter; it exits right after.
fn seccomp_listener() -> StepResult {
    use libseccomp::{ScmpAction, ScmpFilterContext, ScmpSyscall};
    let errno = |e: libseccomp::error::SeccompError| {
        Errno::from_raw(e.sysrawrc().map_or(libc::EINVAL, |rc| rc.abs()))
    };
    let mut ctx = ScmpFilterContext::new(ScmpAction::Allow).map_err(|e| ("filter", errno(e)))?;
    ctx.set_api_sysrawrc(true)
        .map_err(|e| ("filter", errno(e)))?;
    let getppid = ScmpSyscall::from_name("getppid").map_err(|e| ("filter", errno(e)))?;
    ctx.add_rule(ScmpAction::Notify, getppid)
        .map_err(|e| ("filter", errno(e)))?;
    ctx.load().map_err(|e| ("load", errno(e)))?;
    ctx.get_notify_fd().map_err(|e| ("listener", errno(e)))?;
    Ok(())
}

/// Runs `trial` in a fresh process of this binary and reads its report.
pub fn spawn(trial: Trial) -> ProbeOutcome {
    let Some(name) = clap::ValueEnum::to_possible_value(&trial) else {
        return ProbeOutcome::NotRun {
            problem: "unnamed trial".to_owned(),
        };
    };
    let output = Command::new("/proc/self/exe")
        .arg(super::PROBE_SUBCOMMAND)
        .arg(name.get_name())
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    match output {
        Ok(output) => parse_report(
            &String::from_utf8_lossy(&output.stdout),
            &String::from_utf8_lossy(&output.stderr),
            output.status.success(),
        ),
        Err(e) => ProbeOutcome::NotRun {
            problem: format!("cannot start /proc/self/exe: {e}"),
        },
    }
}

/// The outcome a trial process reported on `stdout`.
pub fn parse_report(stdout: &str, stderr: &str, exited_zero: bool) -> ProbeOutcome {
    let line = stdout.lines().next().unwrap_or_default();
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("ok"), None, None, None) if exited_zero => ProbeOutcome::Ok,
        (Some("failed"), Some(step), Some(errno), None) if exited_zero => match errno.parse() {
            Ok(errno) => ProbeOutcome::Failed {
                step: step.to_owned(),
                errno,
            },
            Err(_) => ProbeOutcome::NotRun {
                problem: format!("unreadable report {line:?}"),
            },
        },
        _ => {
            let said = stderr.lines().next().unwrap_or("nothing").trim();
            ProbeOutcome::NotRun {
                problem: format!(
                    "the trial process ended without a report (it said: {said}; on stdout: \
                     {line:?})"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_parsed() {
        assert_eq!(parse_report("ok\n", "", true), ProbeOutcome::Ok);
        assert_eq!(
            parse_report("failed namespaces 1\n", "", true),
            ProbeOutcome::Failed {
                step: "namespaces".to_owned(),
                errno: 1
            }
        );
        assert!(matches!(
            parse_report("", "thread 'main' panicked", false),
            ProbeOutcome::NotRun { problem } if problem.contains("panicked")
        ));
        assert!(matches!(
            parse_report("failed user x\n", "", true),
            ProbeOutcome::NotRun { .. }
        ));
        assert!(matches!(
            parse_report("ok\n", "", false),
            ProbeOutcome::NotRun { .. }
        ));
    }
}
