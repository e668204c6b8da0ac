//! The probe broker: `probe <scenario>` starts a Portcullis broker, runs one scenario against
//! real sandboxed children and exits 0 (pass), 1 (fail, with the reason) or 77 (this host cannot
//! run it, with the reason).

use std::io::Write;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use portcullis::{
    Broker, BrokerConfig, ChildContext, ChildEnd, ChildError, Entries, LockdownStep, OnViolation,
    Rlimit, RlimitResource, SpawnError, SpawnOptions,
};
use portcullis_tests::EXIT_SKIP;

mod audit;
mod exec;
mod files;
mod hostile;
mod limits;
mod memfd;
mod net;
mod supervision;
mod threats;
use serde::{Deserialize, Serialize};

/// Broker → child.
#[derive(Debug, Serialize, Deserialize)]
enum Down {
    Echo(Vec<u8>),
    /// Read everything from the fd attached to this message.
    ReadPassedFd,
    Quit,
}

/// Child → broker.
#[derive(Debug, Serialize, Deserialize)]
enum Up {
    Echo(Vec<u8>),
    /// The probe returned: `Ok(detail)` or `Err(errno)`.
    Outcome(Result<String, i32>),
}

/// What a probe child tries once locked down.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
enum Probe {
    ReadEtcPasswd,
    ListRoot,
    CreateFile,
    SocketInet,
    SocketNetlink,
    KillBroker,
    SignalZygote,
    PtraceBroker,
    PtraceZygote,
    SetPriorityOfBroker,
    SetHostname,
    Mount,
    UnshareUser,
    Clone3NewNamespaces,
    IoUringSetup,
    Bpf,
    Keyctl,
    Fork,
    X32Syscall,
    IoctlTiocsti,
    Execve,
    // --- must work ---
    OwnPid,
    Allocate64MiB,
    SpawnAndJoinThread,
    RaiseOwnThreadSignal,
    Sleep,
    AvailableParallelism,
    IsTerminal,
    Panic,
    /// Send two messages, then panic (the broker must keep both and the panic message).
    TwoMessagesThenPanic,
    /// Send half a message carrying a duplicate of our own channel end, then exit.
    HoldOwnChannelOpen,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct ProbeArgs {
    probe: Probe,
    broker_pid: i32,
    zygote_pid: i32,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Turns a raw syscall return into the probe outcome.
fn outcome(ret: libc::c_long) -> Result<String, i32> {
    if ret < 0 {
        Err(errno())
    } else {
        Ok(format!("returned {ret}"))
    }
}

/// The probe entry: try one thing, report what happened, exit 0.
fn probe_child(ctx: ChildContext<Up, Down>, args: ProbeArgs) -> i32 {
    match args.probe {
        Probe::TwoMessagesThenPanic => {
            let _ = ctx.send(&Up::Echo(vec![1]));
            let _ = ctx.send(&Up::Echo(vec![2]));
            panic!("after two messages");
        }
        Probe::HoldOwnChannelOpen => {
            let channel = ctx.raw_channel();
            if let Ok(own) = channel.as_fd().try_clone_to_owned() {
                let _ = channel.send_raw_datagram(&[0x01, 3, 0], &[own.as_fd()]);
            }
            return 0;
        }
        _ => {}
    }
    let result = run_probe(args);
    match ctx.send(&Up::Outcome(result)) {
        Ok(()) => 0,
        Err(_) => 3,
    }
}

fn run_probe(args: ProbeArgs) -> Result<String, i32> {
    let io = |r: std::io::Result<String>| r.map_err(|e| e.raw_os_error().unwrap_or(-1));
    // SAFETY: every raw syscall below is a probe whose pointer arguments are null or point at
    // live locals; the seccomp filter is expected to kill the child or the kernel to refuse, and
    // nothing of ours relies on the call's effect.
    unsafe {
        match args.probe {
            Probe::ReadEtcPasswd => io(std::fs::read_to_string("/etc/passwd")),
            Probe::ListRoot => io(std::fs::read_dir("/").map(|d| format!("{} entries", d.count()))),
            Probe::CreateFile => io(std::fs::File::create("/escape").map(|_| "created".into())),
            Probe::SocketInet => outcome(libc::syscall(
                libc::SYS_socket,
                libc::AF_INET,
                libc::SOCK_STREAM,
                0,
            )),
            Probe::SocketNetlink => outcome(libc::syscall(
                libc::SYS_socket,
                libc::AF_NETLINK,
                libc::SOCK_RAW,
                0,
            )),
            Probe::KillBroker => outcome(libc::syscall(
                libc::SYS_kill,
                args.broker_pid,
                libc::SIGKILL,
            )),
            Probe::SignalZygote => outcome(libc::syscall(
                libc::SYS_tgkill,
                args.zygote_pid,
                args.zygote_pid,
                libc::SIGKILL,
            )),
            Probe::PtraceBroker => outcome(libc::syscall(
                libc::SYS_ptrace,
                libc::PTRACE_ATTACH,
                args.broker_pid,
                0,
                0,
            )),
            Probe::PtraceZygote => outcome(libc::syscall(
                libc::SYS_ptrace,
                libc::PTRACE_ATTACH,
                args.zygote_pid,
                0,
                0,
            )),
            Probe::SetPriorityOfBroker => outcome(libc::syscall(
                libc::SYS_setpriority,
                libc::PRIO_PROCESS,
                args.broker_pid,
                19,
            )),
            Probe::SetHostname => {
                outcome(libc::syscall(libc::SYS_sethostname, c"escaped".as_ptr(), 7))
            }
            Probe::Mount => outcome(libc::syscall(
                libc::SYS_mount,
                c"none".as_ptr(),
                c"/".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null::<u8>(),
            )),
            Probe::UnshareUser => outcome(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)),
            Probe::Clone3NewNamespaces => {
                // struct clone_args: flags first; the rest zero. The filter answers ENOSYS
                // before the kernel reads it.
                let mut clone_args = [0u64; 11];
                clone_args[0] =
                    (libc::CLONE_NEWUSER | libc::CLONE_NEWNET | libc::CLONE_NEWPID) as u64;
                outcome(libc::syscall(
                    libc::SYS_clone3,
                    clone_args.as_mut_ptr(),
                    std::mem::size_of_val(&clone_args),
                ))
            }
            Probe::IoUringSetup => {
                let mut params = [0u8; 120];
                outcome(libc::syscall(
                    libc::SYS_io_uring_setup,
                    8,
                    params.as_mut_ptr(),
                ))
            }
            Probe::Bpf => outcome(libc::syscall(libc::SYS_bpf, 0, std::ptr::null::<u8>(), 0)),
            Probe::Keyctl => outcome(libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0)),
            Probe::Fork => {
                let pid = libc::fork();
                if pid == 0 {
                    libc::_exit(0);
                }
                outcome(pid.into())
            }
            Probe::X32Syscall => outcome(libc::syscall(0x4000_0000 | libc::SYS_getpid)),
            Probe::IoctlTiocsti => {
                let c = b'x';
                outcome(libc::syscall(
                    libc::SYS_ioctl,
                    0,
                    libc::TIOCSTI,
                    &c as *const u8,
                ))
            }
            Probe::Execve => outcome(libc::syscall(
                libc::SYS_execve,
                c"/bin/true".as_ptr(),
                std::ptr::null::<u8>(),
                std::ptr::null::<u8>(),
            )),
            Probe::OwnPid => Ok(format!("{}", libc::getpid())),
            Probe::Allocate64MiB => {
                let mut v = vec![0u8; 64 << 20];
                for i in (0..v.len()).step_by(4096) {
                    v[i] = 1;
                }
                Ok(format!(
                    "touched {}",
                    v.iter().step_by(4096).filter(|&&b| b == 1).count()
                ))
            }
            Probe::SpawnAndJoinThread => std::thread::Builder::new()
                .name("worker".into())
                .spawn(|| 6 * 7)
                .map_err(|e| e.raw_os_error().unwrap_or(-1))?
                .join()
                .map(|v| format!("thread returned {v}"))
                .map_err(|_| -1),
            Probe::RaiseOwnThreadSignal => {
                // Signal 0 checks permission without sending: allowed for our own tgid (1).
                outcome(libc::syscall(
                    libc::SYS_tgkill,
                    1,
                    libc::syscall(libc::SYS_gettid),
                    0,
                ))
            }
            Probe::Sleep => {
                std::thread::sleep(Duration::from_millis(5));
                Ok("slept".into())
            }
            Probe::AvailableParallelism => Ok(format!(
                "{:?}",
                std::thread::available_parallelism().map(|n| n.get()).ok()
            )),
            Probe::IsTerminal => {
                use std::io::IsTerminal;
                Ok(format!("{}", std::io::stderr().is_terminal()))
            }
            Probe::Panic => panic!("probe panicked on purpose"),
            Probe::TwoMessagesThenPanic | Probe::HoldOwnChannelOpen => Err(-1),
        }
    }
}

