#!/usr/bin/env bash
# Makes sure this machine has what building Portcullis needs beyond the Rust toolchain:
# libseccomp's development files (libseccomp-sys links against libseccomp.so, and the static
# `portcullis` command against libseccomp.a, both of which only the -dev package provides), and
# tmux for the browser-shell's terminal test. As root it installs them; otherwise it prints the
# exact command (a missing tmux only makes that test skip).
set -euo pipefail

have_libseccomp() {
    local dir
    for dir in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
        [ -e "$dir/libseccomp.so" ] && return 0
    done
    return 1
}

if ! have_libseccomp; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "ensure-deps: installing libseccomp-dev" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libseccomp-dev >/dev/null
    else
        echo "ensure-deps: libseccomp-dev is missing. Install it with:" >&2
        echo "    sudo apt-get install -y libseccomp-dev" >&2
        exit 1
    fi
fi

# tmux: the browser-shell's end-to-end test drives the terminal UI in a real terminal with it.
if ! command -v tmux >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "ensure-deps: installing tmux" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null
    else
        echo "ensure-deps: tmux is missing (the browser-shell terminal test skips without it). Install it with:" >&2
        echo "    sudo apt-get install -y tmux" >&2
    fi
fi

# cargo fmt and cargo clippy: rustup components on most machines.
for tool in rustfmt clippy-driver; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        if command -v rustup >/dev/null 2>&1; then
            echo "ensure-deps: adding rustup components rustfmt and clippy" >&2
            rustup component add rustfmt clippy
            break
        fi
        echo "ensure-deps: $tool is missing; install your toolchain's rustfmt and clippy" >&2
        exit 1
    fi
done
