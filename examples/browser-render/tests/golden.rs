//! Golden text: each rendering rule of the contract, as `--dump` prints it.

use browser_render::{Document, ImageInfo, ImageTable, Limits, Page};

const BASE: &str = "http://site.test/dir/page.html";

fn page_at(html: &str, width: u16) -> Page {
    Document::parse(html.as_bytes(), BASE, &Limits::default()).layout(width, &ImageTable::new())
}

fn text_at(html: &str, width: u16) -> String {
    page_at(html, width).to_text()
}

fn text(html: &str) -> String {
    text_at(html, 80)
}

#[test]
fn headings_get_a_blank_line_around_and_h1_h2_an_underline() {
    assert_eq!(
        text("<h1>Title</h1>text<h2>Sub  title</h2><p>para</p><h3>Third</h3>more"),
        "Title\n=====\n\ntext\n\nSub title\n---------\n\npara\n\nThird\n\nmore\n"
    );
    let page = page_at("<h2>Sub</h2>", 80);
    assert_eq!(page.lines[0].spans[0].style.heading, 2);
    assert!(page.lines[0].spans[0].style.bold);
}

#[test]
fn paragraphs_and_line_breaks() {
    assert_eq!(
        text("<p>one</p><p>two<br>three</p>four<br><br>five"),
        "one\n\ntwo\nthree\n\nfour\n\nfive\n"
    );
}

#[test]
fn inline_emphasis_sets_span_styles() {
    let page = page_at(
        "plain <b>bold</b> <i>it</i> <u>under</u> <code>mono</code> <strong><em>both</em></strong>",
        80,
    );
    assert_eq!(page.to_text(), "plain bold it under mono both\n");
    let style_of = |word: &str| {
        page.lines[0]
            .spans
            .iter()
            .find(|s| s.text == word)
            .map(|s| s.style)
            .unwrap()
    };
    assert!(style_of("bold").bold);
    assert!(style_of("it").italic);
    assert!(style_of("under").underline);
    assert!(style_of("mono").monospace);
    let both = style_of("both");
    assert!(both.bold && both.italic);
}

#[test]
fn nested_lists_indent_with_markers() {
    assert_eq!(
        text("<p>before</p><ul><li>one</li><li>two<ul><li>two.a</li><li>two.b<ol><li>deep</li></ol></li></ul></li><li>three</li></ul><p>after</p>"),
        "before\n\n• one\n• two\n  • two.a\n  • two.b\n    1. deep\n• three\n\nafter\n"
    );
}

#[test]
fn ordered_lists_count_from_start_and_value() {
    assert_eq!(text("<ol><li>a<li>b</ol>"), "1. a\n2. b\n");
    assert_eq!(
        text("<ol start=7><li>a<li>b<li value=20>c<li>d</ol>"),
        "7. a\n8. b\n20. c\n21. d\n"
    );
    assert_eq!(
        text("<ol type=a start=26><li>z<li>aa</ol>"),
        "z. z\naa. aa\n"
    );
    assert_eq!(
        text("<ol type=I start=3><li>x<li>y</ol>"),
        "III. x\nIV. y\n"
    );
    assert_eq!(text("<ol reversed start=3><li>x<li>y</ol>"), "3. x\n2. y\n");
}

#[test]
fn list_items_wrap_under_their_text() {
    assert_eq!(
        text_at(
            "<ul><li>alpha beta gamma delta epsilon zeta eta</li></ul>",
            20
        ),
        "• alpha beta gamma\n  delta epsilon zeta\n  eta\n"
    );
}

#[test]
fn tables_are_rows_of_cells() {
    assert_eq!(
        text("<p>t</p><table><caption>Caps</caption><thead><tr><th>Name<th>Value</thead><tr><td>a</td><td>1</td></tr><tr><td><p>b</p><p>c</p></td><td></td></tr></table>end"),
        "t\n\nCaps\n| Name | Value |\n| a | 1 |\n| b c | |\n\nend\n"
    );
    // Header cells are bold.
    let page = page_at("<table><tr><th>H</th></tr></table>", 80);
    assert!(page.lines[0]
        .spans
        .iter()
        .any(|s| s.text == "H" && s.style.bold));
}

