//! The hostile-child suite: one scenario per attack, each run next to a bystander echo child.
//!
//! For every attack the scenario checks, in one broker process:
//!
//! - the broker never panics (a panic hook counts panics on any broker thread), never aborts
//!   (the probe would not return a verdict) and never blocks (every wait has a deadline, and the
//!   bystander's echoes keep completing during the attack);
//! - the attacking child ends the way it should (a protocol violation, a clear error in the
//!   child, a timed-out send), and only it;
//! - the broker's fd count (`/proc/self/fd`) is back at its baseline once the attacker is reaped
//!   and the zygote's pre-forked pool is full again;
//! - the bystander's echo round trip does not starve: the median during the attack is within
//!   `max(2 × baseline median, baseline median + 2 ms)`.
//!
//! Why that bound, honestly: this is a correctness property (an attacker must not starve other
//! children of the broker's attention), but it is measured on a noisy 2-vCPU VM shared with
//! other work, where an unpinned wake-up can wait for a 4 ms scheduler tick. Medians over
//! hundreds of round trips remove single outliers; the 2 ms floor keeps a baseline of ~50 µs
//! from turning one late tick into a failure. A broker that really starved the bystander —
//! blocked on the attacker, or serving it in a loop — makes each round trip take as long as the
//! attack (seconds), far past either bound. The measured figures and ratio are printed.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use portcullis::ipc::service::ServiceRequest;
use portcullis::ipc::Channel;
use portcullis::policy::{Limits, Profile};
use portcullis::{Broker, ChildContext, ChildEnd, ChildError, OpenOptions, SpawnOptions};
use serde::{Deserialize, Serialize};

use crate::files::{grant, Tree, READ_LIST};
use crate::Verdict;

/// Which of a child's two channels an attack uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Which {
    /// The application's channel (fd 3): read when the application receives.
    App,
    /// The service channel (fd 4): read by the broker's thread for this child when the child
    /// rings its doorbell, which the attack does after writing, as the real client does.
    Service,
}

/// What the hostile child does once locked down.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Attack {
    /// 64 datagrams of garbage, the first certainly malformed, the rest from a seeded PRNG.
    Garbage(Which),
    /// A message whose first length field claims 2^40 bytes (1 TiB), and nothing behind it.
    TebibyteLength(Which),
    /// 1,000 fds in one message: one `sendmsg` with 1,000 (the kernel refuses more than 253
    /// per datagram), then 253 + 253 + 253 + 241 on the four datagrams of one message.
    ThousandFds(Which),
    /// Stat requests paced at `per_second` for `seconds`, through the normal client.
    Flood {
        path: String,
        per_second: u32,
        seconds: u32,
    },
    /// The first datagram of a message on each channel, then exit.
    HalfThenDie,
    /// Ask for a large directory listing and never read the answer, nor anything else.
    StopReading { dir: String },
    /// Open `path` `count` times, keeping every file open.
    OpenMany { path: String, count: u32 },
    /// Ring the service doorbell `rings` times with nothing written; then write a stat of
    /// `path` on the raw service channel without ringing and look for an answer; then ring;
    /// then stat `path` through the normal client.
    Doorbell { path: String, rings: u32 },
    /// Make the doorbell's syscall with another first argument: a seccomp violation.
    DoorbellWrongTag,
    /// Ring the doorbell for a mailbox request that breaks the protocol.
    Mailbox(MailboxAttack),
    /// Write a `CreateDir` of `path` in the mailbox and ring for it, ring again with the same
    /// sequence number, then ring with a new one; then ask for the mailbox a second time.
    MailboxReplay { path: String },
}

/// How a mailbox request breaks the protocol.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum MailboxAttack {
    /// A length past the request half of the mailbox.
    Oversized,
    /// 64 bytes that are no request.
    Garbage,
}

/// What the hostile child reports (when the attack leaves it able to).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Report {
    /// Never sent; variant 0, so a hostile frame's first length field is this vector's.
    Bytes(Vec<u8>),
    /// The attack is under way (the child has stopped reading).
    Ready,
    Flood {
        sent: u32,
        ok: u32,
        rate_limited: u32,
        other: u32,
        elapsed_ms: u64,
    },
    Opens {
        opened: u32,
        emfile: u32,
        other: u32,
        first_error: String,
    },
    /// The kernel refused every datagram of the attack (`ETOOMANYREFS`): nothing was sent.
    Refused,
    Doorbell {
        /// Rings that returned anything but 0.
        failed_rings: u32,
        elapsed_ms: u64,
        /// An answer to the unannounced request arrived within 200 ms, before any ring.
        answered_unrung: bool,
        /// It arrived once the doorbell rang.
        answered_after_ring: bool,
        /// The normal client's stat afterwards succeeded.
        stat_ok: bool,
    },
    /// The answers to the same mailbox request: first ring, the same ring again, a new ring.
    MailboxReplay {
        first: String,
        repeated: String,
        next: String,
        /// The doorbell returned the same length for the first ring and its repeat.
        same_length: bool,
        /// What asking for the mailbox a second time got.
        ask_again: String,
    },
}

/// The service doorbell, as a hostile child may ring it for what its channel holds: the raw
/// syscall's result. (Its second and third arguments, 0, say "on the channel"; left to chance,
/// they would name a mailbox request.)
fn ring(tag: u64) -> i64 {
    use portcullis::ipc::service::DOORBELL_SYSCALL;
    // SAFETY: the doorbell takes no pointers; the child's seccomp filter stops it before the
    // kernel would look at it.
    unsafe { libc::syscall(DOORBELL_SYSCALL as libc::c_long, tag, 0_u64, 0_u64) }
}

