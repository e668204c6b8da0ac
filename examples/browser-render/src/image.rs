//! Image decode under limits: the header first, then the pixels only if the header's claim fits.

use std::io::Cursor;

use image::ImageReader;

use crate::{ImageInfo, Limits};

/// Decodes an image's bytes under the limits (image crate, `image::Limits`), reading the header
/// first so an oversized claim is refused before any pixel buffer is allocated.
///
/// Refused (as [`ImageInfo::Failed`], never a panic): more than `max_image_bytes`, an unknown or
/// unsupported format, a header claiming more than `max_image_dimension` on a side or more than
/// `max_image_pixels` in all, a body that does not decode (truncated, corrupt).
pub fn decode_image(bytes: &[u8], limits: &Limits) -> ImageInfo {
    match decode(bytes, limits) {
        Ok(info) => info,
        Err(reason) => ImageInfo::Failed {
            reason: clean_reason(&reason),
        },
    }
}

/// Longest refusal reason kept, in characters.
const MAX_REASON_CHARS: usize = 160;

/// A decoder's message may quote the file's bytes: keep it short and free of control characters.
fn clean_reason(reason: &str) -> String {
    let mut out: String = reason
        .chars()
        .filter(|&c| !crate::text::is_unshowable(c))
        .take(MAX_REASON_CHARS + 1)
        .collect();
    if out.chars().count() > MAX_REASON_CHARS {
        out = out.chars().take(MAX_REASON_CHARS - 1).collect();
        out.push('…');
    }
    out
}

/// What reading an image's header may allocate.
const HEADER_ALLOC: u64 = 1 << 20;

fn decode(bytes: &[u8], limits: &Limits) -> Result<ImageInfo, String> {
    if bytes.len() > limits.max_image_bytes {
        return Err(format!(
            "{} bytes, over the {} byte limit",
            bytes.len(),
            limits.max_image_bytes
        ));
    }
    if bytes.is_empty() {
        return Err("empty".to_owned());
    }
    let reader = |bytes, limits: image::Limits| -> Result<ImageReader<Cursor<&[u8]>>, String> {
        let mut reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| format!("unreadable: {e}"))?;
        let Some(format) = reader.format() else {
            return Err("not an image format this browser knows".to_owned());
        };
        let _ = format;
        reader.limits(limits);
        Ok(reader)
    };
    // 1. The header alone: the claimed size.
    // Its own limits have no side caps (so the refusal below can name the claimed size) and a
    // small allocation budget: reading a header needs next to nothing.
    let mut header_limits = image::Limits::no_limits();
    header_limits.max_alloc = Some(HEADER_ALLOC);
    let header = reader(bytes, header_limits)?;
    let format = header
        .format()
        .map(|f| format!("{f:?}").to_ascii_lowercase())
        .unwrap_or_default();
    let (width, height) = header
        .into_dimensions()
        .map_err(|e| format!("bad header: {e}"))?;
    check_size(width, height, limits)?;
    // 2. The pixels, under the same limits (the decoder checks them again itself).
    let image = reader(bytes, image_limits(limits))?
        .decode()
        .map_err(|e| format!("does not decode: {e}"))?;
    if (image.width(), image.height()) != (width, height) {
        return Err("decoded size differs from its header".to_owned());
    }
    Ok(ImageInfo::Decoded {
        width,
        height,
        format,
    })
}

/// The claimed size against the limits, before anything is allocated for it.
fn check_size(width: u32, height: u32, limits: &Limits) -> Result<(), String> {
    if width == 0 || height == 0 {
        return Err(format!("{width}×{height} is empty"));
    }
    if width > limits.max_image_dimension || height > limits.max_image_dimension {
        return Err(format!(
            "{width}×{height} is over the {} pixel side limit",
            limits.max_image_dimension
        ));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_image_pixels {
        return Err(format!(
            "{width}×{height} is over the {} pixel limit",
            limits.max_image_pixels
        ));
    }
    Ok(())
}

/// `image::Limits` from ours: sides, and an allocation budget of 4 bytes a pixel plus slack
/// (16-bit and alpha formats decode to at most 8 bytes a pixel: those over the budget fail).
fn image_limits(limits: &Limits) -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_image_dimension);
    l.max_image_height = Some(limits.max_image_dimension);
    l.max_alloc = Some(
        limits
            .max_image_pixels
            .saturating_mul(8)
            .saturating_add(1 << 20),
    );
    l
}
