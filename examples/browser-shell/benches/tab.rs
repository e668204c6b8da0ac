//! `cargo bench --workspace --bench tab -- --json`: how long a new tab takes to show its first
//! page — renderer spawned (through the zygote, from its pool of pre-forked children when one is
//! waiting), the bundled page fetched by the broker for it, parsed and laid out in the sandbox,
//! and the page received and checked by the broker (`new_tab_first_paint_ms`).
//!
//! In the same run, interleaved with it, the figures that say where the time goes:
//! - `spawn_ms`: the spawn alone (a renderer locked down and ready for its first message);
//! - `warm_navigate_ms`: the same page in a renderer that already runs (fetch + parse + layout +
//!   the page over the channel);
//! - `new_tab_no_pool_ms`: a new tab in a second broker whose zygote keeps no pre-forked
//!   children, so each renderer is forked and locked down on request;
//! - `raw_fetch_ms`: the same page with no sandbox at all — a plain HTTP GET from this process
//!   and the same engine's parse and layout, in process.
//!
//! Medians of `--runs N` (default 40, at least 30) runs each; the last stdout line is one JSON
//! object. Before each new tab the benchmark waits (at most 200 ms) for the zygote to refill its
//! pool, as a person opening tabs would give it time to.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use browser_render::{Document, ImageTable, Limits};
use browser_shell::pages::PagesServer;
use browser_shell::site::{Grants, Site, DEFAULT_POLICY};
use browser_shell::{entries, Shell, ShellConfig};
use portcullis::policy::Policy;
use portcullis::Broker;

const WIDTH: u16 = 100;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A plain HTTP/1.0 GET of `path` from 127.0.0.1:`port`: the body.
fn raw_get(port: u16, path: &str) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |p| p + 4);
    response.split_off(at)
}

fn main() {
    // In the zygote (this binary re-executed by the broker) this never returns.
    Broker::serve_if_zygote(&entries());
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(40)
        .max(30);
    let pages = PagesServer::start().expect("pages server");
    let config = |prefork: usize| ShellConfig {
        grants: Grants {
            policy: Policy::from_toml_str(DEFAULT_POLICY, "policy.toml").expect("policy"),
            files: None,
            allowed_origins: vec![Site::parse_origin(&pages.origin()).expect("origin")],
        },
        nav_timeout: Duration::from_secs(20),
        limits: Limits::default(),
        home: pages.home(),
        escape_port: pages.port(),
        prefork,
    };
    let shell = match Shell::start(config(2)) {
        Ok(shell) => shell,
        Err(e) if e.is_host_restriction() => {
            println!("{{\"skipped\":\"this host cannot sandbox: {e}\"}}");
            return;
        }
        Err(e) => panic!("start the broker: {e}"),
    };
    // A second broker whose zygote forks each renderer on request (no pool), for comparison.
    let unpooled = Shell::start(config(0)).expect("start the second broker");
    let url = format!("{}/lists.html", pages.origin());
    let site = Site::of(&url::Url::parse(&url).expect("url")).expect("site");
    let wait_for_pool = |shell: &Shell| {
        let until = Instant::now() + Duration::from_millis(200);
        while shell.broker().pooled_children() < 2 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    // Warm up: caches, the pool, the pages server.
    for _ in 0..5 {
        let mut slot = None;
        shell
            .navigate(&mut slot, &url, WIDTH)
            .expect("warm-up navigation");
        let _ = raw_get(pages.port(), "/lists.html");
    }
    let (mut first_paint, mut spawn, mut warm, mut raw) = (vec![], vec![], vec![], vec![]);
    let mut unpooled_paint = vec![];
    let mut pooled_at_start = 0;
    for _ in 0..runs {
        // New tab → first paint.
        wait_for_pool(&shell);
        if shell.broker().pooled_children() > 0 {
            pooled_at_start += 1;
        }
        let mut slot = None;
        let t = Instant::now();
        let loaded = shell.navigate(&mut slot, &url, WIDTH).expect("navigate");
        first_paint.push(ms(t.elapsed()));
        assert!(!loaded.page.lines.is_empty());
        // The same page again in the running renderer.
        let t = Instant::now();
        shell
            .navigate(&mut slot, &url, WIDTH)
            .expect("navigate again");
        warm.push(ms(t.elapsed()));
        drop(slot);
        // The spawn alone.
        wait_for_pool(&shell);
        let t = Instant::now();
        let renderer = shell.spawn_renderer(&site).expect("spawn");
        spawn.push(ms(t.elapsed()));
        drop(renderer);
        // New tab with no pool: the zygote forks the renderer now.
        let mut slot = None;
        let t = Instant::now();
        unpooled
            .navigate(&mut slot, &url, WIDTH)
            .expect("navigate, no pool");
        unpooled_paint.push(ms(t.elapsed()));
        drop(slot);
        // No sandbox: fetch, parse and lay out in this process.
        let t = Instant::now();
        let body = raw_get(pages.port(), "/lists.html");
        let doc = Document::parse(&body, &url, &Limits::default());
        let page = doc.layout(WIDTH, &ImageTable::new());
        raw.push(ms(t.elapsed()));
        assert!(!page.lines.is_empty());
    }
    let first_paint = median(&mut first_paint);
    let spawn = median(&mut spawn);
    let warm = median(&mut warm);
    let raw = median(&mut raw);
    let unpooled_paint = median(&mut unpooled_paint);
    let ratio = first_paint / raw;
    if !json {
        println!("new tab → first paint      {first_paint:8.3} ms (median of {runs})");
        println!("  spawn alone              {spawn:8.3} ms");
        println!("  navigate, warm renderer  {warm:8.3} ms");
        println!("new tab, no pool (fork)    {unpooled_paint:8.3} ms");
        println!("no sandbox: fetch + render {raw:8.3} ms");
        println!("ratio                      {ratio:8.2}x");
        println!("runs that found a pooled child waiting: {pooled_at_start} of {runs}");
    }
    println!(
        "{{\"new_tab_first_paint_ms\":{first_paint:.3},\"spawn_ms\":{spawn:.3},\"warm_navigate_ms\":{warm:.3},\"new_tab_no_pool_ms\":{unpooled_paint:.3},\"raw_fetch_ms\":{raw:.3},\"first_paint_over_raw\":{ratio:.2},\"runs\":{runs},\"pooled_runs\":{pooled_at_start},\"target_ms\":10}}"
    );
}
