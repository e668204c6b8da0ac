//! Fuzz target (b): path resolution beneath a granted directory, against the policy.
//!
//! Input format: the first byte picks the access (`byte % 7`, an ASCII digit standing for its
//! value: open for reading, open for writing with create, stat, list, mkdir, unlink, rename).
//! Then either
//!
//! - a **literal** path: if the next byte is `/`, the rest up to the first `0xff` byte is the
//!   path (lossy UTF-8, so NUL and any text stay), and what follows the `0xff` the second path
//!   of a rename — so seeds are readable, e.g. `2/data/../etc/passwd`; or
//! - **tokens**: each byte picks a path segment from [`SEGMENTS`] (`..`, `.`, empty for `//`,
//!   symlink-like and magic-link names, NUL, 255- and 4,096-byte names, look-alikes of `/` and
//!   `.`), or — for bytes ≥ 0xe0 — takes the next few input bytes raw; a `0xff` starts the
//!   second path. A path starts without its `/` when the token byte is odd and under 0x10.
//!
//! Every path is decided for its access by the profile of [`POLICY`] (nested grants, a narrower
//! read-only grant inside a writable one, a literal file, prefix-confusable roots such as
//! `/srv/a` and `/srv/a-b`). Property: every allow passes [`crate::invariants::check`] — root +
//! relative is exactly the path asked, with a clean relative part, so lexically beneath the
//! granted root, from the most specific grant, with the needed rights. Symlinks are the
//! kernel's business (the broker opens beneath the root's fd with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`); this target shows the string half never lets a name out.

use portcullis_policy::{Access, Decision, OpenMode, Policy, Profile};
use std::sync::OnceLock;

/// The grants paths are decided against.
pub const POLICY: &str = r#"
[profiles.paths]
[[profiles.paths.fs]]
path = "/data"
rights = ["read", "list"]
[[profiles.paths.fs]]
path = "/data/rw"
rights = ["read", "write", "create", "delete", "list"]
[[profiles.paths.fs]]
path = "/data/rw/locked"
rights = ["read", "list"]
[[profiles.paths.fs]]
path = "/etc/fonts/fonts.conf"
scope = "literal"
rights = ["read"]
[[profiles.paths.fs]]
path = "/srv/a"
rights = ["read", "write", "create", "delete", "list"]
[[profiles.paths.fs]]
path = "/srv/a-b"
rights = ["read"]
[[profiles.paths.fs]]
path = "/home/user/.cache/app"
rights = ["read", "write", "create", "delete", "list"]
"#;

/// The fixed profile (parsed once).
pub fn profile() -> &'static Profile {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    PROFILE.get_or_init(|| {
        Policy::from_toml_str(POLICY, "paths.toml")
            .and_then(|p| p.instantiate("paths", &[]))
            .unwrap_or_else(|e| panic!("the fuzz policy must load: {e}"))
    })
}

/// Path segments a token byte picks from.
pub const SEGMENTS: &[&str] = &[
    "data",
    "rw",
    "locked",
    "..",
    ".",
    "",
    "etc",
    "fonts",
    "fonts.conf",
    "srv",
    "a",
    "a-b",
    "home",
    "user",
    ".cache",
    "app",
    "x.txt",
    "link",
    "proc",
    "self",
    "root",
    "cwd",
    "fd",
    "3",
    "passwd",
    "a\0b",
    "\0",
    "...",
    "..\u{2215}..",
    "\u{ff0e}\u{ff0e}",
    "%2e%2e",
    "\\..",
    "data\n",
    " ",
    "*",
    "~",
    "data/..",
    "/",
    "//",
    "rw/../..",
];

/// The 255-byte name (the longest one component may be) and a 4,097-byte one.
fn long_segment(index: u8) -> String {
    if index & 1 == 0 {
        "n".repeat(255)
    } else {
        "m".repeat(4097)
    }
}

/// Builds one path from token bytes.
fn token_path(tokens: &[u8]) -> String {
    let mut path = String::new();
    let mut i = 0;
    while let Some(&t) = tokens.get(i) {
        i += 1;
        let segment = if t >= 0xe0 {
            // Raw bytes: up to 8 of what follows.
            let n = usize::from(t - 0xe0).min(8);
            let raw = tokens.get(i..(i + n).min(tokens.len())).unwrap_or_default();
            i += raw.len();
            String::from_utf8_lossy(raw).into_owned()
        } else if t >= 0xd0 {
            long_segment(t)
        } else {
            SEGMENTS[usize::from(t) % SEGMENTS.len()].to_owned()
        };
        // An odd small first token leaves the path relative.
        if !(path.is_empty() && t < 0x10 && t & 1 == 1) {
            path.push('/');
        }
        path.push_str(&segment);
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// The access and path(s) an input stands for.
pub fn paths(data: &[u8]) -> (u8, String, String) {
    let Some((&kind, rest)) = data.split_first() else {
        return (0, "/".into(), "/".into());
    };
    let (first, second) = match rest.iter().position(|&b| b == 0xff) {
        Some(split) => (&rest[..split], &rest[split + 1..]),
        None => (rest, &[][..]),
    };
    let build = |bytes: &[u8]| {
        if bytes.first() == Some(&b'/') {
            String::from_utf8_lossy(bytes).into_owned()
        } else {
            token_path(bytes)
        }
    };
    // An ASCII digit stands for its value, so seeds can be written as text.
    let kind = if kind.is_ascii_digit() {
        kind - b'0'
    } else {
        kind
    };
    (kind % 7, build(first), build(second))
}

/// What one input led to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the access was allowed.
    pub allowed: bool,
}

/// Runs one input; panics if a property fails.
pub fn run(data: &[u8]) -> Outcome {
    let profile = profile();
    let (kind, path, second) = paths(data);
    let read = OpenMode {
        read: true,
        ..OpenMode::default()
    };
    let create = OpenMode {
        write: true,
        create: true,
        ..OpenMode::default()
    };
    let access = match kind {
        0 => Access::Open {
            path: &path,
            mode: read,
        },
        1 => Access::Open {
            path: &path,
            mode: create,
        },
        2 => Access::Stat { path: &path },
        3 => Access::ReadDir { path: &path },
        4 => Access::CreateDir { path: &path },
        5 => Access::Remove { path: &path },
        _ => Access::Rename {
            from: &path,
            to: &second,
        },
    };
    let decision = profile.decide(&access);
    if let Err(broken) = crate::invariants::check(profile, &access, &decision) {
        panic!("{broken}\n  access {access:?}\n  decision {decision:?}");
    }
    // The decision is a pure function of the profile and the access.
    assert_eq!(
        profile.decide(&access),
        decision,
        "same access, other answer"
    );
    Outcome {
        allowed: !matches!(decision, Decision::Deny(_)),
    }
}
