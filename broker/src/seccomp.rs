//! The child's seccomp allowlist, compiled once by the broker with libseccomp and shipped to the
//! zygote as plain BPF ([`SeccompProgram`]); children only install the bytes.
//!
//! Default action: user notification (`SECCOMP_RET_USER_NOTIF`). The calling thread stops in
//! the kernel and the broker's supervisor (`crate::supervise`) is told the syscall, its
//! architecture and arguments; it kills the child before the call runs (the default) or fails it
//! with `EPERM`, as the child's profile says, and reports it either way. Syscalls of any other
//! architecture (x32, i386) take the same path. Every rule below carries the reason it exists; a
//! syscall without a reason does not belong here.

use std::io::{Read, Seek};

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use portcullis_child::{SeccompProgram, SeccompProgramError};

/// What a rule does with its syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// Allowed with any arguments.
    Allow,
    /// Allowed only when `arg & mask == value` for the argument at `arg`.
    AllowIfMasked {
        /// Argument index (0-based).
        arg: u32,
        /// Bits compared.
        mask: u64,
        /// Required value of those bits.
        value: u64,
    },
    /// Allowed only when the argument at `arg` equals one of `values`.
    AllowIfOneOf {
        /// Argument index (0-based).
        arg: u32,
        /// Accepted values.
        values: &'static [u64],
    },
    /// Allowed only when the argument at `first.0` equals `first.1` and the argument at
    /// `second.0` equals one of `second.1`.
    AllowIfBoth {
        /// (argument index, required value).
        first: (u32, u64),
        /// (argument index, accepted values).
        second: (u32, &'static [u64]),
    },
    /// Fails with this errno instead of killing (a call well-behaved code makes and copes with).
    Errno(i32),
    /// Fails with `errno` when the argument at `arg` equals one of `values`; any other value
    /// hits the default action (kill).
    ErrnoIfOneOf {
        /// Argument index (0-based).
        arg: u32,
        /// Values answered with the errno.
        values: &'static [u64],
        /// The errno.
        errno: i32,
    },
    /// Fails with `errno` when the argument at `arg` has any of `bits` set (one rule per bit).
    ErrnoIfAnyBit {
        /// Argument index (0-based).
        arg: u32,
        /// Bits, each tested on its own.
        bits: &'static [u64],
        /// The errno.
        errno: i32,
    },
}

impl RuleAction {
    /// True when some call of the syscall runs (rather than failing or killing).
    pub fn allows(&self) -> bool {
        matches!(
            self,
            Self::Allow
                | Self::AllowIfMasked { .. }
                | Self::AllowIfOneOf { .. }
                | Self::AllowIfBoth { .. }
        )
    }
}

/// One syscall of the child filter, with the reason it is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallRule {
    /// The syscall's name as libseccomp knows it.
    pub name: &'static str,
    /// What is allowed.
    pub action: RuleAction,
    /// Why a sandboxed Rust child needs it.
    pub reason: &'static str,
}

const fn allow(name: &'static str, reason: &'static str) -> SyscallRule {
    SyscallRule {
        name,
        action: RuleAction::Allow,
        reason,
    }
}

/// `clone` flags a thread needs (what glibc's pthread_create passes).
const THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD) as u64;
/// `clone` flags that create a namespace.
const NAMESPACE_CLONE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;
/// `clone` flags that must be clear: every new namespace, and sharing-less process creation.
const FORBIDDEN_CLONE_FLAGS: u64 =
    NAMESPACE_CLONE_FLAGS | (libc::CLONE_PARENT | libc::CLONE_PTRACE | libc::CLONE_VFORK) as u64;

/// The only `memfd_create` flags a child may pass: close-on-exec and sealable (the broker checks
/// the seals of a memfd it receives before it reads it).
const MEMFD_SEALABLE: u64 = (libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) as u64;

/// The child's PID inside its own PID namespace: it is always its namespace's init.
const CHILD_PID_IN_ITS_NAMESPACE: u64 = 1;

