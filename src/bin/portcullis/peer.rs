//! Who is at the other end of a `portcullis serve` connection, and whether a server may run its
//! request as if the peer had started a broker of its own.
//!
//! A standalone `run` inherits everything its caller is confined by: its credentials and
//! capabilities, its seccomp filter and `no_new_privs` (and the Landlock domain that needs one of
//! them), its cgroup, its rlimits, its namespaces. A served run gets the server's instead. So the
//! server serves a peer only when the kernel reports it exactly as confined as the server itself
//! (every difference is refused, and the client then starts a broker of its own), and each end
//! refuses a peer of another user, including the overflow uid that stands for any user a user
//! namespace does not map.
//!
//! The peer's state is read from `/proc/PID`, with the pid the socket recorded at `connect`. A
//! pidfd of that same process (`SO_PEERPIDFD`, Linux 6.5; else `pidfd_open` of the pid) is
//! checked to be alive after the reads: a live process keeps its pid, so what was read was its.

use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::socket::{getsockopt, sockopt};
use nix::sys::stat::Mode;

use crate::sys;

/// The process at the other end of a connection, as the socket recorded it at `connect`.
pub struct Peer {
    /// Its effective uid, as this process's user namespace sees it.
    pub uid: u32,
    pid: i32,
    /// That very process, to check that `pid` still names it after reading `/proc/PID`.
    pidfd: Option<OwnedFd>,
}

