//! The audit log: one structured record for every brokered request, allowed or denied.
//!
//! Records go to a configurable [`AuditSink`] as JSON lines and are also emitted through
//! `tracing` (target `portcullis::audit`). Every field a child influences is bounded: the target
//! is cut to [`MAX_TARGET_BYTES`], so no request can make the broker write an unbounded record.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Longest target (path, host, URL) kept in a record; longer ones are cut and marked.
pub const MAX_TARGET_BYTES: usize = 512;

/// One brokered request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The broker's id for the child.
    pub child: u64,
    /// The child's kind (its entry name).
    pub kind: String,
    /// The child's pid in the broker's PID namespace.
    pub pid: u32,
    /// The operation (`open`, `stat`, `read_dir`, `create_dir`, `remove_file`, `rename`,
    /// `connect`, `fetch`).
    pub op: &'static str,
    /// What it was asked for, cut to [`MAX_TARGET_BYTES`].
    pub target: String,
    /// `allow`, `deny`, or `error` (allowed, but the OS refused).
    pub decision: &'static str,
    /// Why, for `deny` and `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// How many more `rate-limited` denials of this child were answered since the last record
    /// and not written one by one (a flooding child gets at most one such record a second).
    #[serde(skip_serializing_if = "is_zero")]
    pub suppressed: u32,
    /// Microseconds from receiving the request to having its answer (decision and operation
    /// done; the record is written just before the answer is sent).
    pub latency_us: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl AuditRecord {
    pub(crate) fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// Cuts a child-supplied string to [`MAX_TARGET_BYTES`] on a character boundary.
pub(crate) fn bounded_target(target: &str) -> String {
    if target.len() <= MAX_TARGET_BYTES {
        return target.to_owned();
    }
    let mut cut = MAX_TARGET_BYTES;
    while !target.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…[{} bytes]", &target[..cut], target.len())
}

/// Where audit records go.
#[derive(Clone, Default)]
pub enum AuditSink {
    /// Only through `tracing`.
    #[default]
    TracingOnly,
    /// JSON lines on the broker's stderr.
    Stderr,
    /// JSON lines appended to a file.
    File(Arc<Mutex<std::fs::File>>),
    /// A function the application supplies (called on a broker worker thread; keep it short).
    Callback(Arc<dyn Fn(&AuditRecord) + Send + Sync>),
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::TracingOnly => "TracingOnly",
            Self::Stderr => "Stderr",
            Self::File(_) => "File",
            Self::Callback(_) => "Callback",
        })
    }
}

impl AuditSink {
    /// Appends records to `path` (created if missing).
    pub fn file(path: impl AsRef<std::path::Path>) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self::File(Arc::new(Mutex::new(file))))
    }

    /// False only when nothing would receive a record: the sink is `TracingOnly` and no
    /// `tracing` subscriber listens to `portcullis::audit` at INFO. Saves building the record.
    pub(crate) fn wants_records(&self) -> bool {
        !matches!(self, Self::TracingOnly)
            || tracing::enabled!(target: "portcullis::audit", tracing::Level::INFO)
    }

    /// Writes one record. Failures to write are reported through `tracing`, never to the child.
    pub(crate) fn write(&self, record: &AuditRecord) {
        tracing::info!(
            target: "portcullis::audit",
            child = record.child,
            kind = %record.kind,
            op = record.op,
            // Debug escapes control characters: a child's path cannot forge log lines.
            target_path = ?record.target,
            decision = record.decision,
            reason = record.reason.unwrap_or(""),
            latency_us = record.latency_us,
        );
        let line = || {
            let mut line = serde_json::to_vec(record).unwrap_or_default();
            line.push(b'\n');
            line
        };
        let result = match self {
            Self::TracingOnly => Ok(()),
            Self::Stderr => std::io::stderr().lock().write_all(&line()),
            Self::File(file) => file
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .write_all(&line()),
            Self::Callback(f) => {
                f(record);
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "audit record not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_targets_are_cut_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let cut = bounded_target(&long);
        assert!(cut.len() < MAX_TARGET_BYTES + 32, "{}", cut.len());
        assert!(cut.ends_with("[2000 bytes]"));
        assert_eq!(bounded_target("/short"), "/short");
    }

    #[test]
    fn records_are_one_json_line() {
        let r = AuditRecord {
            time_ms: 1,
            child: 2,
            kind: "renderer".into(),
            pid: 3,
            op: "open",
            target: "/a\n\"b".into(),
            decision: "deny",
            reason: Some("not-granted"),
            latency_us: 4,
            suppressed: 0,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains('\n'));
        assert!(line.contains(r#""reason":"not-granted""#));
    }
}
