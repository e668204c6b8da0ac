//! The mount plan of an exec-mode program's read-only minimal root, computed on the host as data
//! ([`MountPlan`] → [`ProgramRoot`]) and executed by the child
//! (`portcullis_child::program_root`).
//!
//! A plan is a set of binds: a canonical host path (`source`, every symlink followed) shown at
//! the path the program or its loader will look up (`target`). It comes from paths the user
//! grants (`--ro`, `--rw`, a profile's `mounts`) and, for a dynamic ELF, from its interpreter
//! and libraries ([`crate::elf::dependencies`]). The program itself is always bound (read-only,
//! at its canonical path): Landlock checks the execute right on the program file, which the
//! broker opened on the host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use portcullis_child::program_root::{is_clean_absolute, MAX_BINDS};
use portcullis_child::{Bind, LandlockRequirement, ProgramRoot};

use crate::elf::{self, ElfError, LibrarySearch};

/// Building a mount plan failed.
#[derive(Debug, thiserror::Error)]
pub enum MountPlanError {
    /// A granted path is not absolute and clean (`..`, `.`, `//`, trailing `/`, or `/` itself).
    #[error("{path}: a mount path must be absolute, without '.', '..' or a trailing '/', and not '/' itself")]
    NotClean {
        /// The path as given.
        path: PathBuf,
    },
    /// A granted path does not exist or cannot be resolved on the host.
    #[error("{path}")]
    Resolve {
        /// The path as given.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A granted path is neither a regular file nor a directory (a device, a socket, a FIFO).
    #[error("{path}: only regular files and directories can be mounted")]
    NotFileOrDir {
        /// The path as given.
        path: PathBuf,
    },
    /// Two binds want the same target with different sources, or one lies below a file bind,
    /// or below a directory bind that shows something else there.
    #[error("{target}: mounted twice ({first} and {second})")]
    Conflict {
        /// The target.
        target: PathBuf,
        /// One source.
        first: PathBuf,
        /// The other source.
        second: PathBuf,
    },
    /// A granted path is on a `proc` filesystem: the host's `/proc` would show the host's
    /// processes to a program whose PID namespace holds only its own.
    #[error("{path}: the host's /proc cannot be mounted (it shows the host's processes)")]
    HostProc {
        /// The path as given.
        path: PathBuf,
    },
    /// A directory with the host's /proc, /sys or another kernel file system mounted at or
    /// below it: a directory bind brings its submounts along.
    #[error("{path}: {mount} below it is the host's {fstype}, which cannot be mounted (it shows the host's processes or kernel state)")]
    KernelFsBelow {
        /// The path as given.
        path: PathBuf,
        /// The mount point at or below it.
        mount: PathBuf,
        /// Its file system type.
        fstype: String,
    },
    /// More than [`MAX_BINDS`] binds.
    #[error("more than {MAX_BINDS} mounts")]
    TooMany,
    /// The program's dependencies could not be computed.
    #[error("compute the program's libraries")]
    Elf(#[from] ElfError),
}

/// A program root under construction: binds keyed by target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountPlan {
    binds: BTreeMap<PathBuf, Bind>,
    /// `(st_dev, st_ino)` of the program [`MountPlan::add_program`] read.
    program: Option<(u64, u64)>,
}

/// File systems never shown to a program, even below a granted directory: the host's processes
/// (proc) and kernel state (sysfs and its kin).
const KERNEL_FILESYSTEMS: &[&str] = &[
    "proc",
    "sysfs",
    "debugfs",
    "tracefs",
    "securityfs",
    "configfs",
    "bpf",
    "efivarfs",
];

/// The first mount of a [`KERNEL_FILESYSTEMS`] type at or below `dir`, from the text of
/// `/proc/self/mountinfo` (mount point: field 5, octal escapes undone; type: after ` - `).
pub fn kernel_fs_at_or_below(mountinfo: &str, dir: &Path) -> Option<(PathBuf, String)> {
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let point = crate::cgroup::unescape_mountinfo(before.split(' ').nth(4)?);
        let fstype = after.split(' ').next()?;
        (KERNEL_FILESYSTEMS.contains(&fstype) && point.starts_with(dir))
            .then(|| (point, fstype.to_owned()))
    })
}

