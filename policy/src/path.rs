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
/// [`split_clean`] (the same problem for the same path), then an iterator over the components.
pub(crate) fn clean_components(path: &str) -> Result<impl Iterator<Item = &str> + '_, PathProblem> {
    if path.len() > MAX_PATH_LEN {
        return Err(PathProblem::TooLong);
    }
    if path.is_empty() {
        return Err(PathProblem::Empty);
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathProblem::Relative);
    };
    if path.contains('\0') {
        return Err(PathProblem::Nul);
    }
    if !rest.is_empty() {
        let mut parts = rest.split('/').peekable();
        while let Some(part) = parts.next() {
            match part {
                "" if parts.peek().is_none() => return Err(PathProblem::TrailingSlash),
                "" => return Err(PathProblem::EmptyComponent),
                "." => return Err(PathProblem::Dot),
                ".." => return Err(PathProblem::DotDot),
                _ => {}
            }
        }
    }
    // Checked above: no component is empty, except the one `split` yields for `/` itself.
    Ok(rest.split('/').filter(|part| !part.is_empty()))
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
