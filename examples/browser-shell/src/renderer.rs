//! The renderer: the registered entry function that runs, fully locked down, in a sandboxed child
//! of its own for one site. It has no filesystem and no network: the document and its images come
//! through the broker (`ctx.fetch` for http/https, `ctx.open` for file://), which decides each
//! request by the renderer's profile. Parsing and layout are the engine's (`browser_render`).
//!
//! Nothing here is trusted by the shell: whatever this code sends is checked on the other side.

use std::io::{Read, Write};
use std::os::fd::AsFd;

use browser_render::{decode_image, rasterise, Document, ImageInfo, ImageTable, Limits, Page};
use portcullis::ipc::service::{FetchMethod, FetchRequest};
use portcullis::{ChildContext, OpenOptions};

use crate::page::{fit_page, MAX_PAGE_BYTES};
use crate::protocol::{FromRenderer, RendererArgs, ToRenderer};

/// Redirects a renderer follows itself (same site only); the rest go to the shell.
const MAX_SAME_SITE_REDIRECTS: usize = 5;

type Ctx = ChildContext<FromRenderer, ToRenderer>;

/// What a fetch brought.
struct Fetched {
    body: Vec<u8>,
    /// Cut at the broker's size or time cap.
    truncated: bool,
    status: u16,
}

enum Got {
    Body(Fetched),
    Redirect(String),
}

/// The renderer's entry function (registered as `renderer`).
pub fn renderer(ctx: Ctx, args: RendererArgs) -> i32 {
    let mut current: Option<(Document, ImageTable, Vec<String>)> = None;
    while let Ok(message) = ctx.recv() {
        let reply = match message {
            ToRenderer::Navigate { url, width } => match load(&ctx, &url, &args.limits) {
                Ok(Loaded::Document(doc, images, notes)) => {
                    let page = lay_out(&doc, width, &images, &notes);
                    current = Some((*doc, images, notes));
                    FromRenderer::Page(page)
                }
                Ok(Loaded::Redirect(to)) => FromRenderer::Redirect { to },
                Err(reason) => FromRenderer::Failed { reason },
            },
            ToRenderer::Relayout { width } => match &current {
                Some((doc, images, notes)) => {
                    FromRenderer::Page(lay_out(doc, width, images, notes))
                }
                None => FromRenderer::Failed {
                    reason: "nothing to lay out: no document loaded".into(),
                },
            },
            ToRenderer::Screenshot {
                width_px,
                max_height_px,
            } => {
                let page = match &current {
                    Some((doc, images, notes)) => lay_out(doc, cells_for(width_px), images, notes),
                    None => Page::default(),
                };
                match screenshot(&ctx, &page, width_px, max_height_px) {
                    Ok(()) => continue,
                    Err(reason) => FromRenderer::Failed { reason },
                }
            }
            ToRenderer::Crash => crate::sys::crash(),
            ToRenderer::Hang => hang(),
            ToRenderer::Escape {
                broker_pid,
                loopback_port,
            } => FromRenderer::Escapes(crate::escape::try_escapes(&ctx, broker_pid, loopback_port)),
        };
        if ctx.send(&reply).is_err() {
            return 1;
        }
    }
    0
}

/// Text cells that fit a picture `width_px` wide (the engine's own measure), at most 400.
pub fn cells_for(width_px: u32) -> u16 {
    browser_render::raster_columns(width_px).clamp(20, 400)
}

fn lay_out(doc: &Document, width: u16, images: &ImageTable, notes: &[String]) -> Page {
    let mut page = doc.layout(width, images);
    page.notes.extend(notes.iter().cloned());
    fit_page(&mut page, MAX_PAGE_BYTES);
    page
}

enum Loaded {
    Document(Box<Document>, ImageTable, Vec<String>),
    Redirect(String),
}

