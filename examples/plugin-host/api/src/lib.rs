//! The plugin API of the example plugin host: what a plugin may call and what it says.
//!
//! **How a plugin is loaded.** A plugin is a program (here a static executable the workspace
//! builds). The host never loads it into its own process and never runs any of its code
//! unconfined: it asks its Portcullis broker to `spawn_plugin` it, so a child locks itself down
//! completely (empty namespaces and root, no capabilities, `no_new_privs`, the exec-mode seccomp
//! filter, its cgroup and rlimits) and only then executes the plugin from a file descriptor the
//! broker opened. Even a static constructor in the plugin runs locked down.
//!
//! **What a plugin may call.** Its [`Plugin`] context ([`connect`]) offers exactly the
//! Portcullis child API: typed messages with its host ([`HostToPlugin`], [`PluginToHost`]) and
//! the broker's files and network — `open`, `metadata`, `read_dir`, `create_dir`, `remove_file`,
//! `rename`, `connect`, `fetch` — each decided by the plugin's policy profile and audited; a
//! denial is `PermissionDenied`. Anything else it tries is a system call outside its allowlist:
//! the broker names it and, as the host's profile says, kills the plugin or fails the call with
//! `EPERM`.
//!
//! Owns: the message types and the `connect` helper. Must never: decide anything (the host's
//! policy does) or trust what the other side says about itself.

use serde::{Deserialize, Serialize};

/// A plugin's channel to its host and broker.
pub type Plugin = portcullis_child::ChildContext<PluginToHost, HostToPlugin>;

/// Takes the channels the broker left the plugin (fds 3 and 4). Call once, first thing.
///
/// Errors: the plugin was not started by a Portcullis broker's `spawn_plugin`.
pub fn connect() -> std::io::Result<Plugin> {
    Plugin::inherited()
}

/// What the host asks of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostToPlugin {
    /// Thumbnailer: read the image at `input` and write a thumbnail at most `max_side` pixels
    /// on its longer side to `output` (both through the broker).
    Thumbnail {
        /// The image to read (PNG).
        input: String,
        /// Where the thumbnail goes (PNG, created).
        output: String,
        /// Longest side of the thumbnail in pixels.
        max_side: u32,
    },
    /// The evil plugin: try every escape you know. `host_pid` is a pid outside the sandbox,
    /// `grant` a file the plugin may read, to show a brokered read works.
    Escape {
        /// A pid of the host (the plugin cannot see it).
        host_pid: u32,
        /// A file the profile lets it read.
        grant: String,
    },
}

/// What a plugin answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PluginToHost {
    /// The thumbnail is written.
    Thumbnailed {
        /// Its width in pixels.
        width: u32,
        /// Its height in pixels.
        height: u32,
    },
    /// The job failed (the plugin's own words).
    Failed(String),
    /// The evil plugin is about to try `name` (so the host can tell which attempt a report
    /// belongs to; the plugin's own word, which the host never counts as proof of anything).
    Trying(String),
    /// What the evil plugin says one attempt did (its own word).
    Tried {
        /// The attempt.
        name: String,
        /// What the plugin saw.
        outcome: String,
    },
    /// The evil plugin has tried everything but exhausting memory, which it does next.
    Done,
}
