//! `portcullis doctor`: what this host offers Portcullis, check by check, with the fix for each
//! gap.
//!
//! Each check is split in two: a `gather` part that reads the host (files under `/proc` and
//! `/sys`, a syscall, a trial in a fresh process) and a pure `judge_*` function from what was
//! read to a [`Check`], so the judgement is unit-tested on the text of other hosts (Ubuntu with
//! its AppArmor restriction, a Debian kernel with user namespaces off, a Docker container).

pub mod probe;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use portcullis_broker::cgroup::{self, CgroupLimits, Cgroups, Controller, Layout};
use portcullis_policy::Limits;

use crate::text::{error_chain, wrap};
use crate::{status, sys, Done};
use probe::{ProbeOutcome, Trial};

/// The hidden subcommand a trial process runs.
pub const PROBE_SUBCOMMAND: &str = "__doctor-probe";

/// The kernel Portcullis needs: `close_range` (5.9) closes a child's inherited fds, and seccomp
/// user notification gained fd injection in 5.9; `openat2` (5.6) resolves brokered paths.
const MIN_KERNEL: (u32, u32) = (5, 9);
/// The kernel with `cgroup.kill` (5.14), which a broker uses on cgroup v2.
const CGROUP_KILL_KERNEL: (u32, u32) = (5, 14);

/// Check that this host can run Portcullis sandboxes, and how to fix what it lacks.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "\
Check that this host can run Portcullis sandboxes, and how to fix what it lacks.

Each check prints OK, WARN or FAIL, what it found, and for anything short of OK the
concrete fix (a sysctl, a boot parameter, a systemd or container option). FAIL means
Portcullis cannot sandbox here; WARN means it can, with less (for example no cgroup:
rlimits only).

Checks, as the user running the command:
  kernel           version: 5.9 or later needed (close_range, seccomp fd injection, openat2);
                   5.14 for cgroup.kill
  user namespaces  the sysctls that restrict them (kernel.unprivileged_userns_clone,
                   user.max_user_namespaces, kernel.apparmor_restrict_unprivileged_userns), and
                   a trial: a fresh process enters user, mount, net, ipc, uts, cgroup and pid
                   namespaces, writes its id maps and mounts an empty tmpfs, as the zygote does
  seccomp          the Seccomp: line of /proc/self/status, the actions the kernel offers
                   (user_notif is needed for violation reports), and a trial: a fresh process
                   loads a filter with a notification listener, as each child does
  libseccomp       the library's version (2.5 or later, for user notification)
  landlock         the ABI version (landlock_create_ruleset), or why there is none
  cgroups          v1, v2 or none, the memory, pids and cpu controllers, and a trial: make a
                   broker's group, a child group with default limits, move a process in, and
                   remove them again
  nesting          signs of running inside a container or another sandbox

The cgroup trial does what a broker's start does and no more: it makes
portcullis-<pid>-<starttime> inside this process's own group (on cgroup v2 it may enable
the memory, pids and cpu controllers of this process's group for its children, as a broker
does) and removes it; a later broker sweeps it if doctor is killed half way. Nothing else
on the host is changed. Root is not needed.",
    after_long_help = "\
Examples:
  portcullis doctor
  sudo -u someone portcullis doctor    # what an unprivileged user gets

Exit status:
  0  no check FAILed (WARNs allowed)
  1  at least one check FAILed
  2  usage error (unknown flag)"
)]
pub struct DoctorArgs {}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// What Portcullis needs is there.
    Ok,
    /// Portcullis works, with less.
    Warn,
    /// Portcullis cannot sandbox here.
    Fail,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Short name: `kernel`, `user namespaces`, ...
    pub name: &'static str,
    /// How it came out.
    pub verdict: Verdict,
    /// One sentence: what was found.
    pub summary: String,
    /// Further facts, one per line.
    pub details: Vec<String>,
    /// What to do, when the verdict is not OK.
    pub fix: Option<String>,
}

impl Check {
    fn new(name: &'static str, verdict: Verdict, summary: impl Into<String>) -> Check {
        Check {
            name,
            verdict,
            summary: summary.into(),
            details: Vec::new(),
            fix: None,
        }
    }

    fn detail(mut self, line: impl Into<String>) -> Check {
        self.details.push(line.into());
        self
    }

    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// Runs every check and prints them; exit 1 when one FAILed.
pub fn run(_args: &DoctorArgs) -> Done {
    let euid = nix::unistd::geteuid().as_raw();
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let status_text = read("/proc/self/status");

    let mut checks = vec![judge_kernel(read("/proc/sys/kernel/osrelease").as_deref())];

    let userns = judge_user_namespaces(&UsernsFacts {
        euid,
        unprivileged_userns_clone: read("/proc/sys/kernel/unprivileged_userns_clone").as_deref(),
        max_user_namespaces: read("/proc/sys/user/max_user_namespaces").as_deref(),
        apparmor_restrict: read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
            .as_deref(),
        trial: &probe::spawn(Trial::Namespaces),
    });
    let seccomp = judge_seccomp(
        status_text.as_deref(),
        read("/proc/sys/kernel/seccomp/actions_avail").as_deref(),
        &probe::spawn(Trial::SeccompListener),
    );
    let sandbox_works = userns.verdict != Verdict::Fail && seccomp.verdict != Verdict::Fail;
    checks.push(userns);
    checks.push(seccomp);
    checks.push(judge_libseccomp(
        libseccomp::ScmpVersion::current()
            .map(|v| (v.major, v.minor, v.micro))
            .ok(),
        libseccomp::get_api(),
    ));
    checks.push(judge_landlock(
        sys::landlock_abi_version(),
        read("/sys/kernel/security/lsm").as_deref(),
        read("/proc/cmdline").as_deref(),
    ));
    let layout = cgroup::detect_host();
    let mut attach = None;
    let trial = cgroup_trial(&layout, &mut attach);
    let mut cgroups = judge_cgroups(&layout, &trial, euid);
    if let Some(note) = judge_attach_latency(
        attach,
        favordynmods_mounted(read("/proc/self/mountinfo").as_deref()),
    ) {
        cgroups = cgroups.detail(note);
    }
    checks.push(cgroups);
    checks.push(judge_nesting(
        &NestingFacts {
            dockerenv: Path::new("/.dockerenv").exists(),
            containerenv: Path::new("/run/.containerenv").exists(),
            pid1_environ: std::fs::read("/proc/1/environ").map_err(|e| e.to_string()),
            self_cgroup: read("/proc/self/cgroup"),
            uid_map: read("/proc/self/uid_map"),
            status: status_text,
        },
        sandbox_works,
    ));

    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(euid))
        .ok()
        .flatten()
        .map_or_else(String::new, |u| format!(" ({})", u.name));
    let stdout = render(&checks, &format!("uid {euid}{user}"));
    let failed = checks.iter().any(|c| c.verdict == Verdict::Fail);
    Done {
        stdout,
        status: if failed { status::FAILED } else { status::OK },
    }
}

