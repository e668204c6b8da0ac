//! A page → RGBA8 pixels: tiny-skia for the canvas and rules, fontdue for glyphs from the
//! embedded font. Pure computation: the font is compiled in.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use tiny_skia::{Color, Paint, Pixmap, Rect, Transform};

use crate::{Page, Style};

/// The embedded font: DejaVu Sans Mono (Bitstream Vera license, `fonts/DejaVu-LICENSE.txt`).
/// Data, not code; compiled in so the sandboxed renderer never opens a file for it.
static FONT_BYTES: &[u8] = include_bytes!("../fonts/DejaVuSansMono.ttf");

/// Widest raster, in pixels.
pub const MAX_RASTER_WIDTH: u32 = 16_384;
/// Most bytes of RGBA a raster may take; the height is cut to fit.
pub const MAX_RASTER_BYTES: u64 = 256 << 20;

const FONT_PX: f32 = 16.0;
/// Width of one text cell in a raster, in pixels (DejaVu Sans Mono at 16 px advances 9.6 px).
pub const RASTER_CELL_PX: u32 = 10;
/// Height of one line in a raster, in pixels.
pub const RASTER_LINE_PX: u32 = 20;
/// Blank margin on every side of a raster, in pixels.
pub const RASTER_MARGIN_PX: u32 = 8;
const LINE_PX: u32 = RASTER_LINE_PX;
const MARGIN_PX: u32 = RASTER_MARGIN_PX;

/// How many text cells fit a raster `width_px` wide: the width to [`crate::Document::layout`] a
/// page at before [`rasterise`]-ing it that wide (at least 1; `layout` clamps up to 20).
pub fn raster_columns(width_px: u32) -> u16 {
    let cells = width_px.saturating_sub(2 * MARGIN_PX) / RASTER_CELL_PX;
    u16::try_from(cells.max(1)).unwrap_or(u16::MAX)
}

/// RGBA8 pixels, row-major, `rgba.len() == width * height * 4`.
pub struct Raster {
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
}

impl std::fmt::Debug for Raster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Raster")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("rgba_bytes", &self.rgba.len())
            .finish()
    }
}

/// Why a page could not be rasterised.
#[derive(Debug, thiserror::Error)]
pub enum RasterError {
    #[error("raster width {width} is outside 1..={max}")]
    Width { width: u32, max: u32 },
    #[error("raster height cap {max_height} is zero")]
    Height { max_height: u32 },
    #[error("the embedded font does not load: {reason}")]
    Font { reason: String },
    #[error("cannot allocate a {width}×{height} canvas")]
    Canvas { width: u32, height: u32 },
}

fn font() -> Result<&'static fontdue::Font, RasterError> {
    static FONT: OnceLock<Result<fontdue::Font, String>> = OnceLock::new();
    FONT.get_or_init(|| {
        fontdue::Font::from_bytes(
            FONT_BYTES,
            fontdue::FontSettings {
                scale: FONT_PX,
                ..Default::default()
            },
        )
        .map_err(str::to_owned)
    })
    .as_ref()
    .map_err(|reason| RasterError::Font {
        reason: reason.clone(),
    })
}

