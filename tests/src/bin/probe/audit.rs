//! The audit sinks that write JSON lines: a file (`AuditSink::file`) and the broker's stderr
//! (`AuditSink::Stderr`). A child sends the same requests to a broker writing to each; the sink
//! must then hold exactly one line per request, each a JSON object with the documented fields
//! (time, child id and kind, pid, operation, target, decision, reason, latency), and a hostile
//! target must come out escaped (one line, parsed back to what was asked) and bounded. A
//! non-UTF-8 path never becomes a record: the child API refuses to send it, and sent raw it
//! does not decode, so the broker ends the child.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis::broker::audit::MAX_TARGET_BYTES;
use portcullis::policy::{Limits, Profile};
use portcullis::{AuditSink, Broker, BrokerConfig, ChildEnd, SpawnOptions};
use serde_json::Value;

use crate::files::{ask, grant, FileOp, FileResult, Tree, READ_LIST};
use crate::Verdict;

/// One request and the record it must leave: operation, decision, reason, and a check of the
/// target.
struct Expect {
    op: FileOp,
    record: (&'static str, &'static str, Option<&'static str>),
    target: Box<dyn Fn(&str) -> bool>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The requests: allowed, denied three ways, failed, a listing, a 4 KiB path, a path made to
/// forge a log line.
fn requests(tree: &Tree) -> Vec<Expect> {
    let exactly = |want: String| -> Box<dyn Fn(&str) -> bool> { Box::new(move |t| t == want) };
    let long = format!("/{}", "x".repeat(4095));
    let forged = tree.path("granted/evil\n{\"decision\":\"allow\"}\u{1b}[31m\t\"");
    vec![
        Expect {
            op: FileOp::Read(tree.path("granted/a.txt")),
            record: ("open", "allow", None),
            target: exactly(tree.path("granted/a.txt")),
        },
        Expect {
            op: FileOp::Read("/etc/passwd".into()),
            record: ("open", "deny", Some("not-granted")),
            target: exactly("/etc/passwd".into()),
        },
        Expect {
            op: FileOp::Read(tree.path("granted/link-out")),
            record: ("open", "deny", Some("escape")),
            target: exactly(tree.path("granted/link-out")),
        },
        Expect {
            op: FileOp::Write(tree.path("granted/a.txt")),
            record: ("open", "deny", Some("missing-right")),
            target: exactly(tree.path("granted/a.txt")),
        },
        Expect {
            op: FileOp::Stat(tree.path("granted/missing")),
            record: ("stat", "error", Some("not-found")),
            target: exactly(tree.path("granted/missing")),
        },
        Expect {
            op: FileOp::ReadDir(tree.path("granted/sub")),
            record: ("read_dir", "allow", None),
            target: exactly(tree.path("granted/sub")),
        },
        Expect {
            op: FileOp::Read(long.clone()),
            record: ("open", "deny", Some("not-granted")),
            target: Box::new(move |t| {
                t.len() <= MAX_TARGET_BYTES + 32
                    && t.starts_with(&long[..MAX_TARGET_BYTES])
                    && t.ends_with("[4096 bytes]")
            }),
        },
        Expect {
            op: FileOp::Read(forged.clone()),
            record: ("open", "error", Some("not-found")),
            target: exactly(forged),
        },
    ]
}

/// Runs the requests (and the two non-UTF-8 attempts) against `broker`; returns the child's id
/// and pid, and the time window in ms.
fn run_requests(broker: &Broker, tree: &Tree, expected: &[Expect]) -> Result<(u64, u32), String> {
    let options = SpawnOptions {
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
    for e in expected {
        ask(&child, e.op.clone())?;
    }
    let non_utf8 = tree
        .path("granted/caf")
        .into_bytes()
        .into_iter()
        .chain([0xe9])
        .collect::<Vec<u8>>();
    match ask(&child, FileOp::OpenNonUtf8(non_utf8.clone()))? {
        FileResult::Err { kind, .. } if kind == "InvalidInput" => {}
        other => return Err(format!("a non-UTF-8 path through the API: {other:?}")),
    }
    // Sent raw, it does not decode: a protocol violation that ends the child.
    child
        .send(&FileOp::RawNonUtf8Open(non_utf8))
        .map_err(|e| e.to_string())?;
    match child.wait_timeout(Duration::from_secs(20)) {
        Some(ChildEnd::ProtocolViolation { .. }) => {}
        other => return Err(format!("a raw non-UTF-8 path: child ended {other:?}")),
    }
    Ok((child.id(), child.pid()))
}

/// Checks the sink's text: one JSON object per line, exactly the expected records for the
/// child, in order, with every documented field.
fn check_lines(text: &str, child: (u64, u32), window: (u64, u64), expected: &[Expect]) -> Verdict {
    let mut records = Vec::new();
    for line in text.lines() {
        if line.chars().any(char::is_control) {
            return Err(format!("a control character in an audit line: {line:?}"));
        }
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            // Only the stderr sink shares its stream; the file holds records only.
            continue;
        };
        if value.get("child").and_then(Value::as_u64) == Some(child.0) {
            records.push(value);
        }
    }
    if records.len() != expected.len() {
        return Err(format!(
            "{} records for the child, want {} (one per request): {records:#?}",
            records.len(),
            expected.len()
        ));
    }
    let mut problems = Vec::new();
    for (record, e) in records.iter().zip(expected) {
        let str_field = |name: &str| record.get(name).and_then(Value::as_str);
        let num = |name: &str| record.get(name).and_then(Value::as_u64);
        let (op, decision, reason) = e.record;
        let time_ok = num("time_ms").is_some_and(|t| t >= window.0 && t <= window.1);
        let fields_ok = time_ok
            && str_field("kind") == Some("files")
            && num("pid") == Some(u64::from(child.1))
            && str_field("op") == Some(op)
            && str_field("decision") == Some(decision)
            && str_field("reason") == reason
            && num("latency_us").is_some()
            && str_field("target").is_some_and(|t| (e.target)(t));
        if !fields_ok {
            problems.push(format!("{:?}: record {record}", e.op));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn broker_with(audit: AuditSink) -> Result<Broker, String> {
    Broker::start(
        crate::entries(),
        BrokerConfig {
            audit,
            ..BrokerConfig::default()
        },
    )
    .map_err(|e| format!("start a broker with the sink: {e}"))
}

/// `AuditSink::file`: the file holds one JSON line per request of the child.
pub fn file_sink(_: &Broker) -> Verdict {
    let tree = Tree::new("audit-file")?;
    let path = tree.path("audit.jsonl");
    let sink = AuditSink::file(&path).map_err(|e| format!("open {path}: {e}"))?;
    let expected = requests(&tree);
    let start = now_ms();
    let broker = broker_with(sink)?;
    let child = run_requests(&broker, &tree, &expected)?;
    drop(broker);
    let end = now_ms();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    // The file holds nothing but records.
    if let Some(bad) = text
        .lines()
        .find(|l| serde_json::from_str::<Value>(l).is_err())
    {
        return Err(format!("a line of the audit file is not JSON: {bad:?}"));
    }
    check_lines(&text, child, (start, end), &expected)
}

/// `AuditSink::Stderr`: the broker's stderr (fd 2, redirected to a file for the length of the
/// scenario) holds one JSON line per request of the child.
pub fn stderr_sink(_: &Broker) -> Verdict {
    let tree = Tree::new("audit-stderr")?;
    let path = tree.path("stderr.txt");
    let capture = std::fs::File::create(&path).map_err(|e| format!("create {path}: {e}"))?;
    let expected = requests(&tree);
    let start = now_ms();
    // SAFETY: dup of this process's own fd 2; the copy is closed below.
    let saved = unsafe { libc::dup(2) };
    // SAFETY: points fd 2 at a file we hold open; the original is restored from `saved` below.
    if saved < 0 || unsafe { libc::dup2(capture.as_raw_fd(), 2) } < 0 {
        return Err("redirect stderr".into());
    }
    let run = broker_with(AuditSink::Stderr).and_then(|broker| {
        let child = run_requests(&broker, &tree, &expected);
        drop(broker);
        child
    });
    // SAFETY: `saved` is the duplicate of the original fd 2 made above.
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
    }
    let child = run?;
    let end = now_ms();
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| format!("read {path}: {e}"))?;
    check_lines(&text, child, (start, end), &expected)
}
