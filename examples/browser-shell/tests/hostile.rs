//! Hostile pages, each in a renderer of its own: every one ends with a clear message, and the
//! same broker then renders an ordinary page (the broker stayed responsive). Each run is a fresh
//! broker process; the hostile page and the ordinary one are two tabs of it (`--dump A --dump B`).

mod common;

use std::time::Duration;

use common::{run, Body, Server};

const OK_PAGE: &[u8] = b"<h1>Still here</h1><p>the broker answered after the hostile page</p>";

/// Loads `hostile` and then the ordinary page in one broker; returns the run's output after
/// checking that the ordinary page rendered.
fn hostile_then_ok(server: &Server, hostile: &str, extra: &[&str]) -> Option<common::Output> {
    let origin = server.origin();
    let ok = server.url("/ok.html");
    let mut args = vec!["--allow-origin", origin.as_str()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--dump", hostile, "--dump", ok.as_str()]);
    let out = run(&args)?;
    let after = out
        .stdout
        .split(&format!("==> {ok} <=="))
        .nth(1)
        .unwrap_or_else(|| panic!("the ordinary page never came: {out:?}"));
    assert!(
        after.contains("the broker answered after the hostile page"),
        "{out:?}"
    );
    Some(out)
}

fn server(routes: Vec<(&'static str, Body)>) -> Server {
    let mut routes = routes;
    routes.push(("/ok.html", Body::Bytes("text/html", OK_PAGE.to_vec())));
    Server::start(routes)
}

#[test]
fn two_hundred_thousand_nested_divs() {
    let mut page = Vec::new();
    page.extend(b"<html><body>".iter());
    for _ in 0..200_000 {
        page.extend_from_slice(b"<div>");
    }
    page.extend_from_slice(b"deepest text");
    for _ in 0..200_000 {
        page.extend_from_slice(b"</div>");
    }
    let server = server(vec![("/deep.html", Body::Bytes("text/html", page))]);
    let url = server.url("/deep.html");
    let Some(out) = hostile_then_ok(&server, &url, &["--timeout-ms", "15000"]) else {
        return;
    };
    // Rendered (flattened past the depth cap) or, if the renderer could not finish in time,
    // ended with that reason: never a crash of the broker, never silence.
    let hostile = out.stdout.split("==> ").nth(1).unwrap_or_default();
    if out.code == Some(0) {
        assert!(hostile.contains("deepest text"), "{out:?}");
    } else {
        assert!(
            out.stderr.contains(&format!("{url}: the renderer")),
            "no clear message: {out:?}"
        );
    }
}

#[test]
fn a_fifty_megabyte_page_is_cut_at_the_fetch_cap() {
    let server = server(vec![(
        "/big.html",
        Body::Stream(
            "text/html",
            b"<p>lorem ipsum dolor sit amet</p>\n",
            50 * 1024 * 1024,
        ),
    )]);
    let Some(out) = hostile_then_ok(&server, &server.url("/big.html"), &[]) else {
        return;
    };
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("lorem ipsum dolor sit amet"));
    assert!(
        out.stderr.contains("cut at the broker's size or time cap"),
        "{}",
        out.stderr
    );
}

/// A PNG whose header claims 60000×60000 pixels (its data is a few bytes).
fn huge_png() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&60_000u32.to_be_bytes());
    ihdr.extend_from_slice(&60_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    // A valid zlib stream of nothing much.
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
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
fn a_png_claiming_sixty_thousand_squared_is_refused_from_its_header() {
    let server = server(vec![
        (
            "/img.html",
            Body::Bytes(
                "text/html",
                b"<h1>Huge image</h1><p><img src=\"/huge.png\" alt=\"bomb\"></p>".to_vec(),
            ),
        ),
        ("/huge.png", Body::Bytes("image/png", huge_png())),
    ]);
    let Some(out) = hostile_then_ok(&server, &server.url("/img.html"), &[]) else {
        return;
    };
    assert_eq!(out.code, Some(0), "{out:?}");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("[image: bomb"))
        .unwrap_or_else(|| panic!("no image line: {out:?}"));
    assert!(line.contains("refused"), "{line}");
}

#[test]
fn invalid_utf8_is_replaced_not_fatal() {
    let mut page = b"<h1>Bytes</h1><p>before ".to_vec();
    page.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1]);
    page.extend_from_slice(b" after</p>");
    let server = server(vec![("/bad.html", Body::Bytes("text/html", page))]);
    let Some(out) = hostile_then_ok(&server, &server.url("/bad.html"), &[]) else {
        return;
    };
    assert_eq!(out.code, Some(0), "{out:?}");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("before"))
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(
        line.contains("after") && line.contains('\u{FFFD}'),
        "{line}"
    );
}

#[test]
fn a_server_that_never_finishes_is_cut_at_the_time_cap() {
    let (port, _server) = common::never_finishing_server(Duration::from_secs(20), 1);
    let origin = format!("http://127.0.0.1:{port}");
    let ok = server(vec![]);
    let url = format!("{origin}/slow.html");
    let Some(out) = hostile_then_ok(&ok, &url, &["--allow-origin", &origin]) else {
        return;
    };
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("Partial page"), "{out:?}");
    assert!(
        out.stderr.contains("cut at the broker's size or time cap"),
        "{}",
        out.stderr
    );
}
