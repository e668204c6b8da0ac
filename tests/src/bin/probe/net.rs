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
/// the body's start and whether it was cut. `post:BYTES:URL` POSTs a body of BYTES bytes.
pub fn fetch_child(ctx: ChildContext<FetchAnswer, String>, _: ()) -> i32 {
    use portcullis::ipc::service::{FetchMethod, FetchRequest};
    while let Ok(url) = ctx.recv() {
        if let Some(url) = url.strip_prefix("busy:") {
            return ring_while_fetching(&ctx, url);
        }
        let post = url
            .strip_prefix("post:")
            .and_then(|rest| rest.split_once(':'))
            .and_then(|(bytes, url)| Some((bytes.parse::<usize>().ok()?, url.to_owned())));
        let request = match post {
            Some((bytes, url)) => FetchRequest {
                url,
                method: FetchMethod::Post,
                body: vec![b'x'; bytes],
                content_type: Some("text/plain".into()),
            },
            None => FetchRequest {
                url,
                method: FetchMethod::Get,
                body: Vec::new(),
                content_type: None,
            },
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

/// See [`mailbox_ring_is_busy_while_a_fetch_holds_the_turn`]: fetch `url` on one thread; on
/// the word "go", ring a mailbox stat once and report what came back; once the fetch has ended,
/// ring again (as the client does, again while `EBUSY`) and report that.
fn ring_while_fetching(ctx: &ChildContext<FetchAnswer, String>, url: &str) -> i32 {
    use portcullis::ipc::mailbox::{put_request, take_answer};
    use portcullis::ipc::service::{FetchMethod, FetchRequest, ServiceRequest, ServiceResponse};
    // Asked for before the fetch takes the client's lock.
    let Some(mailbox) = ctx.raw_service_mailbox() else {
        return 4;
    };
    let stat = ServiceRequest::Stat {
        path: "/nowhere".into(),
    };
    let ring = |seq: u64| -> Result<String, i32> {
        let len = put_request(mailbox.words(), &stat).ok_or(0)?;
        match ctx.ring_service_doorbell_with(len as u64, seq) {
            Ok(0) => Ok("answered on the channel".into()),
            Ok(n) => Ok(format!(
                "{:?}",
                take_answer::<ServiceResponse>(mailbox.words(), n)
            )),
            Err(e) => Err(e.raw_os_error().unwrap_or(0)),
        }
    };
    std::thread::scope(|s| {
        let fetch = s.spawn(|| {
            ctx.fetch(FetchRequest {
                url: url.to_owned(),
                method: FetchMethod::Get,
                body: Vec::new(),
                content_type: None,
            })
            .is_ok()
        });
        // The fetch's connection is held by the server now: its network worker has the turn.
        if !matches!(ctx.recv().as_deref(), Ok("go")) {
            return 2;
        }
        let first = match ring(1_000_001) {
            Err(libc::EBUSY) => "EBUSY".to_owned(),
            Err(errno) => format!("errno {errno}"),
            Ok(answer) => answer,
        };
        if ctx.send(&Err(format!("while fetching: {first}"))).is_err() {
            return 1;
        }
        let _ = fetch.join();
        let mut after = Err(libc::EBUSY);
        for _ in 0..20_000 {
            after = ring(1_000_002);
            if after != Err(libc::EBUSY) {
                break;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        let after = after.unwrap_or_else(|errno| format!("errno {errno}"));
        i32::from(ctx.send(&Err(format!("after: {after}"))).is_err())
    })
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
            // A 2 MiB request, ten times the socket's buffer: the broker reads it as it is
            // written (each datagram rings the doorbell), decides, and answers.
            (
                format!("post:{}:{}", 2 << 20, url("127.0.0.2", "/hello")),
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

/// A server on 127.0.0.1 that accepts connections and never answers, holding them until
/// released: each fetch to it hangs in a network worker.
struct BlackHole {
    port: u16,
    held: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl BlackHole {
    fn start() -> Result<BlackHole, String> {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (thread_held, thread_accepted) = (held.clone(), accepted.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().take(64) {
                let Ok(stream) = stream else { continue };
                if let Ok(mut held) = thread_held.lock() {
                    held.push(stream);
                }
                thread_accepted.fetch_add(1, Ordering::AcqRel);
            }
        });
        Ok(BlackHole {
            port,
            held,
            accepted,
        })
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Closes every held connection: the fetches waiting on them end.
    fn release(&self) {
        if let Ok(mut held) = self.held.lock() {
            held.clear();
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/never", self.port)
    }
}

/// Waits (for at most 20 s, a failure bound, not a timing assertion) until `ready` holds.
fn wait_until(what: &str, ready: impl Fn() -> bool) -> Verdict {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !ready() {
        if std::time::Instant::now() > deadline {
            return Err(format!("gave up waiting until {what}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

fn spawn_fetcher(
    broker: &Broker,
    port: u16,
) -> Result<portcullis::Child<String, FetchAnswer>, String> {
    let profile = Profile {
        fs: Vec::new(),
        net: vec![NetGrant {
            scheme: Scheme::Http,
            host: HostPattern::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ports: vec![port],
            allow_private: true,
        }],
        limits: Limits {
            // Far longer than the scenario: only the server's release ends these fetches.
            fetch_timeout_ms: 600_000,
            ..Limits::default()
        },
    };
    let options = SpawnOptions {
        profile: Some(profile),
        ..SpawnOptions::default()
    };
    broker
        .spawn_with::<String, FetchAnswer, _>("fetch", &(), &options)
        .map_err(|e| format!("spawn fetch: {e}"))
}

/// True while the child has not answered (its fetch is still pending).
fn still_pending(child: &portcullis::Child<String, FetchAnswer>) -> bool {
    matches!(
        child.recv_timeout(Duration::ZERO),
        Err(portcullis::ChildError::TimedOut)
    )
}

/// Three fetches hang against a server that never answers; meanwhile a bystander's brokered
/// opens are all answered: a slow fetch holds a network worker, never the thread that serves a
/// child's files (its own, nor another's). Then the server lets go and every fetch returns.
pub fn slow_fetch_leaves_file_serving_free(broker: &Broker) -> Verdict {
    let hole = BlackHole::start()?;
    let hanging = 3;
    let fetchers = (0..hanging)
        .map(|_| spawn_fetcher(broker, hole.port))
        .collect::<Result<Vec<_>, _>>()?;
    for fetcher in &fetchers {
        fetcher.send(&hole.url()).map_err(|e| e.to_string())?;
    }
    // Every fetch is inside a network worker, connected and waiting for an answer.
    wait_until("the server holds every fetch's connection", || {
        hole.accepted() == hanging
    })?;
    let bystander = crate::files::bystander_opens(broker, 200)?;
    let pending = fetchers.iter().filter(|f| still_pending(f)).count();
    hole.release();
    let mut ended = 0;
    for fetcher in &fetchers {
        if fetcher.recv_timeout(Duration::from_secs(30)).is_ok() {
            ended += 1;
        }
    }
    if bystander != 200 || pending != hanging || ended != hanging {
        return Err(format!(
            "bystander opened {bystander} of 200 while {pending} of {hanging} fetches were \
             pending; {ended} fetches returned once released"
        ));
    }
    println!("slow fetches: {hanging} pending while the bystander opened 200 files");
    Ok(())
}

/// A mailbox ring while a network worker holds the child's turn (its fetch hangs on a server
/// that never answers) is answered `EBUSY` without being served; once the fetch has ended, the
/// same request with a new number is served (a stat outside every grant: denied). The client
/// rings again on `EBUSY`; a real client meets it only in the moment between a network answer
/// and the worker letting go of the turn.
pub fn mailbox_ring_is_busy_while_a_fetch_holds_the_turn(broker: &Broker) -> Verdict {
    let hole = BlackHole::start()?;
    let child = spawn_fetcher(broker, hole.port)?;
    child
        .send(&format!("busy:{}", hole.url()))
        .map_err(|e| e.to_string())?;
    wait_until("the server holds the fetch's connection", || {
        hole.accepted() == 1
    })?;
    child.send(&"go".to_owned()).map_err(|e| e.to_string())?;
    let first = child.recv_timeout(Duration::from_secs(30));
    hole.release();
    let after = child.recv_timeout(Duration::from_secs(30));
    match (&first, &after) {
        (Ok(Err(first)), Ok(Err(after)))
            if first == "while fetching: EBUSY" && after.contains("Denied(NotGranted)") =>
        {
            println!("{first}; {after}");
            Ok(())
        }
        _ => Err(format!("{first:?}, then {after:?}")),
    }
}

/// With the network workers and their queue full, one more fetch is answered `busy` at once,
/// while the others are still pending; once they end, they have been performed, not refused.
pub fn network_queue_full_is_busy(_: &Broker) -> Verdict {
    let broker = Broker::start(
        crate::entries(),
        portcullis::BrokerConfig {
            network_workers: 1,
            network_queue: 1,
            ..portcullis::BrokerConfig::default()
        },
    )
    .map_err(|e| format!("start a broker with one network worker: {e}"))?;
    let hole = BlackHole::start()?;
    let fetchers = (0..3)
        .map(|_| spawn_fetcher(&broker, hole.port))
        .collect::<Result<Vec<_>, _>>()?;
    // The first runs (its connection is held), the second waits in the queue.
    fetchers[0].send(&hole.url()).map_err(|e| e.to_string())?;
    wait_until("the first fetch is connected", || {
        hole.accepted() == 1 && broker.pending_network_requests() == 1
    })?;
    fetchers[1].send(&hole.url()).map_err(|e| e.to_string())?;
    wait_until("the second fetch is queued", || {
        broker.pending_network_requests() == 2
    })?;
    // The third finds the queue full.
    let busy = fetchers[2]
        .request(&hole.url())
        .map_err(|e| format!("third fetch: {e}"))?;
    let pending = [&fetchers[0], &fetchers[1]]
        .iter()
        .filter(|f| still_pending(f))
        .count();
    hole.release();
    let first = fetchers[0].recv_timeout(Duration::from_secs(30));
    // The queued fetch runs once the worker is free; let its connection go too.
    wait_until("the queued fetch is connected", || hole.accepted() == 2)?;
    hole.release();
    let second = fetchers[1].recv_timeout(Duration::from_secs(30));
    let refused = |a: &Result<FetchAnswer, portcullis::ChildError>| matches!(a, Ok(Err(e)) if e.ends_with("Busy"));
    let busy_ok = matches!(&busy, Err(e) if e.ends_with("portcullis: Busy"));
    if !busy_ok
        || pending != 2
        || first.is_err()
        || second.is_err()
        || refused(&first)
        || refused(&second)
    {
        return Err(format!(
            "third fetch {busy:?} while {pending} of 2 were pending; first {first:?}, second \
             {second:?}"
        ));
    }
    Ok(())
}

/// An HTTPS server on 127.0.0.1:0 with a self-signed certificate for `localhost`; answers every
/// request with `hello https`. Returns the port and the certificate (DER).
fn https_server() -> Result<(u16, Vec<u8>), String> {
    use std::sync::Arc;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .map_err(|e| format!("make a certificate: {e}"))?;
    let cert_der = certified.cert.der().to_vec();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone().into()], key)
        .map_err(|e| format!("server certificate: {e}"))?;
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(connection) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(connection, stream);
                // Read the request head (a failed handshake ends here: the client refused us).
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    match tls.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let body = b"hello https";
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(body);
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    Ok((port, cert_der))
}

/// HTTPS through the broker: a broker that trusts the test's certificate fetches
/// `https://localhost:PORT` (the name resolved and checked by the broker, the certificate
/// verified for it); the pairs that must fail: the same URL from a broker with the default
/// (Mozilla) roots, which does not trust that certificate, and the server by IP, a name the
/// certificate does not carry; plain http to an https-only grant is not granted.
pub fn fetch_https_on_loopback(default_broker: &Broker) -> Verdict {
    let (port, cert) = https_server()?;
    let trusting = Broker::start(
        crate::entries(),
        portcullis::BrokerConfig {
            tls_roots: portcullis::TlsRoots::Only(vec![cert]),
            ..portcullis::BrokerConfig::default()
        },
    )
    .map_err(|e| format!("start a broker trusting the test certificate: {e}"))?;
    let grant = |host| NetGrant {
        scheme: Scheme::Https,
        host,
        ports: vec![port],
        allow_private: true,
    };
    let options = SpawnOptions {
        profile: Some(Profile {
            fs: Vec::new(),
            net: vec![
                grant(HostPattern::Exact("localhost".into())),
                grant(HostPattern::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))),
            ],
            limits: Limits {
                fetch_timeout_ms: 5_000,
                ..Limits::default()
            },
        }),
        ..SpawnOptions::default()
    };
    let fetch = |broker: &Broker, url: String| -> Result<FetchAnswer, String> {
        let child = broker
            .spawn_with::<String, FetchAnswer, _>("fetch", &(), &options)
            .map_err(|e| format!("spawn fetch: {e}"))?;
        child.request(&url).map_err(|e| format!("{url}: {e}"))
    };
    let by_name = format!("https://localhost:{port}/hello");
    let mut problems = Vec::new();
    match fetch(&trusting, by_name.clone())? {
        Ok((200, 11, body, false)) if body == "hello https" => {}
        other => problems.push(format!("trusted {by_name} → {other:?}")),
    }
    match fetch(default_broker, by_name.clone())? {
        Err(e) if e == "portcullis: Tls" => println!("  untrusted certificate: {e}"),
        other => problems.push(format!("untrusted {by_name} → {other:?}")),
    }
    let by_ip = format!("https://127.0.0.1:{port}/hello");
    match fetch(&trusting, by_ip.clone())? {
        Err(e) if e == "portcullis: Tls" => println!("  certificate without that name: {e}"),
        other => problems.push(format!("{by_ip} (not in the certificate) → {other:?}")),
    }
    let plain = format!("http://localhost:{port}/hello");
    match fetch(&trusting, plain.clone())? {
        Err(e) if e.ends_with("denied: not-granted") => {}
        other => problems.push(format!("{plain} → {other:?}")),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
