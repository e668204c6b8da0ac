//! # browser-shell — a terminal browser built on Portcullis
//!
//! Run: `scripts/demo.sh`, or `cargo run --release -p browser-shell` (as root, or as any user on
//! a host with unprivileged user namespaces). Headless: `browser-shell --dump URL`,
//! `browser-shell --screenshot URL OUT.png`.
//!
//! Shows the Chromium process model in a terminal. The shell (this process) is the **broker**:
//! tabs, history, policy, fetching, the UI. Each site — scheme, host and port — gets its own
//! **renderer**, a sandboxed child started through the zygote with a profile built from the
//! policy (`policy.toml`, embedded): it may fetch from its own site only, or read beneath the one
//! directory given with `--files`, and nothing else. The renderer parses and lays out pages with
//! the engine (`browser_render`); it has no filesystem and no network of its own.
//!
//! Owns: the renderer entry function ([`renderer`]), what shell and renderer say to each other
//! ([`protocol`]), the per-site profile ([`site`]), the broker-side core ([`shell`]: navigation,
//! screenshots, about: pages), the bundled pages server ([`pages`]) and the terminal UI ([`tui`]).
//!
//! Must never: trust what a renderer sends (every page is cut to the caps and cleaned of control
//! characters, every screenshot fd is checked for its seals and size), wait for a renderer without
//! a deadline, block the UI thread on a renderer, or grant a renderer more than its own site.

pub mod escape;
pub mod page;
pub mod pages;
pub mod procfs;
pub mod protocol;
pub mod renderer;
pub mod shell;
pub mod site;
mod sys;
pub mod tui;

pub use shell::{entries, Loaded, NavError, Renderer, Shell, ShellConfig};
