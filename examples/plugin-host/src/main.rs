//! # plugin-host — an application that runs untrusted native plugins
//!
//! Run: `cargo run --release -p plugin-host -- --demo` (as root, or as any user on a host with
//! unprivileged user namespaces and a delegated cgroup; see `portcullis doctor`).
//!
//! The host is a Portcullis broker. Each plugin is a program nobody here trusts (two ship with
//! the workspace, built as static executables by `build.rs` and embedded): the broker's
//! `spawn_plugin` starts a child that locks itself down completely and only then executes the
//! plugin, keeping its two channels, so the plugin talks to the host in typed messages and
//! reaches files and the network only through the broker, by the profile the host gave it. The
//! plugin API is `portcullis-plugin-api` (what a plugin may call, how it is loaded).
//!
//! `--demo` runs both plugins:
//! - the **thumbnailer** may read exactly one input image and create exactly one output file; it
//!   must succeed with no violation and no denied request, and its thumbnail must equal the one
//!   the host computes itself;
//! - the **evil plugin** tries 16 escapes. The host counts one as blocked only on the broker's
//!   evidence from outside the plugin — a seccomp violation naming the system call, a denied
//!   request in the audit log, or the end the kernel gave it — never on the plugin's word.
//!
//! The last line is `evil plugin: N attempts, M blocked, K allowed`; the exit status is 0 only
//! when K is 0 and the thumbnail is right.

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use portcullis::policy::{FsGrant, Limits, OnViolation, Profile, Rights, Scope};
use portcullis::{AuditRecord, AuditSink, Broker, BrokerConfig, ChildEnd, Entries, SpawnOptions};
use portcullis_plugin_api::{HostToPlugin, PluginToHost};

/// The plugins, built static by build.rs (empty when this host could not build them).
const THUMBNAILER: &[u8] = include_bytes!(env!("PORTCULLIS_PLUGIN_THUMBNAILER"));
const EVIL: &[u8] = include_bytes!(env!("PORTCULLIS_PLUGIN_EVIL"));

/// Run untrusted native plugins, each in a fully locked-down Portcullis child.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Run the thumbnailer and the evil plugin and report what the broker saw.
    #[arg(long)]
    demo: bool,
    /// Where the demo's files go (a new directory; default: one under the temp dir).
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,
}