/// Echo entry: answers each Echo with the same bytes until Quit.
fn echo_child(ctx: ChildContext<Up, Down>, _: ()) -> i32 {
    loop {
        match ctx.recv_with_fds() {
            Ok((Down::Echo(bytes), _)) => {
                if ctx.send(&Up::Echo(bytes)).is_err() {
                    return 2;
                }
            }
            Ok((Down::ReadPassedFd, fds)) => {
                let result = match fds.into_iter().next() {
                    Some(fd) => {
                        let mut file = std::fs::File::from(fd);
                        let mut s = String::new();
                        std::io::Read::read_to_string(&mut file, &mut s)
                            .map(|_| s)
                            .map_err(|e| e.raw_os_error().unwrap_or(-1))
                    }
                    None => Err(-1),
                };
                if ctx.send(&Up::Outcome(result)).is_err() {
                    return 2;
                }
            }
            Ok((Down::Quit, _)) => return 0,
            Err(_) => return 1,
        }
    }
}

/// What a hostile child sends.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Attack {
    Garbage,
    TebibyteLength,
    SixtyFourFds,
    DieMidMessage,
}

fn hostile_child(ctx: ChildContext<Up, Down>, attack: Attack) -> i32 {
    let channel = ctx.raw_channel();
    match attack {
        Attack::Garbage => {
            let _ = channel.send_raw_datagram(&[0x00, 0xff, 0xfe, 0x13, 0x37, 0x99], &[]);
        }
        Attack::TebibyteLength => {
            // Header "last datagram", then variant App (3), then Up::Echo (0) with a varint
            // length of 2^40 bytes and no bytes behind it.
            let mut frame = vec![0x00, 3, 0];
            let mut n: u64 = 1 << 40;
            while n >= 0x80 {
                frame.push((n & 0x7f) as u8 | 0x80);
                n >>= 7;
            }
            frame.push(n.to_le_bytes()[0]);
            let _ = channel.send_raw_datagram(&frame, &[]);
        }
        Attack::SixtyFourFds => {
            let mut fds = Vec::new();
            for _ in 0..64 {
                match channel.as_fd().try_clone_to_owned() {
                    Ok(fd) => fds.push(fd),
                    Err(_) => return 4,
                }
            }
            let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
            let _ = channel.send_raw_datagram(&[0x00, 3, 2, 0], &borrowed);
        }
        Attack::DieMidMessage => {
            let _ = channel.send_raw_datagram(&[0x01, 3, 0, 0x80], &[]);
            return 0;
        }
    }
    // Wait for the broker to act on it (it kills us).
    std::thread::sleep(Duration::from_secs(30));
    5
}