/// Rings for the mailbox request `seq`, already written, and reads the answer it names.
fn mailbox_call(
    ctx: &ChildContext<Report, Vec<u8>>,
    len: usize,
    seq: u64,
) -> (String, Option<u64>) {
    use portcullis::ipc::mailbox::take_answer;
    use portcullis::ipc::service::ServiceResponse;
    let Some(mailbox) = ctx.raw_service_mailbox() else {
        return ("no mailbox".to_owned(), None);
    };
    match ctx.ring_service_doorbell_with(len as u64, seq) {
        Ok(0) => ("answered on the channel".to_owned(), Some(0)),
        Ok(n) => match take_answer::<ServiceResponse>(mailbox.words(), n) {
            Ok(answer) => (format!("{answer:?}"), Some(n)),
            Err(e) => (format!("undecodable answer: {e}"), Some(n)),
        },
        Err(e) => (format!("ring failed: {e}"), None),
    }
}

fn with_channel<R>(
    ctx: &ChildContext<Report, Vec<u8>>,
    which: Which,
    f: impl FnOnce(&Channel) -> R,
) -> R {
    match which {
        Which::App => f(ctx.raw_channel()),
        Which::Service => {
            let done = f(&ctx.raw_service_channel());
            ring(portcullis::ipc::service::DOORBELL_TAG);
            done
        }
    }
}

/// xorshift64*: deterministic garbage without a dependency.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// `n` as a postcard varint.
fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n.to_le_bytes()[0]);
}

