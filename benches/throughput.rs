//! `cargo bench --workspace --bench throughput -- --json [--pin] [--rounds N] [--clients N]`
//!
//! `clients` sandboxed children (default 8) issue brokered `stat`s back to back — request,
//! policy decision, `openat2` beneath the grant, `fstat`, answer, audit record — while the
//! broker serves each on its doorbell; compared, in alternating rounds, with the same number of
//! raw 1-byte `SOCK_SEQPACKET` ping-pong pairs between plain processes. Reports the median
//! requests per second of each and `brokered_over_raw`; the last stdout line is one JSON object.
//! Each round's figures go to stderr.

mod common;

use std::time::{Duration, Instant};

use common::{json_line, r2, Options};
use portcullis::{Broker, BrokerConfig, ChildContext, Entries};

const PER_CLIENT: u32 = 2_000;

/// Stats `path` `PER_CLIENT` times per request; answers with how many succeeded.
fn statter(ctx: ChildContext<u32, String>, _: ()) -> i32 {
    while let Ok(path) = ctx.recv() {
        let ok = (0..PER_CLIENT)
            .filter(|_| ctx.metadata(&path).is_ok())
            .count();
        if ctx.send(&u32::try_from(ok).unwrap_or(0)).is_err() {
            return 1;
        }
    }
    0
}

fn raw_round(pairs: &[(libc::c_int, libc::pid_t)]) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for &(fd, _) in pairs {
            s.spawn(move || {
                let mut b = [1u8; 1];
                for _ in 0..PER_CLIENT {
                    // SAFETY: `b` is a live 1-byte buffer; `fd` is our open socket.
                    unsafe {
                        assert_eq!(libc::write(fd, b.as_ptr().cast(), 1), 1);
                        assert_eq!(libc::read(fd, b.as_mut_ptr().cast(), 1), 1);
                    }
                }
            });
        }
    });
    f64::from(PER_CLIENT) * pairs.len() as f64 / start.elapsed().as_secs_f64()
}

fn brokered_round(children: &[portcullis::Child<String, u32>], path: &str) -> f64 {
    let start = Instant::now();
    for child in children {
        child.send(&path.to_owned()).expect("start");
    }
    for child in children {
        assert_eq!(
            child.recv_timeout(Duration::from_secs(120)).expect("done"),
            PER_CLIENT,
            "every stat succeeded"
        );
    }
    f64::from(PER_CLIENT) * children.len() as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let options = Options::from_args(5);
    let number = |flag: &str| -> Option<usize> {
        std::env::args()
            .skip_while(|a| a != flag)
            .nth(1)
            .and_then(|n| n.parse().ok())
    };
    let clients = number("--clients").unwrap_or(8);
    if options.pin {
        common::pin_to_cpu0();
    }
    let broker = Broker::start(
        Entries::new().register("statter", statter),
        BrokerConfig {
            prefork: 0,
            ..BrokerConfig::default()
        },
    )
    .expect("start broker");
    let dir = std::env::temp_dir().join(format!(
        "portcullis-bench-throughput-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("f"), "x").expect("file");
    let spawn_options = common::read_grant_options(&dir);
    let children: Vec<_> = (0..clients)
        .map(|_| {
            broker
                .spawn_with::<String, u32, _>("statter", &(), &spawn_options)
                .expect("spawn")
        })
        .collect();
    let pairs: Vec<_> = (0..clients).map(|_| common::raw_echo_peer()).collect();
    let path = dir.join("f").display().to_string();

    brokered_round(&children, &path);
    raw_round(&pairs);
    let (mut raws, mut brokered) = (Vec::new(), Vec::new());
    for round in 1..=options.rounds {
        let (raw, brokered_rps) = (raw_round(&pairs), brokered_round(&children, &path));
        // Round by round on stderr: the host's speed drifts within a run (see BENCHMARKS.md).
        eprintln!("round {round}: raw {raw:.0} rps, brokered {brokered_rps:.0} rps");
        raws.push(raw);
        brokered.push(brokered_rps);
    }
    for (fd, pid) in pairs {
        common::end_raw_echo_peer(fd, pid);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let raw_rps = median(raws);
    let brokered_rps = median(brokered);
    if !options.json {
        println!("{clients} clients: raw {raw_rps:.0} rps, brokered {brokered_rps:.0} rps");
    }
    println!(
        "{}",
        json_line(&[
            ("bench", "\"throughput\"".into()),
            ("clients", clients.to_string()),
            ("rounds", options.rounds.to_string()),
            ("pinned", options.pin.to_string()),
            ("raw_rps", format!("{raw_rps:.0}")),
            ("brokered_rps", format!("{brokered_rps:.0}")),
            ("brokered_over_raw", r2(brokered_rps / raw_rps).to_string()),
        ])
    );
}
