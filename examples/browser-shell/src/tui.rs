//! The terminal UI (ratatui + crossterm): tab bar, address bar, the page, a status line with the
//! tab's renderer pid and sandbox state, and a help bar.
//!
//! Threads: the UI thread only draws and handles keys; it never waits for a renderer. Each tab
//! has a worker thread that owns the tab's renderer and performs its navigations
//! ([`Shell::navigate`]), sending results back over a crossbeam channel; a key reader thread
//! sends terminal events over the same channel. A newer request supersedes an older one (results
//! carry a sequence number), so a slow page never holds the UI.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use browser_render::Page;
use crossbeam_channel::{unbounded, Receiver, Sender};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::{DefaultTerminal, Frame};

use crate::page::PageBuilder;
use crate::shell::{Loaded, NavError, Renderer, Shell};

/// What a tab's worker is asked to do.
#[derive(Debug)]
enum Command {
    Navigate { url: String, width: u16, seq: u64 },
    Relayout { width: u16, seq: u64 },
}

/// What arrives at the UI thread.
#[derive(Debug)]
enum Event2 {
    Input(Event),
    InputGone,
    Done {
        tab: u64,
        seq: u64,
        relayout: bool,
        result: Box<Result<Loaded, NavError>>,
    },
}

/// A tab's worker: owns the tab's renderer (one site at a time) until the tab closes.
fn worker(shell: Arc<Shell>, tab: u64, commands: Receiver<Command>, events: Sender<Event2>) {
    let mut slot: Option<Renderer> = None;
    while let Ok(mut command) = commands.recv() {
        // Only the newest of what queued up matters.
        while let Ok(newer) = commands.try_recv() {
            command = newer;
        }
        let (seq, relayout, result) = match command {
            Command::Navigate { url, width, seq } => {
                (seq, false, shell.navigate(&mut slot, &url, width))
            }
            Command::Relayout { width, seq } => {
                let pid = slot.as_ref().map(Renderer::pid);
                let result = shell.relayout(&mut slot, width).map(|page| Loaded {
                    page,
                    url: String::new(),
                    pid,
                });
                (seq, true, result)
            }
        };
        let done = Event2::Done {
            tab,
            seq,
            relayout,
            result: Box::new(result),
        };
        if events.send(done).is_err() {
            break;
        }
    }
}

#[derive(Debug)]
struct Tab {
    id: u64,
    commands: Sender<Command>,
    url: String,
    page: Page,
    /// The renderer is gone (sad tab).
    sad: bool,
    loading: bool,
    /// The page came from a renderer (a relayout can be asked).
    rendered: bool,
    scroll: usize,
    history: Vec<String>,
    position: usize,
    pid: Option<u32>,
    sandbox: String,
    seq: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum Mode {
    Normal,
    Address(String),
    Link(String),
}

struct App {
    shell: Arc<Shell>,
    tabs: Vec<Tab>,
    active: usize,
    next_id: u64,
    mode: Mode,
    help: bool,
    width: u16,
    height: u16,
    events: Sender<Event2>,
    message: String,
}

/// Runs the browser in this terminal until the user quits.
pub fn run(shell: Shell, first: &str) -> anyhow::Result<()> {
    let (events, incoming) = unbounded();
    let reader = events.clone();
    std::thread::Builder::new()
        .name("keys".into())
        .spawn(move || loop {
            match event::read() {
                Ok(e) => {
                    if reader.send(Event2::Input(e)).is_err() {
                        break;
                    }
                }
                Err(_) => {
                    let _ = reader.send(Event2::InputGone);
                    break;
                }
            }
        })
        .context("start the key reader")?;
    let mut terminal = ratatui::init();
    let size = terminal.size().unwrap_or_default();
    let mut app = App {
        shell: Arc::new(shell),
        tabs: Vec::new(),
        active: 0,
        next_id: 1,
        mode: Mode::Normal,
        help: false,
        width: size.width,
        height: size.height,
        events,
        message: String::new(),
    };
    app.new_tab(first);
    let result = app.main_loop(&mut terminal, &incoming);
    ratatui::restore();
    // The tabs' workers end when their command channels close; each drops its renderer.
    drop(app);
    result
}

impl App {
    fn content_width(&self) -> u16 {
        self.width.max(20)
    }

    fn content_height(&self) -> usize {
        usize::from(self.height.saturating_sub(4)).max(1)
    }