/// The hostile child's entry.
pub fn hostile_child(ctx: ChildContext<Report, Vec<u8>>, attack: Attack) -> i32 {
    match attack {
        Attack::Garbage(which) => with_channel(&ctx, which, |channel| {
            // Header "last", then a variant number no enum of ours has.
            let _ = channel.send_raw_datagram(&[0x00, 0xff, 0xfe, 0x13, 0x37, 0x99], &[]);
            let mut state = 0x9e37_79b9_7f4a_7c15_u64;
            for _ in 0..63 {
                let len = usize::try_from(next_random(&mut state) % 512).unwrap_or(0);
                let bytes: Vec<u8> = (0..len)
                    .map(|_| next_random(&mut state).to_le_bytes()[0])
                    .collect();
                if channel.send_raw_datagram(&bytes, &[]).is_err() {
                    break;
                }
            }
        }),
        Attack::TebibyteLength(which) => with_channel(&ctx, which, |channel| {
            // App: header, `ChildToBroker::App` (3), `Report::Bytes` (0), the vector's length.
            // Service: header, `ServiceRequest::Open` (0), the path string's length.
            let mut frame = match which {
                Which::App => vec![0x00, 3, 0],
                Which::Service => vec![0x00, 0],
            };
            varint(1 << 40, &mut frame);
            let _ = channel.send_raw_datagram(&frame, &[]);
        }),
        Attack::ThousandFds(which) => {
            let sent = with_channel(&ctx, which, |channel| {
                let fd = channel.as_fd();
                let thousand: Vec<BorrowedFd<'_>> = vec![fd; 1000];
                // The kernel refuses this one (EINVAL: more than SCM_MAX_FD); nothing is sent.
                let _ = channel.send_raw_datagram(&[0x00, 0], &thousand);
                // One message of four datagrams carrying 1,000 fds in all (the later sends may
                // meet ETOOMANYREFS: the kernel bounds the fds a user has in flight by the
                // sender's RLIMIT_NOFILE, and an earlier attacker's may still be queued).
                [(0x01, 253), (0x01, 253), (0x01, 253), (0x00, 241)]
                    .into_iter()
                    .filter(|&(header, count)| {
                        channel
                            .send_raw_datagram(&[header, 0], &thousand[..count])
                            .is_ok()
                    })
                    .count()
            });
            if sent == 0 {
                // The kernel refused every datagram: nothing reached the broker. Say so on the
                // application channel (no fds), then end normally.
                return i32::from(ctx.send(&Report::Refused).is_err());
            }
        }
        Attack::Flood {
            path,
            per_second,
            seconds,
        } => {
            let total = per_second.saturating_mul(seconds);
            let (mut ok, mut rate_limited, mut other) = (0, 0, 0);
            let start = Instant::now();
            for i in 0..total {
                let due = start + Duration::from_secs(u64::from(i)) / per_second;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                match ctx.metadata(&path) {
                    Ok(_) => ok += 1,
                    Err(e) if e.to_string().ends_with("rate-limited") => rate_limited += 1,
                    Err(_) => other += 1,
                }
            }
            let report = Report::Flood {
                sent: total,
                ok,
                rate_limited,
                other,
                elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
            };
            if ctx.send(&report).is_err() {
                return 2;
            }
            // Any message ends it.
            return i32::from(ctx.recv().is_err());
        }
        Attack::HalfThenDie => {
            // A first datagram that says more follow, then exit: the service channel first, so
            // the application's receive below sees the app channel's half message.
            with_channel(&ctx, Which::Service, |c| {
                c.send_raw_datagram(&[0x01, 0, 0x80], &[])
            })
            .ok();
            let _ = ctx
                .raw_channel()
                .send_raw_datagram(&[0x01, 3, 0, 0x80], &[]);
            return 0;
        }
        Attack::StopReading { dir } => {
            let sent = with_channel(&ctx, Which::Service, |c| {
                c.send(&ServiceRequest::ReadDir { path: dir }, &[], None)
            });
            if sent.is_err() || ctx.send(&Report::Ready).is_err() {
                return 2;
            }
            // Never read again.
        }
        Attack::OpenMany { path, count } => {
            let options = OpenOptions::new().read(true);
            let mut files = Vec::new();
            let (mut emfile, mut other) = (0, 0);
            let mut first_error = String::new();
            for _ in 0..count {
                match ctx.open(&path, &options) {
                    Ok(file) => files.push(file),
                    Err(e) => {
                        if first_error.is_empty() {
                            first_error = format!("{e} (errno {:?})", e.raw_os_error());
                        }
                        if e.raw_os_error() == Some(libc::EMFILE) {
                            emfile += 1;
                        } else {
                            other += 1;
                        }
                    }
                }
            }
            let report = Report::Opens {
                opened: u32::try_from(files.len()).unwrap_or(u32::MAX),
                emfile,
                other,
                first_error,
            };
            if ctx.send(&report).is_err() {
                return 2;
            }
            return i32::from(ctx.recv().is_err());
        }
        Attack::Doorbell { path, rings } => {
            use portcullis::ipc::service::{ServiceResponse, DOORBELL_TAG};
            let start = Instant::now();
            let failed_rings = (0..rings)
                .map(|_| ring(DOORBELL_TAG))
                .filter(|&r| r != 0)
                .count();
            let elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            // The rings spent the request budget; let a few tokens come back.
            std::thread::sleep(Duration::from_millis(100));
            let (answered_unrung, answered_after_ring) = {
                let channel = ctx.raw_service_channel();
                let request = ServiceRequest::Stat { path: path.clone() };
                if channel.send(&request, &[], None).is_err() {
                    return 3;
                }
                let answered = |wait: Duration| {
                    matches!(
                        channel.recv::<ServiceResponse>(Some(Instant::now() + wait)),
                        Ok((ServiceResponse::Stat(_), _))
                    )
                };
                let unrung = answered(Duration::from_millis(200));
                ring(DOORBELL_TAG);
                (unrung, !unrung && answered(Duration::from_secs(10)))
            };
            let report = Report::Doorbell {
                failed_rings: u32::try_from(failed_rings).unwrap_or(u32::MAX),
                elapsed_ms,
                answered_unrung,
                answered_after_ring,
                stat_ok: ctx.metadata(&path).is_ok(),
            };
            if ctx.send(&report).is_err() {
                return 2;
            }
            return i32::from(ctx.recv().is_err());
        }
        Attack::DoorbellWrongTag => {
            ring(portcullis::ipc::service::DOORBELL_TAG ^ 1);
        }
        Attack::Mailbox(attack) => {
            use portcullis::ipc::mailbox::REQUEST_BYTES;
            use portcullis::ipc::service::DOORBELL_SYSCALL;
            let Some(mailbox) = ctx.raw_service_mailbox() else {
                return 4;
            };
            let len = match attack {
                MailboxAttack::Oversized => REQUEST_BYTES + 1,
                MailboxAttack::Garbage => {
                    for word in &mailbox.words()[..8] {
                        word.store(u64::MAX, Ordering::Relaxed);
                    }
                    64
                }
            };
            // Raw, once: the client's wrapper would ring again after EINTR.
            // SAFETY: the doorbell takes no pointers.
            unsafe {
                libc::syscall(
                    DOORBELL_SYSCALL as libc::c_long,
                    portcullis::ipc::service::DOORBELL_TAG,
                    len as u64,
                    1_000_u64,
                );
            }
        }
        Attack::MailboxReplay { path } => {
            use portcullis::ipc::mailbox::put_request;
            let Some(mailbox) = ctx.raw_service_mailbox() else {
                return 4;
            };
            let request = ServiceRequest::CreateDir { path };
            let Some(len) = put_request(mailbox.words(), &request) else {
                return 4;
            };
            let (first, first_len) = mailbox_call(&ctx, len, 1_000);
            let (repeated, repeated_len) = mailbox_call(&ctx, len, 1_000);
            let (next, _) = mailbox_call(&ctx, len, 1_001);
            let report = Report::MailboxReplay {
                first,
                repeated,
                next,
                same_length: first_len.is_some() && first_len == repeated_len,
                ask_again: match ctx.ring_service_doorbell_with(portcullis::ipc::mailbox::ASK, 0) {
                    Ok(fd) => format!("fd {fd}"),
                    Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(0)),
                },
            };
            if ctx.send(&report).is_err() {
                return 2;
            }
            return i32::from(ctx.recv().is_err());
        }
    }
    // Wait for the broker to act (it kills us), or for the test to.
    std::thread::sleep(Duration::from_secs(60));
    5
}

/// Scenario names this module runs.
pub fn handles(scenario: &str) -> bool {
    scenario.starts_with("hostile-suite-")
}

