//! `portcullis explain [POLICY] [--profile NAME] [--param NAME=VALUE]...`: the sandbox a child
//! with a profile gets, in plain words (or JSON).
//!
//! Built from the broker's own data wherever it exists: the namespaces from
//! `portcullis_broker::namespaces::SHARED_NAMESPACES`, the limits from
//! `portcullis_broker::limits::child_limits` (the function the broker calls at every spawn) on
//! the broker's default rlimit baseline, and the system calls from
//! `portcullis_broker::seccomp::CHILD_ALLOWLIST` with each rule's reason. What exists only as
//! lockdown steps (the empty root, the privileges) is described here, next to the step names of
//! docs/HOW-IT-WORKS.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use portcullis_broker::cgroup::{self, CgroupLimits, Layout};
use portcullis_broker::limits::{child_limits, ChildLimits, OWN_FDS};
use portcullis_broker::namespaces::SHARED_NAMESPACES;
use portcullis_broker::seccomp::{
    exec_rules, ExecShape, RootShape, RuleAction, SyscallRule, CHILD_ALLOWLIST,
};
use portcullis_broker::{default_rlimits, RlimitResource, DEFAULT_SANDBOX_HOST_ID};
use portcullis_policy::{HostPattern, Limits, MountGrant, OnViolation, Profile, Scope};
use serde::Serialize;

use crate::text::{bytes, millis, wrap, wrap_from};
use crate::{policy_file, status, CommandError, Done};

/// Print the sandbox a child with a given profile gets, in plain words.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "\
Print the sandbox a child with a given profile gets, in plain words.

Without POLICY this is a child spawned without a profile: no files, no network, default
limits. With POLICY, the profile chosen with --profile (which may be left out when the
policy defines only one), its ${parameters} given with --param.

The output covers, in order: the namespaces the child is in and what each hides from it;
its filesystem root (empty); its privileges (none); its limits — rlimits, its cgroup, the
supervisor's deadline, what a forbidden system call does, and what it may ask of the
broker — derived with the broker's own code for this machine (its cgroup version and CPU
count); its filesystem and network grants with their rights; and every system call it may
make, with the condition on its arguments and the reason it is allowed.",
    after_long_help = "\
Examples:
  portcullis explain
  portcullis explain examples/policies/renderer.toml --param site=example.com
  portcullis explain examples/policies/plugin.toml --profile plugin --json | jq .limits

Exit status:
  0  the explanation was printed
  1  the policy file is invalid or cannot be read
  2  usage error: unknown flag, --profile or --param without POLICY, a profile the policy does
     not define, a missing, unknown or invalid parameter"
)]
pub struct ExplainArgs {
    /// The policy file (TOML); `-` reads standard input. Without it: the default profile.
    #[arg(value_name = "POLICY")]
    policy: Option<PathBuf>,
    /// The profile to explain; may be left out when the policy defines exactly one.
    #[arg(long, short = 'p', value_name = "NAME")]
    profile: Option<String>,
    /// A value for one of the profile's parameters; repeat for each parameter it declares.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Print JSON (one object; the same facts as the text) instead of text.
    #[arg(long)]
    json: bool,
}

/// `NAME=VALUE` → `(NAME, VALUE)`; the value may contain `=`.
pub fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, found {text:?}")),
    }
}

/// The profile that `policy`, `profile_name` and `params` name (the default profile without a
/// policy), and where it came from. Errors name `subcommand`.
pub fn resolve_profile(
    policy: Option<&std::path::Path>,
    profile_name: Option<&str>,
    params: &[(String, String)],
    subcommand: &'static str,
) -> Result<(Profile, Vec<MountGrant>, Source), CommandError> {
    let usage = |message: String| CommandError::Usage {
        message,
        subcommand,
    };
    let (profile, mounts, source) = match policy {
        None => {
            if profile_name.is_some() || !params.is_empty() {
                return Err(usage(
                    "--profile and --param choose a profile of a policy file; give POLICY too"
                        .to_owned(),
                ));
            }
            (Profile::default(), Vec::new(), Source::default())
        }
        Some(path) => {
            let policy = policy_file::load(path)?;
            let names: Vec<&str> = policy.profile_names().collect();
            let name = match (profile_name, names.as_slice()) {
                (Some(name), _) => name.to_owned(),
                (None, [only]) => (*only).to_owned(),
                (None, []) => {
                    return Err(usage(format!(
                        "{} defines no profiles; there is nothing to explain",
                        path.display()
                    )))
                }
                (None, many) => {
                    return Err(usage(format!(
                        "{} defines {} profiles ({}); choose one with --profile NAME",
                        path.display(),
                        many.len(),
                        many.join(", ")
                    )))
                }
            };
            let pairs: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let (profile, mounts) = policy.instantiate_with_mounts(&name, &pairs).map_err(|e| {
                let mut message = e.to_string();
                if let Some(declared) = policy.profile_params(&name).filter(|p| !p.is_empty()) {
                    let _ = write!(
                        message,
                        "; give each parameter with --param NAME=VALUE (profile {name:?} \
                         declares {})",
                        declared.join(", ")
                    );
                }
                usage(message)
            })?;
            let source = Source {
                name: Some(name),
                policy: Some(path.display().to_string()),
                params: params.iter().cloned().collect(),
            };
            (profile, mounts, source)
        }
    };
    Ok((profile, mounts, source))
}

/// Resolves the profile and prints its explanation.
pub fn run(args: &ExplainArgs) -> Result<Done, CommandError> {
    let (profile, mounts, source) = resolve_profile(
        args.policy.as_deref(),
        args.profile.as_deref(),
        &args.params,
        "explain",
    )?;
    let explanation = explain_with_mounts(&profile, &mounts, source, &HostFacts::detect());
    let stdout = if args.json {
        let mut json = serde_json::to_string_pretty(&explanation)
            .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()));
        json.push('\n');
        json
    } else {
        render(&explanation)
    };
    Ok(Done {
        stdout,
        status: status::OK,
    })
}

/// What the limits depend on besides the profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    /// The cgroups the broker would find, in words.
    pub cgroup: String,
    /// Whether the broker would find a cgroup hierarchy at all.
    pub cgroup_available: bool,
    /// Whether the broker would put children in a memory cgroup (else `RLIMIT_AS` stands in).
    pub memory_cgroup: bool,
    /// CPUs of this machine, as the broker counts them.
    pub cpus: u32,
    /// The Landlock ABI version of this kernel, or why there is none (errno name).
    pub landlock: Result<i64, String>,
}

