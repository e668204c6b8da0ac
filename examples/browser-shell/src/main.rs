//! `browser-shell`: the Portcullis demo browser. See the library's documentation (`src/lib.rs`)
//! for what it shows; `browser-shell --help` for the options.
//!
//! Exit status: 0 success; 1 the page could not be shown (network error, denied by policy, the
//! renderer crashed or timed out); 2 bad usage; 77 this host cannot sandbox (no user namespaces).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use browser_shell::pages::PagesServer;
use browser_shell::shell::error_chain;
use browser_shell::site::{files_root, Grants, Site, DEFAULT_POLICY};
use browser_shell::{entries, Shell, ShellConfig};
use clap::Parser;
use portcullis::policy::Policy;
use portcullis::Broker;

/// Exit status when the host cannot sandbox.
const EXIT_CANNOT_SANDBOX: u8 = 77;

/// A terminal browser whose renderers are sandboxed, one process per site.
#[derive(Debug, Parser)]
#[command(name = "browser-shell", version)]
struct Args {
    /// Page to open first (default: the bundled start page).
    url: Option<String>,
    /// Print the rendered text of URL and exit. Repeatable: each URL is loaded in turn, in a
    /// tab of its own, by the same broker (every renderer stays alive until the end, so a last
    /// `--dump about:sandbox` lists them).
    #[arg(long, value_name = "URL", conflicts_with = "screenshot")]
    dump: Vec<String>,
    /// Render URL to a PNG file and exit.
    #[arg(long, num_args = 2, value_names = ["URL", "OUT.png"])]
    screenshot: Option<Vec<String>>,
    /// Width: text cells for --dump (default 100), pixels for --screenshot (default 800).
    #[arg(long, value_name = "N")]
    width: Option<u32>,
    /// Let the file:// renderer read files beneath DIR (and nothing else).
    #[arg(long, value_name = "DIR")]
    files: Option<PathBuf>,
    /// Grant renderers of this origin (scheme://host:port) its fetches, loopback and private
    /// addresses included. Repeatable.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// Policy file replacing the embedded default (profiles renderer, renderer-files,
    /// about-hang, about-escape).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Longest a renderer may take to answer one request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 20_000)]
    timeout_ms: u64,
}

fn main() -> ExitCode {
    // First: in the zygote (this binary re-executed by the broker) this never returns.
    Broker::serve_if_zygote(&entries());
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("browser-shell: {}", error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (policy_text, origin) = match &args.policy {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("read policy {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (DEFAULT_POLICY.to_owned(), "embedded policy.toml".to_owned()),
    };
    let policy = Policy::from_toml_str(&policy_text, &origin)?;
    let files = args
        .files
        .as_deref()
        .map(files_root)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let mut allowed_origins = args
        .allow_origin
        .iter()
        .map(|o| Site::parse_origin(o))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let pages = PagesServer::start().context("start the bundled pages server")?;
    allowed_origins.push(Site::parse_origin(&pages.origin()).map_err(anyhow::Error::msg)?);
    let config = ShellConfig {
        grants: Grants {
            policy,
            files,
            allowed_origins,
        },
        nav_timeout: Duration::from_millis(args.timeout_ms.max(100)),
        limits: browser_render::Limits::default(),
        home: pages.home(),
        escape_port: pages.port(),
        prefork: 2,
    };
    let shell = match Shell::start(config) {
        Ok(shell) => shell,
        Err(e) if e.is_host_restriction() => {
            eprintln!(
                "browser-shell: this host cannot sandbox: {} (unprivileged user namespaces are \
                 off; run as root, or see `portcullis doctor`)",
                error_chain(&e)
            );
            return Ok(ExitCode::from(EXIT_CANNOT_SANDBOX));
        }
        Err(e) => return Err(e).context("start the broker"),
    };
    if !args.dump.is_empty() {
        return Ok(dump(&shell, &args.dump, args.width));
    }
    if let Some(screenshot) = &args.screenshot {
        let [url, out] = screenshot.as_slice() else {
            anyhow::bail!("--screenshot takes URL and OUT.png");
        };
        return Ok(screenshot_to(&shell, url, out.as_ref(), args.width));
    }
    let first = args.url.unwrap_or_else(|| "about:home".to_owned());
    browser_shell::tui::run(shell, &first)?;
    drop(pages);
    Ok(ExitCode::SUCCESS)
}

fn dump(shell: &Shell, urls: &[String], width: Option<u32>) -> ExitCode {
    let width = u16::try_from(width.unwrap_or(100)).unwrap_or(u16::MAX);
    let mut tabs = Vec::new();
    let mut status = ExitCode::SUCCESS;
    for url in urls {
        let mut slot = None;
        if urls.len() > 1 {
            println!("==> {url} <==");
        }
        match shell.navigate(&mut slot, url, width) {
            Ok(loaded) => {
                let mut out = loaded.page.to_text();
                if !loaded.page.links.is_empty() {
                    out.push_str("\nLinks:\n");
                    for (i, link) in loaded.page.links.iter().enumerate() {
                        out.push_str(&format!("[{}] {link}\n", i + 1));
                    }
                }
                print!("{out}");
                for note in &loaded.page.notes {
                    eprintln!("browser-shell: {url}: note: {note}");
                }
            }
            Err(e) => {
                eprintln!("browser-shell: {url}: {e}");
                status = ExitCode::FAILURE;
            }
        }
        tabs.push(slot);
    }
    status
}

fn screenshot_to(shell: &Shell, url: &str, out: &std::path::Path, width: Option<u32>) -> ExitCode {
    let width_px = width.unwrap_or(800);
    let cells = browser_shell::renderer::cells_for(width_px);
    let mut slot = None;
    let result = shell
        .navigate(&mut slot, url, cells)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            shell
                .screenshot(&mut slot, width_px)
                .map_err(|e| e.to_string())
        })
        .and_then(|pixels| {
            write_png(out, &pixels)
                .map_err(|e| format!("write {}: {e}", out.display()))
                .map(|()| pixels)
        });
    match result {
        Ok(pixels) => {
            println!(
                "wrote {} ({}×{} pixels)",
                out.display(),
                pixels.width,
                pixels.height
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("browser-shell: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_png(out: &std::path::Path, pixels: &browser_shell::shell::Pixels) -> anyhow::Result<()> {
    let file = std::fs::File::create(out)?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), pixels.width, pixels.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels.rgba)?;
    writer.finish()?;
    Ok(())
}