#[test]
fn pre_is_verbatim_and_never_wrapped() {
    let long = "x".repeat(50);
    assert_eq!(
        text_at(
            &format!("<p>a</p><pre>\n  two  spaces\n\ttab\n{long}\n</pre><p>b</p>"),
            20
        ),
        format!("a\n\n  two  spaces\n        tab\n{long}\n\nb\n")
    );
    let page = page_at("<pre>code</pre>", 80);
    assert!(page.lines[0].spans[0].style.monospace);
}

#[test]
fn links_are_numbered_in_order_and_resolved() {
    let page = page_at(
        r#"<a href="/a">First</a> then <a href="b.html">second link</a>, <a href="https://x.test/">x</a><a>no href</a> <a href="javascript:alert(1)">js</a>"#,
        80,
    );
    assert_eq!(
        page.to_text(),
        "First[1] then second link[2], x[3]no href js\n"
    );
    assert_eq!(
        page.links,
        vec![
            "http://site.test/a",
            "http://site.test/dir/b.html",
            "https://x.test/"
        ]
    );
    let second: Vec<_> = page.lines[0]
        .spans
        .iter()
        .filter(|s| s.style.link == Some(2))
        .map(|s| s.text.as_str())
        .collect();
    assert_eq!(second.concat(), "second link[2]");
    // <base href> changes resolution.
    let page = page_at(
        r#"<head><base href="http://other.test/root/"></head><a href="p">p</a>"#,
        80,
    );
    assert_eq!(page.links, vec!["http://other.test/root/p"]);
}

#[test]
fn images_show_alt_and_what_decode_learned() {
    let html = r#"<img src="a.png" alt="A cat"> <img src="/b.png" alt="B"> <img src="c.png"> <img alt="nosrc">"#;
    let doc = Document::parse(html.as_bytes(), BASE, &Limits::default());
    assert_eq!(
        doc.image_sources(),
        vec![
            "http://site.test/dir/a.png",
            "http://site.test/b.png",
            "http://site.test/dir/c.png"
        ]
    );
    let mut images = ImageTable::new();
    images.insert(
        "http://site.test/dir/a.png".into(),
        ImageInfo::Decoded {
            width: 320,
            height: 200,
            format: "png".into(),
        },
    );
    images.insert(
        "http://site.test/b.png".into(),
        ImageInfo::Failed {
            reason: "too big".into(),
        },
    );
    assert_eq!(
        doc.layout(100, &images).to_text(),
        "[image: A cat 320×200] [image: B — refused: too big] [image] [image: nosrc]\n"
    );
}

#[test]
fn entities_are_decoded() {
    assert_eq!(text("<p>&amp; &lt;tag&gt; &quot;q&quot; &copy; &eacute; &#x263A; &#9731; caf&eacute;&nbsp;bar</p>"), "& <tag> \"q\" © é ☺ ☃ café bar\n");
}

#[test]
fn display_none_by_tag_class_id_and_comma_lists() {
    let html = r#"<style>
        aside, .ad { display: none }
        #secret { display:none }
        p.note { display: none }
        @media print { .print-only { display: none } }
    </style>
    <p>shown</p><aside>aside</aside><div class="x ad">advert</div><div id=secret>secret</div>
    <p class=note>note</p><div class=note>div note</div><span class=print-only>print</span>"#;
    assert_eq!(text(html), "shown\n\ndiv note\nprint\n");
}

