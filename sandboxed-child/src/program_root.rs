//! The read-only minimal root of an exec-mode child that runs a dynamic program, and the
//! Landlock ruleset that restricts it to exactly the mounted paths.
//!
//! The broker computes the plan ([`ProgramRoot`], data) on the host: the program's interpreter
//! and libraries and the paths the policy grants, each as a *bind* of a canonical host path
//! (`source`) at the path the program or its loader will look up (`target`). The zygote keeps a
//! detached copy of the host's mount tree, cloned once before it pivoted into its empty root
//! (`open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`); it is the only way a child can still reach a
//! host path. The child executes the plan on itself, while it still holds its capabilities in the
//! zygote's user namespace, in this order (each a [`LockdownStep`], failing closed):
//!
//! 1. [`LockdownStep::CloneProgramPaths`]: one `open_tree(OPEN_TREE_CLONE)` per bind, of its
//!    source opened beneath the host tree without following any symlink (`openat2`), from the
//!    host tree (the kernel allows cloning from an anonymous mount tree only to the mount
//!    namespace that made it, so before step 2);
//! 2. [`LockdownStep::ProgramMountNamespace`]: `unshare(CLONE_NEWNS)`: a mount namespace of its
//!    own, so nothing below reaches the zygote or another child;
//! 3. [`LockdownStep::MountProgramRoot`]: a fresh tmpfs (`fsopen`/`fsmount`, nosuid, nodev,
//!    noexec) made the root with `pivot_root`, the zygote's empty root detached;
//! 4. [`LockdownStep::BindProgramPaths`]: for each bind, the parent directories and an empty
//!    mount point are created, the clone is attached there (`move_mount`) and made read-only,
//!    nosuid, nodev (`mount_setattr`; a read-write bind only nosuid, nodev);
//! 5. [`LockdownStep::SealProgramRoot`]: the tmpfs itself becomes read-only.
//!
//! Later, after `PR_SET_NO_NEW_PRIVS` and before the seccomp filter, [`LockdownStep::Landlock`]
//! restricts file access to exactly the binds: read and execute below a read-only bind, every
//! right below a read-write one, nothing anywhere else (not even listing `/`).

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lockdown::{LockdownError, LockdownStep};
use crate::sys;

/// Most binds one program root may hold.
pub const MAX_BINDS: usize = 1024;
/// Longest path (bytes) of a bind's source or target.
pub const MAX_PATH_BYTES: usize = 4095;

/// One host path made visible in the program root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Bind {
    /// Where it appears in the program root: absolute, only normal components.
    pub target: PathBuf,
    /// The canonical host path (absolute, no symlink, only normal components).
    pub source: PathBuf,
    /// A directory (its whole tree, submounts included) rather than a single file.
    pub dir: bool,
    /// Read-write rather than read-only.
    pub writable: bool,
}

/// What happens when the kernel offers no Landlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LandlockRequirement {
    /// The child fails closed at [`LockdownStep::Landlock`] (`EOPNOTSUPP`). The default.
    Required,
    /// The child goes on with the mounts alone (the user said `--allow-no-landlock`).
    BestEffort,
}

/// A program root, as data: computed by the broker, executed by the child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramRoot {
    /// The binds, in the order they are mounted (a parent before anything below it).
    pub binds: Vec<Bind>,
    /// Whether a missing Landlock is fatal.
    pub landlock: LandlockRequirement,
    /// The program this root was planned for, as `(st_dev, st_ino)` of the file its ELF headers
    /// were read from: the broker refuses to start another file with it (a program replaced
    /// between the plan and the spawn would otherwise run with the first one's mounts).
    pub program: Option<(u64, u64)>,
}

/// How Landlock was applied, as the child reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LandlockStatus {
    /// Every right this code asks for is enforced, at this ABI version.
    Enforced {
        /// The kernel's Landlock ABI version.
        abi: u8,
    },
    /// Enforced, but the kernel's ABI lacks some rights this code knows (older kernel).
    PartiallyEnforced {
        /// The kernel's Landlock ABI version.
        abi: u8,
    },
    /// Not enforced: the kernel has no Landlock and the root allowed it.
    NotEnforced,
}

