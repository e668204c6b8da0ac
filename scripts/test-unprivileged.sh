#!/usr/bin/env bash
# Runs every test binary of the workspace as an unprivileged user. Needs root (to create the
# user and drop to it). The binaries are copied to a world-readable directory because the
# checkout may sit where that user cannot reach (e.g. under /root).
set -euo pipefail
cd "$(dirname "$0")/.."
user=portcullis-ci
if ! id -u "$user" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
fi
uid=$(id -u "$user")
gid=$(id -g "$user")

stage=$(mktemp -d /tmp/portcullis-unpriv.XXXXXX)
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage"

# Every test executable cargo built (from its JSON messages), the probe broker binary and the
# `portcullis` command.
json="$stage/build.json"
cargo test --workspace --no-run --message-format=json >"$json"
mapfile -t executables < <(grep -o '"executable":"[^"]*/deps/[^"]*"' "$json" | sed 's/"executable":"\(.*\)"/\1/')
probe=$(grep -o '"executable":"[^"]*/probe"' "$json" | sed 's/"executable":"\(.*\)"/\1/' | head -n 1)
if [ -z "$probe" ]; then
    cargo build --workspace --bins --message-format=json >"$json"
    probe=$(grep -o '"executable":"[^"]*/probe"' "$json" | sed 's/"executable":"\(.*\)"/\1/' | head -n 1)
fi
# The `portcullis` command, which tests/cli.rs runs.
cli=$(grep -o '"executable":"[^"]*/portcullis"' "$json" | sed 's/"executable":"\(.*\)"/\1/' | head -n 1)
if [ -z "$cli" ]; then
    cargo build --bin portcullis --message-format=json >"$json"
    cli=$(grep -o '"executable":"[^"]*/portcullis"' "$json" | sed 's/"executable":"\(.*\)"/\1/' | head -n 1)
fi
# The plugin host, which examples/plugin-host/tests runs.
plugin_host=$(grep -o '"executable":"[^"]*/plugin-host"' "$json" | sed 's/"executable":"\(.*\)"/\1/' | head -n 1)
if [ -z "$plugin_host" ]; then
    cargo build -p plugin-host --bin plugin-host --message-format=json >"$json"
    plugin_host=$(grep -o '"executable":"[^"]*/plugin-host"' "$json" | sed 's/"executable":"\(.*\)"/\1/' | head -n 1)
fi
# The demo browser, which examples/browser-shell/tests run (as BROWSER_SHELL).
browser=$(grep -o '"executable":"[^"]*/browser-shell"' "$json" | sed 's/"executable":"\(.*\)"/\1/' | head -n 1)
if [ -z "$browser" ]; then
    cargo build -p browser-shell --bin browser-shell --message-format=json >"$json"
    browser=$(grep -o '"executable":"[^"]*/browser-shell"' "$json" | sed 's/"executable":"\(.*\)"/\1/' | head -n 1)
fi
if [ "${#executables[@]}" -eq 0 ] || [ -z "$probe" ] || [ -z "$cli" ] || [ -z "$plugin_host" ] || [ -z "$browser" ]; then
    echo "test-unprivileged: found no test binaries, no probe binary, no portcullis binary, no plugin-host binary or no browser-shell binary" >&2
    exit 1
fi
if ! printf '%s\n' "${executables[@]}" | grep -q '/sandbox-'; then
    echo "test-unprivileged: the sandbox test binary is missing" >&2
    exit 1
fi
cp "$probe" "$stage/probe"
cp "$cli" "$stage/portcullis"
cp "$plugin_host" "$stage/plugin-host"
cp "$browser" "$stage/browser-shell"
for exe in "${executables[@]}"; do
    cp "$exe" "$stage/"
done
chmod -R a+rX "$stage"
# A temp dir the user can write (tests create files there).
mkdir "$stage/tmp"
chown "$uid:$gid" "$stage/tmp"

# A delegated cgroup subtree for the unprivileged broker, the way systemd's `Delegate=yes` gives
# one to a user service: a directory per controller that the user owns, with this shell moved
# into it (a cgroup created inside it belongs to its creator). The broker finds it from
# /proc/self/cgroup, as it would on a desktop. Only cgroup v1 controllers are delegated here: on a
# v2 host the same is done by systemd (`systemd-run --user -p Delegate=yes`).
delegated=()
while IFS=: read -r _ controllers path; do
    for controller in memory pids cpu; do
        case ",$controllers," in
        *",$controller,"*)
            mount=$(awk -v c="$controller" '{ for (i = 7; i <= NF; i++) if ($i == "-") break }
                $(i + 1) == "cgroup" && ("," $NF ",") ~ ("," c ",") { print $5; exit }' /proc/self/mountinfo)
            [ -n "$mount" ] || continue
            dir="$mount${path%/}/portcullis-ci-delegated"
            if mkdir -p "$dir" 2>/dev/null && chown "$uid:$gid" "$dir" && echo $$ >"$dir/cgroup.procs"; then
                delegated+=("$dir")
            fi
            ;;
        esac
    done
done </proc/self/cgroup
if [ "${#delegated[@]}" -gt 0 ]; then
    echo "== delegated cgroups for $user: ${delegated[*]}"
fi
undelegate() {
    for dir in "${delegated[@]}"; do
        parent=$(dirname "$dir")
        echo $$ >"$parent/cgroup.procs" 2>/dev/null || true
        rmdir "$dir" 2>/dev/null || echo "test-unprivileged: $dir not empty after the tests" >&2
    done
    rm -rf "$stage"
}
trap undelegate EXIT

echo "== cargo test binaries as $user (uid $uid)"
failed=0
for exe in "${executables[@]}"; do
    name=$(basename "$exe")
    echo "-- $name"
    if ! (cd "$stage" && setpriv --reuid="$uid" --regid="$gid" --clear-groups \
        env -i PATH=/usr/bin:/bin HOME="$stage/tmp" TMPDIR="$stage/tmp" \
        PORTCULLIS_TESTS_REQUIRED="${PORTCULLIS_TESTS_REQUIRED:-}" PORTCULLIS_PROBE="$stage/probe" PORTCULLIS_CLI="$stage/portcullis" \
        PORTCULLIS_PLUGIN_HOST="$stage/plugin-host" \
        BROWSER_SHELL="$stage/browser-shell" \
        "$stage/$name"); then
        failed=1
    fi
done
exit "$failed"
