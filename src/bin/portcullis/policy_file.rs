//! Reading a policy file: size-capped, UTF-8 checked, parsed by `portcullis_policy`.

use std::io::Read;
use std::path::{Path, PathBuf};

use portcullis_policy::{Policy, PolicyError};

/// The largest policy file read: 4 MiB. Real policies are a few KiB; anything near this is a
/// wrong file (a log, a binary), refused before it is parsed.
pub const MAX_POLICY_BYTES: u64 = 4 << 20;

/// The path that means standard input.
const STDIN_PATH: &str = "-";

/// A policy file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    /// Opening or reading failed (missing file, no permission, a directory).
    #[error("cannot read policy file {}", path.display())]
    Read {
        /// The file as given.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_POLICY_BYTES`].
    #[error(
        "{}: larger than {} bytes (4 MiB); a policy file is never this big, is it the right file?",
        path.display(),
        MAX_POLICY_BYTES
    )]
    TooLarge {
        /// The file as given.
        path: PathBuf,
    },
    /// The file is not UTF-8 text.
    #[error(
        "{}:{line}:{column}: not UTF-8 text (byte 0x{byte:02x}); a policy file must be UTF-8",
        path.display()
    )]
    NotUtf8 {
        /// The file as given.
        path: PathBuf,
        /// 1-based line of the first invalid byte.
        line: usize,
        /// 1-based column (in characters) of the first invalid byte.
        column: usize,
        /// The first invalid byte.
        byte: u8,
    },
    /// The text is not a valid policy; Display is `path:line:column: message`.
    #[error(transparent)]
    Invalid(#[from] PolicyError),
}

/// Reads and parses the policy at `path` (`-`: standard input). Errors name the path as given,
/// with the line and column where the text is at fault.
pub fn load(path: &Path) -> Result<Policy, PolicyFileError> {
    let text = read_text(path)?;
    Ok(Policy::from_toml_str(&text, &origin(path))?)
}

/// The name a policy's errors carry: the path as given, or `<stdin>`.
fn origin(path: &Path) -> String {
    if path == Path::new(STDIN_PATH) {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}

/// At most [`MAX_POLICY_BYTES`] of `path` as UTF-8 text.
fn read_text(path: &Path) -> Result<String, PolicyFileError> {
    let read_error = |source| PolicyFileError::Read {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    // One byte past the cap tells "exactly the cap" from "more".
    let limit = MAX_POLICY_BYTES + 1;
    if path == Path::new(STDIN_PATH) {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
    } else {
        std::fs::File::open(path)
            .and_then(|file| file.take(limit).read_to_end(&mut bytes))
            .map_err(read_error)?;
    }
    decode(bytes, path)
}

/// `bytes` as text, or the error for a file too large or not UTF-8.
fn decode(bytes: Vec<u8>, path: &Path) -> Result<String, PolicyFileError> {
    if u64::try_from(bytes.len()).map_or(true, |n| n > MAX_POLICY_BYTES) {
        return Err(PolicyFileError::TooLarge {
            path: path.to_owned(),
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let valid_up_to = e.utf8_error().valid_up_to();
        // The prefix is valid UTF-8 by definition of `valid_up_to`.
        let before = std::str::from_utf8(&bytes[..valid_up_to]).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        PolicyFileError::NotUtf8 {
            path: path.to_owned(),
            line,
            column: before[line_start..].chars().count() + 1,
            byte: bytes[valid_up_to],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_decoded() {
        let text = decode(b"[profiles.a]\n".to_vec(), Path::new("p.toml")).unwrap();
        assert_eq!(text, "[profiles.a]\n");
    }

    #[test]
    fn invalid_utf8_is_located() {
        let e = decode(
            b"# caf\xc3\xa9\n[x]\nab\xff\n".to_vec(),
            Path::new("p.toml"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.toml:3:3: not UTF-8 text (byte 0xff); a policy file must be UTF-8"
        );
    }

    #[test]
    fn more_than_the_cap_is_refused() {
        let cap = usize::try_from(MAX_POLICY_BYTES).unwrap();
        assert!(decode(vec![b'#'; cap], Path::new("p.toml")).is_ok());
        let e = decode(vec![b'#'; cap + 1], Path::new("p.toml")).unwrap_err();
        assert!(matches!(e, PolicyFileError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn stdin_is_named_in_errors() {
        assert_eq!(origin(Path::new("-")), "<stdin>");
        assert_eq!(origin(Path::new("dir/p.toml")), "dir/p.toml");
    }
}
