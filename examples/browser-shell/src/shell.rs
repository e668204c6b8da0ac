//! The shell's core, on the broker side: one renderer per site, navigation, screenshots, and the
//! bookkeeping about:sandbox shows. The TUI, `--dump`, `--screenshot` and the benchmark all go
//! through [`Shell::navigate`].
//!
//! Every call that waits for a renderer has a deadline; a renderer that stops answering is
//! killed and its end is reported. Whatever a renderer sends is checked before it is used.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use browser_render::{Limits, Page};
use portcullis::{
    AuditRecord, AuditSink, Broker, BrokerConfig, Child, ChildEnd, ChildError, Entries,
    SpawnOptions, StartError,
};

use crate::page::{check_page, clean_text, PageBuilder};
use crate::protocol::{FromRenderer, RendererArgs, ToRenderer};
use crate::site::{Grants, Site};

/// A renderer's typed channel.
pub type RendererChild = Child<ToRenderer, FromRenderer>;

/// The entry functions every run of this binary registers (the zygote re-executes it).
pub fn entries() -> Entries {
    Entries::new().register("renderer", crate::renderer::renderer)
}

/// Widest screenshot, in pixels.
pub const MAX_SCREENSHOT_WIDTH: u32 = 4_096;
/// Largest screenshot, in bytes of RGBA.
pub const MAX_SCREENSHOT_BYTES: u64 = 64 * 1024 * 1024;
/// Redirects followed across sites before giving up.
const MAX_REDIRECTS: usize = 8;

/// Why a navigation produced no page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NavError {
    /// The URL is not one the shell can load.
    #[error("bad URL: {0}")]
    BadUrl(String),
    /// The renderer reported a failure (network error, denied by the broker's policy).
    #[error("{0}")]
    Failed(String),
    /// The renderer ended (crashed, was killed by the sandbox, hit a limit).
    #[error("the renderer ended: {0}")]
    RendererEnded(String),
    /// The renderer did not answer in time and was killed.
    #[error("the renderer did not answer within {0:?} and was killed")]
    TimedOut(Duration),
    /// The renderer sent something it must not; it was killed.
    #[error("the renderer misbehaved and was killed: {0}")]
    Hostile(String),
    /// A renderer could not be started.
    #[error("could not start a renderer: {0}")]
    Spawn(String),
}

impl NavError {
    /// True when the renderer is gone (the tab shows a sad-tab page).
    pub fn renderer_gone(&self) -> bool {
        matches!(
            self,
            NavError::RendererEnded(_) | NavError::TimedOut(_) | NavError::Hostile(_)
        )
    }

    /// True when the broker's policy refused the request.
    pub fn is_denial(&self) -> bool {
        matches!(self, NavError::Failed(reason) if reason.starts_with("denied by policy"))
    }
}

/// Brokered requests of each child, counted from the audit log.
#[derive(Debug, Default)]
pub struct RequestCounts {
    counts: Mutex<HashMap<u64, (u64, u64)>>,
}

