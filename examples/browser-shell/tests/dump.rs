//! `browser-shell --dump` and `--screenshot` against pages served on 127.0.0.1, each run a fresh
//! broker process: what the page shows (headings, nested lists, tables, pre, links, entities),
//! what it must not show (hidden content, scripts, styles), and how each kind of failure ends
//! (denied, network error, crash, hang) — clearly and with a non-zero status.

mod common;

use common::{assert_in_order, run, Body, Server};

const GOLDEN: &str = r#"<!DOCTYPE html>
<html><head><title>Golden page</title>
<style>
  .gone { display: none }
  #away { display: none }
  aside { display: none }
  p.note { color: red }
</style>
<script>var SECRET_SCRIPT = 1;</script>
</head>
<body>
<h1>Main   Heading</h1>
<p>First    paragraph
   with collapsed
   whitespace.</p>
<h2>Lists</h2>
<ul>
  <li>alpha
    <ul><li>inner one</li><li>inner two</li></ul>
  </li>
  <li>beta</li>
</ul>
<ol><li>first step</li><li>second step</li></ol>
<ol start="7"><li>seventh step</li></ol>
<h2>Table</h2>
<table>
  <tr><th>Name</th><th>Value</th></tr>
  <tr><td>width</td><td>80</td></tr>
</table>
<pre>
fn main() {
    let  x   =  1;
}
</pre>
<p>Entities: &lt;tag&gt; &amp; &quot;quoted&quot; &copy; caf&eacute;</p>
<p>Go to the <a href="/next.html">next page</a> or <a href="http://example.com/x">elsewhere</a>.</p>
<p class="gone">SECRET_CLASS</p>
<p id="away">SECRET_ID</p>
<aside>SECRET_TAG</aside>
<p hidden>SECRET_HIDDEN</p>
<p style="display:none">SECRET_INLINE</p>
<template>SECRET_TEMPLATE</template>
<noscript>SECRET_NOSCRIPT</noscript>
<p>The end.</p>
</body></html>
"#;

fn golden_server() -> Server {
    Server::start(vec![
        (
            "/golden.html",
            Body::Bytes("text/html", GOLDEN.as_bytes().to_vec()),
        ),
        (
            "/next.html",
            Body::Bytes("text/html", b"<h1>Next</h1><p>second page</p>".to_vec()),
        ),
    ])
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_owned())
        .collect()
}

#[test]
fn golden_page_shows_its_structure() {
    let server = golden_server();
    let Some(out) = run(&[
        "--allow-origin",
        &server.origin(),
        "--dump",
        &server.url("/golden.html"),
    ]) else {
        return;
    };
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = &out.stdout;
    assert_in_order(
        text,
        &[
            ("heading", &|l| l.trim() == "Main Heading"),
            ("collapsed paragraph", &|l| {
                l.trim() == "First paragraph with collapsed whitespace."
            }),
            ("h2 Lists", &|l| l.trim() == "Lists"),
            ("alpha", &|l| l.trim_start().starts_with("• alpha")),
            ("inner one", &|l| l.trim_start().starts_with("• inner one")),
            ("inner two", &|l| l.trim_start().starts_with("• inner two")),
            ("beta", &|l| l.trim_start().starts_with("• beta")),
            ("ol 1", &|l| l.trim_start().starts_with("1. first step")),
            ("ol 2", &|l| l.trim_start().starts_with("2. second step")),
            ("ol start", &|l| {
                l.trim_start().starts_with("7. seventh step")
            }),
            ("table header", &|l| cells(l) == ["Name", "Value"]),
            ("table row", &|l| cells(l) == ["width", "80"]),
            ("pre 1", &|l| l == "fn main() {"),
            ("pre 2", &|l| l == "    let  x   =  1;"),
            ("pre 3", &|l| l == "}"),
            ("entities", &|l| {
                l.contains("Entities: <tag> & \"quoted\" © café")
            }),
            ("links", &|l| {
                let at = |s: &str| l.find(s);
                matches!((at("next page"), at("[1]"), at("elsewhere"), at("[2]")),
                    (Some(a), Some(b), Some(c), Some(d)) if a < b && b < c && c < d)
            }),
            ("end", &|l| l.trim() == "The end."),
            ("link list", &|l| l == "Links:"),
            ("link 1", &|l| {
                *l == format!("[1] {}", server.url("/next.html"))
            }),
            ("link 2", &|l| l == "[2] http://example.com/x"),
        ],
    );
    // Nesting shows as indentation.
    let lines = common::lines(text);
    let alpha = lines.iter().find(|l| l.contains("• alpha")).unwrap();
    let inner = lines.iter().find(|l| l.contains("• inner one")).unwrap();
    assert!(indent(inner) > indent(alpha), "{alpha:?} / {inner:?}");
    for secret in [
        "SECRET_SCRIPT",
        "SECRET_CLASS",
        "SECRET_ID",
        "SECRET_TAG",
        "SECRET_HIDDEN",
        "SECRET_INLINE",
        "SECRET_TEMPLATE",
        "SECRET_NOSCRIPT",
        "display: none",
        "Golden page",
    ] {
        assert!(!text.contains(secret), "{secret} shown:\n{text}");
    }
}

