use browser_render::*;

#[test]
fn smoke() {
    let html = br#"<html><head><title> Hi  there </title><style>.ad{display:none}</style><script>var x=1</script></head>
<body><h1>Main   title</h1><p>Hello <b>bold</b> and <a href="/x">a link</a> &amp; more.</p>
<ul><li>one<li>two<ul><li>inner</ul></ul><ol start=3><li>three<li>four</ol>
<div class=ad>AD</div><p hidden>hidden</p>
<pre>  keep   this
    verbatim</pre>
<table><tr><th>a<th>b<tr><td>1<td>2</table><img src="i.png" alt="cat"></body></html>"#;
    let doc = Document::parse(
        html,
        "http://example.test/dir/page.html",
        &Limits::default(),
    );
    assert_eq!(doc.title(), "Hi there");
    let page = doc.layout(80, &ImageTable::new());
    println!("{}", page.to_text());
    println!("{:?}", page.links);
    println!("{:?}", doc.image_sources());
}
