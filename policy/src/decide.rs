//! Requests, decisions, and the rules that connect them.

use crate::host::{is_public, parse_host, HostName};
use crate::path::{beneath, check_clean, is_clean_component, split_clean};
use crate::profile::{FsGrant, Profile, Rights, Scheme, Scope};
use crate::url::parse_fetch_url;
use std::net::IpAddr;

/// Something a child asks the broker to do for it.
///
/// Paths are the child's view, which is the host's: absolute host paths. They must already be
/// clean (see [`Profile::decide`]); nothing is normalised. Paths and URLs are `&str`, so
/// non-UTF-8 cannot reach this crate: the wire layer refuses it before the broker builds an
/// `Access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// Open a file. Needs `read` for reading, `write` for writing, truncating or appending,
    /// `create` for creating or exclusive creation.
    Open {
        /// The file.
        path: &'a str,
        /// How to open it.
        mode: OpenMode,
    },
    /// Read a file's or directory's metadata. Needs `read` or `list`.
    Stat {
        /// The file or directory; may be a grant's root.
        path: &'a str,
    },
    /// List a directory. Needs `list`.
    ReadDir {
        /// The directory; may be a grant's root.
        path: &'a str,
    },
    /// Make a directory. Needs `create`.
    CreateDir {
        /// The new directory.
        path: &'a str,
    },
    /// Unlink a file. Needs `delete`.
    Remove {
        /// The file.
        path: &'a str,
    },
    /// Rename an entry. `from` needs `delete` and `to` needs `create`, and both must resolve to
    /// grants with the same root, else [`DenyReason::CrossGrant`].
    Rename {
        /// The existing entry.
        from: &'a str,
        /// Its new name.
        to: &'a str,
    },
    /// Open a raw TCP connection; matches [`Scheme::Tcp`] grants. `host` is a DNS name, an
    /// IPv4 address, or an IPv6 address with or without brackets.
    Connect {
        /// Host to connect to.
        host: &'a str,
        /// Port to connect to (not 0).
        port: u16,
    },
    /// Have the broker fetch an `http` or `https` URL; matches grants of that scheme.
    Fetch {
        /// Absolute URL. Userinfo, IDNA (non-ASCII) hosts and anything else ambiguous are
        /// refused with [`DenyReason::BadUrl`]; fragments are fine.
        url: &'a str,
    },
}

/// The flags of an `Open`, as `open(2)` would take them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct OpenMode {
    /// Open for reading.
    pub read: bool,
    /// Open for writing.
    pub write: bool,
    /// Create the file if it does not exist (`O_CREAT`).
    pub create: bool,
    /// Truncate the file (`O_TRUNC`).
    pub truncate: bool,
    /// Append on every write (`O_APPEND`).
    pub append: bool,
    /// Fail if the file exists (`O_EXCL`).
    pub exclusive: bool,
}

impl OpenMode {
    /// The rights an open with these flags needs, or `None` if it would neither read nor write.
    pub fn needed_rights(&self) -> Option<Rights> {
        if !self.read && !self.write {
            return None;
        }
        Some(Rights {
            read: self.read,
            write: self.write || self.truncate || self.append,
            create: self.create || self.exclusive,
            delete: false,
            list: false,
        })
    }
}

/// The broker's answer to an [`Access`]. Anything but a `Deny` says exactly what to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A file access: `Profile::fs[grant]` covers it, and the broker resolves `relative`
    /// beneath that grant's pre-opened root. `relative` has no leading `/` and no `.` or `..`
    /// component; `""` is the root itself (only for `Stat` and `ReadDir`).
    AllowPath {
        /// Index into [`Profile::fs`].
        grant: usize,
        /// Path beneath the grant's root.
        relative: String,
    },
    /// A rename within the root of `Profile::fs[grant]`: `from` and `to` are relative to it,
    /// as in `AllowPath`.
    AllowRename {
        /// Index into [`Profile::fs`] (the grant that covers `from`; `to`'s has the same root).
        grant: usize,
        /// Existing entry, relative to the root.
        from: String,
        /// New name, relative to the root.
        to: String,
    },
    /// A connection or fetch: `Profile::net[grant]` covers `host:port` over `scheme`. The
    /// broker resolves `host` itself and must call [`Profile::check_address`] on every
    /// resolved address before connecting to it.
    AllowNet {
        /// Index into [`Profile::net`].
        grant: usize,
        /// Lowercase DNS name, or canonical IP address without brackets.
        host: String,
        /// Port to connect to.
        port: u16,
        /// `Tcp` for `Connect`, the URL's scheme for `Fetch`.
        scheme: Scheme,
    },
    /// Refused; the reason is safe to show to the child.
    Deny(DenyReason),
}

