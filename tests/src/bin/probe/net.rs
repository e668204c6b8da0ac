//! Brokered network on loopback: the broker resolves, checks every address, connects and passes
//! the socket; the child, which has no network of its own, talks through it. Each allowed case
//! is paired with denied ones (another port, another host, a private address not granted).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::time::Duration;

use portcullis::policy::{HostPattern, Limits, NetGrant, Profile, Scheme};
use portcullis::{Broker, ChildContext, SpawnOptions};

use crate::Verdict;

/// The child: connect, set a read timeout, send `payload`, read the echo.
pub fn net_child(ctx: ChildContext<Result<String, String>, (String, u16, String)>, _: ()) -> i32 {
    while let Ok((host, port, payload)) = ctx.recv() {
        let attempt = || -> std::io::Result<String> {
            let mut stream = ctx.connect(&host, port)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(payload.as_bytes())?;
            stream.shutdown(std::net::Shutdown::Write)?;
            let mut back = String::new();
            stream.read_to_string(&mut back)?;
            Ok(back)
        };
        let answer = attempt().map_err(|e| e.to_string());
        if ctx.send(&answer).is_err() {
            return 1;
        }
    }
    0
}

/// An echo server on 127.0.0.1 for the length of the scenario.
fn echo_server() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = Vec::new();
            if stream.read_to_end(&mut buf).is_ok() {
                let _ = stream.write_all(&buf);
            }
        }
    });
    Ok(port)
}

fn tcp(host: HostPattern, port: u16, allow_private: bool) -> NetGrant {
    NetGrant {
        scheme: Scheme::Tcp,
        host,
        ports: vec![port],
        allow_private,
    }
}