pub(crate) fn entries() -> Entries {
    Entries::new()
        .register("probe", probe_child)
        .register("echo", echo_child)
        .register("hostile", hostile_child)
        .register("files", files::files_child)
        .register("net", net::net_child)
        .register("fetch", net::fetch_child)
        .register("offender", limits::offender)
        .register("memfd", memfd::memfd_child)
        .register("hostile-suite", hostile::hostile_child)
        .register("threats", threats::threats_child)
}

type Verdict = Result<(), String>;

/// A verdict's error starting with this is a skip (this host cannot run the scenario), not a
/// failure; the harness fails it anyway under `PORTCULLIS_TESTS_REQUIRED=1`.
const SKIP_PREFIX: &str = "skip: ";

fn main() -> ExitCode {
    // A helper role of the threats scenarios: a fresh single-threaded process, before any broker.
    if let Some(code) = threats::helper_role() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let audit =
        portcullis::AuditSink::Callback(std::sync::Arc::new(|record: &portcullis::AuditRecord| {
            if let Ok(mut records) = files::AUDIT.lock() {
                records.push(record.clone());
            }
        }));
    let scenario = std::env::args().nth(1).unwrap_or_default();
    let config = BrokerConfig {
        audit,
        // Pre-forked exec-mode children only where a scenario tests them.
        prefork_programs: if scenario == "exec-program-pool" {
            2
        } else {
            0
        },
        ..BrokerConfig::default()
    };
    let broker = match Broker::start(entries(), config) {
        Ok(b) => b,
        Err(e) if e.is_host_restriction() => {
            println!(
                "this host forbids what the sandbox needs: {e}: {:?}",
                std::error::Error::source(&e)
            );
            return ExitCode::from(EXIT_SKIP);
        }
        Err(e) => {
            println!(
                "broker start failed: {e}: {:?}",
                std::error::Error::source(&e)
            );
            return ExitCode::FAILURE;
        }
    };
    let verdict = run_scenario(&broker, &scenario);
    drop(broker);
    match verdict {
        Ok(()) => {
            println!("pass: {scenario}");
            ExitCode::SUCCESS
        }
        Err(reason) if reason.starts_with(SKIP_PREFIX) => {
            println!("skip: {scenario}: {}", &reason[SKIP_PREFIX.len()..]);
            ExitCode::from(EXIT_SKIP)
        }
        Err(reason) => {
            println!("FAIL: {scenario}: {reason}");
            let _ = std::io::stdout().flush();
            ExitCode::FAILURE
        }
    }
}

