//! (Each benchmark uses a subset of these helpers.)
#![allow(dead_code)]
//! Shared by the benchmarks: argument parsing, CPU pinning, medians, the JSON line.

use std::time::Duration;

/// Options every benchmark takes: `--json` (print the JSON object last), `--pin` (run the
/// broker, zygote and children on CPU 0), `--rounds N` (interleaved rounds).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub json: bool,
    pub pin: bool,
    pub rounds: usize,
}

impl Options {
    pub fn from_args(default_rounds: usize) -> Options {
        let mut options = Options {
            json: false,
            pin: false,
            rounds: default_rounds,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--json" => options.json = true,
                "--pin" => options.pin = true,
                "--rounds" => {
                    options.rounds = args
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(default_rounds);
                }
                // cargo bench passes --bench; anything else is ignored too.
                _ => {}
            }
        }
        options
    }
}

/// Pins the calling process (and everything it starts later) to CPU 0.
pub fn pin_to_cpu0() {
    // SAFETY: `set` is a live, zeroed cpu_set_t; CPU_SET writes inside it; sched_setaffinity
    // only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Median of samples, in microseconds.
pub fn median_us(samples: &mut [Duration]) -> f64 {
    samples.sort_unstable();
    let n = samples.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    };
    mid.as_secs_f64() * 1e6
}

/// Rounds to 2 decimals for the JSON line.
pub fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A JSON value for a few keys (no serde_json needed for flat numbers).
pub fn json_line(pairs: &[(&str, String)]) -> String {
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", body.join(","))
}
