//! The one error type of this crate: a policy that does not load or does not instantiate.

/// A policy file that could not be loaded, or a profile that could not be instantiated.
///
/// Display is `"{origin}:{line}:{column}: {message}"`. `line` and `column` are 1-based; the
/// column counts characters, not bytes. Errors not tied to a place in the text (instantiation,
/// for example) have `line == 0` and `column == 0`, and Display is then `"{origin}: {message}"`.
///
/// Messages are lowercase, name the offending key or value and say what to change, e.g.
/// `profiles.web.fs[0].rights must be a list of read, write, create, delete, list; found "exec"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{}: {message}", location(.line, .column))]
pub struct PolicyError {
    /// Where the policy came from, as the caller named it (e.g. the file path).
    pub origin: String,
    /// 1-based line of the offending text, or 0 when the error has no location.
    pub line: usize,
    /// 1-based column (in characters) of the offending text, or 0 when it has no location.
    pub column: usize,
    /// What is wrong and what to change.
    pub message: String,
}

fn location(line: &usize, column: &usize) -> String {
    if *line == 0 {
        String::new()
    } else {
        format!(":{line}:{column}")
    }
}

impl PolicyError {
    /// An error at byte offset `offset` of `text` (clamped to the text, rounded down to a
    /// character boundary).
    pub(crate) fn at(origin: &str, text: &str, offset: usize, message: String) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        PolicyError {
            origin: origin.to_owned(),
            line,
            column,
            message,
        }
    }

    /// An error with no location in the text.
    pub(crate) fn unlocated(origin: &str, message: String) -> Self {
        PolicyError {
            origin: origin.to_owned(),
            line: 0,
            column: 0,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_is_one_based_and_counts_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        let offset = text.rfind('=').expect("test text has '='");
        let e = PolicyError::at("p.toml", text, offset, "bad".into());
        assert_eq!((e.line, e.column), (2, 4));
        assert_eq!(e.to_string(), "p.toml:2:4: bad");
    }

    #[test]
    fn unlocated_errors_omit_line_and_column() {
        let e = PolicyError::unlocated("p.toml", "no profile named \"x\"".into());
        assert_eq!(e.to_string(), "p.toml: no profile named \"x\"");
    }
}
