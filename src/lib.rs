//! # Portcullis
//!
//! Chromium-style multi-process sandboxing for Linux. A trusted **broker** (your application's
//! main process) starts **sandboxed children** through a single-threaded **zygote**; each child
//! runs one of your registered entry functions inside empty user/pid/net/mount/ipc/uts
//! namespaces, with no filesystem, no capabilities, `no_new_privs`, a strict seccomp allowlist
//! and rlimits, and talks to the broker only over a typed, hardened channel.
//!
//! This facade re-exports the public API of the member crates:
//! [`portcullis_broker`] (trusted side), [`portcullis_child`] (untrusted side),
//! [`portcullis_ipc`] (wire layer) and [`portcullis_policy`] (decisions).
//!
//! ```no_run
//! use portcullis::{Broker, BrokerConfig, ChildContext, Entries};
//!
//! fn echo(ctx: ChildContext<String, String>, greeting: String) -> i32 {
//!     while let Ok(msg) = ctx.recv() {
//!         if ctx.send(&format!("{greeting}, {msg}")).is_err() {
//!             return 1;
//!         }
//!     }
//!     0
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // First thing in main: in the zygote process this call never returns.
//!     let broker = Broker::start(Entries::new().register("echo", echo), BrokerConfig::default())?;
//!     let child = broker.spawn::<String, String, _>("echo", "hello")?;
//!     assert_eq!(child.request(&"world".to_string())?, "hello, world");
//!     Ok(())
//! }
//! ```
//!
//! The crate also builds the **`portcullis` command** (`src/bin/portcullis/`,
//! `target/release/portcullis` after `cargo build --release`): `portcullis check POLICY`
//! validates a policy file, `portcullis explain [POLICY] [--profile NAME]` prints the sandbox a
//! child with a profile gets, and `portcullis doctor` checks that the host can sandbox, with the
//! fix for each gap. See `docs/CLI.md`.
//!
//! Besides the re-exports, the library holds one module of plain data: [`serve_protocol`], the
//! messages between `portcullis run` and a `portcullis serve` server (shared by the command and
//! its tests).
//!
//! Must never: contain sandbox logic of its own; the library only re-exports, and the command
//! asks the member crates (the broker's allowlist, limits and cgroup code) rather than keeping
//! its own copy.

pub use portcullis_broker::{
    default_rlimits, seccomp, AuditRecord, AuditSink, Broker, BrokerConfig, ChannelLimits, Child,
    ChildEnd, ChildError, LockdownError, LockdownStep, OnViolation, ProtocolViolation, Rlimit,
    RlimitResource, SpawnError, SpawnFailure, SpawnOptions, StartError, TlsRoots, TrackedChildren,
    Violation, DEFAULT_SANDBOX_HOST_ID, DEFAULT_SANDBOX_HOST_IDS, MAX_EXTRA_FDS,
};
pub use portcullis_child::{ChildChannelError, ChildContext, Entries, OpenOptions};
pub use {
    portcullis_broker as broker, portcullis_child as child, portcullis_ipc as ipc,
    portcullis_policy as policy,
};

pub mod serve_protocol;