/// What each of the evil plugin's attempts must leave as evidence in the broker.
#[derive(Debug, Clone)]
enum Evidence {
    /// A seccomp violation naming this system call.
    Syscall(&'static str),
    /// A denied request: this operation on this target.
    Denied { op: &'static str, target: String },
    /// The child ended out of memory (its cgroup's OOM killer).
    OutOfMemory,
}

fn main() -> anyhow::Result<()> {
    // First line of main: a zygote (a re-exec of this binary) never returns from here.
    let records: Arc<Mutex<Vec<AuditRecord>>> = Arc::default();
    let sink = {
        let records = Arc::clone(&records);
        AuditSink::Callback(Arc::new(move |record: &AuditRecord| {
            if let Ok(mut records) = records.lock() {
                records.push(record.clone());
            }
        }))
    };
    let broker = Broker::start(
        Entries::new(),
        BrokerConfig {
            audit: sink,
            ..BrokerConfig::default()
        },
    )
    .context("start the broker (does this host allow user namespaces? run `portcullis doctor`)")?;
    let args = Args::parse();
    if !args.demo {
        println!("plugin-host: nothing to do; try --demo (or --help)");
        return Ok(());
    }
    if THUMBNAILER.is_empty() || EVIL.is_empty() {
        bail!("the plugins were not built (this host could not link static programs; see the build warnings)");
    }
    let work = match &args.workdir {
        Some(dir) => {
            std::fs::create_dir(dir).with_context(|| format!("create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            let dir =
                std::env::temp_dir().join(format!("portcullis-plugin-host-{}", std::process::id()));
            std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
            dir
        }
    };
    let result = demo(&broker, &work, &records);
    if args.workdir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    let (thumbnail_ok, attempts, blocked) = result?;
    let allowed = attempts - blocked;
    println!("evil plugin: {attempts} attempts, {blocked} blocked, {allowed} allowed");
    if allowed > 0 || !thumbnail_ok {
        std::process::exit(1);
    }
    Ok(())
}

/// Runs both plugins; returns (thumbnail right, attempts, blocked).
fn demo(
    broker: &Broker,
    work: &Path,
    records: &Mutex<Vec<AuditRecord>>,
) -> anyhow::Result<(bool, usize, usize)> {
    let thumbnailer = write_program(work, "thumbnailer", THUMBNAILER)?;
    let evil = write_program(work, "evil", EVIL)?;
    let thumbnail_ok = run_thumbnailer(broker, work, &thumbnailer, records)?;
    let (attempts, blocked) = run_evil(broker, work, &evil, records)?;
    Ok((thumbnail_ok, attempts, blocked))
}

/// Writes an embedded plugin where the broker can open it (mode 0755: the sandbox's id must be
/// allowed to execute it).
fn write_program(work: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = work.join(name);
    std::fs::write(&path, bytes).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// A grant on exactly one file.
fn one_file(path: &Path, rights: Rights) -> anyhow::Result<FsGrant> {
    let parent = path.parent().context("a file has a parent")?;
    let name = path.file_name().context("a file has a name")?;
    Ok(FsGrant {
        root: parent.to_str().context("a UTF-8 path")?.to_owned(),
        scope: Scope::Literal {
            file_name: name.to_str().context("a UTF-8 name")?.to_owned(),
        },
        rights,
    })
}

fn null_stdio() -> anyhow::Result<std::fs::File> {
    Ok(std::fs::File::open("/dev/null")?)
}

fn run_thumbnailer(
    broker: &Broker,
    work: &Path,
    program: &Path,
    records: &Mutex<Vec<AuditRecord>>,
) -> anyhow::Result<bool> {
    // The input: a 300×200 gradient with a square in it, made here.
    let input = work.join("photo.png");
    let output = work.join("photo-thumb.png");
    let photo = image::RgbaImage::from_fn(300, 200, |x, y| {
        let inside = (100..180).contains(&x) && (60..140).contains(&y);
        let r = u8::try_from(x * 255 / 299).unwrap_or(255);
        let g = u8::try_from(y * 255 / 199).unwrap_or(255);
        image::Rgba([r, g, if inside { 255 } else { 40 }, 255])
    });
    photo.save(&input).context("write the input image")?;
    let profile = Profile {
        fs: vec![
            one_file(
                &input,
                Rights {
                    read: true,
                    ..Rights::default()
                },
            )?,
            one_file(
                &output,
                Rights {
                    create: true,
                    write: true,
                    ..Rights::default()
                },
            )?,
        ],
        net: Vec::new(),
        limits: Limits {
            memory_bytes: 256 << 20,
            wall_ms: 30_000,
            ..Limits::default()
        },
    };
    let options = SpawnOptions {
        profile: Some(profile),
        ..SpawnOptions::default()
    };
    let null = null_stdio()?;
    let stderr = std::io::stderr();
    let child = broker
        .spawn_plugin::<HostToPlugin, PluginToHost>(
            program,
            &["thumbnailer".into()],
            &[],
            [null.as_fd(), null.as_fd(), stderr.as_fd()],
            &options,
        )
        .context("spawn the thumbnailer")?;
    let job = HostToPlugin::Thumbnail {
        input: input.display().to_string(),
        output: output.display().to_string(),
        max_side: 64,
    };
    child.send(&job).context("send the job")?;
    let answer = child.recv_timeout(Duration::from_secs(30));
    child.kill();
    let end = child.wait_timeout(Duration::from_secs(10));
    let (violations, seen) = child.violations();
    let denied = records
        .lock()
        .map(|r| {
            r.iter()
                .filter(|r| r.child == child.id() && r.decision != "allow")
                .count()
        })
        .unwrap_or(usize::MAX);
    println!(
        "thumbnailer (pid {}): answered {answer:?}, ended {end:?}",
        child.pid()
    );
    println!("  violations: {seen} {violations:?}; denied requests: {denied}");
    // The host's own thumbnail of the same image, by the same algorithm.
    let expected = image::DynamicImage::ImageRgba8(photo)
        .thumbnail(64, 64)
        .to_rgba8();
    let written = image::open(&output).map(|i| i.to_rgba8());
    let same = matches!(&written, Ok(got) if *got == expected);
    let answered_right = matches!(
        answer,
        Ok(PluginToHost::Thumbnailed { width, height })
            if width == expected.width() && height == expected.height()
    );
    let ok = same && answered_right && seen == 0 && denied == 0;
    println!(
        "thumbnailer: {} ({}×{} thumbnail {}, {seen} violations, {denied} denied requests)",
        if ok { "ok" } else { "FAILED" },
        expected.width(),
        expected.height(),
        if same {
            "matches the host's"
        } else {
            "differs from the host's or is missing"
        },
    );
    Ok(ok)
}

fn run_evil(
    broker: &Broker,
    work: &Path,
    program: &Path,
    records: &Mutex<Vec<AuditRecord>>,
) -> anyhow::Result<(usize, usize)> {
    let grant = work.join("evil-may-read.txt");
    std::fs::write(&grant, "the one file the evil plugin may read\n")?;
    let grant_str = grant.display().to_string();
    let host_pid = std::process::id();
    let outside = format!("/tmp/portcullis-evil-{host_pid}");
    let profile = Profile {
        fs: vec![one_file(
            &grant,
            Rights {
                read: true,
                ..Rights::default()
            },
        )?],
        net: Vec::new(),
        limits: Limits {
            memory_bytes: 64 << 20,
            wall_ms: 30_000,
            on_violation: OnViolation::Deny,
            ..Limits::default()
        },
    };
    let options = SpawnOptions {
        profile: Some(profile),
        ..SpawnOptions::default()
    };
    // The attempts, and what the broker must show for each (the plugin's list, in its order).
    let expected: Vec<(&str, Evidence)> = vec![
        (
            "read a host file (broker)",
            Evidence::Denied {
                op: "open",
                target: "/etc/passwd".into(),
            },
        ),
        (
            "write outside its grant (broker)",
            Evidence::Denied {
                op: "open",
                target: outside.clone(),
            },
        ),
        (
            "write its read-only grant (broker)",
            Evidence::Denied {
                op: "open",
                target: grant_str.clone(),
            },
        ),
        (
            "connect to loopback (broker)",
            Evidence::Denied {
                op: "connect",
                target: "127.0.0.1:22".into(),
            },
        ),
        ("open a socket", Evidence::Syscall("socket")),
        ("fork", Evidence::Syscall("clone")),
        ("exec a shell", Evidence::Syscall("execve")),
        ("ptrace the host", Evidence::Syscall("ptrace")),
        ("signal the host", Evidence::Syscall("kill")),
        ("renice the host", Evidence::Syscall("setpriority")),
        ("unshare a user namespace", Evidence::Syscall("unshare")),
        ("mount", Evidence::Syscall("mount")),
        ("io_uring", Evidence::Syscall("io_uring_setup")),
        ("load a BPF program", Evidence::Syscall("bpf")),
        ("join another namespace", Evidence::Syscall("setns")),
        ("exhaust memory", Evidence::OutOfMemory),
    ];
    let null = null_stdio()?;
    let stderr = std::io::stderr();
    let child = broker
        .spawn_plugin::<HostToPlugin, PluginToHost>(
            program,
            &["evil".into()],
            &[],
            [null.as_fd(), null.as_fd(), stderr.as_fd()],
            &options,
        )
        .context("spawn the evil plugin")?;
    child
        .send(&HostToPlugin::Escape {
            host_pid,
            grant: grant_str.clone(),
        })
        .context("send the order")?;
    println!("evil plugin (pid {}):", child.pid());
    // What it says (its own word, shown, never counted).
    let mut said = Vec::new();
    loop {
        match child.recv_timeout(Duration::from_secs(30)) {
            Ok(PluginToHost::Tried { name, outcome }) => said.push((name, outcome)),
            Ok(PluginToHost::Done) | Err(_) => break,
            Ok(other) => said.push(("?".into(), format!("{other:?}"))),
        }
    }
    let end = child
        .wait_timeout(Duration::from_secs(30))
        .unwrap_or_else(|| {
            child.kill();
            child.wait()
        });
    let _ = std::fs::remove_file(&outside);
    let (violations, _) = child.violations();
    let named: HashSet<&str> = violations.iter().map(|v| v.syscall.as_str()).collect();
    let denials: Vec<AuditRecord> = records
        .lock()
        .map(|r| {
            r.iter()
                .filter(|r| r.child == child.id())
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if let Some((_, outcome)) = said.first() {
        println!("  (pair) read its granted file: {outcome}");
    }
    let mut blocked = 0;
    for (name, evidence) in &expected {
        let plugin_says = said
            .iter()
            .find(|(n, _)| n == name)
            .map_or("(said nothing)", |(_, o)| o.as_str());
        let claims_success = plugin_says.starts_with("Ok(") || plugin_says.starts_with("returned");
        let shown = match evidence {
            Evidence::Syscall(syscall) => named
                .contains(syscall)
                .then(|| format!("seccomp violation: {syscall}, answered EPERM")),
            Evidence::Denied { op, target } => denials
                .iter()
                .find(|r| r.op == *op && r.target == *target && r.decision == "deny")
                .map(|r| format!("{} {} denied: {}", r.op, r.target, r.reason.unwrap_or("?"))),
            Evidence::OutOfMemory => matches!(end, ChildEnd::OutOfMemory)
                .then(|| "killed by its cgroup's OOM killer (64 MiB)".to_owned()),
        };
        match shown {
            Some(how) if !claims_success => {
                blocked += 1;
                println!("  blocked  {name:<36} {how}");
            }
            _ => println!("  ALLOWED  {name:<36} the plugin says {plugin_says}"),
        }
    }
    println!("  ended {end:?}");
    Ok((expected.len(), blocked))
}
