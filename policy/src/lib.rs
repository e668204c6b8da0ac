//! `portcullis-policy`: what a sandboxed child may do, as pure data and decisions.
//!
//! Owns: the vocabulary of access a child may ask for and the [`Decision`] the broker acts on.
//! Must never: perform I/O, touch the kernel, or know about the wire format (`ipc`); only the
//! broker maps a request to an [`Access`] and asks for a decision, so a wire change cannot widen
//! access. Default deny: an empty [`Profile`] allows nothing.
//!
//! The core sandbox (no filesystem, no network) needs no grants; the policy engine with
//! filesystem and network grants builds on this vocabulary.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// Something a child asks the broker to do for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// Open a file for reading.
    ReadFile(String),
}

/// Why an access was refused: a closed set, safe to show to the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DenyReason {
    /// No grant of the profile covers the access.
    NotGranted,
}

/// The broker's answer to an [`Access`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// The broker performs the access.
    Allow,
    /// The broker refuses, for this reason.
    Deny(DenyReason),
}

/// What one kind of child may do. The default profile grants nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Files the child may read, by exact path.
    pub read_files: Vec<String>,
}

impl Profile {
    /// Decides an access: allowed only if a grant covers it exactly.
    pub fn decide(&self, access: &Access) -> Decision {
        match access {
            Access::ReadFile(path) if self.read_files.iter().any(|p| p == path) => Decision::Allow,
            Access::ReadFile(_) => Decision::Deny(DenyReason::NotGranted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_profile_denies_everything() {
        let p = Profile::default();
        assert_eq!(
            p.decide(&Access::ReadFile("/etc/passwd".into())),
            Decision::Deny(DenyReason::NotGranted)
        );
    }

    #[test]
    fn literal_grant_allows_only_that_path() {
        let p = Profile {
            read_files: vec!["/data/a".into()],
        };
        assert_eq!(
            p.decide(&Access::ReadFile("/data/a".into())),
            Decision::Allow
        );
        assert_eq!(
            p.decide(&Access::ReadFile("/data/ab".into())),
            Decision::Deny(DenyReason::NotGranted)
        );
    }
}