pub fn run(broker: &Broker, scenario: &str) -> Verdict {
    install_panic_counter();
    let verdict = match scenario.strip_prefix("hostile-suite-").unwrap_or_default() {
        "garbage" => repeated(broker, |b| violation(b, Attack::Garbage(Which::App), None))
            .and_then(|()| {
                repeated(broker, |b| {
                    violation(b, Attack::Garbage(Which::Service), None)
                })
            }),
        "tebibyte" => repeated(broker, |b| {
            violation(b, Attack::TebibyteLength(Which::App), None)
        })
        .and_then(|()| {
            repeated(broker, |b| {
                violation(b, Attack::TebibyteLength(Which::Service), None)
            })
        }),
        "thousand-fds" => repeated(broker, |b| {
            violation(b, Attack::ThousandFds(Which::App), None)
        })
        .and_then(|()| {
            repeated(broker, |b| {
                violation(b, Attack::ThousandFds(Which::Service), None)
            })
        }),
        "spawn-while-fds-in-flight" => spawn_while_fds_in_flight(broker),
        "fd-message-while-fds-in-flight" => fd_message_while_fds_in_flight(broker),
        "half-then-die" => repeated(broker, |b| violation(b, Attack::HalfThenDie, None)),
        "flood" => under_attack(broker, flood),
        "stop-reading" => under_attack(broker, stop_reading),
        "open-many" => under_attack(broker, open_many),
        "doorbell" => under_attack(broker, doorbell_storm),
        "doorbell-wrong-tag" => doorbell_wrong_tag(broker),
        "mailbox" => repeated(broker, |b| {
            violation(b, Attack::Mailbox(MailboxAttack::Oversized), None)
        })
        .and_then(|()| {
            repeated(broker, |b| {
                violation(b, Attack::Mailbox(MailboxAttack::Garbage), None)
            })
        }),
        "mailbox-replay" => mailbox_replay(broker),
        "idle-children" => idle_children_hold_no_fds_in_flight(broker),
        other => Err(format!("unknown hostile scenario {other:?}")),
    };
    let panics = PANICS.load(Ordering::SeqCst);
    match verdict {
        Ok(()) if panics > 0 => Err(format!("{panics} panic(s) in the broker process")),
        other => other,
    }
}

static PANICS: AtomicU32 = AtomicU32::new(0);

/// Counts every panic in this (the broker's) process, on any thread, then reports it as usual.
fn install_panic_counter() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// One bystander round trip, with a deadline so a blocked broker fails the test, not hangs it.
fn echo_once(
    bystander: &portcullis::Child<crate::Down, crate::Up>,
    n: u32,
) -> Result<Duration, String> {
    let payload = n.to_le_bytes().repeat(16);
    let start = Instant::now();
    bystander
        .send(&crate::Down::Echo(payload.clone()))
        .map_err(|e| format!("bystander send: {e}"))?;
    match bystander.recv_timeout(Duration::from_secs(20)) {
        Ok(crate::Up::Echo(back)) if back == payload => Ok(start.elapsed()),
        other => Err(format!("bystander echo {n}: {other:?}")),
    }
}

/// Runs a short attack again and again for about a second and a half, so the bystander is
/// measured while attacks are in progress.
/// Runs a short attack again and again for about a second and a half, so the bystander is
/// measured while attacks are in progress.
fn repeated(broker: &Broker, attack: impl Fn(&Broker) -> Result<String, String> + Sync) -> Verdict {
    under_attack(broker, |b| {
        let start = Instant::now();
        let mut rounds = 0;
        let mut last = String::new();
        while rounds < 3 || start.elapsed() < Duration::from_millis(1500) {
            last = attack(b)?;
            rounds += 1;
        }
        Ok(format!("{rounds} attackers, each: {last}"))
    })
}

/// The common frame: bystander baseline, the attack on another thread while the bystander is
/// measured, then the checks of the module doc.
fn under_attack(
    broker: &Broker,
    attack: impl FnOnce(&Broker) -> Result<String, String> + Send,
) -> Verdict {
    let bystander = crate::spawn_echo(broker)?;
    let verdict = beside(broker, &bystander, attack);
    // Ended and reaped before its handle is dropped, which then waits for its broker thread: its
    // fds are closed before the next scenario in this process counts its baseline.
    bystander.kill();
    let _ = bystander.wait_timeout(Duration::from_secs(10));
    verdict
}