/// The allowlist of a sandboxed child (x86_64), found by running children that message,
/// allocate, start threads, sleep and panic, and removing what they did not need.
pub const CHILD_ALLOWLIST: &[SyscallRule] = &[
    allow("read", "read from the channel and from fds the broker passed"),
    allow("readv", "vectored read on fds the child holds"),
    allow("pread64", "positioned read on a brokered file"),
    allow("write", "write to fds the child holds (stdio is /dev/null)"),
    allow("writev", "vectored write on fds the child holds"),
    allow("pwrite64", "positioned write on a brokered writable file"),
    allow("close", "release fds"),
    allow("lseek", "std's read_to_end size hint and brokered file positions"),
    allow("statx", "std's fstat via AT_EMPTY_PATH; any path resolves in the empty root"),
    allow("fstat", "fstat on fds the child holds"),
    allow("newfstatat", "glibc's fstat; any path resolves in the empty root"),
    allow("sendmsg", "send on the channel (with SCM_RIGHTS)"),
    allow("recvmsg", "receive on the channel (with SCM_RIGHTS)"),
    allow("sendto", "libraries that send on a connected socket with send()"),
    allow("recvfrom", "libraries that receive on a connected socket with recv()"),
    allow("poll", "wait for the channel with a timeout"),
    allow("ppoll", "wait for the channel with a timeout (libc variants)"),
    allow("brk", "heap growth"),
    allow("mmap", "allocator and thread stacks"),
    allow("munmap", "allocator and thread stacks"),
    allow("mremap", "allocator growing large blocks in place"),
    allow("mprotect", "thread stack guard pages, loader-free relocations"),
    allow("madvise", "allocator returning memory (MADV_DONTNEED/FREE)"),
    allow("futex", "locks, condition variables, thread join"),
    allow("set_robust_list", "glibc registers robust mutexes at thread start"),
    allow("rseq", "glibc registers restartable sequences at thread start"),
    allow("sigaltstack", "std's stack-overflow guard at thread start and exit"),
    allow("rt_sigprocmask", "glibc masks signals around thread creation and abort"),
    allow("rt_sigaction", "glibc's first pthread_create and std's stack-overflow handler"),
    allow("rt_sigreturn", "return from a signal handler (std's SIGSEGV guard handler)"),
    allow("restart_syscall", "the kernel restarts a sleep interrupted by a signal"),
    allow("getpid", "std and glibc ask their own pid (always 1 here)"),
    allow("gettid", "glibc's raise and std's thread ids"),
    allow("getrandom", "HashMap seeds"),
    allow("sched_getaffinity", "glibc thread stack bounds and available_parallelism"),
    allow("sched_yield", "spin-then-park locks back off"),
    allow("clock_gettime", "time when the vDSO falls back to the syscall"),
    allow("clock_getres", "timer resolution when the vDSO falls back"),
    allow("gettimeofday", "wall clock when the vDSO falls back"),
    allow("nanosleep", "thread::sleep"),
    allow("clock_nanosleep", "thread::sleep (glibc)"),
    allow("exit", "a thread ends"),
    allow("exit_group", "the child ends"),
    SyscallRule {
        name: "clone",
        action: RuleAction::AllowIfMasked { arg: 0, mask: THREAD_FLAGS | FORBIDDEN_CLONE_FLAGS, value: THREAD_FLAGS },
        reason: "threads only: the thread flags set and every namespace flag clear (this denies fork)",
    },
    SyscallRule {
        name: "clone3",
        action: RuleAction::Errno(libc::ENOSYS),
        reason: "its flags sit behind a pointer seccomp cannot read; ENOSYS makes glibc fall back to clone",
    },
    SyscallRule {
        name: "tgkill",
        action: RuleAction::AllowIfOneOf { arg: 0, values: &[CHILD_PID_IN_ITS_NAMESPACE] },
        reason: "signal a thread of this process only (raise, abort); the child is PID 1 of its namespace",
    },
    SyscallRule {
        name: "prctl",
        action: RuleAction::AllowIfOneOf { arg: 0, values: &[libc::PR_SET_NAME as u64, libc::PR_GET_NAME as u64] },
        reason: "std names its threads; every other prctl is denied",
    },
    SyscallRule {
        name: "fcntl",
        action: RuleAction::AllowIfOneOf {
            arg: 1,
            values: &[
                libc::F_GETFD as u64,
                libc::F_SETFD as u64,
                libc::F_GETFL as u64,
                libc::F_SETFL as u64,
                libc::F_DUPFD_CLOEXEC as u64,
                libc::F_ADD_SEALS as u64,
                libc::F_GET_SEALS as u64,
            ],
        },
        reason: "fd flags, close-on-exec duplicates, and sealing a memfd the child made (F_ADD_SEALS/F_GET_SEALS) so the broker can trust its size and contents",
    },
    SyscallRule {
        name: "memfd_create",
        action: RuleAction::AllowIfOneOf { arg: 1, values: &[MEMFD_SEALABLE] },
        reason: "anonymous memory to hand the broker (a rendered picture), only with exactly MFD_CLOEXEC | MFD_ALLOW_SEALING: no huge pages, no exec, and sealable",
    },
    allow("shutdown", "TcpStream::shutdown on a socket the broker passed"),
    allow("getsockname", "local address of a socket the broker passed"),
    allow("getpeername", "peer address of a socket the broker passed"),
    SyscallRule {
        name: "setsockopt",
        action: RuleAction::AllowIfBoth {
            first: (1, libc::SOL_SOCKET as u64),
            second: (
                2,
                &[
                    libc::SO_RCVTIMEO as u64,
                    libc::SO_SNDTIMEO as u64,
                    libc::SO_RCVTIMEO_NEW as u64,
                    libc::SO_SNDTIMEO_NEW as u64,
                ],
            ),
        },
        reason: "read/write timeouts (SOL_SOCKET, SO_RCVTIMEO/SO_SNDTIMEO) on a socket the broker passed; no other option",
    },
    SyscallRule {
        name: "ioctl",
        action: RuleAction::ErrnoIfOneOf {
            arg: 1,
            values: &[libc::TCGETS, libc::TIOCGWINSZ],
            errno: libc::ENOTTY,
        },
        reason: "isatty() and terminal-size probes (logging crates ask at start-up) learn there is no terminal; every other ioctl, TIOCSTI included, kills",
    },
    SyscallRule {
        name: "openat",
        action: RuleAction::Errno(libc::EACCES),
        reason: "libraries probe files (std reads cgroup files for available_parallelism); the root is empty anyway, so a clear error beats a kill",
    },
    SyscallRule {
        name: "open",
        action: RuleAction::Errno(libc::EACCES),
        reason: "the legacy form of openat, denied the same way and for the same reason",
    },
];

