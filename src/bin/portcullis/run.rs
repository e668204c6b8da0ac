//! `portcullis run [OPTIONS] -- PROGRAM [ARGS...]`: runs a program in a Portcullis sandbox
//! (exec mode): a broker starts, a fully locked-down child executes the program from an fd the
//! broker opened, and the program's end becomes this command's exit status.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis::broker::elf::{self, LibrarySearch};
use portcullis::broker::mounts::{self, MountPlan};
use portcullis::broker::{LandlockRequirement, LandlockStatus, LockdownStep, ProgramRoot};
use portcullis::policy::{HostPattern, NetGrant, Scheme};
use portcullis::{
    Broker, BrokerConfig, Child, ChildEnd, Entries, OnViolation, SpawnError, SpawnOptions,
};

use crate::explain::{parse_param, resolve_profile};
use crate::serve::{self, RunRequest};
use crate::{status, CommandError, Done};

/// Exit status when the sandbox could not start the program (as a shell's 126/127).
pub const CANNOT_RUN: u8 = 126;
const NOT_FOUND: u8 = 127;

/// Run PROGRAM in a Portcullis sandbox.
///
/// The program runs fully locked down: empty user, pid, net, mount, ipc, uts and cgroup
/// namespaces, an empty read-only root (nothing of the host's files), every capability
/// dropped, no_new_privs, a seccomp allowlist (a syscall outside it kills the program and is
/// reported by name, or fails with EPERM with --on-violation deny), its own cgroup and
/// rlimits, and it dies with this command. It is executed from a file descriptor this command
/// opened, so a static program needs nothing mounted.
///
/// A dynamic program gets a read-only minimal root instead: a fresh tmpfs holding only its
/// interpreter and the libraries it names (found from its ELF headers, --auto-root), the
/// program itself, and the paths given with --ro, --rw and the profile's mounts, each a bind
/// mount (read-only unless --rw, always nosuid and nodev). A Landlock ruleset then limits file
/// access to exactly those paths; on a kernel without Landlock the run refuses to start unless
/// --allow-no-landlock says to rely on the mounts alone.
///
/// Its stdin, stdout and stderr are this command's; no other file descriptor reaches it. Its
/// environment is empty unless given with --env. Limits come from the profile (the default
/// profile without --policy), then from the limit options.
///
/// When a `portcullis serve` of this user listens (at --server, $PORTCULLIS_SERVER or the
/// default socket), the run is sent to it instead of starting a broker here: the same sandbox,
/// planned here (the program opened with this user's rights, its root, limits and connections),
/// started sooner (a static program with default limits in a child the server locked down
/// ahead). --no-server, or --no-cgroup, starts a broker of this run's own.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Examples:
  portcullis run -- ./static-tool --flag
  portcullis run --memory 64MiB --pids 8 --wall-ms 5000 -- ./static-tool
  portcullis run --policy plugins.toml --profile plugin -- ./plugin
  portcullis run --on-violation deny --env LANG=C -- ./probe
  portcullis run -- /bin/echo hello
  portcullis run --ro /usr/share/zoneinfo --rw /tmp/out -v -- /usr/bin/date