/// The report: one block per check and a closing line.
pub fn render(checks: &[Check], who: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Portcullis doctor: this host, as {who}\n");
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    // "[WARN] " + name + two spaces
    let indent = 7 + width + 2;
    for check in checks {
        let label = format!("[{}]", check.verdict.label());
        let _ = writeln!(
            out,
            "{label:<6} {:<width$}  {}",
            check.name,
            wrap(&check.summary, 100, indent)
        );
        let pad = " ".repeat(indent);
        for detail in &check.details {
            let _ = writeln!(out, "{pad}- {}", wrap(detail, 100, indent + 2));
        }
        if let Some(fix) = &check.fix {
            let _ = writeln!(out, "{pad}fix: {}", wrap(fix, 100, indent + 5));
        }
    }
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    let (ok, warn, fail) = (
        count(Verdict::Ok),
        count(Verdict::Warn),
        count(Verdict::Fail),
    );
    let conclusion = if fail > 0 {
        "Portcullis cannot sandbox here until each FAIL is fixed."
    } else if warn > 0 {
        "Portcullis can sandbox here; read each WARN."
    } else {
        "Portcullis can sandbox here."
    };
    let _ = writeln!(out, "\n{ok} OK, {warn} WARN, {fail} FAIL. {conclusion}");
    out
}

fn errno_name(errno: i32) -> String {
    let e = nix::errno::Errno::from_raw(errno);
    format!("{e:?} ({})", e.desc())
}

/// A `/proc/sys` value, trimmed.
fn sysctl(text: Option<&str>) -> Option<&str> {
    text.map(str::trim)
}

// ---------------------------------------------------------------------------------------------
// kernel
// ---------------------------------------------------------------------------------------------