fn run_scenario(broker: &Broker, scenario: &str) -> Verdict {
    use Probe as P;
    let denied_by_seccomp = |p, name| expect_seccomp_kill(broker, p, name);
    match scenario {
        // --- must fail ---
        "read-etc-passwd" => expect_errno(broker, P::ReadEtcPasswd, libc::EACCES),
        "list-root" => expect_errno(broker, P::ListRoot, libc::EACCES),
        "create-file" => expect_errno(broker, P::CreateFile, libc::EACCES),
        "socket-inet" => denied_by_seccomp(P::SocketInet, "socket"),
        "socket-netlink" => denied_by_seccomp(P::SocketNetlink, "socket"),
        "kill-broker" => denied_by_seccomp(P::KillBroker, "kill"),
        "signal-zygote" => denied_by_seccomp(P::SignalZygote, "tgkill"),
        "ptrace-broker" => denied_by_seccomp(P::PtraceBroker, "ptrace"),
        "ptrace-zygote" => denied_by_seccomp(P::PtraceZygote, "ptrace"),
        "setpriority-broker" => denied_by_seccomp(P::SetPriorityOfBroker, "setpriority"),
        "sethostname" => denied_by_seccomp(P::SetHostname, "sethostname"),
        "mount" => denied_by_seccomp(P::Mount, "mount"),
        "unshare-user" => denied_by_seccomp(P::UnshareUser, "unshare"),
        "clone3-namespaces" => expect_errno(broker, P::Clone3NewNamespaces, libc::ENOSYS),
        "io-uring-setup" => denied_by_seccomp(P::IoUringSetup, "io_uring_setup"),
        "bpf" => denied_by_seccomp(P::Bpf, "bpf"),
        "keyctl" => denied_by_seccomp(P::Keyctl, "keyctl"),
        "fork" => denied_by_seccomp(P::Fork, "clone"),
        "x32-syscall" => denied_by_seccomp(P::X32Syscall, "x32:getpid"),
        "ioctl-tiocsti" => denied_by_seccomp(P::IoctlTiocsti, "ioctl"),
        "execve" => denied_by_seccomp(P::Execve, "execve"),
        "memfd-other-flags" => memfd::other_flags(broker),
        "memfd-create-and-seal" => memfd::create_and_seal(broker),
        // --- must work ---
        "own-pid-is-1" => expect_ok(broker, P::OwnPid, |d| d == "1"),
        "allocate-64mib" => expect_ok(broker, P::Allocate64MiB, |d| d == "touched 16384"),
        "spawn-join-thread" => {
            expect_ok(broker, P::SpawnAndJoinThread, |d| d == "thread returned 42")
        }
        "signal-own-thread" => expect_ok(broker, P::RaiseOwnThreadSignal, |d| d == "returned 0"),
        "sleep" => expect_ok(broker, P::Sleep, |d| d == "slept"),
        "available-parallelism" => {
            expect_ok(broker, P::AvailableParallelism, |d| d.starts_with("Some("))
        }
        "files-traversal" => files::traversal_battery(broker),
        "files-race" => files::symlink_swap_race(broker),
        "files-audit" => files::audit_records(broker),
        "audit-file-sink" => audit::file_sink(broker),
        "audit-stderr-sink" => audit::stderr_sink(broker),
        "files-rate-limit" => files::rate_limit_and_fairness(broker),
        "files-fd-table-full" => files::full_fd_table_open_is_emfile(broker),
        "files-fd-table-recovers" => files::full_fd_table_recovers_after_close(broker),
        "files-read-dir-under-signals" => files::read_dir_under_signals_completes(broker),
        "net-connect" => net::connect_on_loopback(broker),
        "net-fetch" => net::fetch_on_loopback(broker),
        "net-fetch-https" => net::fetch_https_on_loopback(broker),
        "net-slow-fetch" => net::slow_fetch_leaves_file_serving_free(broker),
        "net-queue-full" => net::network_queue_full_is_busy(broker),
        "net-mailbox-busy" => net::mailbox_ring_is_busy_while_a_fetch_holds_the_turn(broker),
        "is-terminal" => expect_ok(broker, P::IsTerminal, |d| d == "false"),
        "messages-kept-across-panic" => messages_kept_across_panic(broker),
        "recv-ends-when-child-holds-its-channel" => recv_ends_when_child_holds_its_channel(broker),
        "wait-from-two-threads" => wait_from_two_threads(broker),
        "panic-is-crash" => panic_is_crash(broker),
        "echo-1-byte" => echo(broker, 1),
        "echo-1-mib" => echo(broker, 1 << 20),
        "read-passed-fd" => read_passed_fd(broker),
        "status-from-outside" => status_from_outside(broker),
        "concurrent-spawns" => concurrent_spawns(broker),
        "unknown-entry" => unknown_entry(broker),
        "lockdown-failure-is-typed" => lockdown_failure_is_typed(broker),
        "hostile-garbage" => hostile(broker, Attack::Garbage),
        "hostile-tebibyte-length" => hostile(broker, Attack::TebibyteLength),
        "hostile-64-fds" => hostile(broker, Attack::SixtyFourFds),
        "hostile-die-mid-message" => hostile(broker, Attack::DieMidMessage),
        "kill-and-wait" => kill_and_wait(broker),
        "hold-children" => supervision::hold_children(broker),
        "broker-death" => supervision::broker_death(broker),
        "leak-cycles" => supervision::leak_cycles(broker),
        "scale-1000" => supervision::scale(broker),
        "limit-cpu" => limits::cpu_limit(broker),
        "exec-static" => exec::runs_static_program(broker),
        "exec-stdin" => exec::stdin_passes_through(broker),
        "exec-env-fds" => exec::environment_and_fds_are_only_what_was_given(broker),
        "exec-no-host-files" => exec::cannot_read_host_files(broker),
        "exec-socket-violation" => exec::socket_is_a_named_violation(broker),
        "exec-must-fail-deny" => exec::must_fail_list_deny_mode(broker),
        "exec-must-fail-kill" => exec::must_fail_list_kill_mode(broker),
        "exec-no-terminal-injection" => exec::terminal_input_cannot_be_injected(broker),
        "exec-processes-pair" => exec::processes_only_when_allowed(broker),
        "exec-fork-bomb" => exec::fork_bomb_is_capped_by_the_pids_limit(broker),
        "exec-memory-bomb" => exec::memory_bomb_is_capped_by_the_memory_limit(broker),
        "exec-directory-stdio" => exec::directory_stdio_is_refused(broker),
        "exec-program-pool" => exec::program_pool(broker),
        root if exec::handles_root(root) => exec::run_root(broker, root),
        "limit-wall" => limits::wall_timeout(broker),
        "limit-memory" => limits::memory_bomb(broker),
        "limit-threads" => limits::thread_bomb(broker),
        "violation-kill" => limits::violation_kill(broker),
        "violation-deny" => limits::violation_deny(broker),
        "violation-gagged" => limits::violation_reported_without_the_childs_help(broker),
        "no-violation-when-allowed" => limits::no_violation_when_allowed(broker),
        hostile_suite if hostile::handles(hostile_suite) => hostile::run(broker, hostile_suite),
        "threat-chroot-escape" => threats::chroot_escape_scenario(),
        "threat-portcullis-root" => threats::portcullis_root_scenario(broker),
        "threat-ld-preload-works" => threats::ld_preload_works_scenario(),
        "threat-ld-preload-bypassed" => threats::ld_preload_bypassed_scenario(),
        "threat-seccomp-raw" => threats::seccomp_raw_scenario(broker),
        other => Err(format!("unknown scenario {other:?}")),
    }
}

