//! `portcullis-policy`: what a sandboxed child may do, as pure data and decisions.
//!
//! Owns: the TOML policy model ([`Policy`]: profiles with filesystem grants, network grants and
//! [`Limits`] — request rate, brokered fds and fetches, and the child's memory, tasks, CPU,
//! wall-clock time, file size and what a syscall violation does — optionally parameterised
//! with `${name}`), its validation with line/column errors
//! ([`PolicyError`]), the vocabulary a child's requests are judged in ([`Access`]), the
//! decision rules ([`Profile::decide`], [`Profile::check_address`]) and the per-child request
//! rate limiter ([`RateLimiter`]).
//!
//! Must never: perform I/O of any kind (no files, sockets, DNS or clock — the caller passes the
//! text to parse and the time to rate-limit at), use `unsafe`, or know the wire format (`ipc`).
//! Only the broker maps a request to an [`Access`] and asks for a [`Decision`], so a wire
//! change cannot widen access. Default deny: an empty [`Profile`] allows nothing, and anything
//! this crate cannot judge unambiguously (an unclean path, an odd URL) is refused, never fixed.
//!
//! The trust boundary: a `Decision::AllowPath` is only a statement about strings. The broker
//! must still resolve `relative` beneath the grant's pre-opened root with `openat2(2)`
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`, and a
//! `Decision::AllowNet` only after [`Profile::check_address`] approves each resolved address.
//! Strings reach this crate as `&str`: the wire layer refuses non-UTF-8 paths and URLs.
//!
//! ```
//! use portcullis_policy::{Access, Decision, DenyReason, OpenMode, Policy};
//! let policy = Policy::from_toml_str(
//!     r#"
//!     [[profiles.reader.fs]]
//!     path = "/data"
//!     rights = ["read", "list"]
//!     "#,
//!     "policy.toml",
//! )?;
//! let reader = policy.instantiate("reader", &[])?;
//! let read = OpenMode { read: true, ..OpenMode::default() };
//! let write = OpenMode { write: true, ..OpenMode::default() };
//! assert_eq!(
//!     reader.decide(&Access::Open { path: "/data/a/b.txt", mode: read }),
//!     Decision::AllowPath { grant: 0, relative: "a/b.txt".into() }
//! );
//! assert_eq!(
//!     reader.decide(&Access::Open { path: "/data/a/b.txt", mode: write }),
//!     Decision::Deny(DenyReason::MissingRight)
//! );
//! assert_eq!(
//!     reader.decide(&Access::Open { path: "/data-evil/x", mode: read }),
//!     Decision::Deny(DenyReason::NotGranted)
//! );
//! # Ok::<(), portcullis_policy::PolicyError>(())
//! ```
#![forbid(unsafe_code)]

mod decide;
mod error;
mod host;
mod load;
mod path;
mod profile;
mod rate;
mod url;

pub use decide::{Access, Decision, DenyReason, OpenMode};
pub use error::PolicyError;
pub use load::Policy;
pub use path::MAX_PATH_LEN;
pub use profile::{
    FsGrant, HostPattern, Limits, MountGrant, NetGrant, OnViolation, Profile, Rights, Scheme, Scope,
};
pub use rate::RateLimiter;
pub use url::MAX_URL_LEN;