impl std::fmt::Display for LandlockStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Enforced { abi } => write!(f, "enforced (ABI {abi})"),
            Self::PartiallyEnforced { abi } => write!(f, "partially enforced (ABI {abi})"),
            Self::NotEnforced => f.write_str("not enforced (this kernel has no Landlock)"),
        }
    }
}

/// True when `path` is absolute, holds only normal components (no `.`, `..` or empty one),
/// is not `/` itself, has no NUL and is at most [`MAX_PATH_BYTES`] long.
pub fn is_clean_absolute(path: &Path) -> bool {
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() > MAX_PATH_BYTES || bytes.contains(&0) {
        return false;
    }
    let Some(rest) = bytes.strip_prefix(b"/") else {
        return false;
    };
    !rest.is_empty()
        && rest
            .split(|&b| b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

impl ProgramRoot {
    /// Checks the plan's shape: at most [`MAX_BINDS`] binds, every path clean and absolute,
    /// no two binds at one target. `Err(EINVAL)` otherwise.
    pub fn validate(&self) -> Result<(), i32> {
        if self.binds.len() > MAX_BINDS {
            return Err(libc::E2BIG);
        }
        let mut targets: Vec<&Path> = Vec::with_capacity(self.binds.len());
        for bind in &self.binds {
            if !is_clean_absolute(&bind.target) || !is_clean_absolute(&bind.source) {
                return Err(libc::EINVAL);
            }
            targets.push(&bind.target);
        }
        targets.sort();
        if targets.windows(2).any(|w| w[0] == w[1]) {
            return Err(libc::EINVAL);
        }
        Ok(())
    }
}

/// The clones of a root's binds, taken from the host tree before the child leaves the zygote's
/// mount namespace.
#[derive(Debug)]
pub(crate) struct ClonedBinds(Vec<OwnedFd>);

fn relative(path: &Path) -> Result<CString, i32> {
    let bytes = path.as_os_str().as_bytes();
    let rel = bytes.strip_prefix(b"/").ok_or(libc::EINVAL)?;
    CString::new(rel).map_err(|_| libc::EINVAL)
}

fn absolute(path: &Path) -> Result<CString, i32> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| libc::EINVAL)
}

fn fail(step: LockdownStep) -> impl Fn(std::io::Error) -> LockdownError {
    move |e| LockdownError {
        step,
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    }
}

fn fail_errno(step: LockdownStep) -> impl Fn(i32) -> LockdownError {
    move |errno| LockdownError { step, errno }
}

/// Step 1: clones every bind's source beneath `host_tree`.
pub(crate) fn clone_program_paths(
    host_tree: Result<BorrowedFd<'_>, i32>,
    root: &ProgramRoot,
) -> Result<ClonedBinds, LockdownError> {
    let step = LockdownStep::CloneProgramPaths;
    root.validate().map_err(fail_errno(step))?;
    // No host tree: the zygote could not clone one; the broker hears why.
    let host_tree = host_tree.map_err(fail_errno(step))?;
    let mut clones = Vec::with_capacity(root.binds.len());
    for bind in &root.binds {
        let source = relative(&bind.source).map_err(fail_errno(step))?;
        // The broker planned canonical paths; resolving them again without following any
        // symlink means a path swapped for a symlink since (by whoever owns a directory on it)
        // fails with ELOOP instead of showing something else.
        let at = sys::open_path_beneath(host_tree, &source).map_err(fail(step))?;
        clones.push(sys::clone_tree(at.as_fd(), bind.dir).map_err(fail(step))?);
    }
    Ok(ClonedBinds(clones))
}

/// tmpfs options of the program root: room for the mount points only.
fn root_tmpfs_options(inodes: &CString) -> [(&std::ffi::CStr, &std::ffi::CStr); 3] {
    [
        (c"size", c"64k"),
        (c"nr_inodes", inodes.as_c_str()),
        (c"mode", c"0755"),
    ]
}

