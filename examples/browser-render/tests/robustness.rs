//! Hostile input: every case ends with a page (and a note where a cap was hit), never a panic,
//! a stack overflow or an allocation the input only claimed.

use browser_render::{decode_image, rasterise, Document, ImageInfo, ImageTable, Limits, Page};

/// The renderer runs the engine on the process's main thread, whose stack is 8 MiB; libtest's
/// threads have 2 MiB. Each deep case runs on a thread with the main thread's 8 MiB to model it
/// (a recursion proportional to depth would overflow either way: 200,000 frames of even 64
/// bytes is 12.8 MiB).
fn on_main_sized_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(f)
        .expect("spawn a thread")
        .join()
        .expect("the engine panicked or overflowed its stack")
}

fn nested(n: usize, open: &str, close: &str, middle: &str) -> Vec<u8> {
    let mut s = String::with_capacity(n * (open.len() + close.len()) + middle.len());
    for _ in 0..n {
        s.push_str(open);
    }
    s.push_str(middle);
    for _ in 0..n {
        s.push_str(close);
    }
    s.into_bytes()
}

#[test]
fn two_hundred_thousand_nested_divs_parse_lay_out_and_drop() {
    let text = on_main_sized_stack(|| {
        let html = nested(200_000, "<div>", "</div>", "deep text");
        let doc = Document::parse(&html, "http://t.test/", &Limits::default());
        let page = doc.layout(80, &ImageTable::new());
        let text = page.to_text();
        drop(page);
        drop(doc);
        text
    });
    assert!(text.contains("deep text"), "{text}");
    assert!(
        text.contains("[note: the document nests deeper than 512"),
        "{text}"
    );
}

#[test]
fn deep_nesting_of_every_kind_of_container_never_overflows() {
    // Unclosed tags of kinds the tree builder treats differently: formatting elements (the
    // adoption agency), lists, tables, inline spans, blockquotes.
    let cases: [(&str, &str); 6] = [
        ("<span>", "</span>"),
        ("<b>", "</b>"),
        ("<ul><li>", "</li></ul>"),
        ("<table><tr><td>", "</td></tr></table>"),
        ("<blockquote>", "</blockquote>"),
        ("<a href=x>", "</a>"),
    ];
    for (open, close) in cases {
        let (open, close) = (open.to_owned(), close.to_owned());
        let shown = on_main_sized_stack(move || {
            let html = nested(50_000, &open, &close, "bottom");
            let doc = Document::parse(&html, "http://t.test/", &Limits::default());
            doc.layout(80, &ImageTable::new())
                .to_text()
                .contains("bottom")
        });
        assert!(shown);
    }
    // The same without closing tags at all.
    let shown = on_main_sized_stack(|| {
        let html = nested(100_000, "<div><span>", "", "bottom");
        let doc = Document::parse(&html, "http://t.test/", &Limits::default());
        doc.layout(80, &ImageTable::new())
            .to_text()
            .contains("bottom")
    });
    assert!(shown);
}

