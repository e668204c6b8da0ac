//! Lexical path rules shared by policy loading and decisions.
//!
//! A path is accepted only if it is already in its one canonical spelling: absolute, no empty
//! components (so no `//` and no trailing `/`, except the root `/` itself), no `.` or `..`
//! components, no NUL, at most [`MAX_PATH_LEN`] bytes. Nothing is ever normalised: a path that
//! is not clean is rejected, so the string the broker acts on is the string that was checked.
//! Symlinks are not this crate's business: the broker resolves every path beneath a pre-opened
//! directory with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | ...)`.

/// Longest path accepted, in bytes (Linux `PATH_MAX`, which counts the NUL terminator; a clean
/// path has none, so one more byte than the kernel would take is still refused by the kernel).
pub const MAX_PATH_LEN: usize = 4096;

/// Why a path is not clean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathProblem {
    TooLong,
    Empty,
    Relative,
    Nul,
    EmptyComponent,
    TrailingSlash,
    Dot,
    DotDot,
}

impl PathProblem {
    /// Completes "the path must ..." in load errors.
    pub(crate) fn requirement(self) -> &'static str {
        match self {
            PathProblem::TooLong => "be at most 4096 bytes long",
            PathProblem::Empty | PathProblem::Relative => "be an absolute path starting with '/'",
            PathProblem::Nul => "not contain NUL",
            PathProblem::EmptyComponent => "not contain empty components (\"//\")",
            PathProblem::TrailingSlash => "not end with '/' (only the root \"/\" may)",
            PathProblem::Dot => "not contain \".\" components (paths are never normalised)",
            PathProblem::DotDot => "not contain \"..\" components (paths are never normalised)",
        }
    }
}

/// Splits a clean absolute path into its components; `/` has none.
///
/// Checks the length first, so an over-long path is refused without being scanned.
pub(crate) fn split_clean(path: &str) -> Result<Vec<&str>, PathProblem> {
    clean_components(path).map(Iterator::collect)
}

/// The components of a clean absolute path, without allocating: the checks of
/// [`check_clean`], then an iterator over the components.
pub(crate) fn clean_components(path: &str) -> Result<impl Iterator<Item = &str> + '_, PathProblem> {
    check_clean(path)?;
    // Checked: no component is empty, except the one `split` yields for `/` itself.
    Ok(path
        .get(1..)
        .unwrap_or_default()
        .split('/')
        .filter(|part| !part.is_empty()))
}

/// Whether `path` is clean (see the module), and if not, its first problem: the length, then
/// empty, relative, NUL anywhere, then the first bad component from the left. One pass over
/// the bytes, no allocation: every brokered file request is checked here.
pub(crate) fn check_clean(path: &str) -> Result<(), PathProblem> {
    if path.len() > MAX_PATH_LEN {
        return Err(PathProblem::TooLong);
    }
    let Some(rest) = path.as_bytes().strip_prefix(b"/") else {
        return Err(if path.is_empty() {
            PathProblem::Empty
        } else {
            PathProblem::Relative
        });
    };
    // One pass: NUL anywhere, and whether any component is bad. Every component follows a
    // '/', so a bad one ("", ".", "..") shows in the bytes right after some '/'; the
    // components are walked only to name the first problem of a path that has one.
    let mut suspect = false;
    for (i, &byte) in path.as_bytes().iter().enumerate() {
        match byte {
            0 => return Err(PathProblem::Nul),
            b'/' if !suspect => {
                let after = path.as_bytes().get(i + 1..).unwrap_or_default();
                suspect = matches!(
                    after,
                    [] | [b'/', ..]
                        | [b'.']
                        | [b'.', b'/', ..]
                        | [b'.', b'.']
                        | [b'.', b'.', b'/', ..]
                ) && !(i == 0 && after.is_empty());
            }
            _ => {}
        }
    }
    if !suspect {
        return Ok(());
    }
    let mut parts = rest.split(|&b| b == b'/').peekable();
    while let Some(part) = parts.next() {
        match part {
            b"" if parts.peek().is_none() => return Err(PathProblem::TrailingSlash),
            b"" => return Err(PathProblem::EmptyComponent),
            b"." => return Err(PathProblem::Dot),
            b".." => return Err(PathProblem::DotDot),
            _ => {}
        }
    }
    Ok(())
}