impl MountPlan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Grants `path` (a host path, absolute and clean) read-only or read-write: it appears at
    /// `path` in the root, showing the host's file or directory it resolves to.
    pub fn grant(&mut self, path: &Path, writable: bool) -> Result<(), MountPlanError> {
        if !is_clean_absolute(path) {
            return Err(MountPlanError::NotClean {
                path: path.to_owned(),
            });
        }
        let resolve = |source| MountPlanError::Resolve {
            path: path.to_owned(),
            source,
        };
        let source = std::fs::canonicalize(path).map_err(resolve)?;
        let meta = std::fs::metadata(&source).map_err(resolve)?;
        if !meta.is_file() && !meta.is_dir() {
            return Err(MountPlanError::NotFileOrDir {
                path: path.to_owned(),
            });
        }
        let on_proc = nix::sys::statfs::statfs(&source)
            .map_err(|errno| resolve(errno.into()))?
            .filesystem_type()
            == nix::sys::statfs::PROC_SUPER_MAGIC;
        if on_proc {
            return Err(MountPlanError::HostProc {
                path: path.to_owned(),
            });
        }
        if !is_clean_absolute(&source) {
            // Only `/` itself canonicalises to an unclean path.
            return Err(MountPlanError::NotClean {
                path: path.to_owned(),
            });
        }
        if meta.is_dir() {
            // The bind is recursive: what is mounted below comes along.
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(resolve)?;
            if let Some((mount, fstype)) = kernel_fs_at_or_below(&mountinfo, &source) {
                return Err(MountPlanError::KernelFsBelow {
                    path: path.to_owned(),
                    mount,
                    fstype,
                });
            }
        }
        self.insert(Bind {
            target: path.to_owned(),
            source,
            dir: meta.is_dir(),
            writable,
        })
    }

    /// Adds the program (read-only, at its canonical path) and, when `auto_root`, its interpreter
    /// and libraries found with `search`. Returns how many dependency files were added (0 for a
    /// static program).
    pub fn add_program(
        &mut self,
        program: &Path,
        auto_root: bool,
        search: &LibrarySearch,
    ) -> Result<usize, MountPlanError> {
        use std::os::unix::fs::MetadataExt;
        let resolve = |source| MountPlanError::Resolve {
            path: program.to_owned(),
            source,
        };
        let source = std::fs::canonicalize(program).map_err(resolve)?;
        // Read through one open file, whose identity the spawn checks: what is analysed is
        // what runs (`ProgramRoot::program`).
        let file = std::fs::File::open(&source).map_err(resolve)?;
        let meta = file.metadata().map_err(resolve)?;
        self.program = Some((meta.dev(), meta.ino()));
        self.insert(Bind {
            target: source.clone(),
            source: source.clone(),
            dir: false,
            writable: false,
        })?;
        if !auto_root {
            return Ok(0);
        }
        let opened = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&file)
        ));
        let needed = elf::dependencies_from(&opened, &source, search)?;
        let count = needed.len();
        for n in needed {
            self.insert(Bind {
                target: n.target,
                source: n.source,
                dir: false,
                writable: false,
            })?;
        }
        Ok(count)
    }

    fn insert(&mut self, bind: Bind) -> Result<(), MountPlanError> {
        match self.binds.get_mut(&bind.target) {
            Some(have) if have.source == bind.source && have.dir == bind.dir => {
                have.writable |= bind.writable;
                Ok(())
            }
            Some(have) => Err(MountPlanError::Conflict {
                target: bind.target.clone(),
                first: have.source.clone(),
                second: bind.source,
            }),
            None => {
                if self.binds.len() >= MAX_BINDS {
                    return Err(MountPlanError::TooMany);
                }
                self.binds.insert(bind.target.clone(), bind);
                Ok(())
            }
        }
    }

    /// The binds so far, by target.
    pub fn binds(&self) -> impl Iterator<Item = &Bind> {
        self.binds.values()
    }

    /// True when nothing is bound.
    pub fn is_empty(&self) -> bool {
        self.binds.is_empty()
    }

    /// The plan as the child executes it: parents before what lies below them; a bind below a
    /// directory bind that already shows the same host file there is dropped (it is visible
    /// anyway, and a read-only directory could not take a mount point); any other bind below a
    /// directory bind, or any bind below a file bind, is a [`MountPlanError::Conflict`].
    pub fn into_root(self, landlock: LandlockRequirement) -> Result<ProgramRoot, MountPlanError> {
        let mut kept: Vec<Bind> = Vec::with_capacity(self.binds.len());
        // BTreeMap order is path order: an ancestor comes before everything below it.
        for bind in self.binds.into_values() {
            let covering = kept
                .iter()
                .rev()
                .find(|k| bind.target.starts_with(&k.target));
            match covering {
                None => kept.push(bind),
                Some(k) => {
                    let below = bind.target.strip_prefix(&k.target).unwrap_or(Path::new(""));
                    let same = k.dir && k.source.join(below) == bind.source;
                    // Read-write below a read-only directory would need its own mount: refuse.
                    if same && (k.writable || !bind.writable) {
                        continue;
                    }
                    return Err(MountPlanError::Conflict {
                        target: bind.target,
                        first: k.source.clone(),
                        second: bind.source,
                    });
                }
            }
        }
        Ok(ProgramRoot {
            program: self.program,
            binds: kept,
            landlock,
        })
    }
}

