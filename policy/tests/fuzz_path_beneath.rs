//! Stable replay of fuzz target (b), `fuzz/src/path_beneath.rs` — hostile paths (`..`, `//`,
//! `.`, symlink-like and magic-link names, NUL, over-long names, look-alikes) decided for every
//! path access and rename — without nightly or libFuzzer: every checked-in corpus file, then
//! `PORTCULLIS_FUZZ_ITERATIONS` (default 20,000) seeded random inputs. Property: no panic, and
//! every allow resolves lexically beneath the granted root (`fuzz/src/invariants.rs`).

#[path = "../../fuzz/src/invariants.rs"]
mod invariants;
#[path = "../../fuzz/src/path_beneath.rs"]
mod path_beneath;
// Its allocation counter serves the other replay test; this one needs the inputs only.
#[allow(dead_code)]
#[path = "../../fuzz/src/replay.rs"]
mod replay;

fn run_checked(label: &str, input: &[u8]) -> path_beneath::Outcome {
    std::panic::catch_unwind(|| path_beneath::run(input)).unwrap_or_else(|_| {
        panic!(
            "{label}: a property failed (see above) on {} = {:?}",
            replay::hex(input),
            path_beneath::paths(input)
        )
    })
}

#[test]
fn corpus_replays_and_never_allows_outside_a_grant() {
    let mut allowed = 0;
    let corpus = replay::corpus("path_beneath");
    for (name, bytes) in &corpus {
        let outcome = run_checked(name, bytes);
        allowed += usize::from(outcome.allowed);
        let (kind, path, second) = path_beneath::paths(bytes);
        let short = |p: &str| p.chars().take(80).collect::<String>();
        println!(
            "{name}: access {kind} {:?} {:?} -> {outcome:?}",
            short(&path),
            short(&second)
        );
    }
    assert!(
        allowed > 0 && allowed < corpus.len(),
        "{allowed} of {} allowed",
        corpus.len()
    );
}

#[test]
fn random_paths_never_allow_outside_a_grant() {
    let corpus = replay::corpus("path_beneath");
    let mut rng = replay::Rng::new(replay::seed());
    let iterations = replay::iterations();
    let mut allowed = 0_u64;
    for i in 0..iterations {
        let input = replay::random_input(&mut rng, &corpus);
        allowed += u64::from(run_checked(&format!("random input {i}"), &input).allowed);
    }
    println!("{iterations} random paths: {allowed} allowed, every one beneath its grant");
    assert!(
        allowed > 0,
        "no random path was allowed: the run proves nothing"
    );
}

/// Known answers, so the checker itself is checked: allows it must accept, and the ones it
/// must reject if `decide` ever gave them.
#[test]
fn the_invariant_checker_rejects_escapes() {
    use portcullis_policy::{Access, Decision, OpenMode};
    let profile = path_beneath::profile();
    let read = OpenMode {
        read: true,
        ..OpenMode::default()
    };
    let open = |path| Access::Open { path, mode: read };
    let allow = |grant, relative: &str| Decision::AllowPath {
        grant,
        relative: relative.to_owned(),
    };
    let good = [
        (open("/data/a"), allow(0, "a")),
        (open("/data/rw/locked/x"), allow(2, "x")),
    ];
    for (access, decision) in good {
        assert_eq!(invariants::check(profile, &access, &decision), Ok(()));
        assert_eq!(profile.decide(&access), decision);
    }
    let bad = [
        (open("/data/../etc/passwd"), allow(0, "../etc/passwd")),
        (open("/data-evil/x"), allow(0, "-evil/x")),
        (open("/data/a"), allow(0, "/a")),
        (open("/data/a"), allow(0, "b")),
        (open("/data/a"), allow(9, "a")),
        (open("/data/rw/locked/x"), allow(1, "locked/x")),
        (open("/etc/fonts/other.conf"), allow(3, "other.conf")),
        (open("/data"), allow(0, "")),
        (open("/data/a\0b"), allow(0, "a\0b")),
    ];
    for (access, decision) in bad {
        assert!(
            invariants::check(profile, &access, &decision).is_err(),
            "{access:?} {decision:?} should be refused by the checker"
        );
    }
}