impl Peer {
    /// The peer of the connected Unix socket `conn`, with a pidfd of it to read its `/proc`.
    pub fn of(conn: &impl AsFd) -> Result<Peer, String> {
        let cred =
            getsockopt(conn, sockopt::PeerCredentials).map_err(|e| format!("SO_PEERCRED: {e}"))?;
        // Before Linux 6.5 (no SO_PEERPIDFD), a pidfd of the pid: the peer's unless the peer is
        // gone and its pid reused already, which the later checks cannot tell. Any other error
        // (the peer is gone) leaves none, and the peer is refused.
        let pidfd = match sys::peer_pidfd(conn.as_fd()) {
            Ok(pidfd) => Some(pidfd),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOPROTOOPT | libc::EINVAL)) => {
                sys::pidfd_open(cred.pid()).ok()
            }
            Err(_) => None,
        };
        Ok(Peer {
            uid: cred.uid(),
            pid: cred.pid(),
            pidfd,
        })
    }

    /// `Err` says why a server must not run this peer's requests as its own: any way the kernel
    /// reports the peer confined or privileged otherwise than the server (`ours`). The caller
    /// has checked the uid.
    pub fn confined_as(&self, ours: &Confinement) -> Result<(), String> {
        if self.pid <= 0 || self.pidfd.is_none() {
            return Err(
                "the client's process cannot be seen from here (another PID namespace)".into(),
            );
        }
        let peers = Confinement::of(
            &format!("/proc/{}", self.pid),
            self.pid,
            ours.lsm_label.is_some(),
        )?;
        // A seccomp filter or no_new_privs (which every unprivileged Landlock domain needs) may
        // hide confinement that /proc does not show (a Landlock domain; filters alike in number
        // but not in rules): such a client runs its own broker, whatever the server's state.
        if let Some(line) = peers.status.iter().find(|line| {
            matches!(
                line.split_once(':'),
                Some(("NoNewPrivs" | "Seccomp", value)) if value.trim() != "0"
            )
        }) {
            return Err(format!(
                "the client is confined by a seccomp filter or no_new_privs ({}), which a \
                 broker of its own inherits",
                line.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
        if let Some((ns, _)) = ours
            .namespaces
            .iter()
            .zip(&peers.namespaces)
            .find(|(a, b)| a != b)
        {
            return Err(format!(
                "the client is in another {} namespace: paths, ids and groups would mean other \
                 things here",
                ns.0
            ));
        }
        if let Some((line, _)) = ours.status.iter().zip(&peers.status).find(|(a, b)| a != b) {
            let field = line.split(':').next().unwrap_or("");
            return Err(format!(
                "the client is confined or privileged otherwise than the server ({field} differs: \
                 a seccomp filter, no_new_privs, capabilities, ids or groups of its own)"
            ));
        }
        if ours.status.len() != peers.status.len() {
            return Err("the client's status lacks fields the server's has".into());
        }
        if ours.lsm_label != peers.lsm_label {
            return Err(
                "the client runs under another security label (AppArmor or SELinux) than the \
                 server"
                    .into(),
            );
        }
        if ours.cgroup != peers.cgroup {
            return Err(
                "the client is in another cgroup: its limits would not bound a served run \
                 (start the server where its runs start, e.g. in the same shell)"
                    .into(),
            );
        }
        for (resource, (ours, peers)) in (0..).zip(ours.rlimits.iter().zip(&peers.rlimits)) {
            // The server raised its own soft open-files limit to the hard one when its broker
            // started (as a standalone broker does); a child's is set from its profile anyway.
            let soft_counts = resource != libc::RLIMIT_NOFILE as i32;
            if peers.1 < ours.1 || (soft_counts && peers.0 < ours.0) {
                return Err(format!(
                    "the client has a lower resource limit ({}) than the server",
                    rlimit_name(resource)
                ));
            }
        }
        // All of the above was read from /proc/PID: it was the peer's if the peer still lives
        // (a live process keeps its pid).
        match &self.pidfd {
            Some(pidfd) if sys::pidfd_alive(pidfd.as_fd()) => Ok(()),
            _ => Err("the client is gone".into()),
        }
    }
}

/// How the kernel reports a process confined and privileged: what a server compares between a
/// client and itself.
pub struct Confinement {
    /// Its mount, user and cgroup namespaces, as (name, (st_dev, st_ino)).
    namespaces: Vec<(&'static str, (u64, u64))>,
    /// Its [`CONFINEMENT_FIELDS`] lines of `/proc/PID/status`, in order.
    status: Vec<String>,
    /// Its `/proc/PID/cgroup`.
    cgroup: String,
    /// Its LSM label (`/proc/PID/attr/current`: AppArmor's profile, SELinux's context); `None`
    /// without a major LSM that keeps one. Which LSMs run is the host's, fixed at boot: where the
    /// server has no label, no peer has one, and it is not read.
    lsm_label: Option<String>,
    /// Its soft and hard limit of every resource.
    rlimits: Vec<(u64, u64)>,
}

impl Confinement {
    /// This process's (a server reads it once its broker has started).
    pub fn of_self() -> Result<Confinement, String> {
        Confinement::of("/proc/self", 0, true)
    }

    /// Process `pid`'s, read from `proc` (its `/proc/PID`); `pid` 0 is this process. `lsm`:
    /// whether to read its LSM label (see [`Confinement::lsm_label`]).
    ///
    /// Every file is opened beneath one directory fd of `proc` and read whole in one call (then
    /// one that returns nothing): the check runs on every served run.
    fn of(proc: &str, pid: i32, lsm: bool) -> Result<Confinement, String> {
        let dir = nix::fcntl::open(
            proc,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("cannot open {proc}: {e}"))?;
        let mut namespaces = Vec::with_capacity(3);
        for ns in ["mnt", "user", "cgroup"] {
            let st = nix::sys::stat::fstatat(&dir, format!("ns/{ns}").as_str(), AtFlags::empty())
                .map_err(|e| format!("cannot read the {ns} namespace of {proc}: {e}"))?;
            namespaces.push((ns, (st.st_dev, st.st_ino)));
        }
        let status = read_beneath(&dir, "status")
            .map_err(|e| format!("cannot read {proc}/status: {e}"))?
            .lines()
            .filter(|line| {
                CONFINEMENT_FIELDS
                    .iter()
                    .any(|field| line.split(':').next() == Some(field))
            })
            .map(str::to_owned)
            .collect();
        let cgroup =
            read_beneath(&dir, "cgroup").map_err(|e| format!("cannot read {proc}/cgroup: {e}"))?;
        // EINVAL or ENOENT: no LSM that keeps a label, for this process and every other alike.
        // Any other failure is no answer: the server's own stops it (it could not compare), a
        // peer's leaves `None`, which differs from the server's label and is refused.
        let lsm_label = if lsm {
            match read_beneath(&dir, "attr/current") {
                Ok(label) => Some(label),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => None,
                Err(_) if pid != 0 => None,
                Err(e) => return Err(format!("cannot read {proc}/attr/current: {e}")),
            }
        } else {
            None
        };
        let rlimits = (0..RLIMIT_NLIMITS)
            .map(|resource| sys::prlimit_of(pid, resource))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot read the resource limits of {proc}: {e}"))?;
        Ok(Confinement {
            namespaces,
            status,
            cgroup,
            lsm_label,
            rlimits,
        })
    }
}

/// The text of the `/proc` file `name` beneath `dir`: an open, one `read` of up to 16 KiB until
/// one returns nothing (two for a `status`), a close. std's `read_to_string` asks for the size
/// first (`statx`, `lseek`), which `/proc` does not know, then reads in growing steps: eleven
/// calls for a `status`. At most [`PROC_FILE_MAX`] bytes: a client names its own cgroup
/// paths, and nothing it controls may make the server hold an unbounded text.
fn read_beneath(dir: &OwnedFd, name: &str) -> std::io::Result<String> {
    use std::io::Read;
    let fd = nix::fcntl::openat(dir, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    let mut file = std::fs::File::from(fd);
    let mut chunk = [0u8; 16 * 1024];
    let mut text = Vec::new();
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) if text.len() + n > PROC_FILE_MAX => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("longer than {PROC_FILE_MAX} bytes"),
                ))
            }
            Ok(n) => text.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(text)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
}