    fn new_tab(&mut self, url: &str) {
        let (commands, rx) = unbounded();
        let id = self.next_id;
        self.next_id += 1;
        let shell = Arc::clone(&self.shell);
        let events = self.events.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("tab-{id}"))
            .spawn(move || worker(shell, id, rx, events));
        if let Err(e) = spawned {
            self.message = format!("could not open a tab: {e}");
            return;
        }
        self.tabs.push(Tab {
            id,
            commands,
            url: url.to_owned(),
            page: Page::default(),
            sad: false,
            loading: false,
            rendered: false,
            scroll: 0,
            history: Vec::new(),
            position: 0,
            pid: None,
            sandbox: String::new(),
            seq: 0,
        });
        self.active = self.tabs.len() - 1;
        self.open(url, true);
    }

    /// Loads `url` in the active tab; `record` adds it to the tab's history.
    fn open(&mut self, url: &str, record: bool) {
        let width = self.content_width();
        let Some(tab) = self.tabs.get_mut(self.active) else {
            return;
        };
        if record {
            tab.history.truncate(tab.position + 1);
            tab.history.push(url.to_owned());
            tab.position = tab.history.len() - 1;
        }
        tab.seq += 1;
        tab.loading = true;
        tab.url = url.to_owned();
        let _ = tab.commands.send(Command::Navigate {
            url: url.to_owned(),
            width,
            seq: tab.seq,
        });
    }

    fn main_loop(
        &mut self,
        terminal: &mut DefaultTerminal,
        incoming: &Receiver<Event2>,
    ) -> anyhow::Result<()> {
        loop {
            terminal.draw(|frame| self.draw(frame))?;
            let Ok(event) = incoming.recv_timeout(Duration::from_millis(500)) else {
                continue;
            };
            match event {
                Event2::Input(Event::Key(key)) if key.kind != KeyEventKind::Release => {
                    if !self.key(key) {
                        return Ok(());
                    }
                }
                Event2::Input(Event::Resize(w, h)) => {
                    self.width = w;
                    self.height = h;
                    self.relayout_all();
                }
                Event2::Input(_) => {}
                Event2::InputGone => return Ok(()),
                Event2::Done {
                    tab,
                    seq,
                    relayout,
                    result,
                } => self.done(tab, seq, relayout, *result),
            }
        }
    }

    fn relayout_all(&mut self) {
        let width = self.content_width();
        for tab in &mut self.tabs {
            if tab.rendered && !tab.sad {
                tab.seq += 1;
                let _ = tab.commands.send(Command::Relayout {
                    width,
                    seq: tab.seq,
                });
            }
        }
    }

    fn done(&mut self, id: u64, seq: u64, relayout: bool, result: Result<Loaded, NavError>) {
        let Some(tab) = self.tabs.iter_mut().find(|t| t.id == id) else {
            return;
        };
        if seq != tab.seq {
            return;
        }
        tab.loading = false;
        match result {
            Ok(loaded) => {
                if !relayout {
                    tab.scroll = 0;
                    if !loaded.url.is_empty() {
                        tab.url = loaded.url.clone();
                        if let Some(entry) = tab.history.get_mut(tab.position) {
                            entry.clone_from(&loaded.url);
                        }
                    }
                }
                tab.page = loaded.page;
                tab.sad = false;
                tab.rendered = loaded.pid.is_some();
                tab.pid = loaded.pid;
                tab.sandbox = loaded.pid.map(Shell::sandbox_summary).unwrap_or_default();
            }
            Err(e) if e.renderer_gone() => {
                tab.sad = true;
                tab.rendered = false;
                tab.pid = None;
                tab.scroll = 0;
                tab.page = sad_page(&tab.url, &e);
            }
            Err(e) => {
                tab.rendered = false;
                tab.scroll = 0;
                tab.page = error_page(&tab.url, &e);
            }
        }
    }