/// How many start tags the parse dropped at the depth cap, from its note.
fn flattened_at_parse(page: &Page) -> usize {
    page.notes
        .iter()
        .find_map(|n| {
            n.split("; ")
                .nth(1)?
                .strip_suffix(" deeper elements were flattened")?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
fn self_closing_syntax_and_made_up_names_are_held_to_the_depth_cap() {
    // `<div/>` opens a div all the same (the slash means nothing on an HTML element): the cap
    // must drop it like `<div>`, or 200,000 of them make the tree builder's work quadratic.
    // Thousands of distinct made-up names past the cap must not make the dropped-tag bookkeeping
    // quadratic either. Each case: every start tag past the cap is dropped by the parse itself.
    let n = 200_000;
    let cases: [(&str, Vec<u8>); 3] = [
        ("<div/>", "<div/>".repeat(n).into_bytes()),
        ("<span/>x", "<span/>x".repeat(n).into_bytes()),
        (
            "<xN>",
            (0..n)
                .map(|i| format!("<x{i}>"))
                .collect::<String>()
                .into_bytes(),
        ),
    ];
    for (what, html) in cases {
        let page = on_main_sized_stack(move || {
            Document::parse(&html, "http://t.test/", &Limits::default())
                .layout(80, &ImageTable::new())
        });
        let dropped = flattened_at_parse(&page);
        assert!(
            dropped >= n - 1024,
            "{what}: {dropped} dropped, {:?}",
            page.notes
        );
    }
    // A page nesting less than half the cap is never flattened, however many elements its
    // tree builder opens and closes by itself (`<li>` and `<p>` left unclosed).
    let html = format!(
        "<ul>{}</ul>{}",
        "<li>item".repeat(5_000),
        "<p>para".repeat(5_000)
    );
    let page = Document::parse(html.as_bytes(), "http://t.test/", &Limits::default())
        .layout(80, &ImageTable::new());
    assert!(page.notes.is_empty(), "{:?}", page.notes);
    assert_eq!(page.to_text().matches("item").count(), 5_000);
}

#[test]
fn a_small_depth_cap_flattens_but_shows_everything() {
    let limits = Limits {
        max_depth: 16,
        ..Limits::default()
    };
    let html = nested(40, "<div>", "</div>", "<p>para</p><ul><li>item</li></ul>");
    let page = Document::parse(&html, "http://t.test/", &limits).layout(80, &ImageTable::new());
    let text = page.to_text();
    assert!(text.contains("para") && text.contains("item"), "{text}");
    assert!(
        page.notes.iter().any(|n| n.contains("deeper than 16")),
        "{:?}",
        page.notes
    );
}

#[test]
fn invalid_utf8_is_replaced_not_refused() {
    let mut html = b"<p>before ".to_vec();
    html.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82]);
    html.extend_from_slice(b" after</p>");
    let page =
        Document::parse(&html, "http://t.test/", &Limits::default()).layout(80, &ImageTable::new());
    let text = page.to_text();
    assert!(text.contains("before \u{fffd}"), "{text}");
    assert!(text.contains("after"), "{text}");
}

#[test]
fn a_fifty_megabyte_document_is_cut_at_the_cap_with_a_note() {
    let text = on_main_sized_stack(|| {
        let mut html = b"<title>big</title><p>first paragraph</p>".to_vec();
        let para = b"<p>filler filler filler filler filler filler filler filler</p>\n";
        while html.len() < 50 << 20 {
            html.extend_from_slice(para);
        }
        let limits = Limits::default();
        let doc = Document::parse(&html, "http://t.test/", &limits);
        assert!(
            doc.notes()
                .iter()
                .any(|n| n.contains("only the first 8388608")),
            "{:?}",
            doc.notes()
        );
        let page = doc.layout(100, &ImageTable::new());
        assert!(page.lines.len() <= limits.max_lines + 1 + page.notes.len());
        page.to_text()
    });
    assert!(text.starts_with("first paragraph\n"), "{}", &text[..200]);
    assert!(text.contains("[note: the document is 52428"), "no note");
}

#[test]
fn a_page_of_rules_is_cut_at_the_page_byte_cap() {
    // 8 MiB of `<hr>` is 2 million lines of `─` (3 bytes a cell): 240 MB of page at 400
    // columns. The page stops at max_page_bytes (plus one line) with a note.
    let html = "<hr>".repeat(2 << 20);
    let page = on_main_sized_stack(move || {
        Document::parse(html.as_bytes(), "http://t.test/", &Limits::default())
            .layout(400, &ImageTable::new())
    });
    let bytes: usize = page
        .lines
        .iter()
        .flat_map(|l| l.spans.iter())
        .map(|s| s.text.len())
        .sum();
    assert!(bytes <= (8 << 20) + 4096, "{bytes}");
    assert!(
        page.notes.iter().any(|n| n.contains("over 8388608 bytes")),
        "{:?}",
        page.notes
    );
}

#[test]
fn node_and_line_caps_cut_with_notes() {
    let html = "<p>x</p>".repeat(10_000);
    let limits = Limits {
        max_nodes: 1_000,
        ..Limits::default()
    };
    let page =
        Document::parse(html.as_bytes(), "http://t.test/", &limits).layout(80, &ImageTable::new());
    assert!(
        page.notes
            .iter()
            .any(|n| n.contains("more than 1000 elements")),
        "{:?}",
        page.notes
    );

    let limits = Limits {
        max_lines: 50,
        ..Limits::default()
    };
    let page =
        Document::parse(html.as_bytes(), "http://t.test/", &limits).layout(80, &ImageTable::new());
    assert!(
        page.lines.len() <= 50 + 1 + page.notes.len(),
        "{}",
        page.lines.len()
    );
    assert!(
        page.notes
            .iter()
            .any(|n| n.contains("longer than 50 lines")),
        "{:?}",
        page.notes
    );
}

#[test]
fn the_image_cap_limits_sources_with_a_note() {
    let html: String = (0..100)
        .map(|i| format!("<img src=/i{i}.png alt=i{i}>"))
        .collect();
    let limits = Limits {
        max_images: 10,
        ..Limits::default()
    };
    let doc = Document::parse(html.as_bytes(), "http://t.test/", &limits);
    assert_eq!(doc.image_sources().len(), 10);
    assert_eq!(doc.image_sources()[0], "http://t.test/i0.png");
    assert!(
        doc.notes().iter().any(|n| n.contains("90 more images")),
        "{:?}",
        doc.notes()
    );
    // Duplicates count once.
    let doc = Document::parse(
        b"<img src=a.png><img src=a.png><img src=./a.png>",
        "http://t.test/",
        &limits,
    );
    assert_eq!(doc.image_sources(), vec!["http://t.test/a.png".to_owned()]);
}

/// A PNG signature and an IHDR chunk (with its CRC) claiming `width`×`height`, then nothing.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA, deflate, no filter, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // A first IDAT chunk (a zlib stream's first bytes), as a real file would have next.
    let idat = b"IDAT\x78\x9c\x63\x60\x00\x00";
    png.extend_from_slice(&6u32.to_be_bytes());
    png.extend_from_slice(idat);
    png.extend_from_slice(&crc32(idat).to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_png_claiming_60000_by_60000_is_refused_from_its_header() {
    let info = decode_image(&png_header(60_000, 60_000), &Limits::default());
    let ImageInfo::Failed { reason } = info else {
        panic!("decoded: {info:?}")
    };
    assert!(reason.contains("60000×60000"), "{reason}");
    // Under the side limit but over the pixel budget: also refused from the header.
    let info = decode_image(&png_header(10_000, 10_000), &Limits::default());
    let ImageInfo::Failed { reason } = info else {
        panic!("decoded: {info:?}")
    };
    assert!(reason.contains("pixel limit"), "{reason}");
}

#[test]
fn a_small_real_png_decodes_with_its_size() {
    let mut bytes = Vec::new();
    let image = image::RgbaImage::from_pixel(320, 200, image::Rgba([10, 20, 30, 255]));
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encode a test PNG");
    assert_eq!(
        decode_image(&bytes, &Limits::default()),
        ImageInfo::Decoded {
            width: 320,
            height: 200,
            format: "png".to_owned()
        }
    );
    // The same bytes over a byte cap are refused.
    let limits = Limits {
        max_image_bytes: 10,
        ..Limits::default()
    };
    assert!(matches!(
        decode_image(&bytes, &limits),
        ImageInfo::Failed { .. }
    ));
    // Truncated: the header is fine, the body is not.
    let cut = &bytes[..bytes.len() / 2];
    assert!(
        matches!(
            decode_image(cut, &Limits::default()),
            ImageInfo::Failed { .. }
        ),
        "{:?}",
        decode_image(cut, &Limits::default())
    );
}

#[test]
fn garbage_and_truncated_images_fail() {
    for bytes in [
        &b""[..],
        b"not an image at all",
        b"\x89PNG\r\n\x1a\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00",
        b"\xff\xd8\xff\xe0garbage jpeg",
        b"GIF89a\x10\x00",
        &png_header(16, 16),
    ] {
        let info = decode_image(bytes, &Limits::default());
        assert!(
            matches!(info, ImageInfo::Failed { .. }),
            "{bytes:?} gave {info:?}"
        );
    }
}

#[test]
fn rasterise_a_page_to_the_requested_width_with_ink() {
    let page = Document::parse(
        b"<h1>Hello</h1><p>Some <a href=x>text</a> to draw.</p>",
        "http://t.test/",
        &Limits::default(),
    )
    .layout(80, &ImageTable::new());
    let raster = rasterise(&page, 640, 4000).expect("rasterise");
    assert_eq!(raster.width, 640);
    assert!(raster.height > 0 && raster.height <= 4000);
    assert_eq!(raster.rgba.len(), 640 * raster.height as usize * 4);
    let dark = raster.rgba.chunks(4).filter(|p| p[0] < 128).count();
    assert!(dark > 100, "only {dark} dark pixels");
    assert!(raster.rgba.chunks(4).all(|p| p[3] == 255), "opaque");
    // The height follows the content: a margin, then one line height per line.
    let lines = u32::try_from(page.lines.len()).unwrap();
    assert_eq!(
        raster.height,
        2 * browser_render::RASTER_MARGIN_PX + lines * browser_render::RASTER_LINE_PX
    );
    // A page laid out at raster_columns fits the raster's width: ink reaches the last column.
    assert_eq!(browser_render::raster_columns(640), 62);
    let wide = Document::parse(
        "m".repeat(62).as_bytes(),
        "http://t.test/",
        &Limits::default(),
    )
    .layout(browser_render::raster_columns(640), &ImageTable::new());
    assert_eq!(wide.lines.len(), 1);
    let r = rasterise(&wide, 640, 100).expect("rasterise");
    let last_cell_x = (8 + 61 * 10) as usize;
    let ink_in_last_cell = (0..r.height as usize)
        .any(|y| (last_cell_x..last_cell_x + 10).any(|x| r.rgba[(y * 640 + x) * 4] < 128));
    assert!(ink_in_last_cell);
}

#[test]
fn rasterise_empty_huge_and_absurd_never_panics() {
    let empty = Page::default();
    let r = rasterise(&empty, 100, 100).expect("an empty page rasterises");
    assert_eq!((r.width, r.rgba.len()), (100, 100 * r.height as usize * 4));

    let html = "<p>line</p>".repeat(100_000);
    let page = Document::parse(html.as_bytes(), "http://t.test/", &Limits::default())
        .layout(80, &ImageTable::new());
    let r = rasterise(&page, 800, 2_000).expect("a huge page rasterises, cut");
    assert_eq!(r.height, 2_000);
    // A height cap far past memory: cut to the byte budget instead.
    let r = rasterise(&page, 4_000, u32::MAX).expect("cut to the byte budget");
    assert!(u64::from(r.width) * u64::from(r.height) * 4 <= browser_render::MAX_RASTER_BYTES);

    assert!(rasterise(&page, 0, 100).is_err());
    assert!(rasterise(&page, u32::MAX, 100).is_err());
    assert!(rasterise(&page, 100, 0).is_err());
    // Very narrow: glyphs are clipped, nothing panics.
    rasterise(&page, 1, 10).expect("one pixel wide");
}

#[test]
fn formatting_elements_left_open_cannot_multiply_without_bound() {
    // html5ever re-opens every formatting element left open at each new paragraph: with distinct
    // attributes (no Noah's Ark merging) each `<p>` costs as many elements as came before. The
    // parse stops at a node budget instead of growing quadratically.
    let html: String = (0..20_000)
        .map(|i| format!("<p><b class=c{i}>x</p>"))
        .collect();
    let limits = Limits {
        max_nodes: 20_000,
        ..Limits::default()
    };
    let page = on_main_sized_stack(move || {
        Document::parse(html.as_bytes(), "http://t.test/", &limits).layout(80, &ImageTable::new())
    });
    assert!(
        page.notes
            .iter()
            .any(|n| n.contains("makes more than 40000 nodes")),
        "{:?}",
        page.notes
    );
    assert!(page.to_text().starts_with("x\n"));
}

#[test]
fn extreme_limits_never_panic() {
    let html = b"<title>t</title><h1>h</h1><p>a <a href=/x>b</a></p><ul><li>c</ul><img src=i.png><pre>p</pre>";
    let zero = Limits {
        max_document_bytes: 0,
        max_nodes: 0,
        max_depth: 0,
        max_lines: 0,
        max_page_bytes: 0,
        max_image_bytes: 0,
        max_image_pixels: 0,
        max_image_dimension: 0,
        max_images: 0,
    };
    let most = Limits {
        max_document_bytes: usize::MAX,
        max_nodes: usize::MAX,
        max_depth: usize::MAX,
        max_lines: usize::MAX,
        max_page_bytes: usize::MAX,
        max_image_bytes: usize::MAX,
        max_image_pixels: u64::MAX,
        max_image_dimension: u32::MAX,
        max_images: usize::MAX,
    };
    for limits in [
        zero,
        most,
        Limits {
            max_depth: 1,
            max_lines: 1,
            ..Limits::default()
        },
    ] {
        for width in [0, 1, 20, 80, u16::MAX] {
            let doc = Document::parse(html, "http://t.test/", &limits);
            let page = doc.layout(width, &ImageTable::new());
            let _ = page.to_text();
            let _ = rasterise(&page, 100, 100);
        }
        let _ = decode_image(&png_header(1, 1), &limits);
    }
}

#[test]
fn overlong_urls_are_not_followed() {
    let long = "a".repeat(10_000);
    let html = format!("<a href=/{long}>x</a><img src=/{long}.png alt=i>");
    let doc = Document::parse(html.as_bytes(), "http://t.test/", &Limits::default());
    assert!(doc.image_sources().is_empty());
    let page = doc.layout(80, &ImageTable::new());
    assert!(page.links.is_empty());
    assert_eq!(page.to_text(), "x[image: i]\n");
}

/// A small deterministic generator (xorshift64*): the same tag soup on every run.
struct Soup(u64);
impl Soup {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap_or(u64::MAX)).unwrap_or(0)
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

#[test]
fn tag_soup_never_panics() {
    const PIECES: &[&str] = &[
        "<p>",
        "</p>",
        "<div>",
        "</div>",
        "<ul>",
        "<ol start=-5>",
        "<ol start=99999999999999999999>",
        "<li>",
        "</li>",
        "</ul>",
        "<table>",
        "<tr>",
        "<td>",
        "<th>",
        "</td>",
        "</table>",
        "<pre>",
        "</pre>",
        "\t",
        "<b>",
        "</b>",
        "<i>",
        "<a href=/l>",
        "</a>",
        "<a href='javascript:x'>",
        "<img src=i.png alt=\"x y\">",
        "<br>",
        "<hr>",
        "<h1>",
        "</h1>",
        "<h7>",
        "<script>",
        "</script>",
        "<style>.x{display:none}",
        "</style>",
        "<span class=x>",
        "<span style='display:block'>",
        "</span>",
        "<template>",
        "</template>",
        "<svg><text>",
        "</svg>",
        "<select><option>",
        "<input>",
        "<q>",
        "</q>",
        "<blockquote>",
        "<dl><dt>",
        "<dd>",
        "&amp;",
        "&#0;",
        "&#x110000;",
        "&bogus;",
        "\u{0}",
        "\u{1b}[31m",
        "日本語",
        " ",
        "\n",
        "word",
        "<!--",
        "-->",
        "<![CDATA[",
        "]]>",
        "<!DOCTYPE html>",
        "<",
        ">",
        "\"",
        "'",
        "=",
        "<li value=-3>",
        "<ol type=i reversed>",
        "<caption>",
        "<textarea>",
        "</textarea>",
        "<plaintext>",
    ];
    let mut soup = Soup(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let n = 1 + soup.below(200);
        let mut html = String::new();
        for _ in 0..n {
            html.push_str(soup.pick(PIECES));
        }
        let width = [20u16, 33, 80][round % 3];
        let doc = Document::parse(html.as_bytes(), "http://t.test/d/", &Limits::default());
        let page = doc.layout(width, &ImageTable::new());
        for line in &page.lines {
            for span in &line.spans {
                assert!(!span.text.chars().any(char::is_control), "{html:?}");
            }
        }
        for (i, line) in page.to_text().lines().enumerate() {
            let in_pre = page.lines[i].spans.iter().any(|s| s.style.monospace);
            let w: usize = line.chars().count();
            assert!(
                in_pre || w <= usize::from(width) || line.starts_with("[note"),
                "line {i} of {w}: {line:?} from {html:?}"
            );
        }
        if round % 50 == 0 {
            rasterise(&page, 200, 400).expect("rasterise");
        }
    }
}
