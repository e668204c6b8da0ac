//! The properties every decision must have, whatever the input: an independent, lexical check
//! of `Profile::decide`'s answers. Used by both fuzz targets and their replay tests.
//!
//! The one that matters most: an allowed path access names a grant, and the grant's root joined
//! with the decision's relative path is *exactly* the path the child asked for, with a relative
//! path that has no `..`, `.`, empty component, leading `/` or NUL. So the broker, which opens
//! `relative` beneath the grant's pre-opened root (with `openat2(RESOLVE_BENEATH | ...)`), acts
//! on a name that is lexically beneath the granted root and is the name that was checked.

use portcullis_policy::{Access, Decision, Profile, Rights, Scheme, Scope};
use std::net::IpAddr;

/// `root` joined with a relative path as the broker resolves it (`""` is the root itself).
pub fn joined(root: &str, relative: &str) -> String {
    match (root, relative) {
        (_, "") => root.to_owned(),
        ("/", _) => format!("/{relative}"),
        _ => format!("{root}/{relative}"),
    }
}

/// Whether `relative` is a clean relative path: no leading `/`, no NUL, and no component that
/// is empty, `.` or `..`. `""` (the root itself) is clean.
pub fn is_clean_relative(relative: &str) -> bool {
    relative.is_empty()
        || (!relative.contains('\0')
            && relative
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."))
}

/// Whether `relative` (clean) is inside what `scope` covers.
fn in_scope(scope: &Scope, relative: &str) -> bool {
    match scope {
        Scope::Subtree => true,
        Scope::Literal { file_name } => relative == file_name,
    }
}

/// The relative path of `path` beneath `g`, if `g` covers it (by whole components).
fn covers<'p>(g: &portcullis_policy::FsGrant, path: &'p str) -> Option<&'p str> {
    let relative = if path == g.root {
        ""
    } else if g.root == "/" {
        path.strip_prefix('/')?
    } else {
        path.strip_prefix(g.root.as_str())?.strip_prefix('/')?
    };
    match &g.scope {
        Scope::Subtree => Some(relative),
        Scope::Literal { file_name } => (relative == file_name).then_some(relative),
    }
}

/// How specific a grant is: its root's components, a literal file counting one more.
fn specificity(g: &portcullis_policy::FsGrant) -> usize {
    let components = g.root.split('/').filter(|c| !c.is_empty()).count();
    components + usize::from(matches!(g.scope, Scope::Literal { .. }))
}

/// A narrower grant narrows: no grant more specific than the one that decided covers `path`
/// (a subtree grant's root itself counts only for accesses that may target a root).
fn most_specific(
    profile: &Profile,
    grant: usize,
    path: &str,
    root_allowed: bool,
) -> Result<(), String> {
    let chosen = specificity(&profile.fs[grant]);
    let counts = |t: &portcullis_policy::FsGrant| {
        specificity(t) > chosen
            && covers(t, path).is_some_and(|relative| root_allowed || !relative.is_empty())
    };
    match profile.fs.iter().position(counts) {
        Some(narrower) => Err(format!(
            "grant {grant} decided {path:?}, but the more specific grant {narrower} covers it"
        )),
        None => Ok(()),
    }
}

/// The rights a path access needs, as a predicate on a grant's rights; `None` for accesses that
/// are not about one path.
type RightsCheck = Box<dyn Fn(&Rights) -> bool>;

fn path_rule<'a>(access: &Access<'a>) -> Option<(&'a str, bool, RightsCheck)> {
    // (path, whether the grant's root itself may be the target, rights check)
    Some(match *access {
        Access::Open { path, mode } => {
            let needed = mode.needed_rights()?;
            (path, false, Box::new(move |r: &Rights| r.contains(&needed)))
        }
        Access::Stat { path } => (path, true, Box::new(|r: &Rights| r.read || r.list)),
        Access::ReadDir { path } => (path, true, Box::new(|r: &Rights| r.list)),
        Access::CreateDir { path } => (path, false, Box::new(|r: &Rights| r.create)),
        Access::Remove { path } => (path, false, Box::new(|r: &Rights| r.delete)),
        Access::Rename { .. } | Access::Connect { .. } | Access::Fetch { .. } => return None,
    })
}