impl RequestCounts {
    fn record(&self, record: &AuditRecord) {
        // Seccomp violations are audited too (op "syscall"); they are counted by the
        // supervisor (`Child::violations`), not here.
        if record.op == "syscall" {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = counts.entry(record.child).or_default();
        if record.decision == "deny" {
            entry.1 += 1;
        } else {
            entry.0 += 1;
        }
    }

    /// (allowed, denied) for child `id`.
    pub fn of(&self, id: u64) -> (u64, u64) {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .copied()
            .unwrap_or_default()
    }

    fn forget(&self, id: u64) {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
}

/// A live renderer, as about:sandbox lists it.
#[derive(Debug)]
struct Tracked {
    pid: u32,
    kind: String,
    site: String,
    child: Weak<RendererChild>,
}

type Registry = Arc<Mutex<BTreeMap<u64, Tracked>>>;

/// One site's renderer process. Dropping it kills the process.
#[derive(Debug)]
pub struct Renderer {
    child: Arc<RendererChild>,
    site: Site,
    registry: Registry,
    counts: Arc<RequestCounts>,
}

impl Renderer {
    /// The renderer's pid (in the broker's PID namespace).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The site it serves.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// Its channel.
    pub fn child(&self) -> &RendererChild {
        &self.child
    }
}

impl Drop for Renderer {
    fn drop(&mut self) {
        let id = self.child.id();
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        self.counts.forget(id);
    }
}

/// What a navigation produced.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The page, checked.
    pub page: Page,
    /// The URL finally shown (after redirects).
    pub url: String,
    /// The renderer that made it, if a renderer did (about:sandbox is the shell's own).
    pub pid: Option<u32>,
}

/// A screenshot read from a renderer's sealed memfd.
#[derive(Debug)]
pub struct Pixels {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RGBA8, `width * height * 4` bytes.
    pub rgba: Vec<u8>,
}

/// How the shell runs.
#[derive(Debug, Clone)]
pub struct ShellConfig {
    /// Policy and grants.
    pub grants: Grants,
    /// Longest a renderer may take to answer one request.
    pub nav_timeout: Duration,
    /// The engine's caps.
    pub limits: Limits,
    /// The URL `about:home` stands for.
    pub home: String,
    /// A loopback port about:escape tries to reach without a grant.
    pub escape_port: u16,
    /// Renderers the zygote keeps forked ahead (`BrokerConfig::prefork`); 0 forks each on
    /// request.
    pub prefork: usize,
}

/// The broker and everything it knows about its renderers.
#[derive(Debug)]
pub struct Shell {
    broker: Broker,
    config: ShellConfig,
    counts: Arc<RequestCounts>,
    registry: Registry,
}

impl Shell {
    /// Starts the broker (and its zygote). Call it before starting any thread of your own.
    ///
    /// Errors: [`StartError`]; [`StartError::is_host_restriction`] says the host forbids
    /// sandboxing (no user namespaces).
    pub fn start(config: ShellConfig) -> Result<Shell, StartError> {
        let counts = Arc::new(RequestCounts::default());
        let sink_counts = Arc::clone(&counts);
        let broker = Broker::start(
            entries(),
            BrokerConfig {
                audit: AuditSink::Callback(Arc::new(move |r: &AuditRecord| {
                    sink_counts.record(r);
                })),
                // A page's images are fetched one after another, but several tabs load at once.
                network_workers: 4,
                network_queue: 32,
                prefork: config.prefork,
                ..BrokerConfig::default()
            },
        )?;
        Ok(Shell {
            broker,
            config,
            counts,
            registry: Arc::default(),
        })
    }

    /// The broker.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The configuration.
    pub fn config(&self) -> &ShellConfig {
        &self.config
    }

    /// Starts a renderer for `site` with the profile the policy gives it.
    pub fn spawn_renderer(&self, site: &Site) -> Result<Renderer, NavError> {
        let profile = self
            .config
            .grants
            .profile_for(site)
            .map_err(NavError::Spawn)?;
        let options = SpawnOptions {
            profile: Some(profile),
            ..SpawnOptions::default()
        };
        let args = RendererArgs {
            site: site.key(),
            limits: self.config.limits.clone(),
        };
        let child: RendererChild = self
            .broker
            .spawn_with("renderer", &args, &options)
            .map_err(|e| NavError::Spawn(error_chain(&e)))?;
        let child = Arc::new(child);
        let kind = match site {
            Site::About(name) => format!("renderer (about:{name})"),
            Site::File => "renderer (files)".into(),
            Site::Web { .. } => "renderer".into(),
        };
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                child.id(),
                Tracked {
                    pid: child.pid(),
                    kind,
                    site: site.key(),
                    child: Arc::downgrade(&child),
                },
            );
        Ok(Renderer {
            child,
            site: site.clone(),
            registry: Arc::clone(&self.registry),
            counts: Arc::clone(&self.counts),
        })
    }

