//! Stable replay of fuzz target (a), `fuzz/src/frame_to_decision.rs` — bytes → channel framing
//! and decode → `ServiceRequest` → access → `Profile::decide` — without nightly or libFuzzer:
//! every checked-in corpus file, then `PORTCULLIS_FUZZ_ITERATIONS` (default 20,000) seeded random
//! inputs. Properties: no panic, no allow outside a grant (`fuzz/src/invariants.rs`), and no
//! allocation beyond a bound proportional to the input (a counting allocator measures each
//! input's peak).

#[path = "../../fuzz/src/frame_to_decision.rs"]
mod frame_to_decision;
#[path = "../../fuzz/src/invariants.rs"]
mod invariants;
#[path = "../../fuzz/src/replay.rs"]
mod replay;

use portcullis_ipc::fuzzing::decode_datagrams;
use portcullis_ipc::service::ServiceRequest;
use portcullis_ipc::{ProtocolViolation, RecvError};

#[global_allocator]
static ALLOCATOR: replay::CountingAlloc = replay::CountingAlloc;

/// Most bytes one input may have allocated at once: a small constant plus a multiple of its
/// length. Where the multiple comes from: the datagram list (16 bytes a datagram, at most one per
/// 2 input bytes), the message being assembled (capacity at most twice its length), the decoded
/// strings (at most its length), and that again for the decision's relative path; nothing is
/// sized from a length the input claims.
fn allocation_bound(input_len: usize) -> usize {
    64 * 1024 + 16 * input_len
}

/// Runs one input, turning a panic into a message naming the input; returns the outcome and
/// the input's peak allocation.
fn run_checked(label: &str, input: &[u8]) -> (frame_to_decision::Outcome, usize) {
    let (result, peak) =
        replay::peak_allocation(|| std::panic::catch_unwind(|| frame_to_decision::run(input)));
    match result {
        Ok(outcome) => {
            assert!(
                peak <= allocation_bound(input.len()),
                "{label}: allocated {peak} bytes at once for an input of {} (bound {}): {}",
                input.len(),
                allocation_bound(input.len()),
                replay::hex(input)
            );
            (outcome, peak)
        }
        Err(_) => panic!(
            "{label}: a property failed (see above) on {}",
            replay::hex(input)
        ),
    }
}

#[test]
fn corpus_replays_without_panic_escape_or_unbounded_allocation() {
    let _ = frame_to_decision::profile();
    let corpus = replay::corpus("frame_to_decision");
    for (name, bytes) in &corpus {
        let (outcome, peak) = run_checked(name, bytes);
        // The seeds say what they are: `ok-*` decode to requests, `bad-*` are violations.
        if name.starts_with("ok-") {
            assert!(
                outcome.requests > 0 && !outcome.violation,
                "{name} should decode: {outcome:?}"
            );
        } else if name.starts_with("bad-") {
            assert!(
                outcome.violation,
                "{name} should be a violation: {outcome:?}"
            );
        }
        println!("{name}: {outcome:?}, peak {peak} bytes");
    }
}

#[test]
fn random_inputs_never_panic_escape_or_allocate_without_bound() {
    let _ = frame_to_decision::profile();
    let corpus = replay::corpus("frame_to_decision");
    let mut rng = replay::Rng::new(replay::seed());
    let (mut requests, mut allowed, mut violations, mut max_peak) = (0, 0, 0, 0);
    let iterations = replay::iterations();
    for i in 0..iterations {
        let input = replay::random_input(&mut rng, &corpus);
        let (outcome, peak) = run_checked(&format!("random input {i}"), &input);
        requests += outcome.requests;
        allowed += outcome.allowed;
        violations += usize::from(outcome.violation);
        max_peak = max_peak.max(peak);
    }
    println!(
        "{iterations} random inputs: {requests} requests decoded, {allowed} allowed, \
         {violations} violations; largest peak allocation {max_peak} bytes"
    );
    // A run that never reached a decision, or never an allow, would prove nothing.
    assert!(requests > 0 && allowed > 0 && violations > 0);
}

/// A message claiming a 1 TiB path (and one claiming a 1 TiB POST body) is refused at once, with
/// a decode error, having allocated a few KiB — never the claimed size.
#[test]
fn a_claimed_tebibyte_length_fails_without_allocating_it() {
    let mut claim_path = vec![0x00, 0x00]; // header "last", ServiceRequest::Open
    let mut claim_body = vec![0x00, 0x06, 20]; // header, ServiceRequest::Fetch, url length 20
    claim_body.extend_from_slice(b"https://example.com/");
    claim_body.push(0x01); // FetchMethod::Post
    for frame in [&mut claim_path, &mut claim_body] {
        let mut n: u64 = 1 << 40;
        while n >= 0x80 {
            frame.push((n & 0x7f) as u8 | 0x80);
            n >>= 7;
        }
        frame.push(n.to_le_bytes()[0]);
    }
    for frame in [claim_path, claim_body] {
        let (results, peak) = replay::peak_allocation(|| {
            decode_datagrams::<ServiceRequest>([frame.as_slice()], Default::default())
        });
        assert!(
            matches!(
                results.as_slice(),
                [Err(RecvError::Violation(ProtocolViolation::Decode { .. }))]
            ),
            "{results:?}"
        );
        assert!(peak < 16 * 1024, "a 1 TiB claim allocated {peak} bytes");
        println!("1 TiB claim refused: {results:?}, peak allocation {peak} bytes");
    }
}