#[test]
fn inline_style_and_hidden_attribute_hide() {
    assert_eq!(
        text(
            r#"<p>a</p><p style="color: red; display: none">b</p><p style="DISPLAY:NONE !important">c</p><p hidden>d</p><div hidden><p>e</p></div><p style="display:block">f</p>"#
        ),
        "a\n\nf\n"
    );
    // display:block makes a span a block; display:inline makes a div inline.
    assert_eq!(
        text(r#"x<span style="display:block">y</span>z<div style="display:inline">w</div>v"#),
        "x\ny\nzwv\n"
    );
}

#[test]
fn script_style_head_template_noscript_are_never_shown() {
    let html = "<html><head><title>T</title><style>p{}</style><script>var head=1</script></head>\
                <body>a<script>document.write('x')</script><style>.q{}</style><template><p>tpl</p></template>\
                <noscript>enable js</noscript>b</body></html>";
    let doc = Document::parse(html.as_bytes(), BASE, &Limits::default());
    assert_eq!(doc.title(), "T");
    assert_eq!(doc.layout(80, &ImageTable::new()).to_text(), "ab\n");
}

#[test]
fn whitespace_collapses() {
    assert_eq!(
        text("<p>  many\n\n   spaces \t and\r\nlines  </p>\n\n   <p> second </p>"),
        "many spaces and lines\n\nsecond\n"
    );
    assert_eq!(text("a<b> b </b>c"), "a b c\n");
}

#[test]
fn words_wrap_at_the_width() {
    let html = "<p>The quick brown fox jumps over the lazy dog and keeps running far away.</p>";
    let t = text_at(html, 20);
    assert_eq!(
        t,
        "The quick brown fox\njumps over the lazy\ndog and keeps\nrunning far away.\n"
    );
    for line in t.lines() {
        assert!(line.chars().count() <= 20, "{line:?}");
    }
    // A word longer than the width is broken at it.
    assert_eq!(
        text_at(&format!("<p>{}</p>", "y".repeat(45)), 20),
        format!(
            "{}\n{}\n{}\n",
            "y".repeat(20),
            "y".repeat(20),
            "y".repeat(5)
        )
    );
    // Narrower than 20 is clamped to 20.
    assert_eq!(text_at(html, 5), t);
}

#[test]
fn control_characters_never_reach_the_page() {
    let page = page_at(
        "<title>a\u{1b}]0;evil\u{7}b</title><p>x\u{1b}[2Jy\u{202e}z</p>",
        80,
    );
    assert_eq!(page.to_text(), "x[2Jyz\n");
    assert_eq!(page.title, "a]0;evilb");
}

#[test]
fn blockquote_and_definition_lists_indent() {
    assert_eq!(
        text("<blockquote>quoted</blockquote><dl><dt>term</dt><dd>meaning</dd></dl>"),
        "    quoted\n\nterm\n    meaning\n"
    );
}

#[test]
fn horizontal_rule_spans_the_width() {
    assert_eq!(text_at("a<hr>b", 20), format!("a\n{}\nb\n", "─".repeat(20)));
}

#[test]
fn form_controls_show_as_brackets() {
    assert_eq!(
        text(
            r#"<form><input name=q placeholder=Search> <input type=submit value=Go> <input type=hidden value=secret> <input type=checkbox checked> <button>Press</button></form>"#
        ),
        "[Search____] [Go] [x] [Press]\n"
    );
}

#[test]
fn empty_elements_open_and_close() {
    assert_eq!(text("<ul><li></li><li>x</li></ul><p></p><b></b>y<a href=/e></a><table><tr><td></td></tr></table>"), "•\n• x\n\ny[1]\n\n| |\n");
    // Styles do not leak out of empty elements.
    let page = page_at("<b></b><i></i>plain", 80);
    assert_eq!(
        page.lines[0].spans[0].style,
        browser_render::Style::default()
    );
}

#[test]
fn wide_characters_wrap_by_cells() {
    // Each CJK character takes two cells: ten of them fill a 20-cell line.
    let t = text_at("<p>日本語日本語日本語日本語 end</p>", 20);
    assert_eq!(t, "日本語日本語日本語日\n本語 end\n");
}

#[test]
fn a_page_survives_the_wire() {
    let page = page_at(
        "<title>T</title><h1>H</h1><p><a href=/a><b>x</b></a></p><p hidden>no</p><pre>p</pre>",
        40,
    );
    let bytes = postcard::to_allocvec(&page).expect("encode");
    let back: Page = postcard::from_bytes(&bytes).expect("decode");
    assert_eq!(back, page);
    assert_eq!(back.title, "T");
}