#[test]
fn a_url_of_an_origin_nobody_granted_is_denied_by_the_broker() {
    let server = golden_server();
    // Allowed: the same page with its origin granted.
    let Some(allowed) = run(&[
        "--allow-origin",
        &server.origin(),
        "--dump",
        &server.url("/next.html"),
    ]) else {
        return;
    };
    assert_eq!(allowed.code, Some(0), "{allowed:?}");
    assert!(allowed.stdout.contains("second page"));
    // Denied: no grant for this loopback origin.
    let denied = run(&["--dump", &server.url("/next.html")]).unwrap();
    assert_eq!(denied.code, Some(1), "{denied:?}");
    assert!(
        denied.stderr.contains("denied by policy (not-granted)"),
        "{denied:?}"
    );
    assert!(denied.stdout.is_empty());
    // A grant for another port of the same host does not cover it.
    let other_port = format!("http://127.0.0.1:{}", server.port.wrapping_add(1).max(1));
    let denied = run(&[
        "--allow-origin",
        &other_port,
        "--dump",
        &server.url("/next.html"),
    ])
    .unwrap();
    assert_eq!(denied.code, Some(1), "{denied:?}");
    assert!(denied.stderr.contains("denied by policy"), "{denied:?}");
}

#[test]
fn a_network_error_is_a_clear_message_and_status_1() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let origin = format!("http://127.0.0.1:{port}");
    let Some(out) = run(&["--allow-origin", &origin, "--dump", &format!("{origin}/")]) else {
        return;
    };
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("network error"), "{out:?}");
}

#[test]
fn unsupported_and_malformed_urls_are_refused() {
    let Some(out) = run(&["--dump", "ftp://example.com/"]) else {
        return;
    };
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("not supported"), "{out:?}");
    let out = run(&["--dump", "about:nothing"]).unwrap();
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("does not exist"), "{out:?}");
}

#[test]
fn the_bundled_pages_work_offline_and_link_to_each_other() {
    let Some(out) = run(&["--dump", "about:home"]) else {
        return;
    };
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("Portcullis"), "{out:?}");
    for page in [
        "lists.html",
        "tables.html",
        "code.html",
        "images.html",
        "about:sandbox",
    ] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with('[') && l.ends_with(page)),
            "no link to {page}:\n{}",
            out.stdout
        );
    }
    assert!(!out.stdout.contains("display:none is broken"));
    // The images page (a path alone names a bundled page): the bundled PNG decoded in the
    // sandbox; another site's image refused.
    let images = run(&["--dump", "/images.html"]).unwrap();
    assert_eq!(images.code, Some(0), "{images:?}");
    let shown = |alt: &str| {
        images
            .stdout
            .lines()
            .find(|l| l.contains(&format!("[image: {alt}")))
            .unwrap_or_else(|| panic!("no image {alt}:\n{}", images.stdout))
            .to_owned()
    };
    assert!(shown("a portcullis").contains("48×32"), "{}", images.stdout);
    let refused = shown("another site's image");
    assert!(
        refused.contains("refused") || refused.contains("denied"),
        "{refused}"
    );
}

#[test]
fn file_urls_are_read_beneath_the_files_directory_only() {
    let dir = std::env::temp_dir().join(format!("browser-shell-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("page.html"),
        "<h1>From a file</h1><p>local text</p>",
    )
    .unwrap();
    let url = format!("file://{}/page.html", dir.display());
    let Some(allowed) = run(&["--files", dir.to_str().unwrap(), "--dump", &url]) else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let outside = run(&[
        "--files",
        dir.to_str().unwrap(),
        "--dump",
        "file:///etc/passwd",
    ])
    .unwrap();
    let no_grant = run(&["--dump", &url]).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(allowed.code, Some(0), "{allowed:?}");
    assert!(allowed.stdout.contains("local text"));
    assert_eq!(outside.code, Some(1), "{outside:?}");
    assert!(outside.stderr.contains("denied by policy"), "{outside:?}");
    assert_eq!(no_grant.code, Some(1), "{no_grant:?}");
    assert!(no_grant.stderr.contains("denied by policy"), "{no_grant:?}");
}

#[test]
fn about_crash_ends_with_the_crash_reason_and_status_1() {
    let Some(out) = run(&["--dump", "about:crash"]) else {
        return;
    };
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("Crashed: signal 11 (SIGSEGV)"),
        "{out:?}"
    );
}

#[test]
fn about_hang_ends_at_the_wall_clock_limit() {
    let Some(out) = run(&["--dump", "about:hang"]) else {
        return;
    };
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("WallTimeout"), "{out:?}");
}