/// Steps 2 to 5: a mount namespace of its own, the tmpfs root, the binds, the seal.
pub(crate) fn mount_program_root(
    root: &ProgramRoot,
    clones: ClonedBinds,
) -> Result<(), LockdownError> {
    use LockdownStep as S;
    sys::unshare_mount_namespace().map_err(fail(S::ProgramMountNamespace))?;

    // Every component of every target may need an inode; a few more for the root itself.
    let inodes: usize = root
        .binds
        .iter()
        .map(|b| b.target.components().count())
        .sum::<usize>()
        + 8;
    let inodes = CString::new(inodes.to_string()).map_err(|_| LockdownError {
        step: S::MountProgramRoot,
        errno: libc::EINVAL,
    })?;
    let tmpfs = sys::new_tmpfs(
        &root_tmpfs_options(&inodes),
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
    )
    .map_err(fail(S::MountProgramRoot))?;
    // Stack the tmpfs on the zygote's empty root, step into it, and make it the root: the
    // empty root below is detached with everything the zygote's namespace held.
    sys::attach_mount(tmpfs.as_fd(), c"/").map_err(fail(S::MountProgramRoot))?;
    sys::fchdir(tmpfs.as_fd()).map_err(fail(S::MountProgramRoot))?;
    sys::pivot_here_and_detach_old().map_err(fail(S::MountProgramRoot))?;

    for (bind, clone) in root.binds.iter().zip(clones.0) {
        bind_one(bind, clone.as_fd()).map_err(fail_errno(S::BindProgramPaths))?;
    }

    sys::restrict_mount(
        tmpfs.as_fd(),
        sys::MOUNT_ATTR_RDONLY
            | sys::MOUNT_ATTR_NOSUID
            | sys::MOUNT_ATTR_NODEV
            | sys::MOUNT_ATTR_NOEXEC,
        false,
    )
    .map_err(fail(S::SealProgramRoot))
}

fn bind_one(bind: &Bind, clone: BorrowedFd<'_>) -> Result<(), i32> {
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    // Parent directories: real directories of the tmpfs, whatever they are on the host (a
    // symlink there, like /lib -> usr/lib, is the loader's path here).
    let mut parent = PathBuf::from("/");
    let components: Vec<_> = bind.target.components().skip(1).collect();
    let (last, dirs) = components.split_last().ok_or(libc::EINVAL)?;
    for dir in dirs {
        parent.push(dir);
        sys::make_dir(&absolute(&parent)?).map_err(errno)?;
    }
    parent.push(last);
    let target = absolute(&parent)?;
    if bind.dir {
        sys::make_dir(&target).map_err(errno)?;
    } else {
        sys::make_file(&target).map_err(errno)?;
    }
    sys::attach_mount(clone, &target).map_err(errno)?;
    let mut attributes = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
    if !bind.writable {
        attributes |= sys::MOUNT_ATTR_RDONLY;
    }
    sys::restrict_mount(clone, attributes, bind.dir).map_err(errno)
}

/// [`LockdownStep::Landlock`]: file access only below the binds. Runs after the mounts (the
/// rules are opened by their paths in the program root) and before the seccomp filter (which
/// forbids the Landlock syscalls).
pub(crate) fn restrict_to_binds(root: &ProgramRoot) -> Result<LandlockStatus, LockdownError> {
    use landlock::{
        Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus, ABI,
    };
    let step = LockdownStep::Landlock;
    let kernel_abi = sys::landlock_abi();
    if kernel_abi == 0 {
        return without_landlock(root.landlock);
    }
    // The newest ABI this code knows; an older kernel gets what it has (reported as partial).
    let abi = ABI::V6;
    // The kernel's own errno where the crate's error carries one (its error types wrap the
    // failed call's `io::Error`).
    let io = |e: landlock::RulesetError| LockdownError {
        step,
        errno: errno_in(&e, libc::EINVAL),
    };
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .map_err(io)?
        .create()
        .map_err(io)?;
    for bind in &root.binds {
        let fd = PathFd::new(&bind.target).map_err(|e| LockdownError {
            step,
            errno: errno_in(&e, libc::ENOENT),
        })?;
        let access = if bind.writable {
            AccessFs::from_all(abi)
        } else {
            AccessFs::from_read(abi)
        };
        // A file takes only the rights that apply to files (listing, making entries and the
        // like are directory rights); asking for more would make the crate drop them and call
        // the ruleset partially enforced.
        let access = if bind.dir {
            access
        } else {
            access & AccessFs::from_file(abi)
        };
        ruleset = ruleset.add_rule(PathBeneath::new(fd, access)).map_err(io)?;
    }
    let status = ruleset.restrict_self().map_err(|e| LockdownError {
        step,
        errno: errno_in(&e, libc::EPERM),
    })?;
    let abi = u8::try_from(kernel_abi).unwrap_or(u8::MAX);
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(LandlockStatus::Enforced { abi }),
        RulesetStatus::PartiallyEnforced => Ok(LandlockStatus::PartiallyEnforced { abi }),
        RulesetStatus::NotEnforced => without_landlock(root.landlock),
    }
}

