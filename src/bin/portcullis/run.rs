//! `portcullis run [OPTIONS] -- PROGRAM [ARGS...]`: runs a program in a Portcullis sandbox
//! (exec mode): a broker starts, a fully locked-down child executes the program from an fd the
//! broker opened, and the program's end becomes this command's exit status.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use portcullis::{Broker, BrokerConfig, ChildEnd, Entries, OnViolation, SpawnOptions};

use crate::explain::{parse_param, resolve_profile};
use crate::{status, CommandError, Done};

/// Exit status when the sandbox could not start the program (as a shell's 126/127).
const CANNOT_RUN: u8 = 126;
const NOT_FOUND: u8 = 127;

/// Run PROGRAM in a Portcullis sandbox.
///
/// The program runs fully locked down: empty user, pid, net, mount, ipc, uts and cgroup
/// namespaces, an empty read-only root (nothing of the host's files), every capability
/// dropped, no_new_privs, a seccomp allowlist (a syscall outside it kills the program and is
/// reported by name, or fails with EPERM with --on-violation deny), its own cgroup and
/// rlimits, and it dies with this command. It is executed from a file descriptor this command
/// opened, so a static program needs nothing mounted. Dynamic programs (which need their
/// interpreter and libraries) are refused for now.
///
/// Its stdin, stdout and stderr are this command's; no other file descriptor reaches it. Its
/// environment is empty unless given with --env. Limits come from the profile (the default
/// profile without --policy), then from the limit options.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Examples:
  portcullis run -- ./static-tool --flag
  portcullis run --memory 64MiB --pids 8 --wall-ms 5000 -- ./static-tool
  portcullis run --policy plugins.toml --profile plugin -- ./plugin
  portcullis run --on-violation deny --env LANG=C -- ./probe

Exit status:
  the program's own exit status, or 128 + the signal that ended it (a seccomp violation
  ends it with 159, 128 + SIGSYS; the out-of-memory killer, a CPU or wall limit, with 137)
  126  the program could not be run (a dynamic program, a sandbox start failure)
  127  the program was not found
  1    a bad policy file
  2    usage error")]
pub struct RunArgs {
    /// A policy file (TOML) whose profile sets the program's limits and violation action.
    #[arg(long, value_name = "POLICY")]
    policy: Option<PathBuf>,
    /// The profile of --policy to use; may be left out when the policy defines exactly one.
    #[arg(long, short = 'p', value_name = "NAME")]
    profile: Option<String>,
    /// A value for one of the profile's parameters; repeat for each.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// An environment variable for the program (the environment is empty otherwise); repeat.
    #[arg(long = "env", short = 'e', value_name = "NAME=VALUE", value_parser = parse_param)]
    env: Vec<(String, String)>,
    /// Memory limit (cgroup; address space without one): bytes, or with KiB, MiB, GiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// Tasks (processes and threads) the program may have at once (cgroup pids limit).
    #[arg(long, value_name = "N")]
    pids: Option<u32>,
    /// CPU time limit in seconds (RLIMIT_CPU).
    #[arg(long = "cpu-seconds", value_name = "SECONDS")]
    cpu_seconds: Option<u64>,
    /// Share of CPU in percent of one CPU (cgroup quota).
    #[arg(long = "cpu-percent", value_name = "PERCENT")]
    cpu_percent: Option<u32>,
    /// Wall-clock limit in milliseconds; the program is killed after it.
    #[arg(long = "wall-ms", value_name = "MS")]
    wall_ms: Option<u64>,
    /// No cgroup for the program: limits by rlimits only (memory as address space, no task
    /// limit, no CPU share). For hosts that give no cgroup, and to measure what one costs;
    /// refused with --allow-processes (nothing would bound the processes).
    #[arg(long = "no-cgroup")]
    no_cgroup: bool,
    /// Let the program create processes (fork, vfork, clone without namespace flags, wait, and
    /// signals to its own processes), up to --pids tasks in all. Without it, creating a process
    /// is a violation.
    #[arg(long = "allow-processes")]
    allow_processes: bool,
    /// What a syscall outside the allowlist does: kill the program (default) or fail with EPERM.
    #[arg(long = "on-violation", value_name = "ACTION", value_parser = ["kill", "deny"])]
    on_violation: Option<String>,
    /// The program and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, value_name = "PROGRAM")]
    command: Vec<OsString>,
}

/// `64MiB` → bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("expected a size such as 64MiB, found {text:?}"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        other => return Err(format!("unknown unit {other:?}; use B, KiB, MiB or GiB")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text} is too large"))
}

