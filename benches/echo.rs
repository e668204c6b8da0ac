//! `cargo bench --workspace --bench echo -- --json [--pin] [--rounds N]`
//!
//! Interleaves, in blocks of 200 round trips: a 1-byte SOCK_SEQPACKET ping-pong between this
//! process and a plain forked process (`raw_rtt_us`), and a typed request/response with a
//! sandboxed echo child over the Portcullis channel (`echo_rtt_us`). Prints medians and their
//! ratio measured in this run; the last stdout line is one JSON object.

mod common;

use std::time::{Duration, Instant};

use common::{json_line, median_us, r2, Options};
use portcullis::{Broker, BrokerConfig, ChildContext, Entries};

fn echo(ctx: ChildContext<u8, u8>, _: ()) -> i32 {
    while let Ok(b) = ctx.recv() {
        if ctx.send(&b).is_err() {
            return 1;
        }
    }
    0
}

fn raw_rtt(fd: libc::c_int) -> Duration {
    let mut b = [7u8; 1];
    let start = Instant::now();
    // SAFETY: `b` is a live 1-byte buffer; `fd` is our open socket.
    unsafe {
        assert_eq!(libc::write(fd, b.as_ptr().cast(), 1), 1);
        assert_eq!(libc::read(fd, b.as_mut_ptr().cast(), 1), 1);
    }
    start.elapsed()
}

fn main() {
    let options = Options::from_args(50);
    if options.pin {
        common::pin_to_cpu0();
    }
    let broker = Broker::start(
        Entries::new().register("echo", echo),
        BrokerConfig::default(),
    )
    .expect("start broker");
    let child = broker.spawn::<u8, u8, _>("echo", &()).expect("spawn echo");
    let (raw_fd, raw_pid) = common::raw_echo_peer();

    const BLOCK: usize = 200;
    for _ in 0..BLOCK {
        raw_rtt(raw_fd);
        child.request(&1).expect("echo");
    }
    let (mut raws, mut echoes) = (Vec::new(), Vec::new());
    for _ in 0..options.rounds {
        for _ in 0..BLOCK {
            raws.push(raw_rtt(raw_fd));
        }
        for i in 0..BLOCK {
            let byte = i.to_le_bytes()[0];
            let start = Instant::now();
            let back = child.request(&byte).expect("echo");
            echoes.push(start.elapsed());
            assert_eq!(back, byte);
        }
    }
    common::end_raw_echo_peer(raw_fd, raw_pid);
    let raw_rtt_us = median_us(&mut raws);
    let echo_rtt_us = median_us(&mut echoes);
    if !options.json {
        println!(
            "raw {raw_rtt_us:.2} us, echo {echo_rtt_us:.2} us, echo/raw {:.2}",
            echo_rtt_us / raw_rtt_us
        );
    }
    println!(
        "{}",
        json_line(&[
            ("bench", "\"echo\"".into()),
            ("round_trips", (options.rounds * BLOCK).to_string()),
            ("pinned", options.pin.to_string()),
            ("raw_rtt_us", r2(raw_rtt_us).to_string()),
            ("echo_rtt_us", r2(echo_rtt_us).to_string()),
            ("echo_over_raw", r2(echo_rtt_us / raw_rtt_us).to_string()),
        ])
    );
}