Exit status:
  the program's own exit status, or 128 + the signal that ended it (a seccomp violation
  ends it with 159, 128 + SIGSYS; the out-of-memory killer, a CPU or wall limit, with 137)
  126  the program could not be run (a library not found, a mount refused, no Landlock,
       a sandbox start failure)
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
    /// Show PATH (a file or directory of the host) read-only in the program's root, at the same
    /// path; repeat for each. Symlinks are followed: the real file is shown at PATH.
    #[arg(long = "ro", value_name = "PATH")]
    ro: Vec<PathBuf>,
    /// Show PATH read-write in the program's root (writes reach the host; the program runs as an
    /// unprivileged host id, so the host's permissions must allow them); repeat for each.
    #[arg(long = "rw", value_name = "PATH")]
    rw: Vec<PathBuf>,
    /// Mount the program's interpreter and the libraries it names (read from its ELF headers,
    /// recursively) read-only in its root. The default for a dynamic program.
    #[arg(long = "auto-root", overrides_with = "no_auto_root")]
    auto_root: bool,
    /// Mount no interpreter or library automatically: a dynamic program then needs them given
    /// with --ro.
    #[arg(long = "no-auto-root", overrides_with = "auto_root")]
    no_auto_root: bool,
    /// Run a program whose root holds mounts even when this kernel offers no Landlock (the
    /// read-only mounts alone then confine it). Without this flag such a run refuses to start.
    #[arg(long = "allow-no-landlock")]
    allow_no_landlock: bool,
    /// Connect to HOST:PORT (TCP) before the program starts and give it the connection as fd 3
    /// (the next --connect as fd 4, and so on, at most 4); PORTCULLIS_CONNECT_FDS in its
    /// environment lists them ("3=HOST:PORT,4=..."). This command resolves the name, checks
    /// every address and connects, as a broker does for a child: a name must resolve to public
    /// addresses (name a loopback or private address as an IP literal to grant exactly it). The
    /// program gets no network otherwise: no socket it makes can leave its empty network
    /// namespace.
    #[arg(long = "connect", value_name = "HOST:PORT", value_parser = parse_destination)]
    connect: Vec<(String, u16)>,
    /// Say on stderr what the program's root holds and how Landlock was applied.
    #[arg(long, short = 'v')]
    verbose: bool,
    /// The `portcullis serve` socket to run the program through (an error if no server of this
    /// user listens there). Default: the server's default socket ($PORTCULLIS_SERVER, else
    /// $XDG_RUNTIME_DIR/portcullis/run.sock, else /tmp/portcullis-UID/run.sock), used when a
    /// server of this user listens there; otherwise the run starts a broker of its own.
    #[arg(long, value_name = "PATH", conflicts_with = "no_server")]
    server: Option<PathBuf>,
    /// Start a broker of this run's own even when a server listens (--no-cgroup implies it).
    #[arg(long = "no-server")]
    no_server: bool,
    /// What a syscall outside the allowlist does: kill the program (default) or fail with EPERM.
    #[arg(long = "on-violation", value_name = "ACTION", value_parser = ["kill", "deny"])]
    on_violation: Option<String>,
    /// The program and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, value_name = "PROGRAM")]
    command: Vec<OsString>,
}

/// `example.com:443`, `127.0.0.1:8080`, `[::1]:8080` → host and port.
fn parse_destination(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("expected HOST:PORT, found {text:?}"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("expected a port from 1 to 65535 in {text:?}"))?;
    if host.is_empty() {
        return Err(format!("expected HOST:PORT, found {text:?}"));
    }
    Ok((host.to_owned(), port))
}

/// A TCP grant of exactly `host:port`: an IP literal grants that address (loopback and private
/// ones too: they were named); a name grants what it resolves to, public addresses only.
fn connect_grant(host: &str, port: u16) -> NetGrant {
    let host = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => HostPattern::Ip(ip.to_canonical()),
        Err(_) => HostPattern::Exact(host.to_ascii_lowercase()),
    };
    NetGrant {
        scheme: Scheme::Tcp,
        host,
        ports: vec![port],
        allow_private: false,
    }
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

fn say(message: &str) {
    eprintln!("portcullis: {message}");
}

/// An attempt to reach the server a run is for: the connection (or what to do instead) and what
/// the attempt had to say, printed once the run is planned, as if the attempt were made then.
pub struct ServerAttempt {
    socket: PathBuf,
    explicit: bool,
    said: Vec<String>,
    result: Result<serve::Server, serve::Remote>,
}

impl ServerAttempt {
    fn make(socket: PathBuf, explicit: bool) -> ServerAttempt {
        let mut said = Vec::new();
        let result = serve::connect_to(&socket, explicit, &mut |line| said.push(line.to_owned()));
        ServerAttempt {
            socket,
            explicit,
            said,
            result,
        }
    }
}

