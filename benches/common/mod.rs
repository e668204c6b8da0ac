//! Shared by the benchmarks: argument parsing, CPU pinning, medians, the JSON line.
//! Each benchmark uses a subset of these helpers.
#![allow(dead_code)]

use std::time::Duration;

/// Options every benchmark takes: `--json` (print the JSON object last), `--pin` (run the
/// broker, zygote and children on CPU 0), `--rounds N` (interleaved rounds).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub json: bool,
    pub pin: bool,
    pub rounds: usize,
}

impl Options {
    pub fn from_args(default_rounds: usize) -> Options {
        let mut options = Options {
            json: false,
            pin: false,
            rounds: default_rounds,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--json" => options.json = true,
                "--pin" => options.pin = true,
                "--rounds" => {
                    options.rounds = args
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(default_rounds);
                }
                // cargo bench passes --bench; anything else is ignored too.
                _ => {}
            }
        }
        options
    }
}

/// Pins the calling process (and everything it starts later) to CPU 0.
pub fn pin_to_cpu0() {
    // SAFETY: `set` is a live, zeroed cpu_set_t; CPU_SET writes inside it; sched_setaffinity
    // only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Median of samples, in microseconds.
pub fn median_us(samples: &mut [Duration]) -> f64 {
    samples.sort_unstable();
    let n = samples.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    };
    mid.as_secs_f64() * 1e6
}

/// Rounds to 2 decimals for the JSON line.
pub fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A JSON value for a few keys (no serde_json needed for flat numbers).
pub fn json_line(pairs: &[(&str, String)]) -> String {
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", body.join(","))
}

/// Spawn options granting read and list beneath `dir`, with no practical rate limit (the
/// benchmarks measure the broker, not its throttle).
pub fn read_grant_options(dir: &std::path::Path) -> portcullis::SpawnOptions {
    use portcullis::policy::{FsGrant, Limits, Profile, Rights, Scope};
    let profile = Profile {
        fs: vec![FsGrant {
            root: dir.display().to_string(),
            scope: Scope::Subtree,
            rights: Rights {
                read: true,
                write: false,
                create: false,
                delete: false,
                list: true,
            },
        }],
        net: Vec::new(),
        limits: Limits {
            requests_per_second: 100_000_000,
            burst: 100_000_000,
            ..Limits::default()
        },
    };
    portcullis::SpawnOptions {
        profile: Some(profile),
        ..portcullis::SpawnOptions::default()
    }
}

/// A plain forked process that echoes 1-byte `SOCK_SEQPACKET` datagrams until EOF; returns our
/// end and its pid. The peer keeps only its own socket (as fd 3), so copies of other fds of
/// ours (other peers' ends, the broker's channels) never keep anything open.
pub fn raw_echo_peer() -> (libc::c_int, libc::pid_t) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a live array for socketpair to fill. The forked child only calls
    // dup2/close_range/read/write/_exit (async-signal-safe) on its own fds and a stack buffer.
    unsafe {
        assert_eq!(
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr()
            ),
            0
        );
        let pid = libc::fork();
        if pid == 0 {
            if fds[1] != 3 {
                libc::dup2(fds[1], 3);
            }
            libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
            let mut b = [0u8; 1];
            while libc::read(3, b.as_mut_ptr().cast(), 1) == 1 {
                if libc::write(3, b.as_ptr().cast(), 1) != 1 {
                    break;
                }
            }
            libc::_exit(0);
        }
        libc::close(fds[1]);
        (fds[0], pid)
    }
}

/// Closes our end of a raw peer (it exits) and reaps it.
pub fn end_raw_echo_peer(fd: libc::c_int, pid: libc::pid_t) {
    // SAFETY: `fd` is ours and not used afterwards; `pid` is our own child.
    unsafe {
        libc::close(fd);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// A static `true` for bwrap (bwrap needs the program inside its sandbox). Built with cc.
pub fn static_true() -> Option<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("portcullis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let src = dir.join("true.c");
    let bin = dir.join("true");
    std::fs::write(&src, "int main(void){return 0;}\n").ok()?;
    let ok = std::process::Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .ok()?
        .success();
    ok.then_some(bin)
}

pub fn bwrap(true_bin: &std::path::Path) -> Option<std::time::Duration> {
    let start = std::time::Instant::now();
    let status = std::process::Command::new("bwrap")
        .args([
            "--unshare-all",
            "--die-with-parent",
            "--cap-drop",
            "ALL",
            "--ro-bind",
        ])
        .arg(true_bin)
        .args(["/true", "/true"])
        .status()
        .ok()?;
    status.success().then(|| start.elapsed())
}
