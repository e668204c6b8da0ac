//! Pages as the shell sees them: the checks it applies to what a renderer sent (hostile data),
//! and the pages the shell writes itself (about: pages, error and sad-tab pages).

use browser_render::{Line, Page, Span, Style};

/// Most bytes of text (spans, links, notes, title) a page may carry. The channel's own cap is
/// 16 MiB per message; a renderer cuts its page to this before sending, and the shell cuts again.
pub const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;
/// Most lines a page may have.
pub const MAX_LINES: usize = 200_000;
/// Most spans in one line.
pub const MAX_SPANS_PER_LINE: usize = 1_024;
/// Most links a page may number.
pub const MAX_LINKS: usize = 50_000;
/// Longest link target kept.
pub const MAX_LINK_BYTES: usize = 4_096;
/// Most notes kept.
pub const MAX_NOTES: usize = 64;
/// Longest title or note kept.
pub const MAX_SHORT_TEXT: usize = 1_024;

/// Cuts `page` so it holds at most `max_bytes` of text and the caps above, adding a note when
/// something was cut. Used by the renderer before it sends (to fit the channel) and by the shell
/// after it receives (a renderer need not have done it).
pub fn fit_page(page: &mut Page, max_bytes: usize) {
    let mut cut = Vec::new();
    cut_string(&mut page.title, MAX_SHORT_TEXT);
    if page.notes.len() > MAX_NOTES {
        page.notes.truncate(MAX_NOTES);
        cut.push("notes");
    }
    for note in &mut page.notes {
        cut_string(note, MAX_SHORT_TEXT);
    }
    if page.links.len() > MAX_LINKS {
        page.links.truncate(MAX_LINKS);
        cut.push("links");
    }
    for link in &mut page.links {
        if link.len() > MAX_LINK_BYTES {
            // A cut URL is a wrong URL: make it one nobody can follow.
            link.clear();
        }
    }
    let mut budget = max_bytes
        .saturating_sub(page.title.len())
        .saturating_sub(page.links.iter().map(String::len).sum::<usize>())
        .saturating_sub(page.notes.iter().map(String::len).sum::<usize>());
    let mut keep = page.lines.len().min(MAX_LINES);
    if keep < page.lines.len() {
        cut.push("lines");
    }
    for (i, line) in page.lines.iter_mut().enumerate().take(keep) {
        if line.spans.len() > MAX_SPANS_PER_LINE {
            line.spans.truncate(MAX_SPANS_PER_LINE);
        }
        let bytes: usize = line.spans.iter().map(|s| s.text.len() + 8).sum::<usize>() + 8;
        if bytes > budget {
            keep = i;
            cut.push("text");
            break;
        }
        budget -= bytes;
    }
    page.lines.truncate(keep);
    let links = u32::try_from(page.links.len()).unwrap_or(u32::MAX);
    for span in page.lines.iter_mut().flat_map(|l| l.spans.iter_mut()) {
        // A span pointing at a link that does not exist points nowhere.
        if span.style.link.is_some_and(|n| n == 0 || n > links) {
            span.style.link = None;
        }
        span.style.heading = span.style.heading.min(6);
    }
    if !cut.is_empty() {
        page.notes.push(format!(
            "the page was cut at the shell's caps ({})",
            cut.join(", ")
        ));
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn cut_string(s: &mut String, max: usize) {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
}

/// Replaces control characters (escape sequences a renderer could aim at the terminal) with
/// visible ones: tab becomes spaces, anything else U+FFFD.
pub fn clean_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' => out.push_str("    "),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Checks and cleans a page a renderer sent: caps, control characters, link numbers.
pub fn check_page(mut page: Page) -> Page {
    fit_page(&mut page, MAX_PAGE_BYTES);
    page.title = clean_text(&page.title);
    for note in &mut page.notes {
        *note = clean_text(note);
    }
    for span in page.lines.iter_mut().flat_map(|l| l.spans.iter_mut()) {
        if span.text.chars().any(char::is_control) {
            span.text = clean_text(&span.text);
        }
    }
    page
}

/// Builds pages line by line (the shell's own pages).
#[derive(Debug, Default)]
pub struct PageBuilder {
    page: Page,
}

impl PageBuilder {
    /// A page titled `title`, starting with the title as a heading.
    pub fn new(title: &str) -> Self {
        let mut b = PageBuilder::default();
        b.page.title = title.to_owned();
        b.heading(title);
        b
    }

    /// A level-1 heading and a blank line.
    pub fn heading(&mut self, text: &str) -> &mut Self {
        self.styled(
            text,
            Style {
                bold: true,
                heading: 1,
                ..Style::default()
            },
        );
        self.blank()
    }

    /// A level-2 heading after a blank line.
    pub fn subheading(&mut self, text: &str) -> &mut Self {
        self.blank();
        self.styled(
            text,
            Style {
                bold: true,
                heading: 2,
                ..Style::default()
            },
        )
    }

    /// A plain line.
    pub fn line(&mut self, text: &str) -> &mut Self {
        self.styled(text, Style::default())
    }

    /// A monospace line.
    pub fn mono(&mut self, text: &str) -> &mut Self {
        self.styled(
            text,
            Style {
                monospace: true,
                ..Style::default()
            },
        )
    }

    /// A line in `style`.
    pub fn styled(&mut self, text: &str, style: Style) -> &mut Self {
        self.page.lines.push(Line {
            spans: vec![Span {
                text: text.to_owned(),
                style,
            }],
        });
        self
    }

    /// A line holding a numbered link to `url`: `text [N]`.
    pub fn link(&mut self, prefix: &str, text: &str, url: &str) -> &mut Self {
        self.page.links.push(url.to_owned());
        let n = u32::try_from(self.page.links.len()).unwrap_or(u32::MAX);
        self.page.lines.push(Line {
            spans: vec![
                Span {
                    text: prefix.to_owned(),
                    style: Style::default(),
                },
                Span {
                    text: format!("{text} [{n}]"),
                    style: Style {
                        underline: true,
                        link: Some(n),
                        ..Style::default()
                    },
                },
            ],
        });
        self
    }

    /// An empty line.
    pub fn blank(&mut self) -> &mut Self {
        self.page.lines.push(Line::default());
        self
    }

    /// The page.
    pub fn build(&mut self) -> Page {
        std::mem::take(&mut self.page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, link: Option<u32>) -> Line {
        Line {
            spans: vec![Span {
                text: text.into(),
                style: Style {
                    link,
                    heading: 9,
                    ..Style::default()
                },
            }],
        }
    }

    #[test]
    fn a_page_over_the_caps_is_cut_with_a_note() {
        let mut page = Page {
            lines: (0..1000).map(|_| line(&"x".repeat(100), None)).collect(),
            ..Page::default()
        };
        fit_page(&mut page, 10_000);
        assert!(page.lines.len() < 100);
        assert!(page.notes.last().unwrap().contains("cut"));
    }

    #[test]
    fn link_numbers_past_the_links_and_headings_past_6_are_dropped() {
        let page = check_page(Page {
            lines: vec![line("a", Some(1)), line("b", Some(2)), line("c", Some(0))],
            links: vec!["http://a/".into()],
            ..Page::default()
        });
        let links: Vec<_> = page.lines.iter().map(|l| l.spans[0].style.link).collect();
        assert_eq!(links, [Some(1), None, None]);
        assert!(page.lines.iter().all(|l| l.spans[0].style.heading == 6));
        assert!(page.notes.is_empty());
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let page = check_page(Page {
            title: "t\u{1b}]0;owned\u{7}".into(),
            lines: vec![line("\u{1b}[2Jclear\tx", None)],
            notes: vec!["\r".into()],
            ..Page::default()
        });
        assert!(!page.title.chars().any(char::is_control));
        assert_eq!(page.lines[0].spans[0].text, "\u{FFFD}[2Jclear    x");
        assert_eq!(page.notes[0], "\u{FFFD}");
    }

    #[test]
    fn cut_string_respects_char_boundaries() {
        let mut s = "ééé".to_owned();
        cut_string(&mut s, 3);
        assert_eq!(s, "é");
    }
}