/// The connection to the default server that a `portcullis run` command line will most likely
/// want, made before the command line is parsed: the server checks the client as soon as it
/// accepts (~0.15 ms of `/proc` reads, on another CPU), so connecting first lets that check run
/// while this process parses its arguments and plans the run, instead of after.
///
/// Only a guess from the raw arguments: `run` is the subcommand and nothing before `--` names a
/// server or asks for none (`--server`, `--no-server`, `--no-cgroup`), asks for help, or asks
/// for `--connect` destinations (connected while the run is planned, which may take seconds of
/// the server's patience). [`run`] uses it only if the parsed arguments want that very server,
/// and otherwise drops it unused (the server sees a client that went before asking).
pub fn connect_early(argv: &[OsString]) -> Option<ServerAttempt> {
    let (subcommand, rest) = argv.get(1..)?.split_first()?;
    if subcommand != "run" {
        return None;
    }
    let deciding = |arg: &&OsString| {
        let arg = arg.as_encoded_bytes();
        [
            &b"--server"[..],
            b"--no-server",
            b"--no-cgroup",
            b"--connect",
            b"--help",
            b"-h",
            b"--version",
            b"-V",
        ]
        .iter()
        .any(|flag| arg.starts_with(flag))
    };
    if rest
        .iter()
        .take_while(|arg| *arg != "--")
        .any(|arg| deciding(&arg))
    {
        return None;
    }
    Some(ServerAttempt::make(serve::default_socket(), false))
}