/// Why an access was refused: a closed set, safe to show to the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DenyReason {
    /// No grant covers the path, host, scheme or port.
    NotGranted,
    /// The most specific grant covering the path lacks a right the access needs.
    MissingRight,
    /// The path is not a clean absolute path of at most 4096 bytes.
    BadPath,
    /// The URL is not an `http`/`https` URL this crate can parse unambiguously.
    BadUrl,
    /// The request makes no sense (an open that neither reads nor writes, a bad `Connect` host
    /// or port 0).
    BadRequest,
    /// A rename between two different grant roots.
    CrossGrant,
    /// The host resolved to a non-public address the grant does not allow.
    PrivateAddress,
    /// The child exceeded its request rate (decided by the broker with a [`RateLimiter`](crate::RateLimiter)).
    RateLimited,
    /// The child holds as many brokered fds as `Limits::open_fds` allows (counted by the broker).
    TooManyFds,
}

impl DenyReason {
    /// A stable kebab-case name: `"not-granted"`, `"missing-right"`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            DenyReason::NotGranted => "not-granted",
            DenyReason::MissingRight => "missing-right",
            DenyReason::BadPath => "bad-path",
            DenyReason::BadUrl => "bad-url",
            DenyReason::BadRequest => "bad-request",
            DenyReason::CrossGrant => "cross-grant",
            DenyReason::PrivateAddress => "private-address",
            DenyReason::RateLimited => "rate-limited",
            DenyReason::TooManyFds => "too-many-fds",
        }
    }
}

impl std::fmt::Display for DenyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a request may name a grant's root itself, or only entries beneath it.
///
/// Creating, opening, removing or renaming an entry changes or reads it through its parent
/// directory, so a subtree grant's root is never the target of those: they resolve through a
/// less specific grant whose root is a proper ancestor, or are not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RootUse {
    Allowed,
    EntriesOnly,
}

impl Profile {
    /// Decides an access. Pure: no I/O, and the same answer for the same profile and access.
    ///
    /// Files: the path must be clean and absolute — `/data/./x`, `/data//x`, a trailing `/`
    /// (except `/` itself), any `..`, NUL, or more than 4096 bytes give
    /// [`DenyReason::BadPath`]; nothing is normalised. Grants match by whole components (a
    /// grant for `/data` does not cover `/data-evil`). The most specific matching grant wins:
    /// the longest root, with a literal grant counting one component more than its root. If
    /// several grants are equally specific, the first one with the needed rights is used. If
    /// the winner lacks a needed right the answer is [`DenyReason::MissingRight`], even if a
    /// less specific grant has it: a narrower grant narrows.
    ///
    /// Network: `Connect` matches `tcp` grants, `Fetch` matches grants of the URL's scheme,
    /// both on host and port; the most specific host pattern wins (exact name or address over
    /// wildcard, longer wildcard over shorter), then policy order.
    ///
    /// ```
    /// use portcullis_policy::{Access, Decision, DenyReason, FsGrant, Profile, Rights, Scope};
    /// let profile = Profile {
    ///     fs: vec![FsGrant {
    ///         root: "/data".into(),
    ///         scope: Scope::Subtree,
    ///         rights: Rights { read: true, ..Rights::default() },
    ///     }],
    ///     ..Profile::default()
    /// };
    /// assert_eq!(
    ///     profile.decide(&Access::Stat { path: "/data/a.txt" }),
    ///     Decision::AllowPath { grant: 0, relative: "a.txt".into() }
    /// );
    /// assert_eq!(
    ///     profile.decide(&Access::Stat { path: "/data/../etc/passwd" }),
    ///     Decision::Deny(DenyReason::BadPath)
    /// );
    /// ```
    pub fn decide(&self, access: &Access<'_>) -> Decision {
        let path_decision =
            |path: &str, root_use: RootUse, allowed: &dyn Fn(&Rights) -> bool| match self
                .resolve(path, root_use, allowed)
            {
                Ok((grant, relative)) => Decision::AllowPath { grant, relative },
                Err(reason) => Decision::Deny(reason),
            };
        match *access {
            Access::Open { path, mode } => {
                let Some(needed) = mode.needed_rights() else {
                    return Decision::Deny(DenyReason::BadRequest);
                };
                path_decision(path, RootUse::EntriesOnly, &|r| r.contains(&needed))
            }
            Access::Stat { path } => path_decision(path, RootUse::Allowed, &|r| r.read || r.list),
            Access::ReadDir { path } => path_decision(path, RootUse::Allowed, &|r| r.list),
            Access::CreateDir { path } => path_decision(path, RootUse::EntriesOnly, &|r| r.create),
            Access::Remove { path } => path_decision(path, RootUse::EntriesOnly, &|r| r.delete),
            Access::Rename { from, to } => self.decide_rename(from, to),
            Access::Connect { host, port } => {
                let Some(host) = parse_host(host) else {
                    return Decision::Deny(DenyReason::BadRequest);
                };
                if port == 0 {
                    return Decision::Deny(DenyReason::BadRequest);
                }
                self.decide_net(Scheme::Tcp, &host, port)
            }
            Access::Fetch { url } => match parse_fetch_url(url) {
                Some(target) => self.decide_net(target.scheme, &target.host, target.port),
                None => Decision::Deny(DenyReason::BadUrl),
            },
        }
    }

