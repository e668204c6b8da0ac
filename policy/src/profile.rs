//! An instantiated profile: the grants and limits one child runs under.

use crate::host::HostName;
use std::net::IpAddr;

/// What one child may do, with every parameter substituted. Built by
/// [`Policy::instantiate`](crate::Policy::instantiate); the default profile grants nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Filesystem grants, in policy order; [`Decision::AllowPath`](crate::Decision) names one by
    /// index.
    pub fs: Vec<FsGrant>,
    /// Network grants, in policy order; [`Decision::AllowNet`](crate::Decision) names one by
    /// index.
    pub net: Vec<NetGrant>,
    /// Resource limits the broker enforces for the child.
    pub limits: Limits,
}

/// A host path shown in an exec-mode program's read-only minimal root
/// (`[[profiles.NAME.mounts]]`). Unlike an [`FsGrant`], which the broker serves on request, a
/// mount is bound into the program's own filesystem view, so a program that opens files by path
/// (a dynamic loader, a tool reading its data files) finds them there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountGrant {
    /// Clean absolute host path, not `/`.
    pub path: String,
    /// Read-write (`access = "rw"`) rather than read-only (`"ro"`, the default).
    pub writable: bool,
}

/// Access to a directory tree or a single file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsGrant {
    /// Clean absolute host directory the broker pre-opens; requests resolve beneath it.
    pub root: String,
    /// What beneath `root` the grant covers.
    pub scope: Scope,
    /// What the child may do there.
    pub rights: Rights,
}

/// What a filesystem grant covers beneath its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The root directory and everything beneath it.
    Subtree,
    /// Exactly one entry, `root/file_name`; `root` is then the file's parent directory.
    Literal {
        /// One clean path component.
        file_name: String,
    },
}

/// Filesystem rights. See [`Access`](crate::Access) for which request needs which right.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Rights {
    /// Open files for reading; stat.
    pub read: bool,
    /// Open files for writing, truncating or appending.
    pub write: bool,
    /// Create files and directories.
    pub create: bool,
    /// Unlink files; be the source of a rename.
    pub delete: bool,
    /// List directories; stat.
    pub list: bool,
}

impl Rights {
    /// Whether every right in `needed` is also in `self`.
    pub fn contains(&self, needed: &Rights) -> bool {
        (self.read || !needed.read)
            && (self.write || !needed.write)
            && (self.create || !needed.create)
            && (self.delete || !needed.delete)
            && (self.list || !needed.list)
    }

    /// Whether no right is granted.
    pub fn is_empty(&self) -> bool {
        *self == Rights::default()
    }
}

/// Permission to reach a host over one scheme on some ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetGrant {
    /// `Connect` requests match [`Scheme::Tcp`]; `Fetch` requests match `Http`/`Https`.
    pub scheme: Scheme,
    /// Which hosts.
    pub host: HostPattern,
    /// Which ports; never empty in a profile built from a policy.
    pub ports: Vec<u16>,
    /// Whether the host may resolve to a non-public address (loopback, private, link-local,
    /// unique-local, unspecified, multicast, broadcast, reserved, documentation ranges).
    pub allow_private: bool,
}

/// A network scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP, fetched by the broker.
    Http,
    /// HTTPS, fetched by the broker.
    Https,
    /// A raw TCP connection the broker makes and passes to the child.
    Tcp,
}

impl Scheme {
    /// The name used in policies and URLs: `"http"`, `"https"` or `"tcp"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Tcp => "tcp",
        }
    }

    /// 80 for http, 443 for https; tcp has none.
    pub fn default_port(&self) -> Option<u16> {
        match self {
            Scheme::Http => Some(80),
            Scheme::Https => Some(443),
            Scheme::Tcp => None,
        }
    }
}

/// Which hosts a network grant covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Exactly this DNS name (lowercase).
    Exact(String),
    /// Any name strictly beneath this one: `Subdomains("example.com")`, written
    /// `*.example.com`, matches `a.example.com` and `a.b.example.com`, not `example.com`.
    Subdomains(String),
    /// Exactly this address (IPv4-mapped IPv6 is stored as IPv4). A request may name it only
    /// as an IP literal, and the broker may connect only to it.
    Ip(IpAddr),
}