impl HostFacts {
    /// This machine, read as the broker reads it at start (`cgroup::detect_host`,
    /// `available_parallelism`).
    fn detect() -> HostFacts {
        let cpus = std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
        let mut facts = HostFacts::from_layout(&cgroup::detect_host(), cpus);
        facts.landlock = crate::sys::landlock_abi_version().map_err(|errno| format!("{errno:?}"));
        facts
    }

    fn from_layout(layout: &Layout, cpus: u32) -> HostFacts {
        let (cgroup, memory_cgroup) = match layout {
            Layout::V2 { .. } => ("cgroup v2 (memory, pids)".to_owned(), true),
            Layout::V1 { memory, pids, cpu } => {
                let present: Vec<&str> = [("memory", memory), ("pids", pids), ("cpu", cpu)]
                    .into_iter()
                    .filter(|(_, dir)| dir.is_some())
                    .map(|(name, _)| name)
                    .collect();
                (
                    format!("cgroup v1 ({})", present.join(", ")),
                    memory.is_some(),
                )
            }
            Layout::None { .. } => ("no usable cgroup".to_owned(), false),
        };
        HostFacts {
            cgroup,
            cgroup_available: !matches!(layout, Layout::None { .. }),
            memory_cgroup,
            cpus,
            landlock: Err("not checked".to_owned()),
        }
    }
}

/// Which profile is explained.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Source {
    /// The profile's name; `None` for the default profile.
    pub name: Option<String>,
    /// The policy file as given.
    pub policy: Option<String>,
    /// The parameters given.
    pub params: BTreeMap<String, String>,
}

/// Everything `explain` says, as data (the JSON output is this, serialised).
#[derive(Debug, Serialize)]
pub struct Explanation {
    profile: Source,
    host: HostFacts,
    namespaces: Vec<NamespaceView>,
    root: RootView,
    privileges: Vec<Fact>,
    limits: LimitsView,
    filesystem: Vec<FsGrantView>,
    network: Vec<NetGrantView>,
    exec: ExecView,
    seccomp: SeccompView,
}

/// What changes when the profile runs a program (`portcullis run`, `Broker::spawn_program`).
#[derive(Debug, Serialize)]
struct ExecView {
    /// The profile's `[[mounts]]`: host paths shown in the program's root.
    mounts: Vec<MountView>,
    /// How this host's Landlock confines a program whose root holds mounts.
    landlock: String,
    /// Rules every executed program gets on top of the child's (or instead of one).
    program_rules: Vec<RuleView>,
    /// Rules a program with a root of mounts gets on top of those (or instead of one).
    root_rules: Vec<RuleView>,
}

#[derive(Debug, Serialize)]
struct MountView {
    path: String,
    /// `ro` or `rw`.
    access: &'static str,
}

#[derive(Debug, Serialize)]
struct NamespaceView {
    name: &'static str,
    flag: String,
    /// Entered once by the zygote and shared by the broker's children (else the child's own).
    shared_with_other_children: bool,
    hides: String,
}

#[derive(Debug, Serialize)]
struct RootView {
    filesystem: &'static str,
    options: &'static str,
    /// Mounts besides the root: none.
    mounts: Vec<String>,
    meaning: &'static str,
}

#[derive(Debug, Serialize)]
struct Fact {
    name: &'static str,
    state: &'static str,
    meaning: &'static str,
}

#[derive(Debug, Serialize)]
struct LimitsView {
    rlimits: Vec<RlimitView>,
    cgroup: CgroupView,
    wall_ms: Option<u64>,
    on_violation: &'static str,
    allow_processes: bool,
    broker: BrokerLimitsView,
}

#[derive(Debug, Serialize)]
struct RlimitView {
    resource: &'static str,
    value: u64,
    meaning: String,
}

#[derive(Debug, Serialize)]
struct CgroupView {
    /// Whether this host gives the child a cgroup at all.
    available: bool,
    memory_bytes: Option<u64>,
    processes: Option<u64>,
    cpu_quota_us: Option<u64>,
    cpu_period_us: Option<u64>,
}

#[derive(Debug, Serialize)]
struct BrokerLimitsView {
    requests_per_second: u32,
    burst: u32,
    open_fds: u32,
    fetch_bytes: u64,
    fetch_timeout_ms: u64,
}