/// [`under_attack`] with its bystander.
fn beside(
    broker: &Broker,
    bystander: &portcullis::Child<crate::Down, crate::Up>,
    attack: impl FnOnce(&Broker) -> Result<String, String> + Send,
) -> Verdict {
    for n in 0..50 {
        echo_once(bystander, n)?;
    }
    crate::settle_pool(broker)?;
    let baseline_fds = crate::open_fd_count();
    let mut before: Vec<Duration> = (0..500)
        .map(|n| echo_once(bystander, n))
        .collect::<Result<_, _>>()?;
    let baseline = median(&mut before);

    let done = AtomicBool::new(false);
    let (attack_result, mut during, peak_fds) = std::thread::scope(|s| {
        let attacker = s.spawn(|| {
            let result = attack(broker);
            done.store(true, Ordering::SeqCst);
            result
        });
        let mut during = Vec::new();
        let mut peak_fds = baseline_fds;
        let mut n = 0_u32;
        let mut failure = None;
        while !done.load(Ordering::SeqCst) {
            match echo_once(bystander, n) {
                Ok(d) => during.push(d),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            if n % 32 == 0 {
                peak_fds = peak_fds.max(crate::open_fd_count());
            }
            n = n.wrapping_add(1);
        }
        let result = attacker
            .join()
            .unwrap_or_else(|_| Err("the attack thread panicked".into()));
        match failure {
            Some(e) => (Err(e), during, peak_fds),
            None => (result, during, peak_fds),
        }
    });
    let detail = attack_result?;
    println!("  attack: {detail}");

    // The bystander still answers correctly after the attack.
    echo_once(bystander, u32::MAX)?;

    // Fds: back at the baseline once the attacker is reaped and the pool is full again
    // (closing a reaped child's listener and cgroup happen just after its end is reported).
    let deadline = Instant::now() + Duration::from_secs(10);
    let after_fds = loop {
        crate::settle_pool(broker)?;
        let now = crate::open_fd_count();
        if now == baseline_fds || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    println!("  broker fds: {baseline_fds} before, peak {peak_fds} during, {after_fds} after");
    if after_fds != baseline_fds {
        return Err(format!(
            "broker fds {baseline_fds} before, {after_fds} after the attacker was reaped"
        ));
    }

    // Starvation: see the module doc for the bound.
    if during.len() < 100 {
        return Err(format!(
            "only {} bystander round trips during the attack; too few to judge",
            during.len()
        ));
    }
    let during_median = median(&mut during);
    let bound = (baseline * 2).max(baseline + Duration::from_millis(2));
    let ratio = during_median.as_secs_f64() / baseline.as_secs_f64().max(1e-9);
    println!(
        "  bystander echo round trip: baseline median {} µs ({} trips), during the attack {} µs \
         ({} trips): ratio {ratio:.2}; bound {} µs = max(2 × baseline, baseline + 2 ms)",
        baseline.as_micros(),
        before.len(),
        during_median.as_micros(),
        during.len(),
        bound.as_micros()
    );
    if during_median > bound {
        return Err(format!(
            "bystander starved: median round trip {} µs during the attack, {} µs before \
             (ratio {ratio:.2}, bound {} µs)",
            during_median.as_micros(),
            baseline.as_micros(),
            bound.as_micros()
        ));
    }
    Ok(())
}

fn spawn_hostile(
    broker: &Broker,
    attack: &Attack,
    profile: Option<Profile>,
) -> Result<portcullis::Child<Vec<u8>, Report>, String> {
    let options = SpawnOptions {
        profile,
        ..SpawnOptions::default()
    };
    broker
        .spawn_with::<Vec<u8>, Report, _>("hostile-suite", attack, &options)
        .map_err(|e| format!("spawn hostile: {e}: {:?}", std::error::Error::source(&e)))
}

/// One attacker that must end as a protocol violation, and only that.
fn violation(broker: &Broker, attack: Attack, profile: Option<Profile>) -> Result<String, String> {
    let child = spawn_hostile(broker, &attack, profile)?;
    let service = matches!(
        attack,
        Attack::Garbage(Which::Service)
            | Attack::TebibyteLength(Which::Service)
            | Attack::ThousandFds(Which::Service)
            | Attack::Mailbox(_)
    );
    // App-channel attacks are found when the application receives; service-channel ones by the
    // child's broker thread on its own, when the attacker rings.
    if matches!(attack, Attack::ThousandFds(_)) {
        // The kernel may refuse the whole attack (see `Attack::ThousandFds`); the attacker then
        // says so and ends normally, and the broker never saw a byte of it.
        if let Some(ChildEnd::Exited { code: 0 }) = child.wait_timeout(Duration::from_millis(200)) {
            return match child.recv_timeout(Duration::from_secs(5)) {
                Ok(Report::Refused) => Ok(format!("{attack:?}: refused by the kernel")),
                other => Err(format!(
                    "{attack:?}: ended normally without a protocol violation: {other:?}"
                )),
            };
        }
    }
    let seen = if service {
        "found by the child's broker thread".to_owned()
    } else {
        match child.recv_timeout(Duration::from_secs(20)) {
            Ok(Report::Refused) => {
                return match child.wait_timeout(Duration::from_secs(20)) {
                    Some(ChildEnd::Exited { code: 0 }) => {
                        Ok(format!("{attack:?}: refused by the kernel"))
                    }
                    other => Err(format!("{attack:?}: refused, then ended {other:?}")),
                }
            }
            Err(ChildError::ProtocolViolation(v)) => format!("{v}"),
            other => {
                return Err(format!(
                    "{attack:?}: expected a protocol violation, got {other:?}"
                ))
            }
        }
    };
    match child.wait_timeout(Duration::from_secs(20)) {
        Some(ChildEnd::ProtocolViolation { .. }) => {
            Ok(format!("{attack:?}: {seen}, ended ProtocolViolation"))
        }
        other => Err(format!(
            "{attack:?}: expected end ProtocolViolation, got {other:?}"
        )),
    }
}

/// Regression test of a denial of service the suite found: while one child keeps 1,000 fds in
/// flight on its unread channel, another child is spawned. The kernel bounds fds in flight per
/// *user* (`too_many_unix_fds`: the sender's user's in-flight count against the sender's
/// `RLIMIT_NOFILE`), and every sandboxed child runs as the same host uid, so a new child that
/// handed its seccomp listener over with `SCM_RIGHTS` failed with `ETOOMANYREFS`. The broker now
/// takes the listener with `pidfd_getfd`; a lockdown sends no fd at all.
fn spawn_while_fds_in_flight(broker: &Broker) -> Verdict {
    let attacker = spawn_hostile(broker, &Attack::ThousandFds(Which::App), None)?;
    // Its datagrams are queued, unread, on the broker's end of its application channel.
    std::thread::sleep(Duration::from_millis(200));
    let on_request = SpawnOptions {
        // Not the pool's options: forked (and locked down) now.
        keep_stderr: true,
        ..SpawnOptions::default()
    };
    let spawned = broker.spawn_with::<crate::Down, crate::Up, _>("echo", &(), &on_request);
    attacker.kill();
    let _ = attacker.wait_timeout(Duration::from_secs(20));
    let child = spawned
        .map_err(|e| format!("a spawn while another child held fds in flight failed: {e:?}"))?;
    match child.request(&crate::Down::Echo(vec![1, 2, 3])) {
        Ok(crate::Up::Echo(b)) if b == [1, 2, 3] => Ok(()),
        other => Err(format!("echo: {other:?}")),
    }
}

/// The host uid a live process runs as, from `/proc/<pid>/status`.
fn host_uid(pid: u32) -> Result<u32, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("read /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
        .ok_or_else(|| format!("no Uid line in /proc/{pid}/status"))
}

/// While an attacker keeps its fds queued, a bystander child passes a sealed memfd to the
/// broker (as a renderer passes its screenshot). Returns whether the memfd arrived, and the host
/// uids of the attacker and of a third child that stays alive meanwhile (the bystander ends
/// once it has sent).
fn bystander_fd_message(broker: &Broker) -> Result<(Result<(), String>, [u32; 2]), String> {
    let attacker = spawn_hostile(broker, &Attack::ThousandFds(Which::App), None)?;
    // Its datagrams are queued, unread, on the broker's end of its application channel.
    std::thread::sleep(Duration::from_millis(200));
    let idle = broker
        .spawn::<crate::Down, crate::Up, _>("echo", &())
        .map_err(|e| format!("spawn an idle child: {e}"))?;
    let uids = [
        host_uid(attacker.pid()).map_err(|e| {
            format!(
                "attacker: {e}, ended {:?}",
                attacker.wait_timeout(Duration::from_millis(1))
            )
        })?,
        host_uid(idle.pid()).map_err(|e| {
            format!(
                "idle: {e}, ended {:?}",
                idle.wait_timeout(Duration::from_millis(1))
            )
        })?,
    ];
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    let outcome = broker
        .spawn::<(), crate::memfd::MemfdUp, _>("memfd", &flags)
        .map_err(|e| format!("spawn the bystander: {e}"))
        .map(|child| {
            let passed = match child.recv_with_fds(Some(Duration::from_secs(20))) {
                Ok((crate::memfd::MemfdUp::Sealed { .. }, fds)) if fds.len() == 1 => Ok(()),
                other => Err(format!(
                    "{other:?}; the bystander ended {:?}",
                    child.wait_timeout(Duration::from_secs(5))
                )),
            };
            (passed, uids)
        });
    idle.kill();
    attacker.kill();
    let _ = attacker.wait_timeout(Duration::from_secs(20));
    outcome
}

/// 128 idle children (more than a child's `RLIMIT_NOFILE` of 96) hold no fd in flight: a
/// child's service mailbox is installed in it only when it asks (`SECCOMP_IOCTL_NOTIF_ADDFD`),
/// never queued on a socket. Queued, it would count against the fds its host user may have in
/// flight, and under an unprivileged broker (one uid for the broker and every child) 128 unread
/// mailboxes would make the next child's fd-carrying message fail with `ETOOMANYREFS`; the
/// pair: before them, the same message is sent the same way and arrives.
fn idle_children_hold_no_fds_in_flight(broker: &Broker) -> Verdict {
    let memfd_message = |broker: &Broker| -> Verdict {
        let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
        let child = broker
            .spawn::<(), crate::memfd::MemfdUp, _>("memfd", &flags)
            .map_err(|e| format!("spawn the memfd child: {e}"))?;
        match child.recv_with_fds(Some(Duration::from_secs(20))) {
            Ok((crate::memfd::MemfdUp::Sealed { .. }, fds)) if fds.len() == 1 => Ok(()),
            other => Err(format!(
                "{other:?}; the memfd child ended {:?}",
                child.wait_timeout(Duration::from_secs(5))
            )),
        }
    };
    memfd_message(broker).map_err(|e| format!("before the idle children: {e}"))?;
    let idle = (0..128)
        .map(|_| broker.spawn::<crate::Down, crate::Up, _>("echo", &()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("spawn an idle child: {e}"))?;
    let after = memfd_message(broker);
    for child in &idle {
        child.kill();
    }
    for child in &idle {
        let _ = child.wait_timeout(Duration::from_secs(20));
    }
    after.map_err(|e| format!("with 128 idle children: {e}"))?;
    println!("an fd-carrying message arrived before and beside 128 idle children");
    Ok(())
}

/// The rest of the denial of service above: an application message that carries an fd (a
/// renderer's screenshot memfd) while another child keeps 1,000 fds in flight. The kernel
/// counts fds in flight per host *user*, so it is decided by whether the two children share a
/// host uid. A root broker gives every child a host uid of its own (`sandbox_host_ids`): the
/// bystander's memfd arrives. The pair: a root broker mapping one id for all
/// (`sandbox_host_ids: 1`), where the same message fails, proving the attack is real. An
/// unprivileged broker can map only its own uid, so there the gap stands (docs/THREATS.md).
fn fd_message_while_fds_in_flight(broker: &Broker) -> Verdict {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!(
            "not applicable: an unprivileged broker maps only its own uid, so its children \
             share it (the residual gap in docs/THREATS.md)"
        );
        return Ok(());
    }
    let (passed, uids) = bystander_fd_message(broker)?;
    let first = portcullis::DEFAULT_SANDBOX_HOST_ID;
    if uids[0] == uids[1] || uids.iter().any(|&uid| uid <= first) {
        return Err(format!(
            "children's host uids {uids:?}: expected two different ids above {first}"
        ));
    }
    passed.map_err(|e| format!("the bystander's memfd did not arrive: {e}"))?;
    let shared = Broker::start(
        crate::entries(),
        portcullis::BrokerConfig {
            sandbox_host_ids: 1,
            prefork: 0,
            ..portcullis::BrokerConfig::default()
        },
    )
    .map_err(|e| format!("start a broker with one host id: {e}"))?;
    let (shared_passed, shared_uids) = bystander_fd_message(&shared)?;
    if shared_uids[0] != shared_uids[1] || shared_uids[0] < first {
        return Err(format!(
            "one host id for all, yet children run as {shared_uids:?}"
        ));
    }
    match shared_passed {
        Err(e) => {
            println!(
                "host uids {uids:?}: the bystander's memfd arrived; with one id for all \
                 ({}) it did not: {e}",
                shared_uids[0]
            );
            Ok(())
        }
        Ok(()) => Err(
            "with one host id for all, the bystander's memfd still arrived: the attack held no \
             fds in flight, so this test proves nothing"
                .to_owned(),
        ),
    }
}

/// 1,000 rings of the service doorbell with nothing written: each answers 0 and nothing else,
/// and each costs a token of the child's request rate (default: a burst of 400, then 200 a
/// second), so the rings past the burst are slowed to that rate (≥ 2 s for the 600 of them);
/// a request written without a ring is not read (it waits for the child's own ring, so it
/// delays only that child); once rung it is answered; the normal client still works.
fn doorbell_storm(broker: &Broker) -> Result<String, String> {
    let tree = Tree::new("hostile-doorbell")?;
    let profile = Profile {
        fs: vec![grant(&tree.path("granted"), READ_LIST)],
        net: Vec::new(),
        limits: Limits::default(),
    };
    let rings = 1_000;
    let attack = Attack::Doorbell {
        path: tree.path("granted/a.txt"),
        rings,
    };
    let child = spawn_hostile(broker, &attack, Some(profile))?;
    let report = child.recv_timeout(Duration::from_secs(60));
    let _ = child.send(&Vec::new());
    let end = child.wait_timeout(Duration::from_secs(20));
    match (report, end) {
        (
            Ok(Report::Doorbell {
                failed_rings: 0,
                elapsed_ms,
                answered_unrung: false,
                answered_after_ring: true,
                stat_ok: true,
            }),
            Some(ChildEnd::Exited { code: 0 }),
        ) if elapsed_ms >= 2_000 => Ok(format!(
            "{rings} empty rings in {elapsed_ms} ms (held to the request rate), each answered \
             0; an unannounced request waited for its ring, then was answered"
        )),
        other => Err(format!("doorbell child: {other:?}")),
    }
}

/// The doorbell's syscall with the wrong tag is what any call outside the allowlist is: a
/// seccomp violation that ends the child (the tag's pair is `doorbell` above).
fn doorbell_wrong_tag(broker: &Broker) -> Verdict {
    let child = spawn_hostile(broker, &Attack::DoorbellWrongTag, None)?;
    match child.wait_timeout(Duration::from_secs(20)) {
        Some(ChildEnd::SeccompViolation { violation: Some(v) })
            if v.args[0] == portcullis::ipc::service::DOORBELL_TAG ^ 1 =>
        {
            println!("doorbell with a wrong tag: killed, violation {v}");
            Ok(())
        }
        other => Err(format!("wrong-tag child ended {other:?}")),
    }
}

/// A mailbox request rung twice with one sequence number is performed once: the repeat (a
/// syscall restarted after a signal) gets the first answer again. Its pair: the same request
/// with a new number is performed, and fails, the directory being there already.
fn mailbox_replay(broker: &Broker) -> Verdict {
    use crate::files::ALL;
    let tree = Tree::new("hostile-mailbox-replay")?;
    let profile = Profile {
        fs: vec![grant(&tree.path("granted"), ALL)],
        net: Vec::new(),
        limits: Limits::default(),
    };
    let dir = tree.path("granted/made");
    let attack = Attack::MailboxReplay { path: dir.clone() };
    let child = spawn_hostile(broker, &attack, Some(profile))?;
    let report = child.recv_timeout(Duration::from_secs(20));
    let _ = child.send(&Vec::new());
    let end = child.wait_timeout(Duration::from_secs(20));
    let made = std::path::Path::new(&dir).is_dir();
    match (report, end) {
        (
            Ok(Report::MailboxReplay {
                first,
                repeated,
                next,
                same_length: true,
                ask_again,
            }),
            Some(ChildEnd::Exited { code: 0 }),
        ) if made
            && first == "Done"
            && repeated == "Done"
            && next.starts_with("Failed")
            && ask_again == format!("errno {}", libc::EEXIST) =>
        {
            println!(
                "mailbox replay: first {first}, repeated {repeated}, new number {next}; \
                 asked for the mailbox again: {ask_again} (EEXIST)"
            );
            Ok(())
        }
        other => Err(format!("mailbox replay child: {other:?}, made {made}")),
    }
}

/// 10,000 requests a second for two seconds on the service channel, default limits: the
/// broker answers every one (served up to the profile's rate, `rate-limited` after) and the
/// flooder ends normally.
fn flood(broker: &Broker) -> Result<String, String> {
    let tree = Tree::new("hostile-flood")?;
    let profile = Profile {
        fs: vec![grant(&tree.path("granted"), READ_LIST)],
        net: Vec::new(),
        limits: Limits::default(),
    };
    let attack = Attack::Flood {
        path: tree.path("granted/a.txt"),
        per_second: 10_000,
        seconds: 2,
    };
    let child = spawn_hostile(broker, &attack, Some(profile))?;
    let report = child.recv_timeout(Duration::from_secs(60));
    let _ = child.send(&Vec::new());
    let end = child.wait_timeout(Duration::from_secs(20));
    match (report, end) {
        (
            Ok(Report::Flood {
                sent,
                ok,
                rate_limited,
                other: 0,
                elapsed_ms,
            }),
            Some(ChildEnd::Exited { code: 0 }),
        ) if ok + rate_limited == sent && ok > 0 => Ok(format!(
            "{sent} stat requests in {elapsed_ms} ms ({} per second): {ok} served, \
             {rate_limited} rate-limited, every one answered",
            u64::from(sent) * 1000 / elapsed_ms.max(1)
        )),
        other => Err(format!("flooder: {other:?}")),
    }
}

/// A child asks for a ~1 MiB directory listing and never reads, while the application sends
/// it an 8 MiB message: the application's send fails with a timeout instead of blocking, the
/// child's broker thread, which lets the doorbell return once the answer fills the socket, gives
/// up at its deadline, and a bystander's brokered opens are all served meanwhile.
fn stop_reading(broker: &Broker) -> Result<String, String> {
    let tree = Tree::new("hostile-stop-reading")?;
    let big = tree.path("granted/big");
    std::fs::create_dir(&big).map_err(|e| e.to_string())?;
    for i in 0..4000 {
        std::fs::write(format!("{big}/{i:0>200}"), b"").map_err(|e| e.to_string())?;
    }
    let profile = Profile {
        fs: vec![grant(&tree.path("granted"), READ_LIST)],
        net: Vec::new(),
        limits: Limits::default(),
    };
    let child = spawn_hostile(broker, &Attack::StopReading { dir: big }, Some(profile))?;
    match child.recv_timeout(Duration::from_secs(20)) {
        Ok(Report::Ready) => {}
        other => return Err(format!("stop-reading child: {other:?}")),
    }
    let (send, served) = std::thread::scope(|s| {
        let send = s.spawn(|| {
            let start = Instant::now();
            let result = child.send(&vec![0x5a; 8 << 20]);
            (result, start.elapsed())
        });
        let served = crate::files::bystander_opens(broker, 200);
        (send.join(), served)
    });
    let (send_result, send_took) = send.map_err(|_| "send thread panicked")?;
    let served = served?;
    child.kill();
    let end = child.wait_timeout(Duration::from_secs(20));
    match (&send_result, served, &end) {
        (Err(ChildError::Send(portcullis::ipc::SendError::TimedOut)), 200, Some(ChildEnd::Killed)) => Ok(format!(
            "8 MiB send to a child that stopped reading gave up after {} ms (TimedOut); \
             a bystander's 200 brokered opens served meanwhile",
            send_took.as_millis()
        )),
        _ => Err(format!(
            "send {send_result:?} after {send_took:?}, bystander served {served} of 200, end {end:?}"
        )),
    }
}

/// A child opens one granted file 10,000 times, keeping each: its `open_fds` limit (the
/// `RLIMIT_NOFILE` the broker set from it) stops it with `EMFILE` in the child, every request is
/// answered, and the broker itself never holds more than a few extra fds.
fn open_many(broker: &Broker) -> Result<String, String> {
    let tree = Tree::new("hostile-open-many")?;
    let limits = Limits {
        // The rate limiter is not what should stop it here.
        requests_per_second: 1_000_000,
        burst: 1_000_000,
        ..Limits::default()
    };
    let open_fds = limits.open_fds;
    let profile = Profile {
        fs: vec![grant(&tree.path("granted"), READ_LIST)],
        net: Vec::new(),
        limits,
    };
    let count = 10_000;
    let attack = Attack::OpenMany {
        path: tree.path("granted/a.txt"),
        count,
    };
    let broker_fds_before = crate::open_fd_count();
    let child = spawn_hostile(broker, &attack, Some(profile))?;
    let report = child.recv_timeout(Duration::from_secs(120));
    let broker_fds_holding = crate::open_fd_count();
    let _ = child.send(&Vec::new());
    let end = child.wait_timeout(Duration::from_secs(20));
    // RLIMIT_NOFILE is open_fds + 32 (the child's own fds: stdio, channels).
    let ceiling = open_fds + 32;
    match (report, end) {
        (
            Ok(Report::Opens {
                opened,
                emfile,
                other: 0,
                first_error,
            }),
            Some(ChildEnd::Exited { code: 0 }),
        ) if opened >= open_fds
            && opened <= ceiling
            && emfile == count - opened
            && first_error.to_lowercase().contains("too many open files")
            && broker_fds_holding <= broker_fds_before + 8 =>
        {
            Ok(format!(
                "{count} opens: {opened} held (open_fds {open_fds}, RLIMIT_NOFILE {ceiling}), \
                 {emfile} refused in the child: {first_error}; broker fds {broker_fds_before} \
                 before, {broker_fds_holding} while the child held its files"
            ))
        }
        other => Err(format!(
            "open-many: {other:?}; broker fds {broker_fds_before} before, \
             {broker_fds_holding} while the child held its files"
        )),
    }
}
