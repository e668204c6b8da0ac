//! What /proc says about a process: its sandbox state, read from outside (the way
//! chrome://sandbox does), never from the process's own word.

use std::path::PathBuf;

/// Fields of `/proc/<pid>/status` (as text; `?` when unreadable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `Seccomp`: 0 none, 1 strict, 2 filter.
    pub seccomp: String,
    /// `NoNewPrivs`.
    pub no_new_privs: String,
    /// `CapEff`, hex.
    pub cap_eff: String,
    /// `VmRSS`, e.g. `4212 kB`.
    pub vm_rss: String,
}

impl Status {
    /// Reads `/proc/<pid>/status`.
    pub fn of(pid: u32) -> Status {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        Status::parse(&text)
    }

    /// Parses the text of a status file.
    pub fn parse(text: &str) -> Status {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map_or_else(|| "?".to_owned(), |v| v.trim().to_owned())
        };
        Status {
            seccomp: field("Seccomp"),
            no_new_privs: field("NoNewPrivs"),
            cap_eff: field("CapEff"),
            vm_rss: field("VmRSS").replace(" kB", "k"),
        }
    }
}

/// The namespaces a process is in (the targets of `/proc/<pid>/ns/*`, e.g. `net:[4026531840]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces(Vec<Option<String>>);

/// The namespaces compared.
pub const NAMESPACES: [&str; 7] = ["user", "pid", "net", "mnt", "ipc", "uts", "cgroup"];

impl Namespaces {
    /// Reads `/proc/<pid>/ns/*` (a link may be unreadable: reading it needs ptrace access).
    pub fn of(pid: u32) -> Namespaces {
        Namespaces(
            NAMESPACES
                .iter()
                .map(|ns| {
                    std::fs::read_link(PathBuf::from(format!("/proc/{pid}/ns/{ns}")))
                        .ok()
                        .map(|p| p.to_string_lossy().into_owned())
                })
                .collect(),
        )
    }

    /// `n/7`: how many namespaces differ from `other`'s, or `?` when some link was unreadable.
    pub fn differing_from(&self, other: &Namespaces) -> String {
        let mut differ = 0;
        for (a, b) in self.0.iter().zip(&other.0) {
            match (a, b) {
                (Some(a), Some(b)) if a != b => differ += 1,
                (Some(_), Some(_)) => {}
                _ => return "?".into(),
            }
        }
        format!("{differ}/{}", NAMESPACES.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let s = Status::parse(
            "Name:\tx\nNoNewPrivs:\t1\nSeccomp:\t2\nCapEff:\t0000000000000000\nVmRSS:\t  4212 kB\n",
        );
        assert_eq!(s.seccomp, "2");
        assert_eq!(s.no_new_privs, "1");
        assert_eq!(s.cap_eff, "0000000000000000");
        assert_eq!(s.vm_rss, "4212k");
        assert_eq!(Status::parse("").seccomp, "?");
    }

    #[test]
    fn own_namespaces_do_not_differ_from_themselves() {
        let me = Namespaces::of(std::process::id());
        assert_eq!(me.differing_from(&me), "0/7");
    }
}