/// The first OS error code in `error`'s chain of sources, or `fallback` when none carries one.
fn errno_in(error: &(dyn std::error::Error + 'static), fallback: i32) -> i32 {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(code) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return code;
        }
        next = e.source();
    }
    fallback
}

/// What a kernel without Landlock means for a program root: fail closed at
/// [`LockdownStep::Landlock`] with `EOPNOTSUPP` unless the user accepted the mounts alone
/// ([`LandlockRequirement::BestEffort`]), which is then reported as [`LandlockStatus::NotEnforced`]
/// — never silently.
pub(crate) fn without_landlock(
    requirement: LandlockRequirement,
) -> Result<LandlockStatus, LockdownError> {
    match requirement {
        LandlockRequirement::Required => Err(LockdownError {
            step: LockdownStep::Landlock,
            errno: libc::EOPNOTSUPP,
        }),
        LandlockRequirement::BestEffort => Ok(LandlockStatus::NotEnforced),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_errno_is_found_in_an_error_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let wrapped = Outer(std::io::Error::from_raw_os_error(libc::E2BIG));
        assert_eq!(errno_in(&wrapped, libc::EINVAL), libc::E2BIG);
        let direct = std::io::Error::from_raw_os_error(libc::ENOMEM);
        assert_eq!(errno_in(&direct, libc::EINVAL), libc::ENOMEM);
        // No OS error anywhere: the fallback.
        let none = Outer(std::io::Error::other("no code"));
        assert_eq!(errno_in(&none, libc::EINVAL), libc::EINVAL);
    }

    fn bind(target: &str, source: &str) -> Bind {
        Bind {
            target: target.into(),
            source: source.into(),
            dir: false,
            writable: false,
        }
    }

    #[test]
    fn a_kernel_without_landlock_fails_closed_unless_accepted() {
        assert_eq!(
            without_landlock(LandlockRequirement::Required),
            Err(LockdownError {
                step: LockdownStep::Landlock,
                errno: libc::EOPNOTSUPP
            })
        );
        assert_eq!(
            without_landlock(LandlockRequirement::BestEffort),
            Ok(LandlockStatus::NotEnforced)
        );
    }

    #[test]
    fn clean_absolute_paths() {
        for (path, ok) in [
            ("/usr/lib/libc.so.6", true),
            ("/a", true),
            ("/", false),
            ("", false),
            ("usr/lib", false),
            ("/usr/../etc/passwd", false),
            ("/usr/./lib", false),
            ("/usr//lib", false),
            ("/usr/lib/", false),
        ] {
            assert_eq!(is_clean_absolute(Path::new(path)), ok, "{path}");
        }
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert!(!is_clean_absolute(Path::new(&long)));
    }

    #[test]
    fn validate_refuses_duplicates_and_bad_paths() {
        let ok = ProgramRoot {
            binds: vec![bind("/lib/a", "/usr/lib/a"), bind("/lib/b", "/usr/lib/b")],
            landlock: LandlockRequirement::Required,
            program: None,
        };
        assert_eq!(ok.validate(), Ok(()));
        let dup = ProgramRoot {
            binds: vec![bind("/lib/a", "/usr/lib/a"), bind("/lib/a", "/usr/lib/b")],
            ..ok.clone()
        };
        assert_eq!(dup.validate(), Err(libc::EINVAL));
        let escape = ProgramRoot {
            binds: vec![bind("/lib/a", "/usr/../etc/passwd")],
            ..ok.clone()
        };
        assert_eq!(escape.validate(), Err(libc::EINVAL));
        let many = ProgramRoot {
            binds: (0..=MAX_BINDS)
                .map(|i| bind(&format!("/l/{i}"), "/x"))
                .collect(),
            ..ok
        };
        assert_eq!(many.validate(), Err(libc::E2BIG));
    }
}