#[derive(Debug, Serialize)]
struct FsGrantView {
    /// The file or directory granted.
    path: String,
    /// `subtree` (the directory and everything beneath) or `literal` (that one file).
    scope: &'static str,
    rights: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
struct NetGrantView {
    scheme: &'static str,
    host: String,
    /// `exact`, `subdomains` or `ip`.
    host_kind: &'static str,
    ports: Vec<u16>,
    allow_private: bool,
}

#[derive(Debug, Serialize)]
struct SeccompView {
    architecture: &'static str,
    /// What any system call outside the rules does.
    otherwise: String,
    rules: Vec<RuleView>,
    /// The one call outside the rules that is no violation: the service doorbell, handed to
    /// the broker (`outcome` "broker").
    doorbell: RuleView,
}

#[derive(Debug, Serialize)]
struct RuleView {
    syscall: &'static str,
    /// `allow` (any arguments), `allow-if` (only with the condition), `errno` (fails) or
    /// `broker` (the doorbell: handed to the broker, never run).
    outcome: &'static str,
    condition: Option<String>,
    errno: Option<String>,
    reason: &'static str,
}

/// The namespaces a child can be in: flag, name, what it hides from the child. The child's own
/// PID namespace comes from the zygote's `clone(CLONE_NEWPID)`; the others are
/// [`SHARED_NAMESPACES`].
const NAMESPACES: [(libc::c_int, &str, &str); 7] = [
    (
        libc::CLONE_NEWPID,
        "pid",
        "every other process: the child is PID 1 of a namespace holding only itself, so there \
         is no pid of the broker, the zygote, another child or the host it could signal, trace \
         or re-prioritise",
    ),
    (
        libc::CLONE_NEWUSER,
        "user",
        "host identities: created first and owning the others; sandbox ids map to \
         unprivileged host ids (from uid/gid {sandbox_id} under a root broker, one of its own \
         for each child; the user's own ids under an unprivileged one), never to host root, \
         and setgroups is denied for good",
    ),
    (
        libc::CLONE_NEWNS,
        "mount",
        "the host's mounts: the child's mount table holds only its empty root",
    ),
    (
        libc::CLONE_NEWNET,
        "net",
        "the host's network: the namespace has only a loopback interface, which is down; \
         sockets reach the child only from the broker",
    ),
    (
        libc::CLONE_NEWIPC,
        "ipc",
        "the host's System V IPC objects and POSIX message queues",
    ),
    (
        libc::CLONE_NEWUTS,
        "uts",
        "the host's name and domain name (the sandbox has its own, and sethostname is not \
         allowed)",
    ),
    (
        libc::CLONE_NEWCGROUP,
        "cgroup",
        "the host's cgroup paths: its own group appears as the root",
    ),
];

/// The explanation of `profile` (without mounts) on a host with `host`'s facts.
#[cfg(test)]
pub fn explain(profile: &Profile, source: Source, host: &HostFacts) -> Explanation {
    explain_with_mounts(profile, &[], source, host)
}

/// The rules of `rules` that `base` does not hold as they are (added, or replacing one).
fn rules_beyond(rules: &[SyscallRule], base: &[SyscallRule]) -> Vec<RuleView> {
    rules
        .iter()
        .filter(|r| !base.contains(r))
        .map(rule_view)
        .collect()
}

/// The exec-mode part of the explanation.
fn exec_view(profile: &Profile, mounts: &[MountGrant], host: &HostFacts) -> ExecView {
    let processes = profile.limits.allow_processes;
    let empty = exec_rules(ExecShape {
        processes,
        root: RootShape::Empty,
    });
    let rooted = exec_rules(ExecShape {
        processes,
        root: if mounts.iter().any(|m| m.writable) {
            RootShape::ReadWrite
        } else {
            RootShape::ReadOnly
        },
    });
    let landlock = match &host.landlock {
        Ok(abi) => format!(
            "Landlock ABI {abi} on this host: a program whose root holds mounts may open, list \
             and execute only beneath them (read-only binds: read, list, execute; read-write \
             binds: every right), enforced by the kernel after the mounts and before seccomp"
        ),
        Err(why) => format!(
            "no Landlock on this host ({why}): a run whose root holds mounts refuses to start \
             unless --allow-no-landlock, and then says the mounts alone confine the program"
        ),
    };
    ExecView {
        mounts: mounts
            .iter()
            .map(|m| MountView {
                path: m.path.clone(),
                access: if m.writable { "rw" } else { "ro" },
            })
            .collect(),
        landlock,
        program_rules: rules_beyond(&empty, CHILD_ALLOWLIST),
        root_rules: rules_beyond(&rooted, &empty),
    }
}

/// The explanation of `profile` with its exec-mode `mounts` on a host with `host`'s facts.
pub fn explain_with_mounts(
    profile: &Profile,
    mounts: &[MountGrant],
    source: Source,
    host: &HostFacts,
) -> Explanation {
    let limits = child_limits(
        &default_rlimits(),
        &profile.limits,
        host.memory_cgroup,
        host.cpus,
    );
    Explanation {
        profile: source,
        host: host.clone(),
        namespaces: namespaces(),
        root: RootView {
            filesystem: "tmpfs",
            options: "ro,nosuid,nodev,noexec,size=4k,nr_inodes=2,mode=0555",
            mounts: Vec::new(),
            meaning: "Nothing else is mounted: no /proc, /dev, /sys, /etc, /tmp or home \
                      directory, and the host's root was detached (pivot_root, then umount2 \
                      MNT_DETACH). Files reach the child only through the broker, as its \
                      filesystem grants allow.",
        },
        privileges: privileges(),
        limits: limits_view(&profile.limits, &limits, host),
        filesystem: profile
            .fs
            .iter()
            .map(|grant| {
                let (path, scope) = match &grant.scope {
                    Scope::Subtree => (grant.root.clone(), "subtree"),
                    Scope::Literal { file_name } => (
                        format!("{}/{file_name}", grant.root.trim_end_matches('/')),
                        "literal",
                    ),
                };
                let r = grant.rights;
                let rights = [
                    (r.read, "read"),
                    (r.write, "write"),
                    (r.create, "create"),
                    (r.delete, "delete"),
                    (r.list, "list"),
                ]
                .into_iter()
                .filter_map(|(granted, name)| granted.then_some(name))
                .collect();
                FsGrantView {
                    path,
                    scope,
                    rights,
                }
            })
            .collect(),
        network: profile
            .net
            .iter()
            .map(|grant| {
                let (host, host_kind) = match &grant.host {
                    HostPattern::Exact(name) => (name.clone(), "exact"),
                    HostPattern::Subdomains(base) => (format!("*.{base}"), "subdomains"),
                    HostPattern::Ip(addr) => (addr.to_string(), "ip"),
                };
                NetGrantView {
                    scheme: grant.scheme.as_str(),
                    host,
                    host_kind,
                    ports: grant.ports.clone(),
                    allow_private: grant.allow_private,
                }
            })
            .collect(),
        exec: exec_view(profile, mounts, host),
        seccomp: SeccompView {
            architecture: std::env::consts::ARCH,
            otherwise: match limits.on_violation {
                OnViolation::Kill => {
                    "stops in the kernel before it runs; the broker reports it and \
                                      kills the child (on_violation = \"kill\")"
                        .to_owned()
                }
                OnViolation::Deny => {
                    "stops in the kernel before it runs; the broker reports it and \
                                      fails it with EPERM, and the child goes on \
                                      (on_violation = \"deny\")"
                        .to_owned()
                }
            },
            rules: CHILD_ALLOWLIST.iter().map(rule_view).collect(),
            doorbell: doorbell_rule(),
        },
    }
}

fn namespaces() -> Vec<NamespaceView> {
    let mut views: Vec<NamespaceView> = NAMESPACES
        .iter()
        .filter(|(flag, _, _)| *flag == libc::CLONE_NEWPID || SHARED_NAMESPACES & flag != 0)
        .map(|&(flag, name, hides)| NamespaceView {
            name,
            flag: flag_names(flag_bits(flag)).join("|"),
            shared_with_other_children: flag != libc::CLONE_NEWPID,
            hides: hides.replace("{sandbox_id}", &DEFAULT_SANDBOX_HOST_ID.to_string()),
        })
        .collect();
    // A flag the broker added that this table does not describe is still shown.
    let described = NAMESPACES.iter().fold(0, |all, (flag, _, _)| all | flag);
    let undescribed = SHARED_NAMESPACES & !described;
    if undescribed != 0 {
        views.push(NamespaceView {
            name: "other",
            flag: flag_names(flag_bits(undescribed)).join("|"),
            shared_with_other_children: true,
            hides: "(not described by this version of portcullis explain)".to_owned(),
        });
    }
    views
}

fn flag_bits(flags: libc::c_int) -> u64 {
    u64::from(flags.unsigned_abs())
}

fn privileges() -> Vec<Fact> {
    vec![
        Fact {
            name: "capabilities",
            state: "none",
            meaning: "effective, permitted, inheritable and ambient sets are empty \
                      (PR_CAP_AMBIENT_CLEAR_ALL, then capset), even inside its own user namespace",
        },
        Fact {
            name: "bounding set",
            state: "empty",
            meaning: "every capability the kernel knows was dropped from the bounding set, so no \
                      execve can give one back",
        },
        Fact {
            name: "securebits",
            state: "NOROOT, NO_SETUID_FIXUP, KEEP_CAPS_LOCKED, NO_CAP_AMBIENT_RAISE, each locked",
            meaning: "uid 0 inside gains nothing from being uid 0, and that cannot be undone",
        },
        Fact {
            name: "no_new_privs",
            state: "set",
            meaning: "set-uid programs and file capabilities give nothing (PR_SET_NO_NEW_PRIVS)",
        },
        Fact {
            name: "dumpable",
            state: "0",
            meaning: "no core dumps; host processes of the same uid cannot ptrace it or read its \
                      /proc entries",
        },
        Fact {
            name: "parent death",
            state: "SIGKILL",
            meaning: "it dies with the zygote, which dies with the broker (PR_SET_PDEATHSIG, \
                      checked again through a lifeline pipe)",
        },
        Fact {
            name: "session",
            state: "new",
            meaning: "setsid, so no controlling terminal and not in the broker's process group",
        },
        Fact {
            name: "file descriptors",
            state: "0-4 only",
            meaning: "0, 1 and 2 are /dev/null, 3 is its channel to the broker, 4 its service \
                      channel (files and network); every other inherited fd was closed \
                      (close_range) before anything else ran",
        },
    ]
}

fn limits_view(limits: &Limits, derived: &ChildLimits, host: &HostFacts) -> LimitsView {
    let rlimits = derived
        .rlimits
        .iter()
        .map(|r| {
            let (resource, meaning) = match r.resource {
                RlimitResource::Core => ("RLIMIT_CORE", "core file size: no core files".to_owned()),
                RlimitResource::MemLock => ("RLIMIT_MEMLOCK", "bytes of locked memory".to_owned()),
                RlimitResource::MsgQueue => (
                    "RLIMIT_MSGQUEUE",
                    "bytes in POSIX message queues".to_owned(),
                ),
                RlimitResource::OpenFiles => (
                    "RLIMIT_NOFILE",
                    if u64::from(limits.open_fds).saturating_add(OWN_FDS) == r.value {
                        format!(
                            "fd numbers below it: open_fds ({}) brokered fds plus {OWN_FDS} of \
                             its own",
                            limits.open_fds
                        )
                    } else {
                        "fd numbers below it: the broker's baseline, which a profile never \
                         raises"
                            .to_owned()
                    },
                ),
                RlimitResource::FileSize => (
                    "RLIMIT_FSIZE",
                    "largest file it may write, brokered files included; beyond it the kernel \
                     sends SIGXFSZ"
                        .to_owned(),
                ),
                RlimitResource::CpuSeconds => (
                    "RLIMIT_CPU",
                    "CPU seconds; at the limit the kernel kills it (ends as CpuLimit)".to_owned(),
                ),
                RlimitResource::AddressSpace => (
                    "RLIMIT_AS",
                    "address space: stands in for memory_bytes because this host gives the child \
                     no memory cgroup"
                        .to_owned(),
                ),
                RlimitResource::Stack => ("RLIMIT_STACK", "main-thread stack".to_owned()),
            };
            RlimitView {
                resource,
                value: r.value,
                meaning,
            }
        })
        .collect();
    let available = host.cgroup_available;
    let cg: CgroupLimits = derived.cgroup;
    LimitsView {
        rlimits,
        cgroup: CgroupView {
            available,
            memory_bytes: cg.memory_bytes.filter(|_| available),
            processes: cg.processes.filter(|_| available),
            cpu_quota_us: cg.cpu_quota.filter(|_| available).map(|(quota, _)| quota),
            cpu_period_us: cg.cpu_quota.filter(|_| available).map(|(_, period)| period),
        },
        wall_ms: derived
            .wall
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        on_violation: derived.on_violation.as_str(),
        allow_processes: limits.allow_processes,
        broker: BrokerLimitsView {
            requests_per_second: limits.requests_per_second,
            burst: limits.burst,
            open_fds: limits.open_fds,
            fetch_bytes: limits.fetch_bytes,
            fetch_timeout_ms: limits.fetch_timeout_ms,
        },
    }
}

/// The argument a rule compares, by name, and the names of the values it may hold.
fn argument(syscall: &str, arg: u32) -> (String, &'static [(u64, &'static str)]) {
    const CLONE_FLAGS: &[(u64, &str)] = &[
        (libc::CLONE_VM as u64, "CLONE_VM"),
        (libc::CLONE_FS as u64, "CLONE_FS"),
        (libc::CLONE_FILES as u64, "CLONE_FILES"),
        (libc::CLONE_SIGHAND as u64, "CLONE_SIGHAND"),
        (libc::CLONE_THREAD as u64, "CLONE_THREAD"),
        (libc::CLONE_NEWNS as u64, "CLONE_NEWNS"),
        (libc::CLONE_NEWCGROUP as u64, "CLONE_NEWCGROUP"),
        (libc::CLONE_NEWUTS as u64, "CLONE_NEWUTS"),
        (libc::CLONE_NEWIPC as u64, "CLONE_NEWIPC"),
        (libc::CLONE_NEWUSER as u64, "CLONE_NEWUSER"),
        (libc::CLONE_NEWPID as u64, "CLONE_NEWPID"),
        (libc::CLONE_NEWNET as u64, "CLONE_NEWNET"),
        (libc::CLONE_PARENT as u64, "CLONE_PARENT"),
        (libc::CLONE_PTRACE as u64, "CLONE_PTRACE"),
        (libc::CLONE_VFORK as u64, "CLONE_VFORK"),
    ];
    const TGKILL_TGID: &[(u64, &str)] = &[(1, "1 (itself)")];
    const PRCTL_OPTIONS: &[(u64, &str)] = &[
        (libc::PR_SET_NAME as u64, "PR_SET_NAME"),
        (libc::PR_GET_NAME as u64, "PR_GET_NAME"),
    ];
    const FCNTL_COMMANDS: &[(u64, &str)] = &[
        (libc::F_GETFD as u64, "F_GETFD"),
        (libc::F_SETFD as u64, "F_SETFD"),
        (libc::F_GETFL as u64, "F_GETFL"),
        (libc::F_SETFL as u64, "F_SETFL"),
        (libc::F_DUPFD_CLOEXEC as u64, "F_DUPFD_CLOEXEC"),
        (libc::F_ADD_SEALS as u64, "F_ADD_SEALS"),
        (libc::F_GET_SEALS as u64, "F_GET_SEALS"),
    ];
    const MEMFD_FLAGS: &[(u64, &str)] = &[(
        (libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) as u64,
        "MFD_CLOEXEC | MFD_ALLOW_SEALING",
    )];
    const SOCKET_LEVELS: &[(u64, &str)] = &[(libc::SOL_SOCKET as u64, "SOL_SOCKET")];
    const SOCKET_OPTIONS: &[(u64, &str)] = &[
        (libc::SO_RCVTIMEO as u64, "SO_RCVTIMEO"),
        (libc::SO_SNDTIMEO as u64, "SO_SNDTIMEO"),
        (libc::SO_RCVTIMEO_NEW as u64, "SO_RCVTIMEO_NEW"),
        (libc::SO_SNDTIMEO_NEW as u64, "SO_SNDTIMEO_NEW"),
    ];
    const IOCTL_REQUESTS: &[(u64, &str)] =
        &[(libc::TCGETS, "TCGETS"), (libc::TIOCGWINSZ, "TIOCGWINSZ")];
    const OPEN_FLAGS: &[(u64, &str)] = &[
        (libc::O_WRONLY as u64, "O_WRONLY"),
        (libc::O_RDWR as u64, "O_RDWR"),
        (libc::O_CREAT as u64, "O_CREAT"),
        (libc::O_TRUNC as u64, "O_TRUNC"),
        // O_TMPFILE without its O_DIRECTORY bit (__O_TMPFILE).
        (0o20_000_000, "O_TMPFILE"),
    ];
    const EXECVEAT_FLAGS: &[(u64, &str)] = &[(libc::AT_EMPTY_PATH as u64, "AT_EMPTY_PATH")];
    const SOCKET_DOMAINS: &[(u64, &str)] = &[(libc::AF_UNIX as u64, "AF_UNIX")];
    const NULL_POINTER: &[(u64, &str)] = &[(0, "NULL")];
    let (name, values): (&str, &'static [(u64, &'static str)]) = match (syscall, arg) {
        ("openat", 2) | ("open", 1) => ("flags", OPEN_FLAGS),
        ("execveat", 4) => ("flags", EXECVEAT_FLAGS),
        ("socket", 0) => ("domain", SOCKET_DOMAINS),
        ("prlimit64", 2) => ("new_limit", NULL_POINTER),
        ("clone", 0) => ("flags", CLONE_FLAGS),
        ("tgkill", 0) => ("tgid", TGKILL_TGID),
        ("prctl", 0) => ("option", PRCTL_OPTIONS),
        ("fcntl", 1) => ("cmd", FCNTL_COMMANDS),
        ("memfd_create", 1) => ("flags", MEMFD_FLAGS),
        ("setsockopt", 1) => ("level", SOCKET_LEVELS),
        ("setsockopt", 2) => ("optname", SOCKET_OPTIONS),
        ("ioctl", 1) => ("request", IOCTL_REQUESTS),
        _ => return (format!("argument {arg}"), &[]),
    };
    (name.to_owned(), values)
}