/// `(major, minor)` of a kernel release such as `6.18.44-fc-v657` or `5.15.0-91-generic`.
pub fn parse_kernel_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The kernel check, from `/proc/sys/kernel/osrelease`.
pub fn judge_kernel(osrelease: Option<&str>) -> Check {
    let Some(release) = osrelease.map(str::trim) else {
        return Check::new(
            "kernel",
            Verdict::Warn,
            "cannot read /proc/sys/kernel/osrelease, so the kernel version is unknown",
        )
        .fix("mount /proc; Portcullis needs Linux 5.9 or later");
    };
    let Some(version) = parse_kernel_release(release) else {
        return Check::new(
            "kernel",
            Verdict::Warn,
            format!("cannot tell the version of kernel {release:?}"),
        )
        .fix("make sure the kernel is Linux 5.9 or later");
    };
    if version < MIN_KERNEL {
        Check::new(
            "kernel",
            Verdict::Fail,
            format!(
                "Linux {release} is older than 5.9: no close_range (a child's inherited fds \
                 cannot be closed) and no seccomp fd injection; openat2 needs 5.6"
            ),
        )
        .fix("boot Linux 5.9 or later (e.g. your distribution's newer or backports kernel)")
    } else if version < CGROUP_KILL_KERNEL {
        Check::new(
            "kernel",
            Verdict::Warn,
            format!(
                "Linux {release}: new enough to sandbox (5.9+), but without cgroup.kill (5.14), \
                 which a broker on cgroup v2 uses to clear what a crashed broker left"
            ),
        )
        .fix("boot Linux 5.14 or later for cgroup.kill")
    } else {
        Check::new(
            "kernel",
            Verdict::Ok,
            format!(
                "Linux {release}: 5.9 or later (close_range, openat2, seccomp fd injection) \
                 and 5.14 or later (cgroup.kill)"
            ),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// user namespaces
// ---------------------------------------------------------------------------------------------

/// What the user-namespace check reads.
#[derive(Debug)]
pub struct UsernsFacts<'a> {
    /// The effective uid the check runs as.
    pub euid: u32,
    /// `/proc/sys/kernel/unprivileged_userns_clone` (Debian and Ubuntu kernels only).
    pub unprivileged_userns_clone: Option<&'a str>,
    /// `/proc/sys/user/max_user_namespaces`.
    pub max_user_namespaces: Option<&'a str>,
    /// `/proc/sys/kernel/apparmor_restrict_unprivileged_userns` (Ubuntu 23.10 and later).
    pub apparmor_restrict: Option<&'a str>,
    /// The namespaces trial.
    pub trial: &'a ProbeOutcome,
}

const PERSIST: &str = "to keep it after a reboot, put the same setting in \
                       /etc/sysctl.d/60-portcullis.conf";

const APPARMOR_PROFILE_FIX: &str = "either allow every program: sudo sysctl -w \
     kernel.apparmor_restrict_unprivileged_userns=0 (to keep it, put it in \
     /etc/sysctl.d/60-portcullis.conf); or allow only your broker's binary with an AppArmor \
     profile, /etc/apparmor.d/portcullis containing: abi <abi/4.0>, include <tunables/global> \
     profile portcullis /path/to/your/broker flags=(unconfined) { userns, } — then sudo \
     apparmor_parser -r /etc/apparmor.d/portcullis";

/// The user-namespace check.
pub fn judge_user_namespaces(facts: &UsernsFacts<'_>) -> Check {
    let root = facts.euid == 0;
    let clone_off = sysctl(facts.unprivileged_userns_clone) == Some("0");
    let max_zero = sysctl(facts.max_user_namespaces) == Some("0");
    let apparmor_on = sysctl(facts.apparmor_restrict) == Some("1");
    let mut settings = Vec::new();
    if let Some(v) = sysctl(facts.unprivileged_userns_clone) {
        settings.push(format!("kernel.unprivileged_userns_clone = {v}"));
    }
    if let Some(v) = sysctl(facts.max_user_namespaces) {
        settings.push(format!("user.max_user_namespaces = {v}"));
    }
    if let Some(v) = sysctl(facts.apparmor_restrict) {
        settings.push(format!(
            "kernel.apparmor_restrict_unprivileged_userns = {v}"
        ));
    }
    let settings_line = if settings.is_empty() {
        "no sysctl restricts them".to_owned()
    } else {
        settings.join(", ")
    };

    match facts.trial {
        ProbeOutcome::Ok => {
            let mut check = Check::new(
                "user namespaces",
                Verdict::Ok,
                "a fresh process entered user, mount, net, ipc, uts, cgroup and pid \
                 namespaces, wrote its id maps and mounted an empty read-only tmpfs, as the \
                 zygote does",
            )
            .detail(settings_line);
            if root && (clone_off || apparmor_on) {
                let why = if clone_off {
                    "kernel.unprivileged_userns_clone = 0"
                } else {
                    "Ubuntu's AppArmor restriction (kernel.apparmor_restrict_unprivileged_userns \
                     = 1)"
                };
                check = check.detail(format!(
                    "root is not restricted, but an unprivileged broker would be, by {why}"
                ));
            }
            check
        }
        ProbeOutcome::NotRun { problem } => Check::new(
            "user namespaces",
            Verdict::Fail,
            format!("the trial process did not run: {problem}"),
        )
        .detail(settings_line)
        .fix("run portcullis doctor from an installed binary on a mounted /proc"),
        ProbeOutcome::Failed { step, errno } => {
            let what = match step.as_str() {
                "user" => "unshare(CLONE_NEWUSER)",
                "id-maps" => "writing /proc/self/{setgroups,uid_map,gid_map}",
                "namespaces" => "unshare of the mount, net, ipc, uts and cgroup namespaces",
                "pid" => "unshare(CLONE_NEWPID)",
                "private-mounts" => "making the mounts private",
                "empty-root" => "mounting the empty read-only tmpfs",
                _ => "a namespace step",
            };
            let failed = format!("{what} failed with {}", errno_name(*errno));
            let check = |summary: String| {
                Check::new("user namespaces", Verdict::Fail, summary).detail(settings_line.clone())
            };
            if max_zero {
                check(format!(
                    "{failed}: user.max_user_namespaces = 0 allows no user namespace at all"
                ))
                .fix(format!(
                    "sudo sysctl -w user.max_user_namespaces=10000; {PERSIST}"
                ))
            } else if !root && clone_off {
                check(format!(
                    "{failed}: this kernel lets only root create user namespaces \
                     (kernel.unprivileged_userns_clone = 0)"
                ))
                .fix(format!(
                    "sudo sysctl -w kernel.unprivileged_userns_clone=1; {PERSIST}"
                ))
            } else if !root && apparmor_on {
                check(format!(
                    "{failed}: Ubuntu's AppArmor restriction on unprivileged user namespaces \
                     is on (kernel.apparmor_restrict_unprivileged_userns = 1): a user \
                     namespace may be created but holds no capabilities"
                ))
                .fix(APPARMOR_PROFILE_FIX)
            } else if *errno == libc::ENOSPC {
                check(format!(
                    "{failed}: the limit of user namespaces (user.max_user_namespaces) is used up"
                ))
                .fix(format!(
                    "raise it: sudo sysctl -w user.max_user_namespaces=10000; {PERSIST}"
                ))
            } else if step == "user" && matches!(*errno, libc::EINVAL | libc::ENOSYS) {
                check(format!(
                    "{failed}: this kernel was built without user namespaces (CONFIG_USER_NS)"
                ))
                .fix("boot a kernel built with CONFIG_USER_NS=y (every major distribution's is)")
            } else if *errno == libc::EPERM || *errno == libc::EACCES {
                check(format!(
                    "{failed}: refused by something outside Portcullis — usually the seccomp \
                     or AppArmor profile of a container this runs in (Docker's default profile \
                     refuses unshare and mount), or a security module"
                ))
                .fix(
                    "run on the host, or start the container with --security-opt \
                     seccomp=unconfined --security-opt apparmor=unconfined (Docker, Podman), or \
                     security.nesting=true (LXD); see the nesting check below",
                )
            } else {
                check(failed).fix(
                    "see user_namespaces(7) for the errno; the nesting check below may name an \
                     outer sandbox that refuses it",
                )
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// seccomp
// ---------------------------------------------------------------------------------------------

/// The value of `field:` in `/proc/<pid>/status` text.
pub fn status_field<'a>(status: &'a str, field: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name == field).then_some(value.trim())
    })
}

/// The seccomp check, from `/proc/self/status`, `/proc/sys/kernel/seccomp/actions_avail` and
/// the listener trial.
pub fn judge_seccomp(
    status: Option<&str>,
    actions_avail: Option<&str>,
    trial: &ProbeOutcome,
) -> Check {
    let Some(mode) = status.and_then(|s| status_field(s, "Seccomp")) else {
        return Check::new(
            "seccomp",
            Verdict::Fail,
            "this kernel has no seccomp (no Seccomp: line in /proc/self/status)",
        )
        .fix("boot a kernel built with CONFIG_SECCOMP=y and CONFIG_SECCOMP_FILTER=y");
    };
    let actions: Vec<&str> = actions_avail
        .map(|a| a.split_whitespace().collect())
        .unwrap_or_default();
    let has = |action: &str| actions.contains(&action);
    let mut details = Vec::new();
    details.push(match mode {
        "0" => "this process is not filtered yet (Seccomp: 0)".to_owned(),
        "2" => {
            let filters = status
                .and_then(|s| status_field(s, "Seccomp_filters"))
                .unwrap_or("some");
            format!(
                "this process already runs under {filters} seccomp filter(s) (Seccomp: 2): \
                 another sandbox or container; Portcullis's filter stacks on top of them"
            )
        }
        other => format!("Seccomp: {other}"),
    });
    if actions_avail.is_some() {
        details.push(format!(
            "user_notif {}, kill_process {} (actions_avail: {})",
            if has("user_notif") {
                "available"
            } else {
                "MISSING"
            },
            if has("kill_process") {
                "available"
            } else {
                "missing (not needed: the broker kills from outside)"
            },
            actions.join(" ")
        ));
    }
    let mut check = if mode == "1" {
        Check::new(
            "seccomp",
            Verdict::Fail,
            "this process runs in strict seccomp mode (Seccomp: 1) and can make almost no \
             system call",
        )
        .fix("run portcullis outside the strict-mode sandbox")
    } else if actions_avail.is_some() && !has("user_notif") {
        Check::new(
            "seccomp",
            Verdict::Fail,
            "the kernel offers no user notification (user_notif), which Portcullis needs to \
             report and stop a child's forbidden system calls",
        )
        .fix("boot Linux 5.9 or later built with CONFIG_SECCOMP_FILTER=y")
    } else {
        match trial {
            ProbeOutcome::Ok => Check::new(
                "seccomp",
                Verdict::Ok,
                "a fresh process loaded a filter with a user-notification listener, as each \
                 child does",
            ),
            ProbeOutcome::Failed { step, errno } if *errno == libc::EBUSY => Check::new(
                "seccomp",
                Verdict::Fail,
                format!(
                    "{step} failed with {}: a filter this process already runs under has a \
                     listener of its own (an outer sandbox using seccomp user notification), \
                     and listeners do not nest",
                    errno_name(*errno)
                ),
            )
            .fix("run the broker outside that sandbox"),
            ProbeOutcome::Failed { step, errno } => Check::new(
                "seccomp",
                Verdict::Fail,
                format!(
                    "loading a filter with a listener failed at {step} with {}",
                    errno_name(*errno)
                ),
            )
            .fix(
                "if this runs in a container, its seccomp profile may refuse seccomp(2): start \
                 it with --security-opt seccomp=unconfined",
            ),
            ProbeOutcome::NotRun { problem } => Check::new(
                "seccomp",
                Verdict::Fail,
                format!("the trial process did not run: {problem}"),
            )
            .fix("run portcullis doctor from an installed binary on a mounted /proc"),
        }
    };
    check.details.splice(0..0, details);
    check
}

/// The libseccomp check: the library's `(major, minor, micro)` and API level.
pub fn judge_libseccomp(version: Option<(u32, u32, u32)>, api: u32) -> Check {
    match version {
        Some((major, minor, micro)) if (major, minor) >= (2, 5) => Check::new(
            "libseccomp",
            Verdict::Ok,
            format!("{major}.{minor}.{micro} (2.5 or later: user notification), API level {api}"),
        ),
        Some((major, minor, micro)) => Check::new(
            "libseccomp",
            Verdict::Fail,
            format!(
                "{major}.{minor}.{micro} is older than 2.5, which Portcullis needs for seccomp \
                 user notification"
            ),
        )
        .fix("install libseccomp 2.5 or later (Debian/Ubuntu: apt-get install libseccomp2)"),
        None => Check::new(
            "libseccomp",
            Verdict::Warn,
            "the library did not report its version",
        )
        .fix("install libseccomp 2.5 or later"),
    }
}

// ---------------------------------------------------------------------------------------------
// Landlock
// ---------------------------------------------------------------------------------------------

/// The Landlock check, from `landlock_create_ruleset`'s answer, `/sys/kernel/security/lsm` and
/// `/proc/cmdline`.
pub fn judge_landlock(
    abi: Result<i64, nix::errno::Errno>,
    lsm: Option<&str>,
    cmdline: Option<&str>,
) -> Check {
    use nix::errno::Errno;
    let active = lsm.map(|l| format!("active security modules: {}", l.trim()));
    let boot_lsm = cmdline.and_then(|c| {
        c.split_whitespace()
            .find_map(|word| word.strip_prefix("lsm="))
            .map(str::to_owned)
    });
    let use_note = "`portcullis run` uses Landlock as a second layer around the paths it mounts \
                    for a program (a dynamic program's libraries, --ro, --rw, a profile's mounts): \
                    without it such a run refuses to start unless --allow-no-landlock. A static \
                    program with nothing mounted, and every entry-function child, has an empty \
                    root and does not need it";
    let mut check = match abi {
        Ok(version) => {
            let adds = match version {
                1 => "filesystem access",
                2 => "filesystem access, refer (rename and link across directories)",
                3 => "filesystem access, refer, truncate",
                4 => "filesystem access, refer, truncate, TCP bind and connect",
                5 => "filesystem, refer, truncate, TCP, device ioctl",
                _ => {
                    "filesystem, refer, truncate, TCP, device ioctl, abstract UNIX socket and \
                      signal scoping, and later additions"
                }
            };
            Check::new(
                "landlock",
                Verdict::Ok,
                format!("Landlock ABI {version} ({adds})"),
            )
            .detail(use_note)
        }
        Err(Errno::EOPNOTSUPP) => {
            let current = boot_lsm.as_deref().map_or_else(
                || "the kernel's default list".to_owned(),
                |l| format!("lsm={l}"),
            );
            Check::new(
                "landlock",
                Verdict::Warn,
                format!(
                    "Landlock is built into this kernel but not enabled at boot ({current} does \
                     not list landlock)"
                ),
            )
            .detail(use_note)
            .fix(
                "add landlock to the lsm= boot parameter, keeping the modules already there \
                 (e.g. lsm=landlock,lockdown,yama,integrity,apparmor,bpf): in \
                 GRUB_CMDLINE_LINUX of /etc/default/grub, then sudo update-grub and reboot",
            )
        }
        Err(Errno::ENOSYS) => Check::new(
            "landlock",
            Verdict::Warn,
            "this kernel has no Landlock (it needs Linux 5.13+ with \
             CONFIG_SECURITY_LANDLOCK=y), or a seccomp filter of an outer sandbox hides the call",
        )
        .detail(use_note)
        .fix("boot a kernel built with CONFIG_SECURITY_LANDLOCK=y (Linux 5.13 or later)"),
        Err(errno) => Check::new(
            "landlock",
            Verdict::Warn,
            format!(
                "landlock_create_ruleset failed with {}",
                errno_name(errno as i32)
            ),
        )
        .detail(use_note)
        .fix("see landlock(7)"),
    };
    if let Some(active) = active {
        check.details.push(active);
    }
    check
}

// ---------------------------------------------------------------------------------------------
// cgroups
// ---------------------------------------------------------------------------------------------

/// What the cgroup trial did: the controllers it could limit, or the error (with its chain).
pub type CgroupTrial = Result<Vec<Controller>, String>;

/// Does what a broker does with `layout`: makes its instance directory (named for this process,
/// so a later broker sweeps it if doctor dies half way), a child group with a default profile's
/// limits, moves a parked process of this binary in (how long that took goes to `attach`), then
/// removes everything again.
fn cgroup_trial(layout: &Layout, attach: &mut Option<Duration>) -> CgroupTrial {
    if matches!(layout, Layout::None { .. }) {
        return Ok(Vec::new());
    }
    let chain = |e: cgroup::CgroupError| error_chain(&e);
    let instance = cgroup::own_instance_name(Path::new("/proc")).map_err(chain)?;
    let cgroups = Cgroups::open(layout.clone(), &instance).map_err(chain)?;
    let supported: Vec<Controller> = Controller::ALL
        .into_iter()
        .filter(|c| cgroups.supports(*c))
        .collect();
    let cpus = std::thread::available_parallelism()
        .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
    let full = CgroupLimits::from_policy(&Limits::default(), cpus);
    let limits = CgroupLimits {
        memory_bytes: full
            .memory_bytes
            .filter(|_| supported.contains(&Controller::Memory)),
        processes: full
            .processes
            .filter(|_| supported.contains(&Controller::Pids)),
        cpu_quota: full
            .cpu_quota
            .filter(|_| supported.contains(&Controller::Cpu)),
    };
    let made = cgroups.create(1, &limits).map_err(chain).and_then(|child| {
        let attached = attach_parked_process(&child).map(|took| *attach = Some(took));
        let removed = child.remove().map_err(chain);
        attached.and(removed)
    });
    let removed = cgroups.remove().map_err(chain);
    made.and(removed).map(|()| supported)
}

/// Moves a parked process of this binary into `child`, then lets it exit. Returns how long the
/// move took.
fn attach_parked_process(child: &cgroup::ChildCgroup) -> Result<Duration, String> {
    use std::process::{Command, Stdio};
    let mut parked = Command::new("/proc/self/exe")
        .arg(PROBE_SUBCOMMAND)
        .arg("park")
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start a process to move into the group: {e}"))?;
    let pid = i32::try_from(parked.id()).unwrap_or(i32::MAX);
    let start = Instant::now();
    let attached = child
        .attach(pid)
        .map(|()| start.elapsed())
        .map_err(|e| error_chain(&e));
    // Closing its stdin ends it; the group can only be removed once it is gone.
    drop(parked.stdin.take());
    let _ = parked.wait();
    attached
}

/// A move into a cgroup longer than this waited for the kernel (an RCU grace period).
const SLOW_ATTACH: Duration = Duration::from_millis(2);

/// Whether a cgroup hierarchy is mounted with `favordynmods` (any one sets it for all: the lock
/// it changes is global), from `/proc/self/mountinfo`.
pub fn favordynmods_mounted(mountinfo: Option<&str>) -> bool {
    mountinfo.is_some_and(|text| {
        text.lines().any(|line| {
            let Some((_, after)) = line.split_once(" - ") else {
                return false;
            };
            let mut fields = after.split(' ');
            let fstype = fields.next().unwrap_or("");
            let _source = fields.next();
            let super_options = fields.next().unwrap_or("");
            fstype.starts_with("cgroup") && super_options.split(',').any(|o| o == "favordynmods")
        })
    })
}

/// A note on the trial's move into its group when it was slow: every sandbox pays that wait
/// once at its start (`portcullis run` once per run), and a mount option removes it.
pub fn judge_attach_latency(attach: Option<Duration>, favordynmods: bool) -> Option<String> {
    let took = attach?;
    if took < SLOW_ATTACH || favordynmods {
        return None;
    }
    Some(format!(
        "moving a process into its group took {:.1} ms: the kernel waits for an RCU grace \
         period to take the lock of every cgroup move (cgroup_threadgroup_rwsem), so each \
         sandbox pays this once as it starts (portcullis run on every run); a host that starts \
         many short sandboxes can remove the wait by mounting a cgroup hierarchy with \
         favordynmods, e.g. as root `mount -o remount,favordynmods /sys/fs/cgroup` (cgroup v2; \
         on a v1 host its cgroup2 mount, often /sys/fs/cgroup/unified, serves: the lock is \
         global), at the cost of slightly slower fork and exit; it may stay in effect until \
         reboot",
        took.as_secs_f64() * 1e3
    ))
}

/// The cgroup check: the detected layout and how the trial went.
pub fn judge_cgroups(layout: &Layout, trial: &CgroupTrial, euid: u32) -> Check {
    let floor = "children get rlimits only: memory as address space (RLIMIT_AS), no task limit, \
                 no CPU share";
    let v2_fix = "give the broker a cgroup v2 base that holds no process: as root, mkdir \
                  /sys/fs/cgroup/portcullis, write \"+memory +pids +cpu\" to \
                  /sys/fs/cgroup/cgroup.subtree_control, and start the broker with \
                  CgroupSetting::At(Layout::V2 { base: \"/sys/fs/cgroup/portcullis\" }); a \
                  broker inside its own delegated group (Delegate=yes) cannot enable controllers \
                  below itself yet (docs/HOW-IT-WORKS.md, cgroups, known gap)";
    let v1_fix = |dirs: &[(Controller, &Path)]| {
        let mut unique: Vec<String> = Vec::new();
        for (_, dir) in dirs {
            let dir = dir.display().to_string();
            if !unique.contains(&dir) {
                unique.push(dir);
            }
        }
        format!(
            "as root, delegate a group in each hierarchy, as systemd's Delegate=yes does: for d \
             in {}; do mkdir $d/portcullis && chown {euid} $d/portcullis && echo $PID > \
             $d/portcullis/cgroup.procs; done — where $PID is the shell that then starts the \
             broker as uid {euid} (scripts/test-unprivileged.sh does this for CI)",
            unique.join(" ")
        )
    };
    let who = if euid == 0 {
        "root".to_owned()
    } else {
        format!("uid {euid}")
    };
    let (version, dirs): (&str, Vec<(Controller, &Path)>) = match layout {
        Layout::None { reason } => {
            return Check::new(
                "cgroups",
                Verdict::Warn,
                format!("no cgroup hierarchy Portcullis can use ({reason}); {floor}"),
            )
            .fix(format!(
                "cgroup v2: {v2_fix}; cgroup v1: mount the memory, pids and cpu controllers"
            ));
        }
        Layout::V2 { base } => (
            "v2",
            Controller::ALL
                .iter()
                .map(|c| (*c, base.as_path()))
                .collect(),
        ),
        Layout::V1 { memory, pids, cpu } => (
            "v1",
            [
                (Controller::Memory, memory),
                (Controller::Pids, pids),
                (Controller::Cpu, cpu),
            ]
            .into_iter()
            .filter_map(|(c, dir)| dir.as_deref().map(|d| (c, d)))
            .collect(),
        ),
    };
    let mut check = match trial {
        Ok(controllers) => {
            let names: Vec<&str> = controllers.iter().map(Controller::as_str).collect();
            let missing: Vec<&str> = Controller::ALL
                .iter()
                .filter(|c| !controllers.contains(c))
                .map(Controller::as_str)
                .collect();
            let mut check = Check::new(
                "cgroups",
                if missing.is_empty() {
                    Verdict::Ok
                } else {
                    Verdict::Warn
                },
                format!(
                    "cgroup {version} with {}: made a broker's group and a child group with \
                     default limits, moved a process in, and removed both, as {who}",
                    names.join(", ")
                ),
            );
            if !missing.is_empty() {
                check = check
                    .detail(format!(
                        "no {} controller: {}",
                        missing.join(" or "),
                        missing
                            .iter()
                            .map(|c| match *c {
                                "memory" => "memory is limited by RLIMIT_AS instead",
                                "pids" => "no task limit",
                                _ => "no CPU share",
                            })
                            .collect::<Vec<_>>()
                            .join("; ")
                    ))
                    .fix(if version == "v2" {
                        v2_fix.to_owned()
                    } else {
                        "mount the missing cgroup v1 controllers (or move to cgroup v2)".to_owned()
                    });
            }
            check
        }
        Err(error) => Check::new(
            "cgroups",
            Verdict::Warn,
            format!("cgroup {version} is there, but {who} cannot make a broker's group in it: {error}; {floor}"),
        )
        .fix(if version == "v2" {
            v2_fix.to_owned()
        } else {
            v1_fix(&dirs)
        }),
    };
    for (controller, dir) in dirs {
        if version == "v2" {
            check = check.detail(format!("this process's group: {}", dir.display()));
            break;
        }
        check = check.detail(format!("{controller}: {}", dir.display()));
    }
    check
}

// ---------------------------------------------------------------------------------------------
// nesting
// ---------------------------------------------------------------------------------------------

/// What the nesting check reads.
#[derive(Debug)]
pub struct NestingFacts {
    /// `/.dockerenv` exists.
    pub dockerenv: bool,
    /// `/run/.containerenv` exists (Podman).
    pub containerenv: bool,
    /// `/proc/1/environ`, or why it could not be read.
    pub pid1_environ: Result<Vec<u8>, String>,
    /// `/proc/self/cgroup`.
    pub self_cgroup: Option<String>,
    /// `/proc/self/uid_map`.
    pub uid_map: Option<String>,
    /// `/proc/self/status`.
    pub status: Option<String>,
}

/// The nesting check. `sandbox_works`: the user-namespace and seccomp checks passed, so an outer
/// sandbox, if any, does not stand in the way.
pub fn judge_nesting(facts: &NestingFacts, sandbox_works: bool) -> Check {
    let mut signs = Vec::new();
    let mut notes = Vec::new();
    if facts.dockerenv {
        signs.push("/.dockerenv exists (Docker, or an image built by Docker)".to_owned());
    }
    if facts.containerenv {
        signs.push("/run/.containerenv exists (Podman)".to_owned());
    }
    match &facts.pid1_environ {
        Ok(environ) => {
            let container = environ
                .split(|b| *b == 0)
                .find_map(|var| var.strip_prefix(b"container="));
            if let Some(kind) = container {
                signs.push(format!(
                    "process 1 has container={}",
                    String::from_utf8_lossy(kind)
                ));
            }
        }
        Err(e) => notes.push(format!("/proc/1/environ not readable ({e}), not counted")),
    }
    if let Some(cgroup) = &facts.self_cgroup {
        let markers = ["docker", "lxc", "kubepods", "libpod", "containerd"];
        if let Some(line) = cgroup
            .lines()
            .find(|line| markers.iter().any(|m| line.contains(m)))
        {
            signs.push(format!("this process's cgroup names a container: {line}"));
        }
    }
    if let Some(map) = &facts.uid_map {
        let lines: Vec<Vec<&str>> = map
            .lines()
            .map(|l| l.split_whitespace().collect())
            .filter(|l: &Vec<&str>| !l.is_empty())
            .collect();
        if lines != [vec!["0", "0", "4294967295"]] {
            let shown: Vec<String> = lines.iter().map(|l| l.join(" ")).collect();
            signs.push(format!(
                "this process is in a user namespace (uid_map: {})",
                shown.join("; ")
            ));
        }
    }
    if let Some(status) = &facts.status {
        if status_field(status, "NoNewPrivs") == Some("1") {
            signs.push("no_new_privs is already set on this process".to_owned());
        }
        if status_field(status, "Seccomp") == Some("2") {
            signs.push("this process already runs under a seccomp filter".to_owned());
        }
    }
    let mut check = if signs.is_empty() {
        Check::new(
            "nesting",
            Verdict::Ok,
            "no sign of a container or another sandbox around this process",
        )
    } else if sandbox_works {
        Check::new(
            "nesting",
            Verdict::Warn,
            "this looks nested in a container or sandbox; the user-namespace and seccomp trials \
             above passed, so it does not stand in Portcullis's way",
        )
    } else {
        Check::new(
            "nesting",
            Verdict::Warn,
            "this looks nested in a container or sandbox, which likely causes the FAILs above",
        )
        .fix(
            "run on the host, or loosen the outer sandbox: Docker/Podman --security-opt \
             seccomp=unconfined --security-opt apparmor=unconfined (or a seccomp profile that \
             allows unshare, mount and seccomp); LXD security.nesting=true; Kubernetes a pod \
             with an Unconfined seccomp profile",
        )
    };
    check.details.extend(signs);
    check.details.extend(notes);
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 1 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
36 31 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn favordynmods_is_read_from_a_cgroup_mounts_super_options() {
        assert!(!favordynmods_mounted(Some(MOUNTINFO)));
        assert!(!favordynmods_mounted(None));
        let with = MOUNTINFO.replace("cgroup2 cgroup2 rw", "cgroup2 cgroup2 rw,favordynmods");
        assert!(favordynmods_mounted(Some(&with)));
        // Only a cgroup mount counts, and only the whole option.
        let tmpfs = MOUNTINFO.replace("tmpfs tmpfs rw,mode=755", "tmpfs tmpfs rw,favordynmods");
        assert!(!favordynmods_mounted(Some(&tmpfs)));
        let longer = MOUNTINFO.replace("cgroup2 cgroup2 rw", "cgroup2 cgroup2 rw,favordynmodsx");
        assert!(!favordynmods_mounted(Some(&longer)));
    }

    #[test]
    fn a_slow_cgroup_move_gets_the_mount_option_as_its_fix() {
        let note = judge_attach_latency(Some(Duration::from_micros(8_500)), false)
            .expect("8.5 ms is slow");
        assert!(
            note.starts_with("moving a process into its group took 8.5 ms"),
            "{note}"
        );
        assert!(note.contains("favordynmods"), "{note}");
        // Fast, already set, or no move made: nothing to say.
        assert_eq!(
            judge_attach_latency(Some(Duration::from_micros(300)), false),
            None
        );
        assert_eq!(
            judge_attach_latency(Some(Duration::from_millis(9)), true),
            None
        );
        assert_eq!(judge_attach_latency(None, false), None);
    }
    use nix::errno::Errno;

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_release("6.18.44-fc-v657\n"), Some((6, 18)));
        assert_eq!(parse_kernel_release("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(parse_kernel_release("5.10"), Some((5, 10)));
        assert_eq!(parse_kernel_release("garbage"), None);
        assert_eq!(judge_kernel(Some("6.18.44-fc-v657\n")).verdict, Verdict::Ok);
        assert_eq!(judge_kernel(Some("5.10.0-28-amd64")).verdict, Verdict::Warn);
        assert_eq!(
            judge_kernel(Some("5.4.0-150-generic")).verdict,
            Verdict::Fail
        );
        assert_eq!(judge_kernel(Some("4.19.0")).verdict, Verdict::Fail);
        assert_eq!(judge_kernel(None).verdict, Verdict::Warn);
    }

    fn userns(
        euid: u32,
        clone: Option<&str>,
        apparmor: Option<&str>,
        trial: ProbeOutcome,
    ) -> Check {
        judge_user_namespaces(&UsernsFacts {
            euid,
            unprivileged_userns_clone: clone,
            max_user_namespaces: Some("63288\n"),
            apparmor_restrict: apparmor,
            trial: &trial,
        })
    }

    fn failed(step: &str, errno: i32) -> ProbeOutcome {
        ProbeOutcome::Failed {
            step: step.to_owned(),
            errno,
        }
    }

    #[test]
    fn user_namespaces_on_a_plain_host() {
        let check = userns(1000, None, None, ProbeOutcome::Ok);
        assert_eq!(check.verdict, Verdict::Ok);
        assert_eq!(check.details, ["user.max_user_namespaces = 63288"]);
    }

    #[test]
    fn ubuntu_with_the_apparmor_restriction() {
        // Ubuntu 24.04: the user namespace is created, the next unshare is refused.
        let check = userns(
            1000,
            Some("1\n"),
            Some("1\n"),
            failed("namespaces", libc::EPERM),
        );
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check.summary.contains("AppArmor"), "{}", check.summary);
        let fix = check.fix.unwrap();
        assert!(fix.contains("kernel.apparmor_restrict_unprivileged_userns=0"));
        assert!(fix.contains("userns,"));
        // Root is not restricted, but is told about unprivileged brokers.
        let check = userns(0, Some("1"), Some("1"), ProbeOutcome::Ok);
        assert_eq!(check.verdict, Verdict::Ok);
        assert!(check.details.iter().any(|d| d.contains("AppArmor")));
    }

    #[test]
    fn debian_with_unprivileged_user_namespaces_off() {
        let check = userns(1000, Some("0\n"), None, failed("user", libc::EPERM));
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check
            .fix
            .unwrap()
            .contains("sudo sysctl -w kernel.unprivileged_userns_clone=1"));
    }

    #[test]
    fn max_user_namespaces_zero() {
        let check = judge_user_namespaces(&UsernsFacts {
            euid: 0,
            unprivileged_userns_clone: None,
            max_user_namespaces: Some("0\n"),
            apparmor_restrict: None,
            trial: &failed("user", libc::ENOSPC),
        });
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check.fix.unwrap().contains("user.max_user_namespaces="));
    }

    #[test]
    fn a_docker_container_refuses_unshare() {
        let check = userns(0, None, None, failed("user", libc::EPERM));
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check.summary.contains("EPERM"), "{}", check.summary);
        assert!(check.fix.unwrap().contains("seccomp=unconfined"));
        let check = userns(
            0,
            None,
            None,
            ProbeOutcome::NotRun {
                problem: "no /proc".to_owned(),
            },
        );
        assert_eq!(check.verdict, Verdict::Fail);
    }

    const STATUS: &str = "Name:\tportcullis\nNoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0\n";
    const ACTIONS: &str = "kill_process kill_thread trap errno user_notif trace log allow\n";

    #[test]
    fn seccomp_on_a_plain_host() {
        let check = judge_seccomp(Some(STATUS), Some(ACTIONS), &ProbeOutcome::Ok);
        assert_eq!(check.verdict, Verdict::Ok);
        assert!(check.details[0].contains("Seccomp: 0"));
        assert!(check.details[1].starts_with("user_notif available, kill_process available"));
    }

    #[test]
    fn seccomp_without_user_notification_fails() {
        let check = judge_seccomp(
            Some(STATUS),
            Some("kill_process kill_thread trap errno trace log allow"),
            &ProbeOutcome::Ok,
        );
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(
            judge_seccomp(Some("Name:\tx\n"), Some(ACTIONS), &ProbeOutcome::Ok).verdict
                == Verdict::Fail
        );
    }

    #[test]
    fn seccomp_nested_under_a_listener() {
        let status = "NoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n";
        let check = judge_seccomp(Some(status), Some(ACTIONS), &failed("load", libc::EBUSY));
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check.summary.contains("do not nest"), "{}", check.summary);
        assert!(check.details[0].contains("1 seccomp filter(s)"));
        let check = judge_seccomp(Some(status), Some(ACTIONS), &ProbeOutcome::Ok);
        assert_eq!(check.verdict, Verdict::Ok);
    }

    #[test]
    fn libseccomp_versions() {
        assert_eq!(judge_libseccomp(Some((2, 5, 4)), 6).verdict, Verdict::Ok);
        assert_eq!(judge_libseccomp(Some((2, 4, 3)), 3).verdict, Verdict::Fail);
        assert_eq!(judge_libseccomp(None, 0).verdict, Verdict::Warn);
    }

    #[test]
    fn landlock_states() {
        let check = judge_landlock(Ok(7), None, None);
        assert_eq!(check.verdict, Verdict::Ok);
        assert!(check.summary.starts_with("Landlock ABI 7"));
        let check = judge_landlock(
            Err(Errno::EOPNOTSUPP),
            Some("lockdown,capability,yama,apparmor"),
            Some("BOOT_IMAGE=/vmlinuz ro quiet lsm=lockdown,yama,apparmor"),
        );
        assert_eq!(check.verdict, Verdict::Warn);
        assert!(
            check.summary.contains("lsm=lockdown,yama,apparmor"),
            "{}",
            check.summary
        );
        assert!(check.fix.unwrap().contains("lsm=landlock"));
        assert!(check.details.iter().any(|d| d.contains("capability,yama")));
        let check = judge_landlock(Err(Errno::ENOSYS), None, None);
        assert_eq!(check.verdict, Verdict::Warn);
        assert!(check.summary.contains("no Landlock"));
    }

    #[test]
    fn cgroups_v1_usable() {
        let layout = Layout::V1 {
            memory: Some("/sys/fs/cgroup/memory/app".into()),
            pids: Some("/sys/fs/cgroup/pids".into()),
            cpu: Some("/sys/fs/cgroup/cpu,cpuacct".into()),
        };
        let check = judge_cgroups(&layout, &Ok(Controller::ALL.to_vec()), 0);
        assert_eq!(check.verdict, Verdict::Ok);
        assert!(check
            .summary
            .starts_with("cgroup v1 with memory, pids, cpu"));
        assert_eq!(check.details[0], "memory: /sys/fs/cgroup/memory/app");
    }

    #[test]
    fn cgroups_v1_not_delegated() {
        let layout = Layout::V1 {
            memory: Some("/sys/fs/cgroup/memory".into()),
            pids: None,
            cpu: None,
        };
        let trial = Err(
            "create cgroup directory /sys/fs/cgroup/memory/portcullis-9-1: Permission denied"
                .to_owned(),
        );
        let check = judge_cgroups(&layout, &trial, 1000);
        assert_eq!(check.verdict, Verdict::Warn);
        assert!(check.summary.contains("uid 1000 cannot make"));
        assert!(check
            .fix
            .unwrap()
            .contains("for d in /sys/fs/cgroup/memory; do mkdir $d/portcullis && chown 1000"));
    }

    #[test]
    fn cgroups_v2_not_delegated_and_none() {
        let layout = Layout::V2 {
            base: "/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope".into(),
        };
        let trial = Err("enable controller memory: Device or resource busy".to_owned());
        let check = judge_cgroups(&layout, &trial, 1000);
        assert_eq!(check.verdict, Verdict::Warn);
        assert!(check.fix.unwrap().contains("holds no process"));
        let none = Layout::None {
            reason: "no cgroup2 mount".to_owned(),
        };
        let check = judge_cgroups(&none, &Ok(Vec::new()), 1000);
        assert_eq!(check.verdict, Verdict::Warn);
        assert!(check.summary.contains("rlimits only"));
    }

    fn host_facts() -> NestingFacts {
        NestingFacts {
            dockerenv: false,
            containerenv: false,
            pid1_environ: Ok(b"HOME=/\0TERM=linux\0".to_vec()),
            self_cgroup: Some("0::/user.slice/user-1000.slice/session-2.scope\n".to_owned()),
            uid_map: Some("         0          0 4294967295\n".to_owned()),
            status: Some(STATUS.to_owned()),
        }
    }

    #[test]
    fn nesting_on_a_host() {
        let check = judge_nesting(&host_facts(), true);
        assert_eq!(check.verdict, Verdict::Ok);
    }

    #[test]
    fn nesting_in_a_docker_container() {
        let facts = NestingFacts {
            dockerenv: true,
            pid1_environ: Err("Permission denied (os error 13)".to_owned()),
            self_cgroup: Some("0::/docker/3f2a9c\n".to_owned()),
            status: Some("NoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t1\n".to_owned()),
            ..host_facts()
        };
        let check = judge_nesting(&facts, false);
        assert_eq!(check.verdict, Verdict::Warn);
        assert!(check.fix.unwrap().contains("seccomp=unconfined"));
        assert!(check.details.iter().any(|d| d.contains("/docker/3f2a9c")));
        assert!(check.details.iter().any(|d| d.contains("seccomp filter")));
        assert!(check.details.iter().any(|d| d.contains("not counted")));
    }

    #[test]
    fn nesting_in_a_user_namespace_with_systemd_nspawn() {
        let facts = NestingFacts {
            pid1_environ: Ok(b"container=systemd-nspawn\0".to_vec()),
            uid_map: Some("0 100000 65536\n".to_owned()),
            status: Some("NoNewPrivs:\t1\nSeccomp:\t0\n".to_owned()),
            ..host_facts()
        };
        let check = judge_nesting(&facts, true);
        assert_eq!(check.verdict, Verdict::Warn);
        assert!(check.fix.is_none());
        let details = check.details.join("\n");
        assert!(details.contains("container=systemd-nspawn"));
        assert!(details.contains("uid_map: 0 100000 65536"));
        assert!(details.contains("no_new_privs"));
    }

    #[test]
    fn the_report_counts_verdicts_and_shows_fixes() {
        let checks = [
            Check::new("kernel", Verdict::Ok, "fine"),
            Check::new("cgroups", Verdict::Warn, "none")
                .detail("a fact")
                .fix("do this"),
        ];
        let text = render(&checks, "uid 0 (root)");
        assert!(text.contains("[OK]   kernel   fine"), "{text}");
        assert!(text.contains("[WARN] cgroups  none"), "{text}");
        assert!(text.contains("- a fact"), "{text}");
        assert!(text.contains("fix: do this"), "{text}");
        assert!(text.contains("1 OK, 1 WARN, 0 FAIL."), "{text}");
    }
}