/// Finds `program` as a shell would: a name with a `/` as it is, any other in `PATH`.
fn locate(program: &Path) -> Option<PathBuf> {
    if program.as_os_str().as_encoded_bytes().contains(&b'/') {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// True when the file is an ELF program with an interpreter (`PT_INTERP`): a dynamic program.
fn is_dynamic_elf(bytes: &[u8]) -> bool {
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    // 64-bit little-endian ELF only (the sandbox runs x86_64 programs).
    if bytes.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..usize::from(phnum)).any(|i| {
        usize::try_from(phoff)
            .ok()
            .and_then(|off| off.checked_add(i * usize::from(phentsize)))
            .and_then(u32_at)
            == Some(3)
    })
}

fn say(message: &str) {
    eprintln!("portcullis: {message}");
}

/// Runs the program and returns its end as this command's exit status.
pub fn run(args: &RunArgs) -> Result<Done, CommandError> {
    let (mut profile, _) = resolve_profile(
        args.policy.as_deref(),
        args.profile.as_deref(),
        &args.params,
        "run",
    )?;
    let limits = &mut profile.limits;
    if let Some(memory) = args.memory {
        limits.memory_bytes = memory;
    }
    if let Some(pids) = args.pids {
        limits.processes = pids;
    }
    if let Some(cpu) = args.cpu_seconds {
        limits.cpu_seconds = cpu;
    }
    if let Some(percent) = args.cpu_percent {
        limits.cpu_percent = percent;
    }
    if let Some(wall) = args.wall_ms {
        limits.wall_ms = wall;
    }
    if args.allow_processes {
        limits.allow_processes = true;
    }
    if let Some(action) = &args.on_violation {
        limits.on_violation = if action == "deny" {
            OnViolation::Deny
        } else {
            OnViolation::Kill
        };
    }
    let done = |status: u8| {
        Ok(Done {
            stdout: String::new(),
            status,
        })
    };
    let Some((program, program_args)) = args.command.split_first() else {
        return done(status::USAGE);
    };
    let Some(path) = locate(Path::new(program)) else {
        say(&format!("{}: program not found", program.to_string_lossy()));
        return done(NOT_FOUND);
    };
    match std::fs::read(&path) {
        Ok(bytes) if is_dynamic_elf(&bytes) => {
            say(&format!(
                "{}: a dynamic program (it needs its interpreter and libraries, and the sandbox's \
                 root is empty); only static programs can run for now",
                path.display()
            ));
            return done(CANNOT_RUN);
        }
        Ok(_) => {}
        Err(e) => {
            say(&format!("{}: {e}", path.display()));
            return done(CANNOT_RUN);
        }
    }
    let broker = match Broker::start(
        Entries::new(),
        BrokerConfig {
            prefork: 0,
            cgroups: if args.no_cgroup {
                portcullis::broker::CgroupSetting::Off
            } else {
                portcullis::broker::CgroupSetting::Auto
            },
            ..BrokerConfig::default()
        },
    ) {
        Ok(broker) => broker,
        Err(e) => {
            say(&format!(
                "cannot start the sandbox: {}; run `portcullis doctor`",
                crate::text::error_chain(&e)
            ));
            return done(CANNOT_RUN);
        }
    };
    let mut argv = vec![program.clone()];
    argv.extend(program_args.iter().cloned());
    let env: Vec<OsString> = args
        .env
        .iter()
        .map(|(k, v)| OsString::from(format!("{k}={v}")))
        .collect();
    let options = SpawnOptions {
        profile: Some(profile),
        ..SpawnOptions::default()
    };
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let stdio = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    let child = match broker.spawn_program(&path, &argv, &env, stdio, &options) {
        Ok(child) => child,
        Err(e) => {
            say(&format!(
                "cannot run {}: {}",
                path.display(),
                crate::text::error_chain(&e)
            ));
            return done(CANNOT_RUN);
        }
    };
    let signalled = |signal: i32| u8::try_from(128 + signal).unwrap_or(CANNOT_RUN);
    let status = match child.wait() {
        ChildEnd::Exited { code } => u8::try_from(code).unwrap_or(CANNOT_RUN),
        ChildEnd::Crashed { signal, .. } => signalled(signal),
        ChildEnd::SeccompViolation { violation } => {
            let name = violation.as_ref().map_or("unknown", |v| v.syscall.as_str());
            say(&format!("killed: seccomp violation: {name}"));
            signalled(libc::SIGSYS)
        }
        ChildEnd::OutOfMemory => {
            say("killed: out of memory (its memory limit)");
            signalled(libc::SIGKILL)
        }
        ChildEnd::CpuLimit { used_ms } => {
            say(&format!("killed: CPU limit ({used_ms} ms used)"));
            signalled(libc::SIGKILL)
        }
        ChildEnd::WallTimeout => {
            say("killed: wall-clock limit");
            signalled(libc::SIGKILL)
        }
        ChildEnd::ProcessLimit => {
            say("ended after hitting its process limit (--pids)");
            CANNOT_RUN
        }
        other => {
            say(&format!("ended: {other:?}"));
            CANNOT_RUN
        }
    };
    let (violations, seen) = child.violations();
    if seen > 0 && args.on_violation.as_deref() == Some("deny") {
        let names: Vec<&str> = violations.iter().map(|v| v.syscall.as_str()).collect();
        say(&format!(
            "{seen} syscalls denied with EPERM: {}",
            names.join(", ")
        ));
    }
    done(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 PB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn elf_interpreter_is_found_or_not() {
        assert!(!is_dynamic_elf(b"#!/bin/sh\n"));
        assert!(!is_dynamic_elf(&[0x7f, b'E', b'L', b'F', 2, 1]));
        if let Ok(ls) = std::fs::read("/bin/ls") {
            assert!(is_dynamic_elf(&ls), "/bin/ls is dynamic on Debian");
        }
    }
}