/// The host paths a plan would show, for messages: `target <- source (ro|rw)`.
pub fn describe(root: &ProgramRoot) -> Vec<String> {
    root.binds
        .iter()
        .map(|b| {
            let access = if b.writable { "rw" } else { "ro" };
            if b.target == b.source {
                format!("{} ({access})", b.target.display())
            } else {
                format!(
                    "{} <- {} ({access})",
                    b.target.display(),
                    b.source.display()
                )
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn real_libc_dir() -> Option<PathBuf> {
        [
            "/lib/x86_64-linux-gnu",
            "/usr/lib/x86_64-linux-gnu",
            "/lib64",
            "/usr/lib64",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("libc.so.6").exists())
    }

    /// A fake system in a temp dir: `bin/echo` (a copy of a real dynamic program), the loader
    /// and libc under `usr/lib/x86_64-linux-gnu`, `lib -> usr/lib` and
    /// `lib64/ld-linux-x86-64.so.2 -> ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`, as on a
    /// merged-/usr Debian.
    fn fake_system() -> Option<(tempfile::TempDir, LibrarySearch)> {
        let libc_dir = real_libc_dir()?;
        let echo = Path::new("/bin/echo");
        let info = elf::read_elf(echo).ok()?;
        info.interpreter.as_ref()?;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("lib64")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        std::fs::copy(echo, root.join("bin/echo")).unwrap();
        for lib in &info.needed {
            std::fs::copy(
                libc_dir.join(lib),
                root.join("usr/lib/x86_64-linux-gnu").join(lib),
            )
            .unwrap();
        }
        let loader = std::fs::canonicalize("/lib64/ld-linux-x86-64.so.2").ok()?;
        std::fs::copy(
            &loader,
            root.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        symlink(
            "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            root.join("lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        let search = LibrarySearch {
            sysroot: root.to_owned(),
            ..LibrarySearch::default()
        };
        Some((dir, search))
    }

    #[test]
    fn auto_root_binds_the_real_file_at_each_loader_path() {
        let Some((dir, search)) = fake_system() else {
            eprintln!("skipped: no x86_64 glibc /bin/echo here");
            return;
        };
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let mut plan = MountPlan::new();
        let n = plan
            .add_program(&dir.path().join("bin/echo"), true, &search)
            .unwrap();
        assert!(n >= 2, "loader and libc at least: {n}");
        let binds: Vec<&Bind> = plan.binds().collect();
        let by_target = |t: &str| binds.iter().find(|b| b.target == Path::new(t)).copied();
        // PT_INTERP is looked up at /lib64/...: the real file (behind two symlinks) is bound there.
        let interp = by_target("/lib64/ld-linux-x86-64.so.2").expect("interpreter bound");
        assert_eq!(
            interp.source,
            root.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
        );
        // libc: the first default directory is /lib/x86_64-linux-gnu (a symlink on the host);
        // the loader opens it there, so that is the target; the source is the real file.
        let libc = by_target("/lib/x86_64-linux-gnu/libc.so.6").expect("libc bound");
        assert_eq!(libc.source, root.join("usr/lib/x86_64-linux-gnu/libc.so.6"));
        // The program itself, at its canonical path.
        assert!(by_target(root.join("bin/echo").to_str().unwrap()).is_some());
        assert!(binds.iter().all(|b| !b.writable && !b.dir));
        let program_root = plan.into_root(LandlockRequirement::Required).unwrap();
        program_root.validate().unwrap();
    }

    #[test]
    fn a_library_known_only_to_ld_so_conf_is_shown_where_the_loader_looks() {
        let Some((dir, _)) = fake_system() else {
            eprintln!("skipped: no x86_64 glibc /bin/echo here");
            return;
        };
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("opt/lib")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::rename(
            root.join("usr/lib/x86_64-linux-gnu/libc.so.6"),
            root.join("opt/lib/libc.so.6"),
        )
        .unwrap();
        std::fs::write(root.join("etc/ld.so.conf"), "/opt/lib\n").unwrap();
        let search = LibrarySearch::host(&root);
        let mut plan = MountPlan::new();
        plan.add_program(&root.join("bin/echo"), true, &search)
            .unwrap();
        let libc = plan
            .binds()
            .find(|b| b.source == root.join("opt/lib/libc.so.6"))
            .expect("libc found through ld.so.conf");
        assert_eq!(libc.target, Path::new("/lib/x86_64-linux-gnu/libc.so.6"));
    }

    #[test]
    fn no_auto_root_binds_only_the_program() {
        let Some((dir, search)) = fake_system() else {
            eprintln!("skipped: no x86_64 glibc /bin/echo here");
            return;
        };
        let mut plan = MountPlan::new();
        assert_eq!(
            plan.add_program(&dir.path().join("bin/echo"), false, &search)
                .unwrap(),
            0
        );
        assert_eq!(plan.binds().count(), 1);
    }

    #[test]
    fn a_missing_library_is_named() {
        let Some((dir, search)) = fake_system() else {
            eprintln!("skipped: no x86_64 glibc /bin/echo here");
            return;
        };
        std::fs::remove_file(dir.path().join("usr/lib/x86_64-linux-gnu/libc.so.6")).unwrap();
        let err = MountPlan::new()
            .add_program(&dir.path().join("bin/echo"), true, &search)
            .unwrap_err();
        assert!(
            matches!(&err, MountPlanError::Elf(ElfError::NotFound { name, .. }) if name == "libc.so.6"),
            "{err:?}"
        );
    }

    #[test]
    fn grants_table() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(base.join("data")).unwrap();
        std::fs::write(base.join("data/file"), b"x").unwrap();
        symlink("data", base.join("link")).unwrap();
        let s = |p: &str| base.join(p);
        struct Case {
            grants: Vec<(PathBuf, bool)>,
            want: Result<Vec<(PathBuf, PathBuf, bool, bool)>, &'static str>,
        }
        let cases = vec![
            Case {
                grants: vec![(s("data"), false)],
                want: Ok(vec![(s("data"), s("data"), true, false)]),
            },
            // A symlink is shown at its own path, with the real directory's content.
            Case {
                grants: vec![(s("link"), true)],
                want: Ok(vec![(s("link"), s("data"), true, true)]),
            },
            // A file below a directory grant that shows the same file is dropped.
            Case {
                grants: vec![(s("data"), false), (s("data/file"), false)],
                want: Ok(vec![(s("data"), s("data"), true, false)]),
            },
            // The same path twice: read-write wins.
            Case {
                grants: vec![(s("data"), false), (s("data"), true)],
                want: Ok(vec![(s("data"), s("data"), true, true)]),
            },
            // Read-write below read-only needs its own mount: refused.
            Case {
                grants: vec![(s("data"), false), (s("data/file"), true)],
                want: Err("conflict"),
            },
            Case {
                grants: vec![(s("missing"), false)],
                want: Err("resolve"),
            },
            Case {
                grants: vec![(PathBuf::from("relative"), false)],
                want: Err("clean"),
            },
            Case {
                grants: vec![(s("data/../data"), false)],
                want: Err("clean"),
            },
            Case {
                grants: vec![(PathBuf::from("/"), false)],
                want: Err("clean"),
            },
            Case {
                grants: vec![(PathBuf::from("/dev/null"), false)],
                want: Err("not-file"),
            },
            Case {
                grants: vec![(PathBuf::from("/proc/self"), false)],
                want: Err("proc"),
            },
            Case {
                grants: vec![(PathBuf::from("/proc/sys/kernel"), true)],
                want: Err("proc"),
            },
        ];
        for (i, case) in cases.into_iter().enumerate() {
            let mut plan = MountPlan::new();
            let result = case
                .grants
                .iter()
                .try_for_each(|(p, w)| plan.grant(p, *w))
                .and_then(|()| plan.into_root(LandlockRequirement::Required));
            match (result, case.want) {
                (Ok(root), Ok(want)) => {
                    let got: Vec<_> = root
                        .binds
                        .iter()
                        .map(|b| (b.target.clone(), b.source.clone(), b.dir, b.writable))
                        .collect();
                    assert_eq!(got, want, "case {i}");
                }
                (Err(e), Err(kind)) => {
                    let ok = match kind {
                        "conflict" => matches!(e, MountPlanError::Conflict { .. }),
                        "resolve" => matches!(e, MountPlanError::Resolve { .. }),
                        "clean" => matches!(e, MountPlanError::NotClean { .. }),
                        "not-file" => matches!(e, MountPlanError::NotFileOrDir { .. }),
                        "proc" => matches!(e, MountPlanError::HostProc { .. }),
                        _ => false,
                    };
                    assert!(ok, "case {i}: {e:?} is not {kind}");
                }
                (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
            }
        }
    }
}

#[cfg(test)]
mod kernel_fs_tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime - ext4 /dev/vda rw
30 22 0:5 / /proc rw,nosuid - proc proc rw
31 22 0:6 / /sys rw,nosuid - sysfs sysfs rw
40 22 0:30 / /srv/chroot/proc rw - proc proc rw
41 22 0:31 / /srv/with\\040space/sys rw - sysfs sysfs rw
42 22 0:32 / /srv/data rw - tmpfs tmpfs rw
";

    #[test]
    fn kernel_file_systems_at_or_below_a_directory_are_found() {
        let below = |dir: &str| kernel_fs_at_or_below(MOUNTINFO, Path::new(dir));
        assert_eq!(
            below("/srv/chroot"),
            Some(("/srv/chroot/proc".into(), "proc".into()))
        );
        assert_eq!(below("/proc"), Some(("/proc".into(), "proc".into())));
        assert_eq!(
            below("/srv/with space"),
            Some(("/srv/with space/sys".into(), "sysfs".into()))
        );
        // The pair: a directory with only ordinary mounts below it, and a name that merely
        // starts like one (components, not strings).
        assert_eq!(below("/srv/data"), None);
        assert_eq!(below("/srv/chroo"), None);
        assert_eq!(below("/usr"), None);
    }
}
