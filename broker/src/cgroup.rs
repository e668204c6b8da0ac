//! Control groups for sandboxed children: one group per child, with memory, task and CPU limits
//! the child cannot change, and the counters that tell the broker why a child ended.
//!
//! # What this module owns
//!
//! - **Detection** ([`detect`], [`detect_host`]): which cgroup hierarchies this process can use,
//!   read from `/proc/self/mountinfo` and `/proc/self/cgroup` text, as a [`Layout`].
//! - **The broker's instance directory** ([`Cgroups::open`]): `<base>/portcullis-<pid>-<starttime>`
//!   in every hierarchy, where `<base>` is the broker's own cgroup there. The name says which
//!   broker made it, so a later broker can remove the leftovers of one that is gone
//!   ([`Cgroups::sweep_stale`]).
//! - **One group per child** ([`Cgroups::create`]): `<instance>/child-<id>`, its limit files
//!   ([`ChildCgroup::set_limits`]), moving a process in ([`ChildCgroup::attach`]), its counters
//!   ([`ChildCgroup::events`]) and its removal ([`ChildCgroup::remove`]).
//!
//! Every path comes from the [`Layout`], never from a constant, so the logic is tested on
//! temporary directories (`#[cfg(test)]` below) and driven on the real kernel by the broker.
//!
//! # What it must never do
//!
//! - **Create a file in cgroupfs.** Control files are opened for writing without `O_CREAT`: a
//!   missing file means a controller is absent, and that must be an error, not a plain file that
//!   silently limits nothing. Only `mkdir(2)` and `rmdir(2)` change the tree.
//! - **Touch a group it did not make:** it writes only inside `portcullis-*` directories, apart
//!   from enabling controllers in the base's `cgroup.subtree_control` (v2, when they are not
//!   enabled yet). It never moves the broker itself, never changes the base's limits, and never
//!   creates groups in hierarchies other than memory, pids and cpu (a v1 cpuset group would need
//!   `cpuset.cpus`/`cpuset.mems` before any task could join it).
//! - **Signal anything but a listed member of a stale group:** [`Cgroups::sweep_stale`] kills
//!   only pids read from the `cgroup.procs` of a `portcullis-<pid>-<starttime>` directory whose
//!   broker is gone, and never passes 0 or a negative number to the kill callback (`kill(2)`
//!   would read those as process groups or "every process"). It never calls `kill(2)` itself:
//!   the caller passes the function, so tests pass a fake.
//! - **Panic on kernel text:** a file that does not parse is a [`CgroupError::Parse`] naming
//!   the file and what was wrong.
//!
//! # cgroup v1 and v2
//!
//! | | v2 (unified) | v1 (one hierarchy per controller) |
//! | --- | --- | --- |
//! | mounts | one `cgroup2` mount | one `cgroup` mount per controller, `cpu` and `cpuacct` often together (`cpu,cpuacct`) |
//! | groups per child | one directory | one directory in each of the memory, pids and cpu hierarchies |
//! | controllers in a group | only those the parent lists in `cgroup.subtree_control` | all of the hierarchy's, always |
//! | processes in inner groups | not allowed: a non-root group with controllers enabled for its children holds no process ("no internal processes") | allowed |
//! | memory limit | `memory.max`; swap separately: `memory.swap.max` = `0` | `memory.limit_in_bytes`, and `memory.memsw.limit_in_bytes` (memory + swap) to the same value where swap accounting exists |
//! | task limit | `pids.max` | `pids.max` |
//! | CPU share | `cpu.max` = `"<quota> <period>"` (µs) | `cpu.cfs_period_us`, then `cpu.cfs_quota_us` |
//! | counters | `memory.events` (`max`, `oom_kill`), `pids.events` (`max`) | `memory.failcnt` + `memory.memsw.failcnt`, `memory.oom_control` (`oom_kill`), `pids.events` (`max`) |
//! | kill a whole group | write `1` to `cgroup.kill` (Linux 5.14+) | read `cgroup.procs`, signal each |
//! | unlimited | `max` | `-1` (memory, cpu quota), `max` (pids) |
//!
//! A host that mounts both (a "hybrid" host: v1 controllers plus a `cgroup2` mount, often with
//! no controllers) is used as v1 unless its `cgroup2` mount offers the memory and pids
//! controllers.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Directory-name prefix of a broker's instance directory: `portcullis-<pid>-<starttime>`.
pub const INSTANCE_PREFIX: &str = "portcullis-";
/// Directory-name prefix of a child's group inside an instance directory: `child-<id>`.
pub const CHILD_PREFIX: &str = "child-";

/// A cgroup controller this module uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Controller {
    /// Memory use, swap included (`memory`).
    Memory,
    /// Number of tasks, threads included (`pids`).
    Pids,
    /// CPU bandwidth (`cpu`).
    Cpu,
}

impl Controller {
    /// Every controller this module uses, in the order it enables them.
    pub const ALL: [Controller; 3] = [Controller::Memory, Controller::Pids, Controller::Cpu];

    /// The kernel's name: `"memory"`, `"pids"` or `"cpu"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which cgroup hierarchies this process can use, and its own group in each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// The unified hierarchy offers the memory and pids controllers. `base` is this process's
    /// own group: the `cgroup2` mount point joined with the `0::` path of `/proc/self/cgroup`.
    V2 {
        /// This process's group directory.
        base: PathBuf,
    },
    /// Per-controller hierarchies. Each path is this process's group in that controller's
    /// hierarchy (mount point joined with the path `/proc/self/cgroup` gives for it); `None`
    /// when the controller is not mounted or this process's group is not visible.
    V1 {
        /// Group in the memory hierarchy.
        memory: Option<PathBuf>,
        /// Group in the pids hierarchy.
        pids: Option<PathBuf>,
        /// Group in the cpu hierarchy (which may be co-mounted as `cpu,cpuacct`).
        cpu: Option<PathBuf>,
    },
    /// Nothing usable.
    None {
        /// What was looked for and what was found, for a log line.
        reason: String,
    },
}

/// cgroup v1 or v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupVersion {
    /// One hierarchy per controller.
    V1,
    /// The unified hierarchy.
    V2,
}

/// A cgroup operation that failed. Paths name the directory or control file involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The layout has no usable hierarchy.
    #[error("no usable cgroup hierarchy: {reason}")]
    Unavailable {
        /// What was missing.
        reason: String,
    },
    /// An instance name that is not one safe path component.
    #[error(
        "instance name {name:?} must be 1 to 64 ASCII letters, digits, '-' or '_', such as \
         instance_name() makes"
    )]
    InvalidInstanceName {
        /// The name given.
        name: String,
    },
    /// A limit for a controller this host does not offer.
    #[error("cannot limit {controller}: the controller is not available in this layout")]
    Unsupported {
        /// The controller the limit needs.
        controller: Controller,
    },
    /// A limit outside what the kernel accepts.
    #[error("invalid limit: {problem}")]
    InvalidLimit {
        /// Which limit and the accepted range.
        problem: String,
    },
    /// A pid that does not name one process (0 would move the writer itself).
    #[error("cannot attach pid {pid}: a pid must be positive")]
    InvalidPid {
        /// The pid given.
        pid: i32,
    },
    /// `mkdir(2)` of a group failed.
    #[error("create cgroup {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `rmdir(2)` of a group failed (`EBUSY`: it still holds a task or a child group).
    #[error("remove cgroup {path}")]
    RemoveDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Listing a group's subdirectories failed.
    #[error("list cgroup {path}")]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Enabling a controller for a group's children failed. On v2, `EBUSY` from a base's
    /// `cgroup.subtree_control` means the base holds processes and is not the root ("no
    /// internal processes"): run the broker in a group whose controllers are already enabled
    /// for its children, e.g. a systemd unit with `Delegate=yes` and the broker moved into a
    /// leaf of it.
    #[error("enable the {controller} controller in {path}")]
    EnableController {
        /// The `cgroup.subtree_control` file.
        path: PathBuf,
        /// The controller.
        controller: Controller,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing a control file failed. `NotFound` means the kernel did not create it (the
    /// controller is absent); it is never created by this module.
    #[error("write {value:?} to {path}")]
    Write {
        /// The control file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Reading a control or `/proc` file failed.
    #[error("read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A kernel file did not have the expected form.
    #[error("{path}: {problem}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        problem: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Detection
// ---------------------------------------------------------------------------------------------

/// One line of `/proc/self/mountinfo` that matters here.
#[derive(Debug)]
struct Mount {
    /// Field 4: the directory of the filesystem mounted (for cgroupfs, a group path).
    root: PathBuf,
    /// Field 5: where it is mounted.
    mount_point: PathBuf,
    /// After the ` - ` separator: filesystem type.
    fstype: String,
    /// After the ` - ` separator: superblock options (for v1, the controllers).
    super_options: Vec<String>,
}

/// The `cgroup` and `cgroup2` mounts of a mountinfo text (proc(5)); other and malformed lines
/// are skipped.
fn cgroup_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let mut after = after.split(' ');
            let fstype = after.next()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            let _source = after.next()?;
            let super_options = after.next().unwrap_or_default();
            Some(Mount {
                root: unescape_mountinfo(fields.get(3)?),
                mount_point: unescape_mountinfo(fields.get(4)?),
                fstype: fstype.to_owned(),
                super_options: super_options.split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// Undoes mountinfo's escaping of space, tab, newline and backslash as `\ooo` (three octal
/// digits). Anything else is kept as written.
pub(crate) fn unescape_mountinfo(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0'));
                // Three octal digits reach 511; the kernel only writes bytes.
                match u8::try_from(value) {
                    Ok(byte) => out.push(byte),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 4]),
                }
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// One line of `/proc/self/cgroup`: `hierarchy-id:controller-list:path` (cgroups(7)).
#[derive(Debug)]
struct Membership<'a> {
    hierarchy_id: &'a str,
    controllers: Vec<&'a str>,
    path: &'a str,
}

fn memberships(proc_self_cgroup: &str) -> Vec<Membership<'_>> {
    proc_self_cgroup
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy_id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            Some(Membership {
                hierarchy_id,
                controllers: controllers.split(',').filter(|c| !c.is_empty()).collect(),
                path,
            })
        })
        .collect()
}

/// Where the group `path` (as `/proc/self/cgroup` names it) appears beneath `mount`, or `None`
/// when the mount shows another part of the hierarchy or the path is not plain.
fn locate(mount: &Mount, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path).strip_prefix(&mount.root).ok()?;
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    if relative.as_os_str().is_empty() {
        // The mount's own root: joining "" would add a trailing '/'.
        return Some(mount.mount_point.clone());
    }
    Some(mount.mount_point.join(relative))
}

/// The controllers a v2 group offers: the words of `<dir>/cgroup.controllers`.
///
/// Errors: the file cannot be read (not a v2 group, or no permission).
pub fn read_controllers(dir: &Path) -> Result<BTreeSet<String>, CgroupError> {
    let path = dir.join("cgroup.controllers");
    let text = read(&path)?;
    Ok(text.split_whitespace().map(str::to_owned).collect())
}

/// Decides which hierarchies to use from the text of `/proc/self/mountinfo` and
/// `/proc/self/cgroup`.
///
/// v2 is chosen when a `cgroup2` mount shows this process's `0::` group and that group's
/// `cgroup.controllers` (read from the filesystem, see [`read_controllers`]) lists `memory` and
/// `pids`. Otherwise v1 is chosen when any of the memory, pids and cpu controllers has a `cgroup`
/// mount showing this process's group; otherwise `None` with the reason. Mount points may carry
/// mountinfo's octal escapes (`\040` for a space). A mount whose root is not an ancestor of this
/// process's group (a bind mount of another subtree) is not used.
///
/// ```
/// use portcullis_broker::cgroup::{detect, Layout};
/// let mountinfo = "\
///     32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n\
///     35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n";
/// let cgroup = "4:memory:/app\n2:cpu,cpuacct:/\n0::/\n";
/// assert_eq!(
///     detect(mountinfo, cgroup),
///     Layout::V1 {
///         memory: Some("/sys/fs/cgroup/memory/app".into()),
///         pids: None,
///         cpu: Some("/sys/fs/cgroup/cpu,cpuacct".into()),
///     }
/// );
/// ```
pub fn detect(mountinfo: &str, proc_self_cgroup: &str) -> Layout {
    let mounts = cgroup_mounts(mountinfo);
    let groups = memberships(proc_self_cgroup);
    let mut notes = Vec::new();

    let unified = groups
        .iter()
        .find(|g| g.hierarchy_id == "0" && g.controllers.is_empty());
    let v2_mounts: Vec<&Mount> = mounts.iter().filter(|m| m.fstype == "cgroup2").collect();
    match (unified, v2_mounts.is_empty()) {
        (_, true) => notes.push("no cgroup2 mount".to_owned()),
        (None, false) => notes.push("no 0:: line in /proc/self/cgroup".to_owned()),
        (Some(group), false) => {
            for mount in v2_mounts {
                let Some(base) = locate(mount, group.path) else {
                    notes.push(format!(
                        "cgroup2 at {} does not show group {}",
                        mount.mount_point.display(),
                        group.path
                    ));
                    continue;
                };
                match read_controllers(&base) {
                    Ok(offered) if offered.contains("memory") && offered.contains("pids") => {
                        return Layout::V2 { base };
                    }
                    Ok(offered) => notes.push(format!(
                        "cgroup2 group {} offers [{}], not memory and pids",
                        base.display(),
                        offered.into_iter().collect::<Vec<_>>().join(" ")
                    )),
                    Err(e) => notes.push(error_chain(&e)),
                }
            }
        }
    }

    let v1_group = |controller: Controller| -> Option<PathBuf> {
        let name = controller.as_str();
        let group = groups
            .iter()
            .find(|g| g.hierarchy_id != "0" && g.controllers.contains(&name))?;
        mounts
            .iter()
            .filter(|m| m.fstype == "cgroup" && m.super_options.iter().any(|o| o == name))
            .find_map(|m| locate(m, group.path))
    };
    let (memory, pids, cpu) = (
        v1_group(Controller::Memory),
        v1_group(Controller::Pids),
        v1_group(Controller::Cpu),
    );
    if memory.is_some() || pids.is_some() || cpu.is_some() {
        return Layout::V1 { memory, pids, cpu };
    }
    notes.push("no cgroup v1 memory, pids or cpu hierarchy shows this process".to_owned());
    Layout::None {
        reason: notes.join("; "),
    }
}

