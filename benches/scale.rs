//! `cargo bench --workspace --bench scale -- --json [--children N] [--rounds R]`
//!
//! One broker holds `N` (default 1,000) live, idle sandboxed children. Measures the time to
//! spawn them all (`spawn_all_ms`, each spawn returning a locked-down child that answered one
//! echo), the mean proportional set size of an idle child (`idle_child_pss_kib`, from
//! `/proc/<pid>/smaps_rollup`: shared pages are split between the processes sharing them), the
//! broker's resident memory per child (`broker_rss_per_child_kib`: RSS with the children minus
//! RSS before, divided by N, from the first full round: later rounds reuse what the allocator
//! kept), the time to end them all (`end_all_ms`: drop every handle, then
//! wait until the zygote has reaped each), and the broker's fd count per child. `R` rounds
//! (default 3) run one after the other in one broker; medians are reported. The last stdout
//! line is one JSON object.

mod common;

use std::time::{Duration, Instant};

use common::{json_line, r2};
use portcullis::{Broker, BrokerConfig, ChildContext, Entries};

fn idle(ctx: ChildContext<u8, u8>, _: ()) -> i32 {
    while let Ok(b) = ctx.recv() {
        if ctx.send(&b).is_err() {
            return 1;
        }
    }
    0
}

fn rss_kib(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |pages| pages * 4.0)
}

fn pss_kib(pid: u32) -> Option<f64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

fn zygote_children(broker: &Broker) -> usize {
    let z = broker.zygote_pid();
    std::fs::read_to_string(format!("/proc/{z}/task/{z}/children"))
        .map_or(0, |s| s.split_whitespace().count())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Round {
    spawn_all_ms: f64,
    pss_kib: f64,
    rss_per_child_kib: f64,
    fds_per_child: f64,
    end_all_ms: f64,
}

fn round(broker: &Broker, n: usize) -> Round {
    let rss_before = rss_kib("self");
    let fds_before = open_fds();
    let started = Instant::now();
    let mut children = Vec::with_capacity(n);
    for i in 0..n {
        let child = broker.spawn::<u8, u8, _>("idle", &()).unwrap_or_else(|e| {
            panic!("spawn child {i}: {e}: {:?}", std::error::Error::source(&e))
        });
        assert_eq!(child.request(&1).expect("first echo"), 1);
        children.push(child);
    }
    let spawn_all_ms = started.elapsed().as_secs_f64() * 1e3;
    // Let the pool refill settle, then read memory.
    std::thread::sleep(Duration::from_millis(200));
    let rss_after = rss_kib("self");
    let fds_after = open_fds();
    let pss: Vec<f64> = children.iter().filter_map(|c| pss_kib(c.pid())).collect();
    assert_eq!(pss.len(), n, "every child's smaps_rollup must be readable");
    let pss_kib = pss.iter().sum::<f64>() / pss.len() as f64;
    let started = Instant::now();
    drop(children);
    let pooled = broker.pooled_children();
    while zygote_children(broker) > pooled.max(2) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let end_all_ms = started.elapsed().as_secs_f64() * 1e3;
    Round {
        spawn_all_ms,
        pss_kib,
        rss_per_child_kib: (rss_after - rss_before) / n as f64,
        fds_per_child: (fds_after as f64 - fds_before as f64) / n as f64,
        end_all_ms,
    }
}

fn main() {
    let options = common::Options::from_args(3);
    let mut children = 1000;
    let mut args = std::env::args();
    while let Some(a) = args.next() {
        if a == "--children" {
            children = args.next().and_then(|n| n.parse().ok()).unwrap_or(children);
        }
    }
    let broker = Broker::start(
        Entries::new().register("idle", idle),
        BrokerConfig::default(),
    )
    .expect("start broker");
    // Warm the broker's allocator and the zygote's pool first.
    let _warm_up = round(&broker, 50);
    let rounds: Vec<Round> = (0..options.rounds)
        .map(|_| round(&broker, children))
        .collect();
    let pick = |f: fn(&Round) -> f64| median(&mut rounds.iter().map(f).collect::<Vec<_>>());
    let spawn_all_ms = pick(|r| r.spawn_all_ms);
    let pss = pick(|r| r.pss_kib);
    // The allocator keeps freed memory for reuse, so only the first full round shows the RSS the
    // children cost; later rounds reuse it.
    let rss = rounds[0].rss_per_child_kib;
    let fds = pick(|r| r.fds_per_child);
    let end_all_ms = pick(|r| r.end_all_ms);
    if !options.json {
        println!(
            "{children} children: spawn all {spawn_all_ms:.0} ms, idle child PSS {pss:.0} KiB, \
             broker RSS/child {rss:.1} KiB, fds/child {fds:.1}, end all {end_all_ms:.0} ms"
        );
    }
    println!(
        "{}",
        json_line(&[
            ("bench", "\"scale\"".into()),
            ("children", children.to_string()),
            ("rounds", options.rounds.to_string()),
            ("spawn_all_ms", r2(spawn_all_ms).to_string()),
            ("idle_child_pss_kib", r2(pss).to_string()),
            ("broker_rss_per_child_kib", r2(rss).to_string()),
            ("broker_fds_per_child", r2(fds).to_string()),
            ("end_all_ms", r2(end_all_ms).to_string()),
        ])
    );
}