    /// Handles a key; false means quit.
    fn key(&mut self, key: KeyEvent) -> bool {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return false;
        }
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Address(mut text) => {
                match key.code {
                    KeyCode::Enter => {
                        if !text.trim().is_empty() {
                            self.open(text.trim(), true);
                        }
                    }
                    KeyCode::Esc => {}
                    KeyCode::Backspace => {
                        text.pop();
                        self.mode = Mode::Address(text);
                    }
                    KeyCode::Char(c) => {
                        if text.len() < 4096 {
                            text.push(c);
                        }
                        self.mode = Mode::Address(text);
                    }
                    _ => self.mode = Mode::Address(text),
                }
                return true;
            }
            Mode::Link(mut digits) => {
                match key.code {
                    KeyCode::Enter => self.follow(&digits),
                    KeyCode::Esc => {}
                    KeyCode::Backspace => {
                        digits.pop();
                        self.mode = Mode::Link(digits);
                    }
                    KeyCode::Char(c) if c.is_ascii_digit() && digits.len() < 6 => {
                        digits.push(c);
                        self.mode = Mode::Link(digits);
                    }
                    _ => self.mode = Mode::Link(digits),
                }
                return true;
            }
            Mode::Normal => {}
        }
        if self.help {
            self.help = false;
            return key.code != KeyCode::Char('q');
        }
        let page_height = self.content_height();
        match key.code {
            KeyCode::Char('q') => return false,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('g' | 'o') => self.mode = Mode::Address(String::new()),
            KeyCode::Char('f') => self.mode = Mode::Link(String::new()),
            KeyCode::Char(c) if c.is_ascii_digit() => self.mode = Mode::Link(c.to_string()),
            KeyCode::Char('t') => self.new_tab("about:home"),
            KeyCode::Char('w') => {
                if self.tabs.len() <= 1 {
                    return false;
                }
                self.tabs.remove(self.active);
                self.active = self.active.min(self.tabs.len() - 1);
            }
            KeyCode::Tab => self.active = (self.active + 1) % self.tabs.len().max(1),
            KeyCode::BackTab => {
                self.active = (self.active + self.tabs.len().max(1) - 1) % self.tabs.len().max(1);
            }
            KeyCode::Char('b') | KeyCode::Left | KeyCode::Backspace => self.go(-1),
            KeyCode::Right => self.go(1),
            KeyCode::Char('r') | KeyCode::F(5) => {
                if let Some(url) = self.tabs.get(self.active).map(|t| t.url.clone()) {
                    self.open(&url, false);
                }
            }
            KeyCode::Down | KeyCode::Char('j') => self.scroll(1),
            KeyCode::Up | KeyCode::Char('k') => self.scroll(-1),
            KeyCode::PageDown | KeyCode::Char(' ') => {
                self.scroll(isize::try_from(page_height).unwrap_or(1));
            }
            KeyCode::PageUp => self.scroll(-isize::try_from(page_height).unwrap_or(1)),
            KeyCode::Home => self.scroll(isize::MIN / 2),
            KeyCode::End => self.scroll(isize::MAX / 2),
            _ => {}
        }
        true
    }

    fn follow(&mut self, digits: &str) {
        let Some(tab) = self.tabs.get(self.active) else {
            return;
        };
        let target = digits
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| tab.page.links.get(i))
            .filter(|l| !l.is_empty())
            .cloned();
        match target {
            Some(url) => {
                self.message.clear();
                self.open(&url, true);
            }
            None => self.message = format!("no link [{digits}] on this page"),
        }
    }

    fn go(&mut self, step: isize) {
        let Some(tab) = self.tabs.get_mut(self.active) else {
            return;
        };
        let Some(position) = tab.position.checked_add_signed(step) else {
            return;
        };
        if let Some(url) = tab.history.get(position).cloned() {
            tab.position = position;
            self.open(&url, false);
        }
    }

    fn scroll(&mut self, by: isize) {
        let height = self.content_height();
        if let Some(tab) = self.tabs.get_mut(self.active) {
            let max = tab.page.lines.len().saturating_sub(height);
            tab.scroll = tab.scroll.saturating_add_signed(by).min(max);
        }
    }

    fn draw(&self, frame: &mut Frame) {
        let [tabs, address, content, status, help] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        frame.render_widget(Paragraph::new(self.tab_bar()), tabs);
        let Some(tab) = self.tabs.get(self.active) else {
            return;
        };
        let address_line = match &self.mode {
            Mode::Address(text) => Line::from(vec![
                Span::styled(" Go to: ", Style::new().bold().fg(Color::Yellow)),
                Span::raw(format!("{text}_")),
            ]),
            Mode::Link(digits) => Line::from(vec![
                Span::styled(" Follow link: ", Style::new().bold().fg(Color::Yellow)),
                Span::raw(format!("[{digits}_]")),
            ]),
            Mode::Normal => Line::from(vec![
                Span::styled(" URL: ", Style::new().bold()),
                Span::raw(tab.url.clone()),
                Span::styled(
                    if tab.loading { "  (loading…)" } else { "" },
                    Style::new().fg(Color::Yellow),
                ),
            ]),
        };
        frame.render_widget(
            Paragraph::new(address_line).style(Style::new().bg(Color::DarkGray)),
            address,
        );
        let lines: Vec<Line> = tab
            .page
            .lines
            .iter()
            .skip(tab.scroll)
            .take(usize::from(content.height))
            .map(to_line)
            .collect();
        frame.render_widget(Paragraph::new(lines), content);
        let status_text = if !self.message.is_empty() {
            format!(" {}", self.message)
        } else if let Some(pid) = tab.pid {
            format!(
                " tab {}/{} · renderer pid {pid} · {}",
                self.active + 1,
                self.tabs.len(),
                tab.sandbox
            )
        } else if tab.sad {
            format!(
                " tab {}/{} · renderer gone · r reloads with a fresh one",
                self.active + 1,
                self.tabs.len()
            )
        } else {
            format!(
                " tab {}/{} · no renderer (page written by the shell)",
                self.active + 1,
                self.tabs.len()
            )
        };
        frame.render_widget(
            Paragraph::new(status_text).style(Style::new().bg(Color::Blue).fg(Color::White)),
            status,
        );
        frame.render_widget(
            Paragraph::new(
                " g open · 1-9⏎ link · t new tab · w close · Tab/⇧Tab switch · b/← back · → fwd · r reload · ↑↓ PgUp PgDn scroll · ? help · q quit",
            )
            .style(Style::new().fg(Color::Gray)),
            help,
        );
        if self.help {
            draw_help(frame, content);
        }
    }

    fn tab_bar(&self) -> Line<'static> {
        let mut spans = Vec::new();
        for (i, tab) in self.tabs.iter().enumerate() {
            let title = if tab.sad {
                "☹ renderer gone".to_owned()
            } else if tab.loading {
                "loading…".to_owned()
            } else if tab.page.title.is_empty() {
                tab.url.clone()
            } else {
                tab.page.title.clone()
            };
            let title: String = title.chars().take(24).collect();
            let style = if i == self.active {
                Style::new().bold().fg(Color::Black).bg(Color::White)
            } else {
                Style::new().fg(Color::Gray)
            };
            spans.push(Span::styled(format!(" {}:{title} ", i + 1), style));
            spans.push(Span::raw("│"));
        }
        Line::from(spans)
    }
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let text = [
        "g / o        open a URL (about:sandbox, about:crash, about:hang, about:escape, home)",
        "1-9 … Enter  follow link [N]  (or f, the number, Enter)",
        "t            new tab            w   close tab",
        "Tab / ⇧Tab   next / previous tab",
        "b / ←        back               →   forward",
        "r / F5       reload (a crashed tab gets a fresh renderer)",
        "↑ ↓ j k      scroll             PgUp PgDn Space Home End",
        "q            quit               ?   this help (any key closes it)",
        "",
        "Each site runs in its own sandboxed renderer process; the status line shows the",
        "tab's renderer pid and its sandbox state read from /proc.",
    ];
    let width = area.width.min(92);
    let height = area.height.min(u16::try_from(text.len()).unwrap_or(0) + 2);
    let x = area.x + (area.width - width) / 2;
    let y = area.y + (area.height - height) / 2;
    let rect = Rect::new(x, y, width, height);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(text.iter().map(|l| Line::from(*l)).collect::<Vec<_>>())
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" Help ")),
        rect,
    );
}