/// Building the filter failed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompCompileError {
    /// libseccomp refused a step (unknown syscall name, bad attribute).
    #[error("libseccomp: {what}")]
    Libseccomp {
        /// What was being done.
        what: String,
        /// libseccomp's error.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// Exporting the program through a memfd failed.
    #[error("export of the seccomp program failed")]
    Export(#[source] std::io::Error),
    /// The exported bytes are not a loadable program.
    #[error("exported seccomp program is malformed")]
    Malformed(#[source] SeccompProgramError),
}

fn lib(
    what: impl Into<String>,
) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompCompileError {
    let what = what.into();
    move |source| SeccompCompileError::Libseccomp { what, source }
}

/// Compiles `rules` into a BPF program: every syscall outside the rules, and every call of a
/// non-native architecture (x32, i386), is answered with `SECCOMP_RET_USER_NOTIF` — the calling
/// thread stops in the kernel and the broker's supervisor is told the syscall and its arguments
/// on the filter's listener; it then kills the child or fails the call with `EPERM`
/// (`crate::supervise`). If nobody holds the listener (the broker is gone), the kernel fails the
/// call with `ENOSYS`, never runs it. Binary-tree optimisation (`SCMP_FLTATR_CTL_OPTIMIZE=2`).
pub fn compile(rules: &[SyscallRule]) -> Result<SeccompProgram, SeccompCompileError> {
    let mut ctx = ScmpFilterContext::new(ScmpAction::Notify).map_err(lib("create filter"))?;
    ctx.set_act_badarch(ScmpAction::Notify)
        .map_err(lib("bad-arch action"))?;
    ctx.set_ctl_optimize(2)
        .map_err(lib("binary tree optimisation"))?;
    // Only the native architecture, which a new context holds; x32 is another architecture to
    // libseccomp and is never added, so its syscall numbers hit the bad-arch action.
    for rule in rules {
        let syscall =
            ScmpSyscall::from_name(rule.name).map_err(lib(format!("syscall {}", rule.name)))?;
        let what = || format!("rule for {}", rule.name);
        match rule.action {
            RuleAction::Allow => {
                ctx.add_rule(ScmpAction::Allow, syscall)
                    .map_err(lib(what()))?;
            }
            RuleAction::AllowIfMasked { arg, mask, value } => {
                let cmp = ScmpArgCompare::new(arg, ScmpCompareOp::MaskedEqual(mask), value);
                ctx.add_rule_conditional(ScmpAction::Allow, syscall, &[cmp])
                    .map_err(lib(what()))?;
            }
            RuleAction::AllowIfOneOf { arg, values } => {
                for &value in values {
                    let cmp = ScmpArgCompare::new(arg, ScmpCompareOp::Equal, value);
                    ctx.add_rule_conditional(ScmpAction::Allow, syscall, &[cmp])
                        .map_err(lib(what()))?;
                }
            }
            RuleAction::AllowIfBoth { first, second } => {
                let level = ScmpArgCompare::new(first.0, ScmpCompareOp::Equal, first.1);
                for &value in second.1 {
                    let option = ScmpArgCompare::new(second.0, ScmpCompareOp::Equal, value);
                    ctx.add_rule_conditional(ScmpAction::Allow, syscall, &[level, option])
                        .map_err(lib(what()))?;
                }
            }
            RuleAction::Errno(errno) => {
                ctx.add_rule(ScmpAction::Errno(errno), syscall)
                    .map_err(lib(what()))?;
            }
            RuleAction::ErrnoIfAnyBit { arg, bits, errno } => {
                for &bit in bits {
                    let cmp = ScmpArgCompare::new(arg, ScmpCompareOp::MaskedEqual(bit), bit);
                    ctx.add_rule_conditional(ScmpAction::Errno(errno), syscall, &[cmp])
                        .map_err(lib(what()))?;
                }
            }
            RuleAction::ErrnoIfOneOf { arg, values, errno } => {
                for &value in values {
                    let cmp = ScmpArgCompare::new(arg, ScmpCompareOp::Equal, value);
                    ctx.add_rule_conditional(ScmpAction::Errno(errno), syscall, &[cmp])
                        .map_err(lib(what()))?;
                }
            }
        }
    }
    let mut memfd = memfd()?;
    ctx.export_bpf(&memfd).map_err(lib("export bpf"))?;
    let mut bytes = Vec::new();
    memfd.rewind().map_err(SeccompCompileError::Export)?;
    memfd
        .read_to_end(&mut bytes)
        .map_err(SeccompCompileError::Export)?;
    SeccompProgram::from_bpf_bytes(&bytes).map_err(SeccompCompileError::Malformed)
}

fn memfd() -> Result<std::fs::File, SeccompCompileError> {
    let fd = nix::sys::memfd::memfd_create(
        c"portcullis-seccomp",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
    )
    .map_err(|e| SeccompCompileError::Export(e.into()))?;
    Ok(std::fs::File::from(fd))
}

/// Compiles [`CHILD_ALLOWLIST`].
pub fn compile_child_filter() -> Result<SeccompProgram, SeccompCompileError> {
    compile(CHILD_ALLOWLIST)
}

/// What a child that executes a program (exec mode) needs on top of [`CHILD_ALLOWLIST`]: the
/// exec itself, from the fd the broker opened, and what a libc's start-up does before `main`.
/// Anything else the program calls is a violation, reported by name like any other.
pub const EXEC_ALLOWLIST_EXTRA: &[SyscallRule] = &[
    SyscallRule {
        name: "execveat",
        action: RuleAction::AllowIfMasked {
            arg: 4,
            mask: libc::AT_EMPTY_PATH as u64,
            value: libc::AT_EMPTY_PATH as u64,
        },
        reason: "executes the program from the fd the broker opened (AT_EMPTY_PATH); there is no \
                 path to execute by name in the empty root",
    },
    allow(
        "dup2",
        "puts the stdin/stdout/stderr the broker passed onto fds 0-2 before the exec",
    ),
    allow(
        "arch_prctl",
        "a libc's start-up sets the thread pointer (ARCH_SET_FS) and asks about CET",
    ),
    allow(
        "set_tid_address",
        "a libc's start-up registers where to clear the thread id at exit",
    ),
    SyscallRule {
        name: "prlimit64",
        action: RuleAction::AllowIfOneOf {
            arg: 2,
            values: &[0],
        },
        reason: "reading a limit (new limit NULL), as libc start-up does for the stack; never \
                 changing one",
    },
    allow(
        "uname",
        "libc start-up and programs read the kernel release",
    ),
    allow(
        "getuid",
        "programs ask who they are (id, ls -l, shells); the answer is the sandbox's root, an \
         unprivileged id on the host",
    ),
    allow(
        "geteuid",
        "the effective id, the same question and answer as getuid",
    ),
    allow(
        "getgid",
        "the group id, the same question and answer as getuid",
    ),
    allow(
        "getegid",
        "the effective group id, the same question and answer as getuid",
    ),
    allow(
        "getgroups",
        "supplementary groups (id): none, setgroups is denied in the sandbox",
    ),
    allow(
        "getresuid",
        "real, effective and saved ids at once (sudo-like checks)",
    ),
    allow("getresgid", "real, effective and saved group ids at once"),
    SyscallRule {
        name: "readlink",
        action: RuleAction::Errno(libc::ENOENT),
        reason: "static glibc asks for /proc/self/exe at start and copes with ENOENT; there is \
                 no /proc in the empty root, so the answer is the truth",
    },
    SyscallRule {
        name: "readlinkat",
        action: RuleAction::Errno(libc::ENOENT),
        reason: "the same question through readlinkat; the same answer",
    },
];

/// `clone` flags that must be clear when a program may create processes: every new namespace,
/// a sibling of the sandbox's init (`CLONE_PARENT` would hand the child to the zygote) and
/// tracing. `CLONE_VFORK` is fine here (`posix_spawn` uses it).
const FORBIDDEN_PROCESS_CLONE_FLAGS: u64 =
    NAMESPACE_CLONE_FLAGS | (libc::CLONE_PARENT | libc::CLONE_PTRACE) as u64;

/// What an exec-mode program that may create processes (`allow_processes`) needs on top of
/// [`EXEC_ALLOWLIST_EXTRA`]. Every process it makes shares its PID namespace, where the program
/// is init and every pid it can name is one of its own, its filter, cgroup (the `processes`
/// limit counts them) and limits.
pub const EXEC_PROCESSES_EXTRA: &[SyscallRule] = &[
    SyscallRule {
        name: "clone",
        action: RuleAction::AllowIfMasked {
            arg: 0,
            mask: FORBIDDEN_PROCESS_CLONE_FLAGS,
            value: 0,
        },
        reason: "fork and posix_spawn through clone; no namespace flag, no CLONE_PARENT or CLONE_PTRACE (the thread-only rule of the child filter still applies too)",
    },
    allow("fork", "the legacy fork syscall; same as clone without flags"),
    allow("vfork", "the legacy vfork syscall (posix_spawn's classic path)"),
    allow("wait4", "reap its own processes"),
    allow("waitid", "reap its own processes (waitid form)"),
    allow(
        "kill",
        "signal its own processes: the program is init of its PID namespace, so every pid it can name is one it made",
    ),
    allow(
        "tgkill",
        "signal a thread of one of its own processes (the child filter allows only its own pid)",
    ),
    allow("tkill", "the legacy form of tgkill, within its own PID namespace"),
    allow("getppid", "a process asks for its parent (inside the namespace)"),
    allow("pipe2", "pipes between the program and the processes it made"),
    allow("pipe", "the legacy pipe syscall"),
    allow("rt_sigsuspend", "wait for a child's signal (sigsuspend)"),
    allow("pause", "wait for a signal"),
];

/// `open` flags that write or create: a read-only program root's filter refuses an open that
/// carries any of them (`__O_TMPFILE` is O_TMPFILE without its O_DIRECTORY bit).
const WRITING_OPEN_FLAGS: [u64; 5] = [
    libc::O_WRONLY as u64,
    libc::O_RDWR as u64,
    libc::O_CREAT as u64,
    libc::O_TRUNC as u64,
    0o20_000_000,
];
const WRITING_OPEN_MASK: u64 = libc::O_WRONLY as u64
    | libc::O_RDWR as u64
    | libc::O_CREAT as u64
    | libc::O_TRUNC as u64
    | 0o20_000_000;

/// Replaces the child filter's `openat`/`open` (always `EACCES`) in an exec-mode filter with a
/// read-only program root: the program's loader opens its libraries by path.
pub const EXEC_ROOT_OPEN_READ_ONLY: &[SyscallRule] = &[
    SyscallRule {
        name: "openat",
        action: RuleAction::AllowIfMasked {
            arg: 2,
            mask: WRITING_OPEN_MASK,
            value: 0,
        },
        reason: "the loader opens the interpreter's libraries and the program opens files of its read-only root: only without O_WRONLY, O_RDWR, O_CREAT, O_TRUNC and O_TMPFILE                  (the mounts are read-only and Landlock allows reads below the binds only)",
    },
    SyscallRule {
        name: "openat",
        action: RuleAction::ErrnoIfAnyBit {
            arg: 2,
            bits: &WRITING_OPEN_FLAGS,
            errno: libc::EACCES,
        },
        reason: "an open that would write or create fails with EACCES, as in the empty root",
    },
    SyscallRule {
        name: "open",
        action: RuleAction::AllowIfMasked {
            arg: 1,
            mask: WRITING_OPEN_MASK,
            value: 0,
        },
        reason: "the legacy form of openat, read-only the same way",
    },
    SyscallRule {
        name: "open",
        action: RuleAction::ErrnoIfAnyBit {
            arg: 1,
            bits: &WRITING_OPEN_FLAGS,
            errno: libc::EACCES,
        },
        reason: "the legacy form of openat, refused the same way when it would write or create",
    },
];

/// Replaces `openat`/`open` when the program root holds a read-write bind: any flags (the
/// read-only mounts answer `EROFS`, Landlock answers `EACCES` outside the read-write binds).
pub const EXEC_ROOT_OPEN_READ_WRITE: &[SyscallRule] = &[
    allow(
        "openat",
        "open files of the program root, writing only where a read-write bind is (the mounts are read-only elsewhere and Landlock allows writes below read-write binds only)",
    ),
    allow("open", "the legacy form of openat, bounded the same way"),
];

/// What an exec-mode program with a program root needs on top of [`EXEC_ALLOWLIST_EXTRA`]
/// (besides `openat`): the calls a dynamic loader and simple programs (`echo`, `cat`, `ls`) make
/// on a read-only tree. Measured with strace on those programs.
pub const EXEC_ROOT_EXTRA: &[SyscallRule] = &[
    allow(
        "access",
        "the loader checks for /etc/ld.so.preload; programs test whether a path exists",
    ),
    allow("faccessat", "access relative to a directory fd"),
    allow("faccessat2", "access with flags (newer libcs)"),
    allow(
        "getdents64",
        "list a directory of the root (ls); Landlock allows it below the binds only",
    ),
    allow(
        "fadvise64",
        "cat and friends advise sequential reads on a file they opened",
    ),
    allow(
        "statfs",
        "coreutils ask a path's filesystem type (ls, for SELinux labels)",
    ),
    allow("fstatfs", "the same question for an open fd"),
    allow(
        "getcwd",
        "programs ask their working directory (`/` of the root)",
    ),
    allow(
        "getppid",
        "shells ask for their parent at start (dash); across the PID namespace the answer is 0",
    ),
    SyscallRule {
        name: "fcntl",
        action: RuleAction::AllowIfOneOf {
            arg: 1,
            values: &[libc::F_DUPFD as u64],
        },
        reason: "shells keep copies of their fds above 10 (F_DUPFD, without close-on-exec); the \
                 child list's fcntl commands stay allowed beside it",
    },
    allow(
        "readlink",
        "ls -l and realpath read the symlinks of the root (what they name is still bounded by \
         the mounts and Landlock); /proc/self/exe is not there, so static glibc's question \
         still gets ENOENT",
    ),
    allow("readlinkat", "the same through readlinkat"),
    allow(
        "chdir",
        "find, make and shells change directory within the root (what they may open there is \
         still bounded by the mounts and Landlock)",
    ),
    allow(
        "fchdir",
        "find walks a tree by directory fds; the program can hold only fds of its root (a \
         directory as stdio is refused at spawn), and Landlock bounds what lies beneath",
    ),
    allow(
        "copy_file_range",
        "cat and cp copy between two fds the program holds; the kernel checks each fd's mode",
    ),
    allow(
        "sendfile",
        "the older form of copy_file_range, between two fds the program holds",
    ),
    allow(
        "mincore",
        "grep's stack-overflow handling asks which of its own pages are resident",
    ),
    allow(
        "getxattr",
        "ls -l reads ACLs and security labels of files in the root (all it can name)",
    ),
    allow("lgetxattr", "the same, without following a symlink"),
    allow("fgetxattr", "the same, on an fd the program holds"),
    allow(
        "listxattr",
        "the names of a file's extended attributes (ls, cp -a)",
    ),
    allow("llistxattr", "the same, without following a symlink"),
    allow("flistxattr", "the same, on an fd the program holds"),
    SyscallRule {
        name: "sysinfo",
        action: RuleAction::Errno(libc::EPERM),
        reason: "sort sizes its buffers from it and copes with a failure; the host's memory, load \
                 and uptime are not the program's to know",
    },
    SyscallRule {
        name: "socket",
        action: RuleAction::ErrnoIfOneOf {
            arg: 0,
            values: &[libc::AF_UNIX as u64],
            errno: libc::EACCES,
        },
        reason: "glibc's name service (ls -l, id) tries nscd and systemd-userdb over AF_UNIX and \
                 copes with a failure; there is nothing to reach, so a clear error beats a kill. \
                 Every other family is still a violation",
    },
];

/// What a program root with a read-write bind adds: changing files and directories. Each works
/// only below a read-write bind (elsewhere the mounts are read-only and Landlock refuses).
pub const EXEC_ROOT_WRITE_EXTRA: &[SyscallRule] = &[
    allow("mkdir", "create a directory below a read-write bind"),
    allow(
        "mkdirat",
        "create a directory below a read-write bind (at form)",
    ),
    allow("unlink", "remove a file below a read-write bind"),
    allow(
        "unlinkat",
        "remove a file or directory below a read-write bind (at form)",
    ),
    allow("rmdir", "remove a directory below a read-write bind"),
    allow("rename", "rename within a read-write bind"),
    allow("renameat", "rename within a read-write bind (at form)"),
    allow("renameat2", "rename within a read-write bind (with flags)"),
    allow("ftruncate", "resize a file opened for writing"),
    allow("fsync", "flush a written file"),
    allow("fdatasync", "flush a written file's data"),
    allow(
        "utimensat",
        "set a file's times (touch) below a read-write bind",
    ),
    allow(
        "fchmod",
        "set a written file's mode (the mounts are nosuid)",
    ),
    allow(
        "symlink",
        "make a symlink below a read-write bind (what it names still resolves in the root)",
    ),
    allow("symlinkat", "the same, at form (ln -s)"),
    allow(
        "link",
        "make a hard link within a read-write bind (across mounts the kernel answers EXDEV)",
    ),
    allow("linkat", "the same, at form (ln)"),
];

/// The syscalls whose rules a program root replaces rather than adds to.
const REPLACED_BY_A_ROOT: &[&str] = &["openat", "open", "readlink", "readlinkat"];

/// The root an exec-mode program sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RootShape {
    /// The empty root: every open fails with `EACCES` (the strictest filter).
    #[default]
    Empty,
    /// A read-only program root: read-only opens and [`EXEC_ROOT_EXTRA`].
    ReadOnly,
    /// A program root with read-write binds: [`EXEC_ROOT_EXTRA`] and [`EXEC_ROOT_WRITE_EXTRA`].
    ReadWrite,
}

/// Which exec-mode filter a program gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ExecShape {
    /// The program may create processes ([`EXEC_PROCESSES_EXTRA`]).
    pub processes: bool,
    /// Its root.
    pub root: RootShape,
}

