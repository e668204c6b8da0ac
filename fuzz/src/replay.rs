//! Stable replay of the fuzz targets, for the tests that include this file (`#[path]`):
//! the checked-in corpus, then a bounded, deterministic run of random inputs from a seeded PRNG
//! (half mutated corpus files, half fresh bytes). `PORTCULLIS_FUZZ_ITERATIONS` sets how many
//! (default 20,000); `PORTCULLIS_FUZZ_SEED` changes the seed for a different sample.
//!
//! Also a counting allocator, so a test can assert how much one input may allocate: each thread
//! counts its own live bytes and their peak.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

/// Random inputs per target unless `PORTCULLIS_FUZZ_ITERATIONS` says otherwise.
pub const DEFAULT_ITERATIONS: u64 = 20_000;

/// How many random inputs to run.
pub fn iterations() -> u64 {
    std::env::var("PORTCULLIS_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ITERATIONS)
}

/// The PRNG seed.
pub fn seed() -> u64 {
    std::env::var("PORTCULLIS_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f022_7e57_c011)
}

/// The checked-in corpus of `target`, sorted by file name: (name, bytes).
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.expect("corpus entry");
            let bytes = std::fs::read(entry.path()).expect("read corpus file");
            (entry.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

/// xorshift64*: small, deterministic, good enough to pick mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % u64::try_from(n.max(1)).unwrap_or(u64::MAX)).unwrap_or(0)
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64().to_le_bytes()[0]
    }
}

/// Interesting values to write over bytes: varint prefixes of huge lengths, boundaries.
const SPLICES: &[&[u8]] = &[
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[0x00],
    &[0x01],
    &[0xff],
    &[0x7f],
    &[0x80, 0x01],
    b"..",
    b"/",
    b"//",
    b"/./",
    b"\0",
];

/// One random change (or a few) to `seed`.
pub fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.insert(at, rng.byte()),
            2 if at < out.len() => {
                let end = (at + 1 + rng.below(8)).min(out.len());
                out.drain(at..end);
            }
            3 => {
                let splice = SPLICES[rng.below(SPLICES.len())];
                let end = (at + splice.len()).min(out.len());
                out.splice(at..end, splice.iter().copied());
            }
            4 if !out.is_empty() => {
                // Duplicate a slice (repeats a datagram or a path part).
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(32)).min(out.len());
                let copy = out[start..end].to_vec();
                out.splice(at..at, copy);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// The `i`-th random input: a mutated corpus file or fresh random bytes.
pub fn random_input(rng: &mut Rng, corpus: &[(String, Vec<u8>)]) -> Vec<u8> {
    if rng.below(2) == 0 && !corpus.is_empty() {
        let (_, seed) = &corpus[rng.below(corpus.len())];
        mutate(rng, seed)
    } else {
        let len = rng.below(300);
        (0..len).map(|_| rng.byte()).collect()
    }
}

/// The first bytes of an input, for a failure message.
pub fn hex(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(96).map(|b| format!("{b:02x}")).collect();
    format!("{} ({} bytes)", shown.join(""), bytes.len())
}

thread_local! {
    /// (live bytes, peak live bytes) allocated by this thread. `const`-initialised with no
    /// destructor, so the allocator may touch it at any time without allocating.
    static COUNT: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

fn count(grow: usize, shrink: usize) {
    let _ = COUNT.try_with(|c| {
        let (live, peak) = c.get();
        let live = live.saturating_add(grow).saturating_sub(shrink);
        c.set((live, peak.max(live)));
    });
}

/// The system allocator, counting this thread's live bytes.
#[derive(Debug)]
pub struct CountingAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees hold; the counting only touches a thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 0);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 0);
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(0, layout.size());
        // SAFETY: `ptr` came from this allocator (so from `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size, layout.size());
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds `realloc`'s rules.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns its result and the most bytes this thread had allocated at once during
/// it, above what it held before.
pub fn peak_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = COUNT.with(|c| {
        let (live, _) = c.get();
        c.set((live, live));
        live
    });
    let result = f();
    let peak = COUNT.with(|c| c.get().1);
    (result, peak.saturating_sub(start))
}