/// The name of `value` among `names`, or the number in hex.
fn value_name(names: &[(u64, &str)], value: u64) -> String {
    names
        .iter()
        .find(|(v, _)| *v == value)
        .map_or_else(|| format!("{value:#x}"), |(_, name)| (*name).to_owned())
}

/// `a`, `a or b`, `a, b or c`.
fn one_of(items: &[String]) -> String {
    match items {
        [] => "nothing".to_owned(),
        [only] => only.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The named bits of `bits` (`names` lists single bits); bits without a name in hex.
fn bit_names(names: &[(u64, &str)], bits: u64) -> Vec<String> {
    let mut left = bits;
    let mut out = Vec::new();
    for &(bit, name) in names {
        if bit != 0 && left & bit == bit {
            out.push(name.to_owned());
            left &= !bit;
        }
    }
    if left != 0 {
        out.push(format!("{left:#x}"));
    }
    out
}

fn flag_names(bits: u64) -> Vec<String> {
    bit_names(argument("clone", 0).1, bits)
}

/// "`name` is A, B or C" for the values a rule accepts.
fn is_one_of(syscall: &str, arg: u32, values: &[u64]) -> String {
    let (name, names) = argument(syscall, arg);
    let values: Vec<String> = values.iter().map(|v| value_name(names, *v)).collect();
    format!("{name} is {}", one_of(&values))
}

fn errno_name(errno: i32) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(errno))
}