/// The rules of an exec-mode filter of `shape`: [`CHILD_ALLOWLIST`] plus
/// [`EXEC_ALLOWLIST_EXTRA`], plus [`EXEC_PROCESSES_EXTRA`] when the shape asks for processes,
/// plus the program root's rules (which replace the child list's `openat`/`open`).
pub fn exec_rules(shape: ExecShape) -> Vec<SyscallRule> {
    let processes: &[SyscallRule] = if shape.processes {
        EXEC_PROCESSES_EXTRA
    } else {
        &[]
    };
    let (open, root, write): (&[SyscallRule], &[SyscallRule], &[SyscallRule]) = match shape.root {
        RootShape::Empty => (&[], &[], &[]),
        RootShape::ReadOnly => (EXEC_ROOT_OPEN_READ_ONLY, EXEC_ROOT_EXTRA, &[]),
        RootShape::ReadWrite => (
            EXEC_ROOT_OPEN_READ_WRITE,
            EXEC_ROOT_EXTRA,
            EXEC_ROOT_WRITE_EXTRA,
        ),
    };
    // A read-only root answers the calls that would change it with EROFS (what its read-only
    // mounts would answer) instead of a kill: `touch` tries `utimensat` after a refused open.
    let refused: Vec<SyscallRule> = if shape.root == RootShape::ReadOnly {
        EXEC_ROOT_WRITE_EXTRA
            .iter()
            .map(|rule| SyscallRule {
                name: rule.name,
                action: RuleAction::Errno(libc::EROFS),
                reason: "the program root is read-only: a change fails with EROFS, as the \
                         read-only mounts would answer",
            })
            .collect()
    } else {
        Vec::new()
    };
    // A program root's rules replace these of the child and exec lists (openat/open: always
    // EACCES there; readlink/readlinkat: always ENOENT there). Its other rules add to them.
    let kept = |rule: &&SyscallRule| {
        shape.root == RootShape::Empty || !REPLACED_BY_A_ROOT.contains(&rule.name)
    };
    CHILD_ALLOWLIST
        .iter()
        .chain(EXEC_ALLOWLIST_EXTRA)
        .filter(kept)
        .chain(processes)
        .chain(open)
        .chain(root)
        .chain(write)
        .chain(&refused)
        .copied()
        .collect()
}

