#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test as the calling user and, when run as
# root, every test binary again as an unprivileged user (so both sandbox paths are proven:
# a root broker mapping sandbox root to nobody, and an unprivileged one using user namespaces).
#
#   scripts/test.sh            # what the README runs
#   PORTCULLIS_TESTS_REQUIRED=1 scripts/test.sh   # a test that would skip fails instead (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build --examples"
cargo build --workspace --examples --bins

echo "== cargo test (as $(id -un))"
cargo test --workspace

if [ "$(id -u)" -eq 0 ]; then
    scripts/test-unprivileged.sh
else
    echo "== not root: the unprivileged run above is the only one"
fi

# Fuzzing, bounded: libFuzzer for PORTCULLIS_FUZZ_SECONDS per target where a nightly toolchain
# can be had, else the stable replay of the same targets (which `cargo test` ran already).
echo "== fuzz (${PORTCULLIS_FUZZ_SECONDS:-60} s per target)"
scripts/fuzz.sh "${PORTCULLIS_FUZZ_SECONDS:-60}"
