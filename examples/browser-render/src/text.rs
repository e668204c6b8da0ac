//! Text hygiene: what may reach a terminal, and how wide it is.

use unicode_width::UnicodeWidthChar as _;

/// Whether `c` is dropped from anything shown: control characters (an escape sequence in a page
/// must never reach the user's terminal) and bidirectional overrides.
pub(crate) fn is_unshowable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Cells `c` takes in a terminal.
pub(crate) fn width(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// Cells `s` takes.
pub(crate) fn str_width(s: &str) -> usize {
    s.chars().map(width).sum()
}

/// HTML's whitespace (collapsed in normal text).
pub(crate) fn is_html_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{c}')
}

/// Longest title kept, in characters.
const MAX_TITLE_CHARS: usize = 512;

/// A title: whitespace collapsed, unshowable characters dropped, at most 512 characters.
pub(crate) fn clean_title(raw: &str) -> String {
    let mut out = String::new();
    let mut space = false;
    for c in raw.chars().take(MAX_TITLE_CHARS * 4) {
        if is_html_space(c) {
            space = !out.is_empty();
        } else if !is_unshowable(c) {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out.chars().take(MAX_TITLE_CHARS).collect()
}