/// Compiles the exec-mode filter of `shape` ([`exec_rules`]).
pub fn compile_exec_filter(shape: ExecShape) -> Result<SeccompProgram, SeccompCompileError> {
    compile(&exec_rules(shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule names a syscall libseccomp knows and says why it is there.
    fn assert_documented(rules: &[SyscallRule]) {
        for rule in rules {
            assert!(rule.reason.len() > 10, "{} needs a reason", rule.name);
            assert!(
                ScmpSyscall::from_name(rule.name).is_ok(),
                "{} unknown",
                rule.name
            );
        }
    }

    #[test]
    fn every_rule_has_a_reason_and_a_known_syscall() {
        assert_documented(CHILD_ALLOWLIST);
    }

    #[test]
    fn dangerous_syscalls_are_not_allowlisted() {
        for name in [
            "ptrace",
            "unshare",
            "setns",
            "mount",
            "bpf",
            "keyctl",
            "io_uring_setup",
            "userfaultfd",
            "perf_event_open",
            "kill",
            "tkill",
            "socket",
            "ioctl",
            "execve",
            "execveat",
            "fork",
            "vfork",
            "setpriority",
            "sethostname",
            "pivot_root",
            "chroot",
        ] {
            assert!(
                !CHILD_ALLOWLIST
                    .iter()
                    .any(|r| r.name == name && r.action.allows()),
                "{name} must never be allowed"
            );
        }
    }

    #[test]
    fn exec_rules_have_reasons_and_compile() {
        assert_documented(EXEC_ALLOWLIST_EXTRA);
        for rule in EXEC_ALLOWLIST_EXTRA {
            assert!(
                !CHILD_ALLOWLIST.iter().any(|r| r.name == rule.name),
                "{} is in both lists",
                rule.name
            );
        }
        let n = compile_exec_filter(ExecShape::default())
            .unwrap()
            .instructions()
            .len();
        assert!(n > 20 && n <= 4096, "{n} instructions");
    }

    #[test]
    fn process_rules_have_reasons_and_compile() {
        assert_documented(EXEC_PROCESSES_EXTRA);
        // Never a namespace, never a way out of the PID namespace's tree.
        for name in ["unshare", "setns", "ptrace", "execve", "clone3", "setpgid"] {
            assert!(
                !EXEC_PROCESSES_EXTRA.iter().any(|r| r.name == name),
                "{name} must not come with processes"
            );
        }
        assert_ne!(
            FORBIDDEN_PROCESS_CLONE_FLAGS & libc::CLONE_NEWUSER as u64,
            0
        );
        let with = compile_exec_filter(ExecShape {
            processes: true,
            ..ExecShape::default()
        })
        .unwrap();
        let without = compile_exec_filter(ExecShape::default()).unwrap();
        assert!(with.instructions().len() > without.instructions().len());
    }

    #[test]
    fn program_root_rules_have_reasons_and_compile_for_every_shape() {
        for rules in [
            EXEC_ROOT_OPEN_READ_ONLY,
            EXEC_ROOT_OPEN_READ_WRITE,
            EXEC_ROOT_EXTRA,
            EXEC_ROOT_WRITE_EXTRA,
        ] {
            assert_documented(rules);
        }
        for root in [RootShape::Empty, RootShape::ReadOnly, RootShape::ReadWrite] {
            for processes in [false, true] {
                let shape = ExecShape { processes, root };
                let rules = exec_rules(shape);
                assert_documented(&rules);
                compile_exec_filter(shape).unwrap();
                let has = |name: &str, pred: fn(&RuleAction) -> bool| {
                    rules.iter().any(|r| r.name == name && pred(&r.action))
                };
                // The empty root stays as strict as before: every open is EACCES, nothing of a
                // program root is there.
                let unconditional_eacces = |a: &RuleAction| *a == RuleAction::Errno(libc::EACCES);
                assert_eq!(
                    has("openat", unconditional_eacces),
                    root == RootShape::Empty,
                    "{shape:?}"
                );
                assert_eq!(
                    has("getdents64", RuleAction::allows),
                    root != RootShape::Empty
                );
                assert_eq!(
                    has("mkdirat", RuleAction::allows),
                    root == RootShape::ReadWrite
                );
                // One openat rule set per shape: never the child's EACCES beside an allow.
                let openat_allows = rules
                    .iter()
                    .filter(|r| r.name == "openat" && r.action.allows())
                    .count();
                assert_eq!(openat_allows, usize::from(root != RootShape::Empty));
                // A root's rules of a replaced syscall are its only rules of it; the child
                // list's other rules (fcntl's commands) stay beside the root's additions.
                assert_eq!(
                    rules.iter().filter(|r| r.name == "fcntl").count(),
                    1 + usize::from(root != RootShape::Empty),
                    "{shape:?}"
                );
                // readlink: ENOENT in the empty root, allowed with a root; one rule either way.
                let readlinks: Vec<&SyscallRule> =
                    rules.iter().filter(|r| r.name == "readlink").collect();
                assert_eq!(readlinks.len(), 1, "{shape:?}");
                assert_eq!(readlinks[0].action.allows(), root != RootShape::Empty);
            }
        }
        // Read-only: the allow rule masks every writing flag.
        let read_only = &EXEC_ROOT_OPEN_READ_ONLY[0];
        let RuleAction::AllowIfMasked { mask, value: 0, .. } = read_only.action else {
            panic!("read-only openat is a masked allow");
        };
        for flag in [
            libc::O_WRONLY,
            libc::O_RDWR,
            libc::O_CREAT,
            libc::O_TRUNC,
            libc::O_TMPFILE,
        ] {
            assert_ne!(mask & u64::try_from(flag).unwrap(), 0, "{flag:#o}");
        }
        let empty = compile_exec_filter(ExecShape::default()).unwrap();
        let rooted = compile_exec_filter(ExecShape {
            root: RootShape::ReadOnly,
            ..ExecShape::default()
        })
        .unwrap();
        assert_ne!(empty.instructions(), rooted.instructions());
    }

    #[test]
    fn compiles_to_a_loadable_size() {
        let program = compile_child_filter().unwrap();
        let n = program.instructions().len();
        assert!(n > 20 && n <= 4096, "{n} instructions");
    }
}