fn run(
    broker: &Broker,
    grants: Vec<NetGrant>,
    cases: &[(&str, u16, Result<&str, &str>)],
) -> Verdict {
    let profile = Profile {
        fs: Vec::new(),
        net: grants,
        limits: Limits::default(),
    };
    let options = SpawnOptions {
        profile: Some(profile),
        ..SpawnOptions::default()
    };
    let child = broker
        .spawn_with::<(String, u16, String), Result<String, String>, _>("net", &(), &options)
        .map_err(|e| format!("spawn net: {e}"))?;
    let mut problems = Vec::new();
    for (host, port, want) in cases {
        let got = child
            .request(&(host.to_string(), *port, "ping".to_string()))
            .map_err(|e| format!("{host}:{port}: {e}"))?;
        let ok = match (&got, want) {
            (Ok(back), Ok(w)) => back == w,
            (Err(message), Err(reason)) => message.ends_with(reason),
            _ => false,
        };
        if !ok {
            problems.push(format!("{host}:{port} → {got:?}, want {want:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// A granted loopback address and port work; another port, another host and a name whose
/// address is private (without `allow_private`) are denied; a name is resolved by the broker.
pub fn connect_on_loopback(broker: &Broker) -> Verdict {
    let port = echo_server()?;
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    run(
        broker,
        vec![
            tcp(HostPattern::Ip(loopback), port, true),
            tcp(HostPattern::Exact("localhost".into()), port, true),
        ],
        &[
            ("127.0.0.1", port, Ok("ping")),
            ("localhost", port, Ok("ping")),
            (
                "127.0.0.1",
                port.wrapping_add(1).max(1),
                Err("denied: not-granted"),
            ),
            ("127.0.0.2", port, Err("denied: not-granted")),
            ("example.com", 443, Err("denied: not-granted")),
        ],
    )?;
    // The same name granted without allow_private: it resolves to loopback, which is refused.
    run(
        broker,
        vec![tcp(HostPattern::Exact("localhost".into()), port, false)],
        &[("localhost", port, Err("denied: private-address"))],
    )
}

/// What the fetch child reports: (status, body length, body start, cut), or the error.
type FetchAnswer = Result<(u16, usize, String, bool), String>;
/// A URL and the check its answer must pass.
type FetchCase<'a> = (String, &'a dyn Fn(&FetchAnswer) -> bool);

/// The fetch child: performs each request through the broker and reports status, body length,
/// the body's start and whether it was cut.
pub fn fetch_child(ctx: ChildContext<FetchAnswer, String>, _: ()) -> i32 {
    use portcullis::ipc::service::{FetchMethod, FetchRequest};
    while let Ok(url) = ctx.recv() {
        let request = FetchRequest {
            url,
            method: FetchMethod::Get,
            body: Vec::new(),
            content_type: None,
        };
        let answer = ctx
            .fetch(request)
            .map(|r| {
                (
                    r.status,
                    r.body.len(),
                    String::from_utf8_lossy(&r.body[..r.body.len().min(16)]).into_owned(),
                    r.truncated,
                )
            })
            .map_err(|e| e.to_string());
        if ctx.send(&answer).is_err() {
            return 1;
        }
    }
    0
}

/// A small HTTP server on 127.0.0.1: /hello, /big (3 MiB), /slow (stalls mid-body), /redirect.
fn http_server() -> Result<u16, String> {
    let server = tiny_http::Server::http((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let port = server
        .server_addr()
        .to_ip()
        .map(|a| a.port())
        .ok_or("no port")?;
    std::thread::spawn(move || {
        for request in server.incoming_requests().take(64) {
            // One thread per request: /slow must not hold up the others.
            std::thread::spawn(move || respond(request));
        }
    });
    Ok(port)
}

fn respond(request: tiny_http::Request) {
    let url = request.url().to_owned();
    let _ = match url.as_str() {
        "/hello" => request.respond(tiny_http::Response::from_string("hello fetch")),
        "/big" => request.respond(tiny_http::Response::from_data(vec![b'x'; 3 << 20])),
        "/redirect" => {
            let mut response = tiny_http::Response::from_string("moved").with_status_code(302);
            if let Ok(location) = tiny_http::Header::from_bytes("Location", "http://127.0.0.2/") {
                response.add_header(location);
            }
            request.respond(response)
        }
        "/slow" => request.respond(tiny_http::Response::new(
            200.into(),
            vec![],
            Slow(false),
            Some(1 << 20),
            None,
        )),
        _ => request.respond(tiny_http::Response::empty(404)),
    };
}

/// A body that gives 4 KiB, then stalls for 5 s.
struct Slow(bool);

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 {
            std::thread::sleep(Duration::from_secs(5));
            return Ok(0);
        }
        self.0 = true;
        let n = buf.len().min(4096);
        buf[..n].fill(b's');
        Ok(n)
    }
}

/// Fetch through the broker: a granted origin works (by IP and by name, resolved by the
/// broker); another port, another host and a private address without `allow_private` are
/// denied; a body over the cap and a stalled body are cut; a redirect is not followed.
pub fn fetch_on_loopback(broker: &Broker) -> Verdict {
    let port = http_server()?;
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let http = |host, allow_private| NetGrant {
        scheme: Scheme::Http,
        host,
        ports: vec![port],
        allow_private,
    };
    let profile = |grants: Vec<NetGrant>| Profile {
        fs: Vec::new(),
        net: grants,
        limits: Limits {
            fetch_bytes: 1 << 20,
            fetch_timeout_ms: 1_000,
            ..Limits::default()
        },
    };
    let run = |profile: Profile, cases: &[FetchCase<'_>]| -> Verdict {
        let options = SpawnOptions {
            profile: Some(profile),
            ..SpawnOptions::default()
        };
        let child = broker
            .spawn_with::<String, FetchAnswer, _>("fetch", &(), &options)
            .map_err(|e| format!("spawn fetch: {e}"))?;
        let mut problems = Vec::new();
        for (url, ok) in cases {
            match child.request(url) {
                Ok(answer) if ok(&answer) => {}
                other => problems.push(format!("{url} → {other:?}")),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    };
    let url = |host: &str, path: &str| format!("http://{host}:{port}{path}");
    run(
        profile(vec![
            http(HostPattern::Ip(loopback), true),
            http(HostPattern::Exact("localhost".into()), true),
        ]),
        &[
            (
                url("127.0.0.1", "/hello"),
                &|a| matches!(a, Ok((200, 11, s, false)) if s == "hello fetch"),
            ),
            (url("localhost", "/hello"), &|a| {
                matches!(a, Ok((200, 11, _, false)))
            }),
            (
                url("127.0.0.1", "/big"),
                &|a| matches!(a, Ok((200, n, _, true)) if *n == 1 << 20),
            ),
            (url("127.0.0.1", "/slow"), &|a| {
                matches!(a, Ok((200, _, _, true))) || matches!(a, Err(e) if e.contains("TimedOut"))
            }),
            (url("127.0.0.1", "/redirect"), &|a| {
                matches!(a, Ok((302, 5, _, false)))
            }),
            (
                format!("http://127.0.0.1:{}/hello", port.wrapping_add(1).max(1)),
                &|a| matches!(a, Err(e) if e.ends_with("denied: not-granted")),
            ),
            (
                url("127.0.0.2", "/hello"),
                &|a| matches!(a, Err(e) if e.ends_with("denied: not-granted")),
            ),
            (
                format!("https://127.0.0.1:{port}/hello"),
                &|a| matches!(a, Err(e) if e.ends_with("denied: not-granted")),
            ),
            (
                "file:///etc/passwd".into(),
                &|a| matches!(a, Err(e) if e.ends_with("denied: bad-url")),
            ),
        ],
    )?;
    run(
        profile(vec![http(HostPattern::Exact("localhost".into()), false)]),
        &[(
            url("localhost", "/hello"),
            &|a| matches!(a, Err(e) if e.ends_with("denied: private-address")),
        )],
    )
}