fn to_line(line: &browser_render::Line) -> Line<'static> {
    Line::from(
        line.spans
            .iter()
            .map(|span| {
                let s = span.style;
                let mut style = Style::new();
                if s.heading > 0 {
                    style = style.fg(Color::Yellow).add_modifier(Modifier::BOLD);
                }
                if s.bold {
                    style = style.add_modifier(Modifier::BOLD);
                }
                if s.italic {
                    style = style.add_modifier(Modifier::ITALIC);
                }
                if s.underline {
                    style = style.add_modifier(Modifier::UNDERLINED);
                }
                if s.monospace {
                    style = style.fg(Color::Green);
                }
                if s.link.is_some() {
                    style = style.fg(Color::Cyan).add_modifier(Modifier::UNDERLINED);
                }
                Span::styled(span.text.clone(), style)
            })
            .collect::<Vec<_>>(),
    )
}

fn sad_page(url: &str, e: &NavError) -> Page {
    let mut b = PageBuilder::new("☹ Aw, snap! This tab's renderer is gone");
    b.line(&format!("While loading {url}:"));
    b.blank();
    b.styled(
        &format!("Reason: {e}"),
        browser_render::Style {
            bold: true,
            ..Default::default()
        },
    );
    b.blank();
    b.line("Only this tab's renderer process ended; the shell (the broker) and every other tab");
    b.line("carry on. Press r to reload with a fresh renderer, or b to go back.");
    b.build()
}

fn error_page(url: &str, e: &NavError) -> Page {
    let title = if e.is_denial() {
        "The broker refused this request"
    } else {
        "This page could not be loaded"
    };
    let mut b = PageBuilder::new(title);
    b.line(&format!("URL: {url}"));
    b.blank();
    b.styled(
        &e.to_string(),
        browser_render::Style {
            bold: true,
            ..Default::default()
        },
    );
    b.blank();
    b.line("A renderer may fetch from its own site only (scheme, host and port); loopback and");
    b.line("private addresses need --allow-origin; file:// needs --files DIR.");
    b.build()
}
