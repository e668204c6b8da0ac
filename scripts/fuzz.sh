#!/usr/bin/env bash
# Fuzzes Portcullis' fuzz targets (fuzz/, a cargo-fuzz layout outside the main workspace) for a
# bounded time each, or, where that cannot run, replays them on stable. Says which it did.
#
#   scripts/fuzz.sh [SECONDS]      # per target; default 60
#
# With `cargo fuzz` and a nightly toolchain: each target runs under libFuzzer for SECONDS,
# starting from the checked-in corpus (fuzz/corpus/<target>), with -malloc_limit_mb=64 (one
# allocation above 64 MiB is a crash: inputs are at most a few KiB, so that is an allocation
# sized from a claimed length) and -rss_limit_mb=1024. New inputs go to a scratch directory, so
# the checked-in corpus changes only by review. A crash leaves its input in fuzz/artifacts/.
# Without them: the stable replay tests call the same target functions on every corpus file and
# on PORTCULLIS_FUZZ_ITERATIONS (default 20,000) seeded random inputs per target.
# Either way the stable replay tests run at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
targets=(frame_to_decision path_beneath)

# A nightly toolchain but no cargo-fuzz: install it (CI's machines have the toolchains, not the
# tool). Offline, or if it does not build, the replay below still runs.
if cargo +nightly --version >/dev/null 2>&1 && ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install --locked cargo-fuzz >/dev/null 2>&1 || echo "fuzz.sh: could not install cargo-fuzz"
fi
if cargo fuzz --version >/dev/null 2>&1 && cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: libFuzzer via $(cargo fuzz --version) on $(cargo +nightly --version), ${seconds}s per target"
    for target in "${targets[@]}"; do
        scratch=$(mktemp -d "/tmp/portcullis-fuzz-$target.XXXXXX")
        echo "fuzz.sh: $target (new inputs in $scratch)"
        cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$scratch" "fuzz/corpus/$target" -- \
            -max_total_time="$seconds" -malloc_limit_mb=64 -rss_limit_mb=1024 -timeout=10 \
            -print_final_stats=1
    done
else
    why="no cargo-fuzz"
    cargo fuzz --version >/dev/null 2>&1 && why="no nightly toolchain"
    echo "fuzz.sh: $why here: running the stable replay tests instead" \
        "(corpus + ${PORTCULLIS_FUZZ_ITERATIONS:-20000} seeded random inputs per target)"
fi
echo "fuzz.sh: stable replay of every target"
cargo test -p portcullis-tests --test fuzz_frame_to_decision
cargo test -p portcullis-policy --test fuzz_path_beneath