fn rule_view(rule: &SyscallRule) -> RuleView {
    let view = |outcome, condition: Option<String>, errno: Option<String>| RuleView {
        syscall: rule.name,
        outcome,
        condition,
        errno,
        reason: rule.reason,
    };
    match rule.action {
        RuleAction::Allow => view("allow", None, None),
        RuleAction::AllowIfMasked { arg, mask, value } => {
            let (name, names) = argument(rule.name, arg);
            let mut parts = Vec::new();
            if mask & value != 0 {
                parts.push(format!(
                    "{name} include {}",
                    bit_names(names, mask & value).join(" | ")
                ));
            }
            if mask & !value != 0 {
                let subject = if parts.is_empty() {
                    format!("{name} ")
                } else {
                    String::new()
                };
                parts.push(format!(
                    "{subject}exclude {}",
                    bit_names(names, mask & !value).join(" | ")
                ));
            }
            view(
                "allow-if",
                Some(format!("only when {}", parts.join(" and "))),
                None,
            )
        }
        RuleAction::AllowIfOneOf { arg, values } => view(
            "allow-if",
            Some(format!("only when {}", is_one_of(rule.name, arg, values))),
            None,
        ),
        RuleAction::AllowIfBoth { first, second } => view(
            "allow-if",
            Some(format!(
                "only when {} and {}",
                is_one_of(rule.name, first.0, &[first.1]),
                is_one_of(rule.name, second.0, second.1)
            )),
            None,
        ),
        RuleAction::Errno(errno) => view(
            "errno",
            Some(format!("always fails with {}", errno_name(errno))),
            Some(errno_name(errno)),
        ),
        RuleAction::ErrnoIfOneOf { arg, values, errno } => view(
            "errno",
            Some(format!(
                "fails with {} when {}; any other call is a violation",
                errno_name(errno),
                is_one_of(rule.name, arg, values)
            )),
            Some(errno_name(errno)),
        ),
        RuleAction::ErrnoIfAnyBit { arg, bits, errno } => {
            let (name, names) = argument(rule.name, arg);
            let set: Vec<String> = bits.iter().flat_map(|&b| bit_names(names, b)).collect();
            view(
                "errno",
                Some(format!(
                    "fails with {} when {name} include any of {}",
                    errno_name(errno),
                    set.join(", ")
                )),
                Some(errno_name(errno)),
            )
        }
    }
}