/// Rasterises a page (tiny-skia + fontdue, embedded font) to RGBA8, `width_px` wide, height
/// from the content, capped at `max_height_px` (and at [`MAX_RASTER_BYTES`] of pixels). Errors
/// only on absurd sizes (never panics).
pub fn rasterise(page: &Page, width_px: u32, max_height_px: u32) -> Result<Raster, RasterError> {
    if width_px == 0 || width_px > MAX_RASTER_WIDTH {
        return Err(RasterError::Width {
            width: width_px,
            max: MAX_RASTER_WIDTH,
        });
    }
    if max_height_px == 0 {
        return Err(RasterError::Height {
            max_height: max_height_px,
        });
    }
    let font = font()?;
    let cell_w = RASTER_CELL_PX as f32;
    let lines = u32::try_from(page.lines.len()).unwrap_or(u32::MAX);
    let content = lines.saturating_mul(LINE_PX).saturating_add(2 * MARGIN_PX);
    let by_bytes = u32::try_from(MAX_RASTER_BYTES / (u64::from(width_px) * 4)).unwrap_or(u32::MAX);
    let height = content.min(max_height_px).min(by_bytes).max(1);
    let mut pixmap = Pixmap::new(width_px, height).ok_or(RasterError::Canvas {
        width: width_px,
        height,
    })?;
    pixmap.fill(Color::WHITE);

    let ascent = font
        .horizontal_line_metrics(FONT_PX)
        .map_or(FONT_PX * 0.8, |m| m.ascent);
    let mut glyphs: BTreeMap<char, (fontdue::Metrics, Vec<u8>)> = BTreeMap::new();
    let max_cols = ((width_px.saturating_sub(MARGIN_PX) as f32) / cell_w).max(0.0);
    for (row, line) in page.lines.iter().enumerate() {
        let Ok(row) = u32::try_from(row) else { break };
        let top = MARGIN_PX + row * LINE_PX;
        if top >= height {
            break;
        }
        let baseline = top as f32 + ascent + (LINE_PX as f32 - FONT_PX) / 2.0;
        let mut col = 0f32;
        for span in &line.spans {
            let color = color_of(span.style);
            let span_start = col;
            if span.style.monospace {
                // Code and `pre` get a light background: the whole font is monospace already.
                let cells: f32 = span
                    .text
                    .chars()
                    .map(|c| crate::text::width(c) as f32)
                    .sum();
                let cells = cells.min((max_cols - col).max(0.0));
                let x = MARGIN_PX as f32 + col * cell_w;
                if let Some(rect) = Rect::from_xywh(x, top as f32, cells * cell_w, LINE_PX as f32) {
                    let mut paint = Paint::default();
                    paint.set_color_rgba8(0xee, 0xee, 0xee, 255);
                    pixmap.fill_rect(rect, &paint, Transform::identity(), None);
                }
            }
            let pen = Pen {
                color,
                baseline: to_px(baseline),
                italic: span.style.italic,
            };
            for c in span.text.chars() {
                let cells = crate::text::width(c) as f32;
                if col + cells > max_cols {
                    break;
                }
                let x = MARGIN_PX as f32 + col * cell_w;
                if c != ' ' {
                    let (metrics, bitmap) = glyphs
                        .entry(c)
                        .or_insert_with(|| font.rasterize(c, FONT_PX));
                    let gx = to_px(x) + i64::from(metrics.xmin);
                    blit(&mut pixmap, gx, metrics, bitmap, pen);
                    if span.style.bold || span.style.heading > 0 {
                        blit(&mut pixmap, gx + 1, metrics, bitmap, pen);
                    }
                }
                col += cells;
            }
            if (span.style.underline || span.style.link.is_some()) && col > span_start {
                let x = MARGIN_PX as f32 + span_start * cell_w;
                let w = (col - span_start) * cell_w;
                if let Some(rect) = Rect::from_xywh(x, baseline + 2.0, w, 1.0) {
                    let mut paint = Paint::default();
                    paint.set_color_rgba8(color[0], color[1], color[2], 255);
                    pixmap.fill_rect(rect, &paint, Transform::identity(), None);
                }
            }
        }
    }
    // tiny-skia keeps premultiplied RGBA; everything drawn is opaque, so the bytes are plain RGBA.
    let rgba = pixmap.take();
    Ok(Raster {
        width: width_px,
        height,
        rgba,
    })
}

fn color_of(style: Style) -> [u8; 3] {
    if style.link.is_some() {
        [0x1a, 0x4f, 0xc4]
    } else if style.heading > 0 {
        [0x10, 0x10, 0x40]
    } else {
        [0x18, 0x18, 0x18]
    }
}

/// How glyphs of a span are drawn.
#[derive(Debug, Clone, Copy)]
struct Pen {
    color: [u8; 3],
    baseline: i64,
    /// Slanted by a quarter pixel per pixel above the baseline (the font has no italic face).
    italic: bool,
}

/// Blends a glyph's coverage bitmap into the pixmap with its left edge at `x`, clipped to it.
fn blit(pixmap: &mut Pixmap, x: i64, metrics: &fontdue::Metrics, coverage: &[u8], pen: Pen) {
    let (w, h) = (metrics.width, metrics.height);
    let Ok(h_px) = i64::try_from(h) else { return };
    let top = pen.baseline - i64::from(metrics.ymin) - h_px;
    let pw = i64::from(pixmap.width());
    let ph = i64::from(pixmap.height());
    let data = pixmap.data_mut();
    for (row, py) in (top..top + h_px).enumerate() {
        if py < 0 || py >= ph {
            continue;
        }
        let slant = if pen.italic {
            (pen.baseline - py) / 4
        } else {
            0
        };
        for (colx, px) in (x + slant..).take(w).enumerate() {
            if px < 0 || px >= pw {
                continue;
            }
            let a = u32::from(coverage.get(row * w + colx).copied().unwrap_or(0));
            if a == 0 {
                continue;
            }
            let Ok(i) = usize::try_from((py * pw + px) * 4) else {
                continue;
            };
            for (k, &src) in pen.color.iter().enumerate() {
                let dst = u32::from(data[i + k]);
                let src = u32::from(src);
                data[i + k] = u8::try_from((src * a + dst * (255 - a)) / 255).unwrap_or(255);
            }
            data[i + 3] = 255;
        }
    }
}

/// A pixel coordinate from a float, clamped far outside any canvas (so the cast cannot wrap).
#[allow(clippy::cast_possible_truncation)]
fn to_px(v: f32) -> i64 {
    v.round().clamp(-1e9, 1e9) as i64
}