/// Checks one decision against the properties above. `Err` describes the broken property.
pub fn check(profile: &Profile, access: &Access<'_>, decision: &Decision) -> Result<(), String> {
    match decision {
        Decision::Deny(_) => Ok(()),
        Decision::AllowPath { grant, relative } => {
            let Some((path, root_allowed, rights_ok)) = path_rule(access) else {
                return Err(format!("AllowPath for a non-path access {access:?}"));
            };
            let g = profile.fs.get(*grant).ok_or(format!(
                "AllowPath names grant {grant}, which does not exist"
            ))?;
            if !is_clean_relative(relative) {
                return Err(format!("relative path {relative:?} is not clean"));
            }
            if joined(&g.root, relative) != path {
                return Err(format!(
                    "root {:?} + relative {relative:?} is not the path asked, {path:?}",
                    g.root
                ));
            }
            if relative.is_empty() && !root_allowed {
                return Err(format!("{access:?} allowed on the grant's root itself"));
            }
            if !relative.is_empty() && !in_scope(&g.scope, relative) {
                return Err(format!("{relative:?} is outside grant {grant}'s scope"));
            }
            if !rights_ok(&g.rights) {
                return Err(format!("grant {grant} lacks the rights {access:?} needs"));
            }
            most_specific(profile, *grant, path, root_allowed)
        }
        Decision::AllowRename { grant, from, to } => {
            let Access::Rename {
                from: asked_from,
                to: asked_to,
            } = *access
            else {
                return Err(format!("AllowRename for {access:?}"));
            };
            let g = profile.fs.get(*grant).ok_or(format!(
                "AllowRename names grant {grant}, which does not exist"
            ))?;
            for (relative, asked) in [(from, asked_from), (to, asked_to)] {
                if relative.is_empty() || !is_clean_relative(relative) {
                    return Err(format!("rename relative path {relative:?} is not clean"));
                }
                if joined(&g.root, relative) != asked {
                    return Err(format!(
                        "root {:?} + {relative:?} is not the path asked, {asked:?}",
                        g.root
                    ));
                }
            }
            if !g.rights.delete || !in_scope(&g.scope, from) {
                return Err(format!("grant {grant} may not give up {from:?}"));
            }
            most_specific(profile, *grant, asked_from, false)?;
            // The destination needs `create` from a grant with the same root that covers it.
            let covered = profile
                .fs
                .iter()
                .any(|t| t.root == g.root && t.rights.create && in_scope(&t.scope, to));
            if !covered {
                return Err(format!("no grant at {:?} may create {to:?}", g.root));
            }
            Ok(())
        }
        Decision::AllowNet {
            grant,
            host,
            port,
            scheme,
        } => {
            let n = profile.net.get(*grant).ok_or(format!(
                "AllowNet names grant {grant}, which does not exist"
            ))?;
            match *access {
                Access::Connect { port: asked, .. } if *scheme == Scheme::Tcp && asked == *port => {
                }
                Access::Fetch { .. } if *scheme != Scheme::Tcp => {}
                _ => return Err(format!("AllowNet {scheme:?}:{port} for {access:?}")),
            }
            if n.scheme != *scheme || !n.ports.contains(port) {
                return Err(format!(
                    "net grant {grant} does not cover {scheme:?} port {port}"
                ));
            }
            let host_ok = match &n.host {
                portcullis_policy::HostPattern::Exact(name) => host == name,
                portcullis_policy::HostPattern::Subdomains(suffix) => host
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                portcullis_policy::HostPattern::Ip(addr) => host
                    .parse::<IpAddr>()
                    .is_ok_and(|h| h.to_canonical() == addr.to_canonical()),
            };
            if !host_ok {
                return Err(format!(
                    "net grant {grant} ({:?}) does not cover {host:?}",
                    n.host
                ));
            }
            Ok(())
        }
    }
}
