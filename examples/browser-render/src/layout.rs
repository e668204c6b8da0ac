//! [`Item`]s → lines of styled spans at a width: blocks, lists, tables, `pre`, word wrap.
//!
//! One pass over the items with an explicit stack of open elements (its depth is bounded by
//! `max_depth`: the walk emits no `Open` deeper than that).

use crate::parse::{Block, Inline, Item, MarkerKind};
use crate::text::{is_html_space, is_unshowable, str_width, width};
use crate::{ImageInfo, ImageTable, Limits, Line, Page, Span, Style};

/// Narrowest layout width, in cells.
pub(crate) const MIN_WIDTH: usize = 20;

/// What an open element restores or finishes when it closes.
#[derive(Debug)]
struct Frame {
    block: Block,
    style: Style,
    indent: usize,
    /// Lists: the next item's number.
    counter: i64,
    /// Headings: index of the heading's first line.
    first_line: usize,
}

pub(crate) fn layout(
    items: &[Item],
    title: &str,
    notes: &[String],
    width: u16,
    images: &ImageTable,
    limits: &Limits,
) -> Page {
    let width = usize::from(width).max(MIN_WIDTH);
    let mut b = Builder::new(width, limits.max_lines, limits.max_page_bytes);
    let mut stack: Vec<Frame> = Vec::new();
    let mut style = Style::default();
    let mut links: Vec<String> = Vec::new();
    let mut lists = 0usize;
    let mut cells = 0usize;
    let mut pre = 0usize;

    for item in items {
        if b.full() {
            break;
        }
        match item {
            Item::Text(text) => {
                if pre > 0 {
                    b.pre_text(text, style);
                } else {
                    b.text(text, style);
                }
            }
            Item::Br => {
                if cells > 0 {
                    b.space();
                } else {
                    b.line_break();
                }
            }
            Item::Hr => {
                if cells == 0 {
                    b.block_break(false);
                    let rule = "─".repeat(width.saturating_sub(b.shown_indent()).max(1));
                    b.literal(&rule, Style::default(), false);
                    b.block_break(false);
                }
            }
            Item::Img { src, alt } => {
                let alt = alt
                    .split(is_html_space)
                    .filter(|w| !w.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                let label = if alt.is_empty() {
                    "image".to_owned()
                } else {
                    format!("image: {alt}")
                };
                let shown = match src.as_ref().and_then(|s| images.get(s)) {
                    Some(ImageInfo::Decoded { width, height, .. }) => {
                        format!("[{label} {width}×{height}]")
                    }
                    Some(ImageInfo::Failed { reason }) => format!("[{label} — refused: {reason}]"),
                    None => format!("[{label}]"),
                };
                b.text(&shown, style);
            }
            Item::Control(shown) => b.literal(shown, style, true),
            Item::Open(block) => {
                let mut frame = Frame {
                    block: block.clone(),
                    style,
                    indent: b.indent,
                    counter: 0,
                    first_line: 0,
                };
                match block {
                    Block::Div { blank } => b.block_or_space(*blank, cells),
                    Block::Heading(level) => {
                        b.block_or_space(true, cells);
                        style.bold = true;
                        style.heading = *level;
                        frame.first_line = b.lines.len();
                    }
                    Block::Pre => {
                        b.block_or_space(true, cells);
                        pre += 1;
                        style.monospace = true;
                    }
                    Block::List { start, .. } => {
                        b.block_or_space(lists == 0, cells);
                        let in_item = matches!(
                            stack.last(),
                            Some(Frame {
                                block: Block::ListItem { .. },
                                ..
                            })
                        );
                        if lists > 0 && !in_item {
                            b.indent += 2;
                        }
                        lists += 1;
                        frame.counter = *start;
                    }
                    Block::ListItem { value } => {
                        b.block_or_space(false, cells);
                        let list = stack
                            .iter_mut()
                            .rev()
                            .find(|f| matches!(f.block, Block::List { .. }));
                        let marker = match list {
                            Some(Frame {
                                block:
                                    Block::List {
                                        ordered: true,
                                        reversed,
                                        kind,
                                        ..
                                    },
                                counter,
                                ..
                            }) => {
                                if let Some(v) = value {
                                    *counter = *v;
                                }
                                let n = *counter;
                                *counter = if *reversed {
                                    n.saturating_sub(1)
                                } else {
                                    n.saturating_add(1)
                                };
                                format!("{}. ", ordinal(n, *kind))
                            }
                            _ => "• ".to_owned(),
                        };
                        if cells == 0 {
                            b.marker = Some(marker.clone());
                            b.indent += str_width(&marker);
                        } else {
                            b.literal(marker.trim_end(), style, true);
                        }
                    }
                    Block::Blockquote => {
                        b.block_or_space(true, cells);
                        b.indent += 4;
                    }
                    Block::DefinitionDesc => {
                        b.block_or_space(false, cells);
                        b.indent += 4;
                    }
                    Block::Table => b.block_or_space(true, cells),
                    Block::Row => {
                        b.block_or_space(false, cells);
                        b.literal("|", Style::default(), cells > 0);
                    }
                    Block::Cell { header } => {
                        cells += 1;
                        b.space();
                        if *header {
                            style.bold = true;
                        }
                    }
                    Block::Inline(kind) => match kind {
                        Inline::Plain => {}
                        Inline::Bold => style.bold = true,
                        Inline::Italic => style.italic = true,
                        Inline::Underline => style.underline = true,
                        Inline::Code => style.monospace = true,
                        Inline::Quote => b.glue("“", style),
                        Inline::Bracket => b.glue("[", style),
                    },
                    Block::Link(href) => {
                        if let Some(href) = href {
                            links.push(href.clone());
                            style.link = u32::try_from(links.len()).ok();
                        }
                    }
                }
                stack.push(frame);
            }
            Item::Close => {
                let Some(frame) = stack.pop() else { continue };
                match &frame.block {
                    Block::Div { blank } => b.block_or_space(*blank, cells),
                    Block::Heading(level) => {
                        b.flush_word();
                        if cells == 0 && *level <= 2 {
                            // Underline the heading's lines (setext style): `=` for h1, `-` for h2.
                            b.end_line();
                            let end = b.lines.len();
                            let w = b.lines[frame.first_line.min(end)..end]
                                .iter()
                                .map(|l| l.spans.iter().map(|s| str_width(&s.text)).sum::<usize>())
                                .max()
                                .unwrap_or(0)
                                .saturating_sub(frame.indent.min(width / 2));
                            if w > 0 {
                                let rule = if *level == 1 { "=" } else { "-" }.repeat(w);
                                b.literal(&rule, frame.style, false);
                            }
                        }
                        b.block_or_space(true, cells);
                    }
                    Block::Pre => {
                        pre -= 1;
                        b.block_or_space(true, cells);
                    }
                    Block::List { .. } => {
                        lists -= 1;
                        b.block_or_space(lists == 0, cells);
                    }
                    Block::ListItem { .. } => {
                        if b.marker.is_some() {
                            // An empty item still shows its marker.
                            b.start_line();
                        }
                        b.block_or_space(false, cells);
                    }
                    Block::Blockquote => b.block_or_space(true, cells),
                    Block::DefinitionDesc => b.block_or_space(false, cells),
                    Block::Table => b.block_or_space(true, cells),
                    Block::Row => b.block_or_space(false, cells),
                    Block::Cell { .. } => {
                        cells -= 1;
                        b.literal("|", Style::default(), true);
                    }
                    Block::Inline(Inline::Quote) => b.glue("”", style),
                    Block::Inline(Inline::Bracket) => b.glue("]", style),
                    Block::Inline(_) => {}
                    Block::Link(_) => {
                        if let Some(n) = style.link {
                            b.glue(&format!("[{n}]"), style);
                        }
                    }
                }
                style = frame.style;
                b.indent = frame.indent;
            }
        }
    }
    b.block_break(false);
    let mut notes = notes.to_vec();
    if b.lines.len() >= limits.max_lines {
        notes.push(format!(
            "the page is longer than {} lines; the rest is not shown",
            limits.max_lines
        ));
    } else if b.full() {
        notes.push(format!(
            "the page's text is over {} bytes; the rest is not shown",
            limits.max_page_bytes
        ));
    }
    let mut lines = b.lines;
    if !notes.is_empty() {
        lines.push(Line::default());
        for note in &notes {
            lines.push(Line {
                spans: vec![Span {
                    text: format!("[note: {note}]"),
                    style: Style {
                        italic: true,
                        ..Style::default()
                    },
                }],
            });
        }
    }
    Page {
        title: title.to_owned(),
        lines,
        links,
        notes,
    }
}

/// A list number in its marker style.
fn ordinal(n: i64, kind: MarkerKind) -> String {
    match kind {
        MarkerKind::Bullet | MarkerKind::Decimal => n.to_string(),
        MarkerKind::LowerAlpha | MarkerKind::UpperAlpha if n >= 1 => {
            let mut s = Vec::new();
            let mut n = n;
            while n > 0 {
                n -= 1;
                s.push(b'a' + u8::try_from(n % 26).unwrap_or(0));
                n /= 26;
            }
            s.reverse();
            let s = String::from_utf8(s).unwrap_or_default();
            if kind == MarkerKind::UpperAlpha {
                s.to_ascii_uppercase()
            } else {
                s
            }
        }
        MarkerKind::LowerRoman | MarkerKind::UpperRoman if (1..4000).contains(&n) => {
            const NUMERALS: [(i64, &str); 13] = [
                (1000, "m"),
                (900, "cm"),
                (500, "d"),
                (400, "cd"),
                (100, "c"),
                (90, "xc"),
                (50, "l"),
                (40, "xl"),
                (10, "x"),
                (9, "ix"),
                (5, "v"),
                (4, "iv"),
                (1, "i"),
            ];
            let mut s = String::new();
            let mut n = n;
            for (value, numeral) in NUMERALS {
                while n >= value {
                    s.push_str(numeral);
                    n -= value;
                }
            }
            if kind == MarkerKind::UpperRoman {
                s.to_ascii_uppercase()
            } else {
                s
            }
        }
        _ => n.to_string(),
    }
}

/// Builds lines: a word in progress, the current line, pending space and blank lines.
struct Builder {
    width: usize,
    max_lines: usize,
    /// Most bytes of text in `lines` (indents and rules included).
    max_bytes: usize,
    /// Bytes of text in `lines`.
    bytes: usize,
    lines: Vec<Line>,
    /// The current line and its width in cells (indent included).
    cur: Vec<Span>,
    cur_w: usize,
    /// Whether the current line has begun (indent and marker placed).
    started: bool,
    /// Whether the current line holds content beyond its indent and marker.
    content: bool,
    indent: usize,
    /// A list marker to place at the start of the next line, in the indent.
    marker: Option<String>,
    /// A collapsed space is owed before the next word.
    space: bool,
    /// A blank line is owed before the next line.
    blank: bool,
    word: Vec<Span>,
    word_w: usize,
}

impl Builder {
    fn new(width: usize, max_lines: usize, max_bytes: usize) -> Builder {
        Builder {
            width,
            max_lines,
            max_bytes,
            bytes: 0,
            lines: Vec::new(),
            cur: Vec::new(),
            cur_w: 0,
            started: false,
            content: false,
            indent: 0,
            marker: None,
            space: false,
            blank: false,
            word: Vec::new(),
            word_w: 0,
        }
    }

    /// Whether the page holds `max_lines` lines or `max_page_bytes` of text: the rest is dropped.
    fn full(&self) -> bool {
        self.lines.len() >= self.max_lines || self.bytes >= self.max_bytes
    }

    /// Normal text: whitespace collapses and breaks words.
    fn text(&mut self, text: &str, style: Style) {
        for c in text.chars() {
            if is_html_space(c) {
                self.flush_word();
                self.space = true;
            } else {
                self.push_char(c, style);
            }
        }
    }

    /// Text inside `pre`: kept verbatim (tabs to 8-column stops), broken only at newlines.
    fn pre_text(&mut self, text: &str, style: Style) {
        self.flush_word();
        for c in text.chars() {
            match c {
                '\n' => {
                    self.start_line();
                    self.end_line();
                }
                '\r' => {}
                '\t' => {
                    self.start_line();
                    let col = self.cur_w.saturating_sub(self.shown_indent());
                    let n = 8 - col % 8;
                    self.put(&" ".repeat(n), style, n);
                }
                c if is_unshowable(c) => {}
                c => {
                    self.start_line();
                    let mut buf = [0u8; 4];
                    self.put(c.encode_utf8(&mut buf), style, width(c));
                }
            }
            if self.full() {
                return;
            }
        }
        self.content = true;
    }

    fn push_char(&mut self, c: char, style: Style) {
        if is_unshowable(c) {
            return;
        }
        // A no-break space shows as a space but does not break the word.
        let c = if c == '\u{a0}' { ' ' } else { c };
        self.word_w += width(c);
        match self.word.last_mut() {
            Some(last) if last.style == style => last.text.push(c),
            _ => self.word.push(Span {
                text: c.to_string(),
                style,
            }),
        }
    }

    /// Appends `s` to the word in progress (no break before it): link numbers, quotes.
    fn glue(&mut self, s: &str, style: Style) {
        for c in s.chars() {
            self.push_char(c, style);
        }
    }

    /// An unbreakable atom, after a space when `space_before`.
    fn literal(&mut self, s: &str, style: Style, space_before: bool) {
        self.flush_word();
        self.space = space_before;
        self.glue(s, style);
        self.flush_word();
    }

    /// A collapsible space.
    fn space(&mut self) {
        self.flush_word();
        self.space = true;
    }

    /// Places the word in progress on the current line, wrapping first if it does not fit.
    fn flush_word(&mut self) {
        if self.word.is_empty() {
            return;
        }
        let word = std::mem::take(&mut self.word);
        let w = std::mem::take(&mut self.word_w);
        let gap = usize::from(self.space && self.content);
        if self.content && self.cur_w + gap + w > self.width {
            self.end_line();
        }
        self.start_line();
        if self.space && self.content {
            self.put(
                " ",
                Style {
                    link: word[0]
                        .style
                        .link
                        .filter(|_| self.last_link() == word[0].style.link),
                    ..Style::default()
                },
                1,
            );
        }
        self.space = false;
        let room = self.width.saturating_sub(self.shown_indent()).max(1);
        if w <= room || self.cur_w + w <= self.width {
            for span in word {
                self.put(&span.text, span.style, str_width(&span.text));
            }
        } else {
            // Longer than a line: break it at the width, character by character.
            for span in word {
                for c in span.text.chars() {
                    let cw = width(c);
                    if self.content && self.cur_w + cw > self.width {
                        self.end_line();
                        self.start_line();
                    }
                    let mut buf = [0u8; 4];
                    self.put(c.encode_utf8(&mut buf), span.style, cw);
                    self.content = true;
                }
            }
        }
        self.content = true;
    }

    /// The indent lines get: deep nesting stops indenting at half the width, so text always
    /// keeps room.
    fn shown_indent(&self) -> usize {
        self.indent.min(self.width / 2)
    }

    fn last_link(&self) -> Option<u32> {
        self.cur.last().and_then(|s| s.style.link)
    }

    /// Appends text to the current line, merging with the last span of the same style.
    fn put(&mut self, s: &str, style: Style, w: usize) {
        self.cur_w += w;
        match self.cur.last_mut() {
            Some(last) if last.style == style => last.text.push_str(s),
            _ => self.cur.push(Span {
                text: s.to_owned(),
                style,
            }),
        }
    }

    /// Begins the current line if it has not begun: the owed blank line, the indent, the marker.
    fn start_line(&mut self) {
        if self.started {
            return;
        }
        if self.blank && self.lines.last().is_some_and(|l| !l.spans.is_empty()) {
            self.push_line(Line::default());
        }
        self.blank = false;
        self.started = true;
        let marker = self.marker.take();
        let marker_w = marker.as_deref().map_or(0, str_width);
        let pad = self.shown_indent().saturating_sub(marker_w);
        if pad > 0 {
            self.put(&" ".repeat(pad), Style::default(), pad);
        }
        if let Some(m) = marker {
            self.put(&m, Style::default(), marker_w);
        }
    }

    /// Ends the current line (if begun).
    fn end_line(&mut self) {
        if !self.started {
            return;
        }
        let mut spans = std::mem::take(&mut self.cur);
        // Trailing spaces are not content.
        while let Some(last) = spans.last_mut() {
            let trimmed = last.text.trim_end_matches(' ').len();
            last.text.truncate(trimmed);
            if last.text.is_empty() {
                spans.pop();
            } else {
                break;
            }
        }
        self.push_line(Line { spans });
        self.cur_w = 0;
        self.started = false;
        self.content = false;
    }

    fn push_line(&mut self, line: Line) {
        if !self.full() {
            self.bytes = self
                .bytes
                .saturating_add(line.spans.iter().map(|s| s.text.len()).sum());
            self.lines.push(line);
        }
    }

    /// `<br>`: ends the line; on an empty line, an empty line.
    fn line_break(&mut self) {
        self.flush_word();
        self.space = false;
        self.start_line();
        self.end_line();
    }

    /// A block boundary: ends the line; a blank line is owed before the next when `blank`.
    fn block_break(&mut self, blank: bool) {
        self.flush_word();
        self.end_line();
        self.space = false;
        self.blank |= blank;
    }

    /// A block boundary, or only a space inside a table cell (cells keep their row on one line).
    fn block_or_space(&mut self, blank: bool, cells: usize) {
        if cells > 0 {
            self.space();
        } else {
            self.block_break(blank);
        }
    }
}
