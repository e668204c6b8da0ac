//! Small text helpers shared by the subcommands: error chains, byte counts, wrapping.

/// `error` and each of its sources, joined with ": " (the style of the workspace's errors is not
/// to repeat a source in a message, so a reader needs the whole chain).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A byte count in the largest binary unit that divides it exactly (`512 MiB`, `1 GiB`,
/// `1536 KiB`, `100 bytes`): what a policy author would write, never rounded.
pub fn bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (size, unit) in UNITS {
        if n >= size && n % size == 0 {
            return format!("{} {unit}", n / size);
        }
    }
    if n == 1 {
        "1 byte".to_owned()
    } else {
        format!("{n} bytes")
    }
}

/// A duration in milliseconds as a person reads it: `60 s`, `1500 ms`.
pub fn millis(ms: u64) -> String {
    if ms >= 1000 && ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// Words of `text` in lines of at most `width` characters (a longer word gets a line of its
/// own), every line after the first starting with `indent` spaces; the first line is not
/// indented (the caller has written a label before it, up to column `indent`).
pub fn wrap(text: &str, width: usize, indent: usize) -> String {
    wrap_from(text, width, indent, indent)
}

/// [`wrap`] for a first line that starts at column `start` (after a label longer than the
/// indent).
pub fn wrap_from(text: &str, width: usize, start: usize, indent: usize) -> String {
    let mut out = String::new();
    let mut line_len = start;
    let mut first_on_line = true;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if line_len + usize::from(!first_on_line) + len > width
            && (!first_on_line || start > indent)
        {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', indent));
            line_len = indent;
            first_on_line = true;
        }
        if !first_on_line {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += len;
        first_on_line = false;
    }
    out
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_use_the_exact_largest_unit() {
        assert_eq!(bytes(512 << 20), "512 MiB");
        assert_eq!(bytes(1 << 30), "1 GiB");
        assert_eq!(bytes(1536 << 10), "1536 KiB");
        assert_eq!(bytes(1000), "1000 bytes");
        assert_eq!(bytes(1), "1 byte");
        assert_eq!(bytes(0), "0 bytes");
    }

    #[test]
    fn wrapping_keeps_words_whole_and_indents_continuations() {
        let wrapped = wrap("aaa bbb ccc ddd", 10, 2);
        assert_eq!(wrapped, "aaa bbb\n  ccc ddd");
        assert_eq!(
            wrap("averyveryverylongword x", 8, 0),
            "averyveryverylongword\nx"
        );
        assert_eq!(wrap("", 10, 2), "");
        // After a long label the first line has less room, and may even start on the next.
        assert_eq!(wrap_from("aaa bbb ccc", 10, 4, 2), "aaa\n  bbb ccc");
        assert_eq!(wrap_from("aaa", 10, 9, 2), "\n  aaa");
    }

    #[test]
    fn durations_use_seconds_when_whole() {
        assert_eq!(millis(60_000), "60 s");
        assert_eq!(millis(1500), "1500 ms");
        assert_eq!(millis(0), "0 ms");
    }

    #[test]
    fn error_chains_include_every_source() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read p.toml")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(error_chain(&e), "cannot read p.toml: entity not found");
    }

    #[test]
    fn truncate_utf8_cuts_on_a_character_boundary() {
        assert_eq!(truncate_utf8("abc", 5), "abc");
        assert_eq!(truncate_utf8("abc", 2), "ab");
        // "é" is two bytes: a cut inside it drops it whole.
        assert_eq!(truncate_utf8("aé", 2), "a");
    }
}
