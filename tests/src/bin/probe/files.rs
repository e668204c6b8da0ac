//! Brokered files: the traversal battery (each a denied/allowed pair), the symlink-swap race,
//! and the audit trail. The child asks through `ChildContext::open` & co.; the broker decides by
//! the profile given at spawn and opens beneath the grant's directory fd with `openat2`.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use portcullis::ipc::service::{OpenFlags, ServiceRequest, ServiceResponse};
use portcullis::policy::{FsGrant, Limits, Profile, Rights, Scope};
use portcullis::{
    AuditRecord, Broker, ChildContext, ChildEnd, OpenOptions, RlimitResource, SpawnOptions,
};
use serde::{Deserialize, Serialize};

use crate::Verdict;

/// Every audit record the probe broker wrote (its `AuditSink::Callback`).
pub static AUDIT: Mutex<Vec<AuditRecord>> = Mutex::new(Vec::new());

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FileOp {
    Read(String),
    Write(String),
    /// Open for writing with truncation.
    Truncate(String),
    CreateNew(String),
    ReadDir(String),
    Stat(String),
    CreateDir(String),
    Remove(String),
    Rename(String, String),
    /// A request the child API would refuse to send: straight onto the service channel.
    RawOpen(String),
    /// Open `path` for reading `attempts` times; count what came back.
    Race {
        path: String,
        attempts: u32,
        outside_marker: String,
    },
    /// Stat `path` `count` times back to back: (ok, rate-limited, other) as Counts.
    StatMany {
        path: String,
        count: u32,
    },
    /// Open `path` for reading until an open fails (the fd table is full), close one of the
    /// files, open it again, read it, and stat it: [`FileResult::FdTable`].
    FillFdTable(String),
    /// List `path` `times` times while another thread signals the listing thread every few
    /// microseconds (a handler without `SA_RESTART`): "N entries each, S signals", or the first
    /// error.
    ReadDirUnderSignals {
        path: String,
        times: u32,
    },
    /// Open a non-UTF-8 path through the child API (it refuses to send it).
    OpenNonUtf8(Vec<u8>),
    /// Send a service request whose path is not UTF-8, straight onto the service channel,
    /// then wait for an answer (the broker ends the child instead).
    RawNonUtf8Open(Vec<u8>),
    Quit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileResult {
    Ok(String),
    Err {
        kind: String,
        message: String,
    },
    Counts {
        inside: u32,
        outside: u32,
        refused: u32,
    },
    /// What [`FileOp::FillFdTable`] saw.
    FdTable {
        /// Opens that worked before the table was full.
        opened: u32,
        /// The failing open: its errno and message.
        full_errno: Option<i32>,
        full_message: String,
        /// The open after closing one file: the contents read from it, or the error.
        after_close: Result<String, String>,
        /// A stat right after (the channel is still in step): kind and length, or the error.
        stat_after: Result<String, String>,
    },
}

fn result(r: std::io::Result<String>) -> FileResult {
    match r {
        Ok(s) => FileResult::Ok(s),
        Err(e) => FileResult::Err {
            kind: format!("{:?}", e.kind()),
            message: e.to_string(),
        },
    }
}

/// The child: performs each operation through the broker and reports.
pub fn files_child(ctx: ChildContext<FileResult, FileOp>, _: ()) -> i32 {
    while let Ok(op) = ctx.recv() {
        let read = |path: &str| {
            let mut s = String::new();
            ctx.open(path, &OpenOptions::new().read(true))?
                .read_to_string(&mut s)?;
            Ok(s)
        };
        let answer = match op {
            FileOp::Read(path) => result(read(&path)),
            FileOp::Write(path) => result(
                ctx.open(&path, &OpenOptions::new().write(true))
                    .map(|_| "opened".into()),
            ),
            FileOp::Truncate(path) => result(
                ctx.open(&path, &OpenOptions::new().write(true).truncate(true))
                    .map(|_| "truncated".into()),
            ),
            FileOp::CreateNew(path) => result(
                ctx.open(&path, &OpenOptions::new().write(true).create_new(true))
                    .map(|_| "created".into()),
            ),
            FileOp::ReadDir(path) => result(ctx.read_dir(&path).map(|entries| {
                let mut names: Vec<String> = entries.into_iter().map(|e| e.name).collect();
                names.sort();
                names.join(",")
            })),
            FileOp::Stat(path) => result(
                ctx.metadata(&path)
                    .map(|m| format!("{:?} {}", m.kind, m.len)),
            ),
            FileOp::CreateDir(path) => result(ctx.create_dir(&path).map(|()| "made".into())),
            FileOp::Remove(path) => result(ctx.remove_file(&path).map(|()| "removed".into())),
            FileOp::Rename(from, to) => result(ctx.rename(&from, &to).map(|()| "renamed".into())),
            FileOp::RawOpen(path) => {
                let channel = ctx.raw_service_channel();
                let request = ServiceRequest::Open {
                    path,
                    flags: OpenFlags {
                        read: true,
                        ..OpenFlags::default()
                    },
                };
                match channel
                    .send(&request, &[], None)
                    .map(|()| ctx.ring_service_doorbell())
                    .map(|()| channel.recv::<ServiceResponse>(None))
                {
                    Ok(Ok((response, _))) => FileResult::Ok(format!("{response:?}")),
                    other => FileResult::Err {
                        kind: "Channel".into(),
                        message: format!("{other:?}"),
                    },
                }
            }
            FileOp::Race {
                path,
                attempts,
                outside_marker,
            } => {
                let (mut inside, mut outside, mut refused) = (0, 0, 0);
                for _ in 0..attempts {
                    match read(&path) {
                        Ok(s) if s.contains(&outside_marker) => outside += 1,
                        Ok(_) => inside += 1,
                        Err(_) => refused += 1,
                    }
                }
                FileResult::Counts {
                    inside,
                    outside,
                    refused,
                }
            }
            FileOp::StatMany { path, count } => {
                let (mut ok, mut limited, mut other) = (0, 0, 0);
                for _ in 0..count {
                    match ctx.metadata(&path) {
                        Ok(_) => ok += 1,
                        Err(e) if e.to_string().ends_with("rate-limited") => limited += 1,
                        Err(_) => other += 1,
                    }
                }
                FileResult::Counts {
                    inside: ok,
                    outside: other,
                    refused: limited,
                }
            }
            FileOp::FillFdTable(path) => fill_fd_table(&ctx, &path),
            FileOp::ReadDirUnderSignals { path, times } => {
                read_dir_under_signals(&ctx, &path, times)
            }
            FileOp::OpenNonUtf8(bytes) => {
                let path = Path::new(std::ffi::OsStr::from_bytes(&bytes));
                result(
                    ctx.open(path, &OpenOptions::new().read(true))
                        .map(|_| "opened".into()),
                )
            }
            FileOp::RawNonUtf8Open(bytes) => {
                // postcard: variant 0 (Open), the path's length and bytes, six flag bools.
                let mut frame = vec![0x00, 0x00];
                frame.push(u8::try_from(bytes.len()).unwrap_or(0));
                frame.extend_from_slice(&bytes);
                frame.extend_from_slice(&[1, 0, 0, 0, 0, 0]);
                let channel = ctx.raw_service_channel();
                let _ = channel.send_raw_datagram(&frame, &[]);
                ctx.ring_service_doorbell();
                match channel.recv::<ServiceResponse>(None) {
                    Ok((response, _)) => FileResult::Ok(format!("{response:?}")),
                    Err(e) => FileResult::Err {
                        kind: "Channel".into(),
                        message: e.to_string(),
                    },
                }
            }
            FileOp::Quit => return 0,
        };
        if ctx.send(&answer).is_err() {
            return 1;
        }
    }
    1
}

/// Fills the fd table with brokered opens, then frees one slot and opens again.
fn fill_fd_table(ctx: &ChildContext<FileResult, FileOp>, path: &str) -> FileResult {
    let options = OpenOptions::new().read(true);
    let mut files = Vec::new();
    let full = loop {
        match ctx.open(path, &options) {
            Ok(file) => files.push(file),
            Err(e) => break e,
        }
        if files.len() > 10_000 {
            break std::io::Error::other("the fd table never filled");
        }
    };
    let opened = u32::try_from(files.len()).unwrap_or(u32::MAX);
    drop(files.pop());
    let after_close = ctx
        .open(path, &options)
        .and_then(|mut file| {
            let mut s = String::new();
            file.read_to_string(&mut s)?;
            files.push(file);
            Ok(s)
        })
        .map_err(|e| e.to_string());
    let stat_after = ctx
        .metadata(path)
        .map(|m| format!("{:?} {}", m.kind, m.len))
        .map_err(|e| e.to_string());
    FileResult::FdTable {
        opened,
        full_errno: full.raw_os_error(),
        full_message: full.to_string(),
        after_close,
        stat_after,
    }
}

/// A directory tree for one scenario, removed on drop.
pub struct Tree(PathBuf);

impl Tree {
    pub fn new(name: &str) -> Result<Tree, String> {
        let base = std::env::temp_dir().join(format!("portcullis-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("granted/sub")).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(base.join("writable")).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(base.join("writable2")).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(base.join("dropbox")).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(base.join("data-evil")).map_err(|e| e.to_string())?;
        let write = |p: &str, s: &str| std::fs::write(base.join(p), s).map_err(|e| e.to_string());
        write("granted/a.txt", "A")?;
        write("granted/sub/b.txt", "B")?;
        write("outside.txt", "SECRET")?;
        write("data-evil/x", "EVIL")?;
        let link = |target: &str, at: &str| {
            std::os::unix::fs::symlink(target, base.join(at)).map_err(|e| e.to_string())
        };
        link("../outside.txt", "granted/link-out")?;
        link("/", "granted/link-root")?;
        link("/proc/self/root", "granted/proc-root")?;
        link("sub", "granted/link-in")?;
        std::fs::hard_link(base.join("outside.txt"), base.join("granted/hard"))
            .map_err(|e| e.to_string())?;
        std::fs::hard_link(base.join("outside.txt"), base.join("writable/hard"))
            .map_err(|e| e.to_string())?;
        write("dropbox/x", "X")?;
        write("dropbox/y", "Y")?;
        // A name that is not UTF-8.
        std::fs::write(
            base.join("granted")
                .join(std::ffi::OsStr::from_bytes(b"caf\xe9")),
            "X",
        )
        .map_err(|e| e.to_string())?;
        Ok(Tree(base))
    }

    pub fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.0.display())
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn grant(root: &str, rights: Rights) -> FsGrant {
    FsGrant {
        root: root.to_owned(),
        scope: Scope::Subtree,
        rights,
    }
}

pub const READ_LIST: Rights = Rights {
    read: true,
    write: false,
    create: false,
    delete: false,
    list: true,
};
pub const ALL: Rights = Rights {
    read: true,
    write: true,
    create: true,
    delete: true,
    list: true,
};

fn spawn_files(
    broker: &Broker,
    profile: Profile,
) -> Result<portcullis::Child<FileOp, FileResult>, String> {
    let options = SpawnOptions {
        profile: Some(profile),
        ..SpawnOptions::default()
    };
    broker
        .spawn_with::<FileOp, FileResult, _>("files", &(), &options)
        .map_err(|e| format!("spawn files: {e}"))
}

pub fn ask(
    child: &portcullis::Child<FileOp, FileResult>,
    op: FileOp,
) -> Result<FileResult, String> {
    child.send(&op).map_err(|e| e.to_string())?;
    child
        .recv_timeout(Duration::from_secs(30))
        .map_err(|e| format!("{op:?}: {e}"))
}

fn denied(result: &FileResult, reason: &str) -> bool {
    matches!(result, FileResult::Err { kind, message } if kind == "PermissionDenied" && message.ends_with(reason))
}

/// Makes `dir` in `tree` with 4,096 empty files of 65-byte names: a listing of ~270 KB, larger
/// than a socket's buffer. How many names.
fn long_listing(tree: &Tree, dir: &str) -> Result<usize, String> {
    let names = 4096;
    std::fs::create_dir_all(tree.path(dir)).map_err(|e| e.to_string())?;
    for i in 0..names {
        let name = format!("{i:04}-{}", "n".repeat(60));
        std::fs::write(tree.path(&format!("{dir}/{name}")), "").map_err(|e| e.to_string())?;
    }
    Ok(names)
}

/// The traversal battery: every escape is denied with its reason, and beside each, the access
/// the grant does give works.
pub fn traversal_battery(broker: &Broker) -> Verdict {
    let tree = Tree::new("battery")?;
    let t = |rel: &str| tree.path(rel);
    // A listing of ~270 KB, larger than the socket's buffer: its answer is sent while the
    // child reads it (the broker lets the child's doorbell return first).
    let long_names = long_listing(&tree, "data/long")?;
    let profile = Profile {
        fs: vec![
            grant(&t("granted"), READ_LIST),
            grant(&t("writable"), ALL),
            grant(&t("writable2"), ALL),
            // May add and remove names, never write: a rename must not replace a file.
            grant(
                &t("dropbox"),
                Rights {
                    read: true,
                    write: false,
                    create: true,
                    delete: true,
                    list: true,
                },
            ),
            // Prefix confusion: `data` granted, `data-evil` asked.
            grant(&t("data"), READ_LIST),
        ],
        net: Vec::new(),
        limits: Limits::default(),
    };
    let child = spawn_files(broker, profile)?;
    let mut problems = Vec::new();
    let mut expect = |op: FileOp, ok: &dyn Fn(&FileResult) -> bool| match ask(&child, op.clone()) {
        Ok(r) if ok(&r) => {}
        Ok(r) => problems.push(format!("{op:?} → {r:?}")),
        Err(e) => problems.push(e),
    };
    let is_ok = |want: &'static str| move |r: &FileResult| *r == FileResult::Ok(want.into());
    let deny = |reason: &'static str| move |r: &FileResult| denied(r, reason);

    // Allowed: what the grant gives.
    expect(FileOp::Read(t("granted/a.txt")), &is_ok("A"));
    expect(FileOp::Read(t("granted/sub/b.txt")), &is_ok("B"));
    expect(FileOp::Stat(t("granted/a.txt")), &is_ok("File 1"));
    expect(FileOp::ReadDir(t("granted/sub")), &is_ok("b.txt"));
    expect(
        FileOp::ReadDir(t("data/long")),
        &|r: &FileResult| matches!(r, FileResult::Ok(names) if names.split(',').count() == long_names),
    );
    // `..` at every position of granted/sub/b.txt, and a plain escape.
    let parts = ["granted", "sub", "b.txt"];
    for at in 0..=parts.len() {
        let mut p: Vec<&str> = parts.to_vec();
        p.insert(at, "..");
        expect(FileOp::Read(t(&p.join("/"))), &deny("bad-path"));
    }
    expect(FileOp::Read(t("granted/../outside.txt")), &deny("bad-path"));
    // Absolute paths outside every grant.
    expect(FileOp::Read("/etc/passwd".into()), &deny("not-granted"));
    expect(FileOp::Read(t("outside.txt")), &deny("not-granted"));
    // `//`, trailing `/.`, `.` components, relative paths, NUL.
    expect(FileOp::Read(t("granted//a.txt")), &deny("bad-path"));
    expect(FileOp::Read(t("granted/a.txt/.")), &deny("bad-path"));
    expect(FileOp::Read(t("granted/./a.txt")), &deny("bad-path"));
    expect(FileOp::Read("granted/a.txt".into()), &deny("bad-path"));
    expect(
        FileOp::Read(format!("{}\0x", t("granted/a.txt"))),
        &deny("bad-path"),
    );
    // Symlinks inside the grant: out, to /, to /proc/self/root — and even one that stays inside
    // (the broker follows no symlink at all).
    expect(FileOp::Read(t("granted/link-out")), &deny("escape"));
    expect(
        FileOp::Read(t("granted/link-root/etc/passwd")),
        &deny("escape"),
    );
    expect(
        FileOp::Read(t("granted/proc-root/etc/passwd")),
        &deny("escape"),
    );
    expect(FileOp::Read(t("granted/link-in/b.txt")), &deny("escape"));
    // A hard link to an outside file.
    expect(FileOp::Read(t("granted/hard")), &deny("escape"));
    // Not even metadata of a hard-linked file; and truncating one through a writable grant
    // is refused before the outside file is touched.
    expect(FileOp::Stat(t("granted/hard")), &deny("escape"));
    expect(FileOp::Truncate(t("writable/hard")), &deny("escape"));
    // A grant without write cannot replace a file by renaming over it; a new name is fine.
    expect(
        FileOp::Rename(t("dropbox/x"), t("dropbox/y")),
        &|r: &FileResult| matches!(r, FileResult::Err { kind, .. } if kind == "AlreadyExists"),
    );
    expect(
        FileOp::Rename(t("dropbox/x"), t("dropbox/z")),
        &is_ok("renamed"),
    );
    // A 64 KiB path, straight onto the wire (the child API refuses to send it).
    expect(
        FileOp::RawOpen(format!("{}/{}", t("granted"), "a/".repeat(32 * 1024))),
        &|r: &FileResult| *r == FileResult::Ok("Denied(BadPath)".into()),
    );
    // Non-UTF-8 names: never listed, counted as omitted; the UTF-8 ones are.
    expect(
        FileOp::ReadDir(t("granted")),
        &is_ok("a.txt,hard,link-in,link-out,link-root,proc-root,sub"),
    );
    // Prefix confusion.
    expect(FileOp::Read(t("data-evil/x")), &deny("not-granted"));
    // A read grant asked for write or create; the writable grant allows them.
    expect(FileOp::Write(t("granted/a.txt")), &deny("missing-right"));
    expect(
        FileOp::CreateNew(t("granted/new.txt")),
        &deny("missing-right"),
    );
    expect(FileOp::CreateNew(t("writable/new.txt")), &is_ok("created"));
    expect(FileOp::Write(t("writable/new.txt")), &is_ok("opened"));
    // Directory and rename operations: allowed under the writable grant only.
    expect(FileOp::CreateDir(t("writable/d")), &is_ok("made"));
    expect(FileOp::CreateDir(t("granted/d")), &deny("missing-right"));
    expect(
        FileOp::Rename(t("writable/new.txt"), t("writable/d/moved.txt")),
        &is_ok("renamed"),
    );
    expect(
        FileOp::Rename(t("writable/d/moved.txt"), t("granted/moved.txt")),
        &deny("missing-right"),
    );
    expect(
        FileOp::Rename(t("writable/d/moved.txt"), t("writable2/moved.txt")),
        &deny("cross-grant"),
    );
    expect(FileOp::Remove(t("writable/d/moved.txt")), &is_ok("removed"));
    expect(FileOp::Remove(t("granted/a.txt")), &deny("missing-right"));
    let _ = child.send(&FileOp::Quit);
    match child.wait_timeout(Duration::from_secs(20)) {
        Some(ChildEnd::Exited { code: 0 }) => {}
        other => problems.push(format!("child ended {other:?}")),
    }
    match std::fs::read_to_string(tree.0.join("outside.txt")) {
        Ok(s) if s == "SECRET" => {}
        other => problems.push(format!("the outside file changed: {other:?}")),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// While a child opens `d/secret` beneath a grant as fast as it can, two threads swap `d`
/// between a real directory and a symlink to a directory outside the grant that holds a
/// `secret` file. Zero opens may return the outside file.
pub fn symlink_swap_race(broker: &Broker) -> Verdict {
    let attempts: u32 = std::env::var("PORTCULLIS_RACE_ATTEMPTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let tree = Tree::new("race")?;
    let root = PathBuf::from(tree.path("granted"));
    std::fs::create_dir_all(root.join("d")).map_err(|e| e.to_string())?;
    std::fs::write(root.join("d/secret"), "inside").map_err(|e| e.to_string())?;
    let outside = PathBuf::from(tree.path("elsewhere"));
    std::fs::create_dir_all(&outside).map_err(|e| e.to_string())?;
    std::fs::write(outside.join("secret"), "OUTSIDE-SECRET").map_err(|e| e.to_string())?;
    let profile = Profile {
        fs: vec![grant(&root.display().to_string(), READ_LIST)],
        net: Vec::new(),
        limits: Limits {
            requests_per_second: 10_000_000,
            burst: 10_000_000,
            ..Limits::default()
        },
    };
    let child = spawn_files(broker, profile)?;
    // The allowed half of the pair: with nobody swapping, the file opens.
    let target = format!("{}/d/secret", root.display());
    match ask(&child, FileOp::Read(target.clone()))? {
        FileResult::Ok(s) if s == "inside" => {}
        other => return Err(format!("before the race, reading {target}: {other:?}")),
    }
    let stop = AtomicBool::new(false);
    let swaps = std::sync::atomic::AtomicU64::new(0);
    let result = std::thread::scope(|s| {
        for n in 0..2 {
            let (root, outside, stop, swaps) = (&root, &outside, &stop, &swaps);
            s.spawn(move || swap_loop(root, outside, n, stop, swaps));
        }
        let op = FileOp::Race {
            path: format!("{}/d/secret", root.display()),
            attempts,
            outside_marker: "OUTSIDE".into(),
        };
        let r = ask(&child, op);
        stop.store(true, Ordering::Release);
        r
    })?;
    let _ = child.send(&FileOp::Quit);
    match result {
        // Some opens must succeed (while `d` is the real directory), or the test proves nothing.
        FileResult::Counts {
            inside,
            outside: 0,
            refused,
        } if inside > 0 && inside + refused == attempts => {
            println!(
                "race: {attempts} attempts, {inside} opened inside, {refused} refused, 0 outside; {} swaps",
                swaps.load(Ordering::Relaxed)
            );
            Ok(())
        }
        other => Err(format!("race result {other:?}")),
    }
}

/// Swaps `root/d` between the real directory and a symlink to `outside`, as fast as it can:
/// each `renameat2(RENAME_EXCHANGE)` atomically trades `d` and `d.link`, so with any number of
/// swappers `d` is always one or the other.
fn swap_loop(
    root: &Path,
    outside: &Path,
    n: u32,
    stop: &AtomicBool,
    swaps: &std::sync::atomic::AtomicU64,
) {
    use std::ffi::CString;
    let d = CString::new(root.join("d").as_os_str().as_bytes()).unwrap_or_default();
    let link_path = root.join("d.link");
    if n == 0 {
        let _ = std::os::unix::fs::symlink(outside, &link_path);
    }
    let link = CString::new(link_path.as_os_str().as_bytes()).unwrap_or_default();
    while !stop.load(Ordering::Acquire) {
        // SAFETY: both paths are NUL-terminated CStrings that outlive the call.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                d.as_ptr(),
                libc::AT_FDCWD,
                link.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if r == 0 {
            swaps.fetch_add(1, Ordering::Relaxed);
        } else {
            std::thread::yield_now();
        }
    }
}

/// Every brokered request leaves exactly one audit record; denials carry their reason; the
/// record of a 4 KiB target is bounded.
pub fn audit_records(broker: &Broker) -> Verdict {
    let tree = Tree::new("audit")?;
    let profile = Profile {
        fs: vec![grant(&tree.path("granted"), READ_LIST)],
        net: Vec::new(),
        limits: Limits::default(),
    };
    let child = spawn_files(broker, profile)?;
    let id = child.id();
    let long = format!("/{}", "x".repeat(4000));
    let ops = [
        FileOp::Read(tree.path("granted/a.txt")),
        FileOp::Read("/etc/passwd".into()),
        FileOp::Read(tree.path("granted/link-out")),
        FileOp::Write(tree.path("granted/a.txt")),
        FileOp::Read(long),
    ];
    for op in &ops {
        ask(&child, op.clone())?;
    }
    let _ = child.send(&FileOp::Quit);
    let _ = child.wait_timeout(Duration::from_secs(20));
    let records: Vec<AuditRecord> = AUDIT
        .lock()
        .map_err(|_| "audit lock")?
        .iter()
        .filter(|r| r.child == id)
        .cloned()
        .collect();
    let summary: Vec<(&str, Option<&str>)> =
        records.iter().map(|r| (r.decision, r.reason)).collect();
    let want = vec![
        ("allow", None),
        ("deny", Some("not-granted")),
        ("deny", Some("escape")),
        ("deny", Some("missing-right")),
        ("deny", Some("not-granted")),
    ];
    if summary != want {
        return Err(format!("audit records {summary:?}, want {want:?}"));
    }
    if records.iter().any(|r| {
        r.target.len() > portcullis::broker::audit::MAX_TARGET_BYTES + 32 || r.kind != "files"
    }) {
        return Err(format!("unbounded or mislabelled record: {records:?}"));
    }
    Ok(())
}

/// A child flooding the broker past its rate gets `rate-limited` denials (after its burst is
/// served), while a bystander child asking at the same time is served in full.
pub fn rate_limit_and_fairness(broker: &Broker) -> Verdict {
    let tree = Tree::new("rate")?;
    let path = tree.path("granted/a.txt");
    let grants = || vec![grant(&tree.path("granted"), READ_LIST)];
    let flooder_limits = Limits {
        requests_per_second: 20,
        burst: 20,
        ..Limits::default()
    };
    let flooder = spawn_files(
        broker,
        Profile {
            fs: grants(),
            net: Vec::new(),
            limits: flooder_limits,
        },
    )?;
    let bystander_limits = Limits {
        requests_per_second: 1_000_000,
        burst: 1_000_000,
        ..Limits::default()
    };
    let bystander = spawn_files(
        broker,
        Profile {
            fs: grants(),
            net: Vec::new(),
            limits: bystander_limits,
        },
    )?;
    let (flood, calm) = std::thread::scope(|s| {
        let flood = s.spawn(|| {
            ask(
                &flooder,
                FileOp::StatMany {
                    path: path.clone(),
                    count: 2_000,
                },
            )
        });
        let calm = s.spawn(|| {
            ask(
                &bystander,
                FileOp::StatMany {
                    path: path.clone(),
                    count: 500,
                },
            )
        });
        (
            flood.join().unwrap_or(Err("join".into())),
            calm.join().unwrap_or(Err("join".into())),
        )
    });
    match (flood?, calm?) {
        (
            FileResult::Counts {
                inside,
                outside: 0,
                refused,
            },
            FileResult::Counts {
                inside: 500,
                outside: 0,
                refused: 0,
            },
        ) if inside >= 20 && refused > 0 && inside + refused == 2_000 => {
            // The flood is audited in a few records that count what they stand for, not one
            // record per refused request.
            let id = flooder.id();
            // Its last ones are written when its service ends.
            let _ = flooder.send(&FileOp::Quit);
            let _ = flooder.wait_timeout(Duration::from_secs(20));
            drop(flooder);
            let records: Vec<u32> = AUDIT
                .lock()
                .map_err(|_| "audit lock")?
                .iter()
                .filter(|r| r.child == id && r.reason == Some("rate-limited"))
                .map(|r| r.suppressed)
                .collect();
            let covered: u32 = records.iter().map(|s| s + 1).sum();
            if records.is_empty() || records.len() > 30 || covered != refused {
                return Err(format!(
                    "{} rate-limited records covering {covered} of {refused}",
                    records.len()
                ));
            }
            println!(
                "rate: flooder {inside} served, {refused} rate-limited in {} audit records; bystander 500 of 500 served",
                records.len()
            );
            Ok(())
        }
        other => Err(format!("flooder/bystander counts {other:?}")),
    }
}

/// A child whose fd table is full (a low `RLIMIT_NOFILE`) asks for one more file: what it sees.
fn fd_table_run(broker: &Broker) -> Result<FileResult, String> {
    let tree = Tree::new("fdtable")?;
    let mut rlimits = portcullis::default_rlimits();
    for limit in &mut rlimits {
        if limit.resource == RlimitResource::OpenFiles {
            limit.value = 16;
        }
    }
    let options = SpawnOptions {
        rlimits: Some(rlimits),
        profile: Some(Profile {
            fs: vec![grant(&tree.path("granted"), READ_LIST)],
            net: Vec::new(),
            limits: Limits::default(),
        }),
        ..SpawnOptions::default()
    };
    let child = broker
        .spawn_with::<FileOp, FileResult, _>("files", &(), &options)
        .map_err(|e| format!("spawn files: {e}"))?;
    let seen = ask(&child, FileOp::FillFdTable(tree.path("granted/a.txt")))?;
    let _ = child.send(&FileOp::Quit);
    match child.wait_timeout(Duration::from_secs(20)) {
        Some(ChildEnd::Exited { code: 0 }) => Ok(seen),
        other => Err(format!("child ended {other:?} after {seen:?}")),
    }
}

/// The denied half: with its fd table full, the child's brokered open fails with `EMFILE`
/// ("too many open files"), not a broken channel, and the child carries on.
pub fn full_fd_table_open_is_emfile(broker: &Broker) -> Verdict {
    match fd_table_run(broker)? {
        FileResult::FdTable {
            opened,
            full_errno: Some(libc::EMFILE),
            full_message,
            ..
        } if opened > 0 && full_message.to_lowercase().contains("too many open files") => {
            println!("fd table: {opened} opens, then {full_message}");
            Ok(())
        }
        other => Err(format!(
            "expected EMFILE once the table was full, got {other:?}"
        )),
    }
}

/// The allowed half: after closing one file the next open works and reads the right file, and
/// the next request (a stat) gets its own answer: the service channel stayed in step.
pub fn full_fd_table_recovers_after_close(broker: &Broker) -> Verdict {
    match fd_table_run(broker)? {
        FileResult::FdTable {
            full_errno: Some(libc::EMFILE),
            after_close: Ok(contents),
            stat_after: Ok(stat),
            ..
        } if contents == "A" && stat == "File 1" => Ok(()),
        other => Err(format!(
            "expected the open after a close to work and the channel in step, got {other:?}"
        )),
    }
}

static SIGNALS_SEEN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS_SEEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// See [`FileOp::ReadDirUnderSignals`].
fn read_dir_under_signals(
    ctx: &ChildContext<FileResult, FileOp>,
    path: &str,
    times: u32,
) -> FileResult {
    use std::sync::atomic::{AtomicBool, Ordering};
    // SAFETY: an all-zero `sigaction` is valid; the handler only touches an atomic (it is
    // async-signal-safe), and no SA_RESTART: an interrupted call returns EINTR.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = count_signal as *const () as usize;
        if libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()) != 0 {
            return FileResult::Err {
                kind: "sigaction".into(),
                message: std::io::Error::last_os_error().to_string(),
            };
        }
    }
    // SAFETY: gettid has no preconditions.
    let lister = unsafe { libc::syscall(libc::SYS_gettid) };
    let done = AtomicBool::new(false);
    let outcome = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                // SAFETY: signals a thread of this process (PID 1 of its namespace), which
                // handles SIGUSR1.
                unsafe {
                    libc::syscall(libc::SYS_tgkill, 1, lister, libc::SIGUSR1);
                }
                std::thread::sleep(Duration::from_micros(20));
            }
        });
        let mut counts = Vec::new();
        let mut failure = None;
        for _ in 0..times {
            match ctx.read_dir(path) {
                Ok(entries) => counts.push(entries.len()),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        done.store(true, Ordering::Relaxed);
        (counts, failure)
    });
    let signals = SIGNALS_SEEN.load(Ordering::Relaxed);
    match outcome {
        (_, Some(e)) => FileResult::Err {
            kind: format!("{:?}", e.kind()),
            message: format!("{e} (after {signals} signals)"),
        },
        (counts, None) => {
            let mut distinct = counts.clone();
            distinct.dedup();
            FileResult::Ok(format!("{distinct:?} entries each, {signals} signals"))
        }
    }
}

/// While a thread keeps signalling it, a child lists a directory whose answer (~270 KB) is
/// larger than the socket: ten listings all complete. Its filter waits killably once the broker
/// has read a doorbell (`SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`), so no signal restarts a ring
/// the broker is still answering. The pair: the same listings without signals, in the
/// traversal battery.
pub fn read_dir_under_signals_completes(broker: &Broker) -> Verdict {
    let tree = Tree::new("signals")?;
    let names = long_listing(&tree, "data/long")?;
    let child = spawn_files(
        broker,
        Profile {
            fs: vec![grant(&tree.path("data"), READ_LIST)],
            net: Vec::new(),
            limits: Limits::default(),
        },
    )?;
    let op = FileOp::ReadDirUnderSignals {
        path: tree.path("data/long"),
        times: 10,
    };
    let result = ask(&child, op)?;
    let _ = child.send(&FileOp::Quit);
    match result {
        FileResult::Ok(report) if report.starts_with(&format!("[{names}] entries each")) => {
            let signals: u32 = report
                .rsplit(", ")
                .next()
                .and_then(|s| s.strip_suffix(" signals"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if signals == 0 {
                return Err(format!("no signal arrived during the listings: {report}"));
            }
            println!("ten listings of {names} names under signals: {report}");
            Ok(())
        }
        other => Err(format!("listings under signals: {other:?}")),
    }
}

/// A bystander child with a read grant opens a file `count` times; how many opens worked.
pub fn bystander_opens(broker: &Broker, count: u32) -> Result<u32, String> {
    let tree = Tree::new("bystander")?;
    let child = spawn_files(
        broker,
        Profile {
            fs: vec![grant(&tree.path("granted"), READ_LIST)],
            net: Vec::new(),
            limits: Limits::default(),
        },
    )?;
    let op = FileOp::Race {
        path: tree.path("granted/a.txt"),
        attempts: count,
        outside_marker: "never".into(),
    };
    let counts = ask(&child, op)?;
    let _ = child.send(&FileOp::Quit);
    match counts {
        FileResult::Counts { inside, .. } => Ok(inside),
        other => Err(format!("bystander: {other:?}")),
    }
}
