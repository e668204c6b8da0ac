//! The demo browser's engine: HTML bytes in, a laid-out [`Page`] (and, on request, pixels) out.
//!
//! # What it owns
//! - **Parse**: HTML with html5ever (through scraper's tree sink), any bytes accepted (invalid
//!   UTF-8 replaced lossily), cut at [`Limits::max_document_bytes`]; the tree builder's stack of
//!   open elements capped at [`Limits::max_depth`] (deeper start tags are dropped, their text
//!   kept: "flattened").
//! - **Style subset**: `display` from `<style>` blocks and `style=""` by tag, `.class`, `#id`
//!   and compound (`div.note`) selectors in comma lists; the `hidden` attribute; `<script>`,
//!   `<style>`, `<head>`, `<template>`, `<noscript>` never shown.
//! - **Layout**: headings, paragraphs, inline emphasis, nested lists with markers, `pre`
//!   verbatim, tables as `| a | b |` rows, links numbered `[N]`, images as `[image: ALT W×H]`,
//!   whitespace collapsed, word wrap at a width in terminal cells.
//! - **Image decode under limits** ([`decode_image`]): the header's claimed size is checked
//!   before any pixel buffer exists.
//! - **Raster** ([`rasterise`]): tiny-skia + fontdue with an embedded font (DejaVu Sans Mono, a
//!   data file under the Bitstream Vera license, `fonts/DejaVu-LICENSE.txt`; font data, not code).
//!
//! # What it must never do
//! This crate runs inside the sandboxed renderer, on hostile input. It must never do I/O (no
//! files, no sockets, no environment variables: the font is `include_bytes!`), never need a
//! syscall beyond memory allocation (so no `getrandom` either: its maps are B-trees, never
//! `RandomState` hash maps; [`ImageTable`] is the caller's. Checked under strace: parse, decode,
//! layout and rasterise made only `mmap`/`mprotect`), never use `unsafe`, never spawn
//! threads, never recurse in proportion to the input's depth (the walk,
//! the layout and every tree it owns are flat or use an explicit stack; html5ever's and
//! ego-tree's are iterative too), and never allocate in proportion to a size the input *claims*
//! before checking that size against [`Limits`]. Every cap hit shows as a note, never a panic.

#![forbid(unsafe_code)]

mod css;
mod image;
mod layout;
mod parse;
mod raster;
mod text;

use serde::{Deserialize, Serialize};

pub use crate::image::decode_image;
pub use crate::raster::{
    raster_columns, rasterise, Raster, RasterError, MAX_RASTER_BYTES, MAX_RASTER_WIDTH,
    RASTER_CELL_PX, RASTER_LINE_PX, RASTER_MARGIN_PX,
};

/// Hard caps. Every one is checked; hitting one truncates with a visible note, never panics.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Limits {
    /// Input past it is cut, a note line says so. Default 8 MiB.
    pub max_document_bytes: usize,
    /// Elements and texts walked; the rest dropped with a note. Default 500,000.
    pub max_nodes: usize,
    /// Deeper content is flattened (still shown), never recursed. Default 512.
    pub max_depth: usize,
    /// Output lines. Default 200,000.
    pub max_lines: usize,
    /// Bytes of text in the laid-out page (indents and rules included). Default 8 MiB: a page
    /// of nothing but `<hr>`s (4 bytes each, a line of `─` the width long) would otherwise
    /// make 30 bytes of page from each byte of document at 400 columns.
    pub max_page_bytes: usize,
    /// Encoded image size. Default 16 MiB.
    pub max_image_bytes: usize,
    /// Width × height. Default 40,000,000: a 60000×60000 PNG is refused from its header.
    pub max_image_pixels: u64,
    /// Either side. Default 16,384.
    pub max_image_dimension: u32,
    /// Image fetches per page. Default 64.
    pub max_images: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_document_bytes: 8 << 20,
            max_nodes: 500_000,
            max_depth: 512,
            max_lines: 200_000,
            max_page_bytes: 8 << 20,
            max_image_bytes: 16 << 20,
            max_image_pixels: 40_000_000,
            max_image_dimension: 16_384,
            max_images: 64,
        }
    }
}

/// A parsed document: what the renderer keeps between layouts. A flat list of items (no tree:
/// dropping it is a loop, whatever the page's depth).
#[derive(Debug)]
pub struct Document {
    parsed: parse::Parsed,
    limits: Limits,
}

impl Document {
    /// Parses HTML bytes (any encoding: invalid UTF-8 is replaced lossily, never an error).
    /// `base` is the document's absolute URL (for resolving links and image sources).
    pub fn parse(bytes: &[u8], base: &str, limits: &Limits) -> Document {
        Document {
            parsed: parse::parse(bytes, base, limits),
            limits: limits.clone(),
        }
    }

    /// The `<title>`, whitespace collapsed, control characters removed (empty if none).
    pub fn title(&self) -> &str {
        &self.parsed.title
    }

    /// Absolute URLs of the images the page shows (`<img src>`), deduplicated, at most
    /// `max_images`.
    pub fn image_sources(&self) -> Vec<String> {
        self.parsed.images.clone()
    }

    /// Notes about what the parse cut (document size, depth, node count, images over the cap);
    /// every [`Page`] laid out from this document carries them too.
    pub fn notes(&self) -> &[String] {
        &self.parsed.notes
    }

    /// Lays the document out for a text width in cells (columns, below 20 is clamped up to 20).
    /// `images`: what the renderer learned of each image source (missing = not fetched).
    pub fn layout(&self, width: u16, images: &ImageTable) -> Page {
        layout::layout(
            &self.parsed.items,
            &self.parsed.title,
            &self.parsed.notes,
            width,
            images,
            &self.limits,
        )
    }
}

/// What the renderer learned of each image source, by absolute URL.
pub type ImageTable = std::collections::HashMap<String, ImageInfo>;

/// One image's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ImageInfo {
    /// Decoded: its size in pixels and its format (`png`, `jpeg`, ...).
    Decoded {
        width: u32,
        height: u32,
        format: String,
    },
    /// Not shown, and why.
    Failed { reason: String },
}

/// The laid-out page: what the renderer sends the broker (postcard over the channel).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Page {
    pub title: String,
    /// The lines; notes (if any) are also shown as the last lines, `[note: ...]`.
    pub lines: Vec<Line>,
    /// Link targets, absolute URLs; link number N (shown as `[N]`) is `links[N-1]`.
    pub links: Vec<String>,
    /// Notes about what was cut or refused (caps hit, images refused...).
    pub notes: Vec<String>,
}

/// One line of text: spans left to right, leading spaces included (indentation).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Line {
    pub spans: Vec<Span>,
}

/// A run of text in one style. Never holds control characters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Span {
    pub text: String,
    pub style: Style,
}

/// How a span looks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Style {
    pub bold: bool,
    pub italic: bool,
    pub underline: bool,
    pub monospace: bool,
    /// 0 = not a heading, 1..=6.
    pub heading: u8,
    /// The link number (1-based) this span belongs to.
    pub link: Option<u32>,
}

impl Line {
    /// The line's text.
    pub fn text(&self) -> String {
        self.spans.iter().map(|s| s.text.as_str()).collect()
    }
}

impl Page {
    /// Plain text of the page, one line per `Line` (what `--dump` prints).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            for span in &line.spans {
                out.push_str(&span.text);
            }
            out.push('\n');
        }
        out
    }
}
