//! What the shell (broker) and a renderer (sandboxed child) say to each other.
//!
//! Everything a renderer sends is hostile data: the channel caps each message's size and fds, and
//! the shell checks the rest ([`crate::page::check_page`], the screenshot's seals and size).

use browser_render::{Limits, Page};
use serde::{Deserialize, Serialize};

/// Spawn arguments of a renderer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RendererArgs {
    /// The site this renderer serves (`http://host:port`, `file://`, `about:crash`…), for its
    /// own messages only: the broker decides what it may fetch from its profile.
    pub site: String,
    /// The engine's caps.
    pub limits: Limits,
}

/// Shell → renderer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToRenderer {
    /// Fetch `url` through the broker, parse it, fetch its images, lay it out at `width` cells.
    Navigate {
        /// Absolute URL of this renderer's site.
        url: String,
        /// Text width in cells.
        width: u16,
    },
    /// Lay the current document out again at `width` cells (the terminal was resized).
    Relayout {
        /// Text width in cells.
        width: u16,
    },
    /// Rasterise the current page `width_px` wide into a sealed memfd and send it.
    Screenshot {
        /// Width in pixels.
        width_px: u32,
        /// Tallest picture the shell accepts.
        max_height_px: u32,
    },
    /// about:crash: fault on purpose.
    Crash,
    /// about:hang: spin until the broker ends this renderer.
    Hang,
    /// about:escape: try each way out and report what happened.
    Escape {
        /// The broker's pid in the host's PID namespace (the renderer cannot see it).
        broker_pid: i32,
        /// A loopback port nobody granted this renderer (the shell's own pages server).
        loopback_port: u16,
    },
}

/// Renderer → shell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FromRenderer {
    /// The laid-out page.
    Page(Page),
    /// The server answered with a redirect; the shell decides whether and where to follow it.
    Redirect {
        /// The `Location`, resolved against the document's URL.
        to: String,
    },
    /// The navigation failed (network error, denied by the broker, bad answer).
    Failed {
        /// What went wrong, in words.
        reason: String,
    },
    /// The rasterised page, in the sealed memfd attached to this message (RGBA8, `width *
    /// height * 4` bytes).
    Pixels {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// about:escape's findings.
    Escapes(Vec<EscapeAttempt>),
}

/// One escape attempt and what the renderer saw.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EscapeAttempt {
    /// What was tried.
    pub what: String,
    /// What came back.
    pub saw: String,
    /// True when the attempt failed (the renderer judges only its own result; the shell adds
    /// the broker's violation reports).
    pub blocked: bool,
}