/// Lines are wrapped at this many characters.
const WIDTH: usize = 100;

/// `  label      text` with `text` wrapped under itself.
fn row(out: &mut String, indent: usize, label: &str, label_width: usize, text: &str) {
    let pad = " ".repeat(indent);
    let start = indent + label.chars().count().max(label_width) + 2;
    let _ = writeln!(
        out,
        "{pad}{label:<label_width$}  {}",
        wrap_from(text, WIDTH, start, indent + label_width + 2)
    );
}

fn paragraph(out: &mut String, indent: usize, text: &str) {
    let pad = " ".repeat(indent);
    let _ = writeln!(out, "{pad}{}", wrap(text, WIDTH, indent));
}

fn limit_or_none(value: Option<String>) -> String {
    value.unwrap_or_else(|| "none".to_owned())
}

/// The text form.
pub fn render(e: &Explanation) -> String {
    let mut out = String::new();
    let header = match (&e.profile.name, &e.profile.policy) {
        (Some(name), Some(policy)) => {
            let params: Vec<String> = e
                .profile
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let params = if params.is_empty() {
                String::new()
            } else {
                format!(" with {}", params.join(", "))
            };
            format!("Sandbox of a child with profile {name:?} of {policy}{params}")
        }
        _ => "Sandbox of a child spawned without a profile (the default: no grants, default \
              limits)"
            .to_owned(),
    };
    paragraph(&mut out, 0, &header);
    let _ = writeln!(
        out,
        "On this host: {}, {} CPU{}.",
        e.host.cgroup,
        e.host.cpus,
        if e.host.cpus == 1 { "" } else { "s" }
    );

    let _ = writeln!(out, "\nNamespaces (what each hides from the child)");
    for (shared, title) in [
        (false, "its own:"),
        (
            true,
            "entered once by the zygote and shared with the broker's other children, none of \
             them the host's:",
        ),
    ] {
        paragraph(&mut out, 2, title);
        for ns in e
            .namespaces
            .iter()
            .filter(|ns| ns.shared_with_other_children == shared)
        {
            row(&mut out, 4, ns.name, 6, &ns.hides);
        }
    }

    let _ = writeln!(out, "\nFilesystem root");
    paragraph(
        &mut out,
        2,
        &format!(
            "/ is an empty {}, mounted {}. {}",
            e.root.filesystem, e.root.options, e.root.meaning
        ),
    );

    let _ = writeln!(out, "\nPrivileges");
    for fact in &e.privileges {
        row(
            &mut out,
            2,
            fact.name,
            16,
            &format!("{}: {}", fact.state, fact.meaning),
        );
    }

    let l = &e.limits;
    let _ = writeln!(out, "\nLimits");
    let _ = writeln!(out, "  rlimits (soft = hard: the child cannot raise them)");
    for r in &l.rlimits {
        let value = if matches!(
            r.resource,
            "RLIMIT_FSIZE" | "RLIMIT_AS" | "RLIMIT_MEMLOCK" | "RLIMIT_MSGQUEUE" | "RLIMIT_STACK"
        ) && r.value != 0
        {
            bytes(r.value)
        } else {
            r.value.to_string()
        };
        row(
            &mut out,
            4,
            &format!("{:<16} {value:>8}", r.resource),
            25,
            &r.meaning,
        );
    }
    if l.cgroup.available {
        let _ = writeln!(
            out,
            "  cgroup (its own group, child-<id>, made by the broker; `portcullis doctor` checks \
             that it can)"
        );
        row(
            &mut out,
            4,
            "memory",
            12,
            &limit_or_none(l.cgroup.memory_bytes.map(|b| {
                format!(
                    "{}, swap included; past it the kernel's OOM killer ends the child \
                     (OutOfMemory)",
                    bytes(b)
                )
            })),
        );
        row(
            &mut out,
            4,
            "tasks",
            12,
            &limit_or_none(l.cgroup.processes.map(|n| {
                format!(
                    "{n} processes and threads at once, the child included; fork and clone \
                     fail beyond"
                )
            })),
        );
        let cpu = match (l.cgroup.cpu_quota_us, l.cgroup.cpu_period_us) {
            (Some(quota), Some(period)) => format!(
                "{} ms of CPU time per {} ms ({}% of one CPU); throttled, never killed",
                quota / 1000,
                period / 1000,
                quota.saturating_mul(100) / period.max(1)
            ),
            _ => format!(
                "not throttled (cpu_percent covers all {} CPUs of this host)",
                e.host.cpus
            ),
        };
        row(&mut out, 4, "cpu", 12, &cpu);
    } else {
        paragraph(
            &mut out,
            2,
            "cgroup: none on this host, so no task limit and no CPU share; memory is limited by \
             RLIMIT_AS (above) instead",
        );
    }
    let _ = writeln!(out, "  supervisor (the broker, from outside the child)");
    row(
        &mut out,
        4,
        "wall clock",
        12,
        &limit_or_none(
            l.wall_ms
                .map(|ms| format!("{}, then the child is killed (WallTimeout)", millis(ms))),
        ),
    );
    let violation = match l.on_violation {
        "deny" => "deny: a system call outside the list below fails with EPERM and is reported",
        _ => {
            "kill: a system call outside the list below kills the child before it runs, and is \
              reported"
        }
    };
    row(&mut out, 4, "violation", 12, violation);
    let processes = if l.allow_processes {
        "allowed in exec mode (fork, vfork, clone without namespace flags, wait, signals to its \
         own processes), within the task limit above"
    } else {
        "none: creating a process is a violation (threads only)"
    };
    row(&mut out, 4, "processes", 12, processes);
    let _ = writeln!(out, "  requests to the broker");
    let b = &l.broker;
    row(
        &mut out,
        4,
        "rate",
        12,
        &format!(
            "{} requests a second, bursts of {}; past them requests are denied rate-limited",
            b.requests_per_second, b.burst
        ),
    );
    row(
        &mut out,
        4,
        "brokered fds",
        12,
        &format!("{} at once", b.open_fds),
    );
    row(
        &mut out,
        4,
        "fetches",
        12,
        &format!(
            "bodies cut at {}, each ended after {}",
            bytes(b.fetch_bytes),
            millis(b.fetch_timeout_ms)
        ),
    );

    let _ = writeln!(out, "\nFilesystem grants (through the broker)");
    if e.filesystem.is_empty() {
        paragraph(
            &mut out,
            2,
            "none: the child can open, list, create or delete no file (every request is denied \
             not-granted)",
        );
    }
    for g in &e.filesystem {
        let what = match g.scope {
            "literal" => "this file only",
            _ => "this directory and everything beneath",
        };
        row(
            &mut out,
            2,
            &g.path,
            2,
            &format!("{}: {what}", g.rights.join(", ")),
        );
    }

    let _ = writeln!(out, "\nNetwork grants (through the broker)");
    if e.network.is_empty() {
        paragraph(
            &mut out,
            2,
            "none: the child can connect to nothing and fetch nothing",
        );
    }
    for g in &e.network {
        let ports: Vec<String> = g.ports.iter().map(u16::to_string).collect();
        let hosts = match g.host_kind {
            "subdomains" => "any name beneath it, not the name itself",
            "ip" => "this address only",
            _ => "this name only",
        };
        let private = if g.allow_private {
            "private, loopback and other non-public addresses allowed"
        } else {
            "public addresses only"
        };
        let how = match g.scheme {
            "tcp" => "a TCP connection the broker makes",
            _ => "fetched by the broker",
        };
        row(
            &mut out,
            2,
            &format!("{} {}", g.scheme, g.host),
            2,
            &format!("port {} ({how}; {hosts}; {private})", ports.join(", ")),
        );
    }

    let x = &e.exec;
    let _ = writeln!(
        out,
        "\nExec mode (portcullis run: a program instead of an entry function)"
    );
    paragraph(
        &mut out,
        2,
        "A static program runs in the empty root above, executed from a file descriptor the \
         broker opened. A dynamic program gets a read-only minimal root instead: a fresh tmpfs \
         holding only bind mounts (read-only unless rw, always nosuid and nodev) of its \
         interpreter and the libraries its ELF headers name (found automatically), the program \
         itself, and the paths the profile, --ro and --rw give.",
    );
    if x.mounts.is_empty() {
        paragraph(&mut out, 2, "Mounts of this profile: none.");
    } else {
        let _ = writeln!(out, "  Mounts of this profile:");
        for m in &x.mounts {
            let what = if m.access == "rw" {
                "read-write (writes reach the host)"
            } else {
                "read-only"
            };
            row(&mut out, 4, &m.path, 2, what);
        }
    }
    paragraph(&mut out, 2, &format!("{}.", x.landlock));
    let _ = writeln!(
        out,
        "  System calls every program gets besides the list below ({}):",
        x.program_rules.len()
    );
    for r in &x.program_rules {
        rule_row(&mut out, r);
    }
    let _ = writeln!(
        out,
        "  and a program with a root of mounts ({}):",
        x.root_rules.len()
    );
    for r in &x.root_rules {
        rule_row(&mut out, r);
    }

    let s = &e.seccomp;
    let allowed: Vec<&RuleView> = s.rules.iter().filter(|r| r.outcome != "errno").collect();
    let failing: Vec<&RuleView> = s.rules.iter().filter(|r| r.outcome == "errno").collect();
    let _ = writeln!(out, "\nSystem calls (seccomp filter, {})", s.architecture);
    paragraph(
        &mut out,
        2,
        &format!(
            "Any system call not listed here, and any call made through another architecture's \
             numbers (x32, i386), {}.",
            s.otherwise
        ),
    );
    let _ = writeln!(out, "  Allowed ({}):", allowed.len());
    for r in allowed {
        rule_row(&mut out, r);
    }
    let _ = writeln!(
        out,
        "  Answered with an error instead of running ({}):",
        failing.len()
    );
    for r in failing {
        rule_row(&mut out, r);
    }
    let _ = writeln!(out, "  Handed to the broker (1):");
    rule_row(&mut out, &s.doorbell);
    out
}

