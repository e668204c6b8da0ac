//! User-namespace id maps, written by the broker from outside the zygote.
//!
//! A root broker maps sandbox root to an unprivileged host id (65534 by default), never to host
//! root. An unprivileged broker may only map its own euid/egid, and must write `deny` to
//! `setgroups` first; the broker writes `deny` in both cases, so no sandboxed process can ever
//! change its groups. user_namespaces(7).

use std::path::PathBuf;

/// The `CLONE_NEW*` flags of the namespaces the zygote enters once and every child shares:
/// user (created first; it owns the others), mount, network, IPC, UTS and cgroup. Each child
/// gets a PID namespace of its own on top (`CLONE_NEWPID` when the zygote forks it).
pub use crate::zygote::SHARED_NAMESPACES;

/// Writing an id map file failed.
#[derive(Debug, thiserror::Error)]
#[error("write {path}")]
pub struct IdMapError {
    /// The file.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// Maps uid 0 and gid 0 of `pid`'s user namespace to `host_uid`/`host_gid`, one id each.
pub fn write_id_maps(pid: u32, host_uid: u32, host_gid: u32) -> Result<(), IdMapError> {
    let write = |file: &str, contents: String| {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, contents).map_err(|source| IdMapError { path, source })
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("0 {host_uid} 1\n"))?;
    write("gid_map", format!("0 {host_gid} 1\n"))
}
