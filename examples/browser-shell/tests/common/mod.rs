//! Shared pieces of the browser-shell tests: running the built binary (each run is a fresh
//! broker process, so no sandbox work happens on a libtest thread), and local test servers on
//! 127.0.0.1 at ports the kernel picks.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Exit status of `browser-shell` when the host cannot sandbox.
pub const EXIT_CANNOT_SANDBOX: i32 = 77;

/// True when `PORTCULLIS_TESTS_REQUIRED=1`: a skip is then a failure.
pub fn tests_required() -> bool {
    std::env::var("PORTCULLIS_TESTS_REQUIRED").is_ok_and(|v| v == "1")
}

/// The binary under test. `BROWSER_SHELL` overrides the path (the unprivileged CI run uses a
/// copy in a directory that user can read).
pub fn shell_bin() -> String {
    std::env::var("BROWSER_SHELL")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_browser-shell").to_owned())
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `browser-shell ARGS` (killed after two minutes). `None`: the host cannot sandbox and the
/// test should skip (it panics instead under `PORTCULLIS_TESTS_REQUIRED=1`).
pub fn run(args: &[&str]) -> Option<Output> {
    let mut child = Command::new(shell_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start browser-shell");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("browser-shell {args:?} did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned(),
    };
    if output.code == Some(EXIT_CANNOT_SANDBOX) {
        assert!(
            !tests_required(),
            "browser-shell cannot sandbox here but PORTCULLIS_TESTS_REQUIRED=1: {}",
            output.stderr
        );
        eprintln!("SKIPPED: {}", output.stderr.trim());
        return None;
    }
    Some(output)
}

/// A body served in pieces cycling through `pattern`, `len` bytes in all (no big buffer).
pub struct Cycle {
    pattern: &'static [u8],
    pos: usize,
    remaining: usize,
}

impl Cycle {
    pub fn new(pattern: &'static [u8], len: usize) -> Self {
        Cycle {
            pattern,
            pos: 0,
            remaining: len,
        }
    }
}

impl Read for Cycle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() && self.remaining > 0 {
            buf[n] = self.pattern[self.pos];
            self.pos = (self.pos + 1) % self.pattern.len();
            self.remaining -= 1;
            n += 1;
        }
        Ok(n)
    }
}

/// What a route of the test server answers.
pub enum Body {
    /// These bytes, with this content type.
    Bytes(&'static str, Vec<u8>),
    /// `len` bytes of `pattern`, streamed.
    Stream(&'static str, &'static [u8], usize),
    /// A 302 to this location.
    Redirect(String),
}

/// A tiny_http server on 127.0.0.1 serving `routes`; stops when dropped.
pub struct Server {
    server: std::sync::Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub port: u16,
}

impl Server {
    pub fn start(routes: Vec<(&'static str, Body)>) -> Server {
        let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let serving = std::sync::Arc::clone(&server);
        let thread = std::thread::spawn(move || {
            for request in serving.incoming_requests() {
                let route = routes.iter().find(|(path, _)| *path == request.url());
                let _ = match route {
                    Some((_, Body::Bytes(content_type, bytes))) => request.respond(
                        tiny_http::Response::from_data(bytes.clone())
                            .with_header(header(content_type)),
                    ),
                    Some((_, Body::Stream(content_type, pattern, len))) => {
                        request.respond(tiny_http::Response::new(
                            tiny_http::StatusCode(200),
                            vec![header(content_type)],
                            Cycle::new(pattern, *len),
                            Some(*len),
                            None,
                        ))
                    }
                    Some((_, Body::Redirect(location))) => request.respond(
                        tiny_http::Response::empty(302).with_header(
                            tiny_http::Header::from_bytes("Location", location.as_bytes())
                                .expect("header"),
                        ),
                    ),
                    None => request.respond(
                        tiny_http::Response::from_string("not found").with_status_code(404),
                    ),
                };
            }
        });
        Server {
            server,
            thread: Some(thread),
            port,
        }
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(content_type: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes("Content-Type", content_type).expect("header")
}

/// A server that sends the headers and the start of a body, then never finishes: it holds
/// each connection for `hold`, then closes it. Serves at most `connections` connections.
pub fn never_finishing_server(
    hold: Duration,
    connections: usize,
) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let thread = std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000000\r\n\r\n\
                  <html><body><h1>Partial page</h1><p>The rest never comes.</p>",
            );
            let _ = stream.flush();
            std::thread::sleep(hold);
        }
    });
    (port, thread)
}

/// The lines of `text`, trailing spaces removed.
pub fn lines(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim_end().to_owned()).collect()
}

/// A named predicate over one line.
pub type LineCheck<'a> = (&'a str, &'a dyn Fn(&str) -> bool);

/// Asserts that `expected`, each a predicate over one line, match lines of `text` in order.
pub fn assert_in_order(text: &str, expected: &[LineCheck<'_>]) {
    let lines = lines(text);
    let mut at = 0;
    for (name, matches) in expected {
        match lines[at..].iter().position(|l| matches(l)) {
            Some(i) => at += i + 1,
            None => panic!("no line for {name:?} after line {at} in:\n{text}"),
        }
    }
}