/// Runs the program and returns its end as this command's exit status. `early`: the
/// connection [`connect_early`] made, if any.
pub fn run(args: &RunArgs, early: Option<ServerAttempt>) -> Result<Done, CommandError> {
    // A server runs it when one listens for this user (the same sandbox, without a broker's
    // start), unless the run needs what only a broker of its own gives (no cgroup). The early
    // connection is that server's if the guess was right; otherwise it is closed here, unused,
    // and the server is connected to once the run is planned.
    let server = (!args.no_server && !args.no_cgroup).then(|| match &args.server {
        Some(path) => (path.clone(), true),
        None => (serve::default_socket(), false),
    });
    let mut early = early.filter(|early| {
        server.as_ref().is_some_and(|(socket, explicit)| {
            early.socket == *socket && early.explicit == *explicit
        })
    });
    let (mut profile, profile_mounts, _) = resolve_profile(
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
    if let Err(message) = profile.limits.check() {
        say(&format!("bad limit: {message}"));
        return done(status::USAGE);
    }
    let Some((program, program_args)) = args.command.split_first() else {
        return done(status::USAGE);
    };
    let Some(path) = locate(Path::new(program)) else {
        say(&format!("{}: program not found", program.to_string_lossy()));
        return done(NOT_FOUND);
    };
    if args.connect.len() > portcullis::MAX_EXTRA_FDS {
        say(&format!(
            "at most {} --connect destinations",
            portcullis::MAX_EXTRA_FDS
        ));
        return done(status::USAGE);
    }
    // Opened once, here, with this user's rights, whoever runs it: whether it is a script or a
    // dynamic program is read from this very file, the one executed (a server gets this fd),
    // not from whatever the path names a moment later.
    let file = match open_program(&path) {
        Ok(file) => file,
        Err(message) => {
            say(&message);
            return done(CANNOT_RUN);
        }
    };
    // Each destination is a grant of the program's profile, connected now (the program cannot
    // ask: it has no channel to a broker) and passed to it.
    let mut connections = Vec::with_capacity(args.connect.len());
    for (host, port) in &args.connect {
        profile.net.push(connect_grant(host, *port));
        match portcullis::broker::connect_for(&profile, host, *port) {
            Ok(stream) => connections.push(stream),
            Err(refused) => {
                let hint = match refused {
                    portcullis::broker::ConnectRefused::Denied(
                        portcullis::ipc::service::Denied::PrivateAddress,
                    ) => {
                        " (the name resolves to a loopback or private address: give the address \
                         itself to grant exactly it)"
                    }
                    _ => "",
                };
                say(&format!("cannot connect to {host}:{port}: {refused}{hint}"));
                return done(CANNOT_RUN);
            }
        }
    }
    let grants: Vec<(PathBuf, bool)> = profile_mounts
        .iter()
        .map(|m| (PathBuf::from(&m.path), m.writable))
        .chain(args.ro.iter().map(|p| (absolute(p), false)))
        .chain(args.rw.iter().map(|p| (absolute(p), true)))
        .collect();
    let program_root = match plan_root((&path, &file), &grants, args) {
        Ok(root) => root,
        Err(message) => {
            say(&message);
            return done(CANNOT_RUN);
        }
    };
    if args.verbose {
        match &program_root {
            None => say("root: empty (nothing mounted; a static program needs nothing)"),
            Some(root) => {
                say(&format!(
                    "root: a read-only tmpfs with {} mounts",
                    root.binds.len()
                ));
                for line in mounts::describe(root) {
                    say(&format!("  {line}"));
                }
            }
        }
    }
    let mut argv = vec![program.clone()];
    argv.extend(program_args.iter().cloned());
    let mut env: Vec<OsString> = args
        .env
        .iter()
        .map(|(k, v)| OsString::from(format!("{k}={v}")))
        .collect();
    if !args.connect.is_empty() {
        let list: Vec<String> = (3..)
            .zip(&args.connect)
            .map(|(fd, (host, port))| format!("{fd}={host}:{port}"))
            .collect();
        env.push(OsString::from(format!(
            "PORTCULLIS_CONNECT_FDS={}",
            list.join(",")
        )));
    }
    let request = RunRequest {
        protocol: serve::PROTOCOL,
        name: path.to_string_lossy().into_owned(),
        argv: serve::to_bytes(&argv),
        env: serve::to_bytes(&env),
        limits: profile.limits,
        program_root,
        extra_fds: u32::try_from(connections.len()).unwrap_or(u32::MAX),
        verbose: args.verbose,
    };
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let stdio = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    let extra: Vec<std::os::fd::BorrowedFd<'_>> = connections.iter().map(AsFd::as_fd).collect();
    let attempt = server.map(|(socket, explicit)| {
        early
            .take()
            .unwrap_or_else(|| ServerAttempt::make(socket, explicit))
    });
    let remote = match attempt {
        Some(attempt) => {
            for line in &attempt.said {
                say(line);
            }
            match attempt.result {
                Ok(server) => {
                    let mut fds = vec![file.as_fd()];
                    fds.extend_from_slice(&stdio);
                    fds.extend_from_slice(&extra);
                    serve::run_remote(server, &request, &fds, &mut |line| say(line))
                }
                Err(remote) => remote,
            }
        }
        None => serve::Remote::Absent,
    };
    if let serve::Remote::Ran(status) = remote {
        return done(status);
    }
    let broker = match Broker::start(
        Entries::new(),
        BrokerConfig {
            prefork: 0,
            // The program has no channel to the broker (it asks for no files or network through
            // it), so the fewest network workers: each is a thread started per run.
            network_workers: 1,
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
    let mut print = |line: String| say(&line);
    let (status, _child) = execute(
        &broker,
        Launch {
            request: &request,
            program: file,
            stdio,
            extra: &extra,
            client_gone: None,
        },
        &mut print,
    );
    done(status)
}

/// One run to start: the request and the fds that came with it.
pub struct Launch<'a> {
    /// What to run, and how.
    pub request: &'a RunRequest,
    /// The program, opened by whoever asked (its own rights).
    pub program: std::fs::File,
    /// The program's stdin, stdout and stderr.
    pub stdio: [std::os::fd::BorrowedFd<'a>; 3],
    /// Its fds 3, 4, ... (connections).
    pub extra: &'a [std::os::fd::BorrowedFd<'a>],
    /// For a served run: true once the client is gone, when the program is killed.
    pub client_gone: Option<&'a dyn Fn() -> bool>,
}

/// Runs one planned request on `broker` and returns the run's exit status, with the ended
/// child's handle (dropping it joins the child's supervision thread: a server first answers its
/// client); every line for the user goes to `say`. The one code path of a standalone run and a
/// served one.
pub fn execute(
    broker: &Broker,
    launch: Launch<'_>,
    say: &mut dyn FnMut(String),
) -> (u8, Option<Child<(), ()>>) {
    use std::os::unix::ffi::OsStringExt;
    let Launch {
        request,
        program,
        stdio,
        extra,
        client_gone,
    } = launch;
    let strings = |list: &[Vec<u8>]| -> Vec<OsString> {
        list.iter().map(|b| OsString::from_vec(b.clone())).collect()
    };
    let (argv, env) = (strings(&request.argv), strings(&request.env));
    let options = SpawnOptions {
        profile: Some(portcullis::policy::Profile {
            limits: request.limits,
            ..portcullis::policy::Profile::default()
        }),
        program_root: request.program_root.clone(),
        ..SpawnOptions::default()
    };
    let name = &request.name;
    let child =
        match broker.spawn_program_file(program, name, (&argv, &env), stdio, extra, &options) {
            Ok(child) => child,
            Err(SpawnError::Lockdown(e))
                if e.step == LockdownStep::Landlock && e.errno == libc::EOPNOTSUPP =>
            {
                say(format!(
                    "cannot run {name}: this kernel offers no Landlock, the second layer that \
                     limits the program to the paths mounted for it; run `portcullis doctor` for \
                     the fix, or pass --allow-no-landlock to rely on the read-only mounts alone"
                ));
                return (CANNOT_RUN, None);
            }
            Err(SpawnError::Lockdown(e))
                if e.step == LockdownStep::CloneProgramPaths && e.errno == libc::EACCES =>
            {
                say(format!(
                    "cannot run {name}: the sandbox cannot reach a path it should mount: it runs \
                     as an unprivileged host id, so every directory on the way to the program, \
                     its libraries and each --ro/--rw path must be searchable by others (o+x); a \
                     path under a private home such as /root is not"
                ));
                return (CANNOT_RUN, None);
            }
            Err(e) => {
                say(format!(
                    "cannot run {name}: {}",
                    crate::text::error_chain(&e)
                ));
                return (CANNOT_RUN, None);
            }
        };
    match child.landlock() {
        // Never silent: the user allowed it, and is told it happened.
        Some(LandlockStatus::NotEnforced) => say(
            "warning: Landlock is not enforced (this kernel has none); the program is confined \
             by its read-only mounts alone (--allow-no-landlock)"
                .to_owned(),
        ),
        Some(status) if request.verbose => say(format!("landlock: {status}")),
        None if request.verbose => say("landlock: not needed (nothing is mounted)".to_owned()),
        _ => {}
    }
    let end = match client_gone {
        None => child.wait(),
        // A served run: the program must not outlive the `run` that asked for it.
        Some(gone) => loop {
            if let Some(end) = child.wait_timeout(CLIENT_CHECK) {
                break end;
            }
            if gone() {
                child.kill();
                break child.wait();
            }
        },
    };
    let signalled = |signal: i32| u8::try_from(128 + signal).unwrap_or(CANNOT_RUN);
    let status = match end {
        ChildEnd::Exited { code } => u8::try_from(code).unwrap_or(CANNOT_RUN),
        ChildEnd::Crashed { signal, .. } => signalled(signal),
        ChildEnd::SeccompViolation { violation } => {
            let name = violation.as_ref().map_or("unknown", |v| v.syscall.as_str());
            say(format!("killed: seccomp violation: {name}"));
            signalled(libc::SIGSYS)
        }
        ChildEnd::OutOfMemory => {
            say("killed: out of memory (its memory limit)".to_owned());
            signalled(libc::SIGKILL)
        }
        ChildEnd::CpuLimit { used_ms } => {
            say(format!("killed: CPU limit ({used_ms} ms used)"));
            signalled(libc::SIGKILL)
        }
        ChildEnd::WallTimeout => {
            say("killed: wall-clock limit".to_owned());
            signalled(libc::SIGKILL)
        }
        ChildEnd::ProcessLimit => {
            say("ended after hitting its process limit (--pids)".to_owned());
            CANNOT_RUN
        }
        other => {
            say(format!("ended: {other:?}"));
            CANNOT_RUN
        }
    };
    let (violations, seen) = child.violations();
    if seen > 0 && request.limits.on_violation == OnViolation::Deny {
        let names: Vec<&str> = violations.iter().map(|v| v.syscall.as_str()).collect();
        say(format!(
            "{seen} syscalls denied with EPERM: {}",
            names.join(", ")
        ));
    }
    (status, Some(child))
}

/// How often a served run's wait looks whether its client is still there.
const CLIENT_CHECK: Duration = Duration::from_millis(100);

/// `path` made absolute against the working directory (lexically; the plan resolves symlinks).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|dir| dir.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Opens the program to run: a regular file only (a FIFO or a device would block or act when
/// opened, and cannot be executed anyway). `O_NONBLOCK` so that the open itself never waits;
/// executing the fd ignores its flags. Errors are one line for the user.
fn open_program(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok(file),
        Ok(_) => Err(format!("cannot run {}: not a regular file", path.display())),
        Err(e) => Err(format!("cannot run {}: {e}", path.display())),
    }
}

/// The program's root: `None` (the empty root) for a static program with no mounts; otherwise
/// the granted paths, the program, and, with the automatic root, its interpreter and libraries.
/// Errors are one line for the user.
fn plan_root(
    (program, file): (&Path, &std::fs::File),
    grants: &[(PathBuf, bool)],
    args: &RunArgs,
) -> Result<Option<ProgramRoot>, String> {
    // A script would need its interpreter opened by path and itself named as /dev/fd/N, which
    // an fd-executed program in a root without /dev cannot have: say what works instead.
    let mut head = [0u8; 2];
    let is_script =
        std::os::unix::fs::FileExt::read_exact_at(file, &mut head, 0).is_ok() && head == *b"#!";
    if is_script {
        return Err(format!(
            "{0}: a script; run its interpreter with the script mounted instead, e.g. \
             portcullis run --ro {0} -- /bin/sh {0}",
            program.display()
        ));
    }
    // Not an ELF file: executed as it is, needing whatever is granted.
    let dynamic = elf::read_interpreter_of(program, file).is_ok_and(|interp| interp.is_some());
    let auto_root = if args.no_auto_root {
        false
    } else {
        args.auto_root || dynamic
    };
    if grants.is_empty() && !(dynamic && auto_root) {
        if dynamic {
            return Err(format!(
                "{}: a dynamic program needs its interpreter and libraries, and --no-auto-root \
                 mounts none; drop --no-auto-root, or give them with --ro",
                program.display()
            ));
        }
        return Ok(None);
    }
    let mut plan = MountPlan::new();
    for (path, writable) in grants {
        plan.grant(path, *writable)
            .map_err(|e| format!("cannot mount {}", crate::text::error_chain(&e)))?;
    }
    plan.add_program(program, auto_root, &LibrarySearch::host(Path::new("/")))
        .map_err(|e| {
            format!(
                "{}: cannot build its root: {}",
                program.display(),
                crate::text::error_chain(&e)
            )
        })?;
    let landlock = if args.allow_no_landlock {
        LandlockRequirement::BestEffort
    } else {
        LandlockRequirement::Required
    };
    plan.into_root(landlock)
        .map(Some)
        .map_err(|e| format!("cannot mount {}", crate::text::error_chain(&e)))
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
}