fn probe_args(broker: &Broker, probe: Probe) -> ProbeArgs {
    ProbeArgs {
        probe,
        broker_pid: i32::try_from(std::process::id()).unwrap_or(-1),
        zygote_pid: i32::try_from(broker.zygote_pid()).unwrap_or(-1),
    }
}

/// Runs a probe child; returns what it reported (if anything) and how it ended.
fn run_probe_child(
    broker: &Broker,
    probe: Probe,
) -> Result<(Option<Result<String, i32>>, ChildEnd), String> {
    let child = broker
        .spawn::<Down, Up, _>("probe", &probe_args(broker, probe))
        .map_err(|e| format!("spawn: {e}: {:?}", std::error::Error::source(&e)))?;
    let reported = match child.recv_timeout(Duration::from_secs(20)) {
        Ok(Up::Outcome(r)) => Some(r),
        Ok(other) => return Err(format!("unexpected message {other:?}")),
        Err(ChildError::Closed) => None,
        Err(e) => return Err(format!("recv: {e}")),
    };
    let end = child
        .wait_timeout(Duration::from_secs(20))
        .ok_or("child did not end")?;
    Ok((reported, end))
}

/// The child must be killed before the syscall runs, and the broker must have the kernel's
/// report naming `syscall`.
fn expect_seccomp_kill(broker: &Broker, probe: Probe, syscall: &str) -> Verdict {
    match run_probe_child(broker, probe)? {
        (None, ChildEnd::SeccompViolation { violation: Some(v) })
            if v.syscall == syscall && v.mode == OnViolation::Kill =>
        {
            println!("  reported: {v}");
            Ok(())
        }
        other => Err(format!(
            "expected a seccomp kill reported as {syscall}, got {other:?}"
        )),
    }
}