impl HostPattern {
    /// How specifically the pattern matches, or `None` if it does not match `host`.
    /// Exact names and addresses beat any wildcard; a longer wildcard beats a shorter one.
    pub(crate) fn match_rank(&self, host: &HostName) -> Option<usize> {
        match (self, host) {
            (HostPattern::Exact(name), HostName::Dns(asked)) if name == asked => Some(usize::MAX),
            (HostPattern::Ip(addr), HostName::Ip(asked)) if addr.to_canonical() == *asked => {
                Some(usize::MAX)
            }
            (HostPattern::Subdomains(base), HostName::Dns(asked)) => asked
                .strip_suffix(base.as_str())
                .and_then(|prefix| prefix.strip_suffix('.'))
                .filter(|prefix| !prefix.is_empty())
                .map(|_| base.len()),
            _ => None,
        }
    }
}

/// Resource limits for one child.
///
/// The first five bound what the child may ask of the broker; the rest bound the child's own
/// use of the machine and are enforced by the broker with cgroups (`memory_bytes`, `processes`,
/// `cpu_percent`), rlimits (`cpu_seconds`, `file_size_bytes`, and `memory_bytes` as an
/// `RLIMIT_AS` floor where no memory cgroup exists) and its own clock (`wall_ms`). For
/// `memory_bytes`, `cpu_seconds`, `wall_ms` and `file_size_bytes`, 0 means "no limit".
///
/// In a policy, each field is a key of the profile's `limits` table; absent keys keep their
/// default, unknown keys are errors. Byte counts may be integers or strings with a binary unit
/// (`B`, `KiB`, `MiB`, `GiB`, `TiB`).
///
/// ```
/// use portcullis_policy::{Limits, Policy, OnViolation};
/// let policy = Policy::from_toml_str(
///     r#"
///     [profiles.plugin.limits]
///     memory_bytes = "256MiB"
///     processes = 16
///     cpu_percent = 50          # half of one CPU
///     wall_ms = 30_000
///     on_violation = "deny"
///     "#,
///     "policy.toml",
/// )?;
/// let limits = policy.instantiate("plugin", &[])?.limits;
/// assert_eq!(limits.memory_bytes, 256 * 1024 * 1024);
/// assert_eq!(limits.on_violation, OnViolation::Deny);
/// assert_eq!(limits.file_size_bytes, Limits::default().file_size_bytes);
/// # Ok::<(), portcullis_policy::PolicyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Sustained broker requests per second (token bucket refill rate).
    pub requests_per_second: u32,
    /// Requests that may be made at once after a quiet spell (token bucket size).
    pub burst: u32,
    /// Brokered file descriptors the child may hold at once.
    pub open_fds: u32,
    /// Largest body one fetch may return, in bytes.
    pub fetch_bytes: u64,
    /// Longest one fetch may take, in milliseconds.
    pub fetch_timeout_ms: u64,
    /// Memory the child may use, in bytes: its cgroup's memory limit (swap included), or an
    /// `RLIMIT_AS` floor when there is no memory cgroup. 0 means no limit; otherwise at least
    /// [`Limits::MIN_MEMORY_BYTES`].
    pub memory_bytes: u64,
    /// Tasks (processes and threads, the child included) its cgroup may hold at once (the
    /// `pids` controller). 1 means the child may not start a single thread.
    pub processes: u32,
    /// CPU time the child may consume, in seconds (`RLIMIT_CPU`; the kernel sends `SIGXCPU`
    /// and then `SIGKILL`). 0 means no limit.
    pub cpu_seconds: u64,
    /// Share of CPU the child may use, in percent of one CPU: 100 is one full CPU, 250 two and
    /// a half (the cgroup's CPU quota per period). The broker treats a share above what the
    /// machine has as "no throttling"; the policy cannot know the machine, so it accepts up to
    /// [`Limits::MAX_CPU_PERCENT`].
    pub cpu_percent: u32,
    /// Wall-clock time the child may live, in milliseconds, after which the broker kills it.
    /// 0 means no limit.
    pub wall_ms: u64,
    /// Largest file the child may grow, in bytes (`RLIMIT_FSIZE`; it applies to files the
    /// broker opened for it too). 0 means no limit.
    pub file_size_bytes: u64,
    /// What a syscall outside the child's allowlist does.
    pub on_violation: OnViolation,
    /// Exec mode only: the program may create processes (`fork`, `vfork`, `clone` without any
    /// namespace flag, `wait4`, signals to its own processes), up to `processes` tasks. Without
    /// it creating a process is a violation. The processes share the child's PID namespace,
    /// filter, cgroup and limits; none can see or signal anything outside.
    pub allow_processes: bool,
}

