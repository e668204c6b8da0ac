//! The thumbnailer plugin: asked for a thumbnail, it reads the input image through the broker
//! (its profile grants read on exactly that file), scales it down, and writes the PNG through
//! the broker (its profile grants create on exactly that path). It needs nothing else, so it
//! makes no violation and no denied request.

use std::io::{Read, Write};

use portcullis_child::OpenOptions;
use portcullis_plugin_api::{connect, HostToPlugin, Plugin, PluginToHost};

/// Largest input read (the profile's limits bound memory anyway).
const MAX_INPUT_BYTES: u64 = 32 << 20;

fn main() {
    let Ok(plugin) = connect() else {
        std::process::exit(2);
    };
    while let Ok(request) = plugin.recv() {
        let answer = match request {
            HostToPlugin::Thumbnail {
                input,
                output,
                max_side,
            } => thumbnail(&plugin, &input, &output, max_side).unwrap_or_else(PluginToHost::Failed),
            HostToPlugin::Escape { .. } => PluginToHost::Failed("not that kind of plugin".into()),
        };
        if plugin.send(&answer).is_err() {
            std::process::exit(1);
        }
    }
}

fn thumbnail(
    plugin: &Plugin,
    input: &str,
    output: &str,
    max_side: u32,
) -> Result<PluginToHost, String> {
    let mut bytes = Vec::new();
    plugin
        .open(input, &OpenOptions::new().read(true))
        .map_err(|e| format!("open {input}: {e}"))?
        .take(MAX_INPUT_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("read {input}: {e}"))?;
    let image = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .map_err(|e| format!("decode {input}: {e}"))?;
    let small = image.thumbnail(max_side, max_side).to_rgba8();
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(small.clone())
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| format!("encode: {e}"))?;
    let mut file = plugin
        .open(output, &OpenOptions::new().write(true).create_new(true))
        .map_err(|e| format!("create {output}: {e}"))?;
    file.write_all(&png)
        .map_err(|e| format!("write {output}: {e}"))?;
    Ok(PluginToHost::Thumbnailed {
        width: small.width(),
        height: small.height(),
    })
}
