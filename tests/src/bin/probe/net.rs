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
