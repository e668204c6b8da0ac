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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
}

impl Default for Limits {
    /// 200 requests/s, burst 400, 64 fds, 8 MiB per fetch, 10 s per fetch.
    fn default() -> Self {
        Limits {
            requests_per_second: 200,
            burst: 400,
            open_fds: 64,
            fetch_bytes: 8 * 1024 * 1024,
            fetch_timeout_ms: 10_000,
        }
    }
}