/// The most of a `/proc` file [`read_beneath`] reads (a `status` is ~1.5 KiB; a `cgroup` lists
/// one path per hierarchy).
const PROC_FILE_MAX: usize = 64 * 1024;

/// The lines of `/proc/PID/status` that say how a process is confined or privileged.
const CONFINEMENT_FIELDS: &[&str] = &[
    "Umask",
    "Uid",
    "Gid",
    "Groups",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
    "Seccomp_filters",
];

/// `RLIMIT_NLIMITS`: the kernel's resource limits are numbered 0 to 15.
const RLIMIT_NLIMITS: i32 = 16;

fn rlimit_name(resource: i32) -> &'static str {
    const NAMES: [&str; 16] = [
        "cpu",
        "fsize",
        "data",
        "stack",
        "core",
        "rss",
        "nproc",
        "nofile",
        "memlock",
        "as",
        "locks",
        "sigpending",
        "msgqueue",
        "nice",
        "rtprio",
        "rttime",
    ];
    usize::try_from(resource)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("unknown")
}

/// The effective uid of the peer of the connected Unix socket `conn` (`SO_PEERCRED`): all a
/// client needs to know of its server.
pub fn uid_of(conn: &impl AsFd) -> Result<u32, String> {
    getsockopt(conn, sockopt::PeerCredentials)
        .map(|cred| cred.uid())
        .map_err(|e| format!("SO_PEERCRED: {e}"))
}

/// The uid the kernel shows for a user the viewer's user namespace does not map
/// (`/proc/sys/kernel/overflowuid`, 65534 unless changed; read once). A peer shown with it could
/// be anyone.
pub fn overflow_uid() -> u32 {
    static OVERFLOW: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *OVERFLOW.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/overflowuid")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65534)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file is read whole up to the cap and refused past it; its pair, one at the cap, is read.
    #[test]
    fn a_proc_file_is_read_whole_up_to_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("at-cap"), "x".repeat(PROC_FILE_MAX)).unwrap();
        std::fs::write(dir.path().join("past-cap"), "x".repeat(PROC_FILE_MAX + 1)).unwrap();
        let fd = nix::fcntl::open(
            dir.path(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        assert_eq!(read_beneath(&fd, "at-cap").unwrap().len(), PROC_FILE_MAX);
        let past = read_beneath(&fd, "past-cap").unwrap_err();
        assert_eq!(past.kind(), std::io::ErrorKind::InvalidData, "{past}");
        // A real /proc file, read in one call and an empty one.
        let status = read_beneath(
            &nix::fcntl::open(
                "/proc/self",
                OFlag::O_PATH | OFlag::O_DIRECTORY,
                Mode::empty(),
            )
            .unwrap(),
            "status",
        )
        .unwrap();
        assert!(status.contains("\nUid:"), "{status}");
    }
}