/// Fetches and parses `url` and its images.
fn load(ctx: &Ctx, url: &str, limits: &Limits) -> Result<Loaded, String> {
    let mut url = url.to_owned();
    let mut redirects = 0;
    let fetched = loop {
        match get(ctx, &url, limits.max_document_bytes)? {
            Got::Body(fetched) => break fetched,
            Got::Redirect(to) if redirects < MAX_SAME_SITE_REDIRECTS && same_site(&url, &to) => {
                redirects += 1;
                url = to;
            }
            Got::Redirect(to) => return Ok(Loaded::Redirect(to)),
        }
    };
    let mut notes = Vec::new();
    if fetched.truncated {
        notes.push(format!(
            "the document was cut at the broker's size or time cap ({} bytes received)",
            fetched.body.len()
        ));
    }
    if !(200..300).contains(&fetched.status) && fetched.status != 0 {
        notes.push(format!("the server answered HTTP {}", fetched.status));
    }
    let doc = Document::parse(&fetched.body, &url, limits);
    drop(fetched);
    let mut images = ImageTable::new();
    for source in doc.image_sources().into_iter().take(limits.max_images) {
        let info = match get(ctx, &source, limits.max_image_bytes) {
            Ok(Got::Body(image)) if image.truncated => ImageInfo::Failed {
                reason: "cut at the size or time cap".into(),
            },
            Ok(Got::Body(image)) if !(200..300).contains(&image.status) && image.status != 0 => {
                ImageInfo::Failed {
                    reason: format!("HTTP {}", image.status),
                }
            }
            Ok(Got::Body(image)) => decode_image(&image.body, limits),
            Ok(Got::Redirect(_)) => ImageInfo::Failed {
                reason: "redirected (not followed for images)".into(),
            },
            Err(reason) => ImageInfo::Failed { reason },
        };
        images.insert(source, info);
    }
    Ok(Loaded::Document(Box::new(doc), images, notes))
}

fn same_site(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

/// One document or image, through the broker. `max` bounds what a file:// read keeps.
fn get(ctx: &Ctx, url: &str, max: usize) -> Result<Got, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("bad URL {url:?}: {e}"))?;
    match parsed.scheme() {
        "http" | "https" => {
            let response = ctx
                .fetch(FetchRequest {
                    url: url.to_owned(),
                    method: FetchMethod::Get,
                    body: Vec::new(),
                    content_type: None,
                })
                .map_err(|e| describe(&e))?;
            if (300..400).contains(&response.status) {
                if let Some((_, location)) = response.headers.iter().find(|(n, _)| n == "location")
                {
                    let to = parsed
                        .join(location)
                        .map_err(|e| format!("bad redirect {location:?}: {e}"))?;
                    return Ok(Got::Redirect(to.into()));
                }
            }
            let truncated = response.truncated || response.body.len() > max;
            let mut body = response.body;
            body.truncate(max);
            Ok(Got::Body(Fetched {
                body,
                truncated,
                status: response.status,
            }))
        }
        "file" => {
            let path = parsed
                .to_file_path()
                .map_err(|()| format!("not a local file URL: {url}"))?;
            let file = ctx
                .open(&path, &OpenOptions::new().read(true))
                .map_err(|e| describe(&e))?;
            let mut body = Vec::new();
            let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
            file.take(cap)
                .read_to_end(&mut body)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            let truncated = body.len() > max;
            body.truncate(max);
            Ok(Got::Body(Fetched {
                body,
                truncated,
                status: 0,
            }))
        }
        other => Err(format!("the renderer cannot load {other}: URLs")),
    }
}

/// A broker answer in words. A denial reads "denied by policy (not-granted)".
fn describe(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.strip_prefix("portcullis: denied: ") {
        Some(reason) => format!("denied by policy ({reason})"),
        None => match e.kind() {
            std::io::ErrorKind::TimedOut => "network error: timed out".into(),
            std::io::ErrorKind::ConnectionRefused => "network error: connection refused".into(),
            std::io::ErrorKind::NotFound => "network error: not found".into(),
            _ => format!("network error: {text}"),
        },
    }
}

/// Rasterises `page` into a memfd, seals it and sends it to the broker.
///
/// The memfd is created with exactly `MFD_CLOEXEC | MFD_ALLOW_SEALING` (the seccomp filter
/// allows no other flags), written, then sealed against shrinking, growing, writing and further
/// sealing, so the broker can read it knowing the renderer cannot change it under its feet.
fn screenshot(ctx: &Ctx, page: &Page, width_px: u32, max_height_px: u32) -> Result<(), String> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let raster = rasterise(page, width_px, max_height_px).map_err(|e| format!("rasterise: {e}"))?;
    let fd = rustix::fs::memfd_create(
        "portcullis-screenshot",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(|e| format!("memfd_create: {e}"))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(&raster.rgba)
        .map_err(|e| format!("write pixels: {e}"))?;
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
    )
    .map_err(|e| format!("seal: {e}"))?;
    ctx.send_with_fds(
        &FromRenderer::Pixels {
            width: raster.width,
            height: raster.height,
        },
        &[file.as_fd()],
    )
    .map_err(|e| format!("send pixels: {e}"))
}

/// Spins until the broker ends this process (its wall-clock limit).
fn hang() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
        std::hint::spin_loop();
    }
}