#[test]
fn a_renderer_that_does_not_answer_in_time_is_killed() {
    // The per-request cap (here 500 ms) ends about:hang before its own wall-clock limit.
    let Some(out) = run(&["--timeout-ms", "500", "--dump", "about:hang"]) else {
        return;
    };
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("did not answer within") && out.stderr.contains("killed"),
        "{out:?}"
    );
}

#[test]
fn about_escape_lists_every_attempt_blocked() {
    let Some(out) = run(&["--dump", "about:escape"]) else {
        return;
    };
    assert_eq!(out.code, Some(0), "{out:?}");
    let blocked = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("BLOCKED"))
        .count();
    assert!(blocked >= 8, "{}", out.stdout);
    assert!(!out.stdout.contains("ESCAPED"), "{}", out.stdout);
    for what in [
        "/etc/passwd",
        "socket(AF_INET",
        "ptrace",
        "unshare",
        "mount",
        "fork",
        "kill(",
    ] {
        assert!(out.stdout.contains(what), "{what} missing:\n{}", out.stdout);
    }
    // The supervisor's reports, from outside the renderer.
    assert!(
        out.stdout.contains("socket — failed with EPERM"),
        "{}",
        out.stdout
    );
}

#[test]
fn about_sandbox_shows_each_renderer_locked_down() {
    let Some(out) = run(&["--dump", "about:home", "--dump", "about:sandbox"]) else {
        return;
    };
    assert_eq!(out.code, Some(0), "{out:?}");
    let row = out
        .stdout
        .lines()
        .find(|l| l.contains(" renderer ") && l.contains("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no renderer row:\n{}", out.stdout));
    let fields: Vec<&str> = row.split_whitespace().collect();
    // pid kind site secc nnp CapEff ns VmRSS requests
    assert_eq!(fields[3], "2", "Seccomp: {row}");
    assert_eq!(fields[4], "1", "NoNewPrivs: {row}");
    assert_eq!(fields[5], "0000000000000000", "CapEff: {row}");
    assert!(fields[6] == "7/7" || fields[6] == "?", "namespaces: {row}");
    assert!(
        fields[8].starts_with('1') && fields[8].ends_with("/0"),
        "requests: {row}"
    );
    assert!(out.stdout.contains("broker (this shell)"));
    assert!(out.stdout.contains("zygote"));
}

#[test]
fn screenshot_writes_a_png_of_the_width_asked_with_something_drawn() {
    let server = golden_server();
    let out_path =
        std::env::temp_dir().join(format!("browser-shell-shot-{}.png", std::process::id()));
    let Some(out) = run(&[
        "--allow-origin",
        &server.origin(),
        "--screenshot",
        &server.url("/golden.html"),
        out_path.to_str().unwrap(),
        "--width",
        "480",
    ]) else {
        return;
    };
    assert_eq!(out.code, Some(0), "{out:?}");
    let file = std::fs::File::open(&out_path).unwrap();
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let _ = std::fs::remove_file(&out_path);
    assert_eq!(info.width, 480);
    assert!(info.height > 0);
    let pixels = &buf[..info.buffer_size()];
    let first = &pixels[..4];
    let differing = pixels.chunks(4).filter(|p| *p != first).count();
    assert!(
        differing > 100,
        "only {differing} pixels differ from the first"
    );
}

#[test]
fn screenshot_of_a_denied_url_fails_clearly() {
    let server = golden_server();
    let out_path =
        std::env::temp_dir().join(format!("browser-shell-denied-{}.png", std::process::id()));
    let Some(out) = run(&[
        "--screenshot",
        &server.url("/golden.html"),
        out_path.to_str().unwrap(),
    ]) else {
        return;
    };
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("denied by policy"), "{out:?}");
    assert!(!out_path.exists());
}

#[test]
fn redirects_go_to_web_sites_only() {
    let target = Server::start(vec![(
        "/landing.html",
        Body::Bytes("text/html", b"<p>landed on the other site</p>".to_vec()),
    )]);
    let server = Server::start(vec![
        ("/to-file", Body::Redirect("file:///etc/passwd".into())),
        ("/to-about", Body::Redirect("about:crash".into())),
        ("/to-site", Body::Redirect(target.url("/landing.html"))),
    ]);
    let Some(out) = run(&[
        "--allow-origin",
        &server.origin(),
        "--allow-origin",
        &target.origin(),
        "--files",
        "/etc",
        "--dump",
        &server.url("/to-site"),
    ]) else {
        return;
    };
    // Allowed: another web site the policy grants, loaded by that site's own renderer.
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("landed on the other site"), "{out:?}");
    // Denied: a redirect to a local file (even one the file renderer could read) or an about:
    // page.
    for path in ["/to-file", "/to-about"] {
        let out = run(&[
            "--allow-origin",
            &server.origin(),
            "--files",
            "/etc",
            "--dump",
            &server.url(path),
        ])
        .unwrap();
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stderr.contains("refused a redirect"), "{out:?}");
        assert!(!out.stdout.contains("root:"), "{out:?}");
    }
}