fn expect_errno(broker: &Broker, probe: Probe, want: i32) -> Verdict {
    match run_probe_child(broker, probe)? {
        (Some(Err(errno)), ChildEnd::Exited { code: 0 }) if errno == want => Ok(()),
        other => Err(format!("expected errno {want}, got {other:?}")),
    }
}

fn expect_ok(broker: &Broker, probe: Probe, check: impl Fn(&str) -> bool) -> Verdict {
    match run_probe_child(broker, probe)? {
        (Some(Ok(detail)), ChildEnd::Exited { code: 0 }) if check(&detail) => Ok(()),
        other => Err(format!("expected success, got {other:?}")),
    }
}

fn panic_is_crash(broker: &Broker) -> Verdict {
    match run_probe_child(broker, Probe::Panic)? {
        (
            None,
            ChildEnd::Crashed {
                signal: libc::SIGILL,
                panic_message: Some(m),
            },
        ) if m.contains("probe panicked on purpose") => Ok(()),
        other => Err(format!(
            "expected a crash with the panic message, got {other:?}"
        )),
    }
}

fn spawn_echo(broker: &Broker) -> Result<portcullis::Child<Down, Up>, String> {
    broker
        .spawn::<Down, Up, _>("echo", &())
        .map_err(|e| format!("spawn echo: {e}: {:?}", std::error::Error::source(&e)))
}

fn echo(broker: &Broker, len: usize) -> Verdict {
    let child = spawn_echo(broker)?;
    let payload: Vec<u8> = (0..len).map(|i| (i % 251).to_le_bytes()[0]).collect();
    match child.request(&Down::Echo(payload.clone())) {
        Ok(Up::Echo(back)) if back == payload => {}
        other => return Err(format!("echo of {len} bytes: {other:?}")),
    }
    child.send(&Down::Quit).map_err(|e| e.to_string())?;
    match child.wait() {
        ChildEnd::Exited { code: 0 } => Ok(()),
        end => Err(format!("echo child ended {end:?}")),
    }
}

