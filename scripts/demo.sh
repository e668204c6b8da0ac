#!/usr/bin/env bash
# The main demo: spawns sandboxed children and shows them blocked from the host.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
cargo run --release --quiet -p portcullis-example-echo