    /// Checks one address the broker resolved for the host of an `AllowNet` from `grant`.
    ///
    /// `Ok` only if the address is public, or the grant has `allow_private`, or the grant's
    /// host pattern is exactly this IP address. A grant for an IP address allows only that
    /// address (`NotGranted` for any other). IPv4-mapped IPv6 addresses are judged as IPv4.
    /// An index with no grant is `NotGranted`.
    ///
    /// Errors: [`DenyReason::PrivateAddress`] or [`DenyReason::NotGranted`].
    pub fn check_address(&self, grant: usize, addr: IpAddr) -> Result<(), DenyReason> {
        let grant = self.net.get(grant).ok_or(DenyReason::NotGranted)?;
        let addr = addr.to_canonical();
        if let crate::HostPattern::Ip(granted) = grant.host {
            return if granted.to_canonical() == addr {
                Ok(())
            } else {
                Err(DenyReason::NotGranted)
            };
        }
        if grant.allow_private || is_public(addr) {
            Ok(())
        } else {
            Err(DenyReason::PrivateAddress)
        }
    }

    fn decide_rename(&self, from: &str, to: &str) -> Decision {
        if split_clean(from).is_err() || split_clean(to).is_err() {
            return Decision::Deny(DenyReason::BadPath);
        }
        let resolved = self
            .resolve(from, RootUse::EntriesOnly, &|r| r.delete)
            .and_then(|f| Ok((f, self.resolve(to, RootUse::EntriesOnly, &|r| r.create)?)));
        match resolved {
            Err(reason) => Decision::Deny(reason),
            Ok(((grant, from_rel), (to_grant, to_rel))) => {
                if self.fs[grant].root != self.fs[to_grant].root {
                    Decision::Deny(DenyReason::CrossGrant)
                } else if self.holds_other_grant(from, grant)
                    || self.holds_other_grant(to, to_grant)
                {
                    // Moving a directory that holds (or is) another grant's root would carry that
                    // grant's files out from under its rules (a read-only subtree renamed into
                    // a writable name), or move a file the other grant governs.
                    Decision::Deny(DenyReason::MissingRight)
                } else {
                    Decision::AllowRename {
                        grant,
                        from: from_rel,
                        to: to_rel,
                    }
                }
            }
        }
    }

    /// True when `path` is, or is a directory above, the root or file of a grant other than
    /// `deciding` (compared by whole components).
    fn holds_other_grant(&self, path: &str, deciding: usize) -> bool {
        self.fs.iter().enumerate().any(|(i, grant)| {
            if i == deciding {
                return false;
            }
            let governed = match &grant.scope {
                Scope::Subtree => grant.root.clone(),
                Scope::Literal { file_name } => {
                    format!("{}/{}", grant.root.trim_end_matches('/'), file_name)
                }
            };
            governed == path
                || governed
                    .strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('/'))
                || (path == "/" && governed.starts_with('/'))
        })
    }

    /// Finds the grant that decides `path` and the path relative to its root.
    ///
    /// Allocates only the relative path it returns: every brokered file request comes here.
    fn resolve(
        &self,
        path: &str,
        root_use: RootUse,
        allowed: &dyn Fn(&Rights) -> bool,
    ) -> Result<(usize, String), DenyReason> {
        check_clean(path).map_err(|_| DenyReason::BadPath)?;
        // One pass, in policy order: the most specific matching grants so far, and the first of
        // them with the needed rights.
        let mut best_rank = None;
        let mut chosen = None;
        for (index, grant) in self.fs.iter().enumerate() {
            let Some((rank, rest)) = match_grant(grant, path, root_use) else {
                continue;
            };
            if best_rank.is_none_or(|best| rank > best) {
                best_rank = Some(rank);
                chosen = None;
            }
            if best_rank == Some(rank) && chosen.is_none() && allowed(&grant.rights) {
                chosen = Some((index, rest));
            }
        }
        best_rank.ok_or(DenyReason::NotGranted)?;
        let (index, rest) = chosen.ok_or(DenyReason::MissingRight)?;
        let relative = match &self.fs[index].scope {
            Scope::Subtree => rest.to_owned(),
            Scope::Literal { file_name } => file_name.clone(),
        };
        Ok((index, relative))
    }

    fn decide_net(&self, scheme: Scheme, host: &HostName, port: u16) -> Decision {
        let mut best: Option<(usize, usize)> = None;
        for (index, grant) in self.net.iter().enumerate() {
            if grant.scheme != scheme || !grant.ports.contains(&port) {
                continue;
            }
            if let Some(rank) = grant.host.match_rank(host) {
                if best.is_none_or(|(_, best_rank)| rank > best_rank) {
                    best = Some((index, rank));
                }
            }
        }
        match best {
            Some((grant, _)) => Decision::AllowNet {
                grant,
                host: host.to_host_string(),
                port,
                scheme,
            },
            None => Decision::Deny(DenyReason::NotGranted),
        }
    }
}