/// Where clean path `path` lies relative to clean path `root`: `Some((depth, rest))` when
/// `path` is `root` itself (`rest` empty) or beneath it, where `depth` is the number of
/// components of `root` and `rest` the components of `path` after them, joined by `/`. Whole
/// components only: `/data-evil` is not beneath `/data`. Both must already be clean; for clean
/// paths this is a string comparison, with the same answer as comparing component lists.
pub(crate) fn beneath<'p>(root: &str, path: &'p str) -> Option<(usize, &'p str)> {
    if root == "/" {
        return Some((0, path.get(1..)?));
    }
    let after = path.strip_prefix(root)?;
    let rest = if after.is_empty() {
        after
    } else {
        after.strip_prefix('/')?
    };
    Some((root.bytes().filter(|&b| b == b'/').count(), rest))
}

/// Whether `name` is usable as one path component: non-empty, no `/` or NUL, not `.` or `..`.
pub(crate) fn is_clean_component(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0')
        && name.len() <= MAX_PATH_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths_split_into_components() {
        assert_eq!(split_clean("/"), Ok(vec![]));
        assert_eq!(split_clean("/a"), Ok(vec!["a"]));
        assert_eq!(split_clean("/a/b c/..d"), Ok(vec!["a", "b c", "..d"]));
    }

    /// The component walk alone, without `check_clean`'s one-pass scan.
    fn first_problem_walking(path: &str) -> Result<(), PathProblem> {
        let rest = path.strip_prefix('/').ok_or(PathProblem::Relative)?;
        if rest.is_empty() {
            return Ok(());
        }
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            match *part {
                "" if i + 1 == parts.len() => return Err(PathProblem::TrailingSlash),
                "" => return Err(PathProblem::EmptyComponent),
                "." => return Err(PathProblem::Dot),
                ".." => return Err(PathProblem::DotDot),
                _ => {}
            }
        }
        Ok(())
    }

    #[test]
    fn the_fast_check_names_the_same_problem_as_walking_every_component() {
        // Every path of up to 8 characters over '/', '.' and 'a' that starts with '/' (3,280).
        let mut paths = vec![String::new()];
        let mut checked = 0;
        for _ in 0..8 {
            let mut longer = Vec::new();
            for path in &paths {
                for c in ['/', '.', 'a'] {
                    let mut p = path.clone();
                    p.push(c);
                    longer.push(p);
                }
            }
            for path in longer.iter().filter(|p| p.starts_with('/')) {
                assert_eq!(check_clean(path), first_problem_walking(path), "{path:?}");
                checked += 1;
            }
            paths = longer;
        }
        assert_eq!(checked, (0..8).map(|n| 3usize.pow(n)).sum::<usize>());
    }

    #[test]
    fn beneath_agrees_with_comparing_component_lists() {
        let paths = [
            "/",
            "/a",
            "/ab",
            "/a/b",
            "/a/bc",
            "/a/b/c",
            "/a-b",
            "/a/b-c/d",
            "/data",
            "/data-evil",
            "/data/x",
            "/data/x/y z",
        ];
        for root in paths {
            for path in paths {
                let r = split_clean(root).unwrap();
                let p = split_clean(path).unwrap();
                let expected = p.starts_with(&r).then(|| (r.len(), p[r.len()..].join("/")));
                let got = beneath(root, path).map(|(depth, rest)| (depth, rest.to_owned()));
                assert_eq!(got, expected, "{root} {path}");
            }
        }
    }

    #[test]
    fn unclean_paths_name_their_problem() {
        let table = [
            ("", PathProblem::Empty),
            ("a/b", PathProblem::Relative),
            ("/a//b", PathProblem::EmptyComponent),
            ("//", PathProblem::EmptyComponent),
            ("/a/", PathProblem::TrailingSlash),
            ("/a/.", PathProblem::Dot),
            ("/./a", PathProblem::Dot),
            ("/a/..", PathProblem::DotDot),
            ("/a\0b", PathProblem::Nul),
            ("/a/../b\0", PathProblem::Nul),
            ("/a//b/", PathProblem::EmptyComponent),
            ("/./a/..", PathProblem::Dot),
            ("/../a/.", PathProblem::DotDot),
            ("/a/b/", PathProblem::TrailingSlash),
            ("relative\0", PathProblem::Relative),
        ];
        for (path, problem) in table {
            assert_eq!(split_clean(path), Err(problem), "{path:?}");
        }
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        assert_eq!(split_clean(&long), Err(PathProblem::TooLong));
        let exactly = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
        assert!(split_clean(&exactly).is_ok());
    }
}
