//! User-namespace id maps, written by the broker from outside the zygote.
//!
//! A root broker maps sandbox ids 0.. to a range of unprivileged host ids (from 2147000000 by
//! default: the zygote is 0, each child one of the others), never to host root. An unprivileged
//! broker may only map its own euid/egid, one id, and must write `deny` to `setgroups` first;
//! the broker writes `deny` in both cases, so no sandboxed process can ever change its groups.
//! user_namespaces(7).

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

/// Maps uids and gids `0..count` of `pid`'s user namespace to `host_uid..host_uid + count` and
/// `host_gid..host_gid + count` (a root broker; an unprivileged one may map only its own ids,
/// `count` 1).
pub fn write_id_maps(pid: u32, host_uid: u32, host_gid: u32, count: u32) -> Result<(), IdMapError> {
    let write = |file: &str, contents: String| {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, contents).map_err(|source| IdMapError { path, source })
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("0 {host_uid} {count}\n"))?;
    write("gid_map", format!("0 {host_gid} {count}\n"))
}

/// Where root brokers lease their blocks of host ids: one lock file per block, root-only.
pub const ID_LEASE_DIR: &str = "/run/portcullis/host-ids";

/// The ids in one leased block, aligned on a multiple of itself: every root broker on a host
/// leases from the same partition of the id space, whatever its base, so leases never overlap.
pub const ID_BLOCK: u32 = 4096;

/// A block of host ids, held by this broker while its lock file stays locked (`flock`; the
/// kernel releases it when the broker exits, however it exits, so a crashed broker leaks
/// nothing). Two root brokers on one host never hold the same block, so their children never
/// share a host uid either.
#[derive(Debug)]
pub struct IdLease {
    /// The block's first id (the zygote's); children take the next ones.
    pub first: u32,
    /// Whether this block is held alone: `false` when no lock could be taken (no `/run`, every
    /// block taken), and the broker shares the first block with whoever else does.
    pub exclusive: bool,
    _lock: Option<nix::fcntl::Flock<std::fs::File>>,
}

/// Leases the first free block of [`ID_BLOCK`] host ids at or above `base`, below 2^31 (ids
/// tools treat as signed stay positive). Falls back to the first block, shared, with a warning,
/// when no block can be locked.
pub fn lease_host_ids(base: u32) -> IdLease {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let first_block = base.div_ceil(ID_BLOCK);
    let end_block = (i32::MAX.unsigned_abs() / ID_BLOCK).max(first_block);
    let shared = IdLease {
        first: first_block.saturating_mul(ID_BLOCK),
        exclusive: false,
        _lock: None,
    };
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(ID_LEASE_DIR)
    {
        tracing::warn!(error = %e, dir = ID_LEASE_DIR, "cannot lease a block of host ids; children may share host ids with another broker's");
        return shared;
    }
    for block in first_block..end_block {
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(format!("{ID_LEASE_DIR}/{block}.lock"))
        else {
            continue;
        };
        if let Ok(lock) = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        {
            return IdLease {
                first: block * ID_BLOCK,
                exclusive: true,
                _lock: Some(lock),
            };
        }
    }
    tracing::warn!(
        base,
        "every block of host ids is leased; children may share host ids with another broker's"
    );
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_leases_never_share_a_block() {
        let base = crate::DEFAULT_SANDBOX_HOST_ID;
        let a = lease_host_ids(base);
        let b = lease_host_ids(base);
        for lease in [&a, &b] {
            assert_eq!(lease.first % ID_BLOCK, 0, "{lease:?}");
            assert!(lease.first >= base, "{lease:?}");
            assert!(
                u64::from(lease.first) + u64::from(ID_BLOCK) <= 1 << 31,
                "{lease:?}"
            );
        }
        if a.exclusive {
            // Root: both are held, by this process, and differ.
            assert!(b.exclusive);
            assert_ne!(a.first, b.first);
        } else {
            // Not root: /run/portcullis is root's, and the fallback is the first block, shared.
            assert_eq!(a.first, b.first);
            assert_eq!(a.first, base.div_ceil(ID_BLOCK) * ID_BLOCK);
        }
    }
}