/// The doorbell's name (`portcullis::ipc::service::DOORBELL_SYSCALL`).
#[cfg(target_arch = "x86_64")]
const DOORBELL_NAME: &str = "tuxcall";
/// The doorbell's name (`portcullis::ipc::service::DOORBELL_SYSCALL`: a number no
/// architecture assigns, so it has none).
#[cfg(not(target_arch = "x86_64"))]
const DOORBELL_NAME: &str = "DOORBELL_SYSCALL";

/// The one call outside the allowlist that is not a violation: the service doorbell.
fn doorbell_rule() -> RuleView {
    use portcullis::ipc::service::DOORBELL_TAG;
    RuleView {
        syscall: DOORBELL_NAME,
        outcome: "broker",
        condition: Some(format!(
            "only when its first argument is {DOORBELL_TAG:#x} (\"portcull\"), in this \
             architecture's numbers; with any other it is a violation"
        )),
        errno: None,
        reason: "the service doorbell: reserved and never implemented, so it never runs; it \
                 stops the calling thread and wakes the child's own broker thread, which serves \
                 the request the child left in its mailbox (a shared, sealed two-page memfd) or \
                 on its service channel and only then lets the call return (a mailbox answer's \
                 length, or an fd of the mailbox when the child asks for it)",
    }
}

