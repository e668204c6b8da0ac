#!/usr/bin/env bash
# The main demo: browser-shell, a terminal browser whose shell is the Portcullis broker and whose
# renderers are sandboxed children, one per site, on its bundled pages (no network needed).
# Keys: ? help, g open a URL, a number then Enter follows a link, t new tab, q quit. Try
# about:sandbox, about:crash, about:hang and about:escape. Arguments go to browser-shell
# (e.g. `scripts/demo.sh --dump about:escape`).
#
# The second example, the smallest Portcullis application: `scripts/demo.sh echo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
if [ "${1:-}" = "echo" ]; then
    exec cargo run --release --quiet -p portcullis-example-echo
fi
cargo build --release --quiet -p browser-shell
if [ "$#" -eq 0 ] && { [ ! -t 0 ] || [ ! -t 1 ]; }; then
    # No terminal to draw in (a pipe, CI): the same pages, headless.
    exec target/release/browser-shell --dump about:home --dump about:escape --dump about:sandbox
fi
exec target/release/browser-shell "$@"