/// [`detect`] on this process's own `/proc/self/mountinfo` and `/proc/self/cgroup`. A file that
/// cannot be read gives `Layout::None` with the reason.
pub fn detect_host() -> Layout {
    let read_text = |path: &str| {
        fs::read_to_string(path).map_err(|e| Layout::None {
            reason: format!("cannot read {path}: {e}"),
        })
    };
    let texts = read_text("/proc/self/mountinfo")
        .and_then(|mountinfo| Ok((mountinfo, read_text("/proc/self/cgroup")?)));
    match texts {
        Ok((mountinfo, cgroup)) => detect(&mountinfo, &cgroup),
        Err(none) => none,
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

// ---------------------------------------------------------------------------------------------
// Instance names and liveness
// ---------------------------------------------------------------------------------------------

/// The instance name of the broker with this pid and start time: `"<pid>-<starttime>"`. A pid
/// alone could be reused by another process; with the start time (field 22 of
/// `/proc/<pid>/stat`, in clock ticks since boot) the pair names one process for the life of the
/// boot.
pub fn instance_name(pid: i32, starttime: u64) -> String {
    format!("{pid}-{starttime}")
}

/// The name of the `n`th broker this process starts (counted from 0): [`instance_name`] for the
/// first, `"<pid>-<starttime>-<n>"` after it, so brokers of one process (a `portcullis serve`
/// that starts a new one when the host's mounts change) never share a directory.
pub fn nth_instance_name(pid: i32, starttime: u64, n: u32) -> String {
    match n {
        0 => instance_name(pid, starttime),
        n => format!("{pid}-{starttime}-{n}"),
    }
}

/// The `(pid, starttime)` an instance name stands for; `None` unless it is exactly what
/// [`nth_instance_name`] makes for a positive pid.
pub fn parse_instance_name(name: &str) -> Option<(i32, u64)> {
    let mut parts = name.split('-');
    let (pid, starttime, nth) = (parts.next()?, parts.next()?, parts.next());
    if parts.next().is_some() {
        return None;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(starttime) || nth.is_some_and(|n| !digits(n)) {
        return None;
    }
    let pid: i32 = pid.parse().ok().filter(|p| *p > 0)?;
    let starttime: u64 = starttime.parse().ok()?;
    let nth: u32 = match nth {
        None => 0,
        Some(n) => n.parse().ok().filter(|n| *n > 0)?,
    };
    // Only the canonical spelling: "007-1" is not a name any broker made.
    (nth_instance_name(pid, starttime, nth) == name).then_some((pid, starttime))
}

/// Field 22 (`starttime`) of a `/proc/<pid>/stat` line (proc_pid_stat(5)). The command name,
/// field 2, is in parentheses and may itself hold spaces and parentheses, so fields are counted
/// from the last `)`. `None` if the line is too short or the field is not a number.
pub fn parse_stat_starttime(stat: &str) -> Option<u64> {
    let (_, after_comm) = stat.rsplit_once(')')?;
    // After the name come field 3 (state) onwards: field 22 is the 20th.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// The start time of process `pid` from `<proc_root>/<pid>/stat`, or `None` if there is no such
/// process.
///
/// Errors: the file exists but cannot be read, or does not parse.
pub fn process_starttime(proc_root: &Path, pid: i32) -> Result<Option<u64>, CgroupError> {
    let path = proc_root.join(pid.to_string()).join("stat");
    match fs::read_to_string(&path) {
        Ok(stat) => match parse_stat_starttime(&stat) {
            Some(starttime) => Ok(Some(starttime)),
            None => Err(CgroupError::Parse {
                path,
                problem: "no start time (field 22) after the command name".to_owned(),
            }),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

/// Whether the broker `(pid, starttime)` may still be running, for
/// [`Cgroups::sweep_stale`]: `false` only when `<proc_root>/<pid>` does not exist or belongs to
/// a process with another start time. Anything uncertain (an unreadable or odd stat file) counts
/// as alive, so a live broker's groups are never swept.
pub fn broker_is_alive(proc_root: &Path, pid: i32, starttime: u64) -> bool {
    match process_starttime(proc_root, pid) {
        Ok(Some(now)) => now == starttime,
        Ok(None) => false,
        Err(_) => true,
    }
}

/// An instance name for a new broker of this process, from `<proc_root>/<own pid>/stat`: each
/// call gives the next of [`nth_instance_name`], so no two brokers of one process share one.
///
/// Errors: the stat file cannot be read or does not parse.
pub fn own_instance_name(proc_root: &Path) -> Result<String, CgroupError> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let pid = nix::unistd::getpid().as_raw();
    match process_starttime(proc_root, pid)? {
        Some(starttime) => {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(nth_instance_name(pid, starttime, n))
        }
        None => Err(CgroupError::Read {
            path: proc_root.join(pid.to_string()).join("stat"),
            source: io::Error::from(io::ErrorKind::NotFound),
        }),
    }
}

fn valid_instance_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

// ---------------------------------------------------------------------------------------------
// The filesystem seam
// ---------------------------------------------------------------------------------------------

/// The three operations whose effect differs between cgroupfs and a plain directory. On
/// cgroupfs `mkdir` fills the directory with control files and `rmdir` removes a directory that
/// still holds them; on a temporary directory a test's fake does both by hand. Reads go
/// straight to the filesystem: they behave the same on both.
trait CgroupFs: fmt::Debug + Send + Sync {
    /// mkdir(2) of one group.
    fn mkdir(&self, dir: &Path) -> io::Result<()>;
    /// rmdir(2) of one group; `EBUSY` while it holds a task or a child group.
    fn rmdir(&self, dir: &Path) -> io::Result<()>;
    /// One write of a whole value to an existing control file.
    fn write(&self, file: &Path, value: &str) -> io::Result<()>;
}

/// The running kernel.
#[derive(Debug)]
struct Kernel;

impl CgroupFs for Kernel {
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir(dir)
    }

    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir(dir)
    }

    fn write(&self, file: &Path, value: &str) -> io::Result<()> {
        write_existing(file, value)
    }
}

/// Writes `value` to the existing file `file` in one `write(2)`: the kernel parses each write
/// to a control file as one command. Never `O_CREAT`: on cgroupfs a missing file means a missing
/// controller, and creating a plain file there would hide it.
fn write_existing(file: &Path, value: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(file)?;
    let written = f.write(value.as_bytes())?;
    if written == value.len() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {written} of {} bytes", value.len()),
        ))
    }
}

fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_owned(),
        source,
    })
}

fn write(fs: &dyn CgroupFs, path: PathBuf, value: String) -> Result<(), CgroupError> {
    fs.write(&path, &value)
        .map_err(|source| CgroupError::Write {
            path,
            value,
            source,
        })
}

/// How many times [`remove_dir_retrying`] tries, and the longest pause between tries.
const RMDIR_ATTEMPTS: u32 = 10;
const RMDIR_MAX_PAUSE: Duration = Duration::from_millis(50);

/// rmdir(2), retried while the kernel answers `EBUSY`: a task that was just reaped can stay
/// listed for a moment. About 0.2 s at most (pauses of 1, 2, 4 … 50 ms). A directory that is
/// already gone counts as removed.
fn remove_dir_retrying(fs: &dyn CgroupFs, dir: &Path) -> Result<(), CgroupError> {
    let mut pause = Duration::from_millis(1);
    let mut attempt = 1;
    loop {
        match fs.rmdir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ResourceBusy && attempt < RMDIR_ATTEMPTS => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(RMDIR_MAX_PAUSE);
                attempt += 1;
            }
            Err(source) => {
                return Err(CgroupError::RemoveDir {
                    path: dir.to_owned(),
                    source,
                })
            }
        }
    }
}

/// The subdirectories (child groups) of `dir`, sorted by name.
fn subdirectories(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let list_error = |source| CgroupError::ListDir {
        path: dir.to_owned(),
        source,
    };
    let mut dirs = Vec::new();
    for entry in fs::read_dir(dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        if entry.file_type().map_err(list_error)?.is_dir() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// The pids in `<dir>/cgroup.procs`, one positive decimal per line.
fn read_procs(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let path = dir.join("cgroup.procs");
    let text = read(&path)?;
    text.lines()
        .map(|line| {
            line.parse::<i32>()
                .ok()
                .filter(|pid| *pid > 0)
                .ok_or_else(|| CgroupError::Parse {
                    path: path.clone(),
                    problem: format!("{line:?} is not a positive pid"),
                })
        })
        .collect()
}

/// The number on the line `<key> <number>` of a flat-keyed file such as `memory.events`.
/// Lines with other keys are ignored (newer kernels add keys).
fn keyed_value(path: &Path, text: &str, key: &str) -> Result<u64, CgroupError> {
    let problem = |problem: String| CgroupError::Parse {
        path: path.to_owned(),
        problem,
    };
    let line = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some(key))
        .ok_or_else(|| problem(format!("no {key:?} line")))?;
    match line.split_whitespace().collect::<Vec<_>>()[..] {
        [_, value] => value
            .parse()
            .map_err(|_| problem(format!("{key:?} value {value:?} is not a count"))),
        _ => Err(problem(format!("line {line:?} is not \"{key} <count>\""))),
    }
}

/// A file holding one number, such as `memory.failcnt`.
fn single_value(path: &Path, text: &str) -> Result<u64, CgroupError> {
    text.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.to_owned(),
        problem: format!("{:?} is not a count", text.trim()),
    })
}

// ---------------------------------------------------------------------------------------------
// Limits and counters
// ---------------------------------------------------------------------------------------------

/// The kernel's largest `pids.max` (`PID_MAX_LIMIT`).
pub const MAX_PIDS: u64 = 1 << 22;
/// The kernel's accepted CPU periods in µs (`cpu.max`, `cpu.cfs_period_us`): 1 ms to 1 s.
pub const CPU_PERIOD_RANGE_US: std::ops::RangeInclusive<u64> = 1_000..=1_000_000;
/// The kernel's smallest CPU quota in µs per period.
pub const MIN_CPU_QUOTA_US: u64 = 1_000;

/// Limits for one child's group. `None` means no limit: it is written as such (`max`, or `-1`
/// on v1), so [`ChildCgroup::set_limits`] also lifts an earlier limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CgroupLimits {
    /// Memory in bytes, swap included (the kernel rounds down to a page).
    pub memory_bytes: Option<u64>,
    /// Tasks (processes and threads) at once, at most [`MAX_PIDS`].
    pub processes: Option<u64>,
    /// CPU time per period, `(quota_us, period_us)`: the group may run `quota_us` µs of CPU
    /// time every `period_us` µs, across all CPUs. Period in [`CPU_PERIOD_RANGE_US`], quota at
    /// least [`MIN_CPU_QUOTA_US`].
    pub cpu_quota: Option<(u64, u64)>,
}

impl CgroupLimits {
    /// The CPU period [`CgroupLimits::from_policy`] uses: 100 ms, the kernel's default.
    pub const CPU_PERIOD_US: u64 = 100_000;

    /// A profile's limits on a machine with `cpus` CPUs: `memory_bytes` 0 is no limit,
    /// `cpu_percent` of 100 × `cpus` or more is no throttling.
    pub fn from_policy(limits: &portcullis_policy::Limits, cpus: u32) -> CgroupLimits {
        let percent = u64::from(limits.cpu_percent);
        CgroupLimits {
            memory_bytes: Some(limits.memory_bytes).filter(|bytes| *bytes != 0),
            processes: Some(u64::from(limits.processes)),
            cpu_quota: (percent < 100 * u64::from(cpus))
                .then_some((percent * Self::CPU_PERIOD_US / 100, Self::CPU_PERIOD_US)),
        }
    }

    /// The controllers these limits need.
    pub fn controllers(&self) -> impl Iterator<Item = Controller> {
        [
            self.memory_bytes.map(|_| Controller::Memory),
            self.processes.map(|_| Controller::Pids),
            self.cpu_quota.map(|_| Controller::Cpu),
        ]
        .into_iter()
        .flatten()
    }