    /// Resolves what the user typed into an absolute URL.
    pub fn resolve(&self, input: &str) -> Result<url::Url, NavError> {
        let input = input.trim();
        let text = match input {
            "" | "about:home" | "home" => self.config.home.as_str(),
            _ => input,
        };
        // `/images.html`: a page of the bundled pages server.
        if text.starts_with('/') && !text.starts_with("//") {
            let home = url::Url::parse(&self.config.home)
                .map_err(|e| NavError::BadUrl(format!("home {}: {e}", self.config.home)))?;
            return home
                .join(text)
                .map_err(|e| NavError::BadUrl(format!("{text}: {e}")));
        }
        match url::Url::parse(text) {
            Ok(url) => Ok(url),
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                url::Url::parse(&format!("https://{text}"))
                    .map_err(|e| NavError::BadUrl(format!("{text}: {e}")))
            }
            Err(e) => Err(NavError::BadUrl(format!("{text}: {e}"))),
        }
    }

    /// Loads `input` in the tab whose renderer is `slot`: a renderer of the URL's site is
    /// started if the slot holds none or another site's (the old one ends). about:sandbox is
    /// written by the shell itself; about:crash, about:hang and about:escape run in a renderer
    /// of their own. On a renderer's end the slot is emptied, so the next navigation starts a
    /// fresh one.
    pub fn navigate(
        &self,
        slot: &mut Option<Renderer>,
        input: &str,
        width: u16,
    ) -> Result<Loaded, NavError> {
        let mut url = self.resolve(input)?;
        for _ in 0..=MAX_REDIRECTS {
            let site = Site::of(&url).map_err(NavError::BadUrl)?;
            let message = match &site {
                Site::About(name) => match name.as_str() {
                    "sandbox" => {
                        return Ok(Loaded {
                            page: self.about_sandbox(),
                            url: url.into(),
                            pid: None,
                        })
                    }
                    "blank" => {
                        return Ok(Loaded {
                            page: Page::default(),
                            url: url.into(),
                            pid: None,
                        })
                    }
                    "crash" => ToRenderer::Crash,
                    "hang" => ToRenderer::Hang,
                    "escape" => ToRenderer::Escape {
                        broker_pid: i32::try_from(std::process::id()).unwrap_or(0),
                        loopback_port: self.config.escape_port,
                    },
                    other => {
                        return Err(NavError::BadUrl(format!(
                            "about:{other} does not exist (try about:sandbox, about:crash, \
                             about:hang, about:escape)"
                        )))
                    }
                },
                _ => ToRenderer::Navigate {
                    url: url.to_string(),
                    width,
                },
            };
            let about = matches!(site, Site::About(_));
            if about || slot.as_ref().is_none_or(|r| r.site != site) {
                *slot = None;
                *slot = Some(self.spawn_renderer(&site)?);
            }
            let renderer = slot.as_ref().ok_or(NavError::Spawn("no renderer".into()))?;
            let pid = renderer.pid();
            let answer = self.ask(slot, &message)?;
            match answer {
                FromRenderer::Page(page) => {
                    return Ok(Loaded {
                        page: check_page(page),
                        url: url.into(),
                        pid: Some(pid),
                    })
                }
                FromRenderer::Redirect { to } => {
                    let to = url::Url::parse(&to).map_err(|e| {
                        NavError::BadUrl(format!("redirect to {:?}: {e}", clean_text(&to)))
                    })?;
                    // A server may send the tab to another web site, never to a local file or
                    // an about: page (the user did not ask for those).
                    if !matches!(to.scheme(), "http" | "https") {
                        return Err(NavError::Failed(format!(
                            "refused a redirect to a {}: URL",
                            to.scheme()
                        )));
                    }
                    url = to;
                }
                FromRenderer::Failed { reason } => {
                    return Err(NavError::Failed(clean_text(&reason)));
                }
                FromRenderer::Escapes(attempts) if about => {
                    let page = self.escape_page(slot.as_ref(), &attempts);
                    return Ok(Loaded {
                        page,
                        url: url.into(),
                        pid: Some(pid),
                    });
                }
                other => return Err(self.hostile(slot, &format!("unexpected {}", name(&other)))),
            }
        }
        Err(NavError::Failed(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// Lays the slot's current page out again at `width`.
    pub fn relayout(&self, slot: &mut Option<Renderer>, width: u16) -> Result<Page, NavError> {
        if slot.is_none() {
            return Err(NavError::Failed("no renderer".into()));
        }
        match self.ask(slot, &ToRenderer::Relayout { width })? {
            FromRenderer::Page(page) => Ok(check_page(page)),
            FromRenderer::Failed { reason } => Err(NavError::Failed(clean_text(&reason))),
            other => Err(self.hostile(slot, &format!("unexpected {}", name(&other)))),
        }
    }

    /// Has the slot's renderer rasterise its page `width_px` wide, and reads the pixels from the
    /// sealed memfd it passes. The memfd must carry all four seals (shrink, grow, write, seal)
    /// and hold exactly `width * height * 4` bytes, within [`MAX_SCREENSHOT_BYTES`]; anything
    /// else kills the renderer.
    pub fn screenshot(
        &self,
        slot: &mut Option<Renderer>,
        width_px: u32,
    ) -> Result<Pixels, NavError> {
        let width_px = width_px.clamp(16, MAX_SCREENSHOT_WIDTH);
        let max_height_px = u32::try_from(MAX_SCREENSHOT_BYTES / (u64::from(width_px) * 4))
            .unwrap_or(u32::MAX)
            .min(16_384);
        let renderer = slot
            .as_ref()
            .ok_or(NavError::Failed("no renderer".into()))?;
        renderer
            .child
            .send(&ToRenderer::Screenshot {
                width_px,
                max_height_px,
            })
            .map_err(|e| self.gone(slot, &e))?;
        let renderer = slot
            .as_ref()
            .ok_or(NavError::Failed("no renderer".into()))?;
        let (answer, fds) = match renderer.child.recv_with_fds(Some(self.config.nav_timeout)) {
            Ok(got) => got,
            Err(e) => return Err(self.gone(slot, &e)),
        };
        match answer {
            FromRenderer::Pixels { width, height } => {
                let checked = check_pixels(fds, width_px, width, height, max_height_px);
                checked.map_err(|why| self.hostile(slot, &why))
            }
            FromRenderer::Failed { reason } => Err(NavError::Failed(clean_text(&reason))),
            other => Err(self.hostile(slot, &format!("unexpected {}", name(&other)))),
        }
    }

    /// Sends `message` to the slot's renderer and waits for its answer.
    fn ask(
        &self,
        slot: &mut Option<Renderer>,
        message: &ToRenderer,
    ) -> Result<FromRenderer, NavError> {
        let renderer = slot
            .as_ref()
            .ok_or(NavError::Failed("no renderer".into()))?;
        if let Err(e) = renderer.child.send(message) {
            return Err(self.gone(slot, &e));
        }
        match renderer.child.recv_timeout(self.config.nav_timeout) {
            Ok(answer) => Ok(answer),
            Err(e) => Err(self.gone(slot, &e)),
        }
    }

    /// The slot's renderer failed a send or receive: find out how it ended (killing it if it
    /// merely stopped answering) and empty the slot.
    fn gone(&self, slot: &mut Option<Renderer>, error: &ChildError) -> NavError {
        let Some(renderer) = slot.take() else {
            return NavError::Failed("no renderer".into());
        };
        let child = &renderer.child;
        match error {
            ChildError::TimedOut => {
                child.kill();
                let _ = child.wait_timeout(Duration::from_secs(5));
                NavError::TimedOut(self.config.nav_timeout)
            }
            ChildError::ProtocolViolation(v) => NavError::Hostile(v.to_string()),
            _ => {
                let end = child
                    .wait_timeout(Duration::from_secs(5))
                    .unwrap_or_else(|| {
                        child.kill();
                        child
                            .wait_timeout(Duration::from_secs(5))
                            .unwrap_or(ChildEnd::Killed)
                    });
                NavError::RendererEnded(describe_end(&end, &self.config.grants, &renderer.site))
            }
        }
    }

    /// Kills the slot's renderer for sending something it must not.
    fn hostile(&self, slot: &mut Option<Renderer>, why: &str) -> NavError {
        if let Some(renderer) = slot.take() {
            renderer.child.kill();
        }
        NavError::Hostile(why.to_owned())
    }

    /// The about:escape page: each attempt with what the renderer saw and what the broker's
    /// supervisor reported.
    fn escape_page(
        &self,
        renderer: Option<&Renderer>,
        attempts: &[crate::protocol::EscapeAttempt],
    ) -> Page {
        let mut b = PageBuilder::new("about:escape — a renderer tries to get out");
        b.line("This renderer runs with on_violation = \"deny\": a forbidden system call fails");
        b.line("with EPERM (reported to the broker by the kernel) instead of ending it, so every");
        b.line("attempt gets its turn.");
        b.blank();
        let blocked = attempts.iter().filter(|a| a.blocked).count();
        b.styled(
            &format!("{blocked} of {} attempts blocked", attempts.len()),
            browser_render::Style {
                bold: true,
                ..Default::default()
            },
        );
        b.blank();
        for a in attempts.iter().take(64) {
            let mark = if a.blocked { "BLOCKED" } else { "ESCAPED" };
            b.mono(&clean_text(&format!("{mark:8} {}", a.what)));
            b.mono(&clean_text(&format!("         saw: {}", a.saw)));
        }
        if let Some(r) = renderer {
            let (violations, seen) = r.child.violations();
            b.subheading(&format!(
                "The broker's supervisor saw {seen} forbidden system calls"
            ));
            for v in violations.iter().take(32) {
                b.mono(&format!(
                    "  {} — {}",
                    v.syscall,
                    match v.mode {
                        portcullis::OnViolation::Deny => "failed with EPERM",
                        portcullis::OnViolation::Kill => "killed",
                    }
                ));
            }
            let (allowed, denied) = self.counts.of(r.child.id());
            b.subheading(&format!(
                "Brokered requests: {allowed} allowed, {denied} denied by policy"
            ));
        }
        b.build()
    }

    /// The about:sandbox page: every process of this browser and its sandbox state.
    pub fn about_sandbox(&self) -> Page {
        let mut b = PageBuilder::new("about:sandbox — every process and its sandbox");
        let me = std::process::id();
        let mine = crate::procfs::Namespaces::of(me);
        b.mono(&format!(
            "{:>8}  {:<22} {:<24} {:>4} {:>4} {:>17} {:>7} {:>8}  {}",
            "pid", "kind", "site", "secc", "nnp", "CapEff", "own ns", "VmRSS", "req ok/denied"
        ));
        let mut rows = vec![
            (me, "broker (this shell)".to_owned(), "-".to_owned(), None),
            (
                self.broker.zygote_pid(),
                "zygote".to_owned(),
                "-".to_owned(),
                None,
            ),
        ];
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let mut violations = Vec::new();
        for (id, t) in registry.iter() {
            rows.push((t.pid, t.kind.clone(), t.site.clone(), Some(*id)));
            if let Some(child) = t.child.upgrade() {
                let (list, seen) = child.violations();
                if let Some(last) = list.last() {
                    violations.push((t.pid, seen, last.to_string()));
                }
            }
        }
        drop(registry);
        for (pid, kind, site, id) in rows {
            let facts = crate::procfs::Status::of(pid);
            let ns = crate::procfs::Namespaces::of(pid).differing_from(&mine);
            let requests = id.map_or("-".to_owned(), |id| {
                let (ok, denied) = self.counts.of(id);
                format!("{ok}/{denied}")
            });
            b.mono(&format!(
                "{:>8}  {:<22} {:<24} {:>4} {:>4} {:>17} {:>7} {:>8}  {}",
                pid,
                kind,
                short(&site, 24),
                facts.seccomp,
                facts.no_new_privs,
                facts.cap_eff,
                ns,
                facts.vm_rss,
                requests
            ));
        }
        b.blank();
        b.line("secc: Seccomp from /proc/<pid>/status (2 = filter). nnp: NoNewPrivs. CapEff: effective");
        b.line(
            "capabilities. own ns: how many of the 7 namespaces (user pid net mnt ipc uts cgroup)",
        );
        b.line("differ from the broker's. requests: brokered file and network requests, allowed/denied.");
        b.subheading("Last seccomp violation per renderer");
        if violations.is_empty() {
            b.line("none");
        }
        for (pid, seen, last) in violations {
            b.mono(&format!("{pid:>8}  {seen} in all, last: {last}"));
        }
        b.subheading("Limits");
        let controllers = self
            .broker
            .cgroup_controllers()
            .map_or("none (rlimits only)".to_owned(), |c| c.join(", "));
        b.line(&format!("cgroup controllers: {controllers}"));
        b.line(&format!(
            "each request to a renderer is cut after {} s; about:hang's renderer lives {} ms",
            self.config.nav_timeout.as_secs(),
            self.config
                .grants
                .profile_for(&Site::About("hang".into()))
                .map(|p| p.limits.wall_ms)
                .unwrap_or_default()
        ));
        b.build()
    }

    /// The one-line sandbox state of `pid` for the status line.
    pub fn sandbox_summary(pid: u32) -> String {
        let facts = crate::procfs::Status::of(pid);
        let mine = crate::procfs::Namespaces::of(std::process::id());
        let ns = crate::procfs::Namespaces::of(pid).differing_from(&mine);
        format!(
            "seccomp {} · no_new_privs {} · CapEff {} · own ns {}",
            facts.seccomp, facts.no_new_privs, facts.cap_eff, ns
        )
    }
}

/// Checks the screenshot memfd and reads it.
fn check_pixels(
    mut fds: Vec<OwnedFd>,
    asked_width: u32,
    width: u32,
    height: u32,
    max_height: u32,
) -> Result<Pixels, String> {
    use rustix::fs::SealFlags;
    if fds.len() != 1 {
        return Err(format!("screenshot came with {} fds, not 1", fds.len()));
    }
    let fd = fds.remove(0);
    if width != asked_width || height == 0 || height > max_height {
        return Err(format!(
            "screenshot is {width}×{height}, asked {asked_width} wide, at most {max_height} tall"
        ));
    }
    let expected = u64::from(width) * u64::from(height) * 4;
    if expected > MAX_SCREENSHOT_BYTES {
        return Err(format!("screenshot of {expected} bytes is over the cap"));
    }
    let seals = rustix::fs::fcntl_get_seals(fd.as_fd())
        .map_err(|e| format!("screenshot fd is not a sealable memfd: {e}"))?;
    let needed = SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL;
    if !seals.contains(needed) {
        return Err(format!("screenshot memfd is not sealed: {seals:?}"));
    }
    let stat = rustix::fs::fstat(fd.as_fd()).map_err(|e| format!("fstat: {e}"))?;
    let is_file =
        rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile;
    if !is_file || u64::try_from(stat.st_size).ok() != Some(expected) {
        return Err(format!(
            "screenshot memfd holds {} bytes, not {expected}",
            stat.st_size
        ));
    }
    let file = std::fs::File::from(fd);
    let len = usize::try_from(expected).map_err(|_| "too large".to_owned())?;
    let mut rgba = vec![0u8; len];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut rgba, 0)
        .map_err(|e| format!("reading the screenshot: {e}"))?;
    Ok(Pixels {
        width,
        height,
        rgba,
    })
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn name(message: &FromRenderer) -> &'static str {
    match message {
        FromRenderer::Page(_) => "page",
        FromRenderer::Redirect { .. } => "redirect",
        FromRenderer::Failed { .. } => "failure",
        FromRenderer::Pixels { .. } => "pixels",
        FromRenderer::Escapes(_) => "escape report",
    }
}

/// `e` and its sources, joined with ": ".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSYS => "SIGSYS",
        libc::SIGXCPU => "SIGXCPU",
        _ => "signal",
    }
}