impl Limits {
    /// The smallest memory limit other than 0 ("no limit"): 1 MiB. Anything below cannot even
    /// start a process, so a smaller value is taken for a unit mistake and refused.
    pub const MIN_MEMORY_BYTES: u64 = 1024 * 1024;
    /// The largest `processes`: the kernel's `PID_MAX_LIMIT` (2^22).
    pub const MAX_PROCESSES: u32 = 1 << 22;
    /// The largest `cpu_percent`: 1024 CPUs.
    pub const MAX_CPU_PERCENT: u32 = 100 * 1024;

    /// Checks every value against the ranges a policy file may give (the loader enforces the
    /// same ones, with the file's line and column): for limits that come another way, such as
    /// a `portcullis serve` request. `Err` names the first value out of range.
    pub fn check(&self) -> Result<(), String> {
        let ranges: [(&str, u64, u64, u64); 6] = [
            (
                "requests_per_second",
                self.requests_per_second.into(),
                1,
                u32::MAX.into(),
            ),
            ("burst", self.burst.into(), 1, u32::MAX.into()),
            ("fetch_timeout_ms", self.fetch_timeout_ms, 1, u64::MAX),
            (
                "processes",
                self.processes.into(),
                1,
                Self::MAX_PROCESSES.into(),
            ),
            (
                "cpu_percent",
                self.cpu_percent.into(),
                1,
                Self::MAX_CPU_PERCENT.into(),
            ),
            ("open_fds", self.open_fds.into(), 0, u32::MAX.into()),
        ];
        for (name, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(format!("{name} must be from {min} to {max}; found {value}"));
            }
        }
        if self.memory_bytes != 0 && self.memory_bytes < Self::MIN_MEMORY_BYTES {
            return Err(format!(
                "memory_bytes must be 0 (no limit) or at least 1 MiB ({}); found {}",
                Self::MIN_MEMORY_BYTES,
                self.memory_bytes
            ));
        }
        Ok(())
    }
}

impl Default for Limits {
    /// 200 requests/s, burst 400, 64 fds, 8 MiB per fetch, 10 s per fetch; 512 MiB of memory,
    /// 64 tasks, no CPU-time cap, one full CPU, no wall-clock cap, 1 GiB per file; a violation
    /// kills the child; no process creation.
    fn default() -> Self {
        Limits {
            requests_per_second: 200,
            burst: 400,
            open_fds: 64,
            fetch_bytes: 8 * 1024 * 1024,
            fetch_timeout_ms: 10_000,
            memory_bytes: 512 * 1024 * 1024,
            processes: 64,
            cpu_seconds: 0,
            cpu_percent: 100,
            wall_ms: 0,
            file_size_bytes: 1024 * 1024 * 1024,
            on_violation: OnViolation::Kill,
            allow_processes: false,
        }
    }
}

/// What happens when a child makes a syscall its allowlist does not contain.
///
/// Written in a policy as `on_violation = "kill"` or `"deny"`; serialised the same way.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OnViolation {
    /// The broker kills the whole child while the offending thread is still stopped in the
    /// kernel, so the syscall never runs, and reports the end as a seccomp violation naming the
    /// call. The default: nothing of the child runs after the attempt.
    #[default]
    Kill,
    /// The syscall fails with `EPERM` and the broker reports it; the child goes on. For code
    /// that probes for features it can live without.
    Deny,
}

impl OnViolation {
    /// The name used in policies: `"kill"` or `"deny"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            OnViolation::Kill => "kill",
            OnViolation::Deny => "deny",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Limits;

    #[test]
    fn limits_check_takes_the_loaders_ranges() {
        assert_eq!(Limits::default().check(), Ok(()));
        let no_memory_limit = Limits {
            memory_bytes: 0,
            ..Limits::default()
        };
        assert_eq!(no_memory_limit.check(), Ok(()));
        let bad = [
            Limits {
                processes: 0,
                ..Limits::default()
            },
            Limits {
                processes: Limits::MAX_PROCESSES + 1,
                ..Limits::default()
            },
            Limits {
                cpu_percent: 0,
                ..Limits::default()
            },
            Limits {
                memory_bytes: 4096,
                ..Limits::default()
            },
            Limits {
                burst: 0,
                ..Limits::default()
            },
        ];
        for limits in bad {
            assert!(limits.check().is_err(), "{limits:?} passed");
        }
    }
}