fn rule_row(out: &mut String, r: &RuleView) {
    match &r.condition {
        None => row(out, 4, r.syscall, 17, r.reason),
        Some(condition) => {
            row(out, 4, r.syscall, 17, &format!("{condition}."));
            row(out, 4, "", 17, r.reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_policy::Policy;

    fn host() -> HostFacts {
        HostFacts {
            cgroup: "cgroup v1 (memory, pids, cpu)".to_owned(),
            cgroup_available: true,
            memory_cgroup: true,
            cpus: 2,
            landlock: Ok(7),
        }
    }

    #[test]
    fn every_shared_namespace_is_described() {
        let described = NAMESPACES.iter().fold(0, |all, (flag, _, _)| all | flag);
        assert_eq!(SHARED_NAMESPACES & !described, 0);
        let names: Vec<&str> = namespaces().iter().map(|n| n.name).collect();
        assert_eq!(
            names,
            ["pid", "user", "mount", "net", "ipc", "uts", "cgroup"]
        );
    }

    #[test]
    fn every_compared_value_of_the_allowlist_has_a_name() {
        for rule in CHILD_ALLOWLIST {
            let view = rule_view(rule);
            if let Some(condition) = &view.condition {
                assert!(!condition.contains("0x"), "{}: {condition}", rule.name);
                assert!(
                    !condition.contains("argument"),
                    "{}: {condition}",
                    rule.name
                );
            }
        }
    }

    #[test]
    fn conditions_read_as_sentences() {
        let find = |name: &str| {
            let rule = CHILD_ALLOWLIST.iter().find(|r| r.name == name).unwrap();
            rule_view(rule).condition.unwrap()
        };
        assert_eq!(
            find("fcntl"),
            "only when cmd is F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC, F_ADD_SEALS \
             or F_GET_SEALS"
        );
        assert_eq!(
            find("memfd_create"),
            "only when flags is MFD_CLOEXEC | MFD_ALLOW_SEALING"
        );
        assert!(find("clone").starts_with(
            "only when flags include CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | \
             CLONE_THREAD and exclude CLONE_NEWNS | "
        ));
        assert_eq!(find("clone3"), "always fails with ENOSYS");
        assert_eq!(
            find("ioctl"),
            "fails with ENOTTY when request is TCGETS or TIOCGWINSZ; any other call is a \
             violation"
        );
        assert!(find("setsockopt").starts_with("only when level is SOL_SOCKET and optname is"));
    }

    #[test]
    fn the_default_profile_has_no_grants_and_default_limits() {
        let e = explain(&Profile::default(), Source::default(), &host());
        assert!(e.filesystem.is_empty() && e.network.is_empty());
        assert_eq!(e.limits.cgroup.memory_bytes, Some(512 << 20));
        assert_eq!(e.limits.cgroup.processes, Some(64));
        assert_eq!(e.limits.cgroup.cpu_quota_us, Some(100_000));
        assert_eq!(e.limits.on_violation, "kill");
        let text = render(&e);
        assert!(text.contains("without a profile"), "{text}");
        assert!(text.contains("none: the child can open, list, create or delete no file"));
        assert!(text.contains("none: the child can connect to nothing"));
        for rule in CHILD_ALLOWLIST {
            assert!(text.contains(rule.name), "{} missing", rule.name);
        }
        assert!(text.contains("Handed to the broker (1):"), "{text}");
        assert!(text.contains("the service doorbell"), "{text}");
    }

    #[test]
    fn without_a_memory_cgroup_the_address_space_is_limited() {
        let host = HostFacts {
            cgroup: "no usable cgroup".to_owned(),
            cgroup_available: false,
            memory_cgroup: false,
            cpus: 2,
            landlock: Err("ENOSYS".to_owned()),
        };
        let e = explain(&Profile::default(), Source::default(), &host);
        assert!(!e.limits.cgroup.available);
        let text = render(&e);
        assert!(text.contains("RLIMIT_AS"), "{text}");
        assert!(text.contains("cgroup: none on this host"), "{text}");
        assert!(
            text.contains("no Landlock on this host (ENOSYS)")
                && text.contains("--allow-no-landlock"),
            "{text}"
        );
    }

    #[test]
    fn exec_mode_shows_mounts_landlock_and_the_added_rules() {
        let policy = Policy::from_toml_str(
            r#"
            [profiles.tool]
            [[profiles.tool.mounts]]
            path = "/usr/share/zoneinfo"
            [[profiles.tool.mounts]]
            path = "/srv/out"
            access = "rw"
            "#,
            "t.toml",
        )
        .unwrap();
        let (profile, mounts) = policy.instantiate_with_mounts("tool", &[]).unwrap();
        let e = explain_with_mounts(&profile, &mounts, Source::default(), &host());
        let text = render(&e);
        for expected in [
            "/usr/share/zoneinfo  read-only",
            "/srv/out  read-write (writes reach the host)",
            "Landlock ABI 7 on this host",
            "execveat",
            "only when flags include AT_EMPTY_PATH",
            "getdents64",
            "mkdirat",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
        // Every added rule carries its reason; the root's openat replaces the child's EACCES.
        let openat: Vec<&RuleView> = e
            .exec
            .root_rules
            .iter()
            .filter(|r| r.syscall == "openat")
            .collect();
        assert!(!openat.is_empty());
        assert!(e
            .exec
            .program_rules
            .iter()
            .chain(&e.exec.root_rules)
            .all(|r| r.reason.len() > 10));
        // Without mounts: none listed, and the read-only root's rules (no writes).
        let plain = explain(&profile, Source::default(), &host());
        assert!(plain.exec.mounts.is_empty());
        assert!(plain
            .exec
            .root_rules
            .iter()
            .all(|r| r.syscall != "mkdirat" || r.outcome == "errno"));
    }

    #[test]
    fn a_profile_shows_its_grants_and_limits() {
        let policy = Policy::from_toml_str(
            r#"
            [profiles.web]
            params = ["site"]
            [[profiles.web.fs]]
            path = "/srv/${site}"
            rights = ["read", "list"]
            [[profiles.web.fs]]
            path = "/etc/app.conf"
            scope = "literal"
            rights = ["read"]
            [[profiles.web.net]]
            scheme = "https"
            host = "*.${site}"
            [profiles.web.limits]
            memory_bytes = "256MiB"
            processes = 8
            cpu_percent = 50
            wall_ms = 30000
            on_violation = "deny"
            "#,
            "p.toml",
        )
        .unwrap();
        let profile = policy
            .instantiate("web", &[("site", "example.com")])
            .unwrap();
        let source = Source {
            name: Some("web".to_owned()),
            policy: Some("p.toml".to_owned()),
            params: [("site".to_owned(), "example.com".to_owned())].into(),
        };
        let text = render(&explain(&profile, source, &host()));
        for expected in [
            "profile \"web\" of p.toml with site=example.com",
            "/srv/example.com  read, list: this directory and everything beneath",
            "/etc/app.conf  read: this file only",
            "https *.example.com  port 443 (fetched by the broker; any name beneath it",
            "256 MiB, swap included",
            "8 processes and threads",
            "50 ms of CPU time per 100 ms (50% of one CPU)",
            "30 s, then the child is killed",
            "deny: a system call outside the list below fails with EPERM",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn json_has_the_same_facts() {
        let e = explain(&Profile::default(), Source::default(), &host());
        let json: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(json["limits"]["cgroup"]["processes"], 64);
        assert_eq!(
            json["seccomp"]["rules"].as_array().unwrap().len(),
            CHILD_ALLOWLIST.len()
        );
        assert_eq!(json["filesystem"].as_array().unwrap().len(), 0);
        assert_eq!(json["seccomp"]["doorbell"]["outcome"], "broker");
    }

    #[test]
    fn params_are_name_equals_value() {
        assert_eq!(
            parse_param("site=a=b"),
            Ok(("site".to_owned(), "a=b".to_owned()))
        );
        assert!(parse_param("site").is_err());
        assert!(parse_param("=x").is_err());
    }
}