/// A renderer's end in words, naming the `ChildEnd` variant.
pub fn describe_end(end: &ChildEnd, grants: &Grants, site: &Site) -> String {
    match end {
        ChildEnd::Crashed {
            signal,
            panic_message,
        } => {
            let mut text = format!("Crashed: signal {signal} ({})", signal_name(*signal));
            if let Some(message) = panic_message {
                text.push_str(&format!(", panic: {}", clean_text(message)));
            }
            text
        }
        ChildEnd::SeccompViolation { violation } => match violation {
            Some(v) => format!("SeccompViolation: killed by the sandbox for calling {v}"),
            None => "SeccompViolation: killed by the sandbox (SIGSYS)".into(),
        },
        ChildEnd::WallTimeout => {
            let ms = grants
                .profile_for(site)
                .map(|p| p.limits.wall_ms)
                .unwrap_or_default();
            format!(
                "WallTimeout: still running at its {ms} ms wall-clock limit; the broker ended it"
            )
        }
        ChildEnd::OutOfMemory => "OutOfMemory: its memory cgroup's limit was reached".into(),
        ChildEnd::ProcessLimit => "ProcessLimit: it hit its task limit".into(),
        ChildEnd::CpuLimit { used_ms } => format!("CpuLimit: used {used_ms} ms of CPU"),
        ChildEnd::Killed => "Killed by the shell".into(),
        ChildEnd::ProtocolViolation { violation } => {
            format!("ProtocolViolation: {violation}")
        }
        ChildEnd::Exited { code } => format!("Exited with status {code}"),
        ChildEnd::BrokerShutdown => "BrokerShutdown".into(),
        ChildEnd::ZygoteLost => "ZygoteLost: the zygote died".into(),
    }
}