    /// Checks the values against the kernel's ranges.
    fn validate(&self) -> Result<(), CgroupError> {
        if let Some(processes) = self.processes.filter(|p| *p > MAX_PIDS) {
            return Err(CgroupError::InvalidLimit {
                problem: format!("processes {processes} is above the kernel's {MAX_PIDS}"),
            });
        }
        if let Some((quota, period)) = self.cpu_quota {
            if !CPU_PERIOD_RANGE_US.contains(&period) || quota < MIN_CPU_QUOTA_US {
                return Err(CgroupError::InvalidLimit {
                    problem: format!(
                        "cpu quota {quota} µs per {period} µs: the period must be 1000 to \
                         1000000 µs and the quota at least 1000 µs"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Counters of one child's group, read after it ended to tell why. A controller the layout
/// lacks counts 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CgroupEvents {
    /// Tasks the OOM killer killed in the group (v2 `memory.events` `oom_kill`; v1
    /// `memory.oom_control` `oom_kill`).
    pub oom_kills: u64,
    /// Times memory use hit the limit (v2 `memory.events` `max`; v1 `memory.failcnt` plus
    /// `memory.memsw.failcnt` where swap is accounted). A hit triggers reclaim first; only when
    /// that fails does the OOM killer run. Judge an OOM end by `oom_kills`, not by this. On v1
    /// with swap accounting this stays 0 on recent kernels (measured on 6.18): the memory +
    /// swap counter has the same limit, so it is the one that fails, and the kernel no longer
    /// counts that counter's failures; with `memory.memsw.*` absent or unlimited,
    /// `memory.failcnt` counts.
    pub memory_max_hits: u64,
    /// `fork`/`clone` calls refused by the task limit (`pids.events` `max`, both versions).
    pub pids_max_hits: u64,
}

// ---------------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------------

/// One directory in one hierarchy, with the controllers it carries.
#[derive(Debug, Clone)]
struct Group {
    dir: PathBuf,
    controllers: Vec<Controller>,
}

fn dir_for(groups: &[Group], controller: Controller) -> Option<&Path> {
    groups
        .iter()
        .find(|g| g.controllers.contains(&controller))
        .map(|g| g.dir.as_path())
}

/// This broker's instance directories, one per hierarchy, and the child groups made in them.
///
/// Dropping it leaves the directories in place; [`Cgroups::remove`] takes them away at shutdown,
/// and a later broker's [`Cgroups::sweep_stale`] removes what a crashed one left.
#[derive(Debug)]
pub struct Cgroups {
    version: CgroupVersion,
    /// The broker's own group in each hierarchy (`dir`), with the controllers used there.
    bases: Vec<Group>,
    /// `<base>/portcullis-<instance>` for each entry of `bases`, in the same order.
    instances: Vec<Group>,
    instance_dir_name: String,
    fs: Arc<dyn CgroupFs>,
}

impl Cgroups {
    /// Creates this broker's instance directory `<base>/portcullis-<instance>` in every
    /// hierarchy of `layout`. `instance` is normally [`own_instance_name`].
    ///
    /// On v2 the memory, pids and cpu controllers that the base offers are enabled for the
    /// instance directory's children, and, where the base has not done so already, for the base's
    /// children (so the instance directory has them). Why this works with the kernel's "no
    /// internal processes" rule — a non-root group that enables controllers for its children may
    /// hold no process itself: the instance directory never holds a process (children go one
    /// level down, to `child-<id>`), so enabling there is always allowed. The base holds the
    /// broker, so writing its `cgroup.subtree_control` is allowed only when the base is the root
    /// group or already has them enabled (as a delegated systemd unit's group does); otherwise
    /// the kernel answers `EBUSY` and this returns [`CgroupError::EnableController`]. The broker
    /// is never moved to make room.
    ///
    /// On v1 hierarchies that share a mount (same base path) get one directory.
    ///
    /// Errors: `Unavailable` for `Layout::None` or a v2 base offering none of the controllers,
    /// `InvalidInstanceName`, `CreateDir` (`EEXIST` if this instance already has one),
    /// `EnableController`, `Read` of the base's controller files. On error nothing created here
    /// is left behind.
    pub fn open(layout: Layout, instance: &str) -> Result<Cgroups, CgroupError> {
        Cgroups::open_with(layout, instance, Arc::new(Kernel))
    }

    fn open_with(
        layout: Layout,
        instance: &str,
        fs: Arc<dyn CgroupFs>,
    ) -> Result<Cgroups, CgroupError> {
        if !valid_instance_name(instance) {
            return Err(CgroupError::InvalidInstanceName {
                name: instance.to_owned(),
            });
        }
        let instance_dir_name = format!("{INSTANCE_PREFIX}{instance}");
        let (version, bases) = match layout {
            Layout::None { reason } => return Err(CgroupError::Unavailable { reason }),
            Layout::V2 { base } => {
                let offered = read_controllers(&base)?;
                let controllers: Vec<Controller> = Controller::ALL
                    .into_iter()
                    .filter(|c| offered.contains(c.as_str()))
                    .collect();
                if controllers.is_empty() {
                    return Err(CgroupError::Unavailable {
                        reason: format!("{} offers none of memory, pids, cpu", base.display()),
                    });
                }
                (
                    CgroupVersion::V2,
                    vec![Group {
                        dir: base,
                        controllers,
                    }],
                )
            }
            Layout::V1 { memory, pids, cpu } => {
                let mut bases: Vec<Group> = Vec::new();
                for (controller, base) in [
                    (Controller::Memory, memory),
                    (Controller::Pids, pids),
                    (Controller::Cpu, cpu),
                ] {
                    let Some(base) = base else { continue };
                    match bases.iter_mut().find(|g| g.dir == base) {
                        Some(group) => group.controllers.push(controller),
                        None => bases.push(Group {
                            dir: base,
                            controllers: vec![controller],
                        }),
                    }
                }
                if bases.is_empty() {
                    return Err(CgroupError::Unavailable {
                        reason: "the v1 layout names no hierarchy".to_owned(),
                    });
                }
                (CgroupVersion::V1, bases)
            }
        };

        if version == CgroupVersion::V2 {
            // The base first: its children (the instance directory) get only what it enables.
            let base = &bases[0];
            let control = base.dir.join("cgroup.subtree_control");
            let enabled = read(&control)?;
            for &controller in &base.controllers {
                if !enabled.split_whitespace().any(|c| c == controller.as_str()) {
                    enable(&*fs, &control, controller)?;
                }
            }
        }

        let instances = make_groups(&*fs, &bases, &instance_dir_name)?;
        if version == CgroupVersion::V2 {
            // For the children the instance directory will hold; it holds no process itself.
            let control = instances[0].dir.join("cgroup.subtree_control");
            let enabled = instances[0]
                .controllers
                .iter()
                .try_for_each(|&controller| enable(&*fs, &control, controller));
            if let Err(e) = enabled {
                remove_groups(&*fs, &instances);
                return Err(e);
            }
        }
        Ok(Cgroups {
            version,
            bases,
            instances,
            instance_dir_name,
            fs,
        })
    }

    /// v1 or v2.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// Whether limits for `controller` can be set here.
    pub fn supports(&self, controller: Controller) -> bool {
        dir_for(&self.instances, controller).is_some()
    }

    /// The instance directories, one per hierarchy used.
    pub fn instance_dirs(&self) -> impl Iterator<Item = &Path> {
        self.instances.iter().map(|g| g.dir.as_path())
    }

    /// Creates the group `<instance>/child-<child_id>` in every hierarchy and writes `limits`.
    /// Call before the child runs anything it was not built with, then
    /// [`ChildCgroup::attach`] it; a pooled child's group can be made early with
    /// `CgroupLimits::default()` and given its profile's limits with
    /// [`ChildCgroup::set_limits`] when it is claimed.
    ///
    /// Errors: `Unsupported` if a limit needs a controller this layout lacks, `InvalidLimit`
    /// (both checked before anything is created), `CreateDir` (`EEXIST` for an id in use),
    /// `Write`/`Read`/`Parse` while writing limits. On error the group is removed again.
    pub fn create(&self, child_id: u64, limits: &CgroupLimits) -> Result<ChildCgroup, CgroupError> {
        limits.validate()?;
        if let Some(controller) = limits.controllers().find(|c| !self.supports(*c)) {
            return Err(CgroupError::Unsupported { controller });
        }
        let groups = make_groups(
            &*self.fs,
            &self.instances,
            &format!("{CHILD_PREFIX}{child_id}"),
        )?;
        let child = ChildCgroup {
            version: self.version,
            id: child_id,
            groups,
            fs: Arc::clone(&self.fs),
        };
        if let Err(e) = child.set_limits(limits) {
            remove_groups(&*self.fs, &child.groups);
            return Err(e);
        }
        Ok(child)
    }

    /// Removes the instance directories of brokers that are gone, found beside this broker's own
    /// in each hierarchy: `portcullis-<pid>-<starttime>` where `is_alive(pid, starttime)` is
    /// false ([`broker_is_alive`] is the real check). Every process still listed in such a
    /// group is killed first — on v2 by writing `1` to `cgroup.kill` where the kernel has it,
    /// otherwise by calling `kill(pid)` for each pid in `cgroup.procs` (the caller sends
    /// `SIGKILL`) — then the groups are removed, children before their parent.
    ///
    /// Left alone: this broker's own directory, live brokers' directories, and `portcullis-*`
    /// names that are not `<pid>-<starttime>` (another tool's, or a future format).
    ///
    /// Brokers that share a base group must share a PID namespace: a broker whose pid this one
    /// cannot see counts as gone. On v1 a listed pid could in principle exit and be reused
    /// between the read of `cgroup.procs` and the kill; a stale group's tasks are normally
    /// long dead (they die with their zygote), and `kill` may re-check membership (for example
    /// through a pidfd) before it signals.
    pub fn sweep_stale(
        &self,
        is_alive: impl Fn(i32, u64) -> bool,
        kill: impl Fn(i32) -> io::Result<()>,
    ) -> SweepReport {
        let mut report = SweepReport::default();
        for base in &self.bases {
            let dirs = match subdirectories(&base.dir) {
                Ok(dirs) => dirs,
                Err(e) => {
                    report.failed.push(e);
                    continue;
                }
            };
            for dir in dirs {
                let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                let Some(instance) = name.strip_prefix(INSTANCE_PREFIX) else {
                    continue;
                };
                if name == self.instance_dir_name {
                    continue;
                }
                match parse_instance_name(instance) {
                    None => report.malformed.push(dir),
                    Some((pid, starttime)) if is_alive(pid, starttime) => report.alive.push(dir),
                    Some(_) => match self.remove_tree(&dir, 0, &kill, &mut report.killed) {
                        Ok(()) => report.removed.push(dir),
                        Err(e) => report.failed.push(e),
                    },
                }
            }
        }
        report
    }

    /// Kills what `dir` and its descendants hold, then removes them, deepest first.
    fn remove_tree(
        &self,
        dir: &Path,
        depth: usize,
        kill: &dyn Fn(i32) -> io::Result<()>,
        killed: &mut Vec<i32>,
    ) -> Result<(), CgroupError> {
        // Children made by this module are two levels deep; anything far deeper is not ours.
        const MAX_DEPTH: usize = 8;
        if depth > MAX_DEPTH {
            return Err(CgroupError::RemoveDir {
                path: dir.to_owned(),
                source: io::Error::other("nested deeper than a broker makes groups"),
            });
        }
        for sub in subdirectories(dir)? {
            self.remove_tree(&sub, depth + 1, kill, killed)?;
        }
        let pids = read_procs(dir)?;
        if !pids.is_empty() {
            let cgroup_kill = dir.join("cgroup.kill");
            if self.version == CgroupVersion::V2 && cgroup_kill.exists() {
                write(&*self.fs, cgroup_kill, "1".to_owned())?;
            } else {
                for &pid in &pids {
                    // read_procs only yields positive pids: never a process group or "all".
                    if let Err(source) = kill(pid) {
                        // Already gone is fine; anything else leaves the group busy.
                        if source.raw_os_error() != Some(libc::ESRCH) {
                            return Err(CgroupError::RemoveDir {
                                path: dir.to_owned(),
                                source,
                            });
                        }
                    }
                }
            }
            killed.extend(pids);
        }
        remove_dir_retrying(&*self.fs, dir)
    }

    /// Removes the instance directories at shutdown, with any child group still in them (an
    /// unremoved [`ChildCgroup`]). Kills nothing: the broker ends its children first; a group
    /// that still holds a task after the retries is an error naming it, and the remaining
    /// directories are still tried.
    ///
    /// Errors: the first `RemoveDir` or `ListDir` met.
    pub fn remove(self) -> Result<(), CgroupError> {
        let mut first_error = None;
        for group in &self.instances {
            let result = subdirectories(&group.dir).and_then(|subs| {
                subs.iter()
                    .try_for_each(|sub| remove_dir_retrying(&*self.fs, sub))
            });
            let result = result.and_then(|()| remove_dir_retrying(&*self.fs, &group.dir));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Writes `+<controller>` to a `cgroup.subtree_control` file.
fn enable(fs: &dyn CgroupFs, control: &Path, controller: Controller) -> Result<(), CgroupError> {
    fs.write(control, &format!("+{controller}"))
        .map_err(|source| CgroupError::EnableController {
            path: control.to_owned(),
            controller,
            source,
        })
}

/// Makes `<parent>/<name>` for each parent group; on error removes those already made.
fn make_groups(
    fs: &dyn CgroupFs,
    parents: &[Group],
    name: &str,
) -> Result<Vec<Group>, CgroupError> {
    let mut made: Vec<Group> = Vec::with_capacity(parents.len());
    for parent in parents {
        let dir = parent.dir.join(name);
        if let Err(source) = fs.mkdir(&dir) {
            remove_groups(fs, &made);
            return Err(CgroupError::CreateDir { path: dir, source });
        }
        made.push(Group {
            dir,
            controllers: parent.controllers.clone(),
        });
    }
    Ok(made)
}

/// Undoes [`make_groups`] after a later step failed. The groups are new and hold no task, so
/// one rmdir each; the first error is what the caller reports.
fn remove_groups(fs: &dyn CgroupFs, groups: &[Group]) {
    for group in groups {
        let _ = fs.rmdir(&group.dir);
    }
}

/// What [`Cgroups::sweep_stale`] found and did.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// Instance directories of brokers that are gone, removed with everything in them.
    pub removed: Vec<PathBuf>,
    /// Instance directories of brokers that are (or may be) alive, left alone.
    pub alive: Vec<PathBuf>,
    /// `portcullis-*` directories whose name is not `<pid>-<starttime>`, left alone.
    pub malformed: Vec<PathBuf>,
    /// Pids that were listed in removed groups and were killed.
    pub killed: Vec<i32>,
    /// Groups that could not be listed, emptied or removed.
    pub failed: Vec<CgroupError>,
}

/// One child's group: a directory in each hierarchy.
///
/// Dropping it leaves the directories: [`ChildCgroup::remove`] after the child is reaped, or
/// [`Cgroups::remove`] at shutdown.
#[derive(Debug)]
pub struct ChildCgroup {
    version: CgroupVersion,
    id: u64,
    groups: Vec<Group>,
    fs: Arc<dyn CgroupFs>,
}

impl ChildCgroup {
    /// The child id given to [`Cgroups::create`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The group's directories, one per hierarchy (one on v2: the directory to open for
    /// `clone3(CLONE_INTO_CGROUP)`).
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.groups.iter().map(|g| g.dir.as_path())
    }

    /// Moves process `pid` (all its threads) into the group, writing it to `cgroup.procs` in
    /// every hierarchy. Tasks it creates afterwards start in the group. If a later hierarchy
    /// fails, the process stays in the earlier ones: the caller should kill it.
    ///
    /// Errors: `InvalidPid` for `pid <= 0` (writing 0 would move the broker itself), `Write`
    /// (`ESRCH`: no such process; `EBUSY`/`EOPNOTSUPP` on v2 when the target group is not a
    /// leaf; `EAGAIN` on v1 pids when the group is full).
    pub fn attach(&self, pid: i32) -> Result<(), CgroupError> {
        if pid <= 0 {
            return Err(CgroupError::InvalidPid { pid });
        }
        for group in &self.groups {
            write(&*self.fs, group.dir.join("cgroup.procs"), pid.to_string())?;
        }
        Ok(())
    }

    /// Writes `limits` to the group; `None` lifts a limit. v2: `memory.max` and
    /// `memory.swap.max` (`0` under a limit, so swap cannot stretch it; skipped where the kernel
    /// has no swap accounting), `pids.max`, `cpu.max`. v1: `memory.limit_in_bytes` and
    /// `memory.memsw.limit_in_bytes` where it exists (memory + swap, set to the same value), in
    /// the order the kernel accepts (it refuses a memsw limit below the memory limit, so a
    /// raise writes memsw first and a cut writes it last); `pids.max`; `cpu.cfs_period_us` then
    /// `cpu.cfs_quota_us`.
    ///
    /// Lowering a limit below current use does not kill at once: memory is reclaimed first and
    /// the OOM killer runs only if that fails; a full pids group only refuses new tasks.
    ///
    /// Errors: `InvalidLimit`, `Unsupported`, `Write`, `Read`/`Parse` of the current v1 memory
    /// limit.
    pub fn set_limits(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        limits.validate()?;
        let fs = &*self.fs;
        let dir = |controller: Controller| dir_for(&self.groups, controller);
        let require =
            |controller: Controller| dir(controller).ok_or(CgroupError::Unsupported { controller });
        let v2 = self.version == CgroupVersion::V2;

        let memory_dir = match limits.memory_bytes {
            Some(_) => Some(require(Controller::Memory)?),
            None => dir(Controller::Memory),
        };
        if let Some(memory) = memory_dir {
            if v2 {
                let value = limits
                    .memory_bytes
                    .map_or("max".to_owned(), |b| b.to_string());
                write(fs, memory.join("memory.max"), value)?;
                let swap = memory.join("memory.swap.max");
                if swap.exists() {
                    let value = if limits.memory_bytes.is_some() {
                        "0"
                    } else {
                        "max"
                    };
                    write(fs, swap, value.to_owned())?;
                }
            } else {
                set_v1_memory(fs, memory, limits.memory_bytes)?;
            }
        }

        let pids_dir = match limits.processes {
            Some(_) => Some(require(Controller::Pids)?),
            None => dir(Controller::Pids),
        };
        if let Some(pids) = pids_dir {
            let value = limits.processes.map_or("max".to_owned(), |n| n.to_string());
            write(fs, pids.join("pids.max"), value)?;
        }

        let cpu_dir = match limits.cpu_quota {
            Some(_) => Some(require(Controller::Cpu)?),
            None => dir(Controller::Cpu),
        };
        if let Some(cpu) = cpu_dir {
            match (v2, limits.cpu_quota) {
                (true, Some((quota, period))) => {
                    write(fs, cpu.join("cpu.max"), format!("{quota} {period}"))?;
                }
                (true, None) => write(fs, cpu.join("cpu.max"), "max".to_owned())?,
                (false, Some((quota, period))) => {
                    // The period first: the quota is checked against it.
                    write(fs, cpu.join("cpu.cfs_period_us"), period.to_string())?;
                    write(fs, cpu.join("cpu.cfs_quota_us"), quota.to_string())?;
                }
                (false, None) => write(fs, cpu.join("cpu.cfs_quota_us"), "-1".to_owned())?,
            }
        }
        Ok(())
    }

    /// The group's counters; see [`CgroupEvents`].
    ///
    /// Errors: `Read` of a counter file, `Parse` when a needed line is missing or not a count.
    pub fn events(&self) -> Result<CgroupEvents, CgroupError> {
        let mut events = CgroupEvents::default();
        if let Some(memory) = dir_for(&self.groups, Controller::Memory) {
            if self.version == CgroupVersion::V2 {
                let path = memory.join("memory.events");
                let text = read(&path)?;
                events.oom_kills = keyed_value(&path, &text, "oom_kill")?;
                events.memory_max_hits = keyed_value(&path, &text, "max")?;
            } else {
                let path = memory.join("memory.oom_control");
                events.oom_kills = keyed_value(&path, &read(&path)?, "oom_kill")?;
                let path = memory.join("memory.failcnt");
                events.memory_max_hits = single_value(&path, &read(&path)?)?;
                // With swap accounting the memory + swap counter, whose limit is the same, is
                // charged first and so is the one that fails: count both.
                let path = memory.join("memory.memsw.failcnt");
                if path.exists() {
                    let memsw_hits = single_value(&path, &read(&path)?)?;
                    events.memory_max_hits = events.memory_max_hits.saturating_add(memsw_hits);
                }
            }
        }
        if let Some(pids) = dir_for(&self.groups, Controller::Pids) {
            let path = pids.join("pids.events");
            events.pids_max_hits = keyed_value(&path, &read(&path)?, "max")?;
        }
        Ok(events)
    }

    /// The pids in the group (every hierarchy's `cgroup.procs`, merged), in increasing order.
    ///
    /// Errors: `Read`, or `Parse` of a line that is not a positive pid.
    pub fn procs(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = BTreeSet::new();
        for group in &self.groups {
            pids.extend(read_procs(&group.dir)?);
        }
        Ok(pids.into_iter().collect())
    }

    /// Removes the group from every hierarchy, retrying briefly while the kernel reports it
    /// busy (a task that was just reaped can linger for a moment). Call after the child is
    /// reaped. Every hierarchy is tried even if one fails.
    ///
    /// Errors: the first `RemoveDir`, naming the directory (`EBUSY`: a task is still in it).
    pub fn remove(self) -> Result<(), CgroupError> {
        let mut first_error = None;
        for group in &self.groups {
            if let Err(e) = remove_dir_retrying(&*self.fs, &group.dir) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Sets a v1 memory group's limit, keeping `memory.memsw.limit_in_bytes >=
/// memory.limit_in_bytes` at every step (the kernel refuses a write that breaks it).
fn set_v1_memory(fs: &dyn CgroupFs, dir: &Path, bytes: Option<u64>) -> Result<(), CgroupError> {
    let limit = dir.join("memory.limit_in_bytes");
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    let value = bytes.map_or("-1".to_owned(), |b| b.to_string());
    if !memsw.exists() {
        return write(fs, limit, value);
    }
    let current = single_value(&limit, &read(&limit)?)?;
    // "-1" is the largest limit there is.
    if bytes.is_none_or(|b| b > current) {
        write(fs, memsw, value.clone())?;
        write(fs, limit, value)
    } else {
        write(fs, limit, value.clone())?;
        write(fs, memsw, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use tempfile::TempDir;

    // -----------------------------------------------------------------------------------------
    // A fake kernel on a temporary directory
    // -----------------------------------------------------------------------------------------

    /// Control files (name, initial contents) as the kernel creates them in a new group.
    type Files = &'static [(&'static str, &'static str)];

    const V2_FILES: Files = &[
        ("cgroup.controllers", "memory pids cpu\n"),
        ("cgroup.subtree_control", ""),
        ("cgroup.procs", ""),
        ("cgroup.kill", ""),
        ("memory.max", "max\n"),
        ("memory.swap.max", "max\n"),
        (
            "memory.events",
            "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
        ),
        ("pids.max", "max\n"),
        ("pids.events", "max 0\n"),
        ("cpu.max", "max 100000\n"),
    ];
    const V1_MEMORY_FILES: Files = &[
        ("cgroup.procs", ""),
        ("memory.limit_in_bytes", "9223372036854771712\n"),
        ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
        ("memory.failcnt", "0\n"),
        ("memory.memsw.failcnt", "0\n"),
        (
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        ),
    ];
    /// A memory hierarchy without swap accounting: no `memory.memsw.*`.
    const V1_MEMORY_NO_SWAP_FILES: Files = &[
        ("cgroup.procs", ""),
        ("memory.limit_in_bytes", "9223372036854771712\n"),
        ("memory.failcnt", "0\n"),
        (
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        ),
    ];
    const V1_PIDS_FILES: Files = &[
        ("cgroup.procs", ""),
        ("pids.max", "max\n"),
        ("pids.events", "max 0\n"),
    ];
    const V1_CPU_FILES: Files = &[
        ("cgroup.procs", ""),
        ("cpu.cfs_period_us", "100000\n"),
        ("cpu.cfs_quota_us", "-1\n"),
    ];

    /// Does what cgroupfs does on mkdir, rmdir and writes, on plain directories: fills a new
    /// group with the control files of its hierarchy, refuses to remove a group holding a task
    /// or a group, refuses writes to files that do not exist, keeps the v1 memsw rule, and logs
    /// every write. Writes go through the production [`write_existing`].
    #[derive(Debug, Default)]
    struct FakeKernel {
        /// Hierarchy roots and the files of a new group beneath each.
        hierarchies: Vec<(PathBuf, Files)>,
        writes: Mutex<Vec<(PathBuf, String)>>,
        /// `EBUSY` answers still to give for an rmdir of a directory.
        busy: Mutex<BTreeMap<PathBuf, u32>>,
        /// Writes to these files fail with this errno.
        failing: Mutex<BTreeMap<PathBuf, i32>>,
    }

    impl FakeKernel {
        fn hierarchy(mut self, root: &Path, files: Files) -> Self {
            self.hierarchies.push((root.to_owned(), files));
            self
        }

        fn files_for(&self, dir: &Path) -> Files {
            self.hierarchies
                .iter()
                .filter(|(root, _)| dir.starts_with(root))
                .max_by_key(|(root, _)| root.components().count())
                .map_or(&[], |(_, files)| *files)
        }

        /// Makes `dir` (and its parents) as an existing group, as the kernel shows one.
        fn group(&self, dir: &Path) {
            fs::create_dir_all(dir).expect("create group dir");
            self.fill(dir).expect("fill group dir");
        }

        fn fill(&self, dir: &Path) -> io::Result<()> {
            for (name, contents) in self.files_for(dir) {
                fs::write(dir.join(name), contents)?;
            }
            Ok(())
        }

        fn writes(&self) -> Vec<(PathBuf, String)> {
            self.writes.lock().expect("lock").clone()
        }

        /// The values written to files named `name`, in order.
        fn written(&self, name: &str) -> Vec<String> {
            self.writes()
                .into_iter()
                .filter(|(path, _)| path.file_name().and_then(|n| n.to_str()) == Some(name))
                .map(|(_, value)| value)
                .collect()
        }

        fn busy_for(&self, dir: &Path, times: u32) {
            self.busy
                .lock()
                .expect("lock")
                .insert(dir.to_owned(), times);
        }

        fn fail_writes(&self, file: &Path, errno: i32) {
            self.failing
                .lock()
                .expect("lock")
                .insert(file.to_owned(), errno);
        }

        /// The kill callback of a test: removes `pid` from every `cgroup.procs` beneath the
        /// hierarchy roots, as its death would; `ESRCH` if it was in none.
        fn kill(&self, pid: i32) -> io::Result<()> {
            let mut found = false;
            let mut stack: Vec<PathBuf> = self.hierarchies.iter().map(|(r, _)| r.clone()).collect();
            while let Some(dir) = stack.pop() {
                let procs = dir.join("cgroup.procs");
                if let Ok(text) = fs::read_to_string(&procs) {
                    let kept: Vec<&str> = text.lines().filter(|l| *l != pid.to_string()).collect();
                    if kept.len() != text.lines().count() {
                        found = true;
                        fs::write(
                            &procs,
                            kept.iter().map(|l| format!("{l}\n")).collect::<String>(),
                        )?;
                    }
                }
                stack.extend(subdirectories(&dir).unwrap_or_default());
            }
            if found {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(libc::ESRCH))
            }
        }
    }

    fn errno(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    /// A v1 memory limit value as the kernel compares it ("-1" is the largest limit, which it
    /// shows as this page-aligned count).
    fn v1_bytes(text: &str) -> u64 {
        match text.trim() {
            "-1" => 9_223_372_036_854_771_712,
            other => other.parse().expect("a v1 memory value"),
        }
    }

    /// What a v1 memory limit file shows after `value` was written: "-1" reads back as the
    /// largest page-aligned count.
    fn v1_shown(value: &str) -> String {
        match value {
            "-1" => "9223372036854771712\n".to_owned(),
            other => format!("{other}\n"),
        }
    }

    impl CgroupFs for FakeKernel {
        fn mkdir(&self, dir: &Path) -> io::Result<()> {
            fs::create_dir(dir)?;
            self.fill(dir)
        }

        fn rmdir(&self, dir: &Path) -> io::Result<()> {
            if let Some(left) = self.busy.lock().expect("lock").get_mut(dir) {
                if *left > 0 {
                    *left -= 1;
                    return Err(errno(libc::EBUSY));
                }
            }
            if !dir.is_dir() {
                return Err(errno(libc::ENOENT));
            }
            let holds_task = fs::read_to_string(dir.join("cgroup.procs"))
                .is_ok_and(|procs| !procs.trim().is_empty());
            if holds_task || !subdirectories(dir).expect("list").is_empty() {
                return Err(errno(libc::EBUSY));
            }
            for entry in fs::read_dir(dir)? {
                fs::remove_file(entry?.path())?;
            }
            fs::remove_dir(dir)
        }

        fn write(&self, file: &Path, value: &str) -> io::Result<()> {
            if let Some(code) = self.failing.lock().expect("lock").get(file) {
                return Err(errno(*code));
            }
            if !file.is_file() {
                // No O_CREAT: the production write must fail the same way on a missing file.
                return write_existing(file, value);
            }
            let dir = file.parent().expect("control file in a dir");
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let current = fs::read_to_string(file)?;
            let contents = match name {
                "memory.limit_in_bytes" => {
                    let memsw = dir.join("memory.memsw.limit_in_bytes");
                    if let Ok(memsw) = fs::read_to_string(memsw) {
                        if v1_bytes(value) > v1_bytes(&memsw) {
                            return Err(errno(libc::EINVAL));
                        }
                    }
                    v1_shown(value)
                }
                "memory.memsw.limit_in_bytes" => {
                    let limit = fs::read_to_string(dir.join("memory.limit_in_bytes"))?;
                    if v1_bytes(value) < v1_bytes(&limit) {
                        return Err(errno(libc::EINVAL));
                    }
                    v1_shown(value)
                }
                "cgroup.procs" => format!("{current}{value}\n"),
                "cgroup.kill" => {
                    fs::write(dir.join("cgroup.procs"), "")?;
                    String::new()
                }
                "cgroup.subtree_control" => {
                    let added = value.strip_prefix('+').expect("+controller");
                    let mut words: Vec<&str> = current.split_whitespace().collect();
                    words.push(added);
                    format!("{}\n", words.join(" "))
                }
                _ => format!("{value}\n"),
            };
            self.writes
                .lock()
                .expect("lock")
                .push((file.to_owned(), value.to_owned()));
            // Truncate, then the production write, which opens without O_CREAT.
            fs::OpenOptions::new().write(true).open(file)?.set_len(0)?;
            write_existing(file, &contents)
        }
    }

    fn tempdir() -> TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    fn contents(path: &Path) -> String {
        fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .trim_end()
            .to_owned()
    }

    fn exists(path: &Path) -> bool {
        path.symlink_metadata().is_ok()
    }

    /// A v2 host: the broker's group at `<tmp>/unified/broker.service`.
    struct V2Host {
        /// Keeps the directory until the test ends.
        _tmp: TempDir,
        fake: Arc<FakeKernel>,
        base: PathBuf,
    }

    fn v2_host(files: Files) -> V2Host {
        let tmp = tempdir();
        let root = tmp.path().join("unified");
        let fake = Arc::new(FakeKernel::default().hierarchy(&root, files));
        let base = root.join("broker.service");
        fake.group(&root);
        fake.group(&base);
        V2Host {
            _tmp: tmp,
            fake,
            base,
        }
    }

    impl V2Host {
        fn open(&self, instance: &str) -> Result<Cgroups, CgroupError> {
            let layout = Layout::V2 {
                base: self.base.clone(),
            };
            Cgroups::open_with(
                layout,
                instance,
                Arc::clone(&self.fake) as Arc<dyn CgroupFs>,
            )
        }
    }

    /// A v1 host: the broker's groups at `<tmp>/{memory,pids,cpu}/broker`.
    struct V1Host {
        /// Keeps the directory until the test ends.
        _tmp: TempDir,
        fake: Arc<FakeKernel>,
        memory: PathBuf,
        pids: PathBuf,
        cpu: PathBuf,
    }

    fn v1_host(memory_files: Files) -> V1Host {
        let tmp = tempdir();
        let root = |name: &str| tmp.path().join(name);
        let fake = Arc::new(
            FakeKernel::default()
                .hierarchy(&root("memory"), memory_files)
                .hierarchy(&root("pids"), V1_PIDS_FILES)
                .hierarchy(&root("cpu"), V1_CPU_FILES),
        );
        let (memory, pids, cpu) = (
            root("memory").join("broker"),
            root("pids").join("broker"),
            root("cpu").join("broker"),
        );
        for dir in [&memory, &pids, &cpu] {
            fake.group(dir);
        }
        V1Host {
            _tmp: tmp,
            fake,
            memory,
            pids,
            cpu,
        }
    }

    impl V1Host {
        fn layout(&self) -> Layout {
            Layout::V1 {
                memory: Some(self.memory.clone()),
                pids: Some(self.pids.clone()),
                cpu: Some(self.cpu.clone()),
            }
        }

        fn open(&self, layout: Layout, instance: &str) -> Result<Cgroups, CgroupError> {
            Cgroups::open_with(
                layout,
                instance,
                Arc::clone(&self.fake) as Arc<dyn CgroupFs>,
            )
        }
    }

    const MIB: u64 = 1024 * 1024;

    // -----------------------------------------------------------------------------------------
    // Detection
    // -----------------------------------------------------------------------------------------

    /// A mountinfo line for a cgroup mount (mount point written as given: escape it yourself).
    fn mount_line(id: u32, root: &str, mount_point: &str, fstype: &str, options: &str) -> String {
        format!("{id} 23 0:{id} {root} {mount_point} rw,relatime shared:{id} - {fstype} {fstype} {options}\n")
    }

    const OTHER_MOUNTS: &str = "22 1 259:1 / / rw,relatime - ext4 /dev/vda rw\n\
        23 22 0:5 / /sys rw,nosuid,nodev,noexec - sysfs sysfs rw\n\
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n";

    #[test]
    fn detect_v2_only_host() {
        let tmp = tempdir();
        let mp = tmp.path().join("cgroup");
        let base = mp.join("user.slice/app.service");
        fs::create_dir_all(&base).expect("mkdir");
        fs::write(
            base.join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma\n",
        )
        .expect("write");
        let mountinfo = format!(
            "{OTHER_MOUNTS}{}",
            mount_line(
                30,
                "/",
                &mp.display().to_string(),
                "cgroup2",
                "rw,nsdelegate"
            )
        );
        let layout = detect(&mountinfo, "0::/user.slice/app.service\n");
        assert_eq!(layout, Layout::V2 { base });
    }

    #[test]
    fn detect_v2_root_group_has_no_trailing_slash() {
        let tmp = tempdir();
        fs::write(tmp.path().join("cgroup.controllers"), "memory pids\n").expect("write");
        let mountinfo = mount_line(30, "/", &tmp.path().display().to_string(), "cgroup2", "rw");
        let Layout::V2 { base } = detect(&mountinfo, "0::/\n") else {
            panic!("expected v2");
        };
        assert_eq!(base.as_os_str(), tmp.path().as_os_str());
    }

    #[test]
    fn detect_v1_only_host_with_comounted_cpu_cpuacct() {
        let mountinfo = format!(
            "{OTHER_MOUNTS}{}{}{}{}",
            mount_line(
                32,
                "/",
                "/sys/fs/cgroup/cpu,cpuacct",
                "cgroup",
                "rw,cpu,cpuacct"
            ),
            mount_line(35, "/", "/sys/fs/cgroup/memory", "cgroup", "rw,memory"),
            mount_line(36, "/", "/sys/fs/cgroup/cpuset", "cgroup", "rw,cpuset"),
            mount_line(39, "/", "/sys/fs/cgroup/pids", "cgroup", "rw,pids"),
        );
        let cgroup = "5:pids:/system.slice/broker.service\n\
                      4:cpuset:/\n\
                      3:memory:/system.slice/broker.service\n\
                      2:cpu,cpuacct:/system.slice\n\
                      1:name=systemd:/system.slice/broker.service\n";
        assert_eq!(
            detect(&mountinfo, cgroup),
            Layout::V1 {
                memory: Some("/sys/fs/cgroup/memory/system.slice/broker.service".into()),
                pids: Some("/sys/fs/cgroup/pids/system.slice/broker.service".into()),
                cpu: Some("/sys/fs/cgroup/cpu,cpuacct/system.slice".into()),
            }
        );
    }

    /// This machine: v1 memory, pids and cpu (cpu and cpuacct apart), and a cgroup2 mount whose
    /// root offers only hugetlb.
    #[test]
    fn detect_hybrid_host_with_empty_cgroup2_is_v1() {
        let tmp = tempdir();
        let at = |name: &str| tmp.path().join(name).display().to_string();
        fs::create_dir(tmp.path().join("unified")).expect("mkdir");
        fs::write(tmp.path().join("unified/cgroup.controllers"), "hugetlb\n").expect("write");
        let mountinfo = [
            mount_line(32, "/", &at("cpu"), "cgroup", "rw,cpu"),
            mount_line(33, "/", &at("cpuacct"), "cgroup", "rw,cpuacct"),
            mount_line(34, "/", &at("cpuset"), "cgroup", "rw,cpuset"),
            mount_line(35, "/", &at("memory"), "cgroup", "rw,memory"),
            mount_line(39, "/", &at("pids"), "cgroup", "rw,pids"),
            mount_line(40, "/", &at("systemd"), "cgroup", "rw,name=systemd"),
            mount_line(41, "/", &at("unified"), "cgroup2", "rw"),
        ]
        .concat();
        let cgroup = "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n\
                      4:memory:/process_api/e04352ac\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";
        assert_eq!(
            detect(&mountinfo, cgroup),
            Layout::V1 {
                memory: Some(tmp.path().join("memory/process_api/e04352ac")),
                pids: Some(tmp.path().join("pids")),
                cpu: Some(tmp.path().join("cpu")),
            }
        );
        // The same host with an unreadable cgroup2 root is v1 too.
        fs::remove_file(tmp.path().join("unified/cgroup.controllers")).expect("rm");
        assert!(matches!(detect(&mountinfo, cgroup), Layout::V1 { .. }));
    }

    #[test]
    fn detect_prefers_v2_only_when_it_offers_memory_and_pids() {
        let tmp = tempdir();
        let unified = tmp.path().join("unified");
        fs::create_dir(&unified).expect("mkdir");
        let mountinfo = [
            mount_line(35, "/", "/v1/memory", "cgroup", "rw,memory"),
            mount_line(41, "/", &unified.display().to_string(), "cgroup2", "rw"),
        ]
        .concat();
        let cgroup = "4:memory:/\n0::/\n";
        fs::write(unified.join("cgroup.controllers"), "memory\n").expect("write");
        assert_eq!(
            detect(&mountinfo, cgroup),
            Layout::V1 {
                memory: Some("/v1/memory".into()),
                pids: None,
                cpu: None
            }
        );
        fs::write(unified.join("cgroup.controllers"), "cpu memory pids\n").expect("write");
        assert_eq!(detect(&mountinfo, cgroup), Layout::V2 { base: unified });
    }

    #[test]
    fn detect_nothing_mounted() {
        let Layout::None { reason } = detect(OTHER_MOUNTS, "0::/\n") else {
            panic!("expected none");
        };
        assert!(reason.contains("no cgroup2 mount"), "{reason}");
        assert!(
            reason.contains("no cgroup v1 memory, pids or cpu"),
            "{reason}"
        );

        // Empty texts, and garbage, are "nothing" too, never a panic.
        assert!(matches!(detect("", ""), Layout::None { .. }));
        assert!(matches!(
            detect("garbage - cgroup2\n - \n1 2 3\n", ":::\n0\n"),
            Layout::None { .. }
        ));
    }

    #[test]
    fn detect_reports_why_cgroup2_was_not_used() {
        let tmp = tempdir();
        fs::write(tmp.path().join("cgroup.controllers"), "hugetlb\n").expect("write");
        let mountinfo = mount_line(41, "/", &tmp.path().display().to_string(), "cgroup2", "rw");
        let Layout::None { reason } = detect(&mountinfo, "0::/\n") else {
            panic!("expected none");
        };
        assert!(
            reason.contains("offers [hugetlb], not memory and pids"),
            "{reason}"
        );
        let Layout::None { reason } = detect(&mountinfo, "1:cpu:/\n") else {
            panic!("expected none");
        };
        assert!(reason.contains("no 0:: line"), "{reason}");
    }

    #[test]
    fn detect_unescapes_mount_points_and_keeps_spaces_in_group_paths() {
        let tmp = tempdir();
        let mp = tmp.path().join("my cgroups\\v2");
        let base = mp.join("a b/c\td");
        fs::create_dir_all(&base).expect("mkdir");
        fs::write(base.join("cgroup.controllers"), "memory pids\n").expect("write");
        let escaped = mp
            .display()
            .to_string()
            .replace('\\', "\\134")
            .replace(' ', "\\040");
        let mountinfo = mount_line(30, "/", &escaped, "cgroup2", "rw");
        assert_eq!(detect(&mountinfo, "0::/a b/c\td\n"), Layout::V2 { base });

        assert_eq!(
            unescape_mountinfo("a\\040b\\011c\\012d\\134e"),
            Path::new("a b\tc\nd\\e")
        );
        // Not an escape: kept as written.
        assert_eq!(unescape_mountinfo("a\\04"), Path::new("a\\04"));
        assert_eq!(unescape_mountinfo("a\\999b"), Path::new("a\\999b"));
        assert_eq!(unescape_mountinfo("\\777"), Path::new("\\777"));
    }

    #[test]
    fn detect_uses_only_mounts_that_show_the_process_group() {
        // A container's view: the hierarchy is mounted from /docker/abc, the process's path is
        // below it. Another mount shows an unrelated subtree.
        let mountinfo = [
            mount_line(
                35,
                "/docker/abc",
                "/sys/fs/cgroup/memory",
                "cgroup",
                "rw,memory",
            ),
            mount_line(36, "/other", "/mnt/pids", "cgroup", "rw,pids"),
            mount_line(37, "/", "/sys/fs/cgroup/cpu", "cgroup", "rw,cpu"),
        ]
        .concat();
        let cgroup = "3:memory:/docker/abc/inner\n2:pids:/docker/abc\n1:cpu:/docker/../etc\n";
        assert_eq!(
            detect(&mountinfo, cgroup),
            Layout::V1 {
                memory: Some("/sys/fs/cgroup/memory/inner".into()),
                pids: None,
                cpu: None,
            }
        );
    }

    // -----------------------------------------------------------------------------------------
    // Instance names and liveness
    // -----------------------------------------------------------------------------------------

    #[test]
    fn instance_names_round_trip_and_malformed_ones_are_refused() {
        assert_eq!(instance_name(4242, 987_654), "4242-987654");
        assert_eq!(parse_instance_name("4242-987654"), Some((4242, 987_654)));
        assert_eq!(parse_instance_name("1-0"), Some((1, 0)));
        // A later broker of the same process.
        assert_eq!(nth_instance_name(4242, 987_654, 0), "4242-987654");
        assert_eq!(nth_instance_name(4242, 987_654, 3), "4242-987654-3");
        assert_eq!(parse_instance_name("4242-987654-3"), Some((4242, 987_654)));
        for malformed in [
            "",
            "4242",
            "4242-",
            "-5",
            "0-5",
            "-1-5",
            "a-5",
            "5-b",
            "007-1",
            "5-01",
            "5-1-0",
            "5-1-02",
            "5-1-",
            "5-1-2-3",
            "5 -1",
            "+5-1",
            "99999999999-1",
            "5-99999999999999999999999",
        ] {
            assert_eq!(parse_instance_name(malformed), None, "{malformed:?}");
        }
    }

    #[test]
    fn stat_starttime_is_field_22_counted_after_the_command_name() {
        let fields_after_comm = |starttime: &str| {
            format!("S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 {starttime} 20 21 22")
        };
        assert_eq!(
            parse_stat_starttime(&format!("4242 (broker) {}", fields_after_comm("987654"))),
            Some(987_654)
        );
        // A command name with spaces and parentheses cannot shift the fields.
        assert_eq!(
            parse_stat_starttime(&format!("4242 (a) b (c) d) {}", fields_after_comm("77"))),
            Some(77)
        );
        assert_eq!(parse_stat_starttime("4242 (broker) S 1 2 3"), None);
        assert_eq!(
            parse_stat_starttime(&fields_after_comm("1")),
            None,
            "no ')'"
        );
        assert_eq!(
            parse_stat_starttime(&format!("1 (x) {}", fields_after_comm("x9"))),
            None
        );
    }

    #[test]
    fn liveness_from_a_proc_directory() {
        let proc_root = tempdir();
        let stat = |pid: i32, starttime: &str| {
            let dir = proc_root.path().join(pid.to_string());
            fs::create_dir_all(&dir).expect("mkdir");
            let line = format!(
                "{pid} (sh) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 {starttime} 20 21\n"
            );
            fs::write(dir.join("stat"), line).expect("write");
        };
        stat(10, "500");
        stat(11, "garbage");
        let root = proc_root.path();
        assert_eq!(process_starttime(root, 10).expect("reads"), Some(500));
        assert_eq!(process_starttime(root, 12).expect("reads"), None);
        assert!(matches!(
            process_starttime(root, 11),
            Err(CgroupError::Parse { .. })
        ));
        assert!(broker_is_alive(root, 10, 500));
        assert!(
            !broker_is_alive(root, 10, 499),
            "pid reused by another process"
        );
        assert!(!broker_is_alive(root, 12, 500), "no such process");
        assert!(broker_is_alive(root, 11, 500), "unparsable counts as alive");
    }

    #[test]
    fn own_instance_name_is_this_process() {
        let name = own_instance_name(Path::new("/proc")).expect("own stat");
        let (pid, _) = parse_instance_name(&name).expect("well-formed");
        assert_eq!(u32::try_from(pid).ok(), Some(std::process::id()));
        // A second broker of the same process gets a name of its own.
        let next = own_instance_name(Path::new("/proc")).expect("own stat");
        assert_ne!(next, name);
        assert_eq!(parse_instance_name(&next), parse_instance_name(&name));
    }

    // -----------------------------------------------------------------------------------------
    // Instance directories
    // -----------------------------------------------------------------------------------------

    #[test]
    fn v2_open_enables_controllers_in_base_and_instance() {
        let host = v2_host(V2_FILES);
        fs::write(
            host.base.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .expect("write");
        let cgroups = host.open("100-200").expect("open");
        let instance = host.base.join("portcullis-100-200");
        assert_eq!(cgroups.version(), CgroupVersion::V2);
        assert_eq!(
            cgroups.instance_dirs().collect::<Vec<_>>(),
            [instance.as_path()]
        );
        assert!(instance.is_dir());
        assert_eq!(
            host.fake.writes(),
            [
                (
                    host.base.join("cgroup.subtree_control"),
                    "+memory".to_owned()
                ),
                (host.base.join("cgroup.subtree_control"), "+pids".to_owned()),
                (host.base.join("cgroup.subtree_control"), "+cpu".to_owned()),
                (
                    instance.join("cgroup.subtree_control"),
                    "+memory".to_owned()
                ),
                (instance.join("cgroup.subtree_control"), "+pids".to_owned()),
                (instance.join("cgroup.subtree_control"), "+cpu".to_owned()),
            ]
        );
        assert_eq!(
            contents(&instance.join("cgroup.subtree_control")),
            "memory pids cpu"
        );
        for c in Controller::ALL {
            assert!(cgroups.supports(c), "{c}");
        }
    }

    #[test]
    fn v2_open_leaves_an_enabled_base_alone_and_skips_missing_controllers() {
        let host = v2_host(V2_FILES);
        fs::write(host.base.join("cgroup.controllers"), "memory pids\n").expect("write");
        fs::write(host.base.join("cgroup.subtree_control"), "pids memory\n").expect("write");
        let cgroups = host.open("1-2").expect("open");
        assert_eq!(
            host.fake.written("cgroup.subtree_control"),
            ["+memory", "+pids"],
            "only the instance's subtree_control is written"
        );
        assert!(!cgroups.supports(Controller::Cpu));
        let limits = CgroupLimits {
            cpu_quota: Some((50_000, 100_000)),
            ..CgroupLimits::default()
        };
        assert!(matches!(
            cgroups.create(1, &limits),
            Err(CgroupError::Unsupported {
                controller: Controller::Cpu
            })
        ));
        assert!(!exists(&host.base.join("portcullis-1-2/child-1")));
    }

    #[test]
    fn v2_open_busy_base_is_a_typed_error_and_leaves_nothing() {
        let host = v2_host(V2_FILES);
        // The kernel's no-internal-process rule: the base holds the broker and is not the root.
        fs::write(host.base.join("cgroup.procs"), "4242\n").expect("write");
        host.fake
            .fail_writes(&host.base.join("cgroup.subtree_control"), libc::EBUSY);
        let err = host.open("1-2").expect_err("EBUSY");
        let CgroupError::EnableController {
            path,
            controller,
            source,
        } = &err
        else {
            panic!("unexpected {err:?}");
        };
        assert_eq!(path, &host.base.join("cgroup.subtree_control"));
        assert_eq!(*controller, Controller::Memory);
        assert_eq!(source.raw_os_error(), Some(libc::EBUSY));
        assert!(
            err.to_string().contains("enable the memory controller in"),
            "{err}"
        );
        assert!(!exists(&host.base.join("portcullis-1-2")));

        // A failure on the instance's own subtree_control removes the new directory again.
        let host = v2_host(V2_FILES);
        let instance = host.base.join("portcullis-1-2");
        host.fake
            .fail_writes(&instance.join("cgroup.subtree_control"), libc::EINVAL);
        assert!(matches!(
            host.open("1-2"),
            Err(CgroupError::EnableController { .. })
        ));
        assert!(!exists(&instance));
    }

    #[test]
    fn open_refuses_bad_layouts_and_names() {
        let host = v2_host(V2_FILES);
        for name in ["", "a/b", "..", ".", "a b", "x\0", &"9".repeat(65)] {
            assert!(
                matches!(
                    host.open(name),
                    Err(CgroupError::InvalidInstanceName { .. })
                ),
                "{name:?}"
            );
        }
        let fs_ = Arc::clone(&host.fake) as Arc<dyn CgroupFs>;
        let none = Layout::None {
            reason: "nothing here".into(),
        };
        let err = Cgroups::open_with(none, "1-2", Arc::clone(&fs_)).expect_err("none");
        assert_eq!(err.to_string(), "no usable cgroup hierarchy: nothing here");
        let empty = Layout::V1 {
            memory: None,
            pids: None,
            cpu: None,
        };
        assert!(matches!(
            Cgroups::open_with(empty, "1-2", Arc::clone(&fs_)),
            Err(CgroupError::Unavailable { .. })
        ));
        fs::write(host.base.join("cgroup.controllers"), "io hugetlb\n").expect("write");
        assert!(matches!(
            host.open("1-2"),
            Err(CgroupError::Unavailable { .. })
        ));
        // A second broker with the same instance name (cannot happen with real names).
        fs::write(host.base.join("cgroup.controllers"), "memory pids\n").expect("write");
        let _first = host.open("1-2").expect("first");
        let err = host.open("1-2").expect_err("exists");
        assert!(matches!(&err, CgroupError::CreateDir { source, .. }
            if source.kind() == io::ErrorKind::AlreadyExists));
    }

    #[test]
    fn v1_open_makes_one_directory_per_hierarchy() {
        let host = v1_host(V1_MEMORY_FILES);
        let cgroups = host.open(host.layout(), "7-8").expect("open");
        assert_eq!(cgroups.version(), CgroupVersion::V1);
        let dirs: Vec<PathBuf> = cgroups.instance_dirs().map(Path::to_owned).collect();
        assert_eq!(
            dirs,
            [
                host.memory.join("portcullis-7-8"),
                host.pids.join("portcullis-7-8"),
                host.cpu.join("portcullis-7-8"),
            ]
        );
        assert!(dirs.iter().all(|d| d.is_dir()));
        assert!(
            host.fake.writes().is_empty(),
            "v1 needs no controller enabling"
        );

        // Controllers mounted together share one directory; an absent one is unsupported.
        let host = v1_host(V1_MEMORY_FILES);
        let shared = Layout::V1 {
            memory: Some(host.memory.clone()),
            pids: Some(host.memory.clone()),
            cpu: None,
        };
        let cgroups = host.open(shared, "7-8").expect("open");
        assert_eq!(cgroups.instance_dirs().count(), 1);
        assert!(cgroups.supports(Controller::Memory) && cgroups.supports(Controller::Pids));
        assert!(!cgroups.supports(Controller::Cpu));
    }

    #[test]
    fn v1_open_failure_in_a_later_hierarchy_removes_the_earlier_ones() {
        let host = v1_host(V1_MEMORY_FILES);
        fs::remove_dir_all(&host.cpu).expect("rm");
        let err = host.open(host.layout(), "7-8").expect_err("no cpu base");
        assert!(matches!(&err, CgroupError::CreateDir { path, .. }
            if *path == host.cpu.join("portcullis-7-8")));
        assert!(!exists(&host.memory.join("portcullis-7-8")));
        assert!(!exists(&host.pids.join("portcullis-7-8")));
    }

    // -----------------------------------------------------------------------------------------
    // Child groups: limits
    // -----------------------------------------------------------------------------------------

    fn all_limits() -> CgroupLimits {
        CgroupLimits {
            memory_bytes: Some(64 * MIB),
            processes: Some(16),
            cpu_quota: Some((50_000, 100_000)),
        }
    }

    #[test]
    fn v2_limits_use_the_kernel_syntax() {
        let host = v2_host(V2_FILES);
        let cgroups = host.open("1-2").expect("open");
        let child = cgroups.create(9, &all_limits()).expect("create");
        let dir = host.base.join("portcullis-1-2/child-9");
        assert_eq!(child.dirs().collect::<Vec<_>>(), [dir.as_path()]);
        assert_eq!(child.id(), 9);
        assert_eq!(contents(&dir.join("memory.max")), "67108864");
        assert_eq!(contents(&dir.join("memory.swap.max")), "0");
        assert_eq!(contents(&dir.join("pids.max")), "16");
        assert_eq!(contents(&dir.join("cpu.max")), "50000 100000");

        // None lifts each limit again.
        child.set_limits(&CgroupLimits::default()).expect("lift");
        assert_eq!(contents(&dir.join("memory.max")), "max");
        assert_eq!(contents(&dir.join("memory.swap.max")), "max");
        assert_eq!(contents(&dir.join("pids.max")), "max");
        assert_eq!(contents(&dir.join("cpu.max")), "max");
    }

    #[test]
    fn v2_without_swap_accounting_skips_memory_swap_max() {
        let files: Vec<_> = V2_FILES
            .iter()
            .copied()
            .filter(|(name, _)| *name != "memory.swap.max")
            .collect();
        let host = v2_host(Box::leak(files.into_boxed_slice()));
        let cgroups = host.open("1-2").expect("open");
        cgroups.create(1, &all_limits()).expect("create");
        assert!(host.fake.written("memory.swap.max").is_empty());
        assert!(!exists(
            &host.base.join("portcullis-1-2/child-1/memory.swap.max")
        ));
    }

    #[test]
    fn v1_limits_use_the_kernel_syntax_and_order() {
        let host = v1_host(V1_MEMORY_FILES);
        let cgroups = host.open(host.layout(), "1-2").expect("open");
        let child = cgroups.create(3, &all_limits()).expect("create");
        let memory = host.memory.join("portcullis-1-2/child-3");
        let pids = host.pids.join("portcullis-1-2/child-3");
        let cpu = host.cpu.join("portcullis-1-2/child-3");
        assert_eq!(child.dirs().collect::<Vec<_>>(), [&memory, &pids, &cpu]);
        assert_eq!(contents(&memory.join("memory.limit_in_bytes")), "67108864");
        assert_eq!(
            contents(&memory.join("memory.memsw.limit_in_bytes")),
            "67108864"
        );
        assert_eq!(contents(&pids.join("pids.max")), "16");
        assert_eq!(contents(&cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(contents(&cpu.join("cpu.cfs_quota_us")), "50000");
        let names: Vec<String> = host
            .fake
            .writes()
            .iter()
            .map(|(path, value)| {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                format!("{name}={value}")
            })
            .collect();
        assert_eq!(
            names,
            [
                // A cut: the memory limit first, then memsw (never below it).
                "memory.limit_in_bytes=67108864",
                "memory.memsw.limit_in_bytes=67108864",
                "pids.max=16",
                // The period before the quota.
                "cpu.cfs_period_us=100000",
                "cpu.cfs_quota_us=50000",
            ]
        );

        // A raise writes memsw first; the fake, like the kernel, refuses the other order.
        let raised = CgroupLimits {
            memory_bytes: Some(128 * MIB),
            ..all_limits()
        };
        child.set_limits(&raised).expect("raise");
        assert_eq!(
            host.fake
                .written("memory.memsw.limit_in_bytes")
                .last()
                .map(String::as_str),
            Some("134217728")
        );
        assert_eq!(contents(&memory.join("memory.limit_in_bytes")), "134217728");

        // None: -1 for memory and quota, max for pids; the period is left as it was.
        child.set_limits(&CgroupLimits::default()).expect("lift");
        assert_eq!(
            host.fake
                .written("memory.limit_in_bytes")
                .last()
                .map(String::as_str),
            Some("-1")
        );
        assert_eq!(
            contents(&memory.join("memory.limit_in_bytes")),
            "9223372036854771712"
        );
        assert_eq!(
            contents(&memory.join("memory.memsw.limit_in_bytes")),
            "9223372036854771712"
        );
        assert_eq!(contents(&pids.join("pids.max")), "max");
        assert_eq!(contents(&cpu.join("cpu.cfs_quota_us")), "-1");
        assert_eq!(contents(&cpu.join("cpu.cfs_period_us")), "100000");

        // And back down from unlimited.
        child.set_limits(&all_limits()).expect("cut again");
        assert_eq!(
            contents(&memory.join("memory.memsw.limit_in_bytes")),
            "67108864"
        );
    }

    #[test]
    fn v1_without_swap_accounting_writes_only_the_memory_limit() {
        let host = v1_host(V1_MEMORY_NO_SWAP_FILES);
        let cgroups = host.open(host.layout(), "1-2").expect("open");
        cgroups.create(1, &all_limits()).expect("create");
        assert_eq!(host.fake.written("memory.limit_in_bytes"), ["67108864"]);
        assert!(host.fake.written("memory.memsw.limit_in_bytes").is_empty());
    }

    #[test]
    fn invalid_and_unsupported_limits_create_nothing() {
        let host = v1_host(V1_MEMORY_FILES);
        let no_cpu = Layout::V1 {
            memory: Some(host.memory.clone()),
            pids: Some(host.pids.clone()),
            cpu: None,
        };
        let cgroups = host.open(no_cpu, "1-2").expect("open");
        let child_dir = host.memory.join("portcullis-1-2/child-1");
        let cases = [
            (
                CgroupLimits {
                    cpu_quota: Some((50_000, 100_000)),
                    ..CgroupLimits::default()
                },
                "cannot limit cpu",
            ),
            (
                CgroupLimits {
                    cpu_quota: Some((50_000, 999)),
                    ..CgroupLimits::default()
                },
                "period must be 1000 to 1000000",
            ),
            (
                CgroupLimits {
                    cpu_quota: Some((999, 100_000)),
                    ..CgroupLimits::default()
                },
                "quota at least 1000",
            ),
            (
                CgroupLimits {
                    cpu_quota: Some((50_000, 1_000_001)),
                    ..CgroupLimits::default()
                },
                "period must be",
            ),
            (
                CgroupLimits {
                    processes: Some(MAX_PIDS + 1),
                    ..CgroupLimits::default()
                },
                "processes 4194305 is above the kernel's 4194304",
            ),
        ];
        for (limits, needle) in cases {
            let err = cgroups.create(1, &limits).expect_err("refused");
            assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
            assert!(!exists(&child_dir), "{limits:?} left a group");
        }
        assert!(host.fake.writes().is_empty());
    }

    #[test]
    fn a_failed_limit_write_removes_the_new_group() {
        let host = v2_host(V2_FILES);
        let cgroups = host.open("1-2").expect("open");
        let dir = host.base.join("portcullis-1-2/child-4");
        host.fake.fail_writes(&dir.join("pids.max"), libc::EINVAL);
        let err = cgroups.create(4, &all_limits()).expect_err("EINVAL");
        assert!(
            matches!(&err, CgroupError::Write { path, value, .. }
                if *path == dir.join("pids.max") && value == "16"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("write \"16\" to {}", dir.join("pids.max").display())
        );
        assert!(!exists(&dir));
        // Same id again: the name is free.
        host.fake.failing.lock().expect("lock").clear();
        cgroups.create(4, &all_limits()).expect("second try");
    }

    #[test]
    fn the_production_write_never_creates_a_control_file() {
        let tmp = tempdir();
        let missing = tmp.path().join("memory.max");
        let err = Kernel.write(&missing, "1").expect_err("no such file");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(!exists(&missing));

        // The whole production path on plain directories: mkdir works, but the first limit
        // finds no control file, and the group is removed again.
        let base = tmp.path().join("memory");
        fs::create_dir(&base).expect("mkdir");
        let layout = Layout::V1 {
            memory: Some(base.clone()),
            pids: None,
            cpu: None,
        };
        let cgroups = Cgroups::open(layout, "1-2").expect("open");
        let limits = CgroupLimits {
            memory_bytes: Some(64 * MIB),
            ..CgroupLimits::default()
        };
        let err = cgroups.create(1, &limits).expect_err("no control files");
        assert!(
            matches!(&err, CgroupError::Write { source, .. }
            if source.kind() == io::ErrorKind::NotFound),
            "{err:?}"
        );
        assert!(!exists(&base.join("portcullis-1-2/child-1")));
        cgroups.remove().expect("remove instance");
        assert!(!exists(&base.join("portcullis-1-2")));
    }

    #[test]
    fn limits_from_a_policy() {
        let policy = portcullis_policy::Limits::default();
        assert_eq!(
            CgroupLimits::from_policy(&policy, 2),
            CgroupLimits {
                memory_bytes: Some(512 * MIB),
                processes: Some(64),
                cpu_quota: Some((100_000, 100_000)),
            }
        );
        let custom = portcullis_policy::Limits {
            memory_bytes: 0,
            processes: 1,
            cpu_percent: 1,
            ..policy
        };
        assert_eq!(
            CgroupLimits::from_policy(&custom, 4),
            CgroupLimits {
                memory_bytes: None,
                processes: Some(1),
                cpu_quota: Some((1_000, 100_000)),
            }
        );
        // As much CPU as the machine has, or more, is no throttling.
        assert_eq!(CgroupLimits::from_policy(&policy, 1).cpu_quota, None);
        let three = portcullis_policy::Limits {
            cpu_percent: 300,
            ..policy
        };
        assert_eq!(CgroupLimits::from_policy(&three, 2).cpu_quota, None);
        assert_eq!(
            CgroupLimits::from_policy(&three, 4).cpu_quota,
            Some((300_000, 100_000))
        );
        for limits in [policy, custom, three] {
            CgroupLimits::from_policy(&limits, 2)
                .validate()
                .expect("policy values are in the kernel's ranges");
        }
    }

    // -----------------------------------------------------------------------------------------
    // Child groups: attach, events, procs, remove
    // -----------------------------------------------------------------------------------------

    #[test]
    fn attach_writes_the_pid_to_every_hierarchy() {
        let host = v1_host(V1_MEMORY_FILES);
        let cgroups = host.open(host.layout(), "1-2").expect("open");
        let child = cgroups.create(1, &CgroupLimits::default()).expect("create");
        let before = host.fake.writes().len();
        child.attach(4242).expect("attach");
        let procs: Vec<(PathBuf, String)> = host.fake.writes().split_off(before);
        assert_eq!(
            procs,
            child
                .dirs()
                .map(|d| (d.join("cgroup.procs"), "4242".to_owned()))
                .collect::<Vec<_>>()
        );
        assert_eq!(child.procs().expect("procs"), [4242]);
        for pid in [0, -1, i32::MIN] {
            assert!(matches!(
                child.attach(pid),
                Err(CgroupError::InvalidPid { .. })
            ));
        }
        assert_eq!(
            host.fake.writes().len(),
            before + 3,
            "no write for a bad pid"
        );
    }

    #[test]
    fn v2_events_are_read_from_memory_and_pids_events() {
        let host = v2_host(V2_FILES);
        let cgroups = host.open("1-2").expect("open");
        let child = cgroups.create(1, &all_limits()).expect("create");
        let dir = host.base.join("portcullis-1-2/child-1");
        assert_eq!(child.events().expect("events"), CgroupEvents::default());
        fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 3\nmax 17\noom 2\noom_kill 1\noom_group_kill 0\nnew_key 5\n",
        )
        .expect("write");
        fs::write(dir.join("pids.events"), "max 4\n").expect("write");
        assert_eq!(
            child.events().expect("events"),
            CgroupEvents {
                oom_kills: 1,
                memory_max_hits: 17,
                pids_max_hits: 4
            }
        );

        let cases = [
            (
                "memory.events",
                "low 0\nhigh 0\nmax 0\noom 0\n",
                "no \"oom_kill\" line",
            ),
            (
                "memory.events",
                "max 1\noom_kill x\n",
                "\"oom_kill\" value \"x\" is not a count",
            ),
            (
                "memory.events",
                "max 1\noom_kill 1 2\n",
                "is not \"oom_kill <count>\"",
            ),
            (
                "memory.events",
                "oom_kill 1\nmax -1\n",
                "\"max\" value \"-1\"",
            ),
            ("memory.events", "\u{0}\u{1}garbage", "no \"oom_kill\" line"),
            ("pids.events", "", "no \"max\" line"),
            ("pids.events", "max many\n", "\"max\" value \"many\""),
        ];
        for (file, text, needle) in cases {
            fs::write(dir.join("memory.events"), "max 0\noom_kill 0\n").expect("write");
            fs::write(dir.join("pids.events"), "max 0\n").expect("write");
            fs::write(dir.join(file), text).expect("write");
            let err = child.events().expect_err("bad file");
            assert!(
                matches!(&err, CgroupError::Parse { path, .. } if *path == dir.join(file)),
                "{err:?}"
            );
            assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
        }
        fs::remove_file(dir.join("pids.events")).expect("rm");
        assert!(matches!(child.events(), Err(CgroupError::Read { .. })));
    }

    #[test]
    fn v1_events_are_read_from_oom_control_failcnt_and_pids_events() {
        let host = v1_host(V1_MEMORY_FILES);
        let cgroups = host.open(host.layout(), "1-2").expect("open");
        let child = cgroups.create(1, &all_limits()).expect("create");
        let memory = host.memory.join("portcullis-1-2/child-1");
        let pids = host.pids.join("portcullis-1-2/child-1");
        fs::write(
            memory.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        )
        .expect("write");
        fs::write(memory.join("memory.failcnt"), "250\n").expect("write");
        fs::write(memory.join("memory.memsw.failcnt"), "5\n").expect("write");
        fs::write(pids.join("pids.events"), "max 9\n").expect("write");
        assert_eq!(
            child.events().expect("events"),
            CgroupEvents {
                oom_kills: 3,
                memory_max_hits: 255,
                pids_max_hits: 9
            }
        );
        fs::write(memory.join("memory.memsw.failcnt"), "x\n").expect("write");
        let err = child.events().expect_err("garbage memsw failcnt");
        assert!(
            err.to_string().contains("memory.memsw.failcnt: \"x\""),
            "{err}"
        );
        fs::write(memory.join("memory.memsw.failcnt"), "0\n").expect("write");

        // An old kernel without the oom_kill line, and garbage.
        fs::write(
            memory.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\n",
        )
        .expect("write");
        let err = child.events().expect_err("no oom_kill");
        assert!(
            err.to_string()
                .ends_with("memory.oom_control: no \"oom_kill\" line"),
            "{err}"
        );
        fs::write(memory.join("memory.oom_control"), "oom_kill 0\n").expect("write");
        fs::write(memory.join("memory.failcnt"), "lots\n").expect("write");
        let err = child.events().expect_err("garbage failcnt");
        assert!(err.to_string().contains("\"lots\" is not a count"), "{err}");
        fs::write(memory.join("memory.failcnt"), "").expect("write");
        assert!(matches!(child.events(), Err(CgroupError::Parse { .. })));

        // A layout without memory or pids counts 0 for them.
        let host = v1_host(V1_MEMORY_FILES);
        let cpu_only = Layout::V1 {
            memory: None,
            pids: None,
            cpu: Some(host.cpu.clone()),
        };
        let cgroups = host.open(cpu_only, "1-2").expect("open");
        let child = cgroups.create(1, &CgroupLimits::default()).expect("create");
        assert_eq!(child.events().expect("events"), CgroupEvents::default());
    }

    #[test]
    fn procs_merges_hierarchies_and_refuses_garbage() {
        let host = v1_host(V1_MEMORY_FILES);
        let cgroups = host.open(host.layout(), "1-2").expect("open");
        let child = cgroups.create(1, &CgroupLimits::default()).expect("create");
        let memory = host.memory.join("portcullis-1-2/child-1");
        let pids = host.pids.join("portcullis-1-2/child-1");
        assert!(child.procs().expect("procs").is_empty());
        fs::write(memory.join("cgroup.procs"), "30\n10\n").expect("write");
        fs::write(pids.join("cgroup.procs"), "20\n10\n").expect("write");
        assert_eq!(child.procs().expect("procs"), [10, 20, 30]);
        for garbage in ["x\n", "0\n", "-5\n", "1 2\n", "\n"] {
            fs::write(pids.join("cgroup.procs"), garbage).expect("write");
            let err = child.procs().expect_err("garbage");
            assert!(
                matches!(&err, CgroupError::Parse { path, .. } if *path == pids.join("cgroup.procs")),
                "{garbage:?}: {err:?}"
            );
        }
    }

    #[test]
    fn remove_retries_while_busy_and_names_the_path_when_it_cannot() {
        let host = v1_host(V1_MEMORY_FILES);
        let cgroups = host.open(host.layout(), "1-2").expect("open");

        // A task that lingers for two tries, then is gone.
        let child = cgroups.create(1, &CgroupLimits::default()).expect("create");
        let dirs: Vec<PathBuf> = child.dirs().map(Path::to_owned).collect();
        host.fake.busy_for(&dirs[0], 2);
        child.remove().expect("removed after retries");
        assert!(dirs.iter().all(|d| !exists(d)));

        // A task that stays: an error naming the directory; the other hierarchies still go.
        let child = cgroups.create(2, &CgroupLimits::default()).expect("create");
        let dirs: Vec<PathBuf> = child.dirs().map(Path::to_owned).collect();
        fs::write(dirs[1].join("cgroup.procs"), "77\n").expect("write");
        let started = std::time::Instant::now();
        let err = child.remove().expect_err("busy");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "bounded retries"
        );
        let CgroupError::RemoveDir { path, source } = &err else {
            panic!("unexpected {err:?}");
        };
        assert_eq!(path, &dirs[1]);
        assert_eq!(source.kind(), io::ErrorKind::ResourceBusy);
        assert_eq!(
            err.to_string(),
            format!("remove cgroup {}", dirs[1].display())
        );
        assert!(!exists(&dirs[0]) && !exists(&dirs[2]));
        assert!(exists(&dirs[1]));
    }

    #[test]
    fn cgroups_remove_takes_leftover_children_and_the_instance_dirs() {
        let host = v2_host(V2_FILES);
        let cgroups = host.open("1-2").expect("open");
        let kept = cgroups.create(1, &all_limits()).expect("create");
        let removed = cgroups.create(2, &all_limits()).expect("create");
        removed.remove().expect("remove");
        drop(kept); // dropping leaves the directory
        let instance = host.base.join("portcullis-1-2");
        assert!(exists(&instance.join("child-1")));
        cgroups.remove().expect("remove all");
        assert!(!exists(&instance));
        assert!(host.base.is_dir(), "the base is never removed");
    }

    // -----------------------------------------------------------------------------------------
    // Sweeping stale instances
    // -----------------------------------------------------------------------------------------

    /// Makes a group beneath `parent` as the kernel would, with `procs` listed in it.
    fn stale_group(fake: &FakeKernel, parent: &Path, name: &str, procs: &str) -> PathBuf {
        let dir = parent.join(name);
        fake.group(&dir);
        fs::write(dir.join("cgroup.procs"), procs).expect("write");
        dir
    }

    #[test]
    fn v2_sweep_removes_dead_brokers_and_leaves_the_rest() {
        let host = v2_host(V2_FILES);
        let fake = &host.fake;
        let base = &host.base;
        let dead = stale_group(fake, base, "portcullis-100-5", "");
        let dead_child = stale_group(fake, &dead, "child-1", "1001\n1002\n");
        let dead_child2 = stale_group(fake, &dead, "child-2", "");
        let reused = stale_group(fake, base, "portcullis-200-5", "");
        let alive = stale_group(fake, base, "portcullis-300-7", "");
        let alive_child = stale_group(fake, &alive, "child-1", "3001\n");
        let malformed: Vec<PathBuf> = ["portcullis-abc", "portcullis-12", "portcullis-007-1"]
            .iter()
            .map(|name| stale_group(fake, base, name, ""))
            .collect();
        let unrelated = stale_group(fake, base, "session-4", "4001\n");
        let cgroups = host.open("1-2").expect("open");
        let own = host.base.join("portcullis-1-2");

        // pid 300 runs with start time 7; pid 200 now belongs to a newer process.
        let is_alive = |pid: i32, starttime: u64| (pid, starttime) == (300, 7) || pid == 1;
        let kills = Mutex::new(Vec::new());
        let report = cgroups.sweep_stale(is_alive, |pid| {
            kills.lock().expect("lock").push(pid);
            Ok(())
        });

        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.removed, [dead.clone(), reused.clone()]);
        assert_eq!(report.alive, [alive.as_path()]);
        assert_eq!(
            report.malformed,
            [
                malformed[2].clone(), // portcullis-007-1
                malformed[1].clone(), // portcullis-12
                malformed[0].clone(), // portcullis-abc
            ]
        );
        assert_eq!(report.killed, [1001, 1002]);
        assert!(
            kills.lock().expect("lock").is_empty(),
            "cgroup.kill, not the callback"
        );
        assert_eq!(
            fake.written("cgroup.kill"),
            ["1"],
            "one kill, for the one group holding tasks"
        );
        assert_eq!(
            fake.writes()
                .iter()
                .find(|(p, _)| p.ends_with("cgroup.kill"))
                .map(|(p, _)| p.clone()),
            Some(dead_child.join("cgroup.kill"))
        );
        for gone in [&dead, &dead_child, &dead_child2, &reused] {
            assert!(!exists(gone), "{} left", gone.display());
        }
        for kept in [&alive, &alive_child, &unrelated, &own]
            .into_iter()
            .chain(malformed.iter())
        {
            assert!(exists(kept), "{} removed", kept.display());
        }
        assert_eq!(contents(&alive_child.join("cgroup.procs")), "3001");
    }

    #[test]
    fn v1_sweep_kills_listed_pids_through_the_callback() {
        let host = v1_host(V1_MEMORY_FILES);
        let fake = &host.fake;
        let dead_memory = stale_group(fake, &host.memory, "portcullis-100-5", "");
        let child_memory = stale_group(fake, &dead_memory, "child-1", "1001\n");
        let dead_pids = stale_group(fake, &host.pids, "portcullis-100-5", "");
        stale_group(fake, &dead_pids, "child-1", "1001\n1002\n");
        let alive_cpu = stale_group(fake, &host.cpu, "portcullis-300-7", "");
        let cgroups = host.open(host.layout(), "1-2").expect("open");

        let kills = Mutex::new(Vec::new());
        let report = cgroups.sweep_stale(
            |pid, _| pid == 300,
            |pid| {
                kills.lock().expect("lock").push(pid);
                fake.kill(pid)
            },
        );
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.removed, [dead_memory.clone(), dead_pids.clone()]);
        assert_eq!(report.alive, [alive_cpu.as_path()]);
        // 1001 died while the memory hierarchy was swept, so the pids hierarchy lists only 1002.
        assert_eq!(*kills.lock().expect("lock"), [1001, 1002]);
        assert_eq!(report.killed, [1001, 1002]);
        assert!(!exists(&child_memory) && !exists(&dead_memory) && !exists(&dead_pids));
        assert!(exists(&alive_cpu));
    }

    #[test]
    fn v2_sweep_without_cgroup_kill_uses_the_callback() {
        let files: Vec<_> = V2_FILES
            .iter()
            .copied()
            .filter(|(name, _)| *name != "cgroup.kill")
            .collect();
        let host = v2_host(Box::leak(files.into_boxed_slice()));
        let dead = stale_group(&host.fake, &host.base, "portcullis-100-5", "");
        stale_group(&host.fake, &dead, "child-1", "1001\n");
        let cgroups = host.open("1-2").expect("open");
        let report = cgroups.sweep_stale(|_, _| false, |pid| host.fake.kill(pid));
        assert_eq!(report.killed, [1001]);
        assert_eq!(report.removed, [dead.as_path()]);
        assert!(!exists(&dead));
    }

    #[test]
    fn sweep_reports_groups_it_cannot_empty() {
        let host = v1_host(V1_MEMORY_FILES);
        let dead = stale_group(&host.fake, &host.memory, "portcullis-100-5", "");
        let child = stale_group(&host.fake, &dead, "child-1", "1001\n");
        let layout = Layout::V1 {
            memory: Some(host.memory.clone()),
            pids: None,
            cpu: None,
        };
        let cgroups = host.open(layout, "1-2").expect("open");

        // A kill that fails (EPERM) leaves the group, reported with its path.
        let report = cgroups.sweep_stale(|_, _| false, |_| Err(errno(libc::EPERM)));
        assert!(report.removed.is_empty());
        assert!(
            matches!(&report.failed[..], [CgroupError::RemoveDir { path, source }]
            if *path == child && source.raw_os_error() == Some(libc::EPERM))
        );
        // A kill that "succeeds" while the task stays listed: busy until the retries run out.
        let report = cgroups.sweep_stale(|_, _| false, |_| Ok(()));
        assert!(
            matches!(&report.failed[..], [CgroupError::RemoveDir { path, source }]
            if *path == child && source.kind() == io::ErrorKind::ResourceBusy)
        );
        assert!(exists(&child));
        // Garbage in cgroup.procs is a parse error, and nothing is signalled.
        fs::write(child.join("cgroup.procs"), "-1\n").expect("write");
        let report = cgroups.sweep_stale(|_, _| false, |pid| panic!("kill({pid})"));
        assert!(matches!(&report.failed[..], [CgroupError::Parse { .. }]));
        // A task that is dead but still listed answers ESRCH: fine, the group goes once it
        // leaves the list.
        fs::write(child.join("cgroup.procs"), "1001\n").expect("write");
        let report = cgroups.sweep_stale(
            |_, _| false,
            |pid| {
                host.fake.kill(pid)?;
                Err(errno(libc::ESRCH))
            },
        );
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.removed, [dead.as_path()]);
        assert!(!exists(&dead));
    }

    // -----------------------------------------------------------------------------------------
    // The real kernel
    // -----------------------------------------------------------------------------------------

    /// Runs on this machine's cgroups: needs root and a memory controller (v1 or v2). As root
    /// it skips (prints why) without them, unless `PORTCULLIS_TESTS_REQUIRED=1`; as any other
    /// user it always skips: the suite's root run covers it, and the kernel tests in `tests/`
    /// cover an unprivileged broker's delegated cgroups.
    ///
    /// Spawning `sh` from a test thread is fine here (std's `Command` forks and execs at once);
    /// nothing is unshared.
    #[test]
    fn real_kernel_round_trip() {
        use std::process::{Command, Stdio};

        let skip = |why: &str| {
            if std::env::var_os("PORTCULLIS_TESTS_REQUIRED").is_some_and(|v| v == "1") {
                panic!("required but skipped: {why}");
            }
            eprintln!("skipped: {why}");
        };
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: not root (the root run of the suite covers this test)");
            return;
        }
        let layout = detect_host();
        eprintln!("layout: {layout:?}");
        let instance = own_instance_name(Path::new("/proc")).expect("own instance");
        let cgroups = match Cgroups::open(layout, &instance) {
            Ok(cgroups) => cgroups,
            Err(e) => return skip(&error_chain(&e)),
        };
        if !cgroups.supports(Controller::Memory) {
            cgroups.remove().expect("remove");
            return skip("no memory controller");
        }
        eprintln!(
            "instance dirs: {:?}",
            cgroups.instance_dirs().collect::<Vec<_>>()
        );

        let limits = CgroupLimits {
            memory_bytes: Some(32 * MIB),
            processes: cgroups.supports(Controller::Pids).then_some(4),
            cpu_quota: cgroups
                .supports(Controller::Cpu)
                .then_some((50_000, 100_000)),
        };
        let is_alive = |pid, starttime| broker_is_alive(Path::new("/proc"), pid, starttime);
        let sigkill = |pid: i32| -> io::Result<()> {
            use nix::sys::signal::{kill, Signal};
            Ok(kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL)?)
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // A stale instance: a broker that cannot be running (pid above PID_MAX_LIMIT) left a
            // child group holding an orphaned `sleep`, which init reaps once it is killed.
            let stale = Cgroups::open(detect_host(), &instance_name(4_194_305, 1)).expect("stale");
            let stale_dirs: Vec<PathBuf> = stale.instance_dirs().map(Path::to_owned).collect();
            let stale_child = stale
                .create(1, &CgroupLimits::default())
                .expect("stale child");
            let out = Command::new("sh")
                .arg("-c")
                .arg("sleep 30 </dev/null >/dev/null 2>&1 & echo $!")
                .output()
                .expect("start sleep");
            let sleeper: i32 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("sleep's pid");
            stale_child.attach(sleeper).expect("attach sleep");
            drop(stale_child);
            drop(stale);

            let started = std::time::Instant::now();
            let report = cgroups.sweep_stale(is_alive, sigkill);
            eprintln!("sweep in {:?}: {report:?}", started.elapsed());
            assert!(report.failed.is_empty(), "{:?}", report.failed);
            for dir in &stale_dirs {
                assert!(report.removed.contains(dir), "{} swept", dir.display());
                assert!(!exists(dir), "{} gone", dir.display());
            }
            assert!(report.killed.contains(&sleeper));
            // Killed, then reaped by init (it is an orphan).
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{sleeper}")).exists() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "sleep {sleeper} still there"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            eprintln!(
                "sleep gone from /proc {:?} after the sweep began",
                started.elapsed()
            );

            let child = cgroups.create(1, &limits).expect("create");
            let kill = |pid: i32| {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            };
            // Kills what the group holds and waits until the kernel no longer lists it.
            let empty_group = || {
                let started = std::time::Instant::now();
                for pid in child.procs().expect("procs") {
                    kill(pid);
                }
                while !child.procs().expect("procs").is_empty() {
                    assert!(
                        started.elapsed() < Duration::from_secs(5),
                        "tasks stay listed"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                started.elapsed()
            };
            // Runs `script` in `sh`, moved into the group before it reads its go-ahead line;
            // afterwards the group is emptied (an OOM kill of sh leaves its pipeline behind).
            let run = |script: &str| {
                let mut sh = Command::new("sh")
                    .arg("-c")
                    .arg(format!("read go; {script}"))
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn sh");
                let pid = i32::try_from(sh.id()).expect("pid");
                if let Err(e) = child.attach(pid) {
                    kill(pid);
                    let _ = sh.wait();
                    panic!("attach: {}", error_chain(&e));
                }
                assert_eq!(child.procs().expect("procs"), [pid]);
                let mut stdin = sh.stdin.take().expect("stdin");
                stdin.write_all(b"go\n").expect("go");
                drop(stdin);
                let status = sh.wait().expect("wait");
                let events = child.events().expect("events");
                eprintln!("sh -c {script:?}: {status}; {events:?}");
                empty_group();
                events
            };
            for dir in child.dirs() {
                let limit_files = [
                    "memory.limit_in_bytes",
                    "memory.memsw.limit_in_bytes",
                    "memory.max",
                    "pids.max",
                    "cpu.cfs_period_us",
                    "cpu.cfs_quota_us",
                    "cpu.max",
                ];
                for name in limit_files {
                    if let Ok(text) = fs::read_to_string(dir.join(name)) {
                        eprintln!("{}: {}", dir.join(name).display(), text.trim());
                    }
                }
            }
            assert_eq!(child.events().expect("events"), CgroupEvents::default());

            // Memory: the shell holds a 64 MiB string, twice the limit.
            let events = run("x=$(head -c 67108864 /dev/zero | tr '\\000' a); echo ${#x}");
            assert!(events.oom_kills >= 1, "the shell was OOM-killed");
            // memory_max_hits is printed, not checked: see CgroupEvents::memory_max_hits for the
            // v1 kernels on which it stays 0.

            // Tasks: six background sleeps under a limit of four tasks, sh included.
            if limits.processes.is_some() {
                let events = run("for i in 1 2 3 4 5 6; do sleep 2 & done; wait");
                assert!(events.pids_max_hits >= 1, "a fork was refused");
            }

            // A limit changed later, as for a pooled child at claim time.
            child
                .set_limits(&CgroupLimits {
                    memory_bytes: Some(48 * MIB),
                    ..limits
                })
                .expect("set_limits");
            let memory_dir = child.dirs().next().expect("a dir").to_owned();
            let shown = ["memory.limit_in_bytes", "memory.max"]
                .iter()
                .find_map(|name| fs::read_to_string(memory_dir.join(name)).ok())
                .expect("a memory limit file");
            assert_eq!(shown.trim(), (48 * MIB).to_string());

            // Started and killed in the group, then removed at once.
            let mut sleep = Command::new("sleep").arg("30").spawn().expect("sleep");
            child
                .attach(i32::try_from(sleep.id()).expect("pid"))
                .expect("attach");
            let emptied = empty_group();
            let _ = sleep.wait();
            eprintln!("group empty {emptied:?} after SIGKILL");
            child.remove().expect("remove child");
        }));
        // Whatever a failure above left: stale groups go by sweeping again, tasks in this
        // instance's groups are killed, then the instance goes.
        let report = cgroups.sweep_stale(is_alive, sigkill);
        assert!(
            report.failed.is_empty(),
            "cleanup sweep: {:?}",
            report.failed
        );
        for dir in cgroups.instance_dirs() {
            for sub in subdirectories(dir).expect("list") {
                for pid in read_procs(&sub).expect("procs") {
                    let _ = sigkill(pid);
                }
            }
        }
        let removed = cgroups
            .instance_dirs()
            .map(Path::to_owned)
            .collect::<Vec<_>>();
        cgroups.remove().expect("remove instance");
        for dir in removed {
            assert!(!exists(&dir), "{} left behind", dir.display());
        }
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }
}