/// The filesystem pair: the child cannot open a file (read-etc-passwd), but reads one whose fd
/// the broker passed.
fn read_passed_fd(broker: &Broker) -> Verdict {
    let child = spawn_echo(broker)?;
    let dir = std::env::temp_dir().join(format!("portcullis-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join("granted.txt");
    std::fs::write(&path, "granted contents").map_err(|e| e.to_string())?;
    let file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    child
        .send_with_fds(&Down::ReadPassedFd, &[file.as_fd()])
        .map_err(|e| e.to_string())?;
    match child.recv_timeout(Duration::from_secs(20)) {
        Ok(Up::Outcome(Ok(s))) if s == "granted contents" => Ok(()),
        other => Err(format!("reading the passed fd: {other:?}")),
    }
}

/// Verifies a ready child from outside, through /proc.
fn status_from_outside(broker: &Broker) -> Verdict {
    let child = spawn_echo(broker)?;
    // Round trip first so the child is past lockdown and inside its entry.
    match child.request(&Down::Echo(vec![1])) {
        Ok(Up::Echo(_)) => {}
        other => return Err(format!("echo: {other:?}")),
    }
    let pid = child.pid();
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .ok_or(format!("no {name} in status"))
    };
    let mut problems = Vec::new();
    let mut want = |name: &str, value: &str| match field(name) {
        Ok(v) if v == value => {}
        Ok(v) => problems.push(format!("{name} {v}, want {value}")),
        Err(e) => problems.push(e),
    };
    want("Seccomp:", "2");
    want("NoNewPrivs:", "1");
    for cap in ["CapEff:", "CapPrm:", "CapBnd:", "CapInh:", "CapAmb:"] {
        want(cap, "0000000000000000");
    }
    // NSpid: the child's pid here, then 1 in its own namespace.
    want("NSpid:", &format!("{pid}\t1"));
    // Host uid is never root.
    let uid = field("Uid:")?;
    if uid.split_whitespace().any(|u| u == "0") {
        problems.push(format!("Uid {uid} includes host root"));
    }
    for ns in ["user", "pid", "net", "mnt", "ipc", "uts", "cgroup"] {
        let mine = std::fs::read_link(format!("/proc/self/ns/{ns}")).map_err(|e| e.to_string())?;
        let its = std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
            .map_err(|e| format!("ns/{ns}: {e}"))?;
        if mine == its {
            problems.push(format!("{ns} namespace shared with the broker: {mine:?}"));
        }
    }
    // Its root is empty and its only fds are 0-4.
    match std::fs::read_dir(format!("/proc/{pid}/root")) {
        Ok(entries) => {
            let names: Vec<_> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect();
            if !names.is_empty() {
                problems.push(format!("root not empty: {names:?}"));
            }
        }
        Err(e) => problems.push(format!("read /proc/{pid}/root: {e}")),
    }
    match std::fs::read_dir(format!("/proc/{pid}/fd")) {
        Ok(entries) => {
            let mut fds: Vec<u32> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect();
            fds.sort_unstable();
            // stdio on /dev/null, the channel, the service channel.
            if fds != [0, 1, 2, 3, 4] {
                problems.push(format!("open fds {fds:?}, want [0, 1, 2, 3, 4]"));
            }
        }
        Err(e) => problems.push(format!("read /proc/{pid}/fd: {e}")),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn concurrent_spawns(broker: &Broker) -> Verdict {
    let results: Vec<Verdict> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                s.spawn(move || -> Verdict {
                    for i in 0..8u8 {
                        let child = spawn_echo(broker)?;
                        match child.request(&Down::Echo(vec![t, i])) {
                            Ok(Up::Echo(b)) if b == [t, i] => {}
                            other => return Err(format!("thread {t} child {i}: {other:?}")),
                        }
                        child.send(&Down::Quit).map_err(|e| e.to_string())?;
                        if child.wait() != (ChildEnd::Exited { code: 0 }) {
                            return Err(format!("thread {t} child {i} did not exit 0"));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err("thread panicked".into())))
            .collect()
    });
    results.into_iter().collect()
}

fn unknown_entry(broker: &Broker) -> Verdict {
    match broker.spawn::<Down, Up, _>("no-such-entry", &()) {
        Err(SpawnError::UnknownEntry { name }) if name == "no-such-entry" => Ok(()),
        other => Err(format!("expected UnknownEntry, got {other:?}")),
    }
}

/// A lockdown step that really fails (an rlimit above the hard limit, EPERM) yields a typed
/// error naming the step and errno, and the entry never runs.
fn lockdown_failure_is_typed(broker: &Broker) -> Verdict {
    let options = SpawnOptions {
        // Above the hard limit the child inherits: only CAP_SYS_RESOURCE in the initial user
        // namespace may raise it, so setrlimit fails with EPERM.
        rlimits: Some(vec![Rlimit {
            resource: RlimitResource::MemLock,
            value: u64::MAX - 1,
        }]),
        ..SpawnOptions::default()
    };
    match broker.spawn_with::<Down, Up, _>("probe", &probe_args(broker, Probe::OwnPid), &options) {
        Err(SpawnError::Lockdown(e))
            if e.step == LockdownStep::Rlimits && e.errno == libc::EPERM => {}
        other => return Err(format!("expected Lockdown(rlimits, EPERM), got {other:?}")),
    }
    // The broker still works afterwards.
    echo(broker, 16)
}

fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// [`open_fd_count`] once it reads the same twice 20 ms apart (at most a second): the broker's
/// threads open fds for a moment now and then (a child's supervision starting, a pool child
/// joining its cgroup), which a single reading may catch. A leak stays, and is still counted.
fn settled_fd_count() -> usize {
    let mut last = open_fd_count();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        let now = open_fd_count();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// A hostile child ends only itself: it is reported as a protocol violation, a bystander keeps
/// answering, and the broker's fd count returns to its baseline.
/// Waits until the zygote's pre-forked pool is full again, so the broker's fd count is stable.
fn settle_pool(broker: &Broker) -> Verdict {
    wait_for_pool(
        "pre-forked children",
        BrokerConfig::default().prefork,
        || broker.pooled_children(),
    )
}

/// Waits up to 10 s until `count` (a pool's size) says `want`.
pub(crate) fn wait_for_pool(what: &str, want: usize, count: impl Fn() -> usize) -> Verdict {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count() != want {
        if std::time::Instant::now() > deadline {
            return Err(format!("{} {what} after 10 s, want {want}", count()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn hostile(broker: &Broker, attack: Attack) -> Verdict {
    let bystander = spawn_echo(broker)?;
    settle_pool(broker)?;
    let baseline = settled_fd_count();
    {
        let child = broker
            .spawn::<Down, Up, _>("hostile", &attack)
            .map_err(|e| format!("spawn hostile: {e}"))?;
        match child.recv_timeout(Duration::from_secs(20)) {
            Err(ChildError::ProtocolViolation(_)) => {}
            other => return Err(format!("expected a protocol violation, got {other:?}")),
        }
        match child.wait_timeout(Duration::from_secs(20)) {
            Some(ChildEnd::ProtocolViolation { .. }) => {}
            other => return Err(format!("expected end ProtocolViolation, got {other:?}")),
        }
    }
    match bystander.request(&Down::Echo(vec![7; 100])) {
        Ok(Up::Echo(b)) if b == [7; 100] => {}
        other => return Err(format!("bystander: {other:?}")),
    }
    // The zygote refills its pre-forked pool (whose channel ends the broker holds) once it has
    // been idle for a moment: compare with the pool full again.
    settle_pool(broker)?;
    let after = settled_fd_count();
    if after != baseline {
        return Err(format!("broker fds {baseline} before, {after} after"));
    }
    Ok(())
}

fn kill_and_wait(broker: &Broker) -> Verdict {
    let child = spawn_echo(broker)?;
    child.kill();
    match child.wait_timeout(Duration::from_secs(20)) {
        Some(ChildEnd::Killed) => Ok(()),
        other => Err(format!("expected Killed, got {other:?}")),
    }
}

/// A child that sends two messages and panics: `wait` reports the crash with its message and
/// the two messages are still there for the application.
fn messages_kept_across_panic(broker: &Broker) -> Verdict {
    let child = broker
        .spawn::<Down, Up, _>("probe", &probe_args(broker, Probe::TwoMessagesThenPanic))
        .map_err(|e| format!("spawn: {e}"))?;
    match child.wait_timeout(Duration::from_secs(20)) {
        Some(ChildEnd::Crashed {
            signal: libc::SIGILL,
            panic_message: Some(m),
        }) if m.contains("after two messages") => {}
        other => {
            return Err(format!(
                "expected a crash with its panic message, got {other:?}"
            ))
        }
    }
    for want in [1u8, 2] {
        match child.recv_timeout(Duration::from_secs(5)) {
            Ok(Up::Echo(b)) if b == [want] => {}
            other => return Err(format!("message {want}: {other:?}")),
        }
    }
    Ok(())
}

/// A child that parks a duplicate of its own channel end in an unfinished message, then exits:
/// the broker's receive must still end (not wait forever on a socket the child kept open).
fn recv_ends_when_child_holds_its_channel(broker: &Broker) -> Verdict {
    let child = broker
        .spawn::<Down, Up, _>("probe", &probe_args(broker, Probe::HoldOwnChannelOpen))
        .map_err(|e| format!("spawn: {e}"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _ = tx.send(format!("{:?}", child.recv().map(|_| ())));
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(r) if r.contains("Closed") => Ok(()),
            Ok(r) => Err(format!("recv returned {r}")),
            Err(_) => {
                child.kill();
                Err("recv still blocked 20 s after the child exited".into())
            }
        }
    })
}

/// Two threads waiting on one child both get its real end.
fn wait_from_two_threads(broker: &Broker) -> Verdict {
    let child = spawn_echo(broker)?;
    let ends: Vec<ChildEnd> = std::thread::scope(|s| {
        let a = s.spawn(|| child.wait());
        let b = s.spawn(|| child.wait());
        std::thread::sleep(Duration::from_millis(20));
        let _ = child.send(&Down::Quit);
        vec![
            a.join().unwrap_or(ChildEnd::ZygoteLost),
            b.join().unwrap_or(ChildEnd::ZygoteLost),
        ]
    });
    if ends.iter().all(|e| *e == ChildEnd::Exited { code: 0 })
        && child.wait() == (ChildEnd::Exited { code: 0 })
    {
        Ok(())
    } else {
        Err(format!("ends {ends:?}, stored {:?}", child.wait()))
    }
}