/// How specifically `grant` covers clean path `path` — its rank: the root's component count,
/// one more for a literal grant — and what of `path` lies beneath the root; or `None`.
///
/// A grant whose root or file name is not clean (possible only in a hand-built `Profile`)
/// matches nothing.
fn match_grant<'p>(grant: &FsGrant, path: &'p str, root_use: RootUse) -> Option<(usize, &'p str)> {
    check_clean(&grant.root).ok()?;
    let (root_len, rest) = beneath(&grant.root, path)?;
    match &grant.scope {
        Scope::Subtree => {
            (!rest.is_empty() || root_use == RootUse::Allowed).then_some((root_len, rest))
        }
        Scope::Literal { file_name } => {
            // A clean component has no '/', so this is "exactly one component, this name".
            let exact = is_clean_component(file_name) && rest == file_name.as_str();
            exact.then_some((root_len + 1, rest))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(root: &str, scope: Scope, rights: Rights) -> FsGrant {
        FsGrant {
            root: root.into(),
            scope,
            rights,
        }
    }

    const READ: Rights = Rights {
        read: true,
        write: false,
        create: false,
        delete: false,
        list: false,
    };
    const WRITE: Rights = Rights {
        read: false,
        write: true,
        create: false,
        delete: false,
        list: false,
    };

    fn open(path: &str, write: bool) -> Access<'_> {
        Access::Open {
            path,
            mode: OpenMode {
                read: !write,
                write,
                ..OpenMode::default()
            },
        }
    }

    #[test]
    fn equally_specific_grants_give_the_first_with_the_right_and_narrower_ones_narrow() {
        let profile = Profile {
            fs: vec![
                grant("/d", Scope::Subtree, READ),
                grant("/d", Scope::Subtree, WRITE),
                // As specific as a subtree at /d/x for the path /d/x itself.
                grant(
                    "/d",
                    Scope::Literal {
                        file_name: "x".into(),
                    },
                    READ,
                ),
                grant("/d/x", Scope::Subtree, WRITE),
                // Narrower than /d, and read-only: it narrows.
                grant("/d/ro", Scope::Subtree, READ),
                // Not clean: matches nothing.
                grant("/d/ro/", Scope::Subtree, WRITE),
            ],
            ..Profile::default()
        };
        let allow = |grant: usize, relative: &str| Decision::AllowPath {
            grant,
            relative: relative.into(),
        };
        assert_eq!(profile.decide(&open("/d/a", false)), allow(0, "a"));
        assert_eq!(profile.decide(&open("/d/a", true)), allow(1, "a"));
        assert_eq!(profile.decide(&open("/d/x", false)), allow(2, "x"));
        assert_eq!(
            profile.decide(&Access::Stat { path: "/d/x" }),
            allow(2, "x")
        );
        assert_eq!(profile.decide(&open("/d/x/y", true)), allow(3, "y"));
        assert_eq!(
            profile.decide(&open("/d/x/y", false)),
            Decision::Deny(DenyReason::MissingRight)
        );
        assert_eq!(profile.decide(&open("/d/ro/f", false)), allow(4, "f"));
        assert_eq!(
            profile.decide(&open("/d/ro/f", true)),
            Decision::Deny(DenyReason::MissingRight)
        );
        assert_eq!(
            profile.decide(&open("/e/a", false)),
            Decision::Deny(DenyReason::NotGranted)
        );
        assert_eq!(
            profile.decide(&open("/d-evil/a", false)),
            Decision::Deny(DenyReason::NotGranted)
        );
    }
}
